//! The incident vocabulary: labels (TLP, severity, status, RSIT
//! classification), indicators and their normalization, timestamps, country
//! codes, tags and the affected sectors/countries.
//!
//! Every value that enters the system (CLI flags, API bodies, imported
//! files, peers' envelopes) passes through the parsers here, so the rest of
//! the code only ever sees canonical values and users get one consistent
//! error text naming the field and the reason.
//!
//! This module must not do I/O or read the clock: callers pass timestamps in.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use time::{OffsetDateTime, UtcOffset};

use crate::error::{FieldError, FieldErrors};

/// Defines a closed set of lower-case labels with the traits every label
/// needs (Display, FromStr, serde), so all of them parse and fail alike.
/// Deserialize goes through FromStr: input from peers and files gets the
/// same leniency (case, aliases) and the same error text as the CLI.
macro_rules! label_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $field:literal {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+
        }
        aliases: [$($alias:literal => $target:ident),* $(,)?],
        strip_prefix: $prefix:expr,
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in ascending order.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The canonical text, as serialized.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                // pad, not write_str, so `{:<8}` lines up CLI tables.
                f.pad(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::error::FieldError;

            fn from_str(raw: &str) -> Result<Self, $crate::error::FieldError> {
                let lowered = raw.trim().to_ascii_lowercase();
                let prefix: Option<&str> = $prefix;
                let key = match prefix.and_then(|p| lowered.strip_prefix(p)) {
                    Some(rest) => rest.trim_start(),
                    None => lowered.as_str(),
                };
                $(if key == $text {
                    return Ok($name::$variant);
                })+
                $(if key == $alias {
                    return Ok($name::$target);
                })*
                Err($crate::model::unknown_value($field, raw, Self::ALL.iter().map(|v| v.as_str())))
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                $crate::model::deserialize_parsed(deserializer)
            }
        }
    };
}

mod country;
mod indicator;
mod rsit;
mod source;

pub use country::CountryCode;
pub use indicator::{Indicator, IndicatorType};
pub use rsit::Classification;
pub use source::Source;

label_enum! {
    /// Traffic Light Protocol 2.0 label. Ordered by restrictiveness, so
    /// `tlp <= max_tlp` is the policy check.
    pub enum Tlp as "tlp" {
        Clear => "clear",
        Green => "green",
        Amber => "amber",
        AmberStrict => "amber+strict",
        Red => "red",
    }
    // TLP 1.0 called clear "white"; old reports and tools still say so.
    aliases: ["white" => Clear],
    strip_prefix: Some("tlp:"),
}

label_enum! {
    /// How bad an incident is. Ordered, so playbooks can say "at least high".
    pub enum Severity as "severity" {
        Low => "low",
        Medium => "medium",
        High => "high",
        Critical => "critical",
    }
    aliases: [],
    strip_prefix: None,
}

label_enum! {
    /// Where an incident is in its handling, in lifecycle order.
    pub enum Status as "status" {
        New => "new",
        Open => "open",
        Contained => "contained",
        Resolved => "resolved",
        Closed => "closed",
    }
    // IODEF's name for an incident being worked on.
    aliases: ["in-progress" => Open],
    strip_prefix: None,
}

/// An instant in UTC, written as RFC 3339 (`2026-11-28T13:00:00Z`, with
/// the fraction of a second only when there is one).
///
/// Comparisons and hashing are by instant, whatever offset the inner value
/// carries; the text form is always UTC.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

/// Local labels (tags, sector names): what [`normalize_tag`] accepts.
pub const TAG_MAX_LEN: usize = 64;

/// Who or what an incident touches.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Affected {
    /// Sector names, normalized like tags (e.g. `energy`, `health`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sectors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub countries: Vec<CountryCode>,
}

impl Tlp {
    /// Whether envelopes with this label carry an encrypted body
    /// (DESIGN §4: amber and above).
    pub fn is_encrypted(&self) -> bool {
        *self >= Tlp::Amber
    }
}

