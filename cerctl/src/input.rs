//! Reading incidents that analysts write in files: YAML or JSON, from a
//! path or stdin; and the incidents playbook authors describe to test a
//! playbook against ([`fixture`]).
//!
//! This module owns serde-saphyr; nothing else in cerctl parses YAML.
//! Everything here is checked before any connection to the daemon is
//! made. Only a syntax error is "invalid YAML/JSON" (with its line and
//! column); a document that parses is taken field by field, so every
//! refused field is reported at once, each with its line in YAML.

use std::fmt;
use std::io::Read;
use std::path::Path;

use cer_proto::api::FileIncident;
use cer_proto::model::normalize_tag;
use cer_proto::{FieldError, FieldErrors};

pub mod fixture;

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
    /// The document parses but some fields are refused; `what` says what
    /// it should have been (an incident, a fixture).
    /// (The field problems are the source, so a cause chain shows them once.)
    #[error("{name}: invalid {what}")]
    Invalid {
        name: String,
        what: &'static str,
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
    let (name, text) = read_text(path, stdin)?;
    parse_file_incident(&text, &name)
}

/// The text of `path` (`-`: stdin) and the name errors call it by.
fn read_text(path: &Path, stdin: &mut (dyn Read + Send)) -> Result<(String, String), InputError> {
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
    Ok((name, text))
}

/// Parses an incident as JSON when the first non-blank character is `{`,
/// as YAML otherwise. Tags and sectors are normalized (as the flags are),
/// then every field is checked as the daemon will check it, so mistakes
/// are reported all at once and before anything is sent.
pub fn parse_file_incident(text: &str, name: &str) -> Result<FileIncident, InputError> {
    let invalid = |errors| InputError::Invalid {
        name: name.to_owned(),
        what: "incident",
        errors,
    };
    let mut incident = fields(entries(text, name)?, &FIELDS).map_err(invalid)?;
    normalize(&mut incident);
    incident.to_body().map_err(invalid)?;
    Ok(incident)
}

/// The document's top-level fields, each with where it was written.
/// Parses the document first (a syntax error is the only "invalid
/// YAML/JSON"), so that each field can then be taken on its own and every
/// refused field reported at once, as the daemon and `playbook check` do.
/// JSON when the first non-blank character is `{`, YAML otherwise.
fn entries(text: &str, name: &str) -> Result<Vec<Entry>, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::Empty {
            name: name.to_owned(),
        });
    }
    if text.trim_start().starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| json_error(name, &e))?;
        Ok(map
            .into_iter()
            .map(|(key, value)| Entry {
                key,
                at: None,
                value,
            })
            .collect())
    } else {
        let document: Document = serde_saphyr::from_str(text).map_err(|e| yaml_error(name, &e))?;
        Ok(document.0)
    }
}

/// One top-level field as written, with where it was written (YAML).
struct Entry {
    key: String,
    at: Option<(u64, u64)>,
    value: serde_json::Value,
}

/// A YAML mapping's entries in order, each value with its location.
struct Document(Vec<Entry>);

impl<'de> serde::Deserialize<'de> for Document {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = Document;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of incident fields (title, severity, ...)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Document, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<serde_saphyr::Spanned<String>>()? {
                    let value = map.next_value::<serde_json::Value>()?;
                    let at = (key.referenced.line(), key.referenced.column());
                    entries.push(Entry {
                        key: key.value,
                        at: (at.0 > 0).then_some(at),
                        value,
                    });
                }
                Ok(Document(entries))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

const FIELDS: [&str; 13] = [
    "title",
    "description",
    "severity",
    "tlp",
    "classification",
    "status",
    "indicators",
    "affected",
    "occurred",
    "detected",
    "tags",
    "to",
    "request_id",
];

/// Builds the incident field by field, from the fields in `known` (a
/// subset of [`FIELDS`]). On any refusal, every field's problems (and the
/// body's checks on the fields that did parse) are returned together.
fn fields(entries: Vec<Entry>, known: &[&str]) -> Result<FileIncident, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut refused: Vec<String> = Vec::new();
    let mut incident = FileIncident::new(
        "",
        cer_proto::model::Severity::Low,
        cer_proto::model::Tlp::Clear,
        cer_proto::model::Classification::parse("test/test").expect("a valid classification"),
    );
    let mut seen: Vec<String> = Vec::new();
    let mut at_of: Vec<(String, (u64, u64))> = Vec::new();
    for entry in entries {
        let key = entry.key.clone();
        let at = |reason: String| located(reason, entry.at);
        if let Some(location) = entry.at {
            at_of.push((key.clone(), location));
        }
        if seen.contains(&key) {
            errors.push(FieldError::new(key.clone(), at("given twice".into())));
            refused.push(key);
            continue;
        }
        seen.push(key.clone());
        let result = match key.as_str() {
            other if !known.contains(&other) => Err(format!(
                "unknown field; expected one of {}",
                known.join(", ")
            )),
            "title" => take(entry.value, true).map(|v| incident.title = v),
            "description" => take(entry.value, true).map(|v| incident.description = v),
            "severity" => take(entry.value, true).map(|v| incident.severity = v),
            "tlp" => take(entry.value, true).map(|v| incident.tlp = v),
            "classification" => take(entry.value, true).map(|v| incident.classification = v),
            "status" => take(entry.value, true).map(|v| incident.status = v),
            "affected" => take(entry.value, true).map(|v| incident.affected = v),
            "occurred" => take(entry.value, true).map(|v| incident.occurred = v),
            "detected" => take(entry.value, true).map(|v| incident.detected = v),
            "tags" => take(entry.value, true).map(|v| incident.tags = v),
            "to" => take(entry.value, true).map(|v| incident.to = v),
            "request_id" => take(entry.value, true).map(|v| incident.request_id = v),
            "indicators" => match entry.value {
                serde_json::Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        match take(item, false) {
                            Ok(indicator) => incident.indicators.push(indicator),
                            Err(reason) => {
                                errors.push(FieldError::new(format!("indicators[{i}]"), at(reason)))
                            }
                        }
                    }
                    Ok(())
                }
                _ => Err("expected a list of indicators".to_owned()),
            },
            _ => Err(format!(
                "unknown field; expected one of {}",
                known.join(", ")
            )),
        };
        if let Err(reason) = result {
            // cer-proto's messages may name the field already.
            let reason = reason
                .strip_prefix(&format!("{key}: "))
                .map_or(reason.clone(), str::to_owned);
            errors.push(FieldError::new(key.clone(), at(reason)));
            refused.push(key);
        }
    }
    for required in ["title", "severity", "tlp", "classification"] {
        if !seen.iter().any(|k| k == required) {
            errors.push(FieldError::new(required, "required"));
            refused.push(required.to_owned());
        }
    }
    // The body's own checks, on the fields that parsed (refused ones hold
    // stand-ins, whose complaints would only confuse), each with where its
    // field was written.
    normalize(&mut incident);
    if let Err(body) = incident.to_body() {
        for e in body.0 {
            let top = e.field.split(['.', '[']).next().unwrap_or("").to_owned();
            if refused.contains(&top) {
                continue;
            }
            let reason = match at_of.iter().find(|(k, _)| *k == top) {
                Some((_, (line, column))) => format!("{} (line {line}, column {column})", e.reason),
                None => e.reason,
            };
            errors.push(FieldError::new(e.field, reason));
        }
    }
    if errors.is_empty() {
        return Ok(incident);
    }
    Err(errors)
}

