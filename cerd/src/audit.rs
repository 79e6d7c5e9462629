//! The audit trail's name and the node's clock: every state change is one
//! structured `tracing` event under [`AUDIT`], stamped by [`now`].
//!
//! The clock is the system's, moved by a fixed offset that only the
//! `CERD_CLOCK_OFFSET` environment variable sets (read once, by the cerd
//! binary at start-up): a test stand-in for a machine whose clock is
//! wrong. Envelope times, signature times and a new key's creation time
//! all read it; in-process daemons (tests, benchmarks) never set it.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use cer_proto::model::Timestamp;

/// Target of the audit trail: one structured event per state change.
pub const AUDIT: &str = "cerd::audit";

/// The environment variable that skews this process's clock, for testing
/// what peers make of a node whose clock is wrong: `+1h`, `-90m`, `30s`.
pub const CLOCK_OFFSET_VAR: &str = "CERD_CLOCK_OFFSET";

/// The offset in force: ahead (`true`) or behind, by how much.
static OFFSET: OnceLock<(bool, Duration)> = OnceLock::new();

/// The current time, as envelopes and records carry it.
pub fn now() -> Timestamp {
    Timestamp(time::OffsetDateTime::from(system_time()))
}

/// The current time for signatures and keys: the system clock plus the
/// offset, if one is set.
pub fn system_time() -> SystemTime {
    let real = SystemTime::now();
    match OFFSET.get() {
        None => real,
        Some((true, by)) => real + *by,
        Some((false, by)) => real.checked_sub(*by).unwrap_or(SystemTime::UNIX_EPOCH),
    }
}

/// Reads [`CLOCK_OFFSET_VAR`] once; an unset variable leaves the clock as
/// it is. Returns the offset in force, or why the value was refused.
pub fn set_offset_from_env() -> Result<Option<String>, String> {
    let Some(value) = std::env::var_os(CLOCK_OFFSET_VAR) else {
        return Ok(None);
    };
    let value = value
        .into_string()
        .map_err(|_| format!("{CLOCK_OFFSET_VAR} is not UTF-8"))?;
    let offset = parse_offset(&value).map_err(|e| format!("{CLOCK_OFFSET_VAR}={value:?}: {e}"))?;
    let _ = OFFSET.set(offset);
    Ok(Some(value))
}

/// `+1h`, `-1h 30m`, `45s` (no sign: ahead).
fn parse_offset(text: &str) -> Result<(bool, Duration), String> {
    let text = text.trim();
    let (ahead, rest) = match text.strip_prefix('-') {
        Some(rest) => (false, rest),
        None => (true, text.strip_prefix('+').unwrap_or(text)),
    };
    let by = humantime::parse_duration(rest.trim())
        .map_err(|e| format!("not an offset such as +1h or -30m: {e}"))?;
    if by > Duration::from_secs(366 * 24 * 3600) {
        return Err("more than a year".into());
    }
    Ok((ahead, by))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_with_a_sign() {
        assert_eq!(parse_offset("+1h"), Ok((true, Duration::from_secs(3600))));
        assert_eq!(parse_offset("1h"), Ok((true, Duration::from_secs(3600))));
        assert_eq!(
            parse_offset("-1h 30m"),
            Ok((false, Duration::from_secs(5400)))
        );
        assert!(parse_offset("soon").is_err());
        assert!(parse_offset("-").is_err());
        assert!(parse_offset("400d").unwrap_err().contains("year"));
    }
}