impl Timestamp {
    /// The earliest and latest instants RFC 3339 can write (four-digit
    /// years), so every Timestamp made here can be printed and read back.
    const MIN: OffsetDateTime = time::macros::datetime!(0000-01-01 00:00:00 UTC);
    const MAX: OffsetDateTime = time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC);

    /// Saturates outside years 0000..=9999 rather than failing: callers pass
    /// clock readings and arithmetic results, never user text.
    pub fn from_unix_nanos(nanos: i128) -> Self {
        let nanos = nanos.clamp(
            Self::MIN.unix_timestamp_nanos(),
            Self::MAX.unix_timestamp_nanos(),
        );
        let fallback = if nanos < 0 { Self::MIN } else { Self::MAX };
        Timestamp(OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(fallback))
    }

    pub fn unix_nanos(&self) -> i128 {
        self.0.unix_timestamp_nanos()
    }

    /// This instant plus `by`, saturating at year 9999.
    pub fn plus(&self, by: std::time::Duration) -> Self {
        let by = i128::try_from(by.as_nanos()).unwrap_or(i128::MAX);
        Timestamp::from_unix_nanos(self.unix_nanos().saturating_add(by))
    }

    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// Parses RFC 3339 with any offset and converts to UTC. Field "timestamp".
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let text = raw.trim();
        let bad = || {
            FieldError::new(
                "timestamp",
                format!(
                    "expected an RFC 3339 timestamp such as 2026-11-28T13:00:00Z, got '{}'",
                    shown(text)
                ),
            )
        };
        let parsed = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .map_err(|_| bad())?;
        let out_of_range = || {
            FieldError::new(
                "timestamp",
                format!("'{}' is outside years 0000-9999 in UTC", shown(text)),
            )
        };
        let utc = parsed
            .checked_to_offset(UtcOffset::UTC)
            .ok_or_else(out_of_range)?;
        if !(Self::MIN..=Self::MAX).contains(&utc) {
            return Err(out_of_range());
        }
        Ok(Timestamp(utc))
    }

    fn in_rfc3339_range(&self) -> bool {
        (Self::MIN..=Self::MAX).contains(&self.0)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written by hand rather than with time's formatter: that one fails
        // outside years 0000-9999, and Display must not fail. The inner
        // value is public, so it may carry any offset.
        let t = self.0.checked_to_offset(UtcOffset::UTC).unwrap_or(self.0);
        let (year, month, day) = (t.year(), u8::from(t.month()), t.day());
        let (hour, minute, second, nanos) = t.to_hms_nano();
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"
        )?;
        if nanos != 0 {
            let fraction = format!("{nanos:09}");
            write!(f, ".{}", fraction.trim_end_matches('0'))?;
        }
        let offset = t.offset();
        if offset.is_utc() {
            f.write_str("Z")
        } else {
            let (h, m, _) = offset.as_hms();
            let sign = if offset.is_negative() { '-' } else { '+' };
            write!(f, "{sign}{:02}:{:02}", h.unsigned_abs(), m.unsigned_abs())
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Timestamp::parse(s)
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Timestamp(t)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Refuse to write what could not be read back.
        if !self.in_rfc3339_range() {
            return Err(serde::ser::Error::custom(
                "timestamp is outside years 0000-9999 and cannot be written as RFC 3339",
            ));
        }
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer)
    }
}

/// Normalizes a local tag or sector name: trimmed, lower-cased ASCII,
/// 1..=64 characters of letters, digits and `- _ : . /`. Field "tag".
///
/// ASCII only, so tags are safe and unambiguous as playbook values, file
/// names in exports and CLI arguments (no look-alike letters).
pub fn normalize_tag(raw: &str) -> Result<String, FieldError> {
    let tag = raw.trim().to_ascii_lowercase();
    if tag.is_empty() {
        return Err(FieldError::new("tag", "must not be empty"));
    }
    if let Some(c) = tag
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':' | '.' | '/')))
    {
        return Err(FieldError::new(
            "tag",
            format!(
                "'{}' contains {c:?}; only letters, digits and - _ : . / are allowed",
                shown(&tag)
            ),
        ));
    }
    if tag.len() > TAG_MAX_LEN {
        return Err(FieldError::new(
            "tag",
            format!(
                "must be at most {TAG_MAX_LEN} characters, got {}",
                tag.len()
            ),
        ));
    }
    Ok(tag)
}

impl Affected {
    pub fn is_empty(&self) -> bool {
        self.sectors.is_empty() && self.countries.is_empty()
    }

