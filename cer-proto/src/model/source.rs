//! Where an imported incident came from: the outside format, the id the
//! source gave it (a MISP event uuid, a STIX bundle or object id, a file
//! name), the organisation that created it there, and the file it was
//! read from. Recorded in the incident's signed body.

use serde::{Deserialize, Serialize};

use super::shown;
use crate::error::FieldError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `stix`, `misp`, `misp-feed`, `csv`, `list`, `taxii`.
    pub format: String,
    /// The source's own id for what became this incident.
    pub id: String,
    /// Who made it there (a MISP Orgc name, a STIX identity's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creator: Option<String>,
    /// The file (name only) or client it was read from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

impl Source {
    /// Longest id, creator or file name, in characters.
    pub const MAX_CHARS: usize = 256;

    pub fn validate(&self) -> Result<(), FieldError> {
        let format_ok = (1..=16).contains(&self.format.len())
            && self
                .format
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !format_ok {
            return Err(FieldError::new(
                "source.format",
                format!("'{}' is not a format name", shown(&self.format)),
            ));
        }
        for (field, text) in [
            ("source.id", Some(&self.id)),
            ("source.creator", self.creator.as_ref()),
            ("source.file", self.file.as_ref()),
        ] {
            let Some(text) = text else { continue };
            if text.trim().is_empty() {
                return Err(FieldError::new(field, "must not be empty"));
            }
            if text.chars().count() > Self::MAX_CHARS {
                return Err(FieldError::new(
                    field,
                    format!("must be at most {} characters", Self::MAX_CHARS),
                ));
            }
            if text.chars().any(char::is_control) {
                return Err(FieldError::new(
                    field,
                    "must be one line without control characters",
                ));
            }
            crate::text::check_no_bidi(field, text)?;
        }
        Ok(())
    }
}
