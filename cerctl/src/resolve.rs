//! What an analyst types for things the API names by full identifier: a
//! CERT by name, full or short fingerprint (as `cerctl peers` shows it),
//! an incident by a unique prefix of its id (as `git` takes commits).
//!
//! Resolved here, against the API's own listings (`GET /v1/certs`,
//! `GET /v1/incidents`), so the daemon keeps taking full identifiers
//! only. Pure functions over those listings; the commands fetch them.

use cer_proto::api::{CertList, IncidentList};
use cer_proto::Fingerprint;
use uuid::Uuid;

/// Fewest hex digits taken as an incident id prefix: fewer would match
/// by chance once a node holds a few thousand incidents.
pub const MIN_ID_PREFIX: usize = 6;

/// Fewest hex digits taken for a fingerprint: the last 16 (the key id),
/// which `cerctl peers` and the listings show.
pub const MIN_FINGERPRINT_DIGITS: usize = 16;

/// How many candidates an ambiguity names.
const SHOWN_CANDIDATES: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no {what} matches '{given}'{hint}")]
    NoMatch {
        what: &'static str,
        given: String,
        hint: String,
    },
    #[error("'{given}' matches {count} {what}s ({}); give more of it", candidates.join(", "))]
    Ambiguous {
        what: &'static str,
        given: String,
        count: usize,
        candidates: Vec<String>,
    },
    #[error("'{given}' is too short to name an incident: give the full id or at least {MIN_ID_PREFIX} of its hex digits")]
    TooShort { given: String },
    #[error("'{given}' is not an incident id: expected a UUID or a prefix of one (hex digits)")]
    NotAnId { given: String },
}

impl ResolveError {
    /// The code `--json` reports.
    pub fn code(&self) -> &'static str {
        match self {
            ResolveError::NoMatch { .. } => "not_found",
            ResolveError::Ambiguous { .. } => "ambiguous",
            ResolveError::TooShort { .. } | ResolveError::NotAnId { .. } => "usage",
        }
    }
}

/// An incident id as given: complete, or a prefix to look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdArg {
    Full(Uuid),
    /// Lower-case hex digits, dashes removed.
    Prefix(String),
}

/// Checks an incident id argument without the daemon: a full UUID, or at
/// least [`MIN_ID_PREFIX`] hex digits (dashes where a UUID has them are
/// allowed).
pub fn id_arg(given: &str) -> Result<IdArg, ResolveError> {
    let given = given.trim();
    if let Ok(id) = Uuid::parse_str(given) {
        return Ok(IdArg::Full(id));
    }
    let digits: String = given
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_hexdigit()) || digits.len() > 32 {
        return Err(ResolveError::NotAnId {
            given: given.to_owned(),
        });
    }
    if digits.len() < MIN_ID_PREFIX {
        return Err(ResolveError::TooShort {
            given: given.to_owned(),
        });
    }
    Ok(IdArg::Prefix(digits))
}

/// The one incident in `list` whose id starts with `prefix` (from
/// [`id_arg`]).
pub fn incident(given: &str, prefix: &str, list: &IncidentList) -> Result<Uuid, ResolveError> {
    let matches: Vec<Uuid> = list
        .incidents
        .iter()
        .map(|i| i.id)
        .filter(|id| id.simple().to_string().starts_with(prefix))
        .collect();
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(ResolveError::NoMatch {
            what: "incident",
            given: given.trim().to_owned(),
            hint: if list.truncated {
                format!(
                    " among the {} most recently updated incidents; give the full id",
                    list.incidents.len()
                )
            } else {
                String::new()
            },
        }),
        many => Err(ResolveError::Ambiguous {
            what: "incident",
            given: given.trim().to_owned(),
            count: many.len(),
            candidates: many
                .iter()
                .take(SHOWN_CANDIDATES)
                .map(Uuid::to_string)
                .collect(),
        }),
    }
}

/// A full fingerprint as given, when it is one: nothing to look up.
pub fn full_fingerprint(given: &str) -> Option<Fingerprint> {
    Fingerprint::parse(given.trim()).ok()
}

