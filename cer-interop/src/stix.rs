//! STIX 2.1 bundles, both ways. [`import`] reads a bundle into the
//! incidents this node would file; [`export`] writes incidents as a bundle
//! that the OASIS validator accepts with no error and no warning; and
//! [`objects`] / [`incident_objects`] give exactly the objects an export
//! writes, one by one, for the TAXII server.
//!
//! The mapping, field by field, is the README's "STIX 2.1" table: keep the
//! two in step. Patterns are parsed by [`pattern`] and mapped to indicators
//! in `observable`; TLP markings live in `marking`.
//!
//! Like the rest of the crate: no file, network or clock (time comes from
//! the options), bounded on any input, and text from a bundle stays data.

use cer_proto::model::Timestamp;
use serde_json::Value;
use uuid::Uuid;

use crate::{FormatError, ImportOptions, ImportReport};

mod assemble;
mod export;
pub mod marking;
mod observable;
pub mod pattern;
mod read;

pub use export::{export, identity, incident_objects, objects};

/// Largest bundle read, in bytes.
pub const MAX_INPUT_BYTES: usize = 64 * 1024 * 1024;

/// Reads a STIX 2.1 bundle into the incidents this node would file. Fails
/// only when the input is not a bundle at all (too large, not JSON, no
/// `"type": "bundle"`, no valid id); every problem with an object inside
/// it is reported in the result instead, with its location and reason.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<ImportReport, FormatError> {
    let format_error = |reason: String| FormatError {
        format: "stix",
        reason,
    };
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(format_error(format!(
            "the bundle is {} bytes; at most {MAX_INPUT_BYTES} are read",
            bytes.len()
        )));
    }
    // serde_json refuses nesting deeper than 128, so a hostile document
    // cannot exhaust the stack here.
    let document: Value =
        serde_json::from_slice(bytes).map_err(|e| format_error(format!("not JSON: {e}")))?;
    let Some(bundle) = document.as_object() else {
        return Err(format_error(
            "not a bundle: the document is not a JSON object".into(),
        ));
    };
    if bundle.get("type").and_then(Value::as_str) != Some("bundle") {
        return Err(format_error(
            "not a bundle: \"type\" is not \"bundle\"".into(),
        ));
    }
    let id = match bundle.get("id").and_then(Value::as_str) {
        Some(id) if read::valid_id(id, "bundle") => id.to_owned(),
        _ => {
            return Err(format_error(
                "the bundle has no valid id (bundle--<uuid>)".into(),
            ))
        }
    };
    let objects: &[Value] = match bundle.get("objects") {
        None => &[],
        Some(Value::Array(objects)) => objects,
        Some(_) => return Err(format_error("\"objects\" is not a list".into())),
    };
    Ok(assemble::assemble(read::read(objects, id), options))
}

/// The namespace of every id an export derives (see [`stable_id`]).
const NAMESPACE: Uuid = uuid::uuid!("e7879500-9e31-4f4b-bb73-356ada793db6");

/// The id an export gives an object of `kind` named by `parts`: the same
/// input always gives the same id, so a re-export is the same objects.
///
/// Derived like a UUIDv5 (SHA-1 of a namespace and a name), then stamped
/// as version 4: STIX asks for version 4 ids on every object that is not
/// an observable, and the validator warns about any other version.
pub(crate) fn stable_id(kind: &str, parts: &[&str]) -> String {
    // NUL separates the parts: no indicator value, id or fingerprint
    // holds one, so different parts never make the same name.
    let name = std::iter::once(kind)
        .chain(parts.iter().copied())
        .collect::<Vec<_>>()
        .join("\0");
    let derived = Uuid::new_v5(&NAMESPACE, name.as_bytes());
    let stamped = uuid::Builder::from_random_bytes(*derived.as_bytes()).into_uuid();
    format!("{kind}--{stamped}")
}

/// A STIX timestamp: UTC with exactly three digits of fraction, as STIX
/// requires of `created` and `modified` and uses for every other time,
/// so that two times compare the same as text and as instants. Sub-
/// millisecond precision is dropped.
pub(crate) fn stix_time(t: Timestamp) -> String {
    let text = t.to_string();
    let Some(body) = text.strip_suffix('Z') else {
        return text;
    };
    let (seconds, fraction) = body.split_once('.').unwrap_or((body, ""));
    let millis: String = fraction.chars().chain("000".chars()).take(3).collect();
    format!("{seconds}.{millis}Z")
}

/// Text cut to at most `max` characters, with '…' where it was cut.
pub(crate) fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max.saturating_sub(1)) {
        Some((cut, _)) if text[cut..].chars().nth(1).is_some() => format!("{}…", &text[..cut]),
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_ids_are_stable_distinct_and_version_4() {
        let a = stable_id("indicator", &["x", "ipv4", "192.0.2.1"]);
        assert_eq!(a, stable_id("indicator", &["x", "ipv4", "192.0.2.1"]));
        assert_ne!(a, stable_id("indicator", &["x", "ipv4", "192.0.2.2"]));
        assert_ne!(a, stable_id("indicator", &["x", "ipv4192.0.2.1"]));
        let uuid = Uuid::parse_str(a.strip_prefix("indicator--").unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 4);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
    }

    #[test]
    fn stix_times_have_milliseconds() {
        let t = |s: &str| stix_time(s.parse().unwrap());
        assert_eq!(t("2026-11-28T13:00:00Z"), "2026-11-28T13:00:00.000Z");
        assert_eq!(t("2026-11-28T13:00:00.5Z"), "2026-11-28T13:00:00.500Z");
        assert_eq!(
            t("2026-11-28T15:00:00.123456789+02:00"),
            "2026-11-28T13:00:00.123Z"
        );
    }

    #[test]
    fn clip_cuts_at_characters() {
        assert_eq!(clip("short", 10), "short");
        assert_eq!(clip("exactly10!", 10), "exactly10!");
        assert_eq!(clip("eleven char", 10), "eleven ch…");
        assert_eq!(clip("ééééé", 3), "éé…");
    }
}
