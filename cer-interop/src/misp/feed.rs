//! MISP feed directories: `manifest.json`, `<uuid>.json` per event and
//! `hashes.csv`, the layout of MISP's "MISP Feed" source type.
//!
//! Reading: [`feed_manifest`] lists the events with their timestamps,
//! [`feed_changes`] picks those that are new or changed since the
//! timestamps the caller remembered, and the caller reads each picked
//! file with [`super::import_feed_event`]. Writing: [`export_feed`] gives
//! every file's name and bytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use md5::{Digest, Md5};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::export::{analysis, day, export_event, organisation, threat_level};
use crate::common::{cut, problem};
use crate::{ExportIncident, ExportOptions, FormatError, Problem};

/// One event as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEntry {
    pub uuid: Uuid,
    /// The event's last change, Unix seconds: what tells a changed event.
    pub timestamp: i64,
    pub info: Option<String>,
    /// The creating organisation's name.
    pub org: Option<String>,
    /// The event's date, as written (`2026-11-28`).
    pub date: Option<String>,
}

/// A feed's manifest: its events, and the entries that could not be read
/// (each named by its key, with the reason).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedManifest {
    pub entries: Vec<FeedEntry>,
    pub invalid: Vec<Problem>,
}

/// Reads `manifest.json`: `{"<event uuid>": {"timestamp": …, "info": …,
/// "Orgc": {"name": …}, …}, …}`. Entries come out in uuid order.
pub fn feed_manifest(bytes: &[u8]) -> Result<FeedManifest, FormatError> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let root: Value = serde_json::from_slice(bytes).map_err(|e| FormatError {
        format: "misp-feed",
        reason: format!("manifest.json is not JSON: {e}"),
    })?;
    let Value::Object(map) = root else {
        return Err(FormatError {
            format: "misp-feed",
            reason: "manifest.json must be an object of event uuid → event summary".into(),
        });
    };
    let mut manifest = FeedManifest::default();
    for (key, summary) in &map {
        let at = format!("manifest[\"{}\"]", cut(key, 60));
        let Ok(uuid) = Uuid::parse_str(key.trim()) else {
            manifest
                .invalid
                .push(problem(at, "the key is not an event uuid"));
            continue;
        };
        let timestamp = summary.get("timestamp").and_then(|t| match t {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        let Some(timestamp) = timestamp else {
            manifest.invalid.push(problem(
                at,
                "no timestamp (Unix seconds); without it a change cannot be told",
            ));
            continue;
        };
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
        manifest.entries.push(FeedEntry {
            uuid,
            timestamp,
            info: text(summary.get("info")),
            org: text(summary.pointer("/Orgc/name")),
            date: text(summary.get("date")),
        });
    }
    Ok(manifest)
}

/// The events to import: those not seen before, and those whose
/// timestamp differs from the one remembered for them.
pub fn feed_changes(manifest: &[FeedEntry], previous: &BTreeMap<Uuid, i64>) -> Vec<Uuid> {
    manifest
        .iter()
        .filter(|entry| previous.get(&entry.uuid) != Some(&entry.timestamp))
        .map(|entry| entry.uuid)
        .collect()
}

/// A feed directory's files, name → bytes: `manifest.json`, `hashes.csv`
/// and one `<uuid>.json` per incident that has something to export. The
/// caller writes them into one folder that MISP reads as a feed.
pub fn export_feed(
    incidents: &[ExportIncident<'_>],
    options: &ExportOptions,
) -> Vec<(String, Vec<u8>)> {
    let mut manifest = Map::new();
    let mut hashes = String::new();
    let mut events = Vec::new();
    for incident in incidents {
        let Some(event) = export_event(incident, options) else {
            continue;
        };
        let Some(content) = incident.state.content.as_ref() else {
            continue;
        };
        let state = incident.state;
        let uuid = state.id.to_string();
        let (org_name, org) = organisation(incident, options);
        let tags = event.pointer("/Event/Tag").cloned().unwrap_or(json!([]));
        let date = content.occurred.or(state.filed).unwrap_or(state.updated);
        manifest.insert(
            uuid.clone(),
            json!({
                "Orgc": { "name": org_name, "uuid": org.to_string() },
                "Tag": tags,
                "info": content.title,
                "date": day(date),
                "analysis": number(analysis(content.status)),
                "threat_level_id": number(threat_level(content.severity)),
                "timestamp": state.updated.unix_seconds().max(0),
            }),
        );
        let values = event
            .pointer("/Event/Attribute")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("value").and_then(Value::as_str));
        for value in values {
            let digest = Md5::digest(value.as_bytes());
            for byte in digest {
                let _ = write!(hashes, "{byte:02x}");
            }
            hashes.push(',');
            hashes.push_str(&uuid);
            hashes.push('\n');
        }
        let mut bytes = serde_json::to_vec(&event).unwrap_or_default();
        bytes.push(b'\n');
        events.push((format!("{uuid}.json"), bytes));
    }
    let mut manifest_bytes = serde_json::to_vec(&Value::Object(manifest)).unwrap_or_default();
    manifest_bytes.push(b'\n');
    let mut files = vec![
        ("manifest.json".to_owned(), manifest_bytes),
        ("hashes.csv".to_owned(), hashes.into_bytes()),
    ];
    files.extend(events);
    files
}

fn number(text: &str) -> i64 {
    text.parse().unwrap_or(0)
}
