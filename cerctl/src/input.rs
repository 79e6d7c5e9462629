//! Reading incidents that analysts write in files: YAML or JSON, from a
//! path or stdin.
//!
//! This module owns serde-saphyr; nothing else in cerctl parses YAML.
//! Everything here is checked before any connection to the daemon is
//! made, and syntax errors carry the line and column.

use std::fmt;
use std::io::Read;
use std::path::Path;

use cer_proto::api::FileIncident;
use cer_proto::model::normalize_tag;
use cer_proto::FieldErrors;

/// Largest input file read. Well above what one envelope can carry
/// (`cer_proto::envelope::MAX_ENVELOPE_BYTES`), so the daemon, not this
/// limit, is what refuses a large incident.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;

/// Why an input file is not a usable incident.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("cannot read {name}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name} is larger than {} MiB", MAX_INPUT_BYTES / (1024 * 1024))]
    TooLarge { name: String },
    #[error("{name} is not UTF-8 text")]
    NotUtf8 { name: String },
    #[error("{name} is empty; expected an incident in YAML or JSON")]
    Empty { name: String },
    /// The text does not parse as an incident. `location` is (line,
    /// column), both from 1, when the parser knows it.
    #[error("{name}: invalid {format}{}: {message}", at(*location))]
    Syntax {
        name: String,
        format: Format,
        location: Option<(u64, u64)>,
        message: String,
    },
    /// The incident parses but some fields are refused.
    /// (The field problems are the source, so a cause chain shows them once.)
    #[error("{name}: invalid incident")]
    Invalid {
        name: String,
        #[source]
        errors: FieldErrors,
    },
}

impl InputError {
    /// The code `--json` reports.
    pub fn code(&self) -> &'static str {
        match self {
            InputError::Invalid { .. } => "invalid_field",
            _ => "invalid_input",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        })
    }
}

/// Reads a [`FileIncident`] from `path`, or from `stdin` when the path is
/// `-`, then normalizes and checks it (see [`parse_file_incident`]).
pub fn read_file_incident(
    path: &Path,
    stdin: &mut (dyn Read + Send),
) -> Result<FileIncident, InputError> {
    let (name, bytes) = if path.as_os_str() == "-" {
        ("stdin".to_owned(), read_bounded(stdin, "stdin")?)
    } else {
        let name = path.display().to_string();
        let mut file = std::fs::File::open(path).map_err(|source| InputError::Read {
            name: name.clone(),
            source,
        })?;
        let bytes = read_bounded(&mut file, &name)?;
        (name, bytes)
    };
    let text = String::from_utf8(bytes).map_err(|_| InputError::NotUtf8 { name: name.clone() })?;
    parse_file_incident(&text, &name)
}

/// Parses an incident as JSON when the first non-blank character is `{`,
/// as YAML otherwise. Tags and sectors are normalized (as the flags are),
/// then every field is checked as the daemon will check it, so mistakes
/// are reported all at once and before anything is sent.
pub fn parse_file_incident(text: &str, name: &str) -> Result<FileIncident, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::Empty {
            name: name.to_owned(),
        });
    }
    let mut incident: FileIncident = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| json_error(name, &e))?
    } else {
        serde_saphyr::from_str(text).map_err(|e| yaml_error(name, &e))?
    };
    normalize(&mut incident);
    incident.to_body().map_err(|errors| InputError::Invalid {
        name: name.to_owned(),
        errors,
    })?;
    Ok(incident)
}

/// Lower-cases tags and sectors the way `--tag` and `--sector` do. Values
/// that cannot be normalized are left alone for validation to report.
pub fn normalize(incident: &mut FileIncident) {
    for tag in incident
        .tags
        .iter_mut()
        .chain(incident.affected.sectors.iter_mut())
    {
        if let Ok(normal) = normalize_tag(tag) {
            *tag = normal;
        }
    }
}

fn read_bounded(reader: &mut (dyn Read + Send), name: &str) -> Result<Vec<u8>, InputError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_INPUT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| InputError::Read {
            name: name.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(InputError::TooLarge {
            name: name.to_owned(),
        });
    }
    Ok(bytes)
}

fn json_error(name: &str, e: &serde_json::Error) -> InputError {
    let (line, column) = (e.line() as u64, e.column() as u64);
    let message = e.to_string();
    // serde_json appends the location itself; it is shown once, up front.
    let suffix = format!(" at line {line} column {column}");
    let message = message.strip_suffix(&suffix).unwrap_or(&message).to_owned();
    InputError::Syntax {
        name: name.to_owned(),
        format: Format::Json,
        location: (line > 0).then_some((line, column)),
        message,
    }
}

