//! Writing incidents as STIX 2.1 objects, and a bundle of them.
//!
//! For each incident this node can read (not retracted): an `incident`,
//! an `indicator` per indicator (a `vulnerability` for a CVE, which no
//! pattern can name), a `related-to` relationship from each to the
//! incident (`indicates` is only suggested towards malware, tools and the
//! like, and the validator warns about it towards an incident), and a
//! `sighting` per sighting on the timeline; then an `identity` per CERT
//! named, and the TLP 2.0 marking definitions used.
//!
//! Every id is derived from what the object describes ([`stable_id`]) and
//! every time from the incident, never from the clock, so the same
//! incidents give the same objects: a consumer sees a re-export as the
//! same objects, updated where `modified` moved.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cer_proto::incident::{Content, Event, IncidentState, IndicatorEntry};
use cer_proto::model::{IndicatorType, Timestamp, Tlp};
use cer_proto::Fingerprint;
use serde_json::{json, Map, Value};

use super::pattern::escape;
use super::{marking, stable_id, stix_time};
use crate::{ExportIncident, ExportOptions};

/// `created` and `modified` of every identity: an identity describes a
/// CERT in this node's trust store, which has no creation time of its own,
/// and a fixed time keeps every export's identity the same version.
const IDENTITY_TIME: &str = "1970-01-01T00:00:00.000Z";

/// Largest `count` STIX allows on a sighting.
const MAX_SIGHTING_COUNT: u32 = 999_999_999;

