//! The CERT ecosystem's formats, both ways: STIX 2.1 bundles ([`stix`]),
//! MISP event JSON and MISP feeds ([`misp`]), CSV and plain lists
//! ([`csv`]).
//!
//! Pure mapping: bytes in, values out. No file, network or clock: the
//! caller reads files, passes the time in ([`ImportOptions::now`],
//! [`ExportOptions::now`]) and decides what to do with the result. cerctl
//! drives the imports and exports; cerd's TAXII server serves the same
//! STIX objects.
//!
//! **Import** gives, per incident found in the input, the filing request
//! this node would sign ([`Imported::incident`], with its
//! [`Source`](cer_proto::model::Source) recorded so that importing the same
//! event again updates the incident instead of filing a second), and every
//! item that could not be taken, with where it was and why
//! ([`ImportReport::skipped`] for what the model cannot represent,
//! [`ImportReport::invalid`] for what is wrong). A bad item never aborts
//! the import and is never half taken.
//!
//! **Export** reads incidents as this node holds them
//! ([`ExportIncident`]) and writes the format. What this node cannot read
//! is never given to an exporter.

use cer_proto::api::FileIncident;
use cer_proto::incident::IncidentState;
use cer_proto::model::{Classification, IndicatorType, Severity, Timestamp, Tlp};
use cer_proto::Fingerprint;

mod common;
pub mod csv;
pub mod misp;
pub mod stix;

/// Defaults and context for an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// For incidents whose source gives no TLP.
    pub tlp: Option<Tlp>,
    /// For incidents whose source gives no severity.
    pub severity: Option<Severity>,
    /// For incidents whose source gives no classification.
    pub classification: Option<Classification>,
    /// The file's name, recorded in each incident's source.
    pub file: Option<String>,
    /// For plain lists: the type of every line (None: detected per line).
    pub indicator_type: Option<IndicatorType>,
    pub now: Timestamp,
}

/// One incident read from the input.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    /// What this node would file; `source` is always set.
    pub incident: FileIncident,
    /// Sightings the source reports for its indicators.
    pub sightings: Vec<ImportedSighting>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSighting {
    pub kind: IndicatorType,
    pub value: String,
    pub seen: Timestamp,
    pub count: u32,
    pub comment: Option<String>,
}

/// An item not taken: where it is in the input (`line 12`, `objects[3]
/// indicator--…`, `Event.Attribute[5]`) and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub location: String,
    pub reason: String,
}

/// What an import found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportReport {
    pub incidents: Vec<Imported>,
    /// Valid in its format, but not something the model can hold (a STIX
    /// pattern joining two objects with AND, a MISP attribute type with no
    /// indicator type).
    pub skipped: Vec<Problem>,
    /// Wrong: a value that is not what its type says, a missing field.
    pub invalid: Vec<Problem>,
}

/// The whole input could not be read as the format (not JSON, not a
/// bundle, no header row).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{format}: {reason}")]
pub struct FormatError {
    pub format: &'static str,
    pub reason: String,
}

/// One incident as this node holds it, for an exporter.
#[derive(Debug, Clone, Copy)]
pub struct ExportIncident<'a> {
    pub state: &'a IncidentState,
    /// The reporting CERT's name in this node's trust store.
    pub reporter_name: Option<&'a str>,
}

/// What a source names again that the incident filed from it before does
/// not hold: indicators it lacks, and those it names with another expiry.
/// A re-import files only these, as one update.
pub fn new_since(
    wanted: Vec<cer_proto::model::Indicator>,
    held: &IncidentState,
) -> Vec<cer_proto::model::Indicator> {
    let known: std::collections::BTreeMap<
        (cer_proto::model::IndicatorType, &str),
        Option<Timestamp>,
    > = held
        .indicators
        .iter()
        .map(|i| ((i.kind, i.value.as_str()), i.valid_until))
        .collect();
    wanted
        .into_iter()
        .filter(|i| match known.get(&(i.kind, i.value.as_str())) {
            None => true,
            Some(until) => i.valid_until.is_some() && i.valid_until != *until,
        })
        .collect()
}

/// Context for an export.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub now: Timestamp,
    /// Leave out expired indicators.
    pub active_only: bool,
    /// The node writing the export (its CERT name and fingerprint).
    pub producer: (String, Fingerprint),
    /// Resolves any CERT's fingerprint to its name, where known.
    pub names: Vec<(Fingerprint, String)>,
}

/// The formats, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Stix,
    Misp,
    MispFeed,
    Csv,
    /// One value per line.
    List,
}

impl Format {
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Stix => "stix",
            Format::Misp => "misp",
            Format::MispFeed => "misp-feed",
            Format::Csv => "csv",
            Format::List => "list",
        }
    }

    /// Guesses a file's format from its first bytes: a STIX bundle
    /// (`"type": "bundle"`), a MISP event (`"Event"` or `"Attribute"`), a
    /// CSV header with a `value` column, else a list.
    pub fn detect(bytes: &[u8]) -> Format {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
        let trimmed = head.trim_start_matches('\u{feff}').trim_start();
        if trimmed.starts_with('{') || trimmed.starts_with('[') {
            let compact: String = head.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.contains("\"type\":\"bundle\"") {
                return Format::Stix;
            }
            return Format::Misp;
        }
        let first = trimmed.lines().next().unwrap_or("").to_ascii_lowercase();
        let columns: Vec<&str> = first
            .split(',')
            .map(|c| c.trim().trim_matches('"'))
            .collect();
        // A header naming a value column is CSV (the type may be guessed
        // per row); without one, the first line is a value like the rest.
        if columns.contains(&"value") {
            return Format::Csv;
        }
        Format::List
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        match text.trim() {
            "stix" => Ok(Format::Stix),
            "misp" => Ok(Format::Misp),
            "misp-feed" => Ok(Format::MispFeed),
            "csv" => Ok(Format::Csv),
            "list" => Ok(Format::List),
            other => Err(format!(
                "unknown format '{other}'; valid formats: stix, misp, misp-feed, csv, list"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_from_their_first_bytes() {
        assert_eq!(
            Format::detect(br#"{ "type" : "bundle", "id": "bundle--1" }"#),
            Format::Stix
        );
        assert_eq!(Format::detect(br#"{"Event": {"info": "x"}}"#), Format::Misp);
        assert_eq!(
            Format::detect(b"type,value,comment\nipv4,192.0.2.1,x\n"),
            Format::Csv
        );
        assert_eq!(Format::detect(b"192.0.2.1\nevil.example\n"), Format::List);
        assert_eq!(Format::detect(b"value,comment\n192.0.2.1,x\n"), Format::Csv);
    }
}
