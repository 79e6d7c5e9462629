//! STIX 2.1 export: the objects it writes, their stability, and the OASIS
//! validator's verdict on them (when CER_PYTHON names a Python with the
//! validators; `bash .ci/python-tools` makes one).

mod common;

use std::time::Duration;

use cer_interop::{ExportIncident, ExportOptions};
use cer_proto::api::FileIncident;
use cer_proto::envelope::{Body, RetractionBody, SightingBody, UpdateBody};
use cer_proto::incident::IncidentState;
use cer_proto::model::{Classification, Indicator, Severity, Tlp};
use common::{envelope, export_options, export_states, fpr, import, states_of, ts};
use serde_json::Value;
use uuid::Uuid;

const SUBJECT: Uuid = uuid::uuid!("6f1c2b1e-0d4a-4c1e-9a57-3d2f8e6b7a10");

fn indicator(spec: &str) -> Indicator {
    Indicator::parse_spec(spec).unwrap()
}

/// An incident as a node holds it after some history: filed GREEN by A
/// with an indicator of every type; an AMBER update adding an address; A
/// expiring the domain before it was first seen; B sighting two of them.
fn lived_incident() -> IncidentState {
    let mut file = FileIncident::new(
        "C2 \"servers\" & it's <fine>",
        Severity::High,
        Tlp::Green,
        Classification::parse("malicious-code/c2-server").unwrap(),
    );
    file.description = "Seen from CERT A's sensors.\nSecond line.".into();
    file.indicators = [
        "ipv4:203.0.113.7",
        "ipv6:2001:db8::7",
        "cidr:198.51.100.0/24",
        "cidr:2001:db8:1::/48",
        "domain:c2.example",
        "url:http://c2.example/it's\\here?q='x'",
        "email:it's@c2.example",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709",
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "asn:AS64500",
        "cve:CVE-2021-44228",
        "filename:it's a \\ \"file\".exe",
    ]
    .iter()
    .map(|spec| indicator(spec))
    .collect();
    file.indicators[0].confidence = Some(90);
    file.indicators[0].comment = Some("the C2".into());
    file.indicators[0].valid_until = Some(ts("2026-12-28T13:00:00Z"));
    let filed = ts("2026-11-28T13:00:00Z");
    let mut sha512 = indicator(&format!("sha512:{}", "a".repeat(128)));
    sha512.comment = Some("dropped by the loader".into());
    let mut expired = indicator("domain:c2.example");
    expired.valid_until = Some(ts("2026-11-01T00:00:00Z"));
    let inputs = vec![
        envelope(
            0,
            &fpr('A'),
            1,
            SUBJECT,
            filed,
            Tlp::Green,
            Body::Incident(file.to_body().unwrap()),
        ),
        envelope(
            1,
            &fpr('A'),
            2,
            SUBJECT,
            ts("2026-11-28T14:00:00Z"),
            Tlp::Amber,
            Body::Update(UpdateBody {
                indicators: vec![sha512, indicator("ipv4:192.0.2.66")],
                ..UpdateBody::default()
            }),
        ),
        envelope(
            2,
            &fpr('A'),
            3,
            SUBJECT,
            ts("2026-11-28T15:00:00Z"),
            Tlp::Green,
            Body::Update(UpdateBody {
                indicators: vec![expired],
                note: Some("expired".into()),
                ..UpdateBody::default()
            }),
        ),
        envelope(
            3,
            &fpr('B'),
            1,
            SUBJECT,
            ts("2026-11-29T09:00:00Z"),
            Tlp::Green,
            Body::Sighting(SightingBody {
                indicator: indicator("ipv4:203.0.113.7"),
                seen: ts("2026-11-29T08:59:00.123456Z"),
                count: 2_000_000_000,
                comment: Some("firewall hits".into()),
                false_positive: false,
            }),
        ),
        envelope(
            4,
            &fpr('C'),
            1,
            SUBJECT,
            ts("2026-11-29T10:00:00Z"),
            Tlp::Green,
            Body::Sighting(SightingBody {
                indicator: indicator("cve:CVE-2021-44228"),
                seen: ts("2026-11-29T10:00:00Z"),
                count: 1,
                comment: None,
                false_positive: false,
            }),
        ),
    ];
    IncidentState::fold(SUBJECT, &inputs).unwrap()
}

