//! Incidents for tests of playbook planning and running, here and in
//! cerd: a typical C2 incident and one whose every field is hostile.

use cer_proto::envelope::Kind;
use cer_proto::incident::{Content, Event, IncidentState, IndicatorEntry, TimelineEntry};
use cer_proto::model::{Classification, IndicatorType, Severity, Status, Timestamp, Tlp};
use cer_proto::{EnvelopeId, Fingerprint};
use uuid::Uuid;

pub fn fpr(c: char) -> Fingerprint {
    Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
}

pub fn at() -> Timestamp {
    "2026-11-28T13:00:00Z".parse().unwrap()
}

pub fn entry(kind: IndicatorType, raw: &str) -> IndicatorEntry {
    IndicatorEntry {
        kind,
        value: kind.normalize(raw).unwrap(),
        first_seen: at(),
        last_seen: at(),
        confidence: None,
        comment: None,
        reported_by: vec![fpr('A')],
        sightings: 0,
        tlp: None,
        details_tlp: None,
        valid_until: None,
        valid_until_set: None,
    }
}

/// A high-severity green C2 incident from A with two IPs and a domain.
pub fn incident() -> IncidentState {
    IncidentState {
        id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        reporter: Some(fpr('A')),
        tlp: Tlp::Green,
        recipients: vec![],
        filed: Some(at()),
        updated: at(),
        readable: true,
        content: Some(Content {
            title: "C2 server".into(),
            description: "seen beaconing".into(),
            severity: Severity::High,
            classification: Classification::parse("malicious-code/c2-server").unwrap(),
            status: Status::New,
            affected: Default::default(),
            occurred: None,
            detected: None,
            tags: vec!["botnet".into(), "c2".into()],
            source: None,
        }),
        indicators: vec![
            entry(IndicatorType::Ipv4, "203.0.113.7"),
            entry(IndicatorType::Domain, "c2.example"),
            entry(IndicatorType::Ipv6, "2001:db8::7"),
        ],
        retracted: None,
        timeline: vec![],
    }
}

/// Every kind of hostile text an incident from another country can
/// carry, for the injection tests here and in `run`.
pub const HOSTILE: &[&str] = &[
    "; rm -rf /tmp/x",
    "$(touch /tmp/pwned)",
    "`touch /tmp/pwned`",
    "{{7*7}}",
    "{incident.id}",
    "{indicator.value}",
    "a\nb\r\nc",
    "nul\0byte",
    "' \" \\ | & > < *",
    "-rf",
    "%s%n%x",
];

/// An incident whose every string field is hostile, with filename and
/// url indicators built from the same corpus (as far as each type's
/// validation lets them through).
pub fn hostile_incident() -> IncidentState {
    let mut state = incident();
    let long = "A".repeat(100_000);
    let all = HOSTILE.join(" ");
    let content = state.content.as_mut().unwrap();
    content.title = format!("{all}{long}");
    content.description = all.clone();
    content.tags = HOSTILE.iter().map(|s| s.to_string()).collect();
    state.timeline.push(TimelineEntry {
        envelope: EnvelopeId::of(b"u"),
        author: fpr('A'),
        seq: 2,
        at: at(),
        kind: Kind::Update,
        tlp: None,
        event: Event::Updated {
            changes: vec![all.clone()],
            note: Some(all.clone()),
            indicators_added: 0,
            ignored: vec![],
        },
    });
    state.indicators.clear();
    for raw in HOSTILE.iter().copied().chain([long.as_str()]) {
        for kind in [IndicatorType::Filename, IndicatorType::Url] {
            let raw = match kind {
                IndicatorType::Url => format!("http://evil.example/{raw}"),
                _ => raw.to_owned(),
            };
            if let Ok(value) = kind.normalize(&raw) {
                let mut e = entry(IndicatorType::Ipv4, "192.0.2.1");
                e.kind = kind;
                e.value = value;
                e.comment = Some(all.clone());
                state.indicators.push(e);
            }
        }
    }
    state
}
