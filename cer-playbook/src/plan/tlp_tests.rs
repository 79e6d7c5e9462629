//! What a playbook sees of envelopes labelled above its `max_tlp`: an
//! AMBER update on a GREEN incident, folded as a node folds it.

use super::testing::fpr;
use super::*;
use crate::parse;
use cer_proto::envelope::{Body, Header, IncidentBody, SightingBody, UpdateBody};
use cer_proto::incident::FoldInput;
use cer_proto::model::{Affected, Classification, Indicator, Status};
use cer_proto::EnvelopeId;

const AMBER_NOTE: &str = "attributed to the amber-only actor";
const AMBER_IP: &str = "198.51.100.9";
const AMBER_DOMAIN: &str = "amber-only.example";
const GREEN_IP: &str = "203.0.113.7";

fn envelope(n: u8, author: char, minute: u8, tlp: Tlp, body: Body) -> FoldInput {
    FoldInput {
        id: EnvelopeId::of(&[n]),
        header: Header {
            author: fpr(author),
            seq: n as u64,
            subject: Uuid::from_u128(1),
            kind: body.kind(),
            created: format!("2026-11-28T13:{minute:02}:00Z").parse().unwrap(),
            tlp,
            recipients: vec![],
        },
        body: Some(body),
    }
}

fn iocs(specs: &[&str]) -> Vec<Indicator> {
    specs
        .iter()
        .map(|s| Indicator::parse_spec(s).unwrap())
        .collect()
}

/// A GREEN C2 incident naming one address; then its author's AMBER
/// update with a note, a new address and domain, and the GREEN address
/// again, seen later than the filing said; then a GREEN sighting of the GREEN address.
fn amber_update_on_green() -> IncidentState {
    let filing = Body::Incident(IncidentBody {
        title: "C2 server".into(),
        description: String::new(),
        severity: Severity::High,
        classification: Classification::parse("malicious-code/c2-server").unwrap(),
        status: Status::Open,
        indicators: iocs(&[&format!("ipv4:{GREEN_IP}")]),
        affected: Affected::default(),
        occurred: None,
        detected: None,
        tags: vec![],
        source: None,
    });
    let mut named_again = iocs(&[&format!("ipv4:{GREEN_IP}")]);
    named_again[0].last_seen = Some("2026-11-28T13:30:00Z".parse().unwrap());
    let update = Body::Update(UpdateBody {
        note: Some(AMBER_NOTE.into()),
        indicators: [
            iocs(&[
                &format!("ipv4:{AMBER_IP}"),
                &format!("domain:{AMBER_DOMAIN}"),
            ]),
            named_again,
        ]
        .concat(),
        ..UpdateBody::default()
    });
    let sighting = Body::Sighting(SightingBody {
        indicator: iocs(&[&format!("ipv4:{GREEN_IP}")]).remove(0),
        seen: "2026-11-28T13:10:00Z".parse().unwrap(),
        count: 2,
        comment: None,
        false_positive: false,
    });
    IncidentState::fold(
        Uuid::from_u128(1),
        &[
            envelope(1, 'A', 0, Tlp::Green, filing),
            envelope(2, 'A', 5, Tlp::Amber, update),
            envelope(3, 'C', 10, Tlp::Green, sighting),
        ],
    )
    .unwrap()
}

fn names(_: &Fingerprint) -> Option<String> {
    None
}

fn trigger<'a>(incident: &'a IncidentState, own: &'a Fingerprint) -> Trigger<'a> {
    Trigger {
        event: EventKind::IncidentUpdated,
        incident: Some(incident),
        peer: None,
        own,
        names: &names,
        version: "v".into(),
        acted: &[],
        acted_runs: &[],
        paused: None,
        expiry: None,
        warninglisted: None,
    }
}

fn block(max_tlp: Tlp) -> Playbook {
    parse(
        &format!(
            r#"name: block-{max_tlp}
on: [incident.updated]
max_tlp: {max_tlp}
actions:
  - exec:
      argv: ["/usr/local/sbin/block-ip", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4, domain]
"#
        ),
        "playbooks/block.yaml",
    )
    .unwrap()
}

/// The argv values and the stdin JSON of a plan's exec runs.
fn runs(actions: &[PlannedAction]) -> (Vec<String>, serde_json::Value) {
    let mut values = Vec::new();
    let mut json = serde_json::Value::Null;
    for action in actions {
        if let PlannedKind::Exec { argv, stdin, .. } = &action.kind {
            values.push(argv[2].clone());
            json = serde_json::from_slice(stdin).unwrap();
        }
    }
    (values, json)
}