    /// Checks that every sector is a normalized tag and nothing is listed
    /// twice; reports every problem, with fields like `sectors[2]`.
    /// Countries are valid by construction.
    pub fn validate(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        for (i, sector) in self.sectors.iter().enumerate() {
            let field = format!("sectors[{i}]");
            match normalize_tag(sector) {
                Err(e) => errors.push(FieldError::new(field, e.reason)),
                Ok(normal) if normal != *sector => errors.push(FieldError::new(
                    field,
                    format!("'{}' is not normalized; write '{normal}'", shown(sector)),
                )),
                Ok(_) if self.sectors[..i].contains(sector) => errors.push(FieldError::new(
                    field,
                    format!("'{sector}' is listed twice"),
                )),
                Ok(_) => {}
            }
        }
        for (i, country) in self.countries.iter().enumerate() {
            if self.countries[..i].contains(country) {
                errors.push(FieldError::new(
                    format!("countries[{i}]"),
                    format!("'{country}' is listed twice"),
                ));
            }
        }
        errors.into_result()
    }
}

/// The error for a value outside a closed set, listing the valid ones so
/// the user can fix it without looking anything up.
pub(crate) fn unknown_value(
    field: &'static str,
    raw: &str,
    valid: impl IntoIterator<Item = &'static str>,
) -> FieldError {
    let list = valid.into_iter().collect::<Vec<_>>().join(", ");
    let raw = raw.trim();
    if raw.is_empty() {
        FieldError::new(field, format!("must not be empty; valid values: {list}"))
    } else {
        FieldError::new(
            field,
            format!("unknown value '{}'; valid values: {list}", shown(raw)),
        )
    }
}

/// Input echoed in an error, cut short: values come from peers and files
/// and may be megabytes long.
pub(crate) fn shown(raw: &str) -> String {
    const MAX_CHARS: usize = 80;
    match raw.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &raw[..cut]),
        None => raw.to_owned(),
    }
}