fn yaml_error(name: &str, e: &serde_saphyr::Error) -> InputError {
    let location = e
        .location()
        .map(|l| (l.line(), l.column()))
        .filter(|(line, _)| *line > 0);
    let options = serde_saphyr::render_options! {
        formatter: &serde_saphyr::UserMessageFormatter,
        snippets: serde_saphyr::SnippetMode::Off,
    };
    let mut message = e.render_with_options(options);
    if let Some((line, column)) = location {
        let suffix = format!(" at line {line}, column {column}");
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_owned();
        }
    }
    InputError::Syntax {
        name: name.to_owned(),
        format: Format::Yaml,
        location,
        message,
    }
}

fn at(location: Option<(u64, u64)>) -> String {
    match location {
        Some((line, column)) => format!(" at line {line}, column {column}"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::model::{Severity, Tlp};

    const YAML: &str = "\
title: C2 server at 203.0.113.7
severity: high
tlp: green
classification: malicious-code/c2-server
tags: [Botnet, c2]
affected:
  sectors: [Energy]
  countries: [KE]
";

    #[test]
    fn reads_yaml_and_normalizes_tags() {
        let incident = parse_file_incident(YAML, "incident.yaml").unwrap();
        assert_eq!(incident.severity, Severity::High);
        assert_eq!(incident.tlp, Tlp::Green);
        assert_eq!(incident.tags, ["botnet", "c2"]);
        assert_eq!(incident.affected.sectors, ["energy"]);
    }

    #[test]
    fn reads_json_when_it_starts_with_a_brace() {
        let json = r#"
            {"title": "Phishing kit", "severity": "medium", "tlp": "clear",
             "classification": "fraud/phishing"}"#;
        let incident = parse_file_incident(json, "incident.json").unwrap();
        assert_eq!(incident.title, "Phishing kit");
        assert_eq!(incident.tlp, Tlp::Clear);
    }

    #[test]
    fn yaml_errors_carry_line_and_column() {
        let bad = "title: x\nseverity: high\ntlp: [green\n";
        let err = parse_file_incident(bad, "incident.yaml").unwrap_err();
        let InputError::Syntax {
            location, format, ..
        } = &err
        else {
            panic!("expected a syntax error, got {err:?}");
        };
        assert_eq!(*format, Format::Yaml);
        let (line, _) = location.expect("a location");
        assert!(line >= 3, "{err}");
        assert!(
            err.to_string().contains(&format!("line {line}, column")),
            "{err}"
        );
    }

    #[test]
    fn yaml_value_errors_name_the_line_and_the_valid_values() {
        let bad = YAML.replace("severity: high", "severity: hgih");
        let err = parse_file_incident(&bad, "incident.yaml").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("line 2, column"), "{message}");
        assert!(message.contains("critical"), "{message}");
    }

    #[test]
    fn json_errors_carry_line_and_column_once() {
        let bad = "{\"title\": \"x\",\n \"severity\": }";
        let err = parse_file_incident(bad, "incident.json").unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("incident.json: invalid JSON at line 2, column"),
            "{message}"
        );
        assert_eq!(message.matches("line").count(), 1, "{message}");
    }

    #[test]
    fn empty_input_says_so() {
        let err = parse_file_incident(" \n", "stdin").unwrap_err();
        assert_eq!(
            err.to_string(),
            "stdin is empty; expected an incident in YAML or JSON"
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let bad = format!("{YAML}sevrity: low\n");
        let err = parse_file_incident(&bad, "incident.yaml").unwrap_err();
        assert!(err.to_string().contains("sevrity"), "{err}");
    }

    #[test]
    fn field_problems_are_all_reported() {
        let bad = YAML
            .replace("title: C2 server at 203.0.113.7", "title: \"  \"")
            .replace("[Botnet, c2]", "[\"bad tag!\"]");
        let err = parse_file_incident(&bad, "incident.yaml").unwrap_err();
        let InputError::Invalid { errors, .. } = &err else {
            panic!("expected invalid fields, got {err:?}");
        };
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_ref()).collect();
        assert!(fields.contains(&"title"), "{fields:?}");
        assert!(fields.iter().any(|f| f.starts_with("tags")), "{fields:?}");
    }

    #[test]
    fn oversized_input_is_refused() {
        let mut big = std::io::repeat(b' ').take(MAX_INPUT_BYTES + 10);
        let err = read_bounded(&mut big, "stdin").unwrap_err();
        assert!(matches!(err, InputError::TooLarge { .. }), "{err:?}");
    }
}
