//! Turning what the walk over a bundle took into incidents: one per
//! `incident` or `report` (with the indicators of the objects it names),
//! and one for the indicators that no incident or report names, titled
//! from the bundle's creator. Sightings join the first incident that holds
//! their indicator.
//!
//! The rules, also in the README's table:
//! - TLP: the most restrictive of the group's and its members' TLP
//!   markings; with none, the import's default, else TLP:AMBER (never
//!   share more widely than a source that did not say).
//! - Classification: a `rsit:` label (MISP's spelling,
//!   `rsit:malicious-code="c2-server"`), else the import's default, else
//!   `other/other`. Severity: a `cerd:severity="high"` label, else the
//!   import's default, else `medium`. Nothing else (indicator_types,
//!   labels) is read as either: a vendor's vocabulary says too little.
//! - Source: format `stix`, the id of the incident or report (the bundle's
//!   for the rest), the `created_by_ref` identity's name, the file.
//! - More than one envelope's worth of indicators (10,000) makes parts,
//!   `… (part 2 of 3)`, each its own source id (`…#part-2`).

use std::collections::{HashMap, HashSet};

use cer_proto::api::FileIncident;
use cer_proto::envelope::{MAX_INDICATORS, MAX_TITLE_CHARS};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Source, Tlp};

use super::clip;
use super::read::{location, Read, Taken};
use crate::{ImportOptions, ImportReport, Imported, ImportedSighting, Problem};

/// The TLP of an incident when neither the bundle nor the import says.
pub const DEFAULT_TLP: Tlp = Tlp::Amber;

pub(crate) fn assemble(read: Read, options: &ImportOptions) -> ImportReport {
    let mut out = Assembly {
        options,
        read: &read,
        report: ImportReport {
            incidents: Vec::new(),
            skipped: Vec::new(),
            invalid: Vec::new(),
        },
        holder: HashMap::new(),
        creators_refused: HashSet::new(),
    };
    let taken: HashMap<&str, &Taken> = read.taken.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut grouped: HashSet<&str> = HashSet::new();
    for group in &read.groups {
        let mut seen = HashSet::new();
        let members: Vec<&Taken> = group
            .members
            .iter()
            .filter(|id| seen.insert(id.as_str()))
            .filter_map(|id| taken.get(id.as_str()).copied())
            .collect();
        grouped.extend(members.iter().map(|t| t.id.as_str()));
        let (severity, classification) = out.labels(&group.labels, &group.location);
        let title = group
            .name
            .as_deref()
            .map(one_line)
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("STIX {} {}", group.kind, group.id));
        let creator = out.creator(group.creator.as_deref());
        out.build(Spec {
            location: group.location.clone(),
            source_id: group.id.clone(),
            title,
            description: group.description.clone().unwrap_or_default(),
            tlp: group.tlp,
            creator,
            severity,
            classification,
            members,
        });
    }
    let loose: Vec<&Taken> = read
        .taken
        .iter()
        .filter(|t| !grouped.contains(t.id.as_str()))
        .collect();
    if !loose.is_empty() {
        let creators: HashSet<&str> = loose.iter().filter_map(|t| t.creator.as_deref()).collect();
        let creator = match (creators.len(), read.identities.len()) {
            (1, _) => creators.into_iter().next().map(str::to_owned),
            (0, 1) => read.identities.keys().next().cloned(),
            _ => None,
        };
        let creator = out.creator(creator.as_deref());
        let title = match creator.as_deref().filter(|name| !name.is_empty()) {
            Some(name) => format!("STIX bundle from {name}"),
            None => format!("STIX bundle {}", read.bundle_id),
        };
        out.build(Spec {
            location: format!("bundle {}", read.bundle_id),
            source_id: read.bundle_id.clone(),
            title,
            description: String::new(),
            tlp: None,
            creator,
            severity: None,
            classification: None,
            members: loose,
        });
    }
    out.sightings(&taken);
    let Assembly { mut report, .. } = out;
    let mut skipped = read.skipped;
    skipped.append(&mut report.skipped);
    skipped.sort_by_key(|p| position(&p.location));
    let mut invalid = read.invalid;
    invalid.append(&mut report.invalid);
    invalid.sort_by_key(|p| position(&p.location));
    ImportReport {
        incidents: report.incidents,
        skipped,
        invalid,
    }
}

/// One incident to build.
struct Spec<'r> {
    location: String,
    source_id: String,
    title: String,
    description: String,
    tlp: Option<Tlp>,
    /// Its creator's name, as the source records it.
    creator: Option<String>,
    severity: Option<Severity>,
    classification: Option<Classification>,
    members: Vec<&'r Taken>,
}

struct Assembly<'r> {
    options: &'r ImportOptions,
    read: &'r Read,
    report: ImportReport,
    /// The first incident holding each indicator, for sightings.
    holder: HashMap<(IndicatorType, String), usize>,
    /// Identities whose name could not be recorded, reported once each.
    creators_refused: HashSet<String>,
}

