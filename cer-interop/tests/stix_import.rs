//! STIX 2.1 import on hand-written bundles (tests/fixtures/stix): every
//! mapping row of the README's table, and every refusal.

mod common;

use cer_interop::{ImportOptions, Problem};
use cer_proto::model::{Classification, IndicatorType, Severity, Tlp};
use common::{fixture, import, import_options, ts};
use serde_json::json;

fn problem<'r>(problems: &'r [Problem], object: &str) -> &'r Problem {
    problems
        .iter()
        .find(|p| p.location.starts_with(object))
        .unwrap_or_else(|| panic!("no problem at {object}: {problems:#?}"))
}

#[test]
fn every_indicator_mapping_row() {
    let report = import("indicators.json");
    assert_eq!(report.skipped, []);
    assert_eq!(report.invalid, []);
    assert_eq!(
        report.incidents.len(),
        1,
        "nothing groups them: one incident"
    );
    let imported = &report.incidents[0];
    let incident = &imported.incident;
    assert_eq!(incident.title, "STIX bundle from Vendor CTI");
    // TLP:GREEN (TLP 1.0) indicators and one TLP:AMBER (TLP 2.0) address:
    // the incident takes the most restrictive.
    assert_eq!(incident.tlp, Tlp::Amber);
    assert_eq!(incident.severity, Severity::Medium);
    assert_eq!(incident.classification.as_str(), "other/other");
    let source = incident.source.as_ref().unwrap();
    assert_eq!(source.format, "stix");
    assert_eq!(source.id, "bundle--00000000-0000-4000-8000-000000000100");
    assert_eq!(source.creator.as_deref(), Some("Vendor CTI"));
    assert_eq!(source.file.as_deref(), Some("bundle.json"));

    let got: Vec<String> = incident.indicators.iter().map(|i| i.to_string()).collect();
    let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let want = [
        "ipv4:203.0.113.7".to_owned(),
        "cidr:198.51.100.0/24".into(),
        "ipv6:2001:db8::1".into(),
        "cidr:2001:db8:1::/48".into(),
        "domain:evil.example".into(),
        // WHATWG parsing reads a backslash in an http URL as a slash.
        "url:http://evil.example/it's/here".into(),
        "email:phish@evil.example".into(),
        "email:boss@evil.example".into(),
        "md5:d41d8cd98f00b204e9800998ecf8427e".into(),
        "sha1:da39a3ee5e6b4b0d3255bfef95601890afd80709".into(),
        format!("sha256:{sha256}"),
        "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e".into(),
        "filename:invoice.pdf.exe".into(),
        format!("sha256:{}", "ab".repeat(32)),
        "asn:AS64500".into(),
        "ipv4:192.0.2.10".into(),
        "domain:scanner.example".into(),
        "cidr:192.0.2.128/25".into(),
        "domain:a.example".into(),
        "domain:b.example".into(),
        "cve:CVE-2021-44228".into(),
        "ipv4:192.0.2.99".into(),
        "filename:dropper.dll".into(),
        format!("sha256:{}", "cd".repeat(32)),
        "asn:AS64501".into(),
        "domain:xn--bcher-kva.example".into(),
        "url:https://evil.example/Path".into(),
        "email:ceo@evil.example".into(),
        "ipv6:2001:db8::99".into(),
    ];
    assert_eq!(got, want);

    let by_value = |value: &str| {
        incident
            .indicators
            .iter()
            .find(|i| i.value == value)
            .unwrap()
    };
    let c2 = by_value("203.0.113.7");
    assert_eq!(
        c2.first_seen,
        Some(ts("2026-11-20T08:00:00Z")),
        "valid_from"
    );
    assert_eq!(c2.valid_until, Some(ts("2026-12-20T08:00:00Z")));
    assert_eq!(c2.confidence, Some(80));
    assert_eq!(c2.comment.as_deref(), Some("C2 server seen in the wave"));
    assert_eq!(
        by_value("192.0.2.10").comment.as_deref(),
        Some("network-traffic:dst_port = 443")
    );
    assert_eq!(
        by_value("invoice.pdf.exe").comment.as_deref(),
        Some(format!("same file as sha256 {}", "ab".repeat(32)).as_str())
    );
    assert_eq!(
        by_value("CVE-2021-44228").comment.as_deref(),
        Some("JNDI lookup")
    );
    assert_eq!(by_value("a.example").comment, None);

    assert_eq!(imported.sightings.len(), 1);
    let sighting = &imported.sightings[0];
    assert_eq!(
        (sighting.kind, sighting.value.as_str()),
        (IndicatorType::Ipv4, "203.0.113.7")
    );
    assert_eq!(sighting.count, 5);
    assert_eq!(sighting.seen, ts("2026-11-22T08:00:00Z"), "last_seen");
    assert_eq!(sighting.comment.as_deref(), Some("sighted by Vendor CTI"));
    incident.to_body().expect("what import gives is fileable");
}

