//! MISP event JSON → filing requests. See the module above for what maps
//! to what; each refusal names its place in the input.

use std::borrow::Cow;
use std::collections::HashSet;

use cer_proto::api::FileIncident;
use cer_proto::envelope::MAX_DESCRIPTION_CHARS;
use cer_proto::model::{Indicator, IndicatorType, Severity, Source, Status, Timestamp, Tlp};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::attribute::{read, Mapped};
use super::labels::{read_labels, tag_tlp};
use super::{join, NOT_FOR_IDS_CONFIDENCE};
use crate::common::{cut, fit_comment, parse_time, problem, title_from, Series};
use crate::{FormatError, ImportOptions, ImportReport, ImportedSighting};

/// Reads MISP event JSON: a bare event, `{"Event": …}`, a list of either,
/// or `{"response": [...]}`. Source format `misp`.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<ImportReport, FormatError> {
    let root = parse(bytes)?;
    let mut report = ImportReport::default();
    for (base, event) in events(&root)? {
        read_event(event, &base, options, "misp", &mut report);
    }
    Ok(report)
}

/// Reads one `<uuid>.json` of a MISP feed, which must hold the event the
/// manifest listed under `uuid`. Source format `misp-feed`.
pub fn import_feed_event(
    uuid: Uuid,
    bytes: &[u8],
    options: &ImportOptions,
) -> Result<ImportReport, FormatError> {
    let root = parse(bytes)?;
    let found = events(&root)?;
    let [(base, event)] = found.as_slice() else {
        return Err(FormatError {
            format: "misp-feed",
            reason: format!("a feed file holds one event, this one {}", found.len()),
        });
    };
    let mut report = ImportReport::default();
    let said = event.get("uuid").and_then(Value::as_str).map(str::trim);
    if said.and_then(|s| Uuid::parse_str(s).ok()) != Some(uuid) {
        report.invalid.push(problem(
            join(base, "uuid"),
            format!(
                "the manifest lists this file as event {uuid}, the event says '{}'",
                cut(said.unwrap_or(""), 60)
            ),
        ));
        return Ok(report);
    }
    read_event(event, base, options, "misp-feed", &mut report);
    Ok(report)
}

fn parse(bytes: &[u8]) -> Result<Value, FormatError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    serde_json::from_slice(bytes).map_err(|e| FormatError {
        format: "misp",
        reason: format!("not JSON: {e}"),
    })
}

const NOT_MISP: &str = "no MISP event: expected {\"Event\": …}, a bare event, a list of events or {\"response\": [...]}";

/// Every event in the document, each with its place (`Event`,
/// `response[2].Event`, `[0]`).
fn events(root: &Value) -> Result<Vec<(String, &Value)>, FormatError> {
    let not_misp = || FormatError {
        format: "misp",
        reason: NOT_MISP.into(),
    };
    match root {
        Value::Array(items) => Ok(listed(items, "")),
        Value::Object(map) => match map.get("response") {
            Some(Value::Array(items)) => Ok(listed(items, "response")),
            Some(inner @ Value::Object(_)) => Ok(vec![unwrap(inner, "response".into())]),
            Some(_) => Err(not_misp()),
            None if map.contains_key("Event") => Ok(vec![unwrap(root, String::new())]),
            None if ["info", "Attribute", "Object", "uuid"]
                .iter()
                .any(|k| map.contains_key(*k)) =>
            {
                Ok(vec![(String::new(), root)])
            }
            None => Err(not_misp()),
        },
        _ => Err(not_misp()),
    }
}

fn listed<'v>(items: &'v [Value], prefix: &str) -> Vec<(String, &'v Value)> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| unwrap(item, format!("{prefix}[{i}]")))
        .collect()
}

fn unwrap(item: &Value, prefix: String) -> (String, &Value) {
    match item.get("Event") {
        Some(event) => (join(&prefix, "Event"), event),
        None => (prefix, item),
    }
}

/// What one event's attributes gave, and where they go.
struct EventReader<'r> {
    base: String,
    event_tlp: Tlp,
    report: &'r mut ImportReport,
    series: Series,
    sightings: Vec<ImportedSighting>,
    references: Vec<String>,
    /// Values already taken, per label: MISP events often name a value
    /// twice (`ip-src` and `ip-dst`, `domain` and `domain|ip`); the first
    /// counts.
    taken: HashSet<(Tlp, IndicatorType, String)>,
}

