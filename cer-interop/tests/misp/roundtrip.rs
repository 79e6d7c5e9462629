//! Export → import is the identity on indicator values, types and TLP;
//! and MISP → model → MISP keeps every value, type and TLP.

use std::collections::BTreeMap;

use cer_interop::misp;
use cer_interop::ImportReport;
use cer_proto::api::FileIncident;
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Tlp};
use proptest::prelude::*;
use uuid::Uuid;

use crate::common::{
    at, cert_a, cert_b, entry, export_incident, export_options, fixture, options, state_from,
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

fn any_tlp() -> impl Strategy<Value = Tlp> {
    proptest::sample::select(Tlp::ALL.to_vec())
}

/// Valid indicators of every type, in forms that need normalizing and
/// forms a spreadsheet would run.
pub fn any_indicator() -> impl Strategy<Value = Indicator> {
    let domain = "[a-z][a-z0-9-]{0,8}[a-z0-9]\\.(example|test|xn--bcher-kva\\.example)";
    prop_oneof![
        any::<u32>().prop_map(|n| (IndicatorType::Ipv4, std::net::Ipv4Addr::from(n).to_string())),
        any::<u128>().prop_map(|n| (IndicatorType::Ipv6, std::net::Ipv6Addr::from(n).to_string())),
        (any::<u32>(), 0u32..=32).prop_map(|(n, len)| {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            (
                IndicatorType::Cidr,
                format!("{}/{len}", std::net::Ipv4Addr::from(n & mask)),
            )
        }),
        domain.prop_map(|d| (IndicatorType::Domain, d)),
        (domain, "[a-zA-Z0-9/_.=?-]{0,20}")
            .prop_map(|(d, p)| (IndicatorType::Url, format!("https://{d}/{p}"))),
        ("[=+@a-z][a-z0-9.+=]{0,10}", domain)
            .prop_map(|(l, d)| (IndicatorType::Email, format!("{l}@{d}"))),
        "[0-9a-fA-F]{32}".prop_map(|h| (IndicatorType::Md5, h)),
        "[0-9a-f]{40}".prop_map(|h| (IndicatorType::Sha1, h)),
        "[0-9a-f]{64}".prop_map(|h| (IndicatorType::Sha256, h)),
        "[0-9a-f]{128}".prop_map(|h| (IndicatorType::Sha512, h)),
        any::<u32>().prop_map(|n| (IndicatorType::Asn, format!("AS{}", n.max(1)))),
        "CVE-20[0-9]{2}-[0-9]{4,7}".prop_map(|c| (IndicatorType::Cve, c)),
        "[=+@'a-zA-Z0-9_.,\" ]{1,24}".prop_map(|f| (IndicatorType::Filename, f)),
    ]
    .prop_filter_map("valid", |(kind, raw)| Indicator::new(kind, &raw).ok())
}

/// An incident with indicators, some shared under a stricter label.
pub fn any_incident() -> impl Strategy<Value = (Tlp, Vec<(Indicator, Option<Tlp>)>)> {
    (
        any_tlp(),
        proptest::collection::vec(
            (any_indicator(), proptest::option::weighted(0.2, any_tlp())),
            0..25,
        ),
    )
}

pub fn state_of(
    tlp: Tlp,
    indicators: &[(Indicator, Option<Tlp>)],
    n: u128,
) -> cer_proto::incident::IncidentState {
    let file = FileIncident::new(
        "Generated",
        Severity::High,
        tlp,
        Classification::parse("fraud/phishing").unwrap(),
    );
    let mut state = state_from(
        &file,
        Uuid::from_u128(n + 1),
        cert_a(),
        at("2026-11-20T00:00:00Z"),
    );
    let mut seen = std::collections::HashSet::new();
    for (indicator, label) in indicators {
        if seen.insert((indicator.kind, indicator.value.clone())) {
            // An indicator's label is never looser than its incident's.
            let label = label.map(|l| l.max(tlp)).filter(|l| *l != tlp);
            state.indicators.push(entry(
                indicator,
                &cert_a(),
                at("2026-11-20T00:00:00Z"),
                label,
            ));
        }
    }
    state
}

pub fn expected(
    states: &[cer_proto::incident::IncidentState],
) -> BTreeMap<(IndicatorType, String, Tlp), usize> {
    let mut out = BTreeMap::new();
    for state in states {
        for e in &state.indicators {
            *out.entry((e.kind, e.value.clone(), e.tlp.unwrap_or(state.tlp)))
                .or_default() += 1;
        }
    }
    out
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
