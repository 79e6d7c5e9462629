//! ISO 3166-1 alpha-2 country codes, checked against the embedded list of
//! officially assigned codes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{deserialize_parsed, shown};
use crate::error::FieldError;

/// An officially assigned ISO 3166-1 alpha-2 code, upper-case (e.g. `KE`).
///
/// Holds a reference into the embedded table, so cloning is free and it
/// can only ever be an assigned code.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CountryCode(&'static str);

/// The 249 officially assigned codes, sorted for binary search. Reserved
/// codes (EU, UK, EL, ...) are left out on purpose: they are not
/// countries in ISO 3166-1 and other tools (STIX, MISP) would refuse them.
const ASSIGNED: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// Codes people commonly write that ISO reserves for another use, with the
/// assigned code they most likely mean.
const RESERVED_HINTS: [(&str, &str); 2] = [("EL", "GR"), ("UK", "GB")];

impl CountryCode {
    /// Trimmed and case-insensitive. Field "country".
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let code = raw.trim().to_ascii_uppercase();
        if code.is_empty() {
            return Err(FieldError::new("country", "must not be empty"));
        }
        if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(FieldError::new(
                "country",
                format!(
                    "'{}' is not a two-letter ISO 3166-1 alpha-2 code such as KE or DE",
                    shown(raw.trim())
                ),
            ));
        }
        if let Ok(i) = ASSIGNED.binary_search(&code.as_str()) {
            return Ok(CountryCode(ASSIGNED[i]));
        }
        let hint = RESERVED_HINTS
            .iter()
            .find(|(reserved, _)| *reserved == code)
            .map(|(_, meant)| format!("; did you mean {meant}?"))
            .unwrap_or_default();
        Err(FieldError::new(
            "country",
            format!("'{code}' is not an assigned ISO 3166-1 alpha-2 code{hint}"),
        ))
    }

    pub fn as_str(&self) -> &'static str {
        self.0
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.0)
    }
}

impl FromStr for CountryCode {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, FieldError> {
        CountryCode::parse(s)
    }
}

impl Serialize for CountryCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for CountryCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table_is_sorted_and_well_formed() {
        assert!(ASSIGNED.windows(2).all(|w| w[0] < w[1]));
        assert!(ASSIGNED
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())));
        for (reserved, meant) in RESERVED_HINTS {
            assert!(ASSIGNED.binary_search(&reserved).is_err());
            assert!(ASSIGNED.binary_search(&meant).is_ok());
        }
    }

    #[test]
    fn accepts_assigned_codes_in_any_case() {
        assert_eq!(CountryCode::parse("KE").unwrap().as_str(), "KE");
        assert_eq!(CountryCode::parse(" de ").unwrap().as_str(), "DE");
        assert_eq!(CountryCode::parse("Ax").unwrap().to_string(), "AX");
        // Recent assignments (2010 and 2011).
        assert!(CountryCode::parse("SS").is_ok());
        assert!(CountryCode::parse("BQ").is_ok());
    }

    #[test]
    fn refuses_unassigned_and_malformed() {
        assert_eq!(
            CountryCode::parse("XX").unwrap_err().to_string(),
            "country: 'XX' is not an assigned ISO 3166-1 alpha-2 code"
        );
        assert_eq!(
            CountryCode::parse("uk").unwrap_err().to_string(),
            "country: 'UK' is not an assigned ISO 3166-1 alpha-2 code; did you mean GB?"
        );
        assert_eq!(
            CountryCode::parse("KEN").unwrap_err().to_string(),
            "country: 'KEN' is not a two-letter ISO 3166-1 alpha-2 code such as KE or DE"
        );
        assert!(CountryCode::parse("").is_err());
        assert!(CountryCode::parse("K1").is_err());
        assert!(CountryCode::parse("ÄÖ").is_err());
        // Withdrawn codes are no longer assigned.
        assert!(CountryCode::parse("AN").is_err());
        assert!(CountryCode::parse("YU").is_err());
        assert!(CountryCode::parse("EU").is_err());
    }

    #[test]
    fn serde_validates() {
        let code: CountryCode = serde_json::from_str("\"ke\"").unwrap();
        assert_eq!(serde_json::to_string(&code).unwrap(), "\"KE\"");
        let err = serde_json::from_str::<CountryCode>("\"ZZ\"").unwrap_err();
        assert!(err.to_string().starts_with("country: 'ZZ'"), "{err}");
    }

    proptest! {
        #[test]
        fn parse_is_idempotent_and_round_trips(code in proptest::sample::select(ASSIGNED.to_vec()), lower in any::<bool>()) {
            let text = if lower { code.to_ascii_lowercase() } else { code.to_owned() };
            let parsed = CountryCode::parse(&text).unwrap();
            prop_assert_eq!(parsed.as_str(), code);
            prop_assert_eq!(CountryCode::parse(parsed.as_str()).unwrap(), parsed.clone());
            let json = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(serde_json::from_str::<CountryCode>(&json).unwrap(), parsed);
        }

        #[test]
        fn any_two_letters_parse_or_refuse_cleanly(text in "[A-Za-z]{2}") {
            match CountryCode::parse(&text) {
                Ok(code) => prop_assert_eq!(code.as_str(), text.to_ascii_uppercase()),
                Err(e) => prop_assert_eq!(e.field, "country"),
            }
        }
    }
}
