//! STIX → cerd → STIX keeps every indicator value, type and TLP, and
//! export → import is the identity on them (a property over generated
//! incidents).

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use cer_interop::ImportReport;
use cer_proto::api::FileIncident;
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Tlp};
use common::{export_options, export_states, filed, fpr, import, import_options, states_of, ts};
use proptest::prelude::*;
use uuid::Uuid;

fn reimport(bytes: &[u8]) -> ImportReport {
    let report = cer_interop::stix::import(bytes, &import_options()).unwrap();
    assert_eq!(report.invalid, [], "our own export is valid");
    assert_eq!(report.skipped, [], "our own export is all taken");
    report
}

/// Per incident: its title, TLP, severity, classification and sorted
/// (type, value) pairs.
type Shape = (String, Tlp, Severity, String, Vec<(IndicatorType, String)>);

fn shape(report: &ImportReport) -> Vec<Shape> {
    let mut out: Vec<Shape> = report
        .incidents
        .iter()
        .map(|imported| {
            let incident = &imported.incident;
            let mut values: Vec<_> = incident
                .indicators
                .iter()
                .map(|i| (i.kind, i.value.clone()))
                .collect();
            values.sort();
            (
                incident.title.clone(),
                incident.tlp,
                incident.severity,
                incident.classification.to_string(),
                values,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn stix_to_cerd_to_stix_keeps_values_types_and_tlp() {
    for fixture in ["indicators.json", "report.json", "refusals.json"] {
        let first = import(fixture);
        let bytes = export_states(&states_of(&first), &export_options());
        let again = reimport(&bytes);
        assert_eq!(common::values(&again), common::values(&first), "{fixture}");
        assert_eq!(shape(&again), shape(&first), "{fixture}");
        let sightings = |report: &ImportReport| -> Vec<(String, u32)> {
            let mut out: Vec<_> = report
                .incidents
                .iter()
                .flat_map(|i| &i.sightings)
                .map(|s| (s.value.clone(), s.count))
                .collect();
            out.sort();
            out
        };
        assert_eq!(sightings(&again), sightings(&first), "{fixture}");
        // And once more: the second export is the first.
        let twice = export_states(&states_of(&again), &export_options());
        assert_eq!(shape(&reimport(&twice)), shape(&first), "{fixture}");
    }
}

fn any_tlp() -> impl Strategy<Value = Tlp> {
    proptest::sample::select(Tlp::ALL.to_vec())
}

fn any_severity() -> impl Strategy<Value = Severity> {
    proptest::sample::select(Severity::ALL.to_vec())
}

fn any_classification() -> impl Strategy<Value = Classification> {
    proptest::sample::select(Classification::ALL.to_vec())
        .prop_map(|c| Classification::parse(c).unwrap())
}

fn domain() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?(\\.[a-z0-9]{1,6}){0,2}\\.(example|test|com|xn--p1ai)"
}

/// Raw text for every indicator type; what the model refuses is dropped.
fn any_indicator() -> impl Strategy<Value = Indicator> {
    let raw = prop_oneof![
        any::<u32>().prop_map(|n| (IndicatorType::Ipv4, Ipv4Addr::from(n).to_string())),
        any::<u128>().prop_map(|n| (IndicatorType::Ipv6, Ipv6Addr::from(n).to_string())),
        (any::<u32>(), 0u32..=32).prop_map(|(n, len)| {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            (
                IndicatorType::Cidr,
                format!("{}/{len}", Ipv4Addr::from(n & mask)),
            )
        }),
        (any::<u128>(), 0u32..=128).prop_map(|(n, len)| {
            let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            (
                IndicatorType::Cidr,
                format!("{}/{len}", Ipv6Addr::from(n & mask)),
            )
        }),
        domain().prop_map(|d| (IndicatorType::Domain, d)),
        (
            "(http|https|ftp|tcp)",
            domain(),
            "[A-Za-z0-9/'\\\\._~%!$&()*+,;=:@?#-]{0,30}"
        )
            .prop_map(|(scheme, d, rest)| (IndicatorType::Url, format!("{scheme}://{d}/{rest}"))),
        ("[A-Za-z0-9._'+\\\\-]{1,12}", domain())
            .prop_map(|(local, d)| (IndicatorType::Email, format!("{local}@{d}"))),
        "[0-9a-fA-F]{32}".prop_map(|h| (IndicatorType::Md5, h)),
        "[0-9a-fA-F]{40}".prop_map(|h| (IndicatorType::Sha1, h)),
        "[0-9a-fA-F]{64}".prop_map(|h| (IndicatorType::Sha256, h)),
        "[0-9a-fA-F]{128}".prop_map(|h| (IndicatorType::Sha512, h)),
        any::<u32>().prop_map(|n| (IndicatorType::Asn, format!("AS{n}"))),
        "CVE-(19|20)[0-9]{2}-[0-9]{4,7}".prop_map(|c| (IndicatorType::Cve, c)),
        "[^/\\p{Cc}]{1,40}".prop_map(|f| (IndicatorType::Filename, f)),
    ];
    raw.prop_filter_map("the model refuses it", |(kind, text)| {
        Indicator::new(kind, &text).ok()
    })
}

fn any_incident() -> impl Strategy<Value = FileIncident> {
    (
        any_tlp(),
        any_severity(),
        any_classification(),
        proptest::collection::vec(any_indicator(), 0..20),
    )
        .prop_map(|(tlp, severity, classification, indicators)| {
            let mut incident = FileIncident::new("generated", severity, tlp, classification);
            incident.indicators = indicators;
            incident
        })
}

proptest! {
    #[test]
    fn export_then_import_is_the_identity(incidents in proptest::collection::vec(any_incident(), 1..4)) {
        let states: Vec<_> = incidents
            .iter()
            .enumerate()
            .map(|(i, incident)| {
                let subject = Uuid::from_u128(0x4000_0000_0000_4000_8000_0000_0000_0000 + i as u128);
                filed(incident, subject, &fpr('A'), ts("2026-11-28T13:00:00Z"), &[])
            })
            .collect();
        let report = reimport(&export_states(&states, &export_options()));
        prop_assert_eq!(report.incidents.len(), incidents.len());
        for (incident, imported) in incidents.iter().zip(&report.incidents) {
            let back = &imported.incident;
            prop_assert_eq!(back.tlp, incident.tlp);
            prop_assert_eq!(back.severity, incident.severity);
            prop_assert_eq!(&back.classification, &incident.classification);
            let mut want: Vec<_> = incident.indicators.iter().map(|i| (i.kind, i.value.clone())).collect();
            want.sort();
            want.dedup();
            let mut got: Vec<_> = back.indicators.iter().map(|i| (i.kind, i.value.clone())).collect();
            got.sort();
            prop_assert_eq!(got, want);
        }
    }
}
