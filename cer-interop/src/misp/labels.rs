//! An event's tags: `tlp:` gives its label, `rsit:` its classification
//! (MISP taxonomies' spelling), the rest become tags where the model can
//! hold them. Each tag not taken is reported with its place.

use cer_proto::model::{normalize_tag, Classification, Tlp};
use serde_json::{Map, Value};

use super::join;
use crate::common::{cut, problem};
use crate::{ImportOptions, ImportReport};

pub(super) struct Labels {
    pub tlp: Tlp,
    pub classification: Classification,
    pub tags: Vec<String>,
}

/// The event's tags: `tlp:` gives its label (the strictest if several),
/// `rsit:` its classification, the rest become tags where they are
/// valid as tags.
pub(super) fn read_labels(
    map: &Map<String, Value>,
    base: &str,
    options: &ImportOptions,
    report: &mut ImportReport,
) -> Labels {
    let mut names: Vec<(String, &str)> = vec![];
    if let Some(list) = map.get("Tag").and_then(Value::as_array) {
        for (i, tag) in list.iter().enumerate() {
            if let Some(name) = tag.get("name").and_then(Value::as_str) {
                names.push((join(base, &format!("Tag[{i}]")), name));
            }
        }
    }
    if let Some(list) = map.get("EventTag").and_then(Value::as_array) {
        for (i, tag) in list.iter().enumerate() {
            if let Some(name) = tag.pointer("/Tag/name").and_then(Value::as_str) {
                names.push((join(base, &format!("EventTag[{i}].Tag")), name));
            }
        }
    }
    let mut tlps: Vec<Tlp> = vec![];
    let mut classes: Vec<(String, Classification)> = vec![];
    let mut unknown_class: Option<(String, String)> = None;
    let mut tags: Vec<String> = vec![];
    let mut dropped: Vec<&str> = vec![];
    for (loc, name) in &names {
        if let Some(tlp) = tag_tlp(name) {
            match tlp {
                Ok(tlp) => tlps.push(tlp),
                Err(reason) => report.skipped.push(problem(loc.clone(), reason)),
            }
        } else if let Some(class) = tag_rsit(name) {
            match class {
                Ok(class) => classes.push((loc.clone(), class)),
                Err(_) if unknown_class.is_none() => {
                    unknown_class = Some((loc.clone(), name.to_string()));
                }
                Err(_) => report.skipped.push(problem(
                    loc.clone(),
                    format!("'{}' is not in the RSIT taxonomy", cut(name, 80)),
                )),
            }
        } else {
            match normalize_tag(name) {
                Ok(tag) if tags.len() < cer_proto::envelope::MAX_TAGS => {
                    if !tags.contains(&tag) {
                        tags.push(tag);
                    }
                }
                _ => dropped.push(name),
            }
        }
    }
    let tlp = match tlps.iter().max() {
        Some(strictest) => {
            if tlps.iter().any(|t| t != strictest) {
                report.skipped.push(problem(
                    join(base, "Tag"),
                    format!(
                        "the event has several TLP tags; the strictest, {}, applies",
                        shown_tlp(*strictest)
                    ),
                ));
            }
            *strictest
        }
        None => options.tlp.unwrap_or(Tlp::Amber),
    };
    let classification = match (classes.first(), unknown_class) {
        (Some((_, class)), unknown) => {
            if let Some((loc, name)) = unknown {
                report.skipped.push(problem(
                    loc,
                    format!("'{}' is not in the RSIT taxonomy", cut(&name, 80)),
                ));
            }
            for (loc, other) in &classes[1..] {
                if other != class {
                    report.skipped.push(problem(
                        loc.clone(),
                        format!("an incident has one classification; {class} applies, not {other}"),
                    ));
                }
            }
            class.clone()
        }
        (None, Some((loc, name))) => {
            report.skipped.push(problem(
                loc,
                format!(
                    "'{}' is not in the RSIT taxonomy; classified as other/other",
                    cut(&name, 80)
                ),
            ));
            other_other()
        }
        (None, None) => options.classification.clone().unwrap_or_else(undetermined),
    };
    if !dropped.is_empty() {
        let listed: Vec<String> = dropped.iter().take(5).map(|n| cut(n, 60)).collect();
        report.skipped.push(problem(
            join(base, "Tag"),
            format!(
                "{} tag(s) not kept (an incident keeps at most {} tags of letters, digits and - _ : . /): {}{}",
                dropped.len(),
                cer_proto::envelope::MAX_TAGS,
                listed.join(", "),
                if dropped.len() > 5 { ", …" } else { "" }
            ),
        ));
    }
    Labels {
        tlp,
        classification,
        tags,
    }
}

/// `tlp:…` tags (TLP 1.0 and 2.0, `tlp:white` = clear); None for other tags.
pub(super) fn tag_tlp(name: &str) -> Option<Result<Tlp, String>> {
    let prefix = name.get(..4)?;
    if !prefix.eq_ignore_ascii_case("tlp:") {
        return None;
    }
    Some(name.parse::<Tlp>().map_err(|_| {
        format!(
            "'{}' is not a TLP label this node knows (clear, white, green, amber, amber+strict, red)",
            cut(name, 60)
        )
    }))
}

/// `rsit:class="type"` (MISP's spelling, quotes optional); None for
/// other tags.
fn tag_rsit(name: &str) -> Option<Result<Classification, String>> {
    let prefix = name.get(..5)?;
    if !prefix.eq_ignore_ascii_case("rsit:") {
        return None;
    }
    let rest = &name[5..];
    let Some((class, kind)) = rest.split_once('=') else {
        return Some(Err("no value".into()));
    };
    let kind = kind.trim().trim_matches('"');
    Some(Classification::parse(&format!("{}/{kind}", class.trim())).map_err(|e| e.reason))
}

fn shown_tlp(tlp: Tlp) -> String {
    format!("TLP:{}", tlp.as_str().to_ascii_uppercase())
}

fn other_other() -> Classification {
    Classification::parse("other/other").expect("other/other is in RSIT")
}

fn undetermined() -> Classification {
    Classification::parse("other/undetermined").expect("other/undetermined is in RSIT")
}
