//! The walk over a bundle's objects: every object is looked at once, in
//! bundle order, and either taken (indicators, observables and
//! vulnerabilities as indicator values; incidents and reports as groups;
//! relationships as links; sightings), used as context (identities, TLP marking
//! definitions), or reported with its location and the reason. `assemble`
//! then turns what was taken into incidents.
//!
//! An object is taken whole or not at all: one bad value in a pattern
//! refuses the object (invalid), one comparison the model cannot hold
//! refuses it too (skipped). Of several versions of one object (same id),
//! only the newest (`modified`) is read.

use std::collections::{HashMap, HashSet};

use cer_proto::envelope::check_text;
use cer_proto::model::{Indicator, IndicatorType, Timestamp, Tlp};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::observable::{self, Refusal, SCO_TYPES};
use super::{clip, marking, pattern};
use crate::Problem;

/// Walks a bundle's objects.
pub(crate) fn read(objects: &[Value], bundle_id: String) -> Read {
    let mut walk = Walk::new(objects);
    walk.read();
    walk.into_read(bundle_id)
}

/// What the walk over a bundle took, for `assemble`.
pub(crate) struct Read {
    pub bundle_id: String,
    /// Identity names by id, with where each identity is.
    pub identities: HashMap<String, (usize, String)>,
    /// Objects that gave indicator values, in bundle order.
    pub taken: Vec<Taken>,
    /// Incidents and reports, in bundle order.
    pub groups: Vec<Group>,
    pub sightings: Vec<Sighting>,
    /// Ids of objects in the bundle that were not taken.
    pub refused: HashSet<String>,
    pub skipped: Vec<Problem>,
    pub invalid: Vec<Problem>,
}

/// An object that gave indicator values.
pub(crate) struct Taken {
    pub id: String,
    pub indicators: Vec<Indicator>,
    pub tlp: Option<Tlp>,
    /// The `created_by_ref` identity id.
    pub creator: Option<String>,
}

/// An `incident` or `report`.
pub(crate) struct Group {
    pub location: String,
    pub id: String,
    pub kind: &'static str,
    pub name: Option<String>,
    pub description: Option<String>,
    pub labels: Vec<String>,
    pub tlp: Option<Tlp>,
    pub creator: Option<String>,
    /// Ids of its members: a report's `object_refs`, then what
    /// relationships link to it.
    pub members: Vec<String>,
}

/// A `sighting`.
pub(crate) struct Sighting {
    pub location: String,
    pub target: String,
    pub count: u32,
    pub seen: Timestamp,
    pub comment: Option<String>,
}

/// A relationship that may link a group and a member; resolved once every
/// object is known.
struct Link {
    location: String,
    kind: String,
    source: String,
    target: String,
}

struct Walk<'a> {
    objects: &'a [Value],
    /// Objects that are not the newest version of their id: index → the
    /// index of the newest.
    superseded: HashMap<usize, usize>,
    markings: HashMap<&'a str, Tlp>,
    read: Read,
    links: Vec<Link>,
}

impl<'a> Walk<'a> {
    fn new(objects: &'a [Value]) -> Self {
        Walk {
            objects,
            superseded: HashMap::new(),
            markings: HashMap::new(),
            read: Read {
                bundle_id: String::new(),
                identities: HashMap::new(),
                taken: Vec::new(),
                groups: Vec::new(),
                sightings: Vec::new(),
                refused: HashSet::new(),
                skipped: Vec::new(),
                invalid: Vec::new(),
            },
            links: Vec::new(),
        }
    }

    fn into_read(mut self, bundle_id: String) -> Read {
        self.read.bundle_id = bundle_id;
        self.read
    }