/// A RED incident under a non-v4 id, and two that must give nothing: one
/// retracted, one this node cannot read.
fn other_incidents() -> Vec<IncidentState> {
    let mut red = FileIncident::new(
        "Red one",
        Severity::Critical,
        Tlp::Red,
        Classification::parse("intrusions/system-compromise").unwrap(),
    );
    red.indicators = vec![indicator("domain:red.example")];
    let red = common::filed(
        &red,
        Uuid::nil(),
        &fpr('B'),
        ts("2026-11-27T00:00:00Z"),
        &[],
    );

    let mut gone = FileIncident::new(
        "Withdrawn",
        Severity::Low,
        Tlp::Clear,
        Classification::parse("test/test").unwrap(),
    );
    gone.indicators = vec![indicator("domain:gone.example")];
    let gone_id = Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111);
    let retracted = IncidentState::fold(
        gone_id,
        &[
            envelope(
                10,
                &fpr('A'),
                1,
                gone_id,
                ts("2026-11-27T00:00:00Z"),
                Tlp::Clear,
                Body::Incident(gone.to_body().unwrap()),
            ),
            envelope(
                11,
                &fpr('A'),
                2,
                gone_id,
                ts("2026-11-27T01:00:00Z"),
                Tlp::Clear,
                Body::Retraction(RetractionBody {
                    target: None,
                    reason: None,
                }),
            ),
        ],
    )
    .unwrap();

    let sealed_id = Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222);
    let mut sealed = envelope(
        12,
        &fpr('A'),
        1,
        sealed_id,
        ts("2026-11-27T00:00:00Z"),
        Tlp::Red,
        Body::Incident(gone.to_body().unwrap()),
    );
    sealed.body = None;
    let unreadable = IncidentState::fold(sealed_id, &[sealed]).unwrap();
    vec![red, retracted, unreadable]
}

fn export_of(states: &[IncidentState], options: &ExportOptions) -> Value {
    serde_json::from_slice(&export_states(states, options)).unwrap()
}

fn of_type<'v>(bundle: &'v Value, kind: &str) -> Vec<&'v Value> {
    bundle["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["type"] == kind)
        .collect()
}

fn all_states() -> Vec<IncidentState> {
    let mut states = vec![lived_incident()];
    states.extend(other_incidents());
    for fixture in ["indicators.json", "report.json", "refusals.json"] {
        states.extend(states_of(&import(fixture)));
    }
    states
}

#[test]
fn the_oasis_validator_accepts_every_export() {
    let states = all_states();
    let options = export_options();
    if !common::validate_with_oasis(&export_states(&states, &options)) {
        return;
    }
    let active = ExportOptions {
        active_only: true,
        ..options.clone()
    };
    assert!(common::validate_with_oasis(&export_states(
        &states, &active
    )));
    // What TAXII serves for one incident is a valid bundle on its own.
    let state = lived_incident();
    let incident = ExportIncident {
        state: &state,
        reporter_name: None,
    };
    let objects = cer_interop::stix::incident_objects(&incident, &options);
    let bundle = serde_json::json!({
        "type": "bundle",
        "id": "bundle--6f1c2b1e-0d4a-4c1e-9a57-3d2f8e6b7a11",
        "objects": objects,
    });
    assert!(common::validate_with_oasis(
        &serde_json::to_vec(&bundle).unwrap()
    ));
}