/// The one trusted CERT that `given` names: by name (any case), or by at
/// least [`MIN_FINGERPRINT_DIGITS`] trailing hex digits of its
/// fingerprint, like the short form listings show (spaces ignored, any
/// case).
pub fn cert(given: &str, certs: &CertList) -> Result<Fingerprint, ResolveError> {
    let given = given.trim();
    if let Some(fingerprint) = full_fingerprint(given) {
        return Ok(fingerprint);
    }
    let hex: String = given
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let by_digits =
        hex.len() >= MIN_FINGERPRINT_DIGITS && hex.chars().all(|c| c.is_ascii_hexdigit());
    let matches: Vec<&cer_proto::api::CertInfo> = certs
        .certs
        .iter()
        .filter(|c| {
            c.name.eq_ignore_ascii_case(given)
                || (by_digits && c.fingerprint.as_str().ends_with(&hex))
        })
        .collect();
    match matches.as_slice() {
        [one] => Ok(one.fingerprint.clone()),
        [] => Err(ResolveError::NoMatch {
            what: "trusted certificate",
            given: crate::render::one_line(given),
            hint: format!(
                " (give a CERT name, a full fingerprint, or its last {MIN_FINGERPRINT_DIGITS} hex digits as `cerctl peers` shows them)"
            ),
        }),
        many => Err(ResolveError::Ambiguous {
            what: "trusted certificate",
            given: crate::render::one_line(given),
            count: many.len(),
            candidates: many
                .iter()
                .take(SHOWN_CANDIDATES)
                .map(|c| format!("{} {}", crate::render::one_line(&c.name), c.fingerprint))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::api::{CertInfo, IncidentSummary};
    use cer_proto::model::Tlp;

    fn summary(id: &str) -> IncidentSummary {
        IncidentSummary {
            id: Uuid::parse_str(id).unwrap(),
            title: "t".into(),
            severity: None,
            tlp: Tlp::Green,
            classification: None,
            status: None,
            reporter: None,
            reporter_name: None,
            filed: None,
            updated: "2026-11-28T12:00:00Z".parse().unwrap(),
            indicators: 0,
            readable: true,
            retracted: false,
        }
    }

    fn list(truncated: bool) -> IncidentList {
        IncidentList {
            incidents: vec![
                summary("0192ab3c-1f00-7000-8000-000000000001"),
                summary("0192ab3c-2f00-7000-8000-000000000002"),
                summary("7a00ff00-0000-4000-8000-000000000003"),
            ],
            truncated,
        }
    }

    fn resolve(given: &str, list: &IncidentList) -> Result<Uuid, ResolveError> {
        match id_arg(given)? {
            IdArg::Full(id) => Ok(id),
            IdArg::Prefix(prefix) => incident(given, &prefix, list),
        }
    }

    #[test]
    fn a_unique_prefix_names_one_incident() {
        let list = list(false);
        assert_eq!(
            resolve("7A00FF", &list).unwrap().to_string(),
            "7a00ff00-0000-4000-8000-000000000003"
        );
        assert_eq!(
            resolve("0192ab3c-1f", &list).unwrap().to_string(),
            "0192ab3c-1f00-7000-8000-000000000001"
        );
        let full = "99999999-0000-4000-8000-000000000000";
        assert_eq!(resolve(full, &list).unwrap().to_string(), full);
    }

    #[test]
    fn ambiguous_short_unknown_and_malformed_prefixes_say_so() {
        let list = list(false);
        let err = resolve("0192ab", &list).unwrap_err();
        assert!(
            matches!(err, ResolveError::Ambiguous { count: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("0192ab3c-1f00-7000-8000-000000000001"),
            "{err}"
        );
        let err = resolve("0192a", &list).unwrap_err();
        assert!(matches!(err, ResolveError::TooShort { .. }), "{err}");
        assert!(err.to_string().contains("at least 6"), "{err}");
        let err = resolve("abcdefx", &list).unwrap_err();
        assert!(matches!(err, ResolveError::NotAnId { .. }), "{err}");
        let err = resolve("deadbeef", &list).unwrap_err();
        assert_eq!(err.to_string(), "no incident matches 'deadbeef'");
        let err = resolve("deadbeef", &self::list(true)).unwrap_err();
        assert!(err.to_string().contains("3 most recently updated"), "{err}");
    }

    fn certs() -> CertList {
        let cert = |name: &str, fpr: String| CertInfo {
            name: name.into(),
            fingerprint: Fingerprint::parse(&fpr).unwrap(),
            own: false,
            can_encrypt: true,
            expires: None,
            revoked: None,
            key: None,
        };
        CertList {
            certs: vec![
                cert("KE-CIRT", format!("{}{}", "1".repeat(24), "AB".repeat(8))),
                cert("NG-CERT", format!("{}{}", "2".repeat(24), "AB".repeat(8))),
                cert("GH-CERT", "C".repeat(40)),
            ],
            refused: vec![],
        }
    }

    #[test]
    fn certs_are_found_by_name_short_or_full_fingerprint() {
        let certs = certs();
        assert_eq!(
            cert("ke-cirt", &certs).unwrap().to_string(),
            format!("{}{}", "1".repeat(24), "AB".repeat(8))
        );
        assert_eq!(
            cert("cccccccccccccccc", &certs).unwrap().to_string(),
            "C".repeat(40)
        );
        // A full fingerprint needs no listing, trusted or not: the daemon says.
        assert_eq!(
            cert(&"D".repeat(40), &certs).unwrap().to_string(),
            "D".repeat(40)
        );
        let err = cert(&"AB".repeat(8), &certs).unwrap_err();
        assert!(
            matches!(err, ResolveError::Ambiguous { count: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("KE-CIRT") && err.to_string().contains("NG-CERT"),
            "{err}"
        );
        let err = cert("CCCC", &certs).unwrap_err();
        assert!(matches!(err, ResolveError::NoMatch { .. }), "{err}");
        assert!(err.to_string().contains("16 hex digits"), "{err}");
    }
}
