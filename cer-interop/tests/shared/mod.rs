//! Helpers the format tests share: fixtures, options, and incidents as a
//! node would hold them after filing what an import gave.
#![allow(dead_code)]

use std::path::PathBuf;

use cer_interop::{ExportIncident, ExportOptions, ImportOptions, Problem};
use cer_proto::api::FileIncident;
use cer_proto::incident::{Content, IncidentState, IndicatorEntry};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Timestamp, Tlp};
use cer_proto::Fingerprint;
use proptest::prelude::*;
use std::collections::BTreeMap;
use uuid::Uuid;

pub fn fixture(path: &str) -> Vec<u8> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

pub fn at(text: &str) -> Timestamp {
    text.parse().expect("a test timestamp")
}

pub fn now() -> Timestamp {
    at("2026-12-01T00:00:00Z")
}

pub fn options(file: &str) -> ImportOptions {
    ImportOptions {
        tlp: None,
        severity: None,
        classification: None,
        file: Some(file.to_owned()),
        indicator_type: None,
        now: now(),
    }
}

pub fn cert_a() -> Fingerprint {
    Fingerprint::parse("AAAA1111BBBB2222CCCC3333DDDD4444EEEE5555").expect("fingerprint")
}

pub fn cert_b() -> Fingerprint {
    Fingerprint::parse("BBBB1111BBBB2222CCCC3333DDDD4444EEEE5555").expect("fingerprint")
}

pub fn export_options() -> ExportOptions {
    ExportOptions {
        now: now(),
        active_only: false,
        producer: ("CERT-A".into(), cert_a()),
        names: vec![(cert_a(), "CERT-A".into()), (cert_b(), "CERT-B".into())],
    }
}

/// The state a node would fold from filing `file` as `reporter` at `at`.
pub fn state_from(
    file: &FileIncident,
    id: Uuid,
    reporter: Fingerprint,
    at: Timestamp,
) -> IncidentState {
    IncidentState {
        id,
        reporter: Some(reporter.clone()),
        tlp: file.tlp,
        recipients: vec![],
        filed: Some(at),
        updated: at,
        readable: true,
        content: Some(Content {
            title: file.title.clone(),
            description: file.description.clone(),
            severity: file.severity,
            classification: file.classification.clone(),
            status: file.status,
            affected: file.affected.clone(),
            occurred: file.occurred,
            detected: file.detected,
            tags: file.tags.clone(),
            source: file.source.clone(),
        }),
        indicators: file
            .indicators
            .iter()
            .map(|i| entry(i, &reporter, at, None))
            .collect(),
        retracted: None,
        timeline: vec![],
    }
}

/// An indicator entry as the fold makes it; `tlp` when the indicator was
/// shared under another label than its incident's.
pub fn entry(
    indicator: &Indicator,
    reporter: &Fingerprint,
    at: Timestamp,
    tlp: Option<Tlp>,
) -> IndicatorEntry {
    let first = indicator.first_seen.unwrap_or(at);
    IndicatorEntry {
        kind: indicator.kind,
        value: indicator.value.clone(),
        first_seen: first,
        last_seen: indicator.last_seen.unwrap_or(first.max(at)),
        confidence: indicator.confidence,
        comment: indicator.comment.clone(),
        reported_by: vec![reporter.clone()],
        sightings: 0,
        tlp,
        details_tlp: tlp,
        valid_until: indicator.valid_until,
        valid_until_set: indicator.valid_until.map(|_| at),
    }
}

pub fn export_incident(state: &IncidentState) -> ExportIncident<'_> {
    ExportIncident {
        state,
        reporter_name: None,
    }
}

/// `location: reason` lines, for assertions that read like the report.
pub fn lines(problems: &[Problem]) -> Vec<String> {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.location, p.reason))
        .collect()
}

/// Whether some problem is at `location` and its reason contains `part`.
pub fn has(problems: &[Problem], location: &str, part: &str) -> bool {
    problems
        .iter()
        .any(|p| p.location == location && p.reason.contains(part))
}

/// An incident with one indicator of every type, as CERT-B filed it at
/// TLP:GREEN, with the cases exporters treat apart: an expired
/// indicator, one of low confidence, one shared under TLP:AMBER, a
/// comment that reads as a spreadsheet formula.
pub fn sample_state() -> IncidentState {
    use cer_proto::model::{IndicatorType as T, Status};
    let mut file = FileIncident::new(
        "C2 wave",
        Severity::Critical,
        Tlp::Green,
        Classification::parse("malicious-code/c2-server").expect("rsit"),
    );
    file.status = Status::Contained;
    file.tags = vec!["type:osint".into()];
    file.occurred = Some(at("2026-11-02T10:00:00Z"));
    let values = [
        (T::Ipv4, "192.0.2.10"),
        (T::Ipv6, "2001:db8::5"),
        (T::Cidr, "198.51.100.0/24"),
        (T::Domain, "evil.example"),
        (T::Url, "https://evil.example/gate.php?id=1"),
        (T::Email, "=phish@evil.example"),
        (T::Md5, "d41d8cd98f00b204e9800998ecf8427e"),
        (T::Sha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
        (T::Sha256, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        (T::Sha512, "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),
        (T::Asn, "AS64500"),
        (T::Cve, "CVE-2021-44228"),
        (T::Filename, "+invoice.exe"),
    ];
    file.indicators = values
        .iter()
        .map(|(kind, value)| Indicator::new(*kind, value).expect("sample value"))
        .collect();
    let filed = at("2026-11-20T12:00:00Z");
    let id = Uuid::parse_str("3f1c2e8a-1b2c-4d3e-8f40-aa0123456789").expect("uuid");
    let mut state = state_from(&file, id, cert_b(), filed);
    state.updated = at("2026-11-25T12:00:00Z");
    // Expired before now().
    state.indicators[3].valid_until = Some(at("2026-11-30T00:00:00Z"));
    state.indicators[0].confidence = Some(30);
    state.indicators[4].comment = Some("@SUM(A1) - seen in the lure".into());
    let late = Indicator::new(IndicatorType::Ipv4, "203.0.113.77").expect("ip");
    state.indicators.push(entry(
        &late,
        &cert_a(),
        at("2026-11-24T00:00:00Z"),
        Some(Tlp::Amber),
    ));
    state
}

pub fn any_tlp() -> impl Strategy<Value = Tlp> {
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

pub fn state_of(tlp: Tlp, indicators: &[(Indicator, Option<Tlp>)], n: u128) -> IncidentState {
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

pub fn expected(states: &[IncidentState]) -> BTreeMap<(IndicatorType, String, Tlp), usize> {
    let mut out = BTreeMap::new();
    for state in states {
        for e in &state.indicators {
            *out.entry((e.kind, e.value.clone(), e.tlp.unwrap_or(state.tlp)))
                .or_default() += 1;
        }
    }
    out
}
