//! MISP feed directories: the manifest, the incremental pick, one-event
//! files, and the directory the exporter writes.

use std::collections::BTreeMap;

use cer_interop::misp;
use md5::{Digest, Md5};
use serde_json::Value;
use uuid::Uuid;

use crate::common::{export_incident, export_options, fixture, lines, options, sample_state};

const ONE: &str = "8a7b8c9d-0000-4000-8000-000000000001";
const TWO: &str = "8a7b8c9d-0000-4000-8000-000000000002";

fn uuid(text: &str) -> Uuid {
    Uuid::parse_str(text).unwrap()
}

#[test]
fn the_manifest_lists_events_and_refuses_bad_entries() {
    let manifest = misp::feed_manifest(&fixture("misp/feed/manifest.json")).unwrap();
    let got: Vec<(String, i64, Option<&str>, Option<&str>)> = manifest
        .entries
        .iter()
        .map(|e| {
            (
                e.uuid.to_string(),
                e.timestamp,
                e.info.as_deref(),
                e.org.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                ONE.into(),
                1_795_000_000,
                Some("Feed event one"),
                Some("Feed Org")
            ),
            (
                TWO.into(),
                1_795_100_000,
                Some("Feed event two"),
                Some("Feed Org")
            ),
        ]
    );
    assert_eq!(manifest.entries[0].date.as_deref(), Some("2026-11-20"));
    assert_eq!(
        lines(&manifest.invalid),
        [
            "manifest[\"8a7b8c9d-0000-4000-8000-00000000000f\"]: no timestamp (Unix seconds); without it a change cannot be told",
            "manifest[\"not-a-uuid\"]: the key is not an event uuid",
        ]
    );
    assert!(misp::feed_manifest(b"[]").is_err());
    assert!(misp::feed_manifest(b"{")
        .unwrap_err()
        .reason
        .starts_with("manifest.json is not JSON"));
}

#[test]
fn a_second_run_picks_only_changed_events() {
    let manifest = misp::feed_manifest(&fixture("misp/feed/manifest.json")).unwrap();
    let entries = &manifest.entries;
    assert_eq!(
        misp::feed_changes(entries, &BTreeMap::new()),
        [uuid(ONE), uuid(TWO)]
    );
    let remembered: BTreeMap<Uuid, i64> = entries.iter().map(|e| (e.uuid, e.timestamp)).collect();
    assert!(misp::feed_changes(entries, &remembered).is_empty());
    let mut older = remembered.clone();
    older.insert(uuid(TWO), 1_700_000_000);
    assert_eq!(misp::feed_changes(entries, &older), [uuid(TWO)]);
}

#[test]
fn a_feed_file_imports_as_the_event_the_manifest_named() {
    let bytes = fixture(&format!("misp/feed/{ONE}.json"));
    let report =
        misp::import_feed_event(uuid(ONE), &bytes, &options(&format!("{ONE}.json"))).unwrap();
    let file = &report.incidents[0].incident;
    let source = file.source.as_ref().unwrap();
    assert_eq!(
        (source.format.as_str(), source.id.as_str()),
        ("misp-feed", ONE)
    );
    assert_eq!(file.indicators[0].value, "203.0.113.1");
    assert_eq!(file.tlp, cer_proto::model::Tlp::Clear);

    let report = misp::import_feed_event(uuid(TWO), &bytes, &options("x.json")).unwrap();
    assert!(report.incidents.is_empty());
    assert_eq!(
        lines(&report.invalid),
        [format!(
            "Event.uuid: the manifest lists this file as event {TWO}, the event says '{ONE}'"
        )]
    );
    let two_events = format!("[{0}, {0}]", String::from_utf8(bytes).unwrap());
    assert!(misp::import_feed_event(uuid(ONE), two_events.as_bytes(), &options("x")).is_err());
}

#[test]
fn the_exported_directory_is_a_feed() {
    let state = sample_state();
    let files = misp::export_feed(&[export_incident(&state)], &export_options());
    let names: Vec<&str> = files.iter().map(|(name, _)| name.as_str()).collect();
    let event_file = format!("{}.json", state.id);
    assert_eq!(names, ["manifest.json", "hashes.csv", event_file.as_str()]);
    let file = |name: &str| &files.iter().find(|(n, _)| n == name).unwrap().1;

    let manifest: Value = serde_json::from_slice(file("manifest.json")).unwrap();
    let entry = &manifest[state.id.to_string()];
    assert_eq!(entry["info"], "C2 wave");
    assert_eq!(entry["timestamp"], state.updated.unix_seconds());
    assert_eq!(entry["threat_level_id"], 1);
    assert_eq!(entry["analysis"], 1);
    assert_eq!(entry["date"], "2026-11-02");
    assert_eq!(entry["Orgc"]["name"], "CERT-B");
    assert_eq!(entry["Tag"][0]["name"], "tlp:green");

    let event: Value = serde_json::from_slice(file(&event_file)).unwrap();
    let values: Vec<&str> = event["Event"]["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    let hashes = String::from_utf8(file("hashes.csv").clone()).unwrap();
    let want: Vec<String> = values
        .iter()
        .map(|v| {
            let digest: String = Md5::digest(v.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            format!("{digest},{}", state.id)
        })
        .collect();
    assert_eq!(hashes.lines().collect::<Vec<_>>(), want);

    // What we write, we read: the manifest lists it, nothing has changed
    // since, and its event file imports.
    let read = misp::feed_manifest(file("manifest.json")).unwrap();
    assert_eq!(read.entries.len(), 1);
    let remembered = BTreeMap::from([(state.id, state.updated.unix_seconds())]);
    assert!(misp::feed_changes(&read.entries, &remembered).is_empty());
    let report =
        misp::import_feed_event(state.id, file(&event_file), &options(&event_file)).unwrap();
    assert!(report.invalid.is_empty(), "{:?}", lines(&report.invalid));
}