/// One field's value as its type. YAML scalars such as `2026` or `true`
/// are taken as text where text is expected (`strings`), as a YAML
/// parser would; within an indicator, its `value` and `comment`.
fn take<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
    strings: bool,
) -> Result<T, String> {
    let value = match value {
        serde_json::Value::Object(mut map) if !strings => {
            for key in ["value", "comment", "type"] {
                if let Some(v) = map.get_mut(key) {
                    *v = scalar_as_text(v.take());
                }
            }
            serde_json::Value::Object(map)
        }
        other => other,
    };
    match serde_json::from_value::<T>(value.clone()) {
        Ok(v) => Ok(v),
        Err(first) if strings => {
            let text = match value {
                serde_json::Value::Array(items) => {
                    serde_json::Value::Array(items.into_iter().map(scalar_as_text).collect())
                }
                other => scalar_as_text(other),
            };
            serde_json::from_value::<T>(text).map_err(|_| first.to_string())
        }
        Err(e) => Err(e.to_string()),
    }
}

fn scalar_as_text(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Number(n) => serde_json::Value::String(n.to_string()),
        serde_json::Value::Bool(b) => serde_json::Value::String(b.to_string()),
        other => other,
    }
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

/// A field's problem with where the field was written (YAML).
fn located(reason: String, at: Option<(u64, u64)>) -> String {
    match at {
        Some((line, column)) => format!("{reason} (line {line}, column {column})"),
        None => reason,
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

    fn field_errors(err: &InputError) -> Vec<String> {
        let InputError::Invalid { errors, .. } = err else {
            panic!("expected invalid fields, got {err:?}");
        };
        errors.0.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn yaml_value_errors_name_the_line_and_the_valid_values() {
        let bad = YAML.replace("severity: high", "severity: hgih");
        let err = parse_file_incident(&bad, "incident.yaml").unwrap_err();
        // Valid YAML with a refused value is not "invalid YAML".
        assert_eq!(err.to_string(), "incident.yaml: invalid incident");
        let fields = field_errors(&err);
        assert_eq!(fields.len(), 1, "{fields:?}");
        assert!(fields[0].starts_with("severity: "), "{fields:?}");
        assert!(fields[0].contains("line 2, column"), "{fields:?}");
        assert!(fields[0].contains("critical"), "{fields:?}");
        assert!(!fields[0].starts_with("severity: severity"), "{fields:?}");
    }

    #[test]
    fn every_refused_field_is_reported_at_once() {
        let bad = "\
title: ' '
severity: hgih
tlp: purple
classification: malicious-code/c2-server
indicators:
  - {type: ipv4, value: 203.0.113.7}
  - {type: sha256, value: abc}
tags: ['bad tag!']
colour: red
";
        let err = parse_file_incident(bad, "incident.yaml").unwrap_err();
        let fields = field_errors(&err);
        for field in [
            "severity: ",
            "tlp: ",
            "indicators[1]: ",
            "colour: ",
            "title: ",
            "tags[0]: ",
        ] {
            assert!(
                fields.iter().any(|f| f.starts_with(field)),
                "{field} missing from {fields:?}"
            );
        }
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("tlp: ") && f.contains("line 3")),
            "{fields:?}"
        );
    }

    #[test]
    fn yaml_scalars_are_text_where_text_is_expected() {
        let yaml = format!("{YAML}indicators:\n  - {{type: asn, value: 64500, confidence: 80}}\ndescription: 2026\n");
        let incident = parse_file_incident(&yaml, "incident.yaml").unwrap();
        assert_eq!(incident.description, "2026");
        assert_eq!(incident.indicators.len(), 1);
        assert_eq!(incident.indicators[0].confidence, Some(80));
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
        let fields = field_errors(&err);
        assert!(
            fields[0].starts_with("sevrity: unknown field"),
            "{fields:?}"
        );
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