impl Assembly<'_> {
    fn build(&mut self, spec: Spec<'_>) {
        let tlp = spec
            .members
            .iter()
            .map(|t| t.tlp)
            .fold(spec.tlp, Option::max)
            .or(self.options.tlp)
            .unwrap_or(DEFAULT_TLP);
        let severity = spec
            .severity
            .or(self.options.severity)
            .unwrap_or(Severity::Medium);
        let classification = spec
            .classification
            .or_else(|| self.options.classification.clone())
            .unwrap_or_else(|| Classification::parse("other/other").expect("other/other is RSIT"));
        let mut seen = HashSet::new();
        let indicators: Vec<&Indicator> = spec
            .members
            .iter()
            .flat_map(|t| &t.indicators)
            .filter(|i| seen.insert((i.kind, i.value.as_str())))
            .collect();
        let creator = spec.creator;
        let parts: Vec<&[&Indicator]> = if indicators.is_empty() {
            vec![&[]]
        } else {
            indicators.chunks(MAX_INDICATORS).collect()
        };
        let total = parts.len();
        for (n, part) in (1..).zip(parts) {
            let (title, source_id) = if total == 1 {
                (clip(&spec.title, MAX_TITLE_CHARS), spec.source_id.clone())
            } else {
                let suffix = format!(" (part {n} of {total})");
                let room = MAX_TITLE_CHARS.saturating_sub(suffix.chars().count());
                let id = if n == 1 {
                    spec.source_id.clone()
                } else {
                    format!("{}#part-{n}", spec.source_id)
                };
                (format!("{}{suffix}", clip(&spec.title, room)), id)
            };
            let mut incident = FileIncident::new(title, severity, tlp, classification.clone());
            incident.description = spec.description.clone();
            incident.indicators = part.iter().map(|i| (*i).clone()).collect();
            incident.source = Some(Source {
                format: "stix".into(),
                id: source_id,
                creator: creator.clone(),
                file: self.options.file.clone(),
            });
            if let Err(errors) = incident.to_body() {
                self.report.invalid.push(Problem {
                    location: spec.location.clone(),
                    reason: format!("not imported: {errors}"),
                });
                continue;
            }
            let index = self.report.incidents.len();
            for indicator in &incident.indicators {
                self.holder
                    .entry((indicator.kind, indicator.value.clone()))
                    .or_insert(index);
            }
            self.report.incidents.push(Imported {
                incident,
                sightings: Vec::new(),
            });
        }
    }

    /// The creator's name as a source records it: one line, at most 256
    /// characters. A name that cannot be recorded (bidi controls) is left
    /// out and reported at its identity.
    fn creator(&mut self, id: Option<&str>) -> Option<String> {
        let id = id?;
        let (index, name) = self.read.identities.get(id)?;
        let name = clip(&one_line(name), Source::MAX_CHARS);
        let probe = Source {
            format: "stix".into(),
            id: "x".into(),
            creator: Some(name.clone()),
            file: None,
        };
        match probe.validate() {
            Ok(()) => Some(name),
            Err(e) => {
                if self.creators_refused.insert(id.to_owned()) {
                    self.report.invalid.push(Problem {
                        location: location(*index, Some(id)),
                        reason: format!("name not recorded as a creator: {}", e.reason),
                    });
                }
                None
            }
        }
    }

    /// Severity and classification from an incident's or report's labels.
    fn labels(
        &mut self,
        labels: &[String],
        location: &str,
    ) -> (Option<Severity>, Option<Classification>) {
        let (mut severity, mut classification) = (None, None);
        for label in labels {
            let text = label.trim();
            let lower = text.to_ascii_lowercase();
            if let Some(rest) = lower.strip_prefix("rsit:") {
                let wanted = rest.replacen('=', "/", 1).replace('"', "");
                match Classification::parse(&wanted) {
                    Ok(c) => {
                        classification.get_or_insert(c);
                    }
                    Err(e) => self.report.skipped.push(Problem {
                        location: location.to_owned(),
                        reason: format!("label '{}': {}", clip(text, 80), e.reason),
                    }),
                }
            } else if let Some(rest) = lower.strip_prefix("cerd:severity=") {
                match rest.trim_matches('"').parse::<Severity>() {
                    Ok(s) => {
                        severity.get_or_insert(s);
                    }
                    Err(e) => self.report.skipped.push(Problem {
                        location: location.to_owned(),
                        reason: format!("label '{}': {}", clip(text, 80), e.reason),
                    }),
                }
            }
        }
        (severity, classification)
    }

    fn sightings(&mut self, taken: &HashMap<&str, &Taken>) {
        for sighting in &self.read.sightings {
            let reason = match taken.get(sighting.target.as_str()) {
                Some(target) => {
                    let mut held = false;
                    for indicator in &target.indicators {
                        let key = (indicator.kind, indicator.value.clone());
                        if let Some(&index) = self.holder.get(&key) {
                            self.report.incidents[index]
                                .sightings
                                .push(ImportedSighting {
                                    kind: indicator.kind,
                                    value: indicator.value.clone(),
                                    seen: sighting.seen,
                                    count: sighting.count,
                                    comment: sighting.comment.clone(),
                                });
                            held = true;
                        }
                    }
                    if held {
                        continue;
                    }
                    format!(
                        "sighting of {}, whose incident was not imported",
                        sighting.target
                    )
                }
                None if self.read.refused.contains(&sighting.target) => {
                    format!("sighting of {}, which was not imported", sighting.target)
                }
                None => format!(
                    "sighting of {}, which is not in the bundle or names no indicator",
                    clip(&sighting.target, 80)
                ),
            };
            self.report.skipped.push(Problem {
                location: sighting.location.clone(),
                reason,
            });
        }
    }
}

/// Where a problem is, for listing problems in bundle order: the object's
/// index (`objects[12] …`), what concerns the whole bundle last.
fn position(location: &str) -> usize {
    location
        .strip_prefix("objects[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, _)| index.parse().ok())
        .unwrap_or(usize::MAX)
}

/// Text on one line: control characters (newlines, tabs) become spaces.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}
