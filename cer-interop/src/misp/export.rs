//! Incidents → MISP event JSON, in the shape PyMISP's strict schema
//! (`schema.json`) accepts: numbers as strings, no keys it does not list.

use cer_proto::incident::IndicatorEntry;
use cer_proto::model::{Classification, IndicatorType, Severity, Status, Timestamp, Tlp};
use cer_proto::Fingerprint;
use serde_json::{json, Value};
use uuid::Uuid;

use super::attribute::{write, write_value};
use super::IDS_MIN_CONFIDENCE;
use crate::{ExportIncident, ExportOptions};

/// One incident as `{"Event": …}`; None when this node cannot read it or
/// it was retracted (there is nothing to say about it).
///
/// The event's uuid is the incident's, so every export of the incident
/// is the same MISP event; each attribute's uuid is derived from the
/// incident, type and value, so it is stable too.
pub fn export_event(incident: &ExportIncident<'_>, options: &ExportOptions) -> Option<Value> {
    let state = incident.state;
    if state.retracted.is_some() {
        return None;
    }
    let content = state.content.as_ref()?;
    let (org_name, org) = organisation(incident, options);
    let mut tags = vec![
        json!({ "name": tlp_tag(state.tlp) }),
        json!({ "name": rsit_tag(&content.classification) }),
    ];
    tags.extend(content.tags.iter().map(|tag| json!({ "name": tag })));
    let attributes: Vec<Value> = state
        .indicators
        .iter()
        .filter(|entry| !(options.active_only && entry.expired(options.now, None)))
        .map(|entry| attribute(state.id, state.tlp, entry, options.now))
        .collect();
    let date = content.occurred.or(state.filed).unwrap_or(state.updated);
    let timestamp = seconds(state.updated);
    Some(json!({
        "Event": {
            "uuid": state.id.to_string(),
            "info": content.title,
            "date": day(date),
            "threat_level_id": threat_level(content.severity),
            "analysis": analysis(content.status),
            "timestamp": timestamp,
            "publish_timestamp": timestamp,
            "published": true,
            "attribute_count": attributes.len().to_string(),
            "Orgc": { "name": org_name, "uuid": org.to_string() },
            "Tag": tags,
            "Attribute": attributes,
        }
    }))
}

/// Several incidents as MISP's REST answer, `{"response": [{"Event":
/// …}, …]}`, which MISP's event import reads whole and PyMISP's
/// `MISPEvent.load` reads one entry of.
pub fn export(incidents: &[ExportIncident<'_>], options: &ExportOptions) -> Vec<u8> {
    let events: Vec<Value> = incidents
        .iter()
        .filter_map(|incident| export_event(incident, options))
        .collect();
    let mut out = serde_json::to_vec_pretty(&json!({ "response": events }))
        .unwrap_or_else(|_| b"{\"response\":[]}".to_vec());
    out.push(b'\n');
    out
}

/// A CERT as a MISP organisation: its uuid derived from its fingerprint,
/// so every export from every node names it alike.
pub fn org_uuid(fingerprint: &Fingerprint) -> Uuid {
    let namespace = Uuid::new_v5(&Uuid::NAMESPACE_URL, b"urn:cerd:misp:organisation");
    Uuid::new_v5(&namespace, fingerprint.as_bytes())
}

/// The reporting CERT's name and organisation uuid.
pub(super) fn organisation(
    incident: &ExportIncident<'_>,
    options: &ExportOptions,
) -> (String, Uuid) {
    let reporter = incident.state.reporter.as_ref();
    (
        crate::common::reporter_name(incident, options),
        reporter.map(org_uuid).unwrap_or_else(Uuid::nil),
    )
}

pub(super) fn tlp_tag(tlp: Tlp) -> String {
    format!("tlp:{}", tlp.as_str())
}

/// The MISP `rsit` taxonomy's machine tag, e.g.
/// `rsit:malicious-code="c2-server"`.
pub(super) fn rsit_tag(class: &Classification) -> String {
    format!("rsit:{}=\"{}\"", class.class(), class.kind())
}

pub(super) fn threat_level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "1",
        Severity::Medium => "2",
        Severity::Low => "3",
    }
}

pub(super) fn analysis(status: Status) -> &'static str {
    match status {
        Status::New => "0",
        Status::Open | Status::Contained => "1",
        Status::Resolved | Status::Closed => "2",
    }
}

pub(super) fn day(t: Timestamp) -> String {
    let date = t.0.date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// Unix seconds as MISP writes them (a string, never before 1970).
pub(super) fn seconds(t: Timestamp) -> String {
    t.unix_seconds().max(0).to_string()
}

pub(super) fn attribute_uuid(incident: Uuid, kind: IndicatorType, value: &str) -> Uuid {
    Uuid::new_v5(&incident, format!("{kind}:{value}").as_bytes())
}

fn attribute(incident: Uuid, incident_tlp: Tlp, entry: &IndicatorEntry, now: Timestamp) -> Value {
    let misp = write(entry.kind);
    let expired = entry.expired(now, None);
    let confident = entry
        .confidence
        .is_none_or(|confidence| confidence >= IDS_MIN_CONFIDENCE);
    let mut attribute = json!({
        "uuid": attribute_uuid(incident, entry.kind, &entry.value).to_string(),
        "type": misp.name,
        "category": misp.category,
        "value": write_value(entry.kind, &entry.value),
        "to_ids": misp.to_ids && confident && !expired,
        "comment": entry.comment.clone().unwrap_or_default(),
        "timestamp": seconds(entry.last_seen),
        "disable_correlation": false,
        "deleted": false,
    });
    // Shared under a stricter label than its incident (an AMBER update
    // on a GREEN incident): say so on the attribute.
    let (label, _) = entry.tlp_range(incident_tlp);
    if label != incident_tlp {
        attribute["Tag"] = json!([{ "name": tlp_tag(label) }]);
    }
    attribute
}
