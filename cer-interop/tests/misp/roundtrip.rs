//! Export → import is the identity on indicator values, types and TLP;
//! and MISP → model → MISP keeps every value, type and TLP.

use std::collections::BTreeMap;

use cer_interop::misp;
use cer_interop::ImportReport;
use cer_proto::model::{IndicatorType, Tlp};
use proptest::prelude::*;
use uuid::Uuid;

use crate::common::{
    any_incident, at, cert_b, expected, export_incident, export_options, fixture, options,
    state_from, state_of,
};

/// (type, value, TLP) of every indicator a report gives, counted.
fn triples(report: &ImportReport) -> BTreeMap<(IndicatorType, String, Tlp), usize> {
    let mut out = BTreeMap::new();
    for imported in &report.incidents {
        for i in &imported.incident.indicators {
            *out.entry((i.kind, i.value.clone(), imported.incident.tlp))
                .or_default() += 1;
        }
    }
    out
}

#[test]
fn misp_through_the_model_and_back_keeps_values_types_and_tlp() {
    let original = fixture("misp/event-full.json");
    let first = misp::import(&original, &options("event-full.json")).unwrap();
    let states: Vec<_> = first
        .incidents
        .iter()
        .enumerate()
        .map(|(n, imported)| {
            let id = Uuid::from_u128(0x1000 + n as u128);
            state_from(&imported.incident, id, cert_b(), at("2026-11-25T00:00:00Z"))
        })
        .collect();
    let exported: Vec<_> = states.iter().map(export_incident).collect();
    let bytes = misp::export(&exported, &export_options());
    let second = misp::import(&bytes, &options("again.json")).unwrap();
    assert!(second.invalid.is_empty(), "{:?}", second.invalid);
    assert!(second.skipped.is_empty(), "{:?}", second.skipped);
    assert_eq!(triples(&first), triples(&second));

    // The MISP labels themselves survive: the event's tlp:amber and the
    // red attribute's event, and the classification.
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    let tags: Vec<Vec<&str>> = doc["response"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["Event"]["Tag"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(
        tags[0],
        [
            "tlp:amber",
            "rsit:malicious-code=\"c2-server\"",
            "type:osint"
        ]
    );
    assert_eq!(tags[1][0], "tlp:red");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn misp_export_then_import_is_the_identity(incidents in proptest::collection::vec(any_incident(), 1..4)) {
        let states: Vec<_> = incidents.iter().enumerate().map(|(n, (tlp, list))| state_of(*tlp, list, n as u128)).collect();
        let exported: Vec<_> = states.iter().map(export_incident).collect();
        let bytes = misp::export(&exported, &export_options());
        let report = misp::import(&bytes, &options("export.json")).unwrap();
        prop_assert!(report.invalid.is_empty(), "{:?}", report.invalid);
        prop_assert_eq!(triples(&report), expected(&states));

        let feed = misp::export_feed(&exported, &export_options());
        let mut from_feed = BTreeMap::new();
        for (name, bytes) in &feed {
            let Some(id) = name.strip_suffix(".json").and_then(|u| Uuid::parse_str(u).ok()) else { continue };
            let report = misp::import_feed_event(id, bytes, &options(name)).unwrap();
            prop_assert!(report.invalid.is_empty(), "{:?}", report.invalid);
            for (key, count) in triples(&report) {
                *from_feed.entry(key).or_insert(0) += count;
            }
        }
        prop_assert_eq!(from_feed, expected(&states));
    }
}