#[test]
fn the_incident_and_its_indicators() {
    let bundle = export_of(&[lived_incident()], &export_options());
    assert_eq!(bundle["type"], "bundle");
    let incidents = of_type(&bundle, "incident");
    assert_eq!(incidents.len(), 1);
    let incident = incidents[0];
    assert_eq!(incident["id"], format!("incident--{SUBJECT}"));
    assert_eq!(incident["name"], "C2 \"servers\" & it's <fine>");
    assert_eq!(incident["created"], "2026-11-28T13:00:00.000Z");
    assert_eq!(incident["modified"], "2026-11-29T10:00:00.000Z");
    assert_eq!(
        incident["labels"],
        serde_json::json!([
            "rsit:malicious-code=\"c2-server\"",
            "cerd:severity=\"high\"",
            "cerd:status=\"new\""
        ])
    );
    assert_eq!(
        incident["external_references"][0],
        serde_json::json!({"source_name": "cerd", "external_id": SUBJECT.to_string()})
    );
    let green = "marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb";
    let amber = "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421";
    assert_eq!(incident["object_marking_refs"], serde_json::json!([green]));

    let patterns: Vec<&str> = of_type(&bundle, "indicator")
        .iter()
        .map(|i| i["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(
        patterns,
        [
            "[ipv4-addr:value = '203.0.113.7']",
            "[ipv6-addr:value = '2001:db8::7']",
            "[ipv4-addr:value = '198.51.100.0/24']",
            "[ipv6-addr:value = '2001:db8:1::/48']",
            "[domain-name:value = 'c2.example']",
            "[url:value = 'http://c2.example/it\\'s/here?q=%27x%27']",
            "[email-addr:value = 'it\\'s@c2.example']",
            "[file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']",
            "[file:hashes.'SHA-1' = 'da39a3ee5e6b4b0d3255bfef95601890afd80709']",
            "[file:hashes.'SHA-256' = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855']",
            "[autonomous-system:number = 64500]",
            "[file:name = 'it\\'s a \\\\ \"file\".exe']",
            &format!("[file:hashes.'SHA-512' = '{}']", "a".repeat(128)),
            "[ipv4-addr:value = '192.0.2.66']",
        ]
    );
    let first = of_type(&bundle, "indicator")[0];
    assert_eq!(first["name"], "ipv4 203.0.113.7");
    assert_eq!(first["description"], "the C2");
    assert_eq!(first["confidence"], 90);
    assert_eq!(first["valid_from"], "2026-11-28T13:00:00.000Z");
    assert_eq!(first["valid_until"], "2026-12-28T13:00:00.000Z");
    assert_eq!(
        first["indicator_types"],
        serde_json::json!(["malicious-activity"])
    );
    assert_eq!(first["pattern_type"], "stix");
    assert_eq!(first["spec_version"], "2.1");
    assert_eq!(first["object_marking_refs"], serde_json::json!([green]));
    // Named only by an AMBER update: marked AMBER, and so is its link.
    let added = of_type(&bundle, "indicator")[13];
    assert_eq!(added["object_marking_refs"], serde_json::json!([amber]));
    // Expired by its author before it was first seen: still valid STIX.
    let domain = of_type(&bundle, "indicator")[4];
    assert_eq!(domain["valid_from"], "2026-10-31T23:59:59.999Z");
    assert_eq!(domain["valid_until"], "2026-11-01T00:00:00.000Z");

    let vulnerabilities = of_type(&bundle, "vulnerability");
    assert_eq!(vulnerabilities.len(), 1);
    assert_eq!(vulnerabilities[0]["name"], "CVE-2021-44228");
    assert_eq!(
        vulnerabilities[0]["external_references"],
        serde_json::json!([{"source_name": "cve", "external_id": "CVE-2021-44228"}])
    );

    let relationships = of_type(&bundle, "relationship");
    assert_eq!(relationships.len(), 15);
    for relationship in &relationships {
        assert_eq!(relationship["relationship_type"], "related-to");
        assert_eq!(relationship["target_ref"], incident["id"]);
    }
    assert_eq!(
        relationships[13]["object_marking_refs"],
        serde_json::json!([amber])
    );
}

#[test]
fn sightings_identities_and_markings() {
    let bundle = export_of(&[lived_incident()], &export_options());
    let sightings = of_type(&bundle, "sighting");
    assert_eq!(sightings.len(), 2);
    let first = sightings[0];
    assert_eq!(
        first["sighting_of_ref"],
        of_type(&bundle, "indicator")[0]["id"]
    );
    assert_eq!(first["count"], 999_999_999, "STIX's largest count");
    assert_eq!(first["first_seen"], "2026-11-29T08:59:00.123Z");
    assert_eq!(first["last_seen"], "2026-11-29T08:59:00.123Z");
    assert_eq!(first["created"], "2026-11-29T09:00:00.000Z");
    assert_eq!(first["description"], "firewall hits");
    assert_eq!(
        sightings[1]["sighting_of_ref"],
        of_type(&bundle, "vulnerability")[0]["id"]
    );

    let identities: Vec<(&str, &str)> = of_type(&bundle, "identity")
        .iter()
        .map(|i| (i["name"].as_str().unwrap(), i["id"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = identities.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        ["CERT-Producer", "CERT-A", "CERT-B", "CERT CCCCCCCCCCCCCCCC"]
    );
    assert_eq!(
        first["where_sighted_refs"],
        serde_json::json!([identities[2].1])
    );
    assert_eq!(
        of_type(&bundle, "incident")[0]["created_by_ref"],
        identities[1].1
    );

    let markings: Vec<&str> = of_type(&bundle, "marking-definition")
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(markings, ["TLP:GREEN", "TLP:AMBER"]);
    assert_eq!(bundle["objects"][0]["type"], "marking-definition");
}

#[test]
fn re_export_is_the_same_bundle() {
    let states = all_states();
    let options = export_options();
    let first = export_states(&states, &options);
    assert_eq!(first, export_states(&states, &options));
    let later = ExportOptions {
        now: ts("2027-06-01T00:00:00Z"),
        ..options.clone()
    };
    assert_eq!(
        first,
        export_states(&states, &later),
        "the clock plays no part"
    );
    // A change moves the bundle id and the changed objects' `modified`,
    // not the ids of the objects.
    let mut changed = states.clone();
    changed[0].updated = changed[0].updated.plus(Duration::from_secs(60));
    let before: Value = serde_json::from_slice(&first).unwrap();
    let after = export_of(&changed, &options);
    assert_ne!(before["id"], after["id"]);
    let ids = |bundle: &Value| -> Vec<Value> {
        bundle["objects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].clone())
            .collect()
    };
    assert_eq!(ids(&before), ids(&after));
}

#[test]
fn active_only_leaves_out_expired_indicators_and_their_sightings() {
    let state = lived_incident();
    let active = ExportOptions {
        now: ts("2027-01-01T00:00:00Z"),
        active_only: true,
        ..export_options()
    };
    let bundle = export_of(std::slice::from_ref(&state), &active);
    let names: Vec<&str> = of_type(&bundle, "indicator")
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.contains(&"ipv4 203.0.113.7"),
        "valid until 2026-12-28"
    );
    assert!(
        !names.contains(&"domain c2.example"),
        "expired by its author"
    );
    assert!(names.contains(&"ipv6 2001:db8::7"), "no end");
    assert_eq!(of_type(&bundle, "sighting").len(), 1, "only the CVE's");
    assert_eq!(
        of_type(&bundle, "relationship").len(),
        of_type(&bundle, "indicator").len() + 1
    );
}

#[test]
fn what_this_node_cannot_read_or_was_retracted_gives_nothing() {
    let states = other_incidents();
    let bundle = export_of(&states, &export_options());
    let incidents = of_type(&bundle, "incident");
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0]["name"], "Red one");
    assert_ne!(incidents[0]["id"], format!("incident--{}", Uuid::nil()));
    assert!(incidents[0]["id"]
        .as_str()
        .unwrap()
        .starts_with("incident--"));
    assert!(
        !String::from_utf8(export_states(&states, &export_options()))
            .unwrap()
            .contains("gone.example")
    );
    let options = export_options();
    for state in &states[1..] {
        let incident = ExportIncident {
            state,
            reporter_name: None,
        };
        assert!(cer_interop::stix::incident_objects(&incident, &options).is_empty());
    }
    let nothing = export_of(&[], &options);
    assert_eq!(of_type(&nothing, "identity").len(), 1, "the producer only");
    assert_eq!(nothing["objects"].as_array().unwrap().len(), 1);
}

#[test]
fn objects_are_what_export_writes() {
    let states = all_states();
    let options = export_options();
    let incidents: Vec<ExportIncident<'_>> = states
        .iter()
        .map(|state| ExportIncident {
            state,
            reporter_name: Some("CERT-A"),
        })
        .collect();
    let bundle: Value =
        serde_json::from_slice(&cer_interop::stix::export(&incidents, &options)).unwrap();
    assert_eq!(
        bundle["objects"].as_array().unwrap(),
        &cer_interop::stix::objects(&incidents, &options)
    );
    // Each incident's own objects appear as they are in the bundle.
    let all = cer_interop::stix::objects(&incidents, &options);
    for incident in &incidents {
        for object in cer_interop::stix::incident_objects(incident, &options) {
            assert!(all.contains(&object), "{}", object["id"]);
        }
    }
}