#[derive(Clone, Copy, Default)]
struct Seen {
    first: Option<Timestamp>,
    last: Option<Timestamp>,
}

fn read_event(
    event: &Value,
    base: &str,
    options: &ImportOptions,
    format: &str,
    report: &mut ImportReport,
) {
    let whole = if base.is_empty() { "event" } else { base };
    let Some(map) = event.as_object() else {
        report
            .invalid
            .push(problem(whole, "expected a JSON object"));
        return;
    };
    let uuid = match map.get("uuid").and_then(Value::as_str).map(str::trim) {
        None => {
            report.invalid.push(problem(
                join(base, "uuid"),
                "missing; an event is known by its uuid when it is imported again",
            ));
            return;
        }
        Some(text) => match Uuid::parse_str(text) {
            Ok(uuid) => uuid,
            Err(_) => {
                report.invalid.push(problem(
                    join(base, "uuid"),
                    format!("'{}' is not a uuid", cut(text, 60)),
                ));
                return;
            }
        },
    };
    let labels = read_labels(map, base, options, report);
    let info = map.get("info").and_then(text).unwrap_or_default();
    let severity = read_severity(map, base, report).or(options.severity);
    let status = read_status(map, base, report);
    let occurred = map.get("date").and_then(text).and_then(|date| {
        parse_time(&date)
            .map_err(|reason| report.skipped.push(problem(join(base, "date"), reason)))
            .ok()
    });
    let creator = read_creator(map, base, report);

    let mut reader = EventReader {
        base: base.to_owned(),
        event_tlp: labels.tlp,
        report,
        series: Series::new(labels.tlp, cer_proto::envelope::MAX_INDICATORS),
        sightings: vec![],
        references: vec![],
        taken: HashSet::new(),
    };
    if let Some(list) = map.get("Attribute").and_then(Value::as_array) {
        for (i, attr) in list.iter().enumerate() {
            let loc = join(base, &format!("Attribute[{i}]"));
            reader.attribute(attr, loc, Seen::default());
        }
    }
    if let Some(objects) = map.get("Object").and_then(Value::as_array) {
        for (j, object) in objects.iter().enumerate() {
            reader.object(object, j);
        }
    }

    let (title, lost) = title_from(&info, &format!("MISP event {uuid}"));
    let mut description = if lost {
        info.trim().to_owned()
    } else {
        String::new()
    };
    if !reader.references.is_empty() {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        description.push_str("References:");
        for link in &reader.references {
            description.push_str("\n- ");
            description.push_str(link);
        }
    }
    let mut template = FileIncident::new(
        title,
        severity.unwrap_or(Severity::Medium),
        labels.tlp,
        labels.classification,
    );
    template.description = cut(&description, MAX_DESCRIPTION_CHARS);
    template.status = status;
    template.occurred = occurred;
    template.tags = labels.tags;
    let source = Source {
        format: format.to_owned(),
        id: uuid.to_string(),
        creator,
        file: options.file.clone(),
    };
    template.source = Some(source.clone());
    let EventReader {
        report,
        series,
        sightings,
        ..
    } = reader;
    if let Err(errors) = template.to_body() {
        report.invalid.push(problem(whole, errors.to_string()));
        return;
    }
    let mut parts = series.finish(&template, &source, true);
    for sighting in sightings {
        let holder = parts.iter_mut().find(|part| {
            part.incident
                .indicators
                .iter()
                .any(|i| i.kind == sighting.kind && i.value == sighting.value)
        });
        if let Some(part) = holder {
            part.sightings.push(sighting);
        }
    }
    report.incidents.extend(parts);
}

fn read_severity(
    map: &Map<String, Value>,
    base: &str,
    report: &mut ImportReport,
) -> Option<Severity> {
    let raw = map.get("threat_level_id")?;
    match int(raw) {
        Some(1) => Some(Severity::High),
        Some(2) => Some(Severity::Medium),
        Some(3) => Some(Severity::Low),
        Some(4) => None,
        _ => {
            report.skipped.push(problem(
                join(base, "threat_level_id"),
                format!(
                    "{} is not a MISP threat level (1 high, 2 medium, 3 low, 4 undefined)",
                    cut(&raw.to_string(), 40)
                ),
            ));
            None
        }
    }
}