/// A STIX 2.1 bundle of [`objects`], as pretty-printed JSON. Its id is
/// derived from the producer, the options and each incident's id and last
/// update, so the same export gives the same bundle.
pub fn export(incidents: &[ExportIncident<'_>], options: &ExportOptions) -> Vec<u8> {
    let objects = objects(incidents, options);
    let mut key: Vec<String> = vec![
        options.producer.1.as_str().to_owned(),
        if options.active_only {
            format!("active at {}", options.now)
        } else {
            "all".to_owned()
        },
    ];
    for incident in incidents {
        key.push(format!("{} {}", incident.state.id, incident.state.updated));
    }
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    let bundle = json!({
        "type": "bundle",
        "id": stable_id("bundle", &key),
        "objects": objects,
    });
    let mut bytes = serde_json::to_vec_pretty(&bundle).expect("a JSON value serializes");
    bytes.push(b'\n');
    bytes
}

/// Every object [`export`] writes, in its order: the TLP 2.0 marking
/// definitions used, the identities (the producer first, then each CERT
/// by fingerprint), then each incident's own objects. Incidents this node
/// cannot read, and retracted ones, give none.
pub fn objects(incidents: &[ExportIncident<'_>], options: &ExportOptions) -> Vec<Value> {
    let mut markings = BTreeSet::new();
    let mut identities: BTreeMap<Fingerprint, String> = BTreeMap::new();
    let mut own = Vec::new();
    for incident in incidents {
        if let Some(parts) = parts(incident, options) {
            markings.extend(parts.markings);
            for (fingerprint, (name, _)) in parts.identities {
                identities.entry(fingerprint).or_insert(name);
            }
            own.extend(parts.objects);
        }
    }
    let (producer_name, producer) = &options.producer;
    identities.remove(producer);
    let mut out: Vec<Value> = markings.into_iter().map(marking::object).collect();
    out.push(identity(producer, producer_name));
    out.extend(identities.iter().map(|(f, name)| identity(f, name)));
    out.extend(own);
    out
}

/// One incident's objects, with the marking definitions and identities
/// they refer to: what a TAXII server serves for it. The incident's own
/// objects are the same as in [`objects`].
pub fn incident_objects(incident: &ExportIncident<'_>, options: &ExportOptions) -> Vec<Value> {
    let Some(parts) = parts(incident, options) else {
        return Vec::new();
    };
    let mut out: Vec<Value> = parts.markings.into_iter().map(marking::object).collect();
    out.extend(
        parts
            .identities
            .iter()
            .map(|(f, (name, _))| identity(f, name)),
    );
    out.extend(parts.objects);
    out
}

/// One incident's own objects, and what they refer to.
struct Parts {
    objects: Vec<Value>,
    markings: BTreeSet<Tlp>,
    /// Each CERT referred to: its name and identity id.
    identities: BTreeMap<Fingerprint, (String, String)>,
}

fn parts(incident: &ExportIncident<'_>, options: &ExportOptions) -> Option<Parts> {
    let state = incident.state;
    let content = state.content.as_ref()?;
    if state.retracted.is_some() {
        return None;
    }
    let reporter = state.reporter.as_ref()?;
    let mut parts = Parts {
        objects: Vec::new(),
        markings: BTreeSet::new(),
        identities: BTreeMap::new(),
    };
    // The identity id of a CERT the incident's objects name, noting it
    // and the TLP of the object that names it. Named once per CERT: an
    // incident may have a million indicators and a handful of CERTs.
    let refer = |parts: &mut Parts, fingerprint: &Fingerprint, tlp: Tlp| {
        parts.markings.insert(tlp);
        if let Some((_, id)) = parts.identities.get(fingerprint) {
            return id.clone();
        }
        let id = identity_id(fingerprint);
        let name = name_of(fingerprint, incident, options);
        parts
            .identities
            .insert(fingerprint.clone(), (name, id.clone()));
        id
    };

    let incident_id = incident_id(state);
    let reporter_id = refer(&mut parts, reporter, state.tlp);
    parts
        .objects
        .push(incident_object(state, content, &incident_id, reporter_id));

    // The object exported for each indicator, for sightings.
    let mut exported: HashMap<(IndicatorType, &str), String> = HashMap::new();
    let mut relationships = Vec::new();
    for entry in &state.indicators {
        if options.active_only && entry.expired(options.now, None) {
            continue;
        }
        let tlp = entry.tlp_range(state.tlp).1;
        let author = entry.reported_by.first().unwrap_or(reporter);
        let author_id = refer(&mut parts, author, tlp);
        let (id, object) = indicator_object(state, entry, author_id.clone(), tlp);
        let related_tlp = tlp.max(state.tlp);
        parts.markings.insert(related_tlp);
        relationships.push(json!({
            "type": "relationship",
            "spec_version": "2.1",
            "id": stable_id("relationship", &[&id, "related-to", &incident_id]),
            "created": object["created"],
            "modified": object["modified"],
            "relationship_type": "related-to",
            "source_ref": id,
            "target_ref": incident_id,
            "created_by_ref": author_id,
            "object_marking_refs": [marking::id(related_tlp)],
        }));
        exported.insert((entry.kind, entry.value.as_str()), id);
        parts.objects.push(object);
    }
    parts.objects.extend(relationships);

    for entry in &state.timeline {
        // A false-positive report is no sighting; STIX has no object for it.
        let Event::Sighting {
            kind,
            value,
            seen,
            count,
            comment,
            false_positive: false,
        } = &entry.event
        else {
            continue;
        };
        let Some(target) = exported.get(&(*kind, value.as_str())) else {
            continue;
        };
        let tlp = entry.label(state.tlp);
        let author = refer(&mut parts, &entry.author, tlp);
        let id = stable_id(
            "sighting",
            &[
                &state.id.to_string(),
                &entry.envelope.to_hex(),
                kind.as_str(),
                value,
            ],
        );
        let mut object = Map::new();
        object.insert("type".into(), json!("sighting"));
        object.insert("spec_version".into(), json!("2.1"));
        object.insert("id".into(), json!(id));
        object.insert("created".into(), json!(stix_time(entry.at)));
        object.insert("modified".into(), json!(stix_time(entry.at)));
        object.insert("first_seen".into(), json!(stix_time(*seen)));
        object.insert("last_seen".into(), json!(stix_time(*seen)));
        object.insert("count".into(), json!((*count).min(MAX_SIGHTING_COUNT)));
        object.insert("sighting_of_ref".into(), json!(target));
        object.insert("where_sighted_refs".into(), json!([author]));
        if let Some(comment) = comment.as_deref().filter(|c| !c.is_empty()) {
            object.insert("description".into(), json!(comment));
        }
        object.insert("created_by_ref".into(), json!(author));
        object.insert("object_marking_refs".into(), json!([marking::id(tlp)]));
        parts.objects.push(Value::Object(object));
    }
    Some(parts)
}

/// The `incident` object.
fn incident_object(
    state: &IncidentState,
    content: &Content,
    id: &str,
    reporter_id: String,
) -> Value {
    let created = state.filed.unwrap_or(state.updated).min(state.updated);
    let mut object = Map::new();
    object.insert("type".into(), json!("incident"));
    object.insert("spec_version".into(), json!("2.1"));
    object.insert("id".into(), json!(id));
    object.insert("created".into(), json!(stix_time(created)));
    object.insert("modified".into(), json!(stix_time(state.updated)));
    object.insert("name".into(), json!(content.title));
    if !content.description.is_empty() {
        object.insert("description".into(), json!(content.description));
    }
    let (class, kind) = content
        .classification
        .as_str()
        .split_once('/')
        .unwrap_or((content.classification.as_str(), ""));
    object.insert(
        "labels".into(),
        json!([
            format!("rsit:{class}=\"{kind}\""),
            format!("cerd:severity=\"{}\"", content.severity),
            format!("cerd:status=\"{}\"", content.status),
        ]),
    );
    object.insert(
        "external_references".into(),
        json!([{"source_name": "cerd", "external_id": state.id.to_string()}]),
    );
    object.insert("created_by_ref".into(), json!(reporter_id));
    object.insert(
        "object_marking_refs".into(),
        json!([marking::id(state.tlp)]),
    );
    Value::Object(object)
}

/// The `indicator` for an indicator entry, or the `vulnerability` for a
/// CVE, with its id.
fn indicator_object(
    state: &IncidentState,
    entry: &IndicatorEntry,
    author: String,
    tlp: Tlp,
) -> (String, Value) {
    let incident = state.id.to_string();
    let name = if entry.kind == IndicatorType::Cve {
        entry.value.clone()
    } else {
        format!("{} {}", entry.kind, entry.value)
    };
    let description = entry
        .comment
        .clone()
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| name.clone());
    let changed = [Some(entry.last_seen), entry.valid_until_set]
        .into_iter()
        .flatten()
        .fold(entry.first_seen, Timestamp::max);
    let mut object = Map::new();
    let id = if entry.kind == IndicatorType::Cve {
        stable_id(
            "vulnerability",
            &[&incident, entry.kind.as_str(), &entry.value],
        )
    } else {
        stable_id("indicator", &[&incident, entry.kind.as_str(), &entry.value])
    };
    object.insert(
        "type".into(),
        json!(if entry.kind == IndicatorType::Cve {
            "vulnerability"
        } else {
            "indicator"
        }),
    );
    object.insert("spec_version".into(), json!("2.1"));
    object.insert("id".into(), json!(id.clone()));
    object.insert("created".into(), json!(stix_time(entry.first_seen)));
    object.insert("modified".into(), json!(stix_time(changed)));
    object.insert("name".into(), json!(name));
    object.insert("description".into(), json!(description));
    if entry.kind == IndicatorType::Cve {
        object.insert(
            "external_references".into(),
            json!([{"source_name": "cve", "external_id": entry.value}]),
        );
    } else {
        object.insert("indicator_types".into(), json!(["malicious-activity"]));
        object.insert(
            "pattern".into(),
            json!(pattern_for(entry.kind, &entry.value)),
        );
        object.insert("pattern_type".into(), json!("stix"));
        object.insert("pattern_version".into(), json!("2.1"));
        let (from, until) = validity(entry.first_seen, entry.valid_until);
        object.insert("valid_from".into(), json!(from));
        if let Some(until) = until {
            object.insert("valid_until".into(), json!(until));
        }
    }
    if let Some(confidence) = entry.confidence {
        object.insert("confidence".into(), json!(confidence.min(100)));
    }
    object.insert("created_by_ref".into(), json!(author));
    object.insert("object_marking_refs".into(), json!([marking::id(tlp)]));
    (id, Value::Object(object))
}

/// `valid_from` and `valid_until`. STIX wants `valid_until` after
/// `valid_from`; an indicator its author expired before it was first seen
/// is written valid from a millisecond before its end.
fn validity(first_seen: Timestamp, valid_until: Option<Timestamp>) -> (String, Option<String>) {
    let from = stix_time(first_seen);
    let Some(until) = valid_until else {
        return (from, None);
    };
    let end = stix_time(until);
    if end > from {
        return (from, Some(end));
    }
    let before = Timestamp::from_unix_nanos(until.unix_nanos().saturating_sub(1_000_000));
    (stix_time(before), Some(end))
}

/// The STIX pattern matching an indicator value.
pub(crate) fn pattern_for(kind: IndicatorType, value: &str) -> String {
    let path = match kind {
        IndicatorType::Ipv4 => "ipv4-addr:value",
        IndicatorType::Ipv6 => "ipv6-addr:value",
        IndicatorType::Cidr if value.contains(':') => "ipv6-addr:value",
        IndicatorType::Cidr => "ipv4-addr:value",
        IndicatorType::Domain => "domain-name:value",
        IndicatorType::Url => "url:value",
        IndicatorType::Email => "email-addr:value",
        IndicatorType::Md5 => "file:hashes.MD5",
        IndicatorType::Sha1 => "file:hashes.'SHA-1'",
        IndicatorType::Sha256 => "file:hashes.'SHA-256'",
        IndicatorType::Sha512 => "file:hashes.'SHA-512'",
        IndicatorType::Filename => "file:name",
        IndicatorType::Asn => {
            let number = value.trim_start_matches("AS");
            return format!("[autonomous-system:number = {number}]");
        }
        // No pattern names a vulnerability; CVEs are written as
        // vulnerability objects, and this branch is never asked for.
        IndicatorType::Cve => "vulnerability:name",
    };
    format!("[{path} = '{}']", escape(value))
}

fn incident_id(state: &IncidentState) -> String {
    if state.id.get_version_num() == 4 {
        format!("incident--{}", state.id)
    } else {
        stable_id("incident", &[&state.id.to_string()])
    }
}

fn identity_id(fingerprint: &Fingerprint) -> String {
    stable_id("identity", &[fingerprint.as_str()])
}

/// The `identity` object of a CERT, the same in every export.
pub fn identity(fingerprint: &Fingerprint, name: &str) -> Value {
    json!({
        "type": "identity",
        "spec_version": "2.1",
        "id": identity_id(fingerprint),
        "created": IDENTITY_TIME,
        "modified": IDENTITY_TIME,
        "name": name,
        "identity_class": "organization",
        "external_references": [{
            "source_name": "openpgp-fingerprint",
            "external_id": fingerprint.as_str(),
        }],
    })
}

/// A CERT's name: this node's, the names the caller knows, the name the
/// caller gave the incident's reporter, else its fingerprint's short
/// form. The shared names come first so that one CERT has one name in
/// every incident's objects.
fn name_of(
    fingerprint: &Fingerprint,
    incident: &ExportIncident<'_>,
    options: &ExportOptions,
) -> String {
    if options.producer.1 == *fingerprint {
        return options.producer.0.clone();
    }
    if let Some((_, name)) = options.names.iter().find(|(f, _)| f == fingerprint) {
        return name.clone();
    }
    match incident.reporter_name {
        Some(name) if incident.state.reporter.as_ref() == Some(fingerprint) => name.to_owned(),
        _ => format!("CERT {}", fingerprint.short()),
    }
}