    fn read(&mut self) {
        self.index();
        for (index, value) in self.objects.iter().enumerate() {
            let Ok((kind, id, object)) = header(value) else {
                // Reported by `index`.
                continue;
            };
            let location = location(index, Some(id));
            if let Some(newest) = self.superseded.get(&index) {
                self.skip(
                    &location,
                    format!("an older version of the object at objects[{newest}]"),
                );
                continue;
            }
            if object.get("revoked") == Some(&Value::Bool(true)) {
                self.read.refused.insert(id.to_owned());
                self.skip(&location, "revoked by its creator".into());
                continue;
            }
            if let Err(refusal) = self.object(&location, kind, id, object) {
                self.read.refused.insert(id.to_owned());
                match refusal {
                    Refusal::Skipped(reason) => self.skip(&location, reason),
                    Refusal::Invalid(reason) => self.invalid(&location, reason),
                }
            }
        }
        self.link();
    }

    /// First pass: which version of each id is read, identities' names,
    /// TLP marking definitions, and objects without a usable header.
    fn index(&mut self) {
        let mut newest: HashMap<&str, (usize, Option<Timestamp>)> = HashMap::new();
        let mut older: Vec<(usize, &str)> = Vec::new();
        for (index, value) in self.objects.iter().enumerate() {
            let (_, id, object) = match header(value) {
                Ok(header) => header,
                Err(reason) => {
                    let id = value.get("id").and_then(Value::as_str).filter(|id| {
                        id.split_once("--")
                            .is_some_and(|(_, uuid)| Uuid::parse_str(uuid).is_ok())
                    });
                    self.invalid(&location(index, id), reason);
                    continue;
                }
            };
            let modified = object
                .get("modified")
                .and_then(Value::as_str)
                .and_then(|t| Timestamp::parse(t).ok());
            match newest.get(id) {
                // On a tie the first one is read.
                Some(&(best, best_modified)) if modified > best_modified => {
                    older.push((best, id));
                    newest.insert(id, (index, modified));
                }
                Some(_) => older.push((index, id)),
                None => {
                    newest.insert(id, (index, modified));
                }
            }
        }
        self.superseded = older
            .into_iter()
            .filter_map(|(index, id)| newest.get(id).map(|&(read, _)| (index, read)))
            .collect();
        for (index, value) in self.objects.iter().enumerate() {
            if self.superseded.contains_key(&index) {
                continue;
            }
            let Ok((kind, id, object)) = header(value) else {
                continue;
            };
            match kind {
                "identity" => {
                    if let Some(name) = object.get("name").and_then(Value::as_str) {
                        self.read
                            .identities
                            .insert(id.to_owned(), (index, name.to_owned()));
                    }
                }
                "marking-definition" => {
                    if let Some(tlp) = marking::defined(object) {
                        self.markings.insert(id, tlp);
                    }
                }
                _ => {}
            }
        }
    }

    fn object(
        &mut self,
        location: &str,
        kind: &str,
        id: &str,
        object: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        match kind {
            "identity" => Ok(()),
            "marking-definition" if self.markings.contains_key(id) => Ok(()),
            "marking-definition" => Err(Refusal::Skipped(
                "not a TLP marking: its terms are not carried over".into(),
            )),
            "extension-definition" if id == marking::TLP2_EXTENSION => Ok(()),
            "indicator" => self.indicator(id, object),
            "vulnerability" => self.vulnerability(id, object),
            "incident" | "report" => self.group(location, kind, id, object),
            "relationship" => self.relationship(location, object),
            "sighting" => self.sighting(location, object),
            "bundle" => Err(Refusal::Invalid(
                "a bundle inside a bundle is not read".into(),
            )),
            sco if SCO_TYPES.contains(&sco) => {
                let indicators = observable::from_sco(sco, object)?;
                self.take(id, indicators, object)
            }
            other => Err(Refusal::Skipped(format!(
                "{} objects have no place in cerd's model",
                clip(other, 40)
            ))),
        }
    }

