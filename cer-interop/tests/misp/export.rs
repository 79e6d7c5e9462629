//! What the MISP exporter writes, field by field.

use cer_interop::misp;
use cer_interop::{ExportIncident, ExportOptions};
use cer_proto::incident::Retracted;
use cer_proto::EnvelopeId;
use serde_json::Value;

use crate::common::{at, cert_b, export_incident, export_options, sample_state};

fn attribute<'a>(event: &'a Value, value: &str) -> &'a Value {
    event["Event"]["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["value"] == value)
        .unwrap_or_else(|| panic!("no attribute {value}"))
}

#[test]
fn an_incident_becomes_one_event() {
    let state = sample_state();
    let options = export_options();
    let event = misp::export_event(&export_incident(&state), &options).unwrap();
    let e = &event["Event"];
    assert_eq!(e["uuid"], state.id.to_string());
    assert_eq!(e["info"], "C2 wave");
    assert_eq!(e["date"], "2026-11-02", "the day it occurred");
    assert_eq!(e["threat_level_id"], "1", "critical is MISP's high");
    assert_eq!(e["analysis"], "1", "contained is ongoing");
    assert_eq!(
        e["timestamp"],
        at("2026-11-25T12:00:00Z").unix_seconds().to_string()
    );
    assert_eq!(e["published"], true);
    assert_eq!(e["Orgc"]["name"], "CERT-B");
    assert_eq!(e["Orgc"]["uuid"], misp::org_uuid(&cert_b()).to_string());
    let tags: Vec<&str> = e["Tag"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        tags,
        [
            "tlp:green",
            "rsit:malicious-code=\"c2-server\"",
            "type:osint"
        ]
    );
    assert_eq!(e["attribute_count"], "14");

    for (value, kind, category, to_ids) in [
        ("192.0.2.10", "ip-dst", "Network activity", false),
        ("2001:db8::5", "ip-dst", "Network activity", true),
        ("198.51.100.0/24", "ip-dst", "Network activity", true),
        ("evil.example", "domain", "Network activity", false),
        (
            "https://evil.example/gate.php?id=1",
            "url",
            "Network activity",
            true,
        ),
        ("=phish@evil.example", "email", "Payload delivery", true),
        (
            "d41d8cd98f00b204e9800998ecf8427e",
            "md5",
            "Payload delivery",
            true,
        ),
        (
            "da39a3ee5e6b4b0d3255bfef95601890afd80709",
            "sha1",
            "Payload delivery",
            true,
        ),
        (
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256",
            "Payload delivery",
            true,
        ),
        ("64500", "AS", "Network activity", false),
        (
            "CVE-2021-44228",
            "vulnerability",
            "External analysis",
            false,
        ),
        ("+invoice.exe", "filename", "Payload delivery", true),
        ("203.0.113.77", "ip-dst", "Network activity", true),
    ] {
        let a = attribute(&event, value);
        assert_eq!(
            (a["type"].as_str(), a["category"].as_str()),
            (Some(kind), Some(category)),
            "{value}"
        );
        assert_eq!(a["to_ids"], to_ids, "{value}: low confidence (192.0.2.10), expired (evil.example), AS and CVE are not for detection");
        assert!(a["timestamp"].is_string());
    }
    let sha512 = event["Event"]["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["type"] == "sha512")
        .unwrap();
    assert_eq!(sha512["category"], "Payload delivery");
    assert_eq!(
        attribute(&event, "https://evil.example/gate.php?id=1")["comment"],
        "@SUM(A1) - seen in the lure"
    );
    assert_eq!(
        attribute(&event, "203.0.113.77")["Tag"][0]["name"],
        "tlp:amber",
        "shared under a stricter label"
    );
    assert!(attribute(&event, "2001:db8::5").get("Tag").is_none());

    // The same incident is the same event, attribute for attribute.
    let again = misp::export_event(&export_incident(&state), &options).unwrap();
    assert_eq!(event, again);
    let mut other = state.clone();
    other.id = uuid::Uuid::parse_str("3f1c2e8a-1b2c-4d3e-8f40-aa0123456780").unwrap();
    let moved = misp::export_event(&export_incident(&other), &options).unwrap();
    assert_ne!(
        attribute(&event, "2001:db8::5")["uuid"],
        attribute(&moved, "2001:db8::5")["uuid"]
    );
}

#[test]
fn active_only_leaves_expired_indicators_out() {
    let state = sample_state();
    let options = ExportOptions {
        active_only: true,
        ..export_options()
    };
    let event = misp::export_event(&export_incident(&state), &options).unwrap();
    let values: Vec<&str> = event["Event"]["Attribute"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["value"].as_str().unwrap())
        .collect();
    assert!(!values.contains(&"evil.example"));
    assert_eq!(values.len(), 13);
}

#[test]
fn names_come_from_the_caller_first() {
    let state = sample_state();
    let mut options = export_options();
    let named = ExportIncident {
        state: &state,
        reporter_name: Some("CERT-B (national)"),
    };
    let event = misp::export_event(&named, &options).unwrap();
    assert_eq!(event["Event"]["Orgc"]["name"], "CERT-B (national)");
    options.names.clear();
    let event = misp::export_event(&export_incident(&state), &options).unwrap();
    assert_eq!(
        event["Event"]["Orgc"]["name"],
        cert_b().as_str(),
        "unknown CERTs by fingerprint"
    );
}

#[test]
fn retracted_and_unreadable_incidents_export_nothing() {
    let options = export_options();
    let mut retracted = sample_state();
    retracted.retracted = Some(Retracted {
        by: EnvelopeId::of(b"retraction"),
        at: at("2026-11-26T00:00:00Z"),
        reason: None,
    });
    assert_eq!(
        misp::export_event(&export_incident(&retracted), &options),
        None
    );
    let mut unreadable = sample_state();
    unreadable.content = None;
    unreadable.readable = false;
    assert_eq!(
        misp::export_event(&export_incident(&unreadable), &options),
        None
    );

    let state = sample_state();
    let all = [
        export_incident(&state),
        export_incident(&retracted),
        export_incident(&unreadable),
    ];
    let bytes = misp::export(&all, &options);
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let events = doc["response"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["Event"]["uuid"], state.id.to_string());
}