fn read_status(map: &Map<String, Value>, base: &str, report: &mut ImportReport) -> Status {
    let Some(raw) = map.get("analysis") else {
        return Status::New;
    };
    match int(raw) {
        Some(0) => Status::New,
        Some(1) => Status::Open,
        Some(2) => Status::Resolved,
        _ => {
            report.skipped.push(problem(
                join(base, "analysis"),
                format!(
                    "{} is not a MISP analysis level (0 initial, 1 ongoing, 2 completed)",
                    cut(&raw.to_string(), 40)
                ),
            ));
            Status::New
        }
    }
}

fn read_creator(map: &Map<String, Value>, base: &str, report: &mut ImportReport) -> Option<String> {
    let name = map.get("Orgc")?.get("name")?.as_str()?.trim();
    if name.is_empty() {
        return None;
    }
    let probe = Source {
        format: "misp".into(),
        id: "x".into(),
        creator: Some(name.to_owned()),
        file: None,
    };
    match probe.validate() {
        Ok(()) => Some(name.to_owned()),
        Err(e) => {
            report.skipped.push(problem(
                join(base, "Orgc.name"),
                format!("not kept: {}", e.reason),
            ));
            None
        }
    }
}

impl EventReader<'_> {
    fn object(&mut self, object: &Value, j: usize) {
        let loc = join(&self.base, &format!("Object[{j}]"));
        let Some(map) = object.as_object() else {
            self.report
                .invalid
                .push(problem(loc, "expected a JSON object"));
            return;
        };
        if map.get("deleted").and_then(flag) == Some(true) {
            self.report.skipped.push(problem(loc, "deleted in MISP"));
            return;
        }
        let seen = Seen {
            first: self.time(map, "first_seen", &loc),
            last: self.time(map, "last_seen", &loc),
        };
        if let Some(list) = map.get("Attribute").and_then(Value::as_array) {
            for (k, attr) in list.iter().enumerate() {
                self.attribute(attr, format!("{loc}.Attribute[{k}]"), seen);
            }
        }
    }

    fn attribute(&mut self, attr: &Value, loc: String, inherited: Seen) {
        let Some(map) = attr.as_object() else {
            self.report
                .invalid
                .push(problem(loc, "expected a JSON object"));
            return;
        };
        if map.get("deleted").and_then(flag) == Some(true) {
            self.report.skipped.push(problem(loc, "deleted in MISP"));
            return;
        }
        let Some(kind) = map.get("type").and_then(Value::as_str) else {
            self.report.invalid.push(problem(loc, "no type"));
            return;
        };
        let Some(value) = map.get("value").and_then(text) else {
            self.report.invalid.push(problem(loc, "no value"));
            return;
        };
        let (indicators, note) = match read(kind, &value) {
            Err(reason) => {
                self.report.invalid.push(problem(
                    loc,
                    format!("{} '{}': {reason}", cut(kind, 40), cut(&value, 80)),
                ));
                return;
            }
            Ok(Mapped::Unsupported) => {
                self.report.skipped.push(problem(
                    loc,
                    format!(
                        "MISP type '{}' has no indicator type in the model",
                        cut(kind, 40)
                    ),
                ));
                return;
            }
            Ok(Mapped::Reference(link)) => {
                match cer_proto::envelope::check_text("link", Some(&link), 2048) {
                    Ok(()) if !link.contains(['\n', '\r']) && !link.is_empty() => {
                        self.references.push(link)
                    }
                    Ok(()) => self
                        .report
                        .invalid
                        .push(problem(loc, "a link must be one non-empty line")),
                    Err(e) => self.report.invalid.push(problem(loc, e.to_string())),
                }
                return;
            }
            Ok(Mapped::Indicators(list, note)) => (list, note),
        };

        let given = map.get("comment").and_then(Value::as_str).unwrap_or("");
        let joined = match (note, given.trim()) {
            (Some(note), "") => note,
            (Some(note), given) => format!("{note}; {given}"),
            (None, given) => given.to_owned(),
        };
        let (comment, why) = fit_comment(&joined);
        if let Some(why) = why {
            self.report
                .skipped
                .push(problem(format!("{loc}.comment"), why));
        }
        let to_ids = map.get("to_ids").and_then(flag).unwrap_or(true);
        let seen = self.seen(map, &loc, inherited);
        let tlp = self.attribute_tlp(map, &loc);
        let sightings = self.sightings(map, &loc);

        for indicator in indicators {
            if sightings.count > 0 {
                if let Some(seen) = sightings.latest {
                    self.sightings.push(ImportedSighting {
                        kind: indicator.kind,
                        value: indicator.value.clone(),
                        seen,
                        count: sightings.count,
                        comment: None,
                    });
                }
            }
            let indicator = Indicator {
                first_seen: seen.first,
                last_seen: seen.last,
                confidence: (!to_ids).then_some(NOT_FOR_IDS_CONFIDENCE),
                comment: comment.clone(),
                valid_until: sightings.expires,
                ..indicator
            };
            if self
                .taken
                .insert((tlp, indicator.kind, indicator.value.clone()))
            {
                self.series.push(tlp, indicator);
            }
        }
    }

    /// first_seen and last_seen (the attribute's, else its object's);
    /// without a last_seen, the attribute's timestamp stands for it.
    fn seen(&mut self, map: &Map<String, Value>, loc: &str, inherited: Seen) -> Seen {
        let first = self.time(map, "first_seen", loc).or(inherited.first);
        let mut last = self.time(map, "last_seen", loc).or(inherited.last);
        if let (Some(f), Some(l)) = (first, last) {
            if f > l {
                self.report.skipped.push(problem(
                    format!("{loc}.last_seen"),
                    format!("{l} is before first_seen {f}; left out"),
                ));
                last = None;
            }
        }
        if last.is_none() {
            let stamp = self.time(map, "timestamp", loc);
            last = stamp.filter(|t| first.is_none_or(|f| f <= *t));
        }
        Seen { first, last }
    }

    /// The attribute's own `tlp:` tag, never looser than the event's: an
    /// attribute shared under a stricter label lands in an incident of
    /// its own at that label.
    fn attribute_tlp(&mut self, map: &Map<String, Value>, loc: &str) -> Tlp {
        let mut tlp = self.event_tlp;
        let Some(list) = map.get("Tag").and_then(Value::as_array) else {
            return tlp;
        };
        for (k, tag) in list.iter().enumerate() {
            let Some(name) = tag.get("name").and_then(Value::as_str) else {
                continue;
            };
            match tag_tlp(name) {
                Some(Ok(label)) => tlp = tlp.max(label),
                Some(Err(reason)) => self
                    .report
                    .skipped
                    .push(problem(format!("{loc}.Tag[{k}]"), reason)),
                None => {}
            }
        }
        tlp
    }

    /// MISP sightings: type 0 (seen) are counted, type 2 (expiration)
    /// ends the indicator's validity, type 1 (false positive) has no
    /// counterpart here and is reported.
    fn sightings(&mut self, map: &Map<String, Value>, loc: &str) -> Sightings {
        let mut out = Sightings::default();
        let Some(list) = map.get("Sighting").and_then(Value::as_array) else {
            return out;
        };
        let mut false_positives = 0;
        for (k, sighting) in list.iter().enumerate() {
            let kind = sighting.get("type").and_then(int).unwrap_or(0);
            let when = sighting
                .get("date_sighting")
                .and_then(text)
                .and_then(|t| parse_time(&t).ok());
            match (kind, when) {
                (1, _) => false_positives += 1,
                (0, Some(when)) => {
                    out.count = out.count.saturating_add(1);
                    out.latest = out.latest.max(Some(when));
                }
                (2, Some(when)) => out.expires = out.expires.max(Some(when)),
                (0 | 2, None) => self.report.skipped.push(problem(
                    format!("{loc}.Sighting[{k}]"),
                    "no readable date_sighting; not imported",
                )),
                (other, _) => self.report.skipped.push(problem(
                    format!("{loc}.Sighting[{k}]"),
                    format!("sighting type {other} is not a MISP sighting type (0, 1, 2)"),
                )),
            }
        }
        if false_positives > 0 {
            self.report.skipped.push(problem(
                format!("{loc}.Sighting"),
                format!("{false_positives} false-positive sighting(s) not imported"),
            ));
        }
        out
    }

    fn time(&mut self, map: &Map<String, Value>, key: &str, loc: &str) -> Option<Timestamp> {
        let raw = map.get(key)?;
        if raw.is_null() {
            return None;
        }
        let text = text(raw)?;
        if text.trim().is_empty() {
            return None;
        }
        parse_time(&text)
            .map_err(|reason| {
                self.report
                    .skipped
                    .push(problem(format!("{loc}.{key}"), reason))
            })
            .ok()
    }
}

#[derive(Default)]
struct Sightings {
    count: u32,
    latest: Option<Timestamp>,
    expires: Option<Timestamp>,
}

/// A string, or a number written as one (MISP writes most numbers as
/// strings, other tools do not).
fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}

fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn flag(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim() {
            "1" | "true" | "True" => Some(true),
            "0" | "false" | "False" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}