    fn indicator(&mut self, id: &str, object: &Map<String, Value>) -> Result<(), Refusal> {
        match object.get("pattern_type") {
            // STIX 2.0 indicators carry no pattern_type: theirs are STIX.
            None => {}
            Some(Value::String(kind)) if kind == "stix" => {}
            Some(Value::String(kind)) => {
                return Err(Refusal::Skipped(format!(
                    "pattern_type '{}' is not a STIX pattern",
                    clip(kind, 40)
                )))
            }
            Some(_) => return Err(Refusal::Invalid("pattern_type must be a string".into())),
        }
        let Some(text) = object.get("pattern").and_then(Value::as_str) else {
            return Err(Refusal::Invalid("no pattern (a string)".into()));
        };
        let expr = pattern::parse(text).map_err(|e| Refusal::Invalid(format!("pattern: {e}")))?;
        let indicators = observable::from_pattern(&expr).map_err(|refusal| match refusal {
            Refusal::Skipped(reason) => Refusal::Skipped(format!("pattern: {reason}")),
            Refusal::Invalid(reason) => Refusal::Invalid(format!("pattern: {reason}")),
        })?;
        self.take(id, indicators, object)
    }

    /// A vulnerability's CVE ids: its `cve` external references, else a
    /// name that is a CVE id.
    fn vulnerability(&mut self, id: &str, object: &Map<String, Value>) -> Result<(), Refusal> {
        let mut raw: Vec<&str> = object
            .get("external_references")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|r| {
                r.get("source_name")
                    .and_then(Value::as_str)
                    .is_some_and(|s| s.eq_ignore_ascii_case("cve"))
            })
            .filter_map(|r| r.get("external_id").and_then(Value::as_str))
            .collect();
        if raw.is_empty() {
            if let Some(name) = object.get("name").and_then(Value::as_str) {
                if Indicator::new(IndicatorType::Cve, name).is_ok() {
                    raw.push(name);
                }
            }
        }
        if raw.is_empty() {
            return Err(Refusal::Skipped(
                "a vulnerability without a CVE id has no indicator type".into(),
            ));
        }
        let indicators = raw
            .into_iter()
            .map(|cve| {
                Indicator::new(IndicatorType::Cve, cve)
                    .map_err(|e| Refusal::Invalid(format!("external_references: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.take(id, indicators, object)
    }

    /// Applies the object's own fields to its indicators (`valid_from`,
    /// `valid_until`, `confidence`, `description`) and takes them.
    fn take(
        &mut self,
        id: &str,
        mut indicators: Vec<Indicator>,
        object: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        let invalid = Refusal::Invalid;
        let valid_from = time(object, "valid_from").map_err(invalid)?;
        let valid_until = time(object, "valid_until").map_err(invalid)?;
        if let (Some(from), Some(until)) = (valid_from, valid_until) {
            if until <= from {
                return Err(Refusal::Invalid(format!(
                    "valid_until {until} is not after valid_from {from}"
                )));
            }
        }
        let confidence = match object.get("confidence") {
            None => None,
            Some(Value::Number(n)) => match n.as_u64() {
                Some(c) if c <= 100 => u8::try_from(c).ok(),
                _ => {
                    return Err(Refusal::Invalid(format!(
                        "confidence must be an integer from 0 to 100, got {n}"
                    )))
                }
            },
            Some(_) => return Err(Refusal::Invalid("confidence must be an integer".into())),
        };
        let name = object.get("name").and_then(Value::as_str);
        let description = match object.get("description") {
            None => None,
            Some(Value::String(text)) if text.trim().is_empty() || Some(text.as_str()) == name => {
                None
            }
            Some(Value::String(text)) => Some(text.as_str()),
            Some(_) => return Err(Refusal::Invalid("description must be a string".into())),
        };
        for indicator in &mut indicators {
            indicator.first_seen = valid_from;
            indicator.valid_until = valid_until;
            indicator.confidence = confidence;
            let notes: Vec<&str> = description
                .into_iter()
                .chain(indicator.comment.as_deref())
                .collect();
            if !notes.is_empty() {
                indicator.comment = Some(clip(&notes.join("; "), Indicator::COMMENT_MAX_CHARS));
            }
            indicator
                .validate()
                .map_err(|e| Refusal::Invalid(e.to_string()))?;
        }
        let tlp = self.tlp(object)?;
        let creator = creator(object)?;
        self.read.taken.push(Taken {
            id: id.to_owned(),
            indicators,
            tlp,
            creator,
        });
        Ok(())
    }

    fn group(
        &mut self,
        location: &str,
        kind: &str,
        id: &str,
        object: &Map<String, Value>,
    ) -> Result<(), Refusal> {
        let text = |field: &str| match object.get(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(Refusal::Invalid(format!("{field} must be a string"))),
        };
        let members = match (kind, object.get("object_refs")) {
            (_, None) => vec![],
            ("report", Some(Value::Array(refs))) => refs
                .iter()
                .map(|r| {
                    r.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| Refusal::Invalid("object_refs must list ids".into()))
                })
                .collect::<Result<_, _>>()?,
            ("report", Some(_)) => {
                return Err(Refusal::Invalid("object_refs must be a list".into()))
            }
            _ => vec![],
        };
        let labels = object
            .get("labels")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        let group = Group {
            location: location.to_owned(),
            id: id.to_owned(),
            kind: if kind == "report" {
                "report"
            } else {
                "incident"
            },
            name: text("name")?,
            description: text("description")?,
            labels,
            tlp: self.tlp(object)?,
            creator: creator(object)?,
            members,
        };
        self.read.groups.push(group);
        Ok(())
    }

    fn relationship(&mut self, location: &str, object: &Map<String, Value>) -> Result<(), Refusal> {
        let field = |name: &str| {
            object
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| Refusal::Invalid(format!("no {name}")))
        };
        let kind = field("relationship_type")?;
        let (source, target) = (field("source_ref")?, field("target_ref")?);
        if kind != "indicates" && kind != "related-to" {
            return Err(Refusal::Skipped(format!(
                "relationship '{}' is not used (indicates and related-to link indicators to incidents and reports)",
                clip(kind, 40)
            )));
        }
        self.links.push(Link {
            location: location.to_owned(),
            kind: kind.to_owned(),
            source: source.to_owned(),
            target: target.to_owned(),
        });
        Ok(())
    }

    fn sighting(&mut self, location: &str, object: &Map<String, Value>) -> Result<(), Refusal> {
        let Some(target) = object.get("sighting_of_ref").and_then(Value::as_str) else {
            return Err(Refusal::Invalid("no sighting_of_ref".into()));
        };
        let count = match object.get("count") {
            None => 1,
            Some(Value::Number(n)) => match n.as_u64().filter(|c| *c <= 999_999_999) {
                Some(0) => {
                    return Err(Refusal::Skipped(
                        "count 0 reports that it was not seen".into(),
                    ))
                }
                Some(c) => u32::try_from(c).unwrap_or(u32::MAX),
                None => {
                    return Err(Refusal::Invalid(format!(
                        "count must be an integer from 0 to 999999999, got {n}"
                    )))
                }
            },
            Some(_) => return Err(Refusal::Invalid("count must be an integer".into())),
        };
        let seen = [
            time(object, "last_seen"),
            time(object, "first_seen"),
            time(object, "created"),
        ]
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(Refusal::Invalid)?
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| Refusal::Invalid("no last_seen, first_seen or created time".into()))?;
        let comment = match object.get("description") {
            None => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => return Err(Refusal::Invalid("description must be a string".into())),
        };
        let comment = comment.or_else(|| {
            let names: Vec<&str> = object
                .get("where_sighted_refs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .filter_map(|id| self.read.identities.get(id).map(|(_, name)| name.as_str()))
                .collect();
            (!names.is_empty()).then(|| format!("sighted by {}", names.join(", ")))
        });
        check_text(
            "description",
            comment.as_deref(),
            cer_proto::envelope::MAX_NOTE_CHARS,
        )
        .map_err(|e| Refusal::Invalid(e.to_string()))?;
        self.read.sightings.push(Sighting {
            location: location.to_owned(),
            target: target.to_owned(),
            count,
            seen,
            comment,
        });
        Ok(())
    }

    /// Turns relationships into group membership, once every object is
    /// known.
    fn link(&mut self) {
        let groups: HashMap<String, usize> = self
            .read
            .groups
            .iter()
            .enumerate()
            .map(|(i, g)| (g.id.clone(), i))
            .collect();
        let members: HashSet<&str> = self.read.taken.iter().map(|t| t.id.as_str()).collect();
        let mut problems = Vec::new();
        for link in std::mem::take(&mut self.links) {
            let (group, member) = match (groups.get(&link.source), groups.get(&link.target)) {
                (None, Some(&g)) => (g, link.source.as_str()),
                (Some(&g), None) if link.kind == "related-to" => (g, link.target.as_str()),
                (Some(_), Some(_)) => continue,
                _ => {
                    problems.push((
                        link.location,
                        format!(
                            "relationship '{}' links no incident or report to an indicator",
                            link.kind
                        ),
                    ));
                    continue;
                }
            };
            if members.contains(member) || self.read.refused.contains(member) {
                self.read.groups[group].members.push(member.to_owned());
            } else {
                problems.push((
                    link.location,
                    format!(
                        "relationship links {}, which is not in the bundle or holds no indicator",
                        clip(member, 80)
                    ),
                ));
            }
        }
        for (location, reason) in problems {
            self.skip(&location, reason);
        }
    }

    /// The most restrictive TLP among the object's markings, if any is
    /// TLP.
    fn tlp(&self, object: &Map<String, Value>) -> Result<Option<Tlp>, Refusal> {
        let refs = match object.get("object_marking_refs") {
            None => return Ok(None),
            Some(Value::Array(refs)) => refs,
            Some(_) => {
                return Err(Refusal::Invalid(
                    "object_marking_refs must be a list".into(),
                ))
            }
        };
        let mut tlp = None;
        for r in refs {
            let Some(id) = r.as_str() else {
                return Err(Refusal::Invalid("object_marking_refs must list ids".into()));
            };
            let found = marking::known(id).or_else(|| self.markings.get(id).copied());
            tlp = tlp.max(found);
        }
        Ok(tlp)
    }

    fn skip(&mut self, location: &str, reason: String) {
        self.read.skipped.push(Problem {
            location: location.to_owned(),
            reason,
        });
    }

    fn invalid(&mut self, location: &str, reason: String) {
        self.read.invalid.push(Problem {
            location: location.to_owned(),
            reason,
        });
    }
}

/// Where an object is: `objects[7] indicator--…`.
pub(crate) fn location(index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) => format!("objects[{index}] {}", clip(id, 120)),
        None => format!("objects[{index}]"),
    }
}

