//! Incident classification by the Reference Security Incident Taxonomy
//! (RSIT, TF-CSIRT working group), as `class/type` strings, and the
//! patterns playbooks match them with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{deserialize_parsed, shown, unknown_value};
use crate::error::FieldError;

/// One RSIT `class/type`, e.g. `malicious-code/c2-server`.
///
/// Holds a reference into [`Classification::ALL`], so cloning is free and
/// it can only ever be a valid value. (Not `Copy`, to keep the freedom to
/// hold an owned string if the taxonomy ever becomes configurable.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Classification(&'static str);

impl Classification {
    /// Every valid `class/type`, in the taxonomy's order.
    pub const ALL: &'static [&'static str] = &[
        "abusive-content/spam",
        "abusive-content/harmful-speech",
        "abusive-content/violence",
        "malicious-code/infected-system",
        "malicious-code/c2-server",
        "malicious-code/malware-distribution",
        "malicious-code/malware-configuration",
        "information-gathering/scanner",
        "information-gathering/sniffing",
        "information-gathering/social-engineering",
        "intrusion-attempts/ids-alert",
        "intrusion-attempts/brute-force",
        "intrusion-attempts/exploit",
        "intrusions/privileged-account-compromise",
        "intrusions/unprivileged-account-compromise",
        "intrusions/application-compromise",
        "intrusions/system-compromise",
        "intrusions/burglary",
        "availability/dos",
        "availability/ddos",
        "availability/misconfiguration",
        "availability/sabotage",
        "availability/outage",
        "information-content-security/unauthorised-information-access",
        "information-content-security/unauthorised-information-modification",
        "information-content-security/data-loss",
        "information-content-security/data-leak",
        "fraud/unauthorised-use-of-resources",
        "fraud/copyright",
        "fraud/masquerade",
        "fraud/phishing",
        "vulnerable/weak-crypto",
        "vulnerable/ddos-amplifier",
        "vulnerable/potentially-unwanted-accessible",
        "vulnerable/information-disclosure",
        "vulnerable/vulnerable-system",
        "other/other",
        "other/undetermined",
        "test/test",
    ];

    /// Case-insensitive, trimmed. Field "classification".
    ///
    /// Also accepts the American "unauthorized-…" spelling, which RSIT used
    /// before 2020 and MISP's taxonomy still uses, so imports keep working.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let wanted = raw
            .trim()
            .to_ascii_lowercase()
            .replace("/unauthorized-", "/unauthorised-");
        Self::ALL
            .iter()
            .find(|c| **c == wanted)
            .map(|c| Classification(c))
            .ok_or_else(|| unknown_value("classification", raw, Self::ALL.iter().copied()))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }

    /// The class, e.g. `malicious-code`.
    pub fn class(&self) -> &'static str {
        self.0.split_once('/').map_or(self.0, |(class, _)| class)
    }

    /// The type within the class, e.g. `c2-server`.
    pub fn kind(&self) -> &'static str {
        self.0.split_once('/').map_or(self.0, |(_, kind)| kind)
    }

    /// Whether this classification matches a playbook pattern: `class/type`,
    /// `class/*` or `*` (case-insensitive). A malformed pattern matches
    /// nothing; check patterns up front with [`Classification::check_pattern`].
    pub fn matches(&self, pattern: &str) -> bool {
        let pattern = pattern.trim().to_ascii_lowercase();
        if pattern == "*" {
            return true;
        }
        if let Some(class) = pattern.strip_suffix("/*") {
            return self.class() == class;
        }
        Classification::parse(&pattern).is_ok_and(|c| c == *self)
    }

    /// Refuses a pattern that could never match, so a typo in a playbook
    /// is reported when it is loaded instead of silently matching nothing.
    pub fn check_pattern(pattern: &str) -> Result<(), FieldError> {
        let lowered = pattern.trim().to_ascii_lowercase();
        if lowered == "*" {
            return Ok(());
        }
        if let Some(class) = lowered.strip_suffix("/*") {
            let classes = Self::classes();
            if classes.contains(&class) {
                return Ok(());
            }
            return Err(FieldError::new(
                "classification",
                format!(
                    "unknown class '{}' in pattern '{}'; valid classes: {}",
                    shown(class),
                    shown(pattern.trim()),
                    classes.join(", ")
                ),
            ));
        }
        Classification::parse(pattern).map(|_| ())
    }

    /// Every class, in the taxonomy's order.
    pub fn classes() -> Vec<&'static str> {
        let mut classes: Vec<&'static str> = Vec::new();
        for c in Self::ALL {
            let class = c.split_once('/').map_or(*c, |(class, _)| class);
            if classes.last() != Some(&class) {
                classes.push(class);
            }
        }
        classes
    }
}

impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl FromStr for Classification {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        Classification::parse(s)
    }
}

impl Serialize for Classification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for Classification {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn taxonomy_is_complete_and_well_formed() {
        assert_eq!(Classification::ALL.len(), 39);
        assert_eq!(
            Classification::classes(),
            [
                "abusive-content",
                "malicious-code",
                "information-gathering",
                "intrusion-attempts",
                "intrusions",
                "availability",
                "information-content-security",
                "fraud",
                "vulnerable",
                "other",
                "test",
            ]
        );
        for (i, c) in Classification::ALL.iter().enumerate() {
            assert_eq!(c.matches('/').count(), 1, "{c}");
            assert_eq!(*c, c.to_ascii_lowercase());
            assert!(!Classification::ALL[..i].contains(c), "duplicate {c}");
        }
    }

    #[test]
    fn parses_case_insensitively_and_trims() {
        let c = Classification::parse("  Malicious-Code/C2-Server ").unwrap();
        assert_eq!(c.as_str(), "malicious-code/c2-server");
        assert_eq!(c.class(), "malicious-code");
        assert_eq!(c.kind(), "c2-server");
        assert_eq!(c.to_string(), "malicious-code/c2-server");
        assert_eq!(
            "test/test".parse::<Classification>().unwrap().kind(),
            "test"
        );
    }

    #[test]
    fn accepts_american_spelling() {
        assert_eq!(
            Classification::parse("fraud/unauthorized-use-of-resources")
                .unwrap()
                .as_str(),
            "fraud/unauthorised-use-of-resources"
        );
        assert_eq!(
            Classification::parse("information-content-security/unauthorized-information-access")
                .unwrap()
                .as_str(),
            "information-content-security/unauthorised-information-access"
        );
    }

    #[test]
    fn refuses_unknown_with_valid_list() {
        let err = Classification::parse("foo/bar").unwrap_err();
        assert_eq!(err.field, "classification");
        assert!(
            err.reason
                .starts_with("unknown value 'foo/bar'; valid values: abusive-content/spam, "),
            "{err}"
        );
        assert!(
            err.reason.ends_with("other/undetermined, test/test"),
            "{err}"
        );
        assert!(Classification::parse("fraud").is_err());
        assert!(Classification::parse("fraud/").is_err());
        assert!(Classification::parse("")
            .unwrap_err()
            .reason
            .starts_with("must not be empty"));
    }

    #[test]
    fn pattern_matching() {
        let c = Classification::parse("malicious-code/c2-server").unwrap();
        assert!(c.matches("*"));
        assert!(c.matches("malicious-code/*"));
        assert!(c.matches("Malicious-Code/*"));
        assert!(c.matches("malicious-code/c2-server"));
        assert!(!c.matches("malicious-code/malware-distribution"));
        assert!(!c.matches("fraud/*"));
        assert!(!c.matches("malicious-code"));
        assert!(!c.matches("*/c2-server"));
        assert!(!c.matches(""));
    }

    #[test]
    fn pattern_checking() {
        assert!(Classification::check_pattern("*").is_ok());
        assert!(Classification::check_pattern("fraud/*").is_ok());
        assert!(Classification::check_pattern("fraud/phishing").is_ok());
        let err = Classification::check_pattern("malicous-code/*").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "classification: unknown class 'malicous-code' in pattern 'malicous-code/*'; valid classes: abusive-content, "
            ),
            "{err}"
        );
        assert!(Classification::check_pattern("fraud/fishing").is_err());
    }

    #[test]
    fn serde_validates() {
        let c: Classification = serde_json::from_str("\"availability/ddos\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"availability/ddos\"");
        let err = serde_json::from_str::<Classification>("\"availability/flood\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown value 'availability/flood'"),
            "{err}"
        );
    }

    fn any_classification() -> impl Strategy<Value = Classification> {
        proptest::sample::select(Classification::ALL.to_vec()).prop_map(Classification)
    }

    proptest! {
        #[test]
        fn serde_round_trips(c in any_classification()) {
            let json = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(serde_json::from_str::<Classification>(&json).unwrap(), c);
        }

        #[test]
        fn parse_ignores_case(c in any_classification(), flips in proptest::collection::vec(any::<bool>(), 80)) {
            let mixed: String = c
                .as_str()
                .chars()
                .zip(flips.iter().cycle())
                .map(|(ch, up)| if *up { ch.to_ascii_uppercase() } else { ch })
                .collect();
            prop_assert_eq!(Classification::parse(&mixed).unwrap(), c.clone());
            prop_assert!(c.matches(&mixed));
            let class_pattern = format!("{}/*", c.class());
            prop_assert!(c.matches(&class_pattern));
        }
    }
}