/// Deserializes a string through `FromStr`, so serde input is validated
/// exactly like CLI input and reports the same error text.
pub(crate) fn deserialize_parsed<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct ParsedVisitor<T>(PhantomData<T>);

    impl<T> Visitor<'_> for ParsedVisitor<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(ParsedVisitor(PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tlp_parses_case_prefix_and_white() {
        assert_eq!("clear".parse::<Tlp>(), Ok(Tlp::Clear));
        assert_eq!("TLP:WHITE".parse::<Tlp>(), Ok(Tlp::Clear));
        assert_eq!("white".parse::<Tlp>(), Ok(Tlp::Clear));
        assert_eq!(" tlp:Amber+Strict ".parse::<Tlp>(), Ok(Tlp::AmberStrict));
        assert_eq!("TLP: RED".parse::<Tlp>(), Ok(Tlp::Red));
        assert_eq!("Green".parse::<Tlp>(), Ok(Tlp::Green));
    }

    #[test]
    fn tlp_refuses_unknown_with_valid_list() {
        let err = "orange".parse::<Tlp>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "tlp: unknown value 'orange'; valid values: clear, green, amber, amber+strict, red"
        );
        let err = "  ".parse::<Tlp>().unwrap_err();
        assert_eq!(err.field, "tlp");
        assert!(err.reason.starts_with("must not be empty"), "{err}");
        // The prefix is only a prefix, not a label.
        assert!("tlp:".parse::<Tlp>().is_err());
    }

    #[test]
    fn tlp_order_and_encryption() {
        assert!(Tlp::Clear < Tlp::Green);
        assert!(Tlp::Green < Tlp::Amber);
        assert!(Tlp::Amber < Tlp::AmberStrict);
        assert!(Tlp::AmberStrict < Tlp::Red);
        let encrypted: Vec<_> = Tlp::ALL.into_iter().filter(Tlp::is_encrypted).collect();
        assert_eq!(encrypted, [Tlp::Amber, Tlp::AmberStrict, Tlp::Red]);
    }

    #[test]
    fn tlp_serde_uses_canonical_text() {
        assert_eq!(
            serde_json::to_string(&Tlp::AmberStrict).unwrap(),
            "\"amber+strict\""
        );
        assert_eq!(
            serde_json::from_str::<Tlp>("\"white\"").unwrap(),
            Tlp::Clear
        );
        assert_eq!(
            serde_json::from_str::<Tlp>("\"TLP:AMBER\"").unwrap(),
            Tlp::Amber
        );
        let err = serde_json::from_str::<Tlp>("\"purple\"").unwrap_err();
        assert!(
            err.to_string().contains("tlp: unknown value 'purple'"),
            "{err}"
        );
        assert!(serde_json::from_str::<Tlp>("3").is_err());
    }

    #[test]
    fn labels_display_pads() {
        assert_eq!(format!("[{:<7}]", Tlp::Red), "[red    ]");
        assert_eq!(Severity::Critical.to_string(), "critical");
    }

    #[test]
    fn severity_parses_and_orders() {
        assert_eq!("HIGH".parse::<Severity>(), Ok(Severity::High));
        assert!(Severity::Low < Severity::Medium);
        assert!(Severity::High < Severity::Critical);
        let err = "urgent".parse::<Severity>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "severity: unknown value 'urgent'; valid values: low, medium, high, critical"
        );
    }

    #[test]
    fn status_parses_iodef_alias() {
        assert_eq!("in-progress".parse::<Status>(), Ok(Status::Open));
        assert_eq!("Contained".parse::<Status>(), Ok(Status::Contained));
        assert_eq!(Status::Open.as_str(), "open");
        let err = "done".parse::<Status>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "status: unknown value 'done'; valid values: new, open, contained, resolved, closed"
        );
    }

    #[test]
    fn every_label_round_trips_through_its_text() {
        for t in Tlp::ALL {
            assert_eq!(t.as_str().parse::<Tlp>(), Ok(t));
        }
        for s in Severity::ALL {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
        }
        for s in Status::ALL {
            assert_eq!(s.to_string().parse::<Status>(), Ok(s));
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(serde_json::from_str::<Status>(&json).unwrap(), s);
        }
    }

    #[test]
    fn timestamp_parses_rfc3339_to_utc() {
        let t: Timestamp = "2026-11-28T13:00:00Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-28T13:00:00Z");
        let shifted: Timestamp = "2026-11-28T15:00:00+02:00".parse().unwrap();
        assert_eq!(shifted, t);
        assert_eq!(shifted.to_string(), "2026-11-28T13:00:00Z");
        assert_eq!(t.unix_seconds(), 1_795_870_800);
        assert_eq!(t.unix_nanos(), 1_795_870_800_000_000_000);
    }

    #[test]
    fn timestamp_keeps_subseconds() {
        let t: Timestamp = "2026-11-28T13:00:00.250Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-28T13:00:00.25Z");
        let t: Timestamp = "2026-11-28T13:00:00.000000001Z".parse().unwrap();
        assert_eq!(t.to_string(), "2026-11-28T13:00:00.000000001Z");
        assert_eq!(t.unix_nanos() % 1_000_000_000, 1);
    }

    #[test]
    fn timestamp_refuses_garbage_and_out_of_range() {
        for bad in [
            "",
            "yesterday",
            "2026-11-28",
            "2026-11-28 13:00",
            "2026-13-01T00:00:00Z",
        ] {
            let err = bad.parse::<Timestamp>().unwrap_err();
            assert_eq!(err.field, "timestamp");
            assert!(err.reason.starts_with("expected an RFC 3339"), "{err}");
        }
        for far in ["9999-12-31T23:00:00-02:00", "0000-01-01T00:00:00+01:00"] {
            let err = far.parse::<Timestamp>().unwrap_err();
            assert!(err.reason.contains("outside years 0000-9999"), "{err}");
        }
    }

    #[test]
    fn timestamp_from_unix_nanos_saturates() {
        assert_eq!(
            Timestamp::from_unix_nanos(0).to_string(),
            "1970-01-01T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(i128::MAX).to_string(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            Timestamp::from_unix_nanos(i128::MIN).to_string(),
            "0000-01-01T00:00:00Z"
        );
    }

    #[test]
    fn timestamp_display_never_fails_for_odd_inner_values() {
        let odd = Timestamp(time::macros::datetime!(-0005-06-01 00:00:00 +01:00));
        assert!(!odd.to_string().is_empty());
        assert!(serde_json::to_string(&odd).is_err());
    }

    #[test]
    fn timestamp_serde() {
        let t: Timestamp = "2026-11-28T13:00:00.5Z".parse().unwrap();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2026-11-28T13:00:00.5Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert!(serde_json::from_str::<Timestamp>("\"soon\"").is_err());
    }

    #[test]
    fn tags_normalize() {
        assert_eq!(normalize_tag("  Energy ").unwrap(), "energy");
        assert_eq!(
            normalize_tag("misp:tlp/Amber_1.0-x").unwrap(),
            "misp:tlp/amber_1.0-x"
        );
        assert_eq!(
            normalize_tag("").unwrap_err().to_string(),
            "tag: must not be empty"
        );
        assert_eq!(
            normalize_tag("two words").unwrap_err().to_string(),
            "tag: 'two words' contains ' '; only letters, digits and - _ : . / are allowed"
        );
        assert!(normalize_tag("énergie").is_err());
        assert!(normalize_tag(&"a".repeat(64)).is_ok());
        assert_eq!(
            normalize_tag(&"a".repeat(65)).unwrap_err().reason,
            "must be at most 64 characters, got 65"
        );
    }

    #[test]
    fn affected_serde_skips_empty_and_validates_countries() {
        let empty = Affected::default();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
        assert_eq!(serde_json::from_str::<Affected>("{}").unwrap(), empty);

        let affected: Affected =
            serde_json::from_str(r#"{"sectors":["energy"],"countries":["ke","DE"]}"#).unwrap();
        assert_eq!(affected.countries[0].as_str(), "KE");
        assert_eq!(
            serde_json::to_string(&affected).unwrap(),
            r#"{"sectors":["energy"],"countries":["KE","DE"]}"#
        );
        assert!(serde_json::from_str::<Affected>(r#"{"countries":["XX"]}"#).is_err());
    }

    #[test]
    fn affected_validate_reports_every_problem() {
        let affected = Affected {
            sectors: vec![
                "Energy".into(),
                "health".into(),
                "bad sector".into(),
                "health".into(),
            ],
            countries: vec![
                CountryCode::parse("KE").unwrap(),
                CountryCode::parse("ke").unwrap(),
            ],
        };
        let errors = affected.validate().unwrap_err();
        let fields: Vec<_> = errors.0.iter().map(|e| e.field.to_string()).collect();
        assert_eq!(
            fields,
            ["sectors[0]", "sectors[2]", "sectors[3]", "countries[1]"]
        );
        assert_eq!(
            errors.0[0].reason,
            "'Energy' is not normalized; write 'energy'"
        );
        assert!(Affected::default().validate().is_ok());
    }

    #[test]
    fn shown_cuts_long_input() {
        let long = "x".repeat(1000);
        assert_eq!(shown(&long).len(), 83);
        assert_eq!(shown("short"), "short");
    }

    fn any_tlp() -> impl Strategy<Value = Tlp> {
        proptest::sample::select(Tlp::ALL.to_vec())
    }

    fn any_severity() -> impl Strategy<Value = Severity> {
        proptest::sample::select(Severity::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn tlp_serde_round_trips(tlp in any_tlp()) {
            let json = serde_json::to_string(&tlp).unwrap();
            prop_assert_eq!(serde_json::from_str::<Tlp>(&json).unwrap(), tlp);
        }

        #[test]
        fn tlp_parse_ignores_case_and_prefix(tlp in any_tlp(), upper in any::<bool>(), prefix in any::<bool>()) {
            let mut text = tlp.as_str().to_owned();
            if prefix {
                text = format!("TLP:{text}");
            }
            if upper {
                text = text.to_uppercase();
            }
            prop_assert_eq!(text.parse::<Tlp>(), Ok(tlp));
        }

        #[test]
        fn severity_serde_round_trips(severity in any_severity()) {
            let json = serde_json::to_string(&severity).unwrap();
            prop_assert_eq!(serde_json::from_str::<Severity>(&json).unwrap(), severity);
        }

        #[test]
        fn timestamp_text_round_trips(nanos in -62_167_219_200_000_000_000i128..253_402_300_800_000_000_000i128) {
            let t = Timestamp::from_unix_nanos(nanos);
            prop_assert_eq!(t.unix_nanos(), nanos);
            let text = t.to_string();
            prop_assert_eq!(text.parse::<Timestamp>().unwrap(), t);
            let json = serde_json::to_string(&t).unwrap();
            prop_assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        }

        #[test]
        fn tag_normalization_is_idempotent(raw in "[ ]{0,2}[A-Za-z0-9_:./-]{1,64}[ ]{0,2}") {
            let once = normalize_tag(&raw).unwrap();
            prop_assert_eq!(normalize_tag(&once).unwrap(), once.clone());
        }
    }
}