/// An object's type and id, checked: a JSON object with a `type` and an
/// id `<type>--<uuid>`.
fn header(value: &Value) -> Result<(&str, &str, &Map<String, Value>), String> {
    let Some(object) = value.as_object() else {
        return Err("not a JSON object".into());
    };
    let Some(kind) = object.get("type").and_then(Value::as_str) else {
        return Err("no type".into());
    };
    let Some(id) = object.get("id").and_then(Value::as_str) else {
        return Err(format!("{} object without an id", clip(kind, 40)));
    };
    if !valid_id(id, kind) {
        return Err(format!(
            "id '{}' is not {}--<uuid>",
            clip(id, 80),
            clip(kind, 40)
        ));
    }
    Ok((kind, id, object))
}

pub(crate) fn valid_id(id: &str, kind: &str) -> bool {
    id.strip_prefix(kind)
        .and_then(|rest| rest.strip_prefix("--"))
        .is_some_and(|uuid| uuid.len() == 36 && Uuid::parse_str(uuid).is_ok())
}

fn creator(object: &Map<String, Value>) -> Result<Option<String>, Refusal> {
    match object.get("created_by_ref") {
        None => Ok(None),
        Some(Value::String(id)) => Ok(Some(id.clone())),
        Some(_) => Err(Refusal::Invalid("created_by_ref must be an id".into())),
    }
}

/// An optional timestamp field.
fn time(object: &Map<String, Value>, field: &str) -> Result<Option<Timestamp>, String> {
    match object.get(field) {
        None => Ok(None),
        Some(Value::String(text)) => Timestamp::parse(text)
            .map(Some)
            .map_err(|e| format!("{field}: {}", e.reason)),
        Some(_) => Err(format!("{field} must be a timestamp")),
    }
}