#[test]
fn reports_and_incidents_group_their_members() {
    let report = import("report.json");
    let titles: Vec<&str> = report
        .incidents
        .iter()
        .map(|i| i.incident.title.as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Phishing wave against banks",
            "Ransomware at a hospital",
            "STIX bundle from CERT-X"
        ]
    );
    let [phishing, ransomware, rest] = &report.incidents[..] else {
        panic!()
    };

    let values = |i: &cer_interop::Imported| -> Vec<String> {
        i.incident
            .indicators
            .iter()
            .map(|i| i.to_string())
            .collect()
    };
    // The report: its object_refs, the newest version of each.
    assert_eq!(
        values(phishing),
        [
            "url:https://login.bank.example.evil.example/",
            "domain:bank-login.example",
            "ipv4:203.0.113.12"
        ]
    );
    assert_eq!(phishing.incident.tlp, Tlp::Green);
    assert_eq!(phishing.incident.severity, Severity::High);
    assert_eq!(
        phishing.incident.classification,
        Classification::parse("fraud/phishing").unwrap()
    );
    assert_eq!(
        phishing.incident.description,
        "Credential phishing since Monday."
    );
    let source = phishing.incident.source.as_ref().unwrap();
    assert_eq!(source.id, "report--00000000-0000-4000-8000-000000000002");
    assert_eq!(source.creator.as_deref(), Some("CERT-X"));

    // The incident: what relationships link to it, either way round; an
    // indicator in the report too is in both.
    assert_eq!(
        values(ransomware),
        [
            format!("sha256:{}", "12".repeat(32)),
            "ipv4:198.51.100.15".into(),
            "cve:CVE-2023-4966".into(),
            "ipv4:203.0.113.12".into(),
        ]
    );
    // TLP:AMBER (TLP 1.0) incident holding a TLP:RED address.
    assert_eq!(ransomware.incident.tlp, Tlp::Red);
    assert_eq!(ransomware.incident.severity, Severity::Medium);
    assert_eq!(ransomware.incident.classification.as_str(), "other/other");
    assert_eq!(
        ransomware.incident.source.as_ref().unwrap().id,
        "incident--00000000-0000-4000-8000-000000000003"
    );

    // What nothing groups, unmarked: the default TLP.
    assert_eq!(values(rest), ["domain:loose.example"]);
    assert_eq!(rest.incident.tlp, Tlp::Amber);
    assert_eq!(
        rest.incident.source.as_ref().unwrap().id,
        "bundle--00000000-0000-4000-8000-000000000200"
    );

    // Sightings join the first incident holding their indicator.
    assert_eq!(phishing.sightings.len(), 1);
    assert_eq!(phishing.sightings[0].value, "203.0.113.12");
    assert_eq!(phishing.sightings[0].count, 1);
    assert_eq!(
        phishing.sightings[0].seen,
        ts("2026-11-23T10:00:00Z"),
        "created"
    );
    assert_eq!(ransomware.sightings.len(), 1);
    assert_eq!(ransomware.sightings[0].count, 2);
    assert_eq!(
        ransomware.sightings[0].comment.as_deref(),
        Some("seen at two sites")
    );
    assert!(rest.sightings.is_empty());

    assert_eq!(report.invalid, []);
    let skipped: Vec<(&str, &str)> = report
        .skipped
        .iter()
        .map(|p| (p.location.as_str(), p.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:#?}");
    assert!(skipped[0].0.starts_with("objects[6] incident--"));
    assert!(skipped[0]
        .1
        .starts_with("label 'rsit:bogus=\"x\"': unknown value 'bogus/x'"));
    assert_eq!(
        skipped[1],
        (
            "objects[17] indicator--00000000-0000-4000-8000-000000000010",
            "an older version of the object at objects[3]"
        )
    );
    assert_eq!(
        skipped[2],
        (
            "objects[18] malware--00000000-0000-4000-8000-000000000030",
            "malware objects have no place in cerd's model"
        )
    );
}

#[test]
fn every_refusal_names_the_object_and_the_reason() {
    let report = import("refusals.json");
    let skipped = [
        (
            "objects[0] indicator--",
            "pattern: AND between observations",
        ),
        ("objects[1] indicator--", "pattern: FOLLOWEDBY"),
        ("objects[2] indicator--", "pattern: the qualifier WITHIN"),
        ("objects[3] indicator--", "pattern: the qualifier REPEATS"),
        (
            "objects[4] indicator--",
            "pattern: the qualifier START/STOP",
        ),
        ("objects[5] indicator--", "(a regular expression)"),
        ("objects[6] indicator--", "(a wildcard)"),
        ("objects[7] indicator--", "negated comparison"),
        ("objects[8] indicator--", "network-traffic:dst_port >= 1024"),
        (
            "objects[9] indicator--",
            "AND across objects (ipv4-addr and domain-name)",
        ),
        (
            "objects[10] indicator--",
            "hash algorithm SSDEEP has no indicator type",
        ),
        (
            "objects[11] indicator--",
            "mac-addr:value has no indicator type",
        ),
        (
            "objects[12] indicator--",
            "pattern_type 'snort' is not a STIX pattern",
        ),
        ("objects[23] indicator--", "revoked by its creator"),
        (
            "objects[24] threat-actor--",
            "threat-actor objects have no place",
        ),
        ("objects[25] marking-definition--", "not a TLP marking"),
        (
            "objects[26] relationship--",
            "relationship 'attributed-to' is not used",
        ),
        (
            "objects[27] relationship--",
            "indicator--00000000-0000-4000-8000-000000000099, which is not in the bundle",
        ),
        (
            "objects[29] sighting--",
            "which is not in the bundle or names no indicator",
        ),
        ("objects[30] sighting--", "which was not imported"),
        ("objects[31] sighting--", "count 0"),
        ("objects[33] vulnerability--", "without a CVE id"),
        (
            "objects[36] mac-addr--",
            "mac-addr objects have no indicator type",
        ),
        ("objects[44] sighting--", "whose incident was not imported"),
    ];
    let invalid = [
        (
            "objects[13] indicator--",
            "pattern: at offset 30: expected ']'",
        ),
        (
            "objects[14] indicator--",
            "ipv4: octet '256' in '192.0.2.256' is not in 0-255",
        ),
        ("objects[15] indicator--", "no pattern"),
        (
            "objects[16] indicator--",
            "valid_until 2026-11-19T08:00:00Z is not after valid_from",
        ),
        (
            "objects[17] indicator--",
            "confidence must be an integer from 0 to 100, got 150",
        ),
        (
            "objects[18] indicator--",
            "valid_from: expected an RFC 3339 timestamp",
        ),
        (
            "objects[19] indicator--",
            "comment: must not contain bidi control characters",
        ),
        (
            "objects[20]",
            "id 'indicator--not-a-uuid' is not indicator--<uuid>",
        ),
        ("objects[21]", "not a JSON object"),
        ("objects[22] indicator--", "no type"),
        ("objects[28] relationship--", "no target_ref"),
        ("objects[32] sighting--", "count must be an integer"),
        ("objects[34] vulnerability--", "expected CVE-YYYY-NNNN"),
        ("objects[35] ipv4-addr--", "has a leading zero"),
        ("objects[37] bundle--", "a bundle inside a bundle"),
        (
            "objects[38] incident--",
            "not imported: title: must not contain bidi control characters",
        ),
        ("objects[40] identity--", "name not recorded as a creator"),
    ];
    for (list, expected) in [
        (&report.skipped, &skipped[..]),
        (&report.invalid, &invalid[..]),
    ] {
        for (object, reason) in expected {
            let found = problem(list, object);
            assert!(
                found.reason.contains(reason),
                "{object}: {:?} does not say {reason:?}",
                found.reason
            );
        }
        assert_eq!(list.len(), expected.len(), "unexpected problems: {list:#?}");
        let mut sorted = list.clone();
        sorted.sort_by_key(|p| {
            p.location[8..]
                .split(']')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
        });
        assert_eq!(list, &sorted, "problems are listed in bundle order");
    }
    // Every error on input data is reported; the rest is still imported:
    // the catch-all incident, without the creator whose name was refused.
    assert_eq!(report.incidents.len(), 1);
    let incident = &report.incidents[0].incident;
    assert_eq!(
        incident.title,
        "STIX bundle bundle--00000000-0000-4000-8000-000000000300"
    );
    assert_eq!(incident.source.as_ref().unwrap().creator, None);
    let values: Vec<&str> = incident
        .indicators
        .iter()
        .map(|i| i.value.as_str())
        .collect();
    assert_eq!(values, ["kept.example", "by-evil-corp.example"]);
}

#[test]
fn what_is_not_a_bundle_fails_as_a_whole() {
    let options = import_options();
    for (input, reason) in [
        (&b"not json"[..], "not JSON"),
        (b"[1, 2]", "not a bundle: the document is not a JSON object"),
        (br#"{"type": "report"}"#, "not a bundle: \"type\" is not \"bundle\""),
        (br#"{"type": "bundle"}"#, "no valid id"),
        (br#"{"type": "bundle", "id": "bundle--x"}"#, "no valid id"),
        (
            br#"{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001", "objects": {}}"#,
            "\"objects\" is not a list",
        ),
    ] {
        let e = cer_interop::stix::import(input, &options).unwrap_err();
        assert_eq!(e.format, "stix");
        assert!(e.reason.contains(reason), "{e}");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(cer_interop::stix::import(deep.as_bytes(), &options)
        .unwrap_err()
        .reason
        .starts_with("not JSON"));
    let huge = vec![b' '; cer_interop::stix::MAX_INPUT_BYTES + 1];
    assert!(cer_interop::stix::import(&huge, &options)
        .unwrap_err()
        .reason
        .contains("at most 67108864 are read"));
    let empty = cer_interop::stix::import(
        br#"{"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000001"}"#,
        &options,
    )
    .unwrap();
    assert_eq!(empty, cer_interop::ImportReport::default());
}

#[test]
fn the_import_options_give_what_the_bundle_does_not_say() {
    let options = ImportOptions {
        tlp: Some(Tlp::Green),
        severity: Some(Severity::Critical),
        classification: Some(Classification::parse("malicious-code/c2-server").unwrap()),
        file: None,
        ..import_options()
    };
    let report = cer_interop::stix::import(&fixture("report.json"), &options).unwrap();
    let [phishing, ransomware, rest] = &report.incidents[..] else {
        panic!()
    };
    // The bundle's own word first.
    assert_eq!(phishing.incident.severity, Severity::High);
    assert_eq!(phishing.incident.classification.as_str(), "fraud/phishing");
    assert_eq!(ransomware.incident.tlp, Tlp::Red);
    // The options where it says nothing.
    assert_eq!(ransomware.incident.severity, Severity::Critical);
    assert_eq!(
        ransomware.incident.classification.as_str(),
        "malicious-code/c2-server"
    );
    assert_eq!(rest.incident.tlp, Tlp::Green);
    assert_eq!(rest.incident.source.as_ref().unwrap().file, None);
}

#[test]
fn importing_again_gives_the_same_incidents() {
    let first = import("report.json");
    let again = import("report.json");
    assert_eq!(first, again);
}

#[test]
fn more_than_one_envelope_of_indicators_makes_parts() {
    let objects: Vec<serde_json::Value> = (0..10_001u32)
        .map(|n| {
            json!({
                "type": "ipv4-addr",
                "id": format!("ipv4-addr--00000000-0000-5000-8000-{n:012}"),
                "value": format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255),
            })
        })
        .collect();
    let bundle = json!({
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000009",
        "objects": objects,
    });
    let report =
        cer_interop::stix::import(&serde_json::to_vec(&bundle).unwrap(), &import_options())
            .unwrap();
    assert_eq!(report.incidents.len(), 2);
    let parts: Vec<(&str, &str, usize)> = report
        .incidents
        .iter()
        .map(|i| {
            (
                i.incident.title.as_str(),
                i.incident.source.as_ref().unwrap().id.as_str(),
                i.incident.indicators.len(),
            )
        })
        .collect();
    assert_eq!(
        parts,
        [
            (
                "STIX bundle bundle--00000000-0000-4000-8000-000000000009 (part 1 of 2)",
                "bundle--00000000-0000-4000-8000-000000000009",
                10_000
            ),
            (
                "STIX bundle bundle--00000000-0000-4000-8000-000000000009 (part 2 of 2)",
                "bundle--00000000-0000-4000-8000-000000000009#part-2",
                1
            ),
        ]
    );
}

#[test]
fn hostile_text_stays_data() {
    let bundle = json!({
        "type": "bundle",
        "id": "bundle--00000000-0000-4000-8000-000000000001",
        "objects": [
            {"type": "report", "id": "report--00000000-0000-4000-8000-000000000002",
             "name": "line one\nline two\t\u{1b}[31mred", "object_refs": []},
            {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000003",
             "pattern": "[file:name = '$(reboot); `id` #.exe']", "pattern_type": "stix",
             "description": "x".repeat(5000)},
            {"type": "indicator", "id": "indicator--00000000-0000-4000-8000-000000000004",
             "pattern": "[file:name = '-oProxyCommand=evil']", "pattern_type": "stix"},
        ],
    });
    let report =
        cer_interop::stix::import(&serde_json::to_vec(&bundle).unwrap(), &import_options())
            .unwrap();
    assert_eq!(
        report.incidents[0].incident.title,
        "line one line two  [31mred"
    );
    let rest = &report.incidents[1].incident;
    assert_eq!(rest.indicators[0].value, "$(reboot); `id` #.exe");
    assert_eq!(
        rest.indicators[0].comment.as_ref().unwrap().chars().count(),
        1024,
        "descriptions are cut to a comment's length"
    );
    assert!(report.invalid[0]
        .reason
        .contains("would read as a command-line option"));
}

mod properties {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const TYPES: &[&str] = &[
        "indicator",
        "report",
        "incident",
        "relationship",
        "sighting",
        "identity",
        "marking-definition",
        "vulnerability",
        "ipv4-addr",
        "file",
        "network-traffic",
        "x-custom",
    ];
    const FIELDS: &[&str] = &[
        "pattern",
        "pattern_type",
        "valid_from",
        "valid_until",
        "confidence",
        "description",
        "name",
        "object_refs",
        "object_marking_refs",
        "created_by_ref",
        "source_ref",
        "target_ref",
        "relationship_type",
        "sighting_of_ref",
        "count",
        "value",
        "hashes",
        "number",
        "labels",
        "modified",
        "revoked",
        "external_references",
        "definition_type",
    ];

    fn id(kind: &str, n: u8) -> String {
        format!("{kind}--00000000-0000-4000-8000-{n:012}")
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0u8..8, proptest::sample::select(TYPES)).prop_map(|(n, kind)| json!(id(kind, n))),
            Just(json!(
                "[ipv4-addr:value = '192.0.2.1'] OR [domain-name:value = 'a.example']"
            )),
            Just(json!("2026-11-28T13:00:00Z")),
            Just(json!(
                "marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"
            )),
            "\\PC{0,20}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(
                    proptest::sample::select(FIELDS).prop_map(str::to_owned),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn any_object() -> impl Strategy<Value = Value> {
        (
            proptest::sample::select(TYPES),
            0u8..8,
            proptest::collection::btree_map(
                proptest::sample::select(FIELDS).prop_map(str::to_owned),
                any_value(),
                0..8,
            ),
        )
            .prop_map(|(kind, n, fields)| {
                let mut object: serde_json::Map<String, Value> = fields.into_iter().collect();
                object.insert("type".into(), json!(kind));
                object.insert("id".into(), json!(id(kind, n)));
                Value::Object(object)
            })
    }

    proptest! {
        /// Whatever a bundle's objects hold, the import answers, and every
        /// problem says where.
        #[test]
        fn any_objects_are_taken_or_reported(objects in proptest::collection::vec(any_object(), 0..12)) {
            let bundle = json!({
                "type": "bundle",
                "id": "bundle--00000000-0000-4000-8000-000000000001",
                "objects": objects,
            });
            let report = cer_interop::stix::import(
                &serde_json::to_vec(&bundle).unwrap(),
                &super::import_options(),
            )
            .unwrap();
            for problem in report.skipped.iter().chain(&report.invalid) {
                prop_assert!(
                    problem.location.starts_with("objects[") || problem.location.starts_with("bundle "),
                    "{problem:?}"
                );
            }
            for imported in &report.incidents {
                prop_assert!(imported.incident.to_body().is_ok());
            }
        }
    }
}