#[test]
fn a_green_playbook_sees_nothing_of_an_amber_update() {
    let own = fpr('B');
    let state = amber_update_on_green();
    let actions = plan_one(&block(Tlp::Green), &trigger(&state, &own)).unwrap();
    let (values, json) = runs(&actions);
    assert_eq!(values, [GREEN_IP]);
    let PlannedKind::Exec { stdin, .. } = &actions[0].kind else {
        panic!("not exec");
    };
    let text = String::from_utf8(stdin.to_vec()).unwrap();
    for secret in [AMBER_NOTE, AMBER_IP, AMBER_DOMAIN, "13:30", "amber"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    let incident = &json["incident"];
    let events: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["filed", "sighting"]);
    // The GREEN address stays, reduced to what GREEN envelopes said of it
    // for sure: its type and value (its last sighting came under AMBER).
    assert_eq!(
        incident["indicators"],
        serde_json::json!([{"type": "ipv4", "value": GREEN_IP}])
    );
    assert_eq!(incident["updated"], "2026-11-28T13:10:00Z");
    assert_eq!(incident["content"]["title"], "C2 server");
}

#[test]
fn an_amber_playbook_sees_the_amber_update() {
    let own = fpr('B');
    let state = amber_update_on_green();
    let actions = plan_one(&block(Tlp::Amber), &trigger(&state, &own)).unwrap();
    let (values, json) = runs(&actions);
    assert_eq!(values, [GREEN_IP, AMBER_IP, AMBER_DOMAIN]);
    // Everything, as the fold has it, with each label where it differs
    // from the incident's.
    let incident: IncidentState = serde_json::from_value(json["incident"].clone()).unwrap();
    assert_eq!(incident, state);
    assert_eq!(json["incident"]["timeline"][1]["tlp"], "amber");
    assert_eq!(json["incident"]["timeline"][1]["note"], AMBER_NOTE);
    assert_eq!(
        json["incident"]["indicators"][0]["last_seen"],
        "2026-11-28T13:30:00Z"
    );
}

#[test]
fn playbooks_with_different_max_tlp_get_their_own_input() {
    let own = fpr('B');
    let state = amber_update_on_green();
    let playbooks = [block(Tlp::Green), block(Tlp::Amber), block(Tlp::Green)];
    let actions = plan(&playbooks, &trigger(&state, &own));
    let stdin = |playbook: &str| -> Vec<Arc<[u8]>> {
        actions
            .iter()
            .filter(|a| a.playbook == playbook)
            .filter_map(|a| match &a.kind {
                PlannedKind::Exec { stdin, .. } => Some(stdin.clone()),
                _ => None,
            })
            .collect()
    };
    let green = stdin("block-green");
    let amber = stdin("block-amber");
    assert_eq!((green.len(), amber.len()), (2, 3));
    assert!(!String::from_utf8_lossy(&green[0]).contains(AMBER_NOTE));
    assert!(String::from_utf8_lossy(&amber[0]).contains(AMBER_NOTE));
    // Built once per label, shared by the playbooks that have it.
    assert!(Arc::ptr_eq(&green[0], &green[1]));
    assert!(amber.iter().all(|a| Arc::ptr_eq(a, &amber[0])));
}

#[test]
fn has_indicator_counts_only_what_the_playbook_may_see() {
    let own = fpr('B');
    let state = amber_update_on_green();
    for (max_tlp, expected) in [(Tlp::Green, Err(Skip::NoIndicator)), (Tlp::Amber, Ok(()))] {
        let mut playbook = block(max_tlp);
        playbook.matcher.has_indicator = vec![cer_proto::model::IndicatorType::Domain];
        assert_eq!(
            evaluate(&playbook, &trigger(&state, &own)),
            expected,
            "{max_tlp}"
        );
    }
    let visible: Vec<&str> = visible_indicators(&state, Tlp::Green)
        .map(|i| i.value.as_str())
        .collect();
    assert_eq!(visible, [GREEN_IP]);
}

/// An incident whose every envelope has its label gives its actions the
/// whole state, as before entries had labels.
#[test]
fn an_incident_at_one_label_is_passed_whole() {
    let state = super::testing::incident();
    let json = incident_json(&state, Tlp::Green);
    assert_eq!(
        serde_json::from_value::<IncidentState>(json).unwrap(),
        state
    );
}
