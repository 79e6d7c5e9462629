//! Identifiers: node fingerprints and envelope ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FieldError;

/// A CERT's identity: the primary-key fingerprint of its OpenPGP
/// certificate, as 40 upper-case hex digits (v4 keys).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Fingerprint(String);

impl Fingerprint {
    /// Length of a v4 fingerprint in hex digits.
    pub const HEX_LEN: usize = 40;

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        let cleaned = cleaned.strip_prefix("0x").unwrap_or(&cleaned);
        if cleaned.len() != Self::HEX_LEN {
            return Err(FieldError::new(
                "fingerprint",
                format!(
                    "must be {} hex digits, got {}",
                    Self::HEX_LEN,
                    cleaned.len()
                ),
            ));
        }
        if !cleaned.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(FieldError::new(
                "fingerprint",
                "must contain only hex digits",
            ));
        }
        Ok(Fingerprint(cleaned.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last 16 hex digits, the conventional short form (key id).
    pub fn short(&self) -> &str {
        &self.0[self.0.len() - 16..]
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The 20 raw bytes, for compact binary encodings.
    pub fn to_raw(&self) -> [u8; 20] {
        let mut raw = [0u8; 20];
        // parse admits exactly 40 hex digits, so this cannot fail.
        hex::decode_to_slice(&self.0, &mut raw).expect("a Fingerprint is 40 hex digits");
        raw
    }

    pub fn from_raw(raw: &[u8; 20]) -> Fingerprint {
        Fingerprint(hex::encode_upper(raw))
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Fingerprint::parse(&s)
    }
}

impl From<Fingerprint> for String {
    fn from(f: Fingerprint) -> String {
        f.0
    }
}

impl FromStr for Fingerprint {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// An envelope's id: the SHA-256 of its exact bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EnvelopeId([u8; 32]);

impl EnvelopeId {
    pub fn of(bytes: &[u8]) -> Self {
        EnvelopeId(Sha256::digest(bytes).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        EnvelopeId(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn parse(s: &str) -> Result<Self, FieldError> {
        if s.len() != 64 {
            return Err(FieldError::new(
                "envelope id",
                format!("must be 64 hex digits, got {}", s.len()),
            ));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| FieldError::new("envelope id", "must contain only hex digits"))?;
        Ok(EnvelopeId(out))
    }
}

impl TryFrom<String> for EnvelopeId {
    type Error = FieldError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        EnvelopeId::parse(&s)
    }
}

impl From<EnvelopeId> for String {
    fn from(id: EnvelopeId) -> String {
        id.to_hex()
    }
}

impl FromStr for EnvelopeId {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EnvelopeId::parse(s)
    }
}

impl fmt::Display for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EnvelopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EnvelopeId({})", &self.to_hex()[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_normalises_case_and_spaces() {
        let f = Fingerprint::parse("0123 4567 89ab cdef 0123  4567 89AB CDEF 0123 4567").unwrap();
        assert_eq!(f.as_str(), "0123456789ABCDEF0123456789ABCDEF01234567");
        assert_eq!(f.short(), "89ABCDEF01234567");
    }

    #[test]
    fn fingerprint_refuses_wrong_length_and_non_hex() {
        let e = Fingerprint::parse("ABCD").unwrap_err();
        assert_eq!(e.to_string(), "fingerprint: must be 40 hex digits, got 4");
        let e = Fingerprint::parse(&"G".repeat(40)).unwrap_err();
        assert!(e.to_string().contains("hex"));
    }

    #[test]
    fn envelope_id_round_trips() {
        let id = EnvelopeId::of(b"hello");
        assert_eq!(
            id.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(EnvelopeId::parse(&id.to_hex()).unwrap(), id);
    }
}
