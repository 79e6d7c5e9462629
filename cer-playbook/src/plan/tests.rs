use super::testing::*;
use super::*;
use crate::parse;
use cer_proto::api::Acted;
use cer_proto::envelope::Kind;
use cer_proto::incident::Retracted;
use cer_proto::model::IndicatorType;
use cer_proto::EnvelopeId;

fn names(f: &Fingerprint) -> Option<String> {
    match f.as_str().chars().next() {
        Some('A') => Some("KE-CIRT".into()),
        Some('B') => Some("own-cert".into()),
        _ => None,
    }
}

fn trigger<'a>(
    event: EventKind,
    incident: Option<&'a IncidentState>,
    own: &'a Fingerprint,
) -> Trigger<'a> {
    Trigger {
        event,
        incident,
        peer: None,
        own,
        names: &names,
        version: "v1".into(),
        acted: &[],
        acted_runs: &[],
        paused: None,
        expiry: None,
        warninglisted: None,
    }
}

const ALL_INCIDENT_EVENTS: &str = "[incident.filed, incident.received, incident.updated, sighting.received, retraction.received, receipt.received]";

fn playbook(extra: &str) -> Playbook {
    let text = format!("name: t\non: {ALL_INCIDENT_EVENTS}\n{extra}\nactions:\n  - tag: hit\n");
    parse(&text, "playbooks/t.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn matching_table() {
    type Change = fn(&mut IncidentState);
    let none: Change = |_| {};
    let cases: &[(&str, &str, Change, EventKind, bool)] = &[
        ("no conditions", "", none, EventKind::IncidentReceived, true),
        ("event not listed", "", none, EventKind::PeerUp, false),
        (
            "severity equal",
            "match: {severity_at_least: high}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "severity above",
            "match: {severity_at_least: medium}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "severity below",
            "match: {severity_at_least: critical}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "class exact",
            "match: {classification: [malicious-code/c2-server]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "class wildcard",
            "match: {classification: [\"malicious-code/*\"]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "class other wildcard",
            "match: {classification: [\"fraud/*\"]}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "class any of list",
            "match: {classification: [fraud/phishing, \"malicious-code/*\"]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "class star",
            "match: {classification: [\"*\"]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "tlp listed",
            "match: {tlp: [clear, green]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "tlp not listed",
            "match: {tlp: [clear]}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "tlp listed amber",
            "max_tlp: amber\nmatch: {tlp: [amber]}",
            |i| i.tlp = Tlp::Amber,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "from any",
            "match: {from: any}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "from own, peer's",
            "match: {from: own}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "from own, own",
            "match: {from: own}",
            |i| i.reporter = Some(fpr('B')),
            EventKind::IncidentFiled,
            true,
        ),
        (
            "from peers, peer's",
            "match: {from: peers}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "from peers, own",
            "match: {from: peers}",
            |i| i.reporter = Some(fpr('B')),
            EventKind::IncidentFiled,
            false,
        ),
        (
            "from name, any case",
            "match: {from: [ke-cirt]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "from other name",
            "match: {from: [cn-cert]}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "from fingerprint",
            "match: {from: [\"aaaa aaaa aaaa aaaa aaaa aaaa aaaa aaaa aaaa aaaa\"]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "from other fingerprint",
            "match: {from: [CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC]}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "from list, no reporter",
            "match: {from: [ke-cirt]}",
            |i| i.reporter = None,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "has ipv4",
            "match: {has_indicator: [ipv4]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "has url or md5",
            "match: {has_indicator: [url, md5]}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "tags all present",
            "match: {tags: [botnet, C2]}",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "tag missing",
            "match: {tags: [botnet, ransomware]}",
            none,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "green under default",
            "",
            none,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "amber over default green",
            "",
            |i| i.tlp = Tlp::Amber,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "amber under max amber",
            "max_tlp: amber",
            |i| i.tlp = Tlp::Amber,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "amber+strict over amber",
            "max_tlp: amber",
            |i| i.tlp = Tlp::AmberStrict,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "red over amber+strict",
            "max_tlp: amber+strict",
            |i| i.tlp = Tlp::Red,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "red under red",
            "max_tlp: red",
            |i| i.tlp = Tlp::Red,
            EventKind::IncidentReceived,
            true,
        ),
        (
            "unreadable",
            "max_tlp: red",
            |i| {
                i.readable = false;
                i.content = None;
            },
            EventKind::IncidentReceived,
            false,
        ),
        (
            "unreadable, no conditions either",
            "",
            |i| {
                i.readable = false;
                i.content = None;
                i.tlp = Tlp::Clear;
            },
            EventKind::IncidentUpdated,
            false,
        ),
        (
            "retracted, received",
            "",
            retract,
            EventKind::IncidentReceived,
            false,
        ),
        (
            "retracted, updated",
            "",
            retract,
            EventKind::IncidentUpdated,
            false,
        ),
        (
            "retracted, sighting",
            "",
            retract,
            EventKind::SightingReceived,
            false,
        ),
        (
            "retracted, retraction",
            "",
            retract,
            EventKind::RetractionReceived,
            true,
        ),
        (
            "retracted, retraction, over tlp",
            "",
            |i| {
                retract(i);
                i.tlp = Tlp::Amber
            },
            EventKind::RetractionReceived,
            false,
        ),
        (
            "retracted, retraction needs content",
            "match: {severity_at_least: low}",
            retract,
            EventKind::RetractionReceived,
            false,
        ),
    ];
    let own = fpr('B');
    let mut failures = Vec::new();
    for (what, extra, change, event, want) in cases {
        let playbook = playbook(extra);
        let mut state = incident();
        change(&mut state);
        let got = evaluate(&playbook, &trigger(*event, Some(&state), &own));
        if got.is_ok() != *want {
            failures.push(format!("{what}: wanted {want}, got {got:?}"));
        }
        assert_eq!(
            plan(
                std::slice::from_ref(&playbook),
                &trigger(*event, Some(&state), &own)
            )
            .is_empty(),
            !want,
            "{what}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_disabled_playbook_plans_nothing_but_can_be_tested() {
    let own = fpr('B');
    let state = incident();
    let on = trigger(EventKind::IncidentReceived, Some(&state), &own);
    let enabled = playbook("enabled: true");
    assert_eq!(plan(std::slice::from_ref(&enabled), &on).len(), 1);
    let disabled = playbook("enabled: false");
    assert!(!disabled.enabled);
    assert!(plan(std::slice::from_ref(&disabled), &on).is_empty());
    assert_eq!(plan_one(&disabled, &on).map(|a| a.len()), Ok(1));
}

#[test]
fn tags_and_notes_wait_for_success_unless_always() {
    let own = fpr('B');
    let state = incident();
    let text = format!("name: t\non: {ALL_INCIDENT_EVENTS}\nactions:\n  - tag: a\n  - note: n\n    when: always\n  - tag: b\n    when: previous_succeeded\n  - note: f\n    when: failure\n");
    let playbook = parse(&text, "playbooks/t.yaml").unwrap();
    let actions = plan(
        std::slice::from_ref(&playbook),
        &trigger(EventKind::IncidentReceived, Some(&state), &own),
    );
    let after_success: Vec<bool> = actions.iter().map(|a| a.applies(true)).collect();
    let after_failure: Vec<bool> = actions.iter().map(|a| a.applies(false)).collect();
    assert_eq!(after_success, [true, true, true, false]);
    assert_eq!(after_failure, [false, true, false, true]);
}

fn retract(state: &mut IncidentState) {
    state.retracted = Some(Retracted {
        by: EnvelopeId::of(b"r"),
        at: at(),
        reason: None,
    });
    state.readable = false;
    state.content = None;
    state.indicators.clear();
}

#[test]
fn skip_reasons_read_well() {
    let own = fpr('B');
    let mut state = incident();
    state.tlp = Tlp::Red;
    let skip = evaluate(
        &playbook(""),
        &trigger(EventKind::IncidentReceived, Some(&state), &own),
    )
    .unwrap_err();
    assert_eq!(
        skip.to_string(),
        "the incident is TLP:red, above the playbook's max_tlp green"
    );
    let skip = evaluate(
        &playbook(""),
        &trigger(EventKind::IncidentReceived, None, &own),
    )
    .unwrap_err();
    assert_eq!(skip, Skip::NoIncident);
}

#[test]
fn peer_events_match_on_the_peer() {
    let own = fpr('B');
    let playbook = parse(
        "name: p\non: [peer.down, mesh.equivocation]\nmatch: {from: [ke-cirt]}\nactions:\n  - exec:\n      argv: [/bin/true, \"{event}\", \"{peer}\"]\n",
        "p.yaml",
    )
    .unwrap();
    let ke = fpr('A');
    let other = fpr('C');
    let mut t = trigger(EventKind::PeerDown, None, &own);
    assert_eq!(evaluate(&playbook, &t), Err(Skip::NoPeer));
    t.peer = Some(&other);
    assert_eq!(evaluate(&playbook, &t), Err(Skip::From));
    t.peer = Some(&ke);
    let actions = plan(std::slice::from_ref(&playbook), &t);
    assert_eq!(actions.len(), 1);
    let PlannedKind::Exec {
        argv, env, stdin, ..
    } = &actions[0].kind
    else {
        panic!("not exec");
    };
    assert_eq!(argv, &["/bin/true", "peer.down", ke.as_str()]);
    assert!(env.contains(&("CER_PEER".into(), ke.to_string())));
    assert!(env.contains(&("CER_PEER_NAME".into(), "KE-CIRT".into())));
    assert!(!env.iter().any(|(k, _)| k == "CER_INCIDENT_ID"));
    let json: serde_json::Value = serde_json::from_slice(stdin).unwrap();
    assert_eq!(json["event"], "peer.down");
    assert_eq!(json["peer"], ke.as_str());
    assert_eq!(json["peer_name"], "KE-CIRT");
    assert_eq!(actions[0].incident, None);
}

fn block_ip() -> Playbook {
    parse(
        r#"name: block
on: [incident.received, incident.updated]
match:
  has_indicator: [ipv4, ipv6]
max_tlp: amber
actions:
  - exec:
      argv: ["/usr/local/sbin/block-ip", "{indicator.value}", "--type={indicator.type}", "{incident.id}", "{{literal}}"]
      for_each_indicator: [ipv4, ipv6]
      env: { BLOCK_TABLE: cert }
      timeout: 5s
  - webhook:
      url: "http://127.0.0.1:9000/hook"
  - tag: blocked
  - note: pushed to the firewall
"#,
        "/etc/cerd/playbooks/block.yaml",
    )
    .unwrap()
}

#[test]
fn for_each_indicator_fans_out_with_typed_values() {
    let own = fpr('B');
    let state = incident();
    let actions = plan(
        &[block_ip()],
        &trigger(EventKind::IncidentReceived, Some(&state), &own),
    );
    let kinds: Vec<String> = actions.iter().map(|a| a.describe()).collect();
    let id = state.id.to_string();
    assert_eq!(
        kinds,
        [
            format!("exec /usr/local/sbin/block-ip 203.0.113.7 --type=ipv4 {id} \"{{literal}}\""),
            format!("exec /usr/local/sbin/block-ip 2001:db8::7 --type=ipv6 {id} \"{{literal}}\""),
            "webhook http://127.0.0.1:9000/hook".to_owned(),
            "tag blocked".to_owned(),
            "note \"pushed to the firewall\"".to_owned(),
        ]
    );
    let PlannedKind::Exec {
        argv,
        env,
        timeout,
        stdin,
        cwd,
    } = &actions[1].kind
    else {
        panic!("not exec");
    };
    assert_eq!(argv[1], "2001:db8::7");
    assert_eq!(argv[4], "{literal}");
    assert_eq!(*timeout, Duration::from_secs(5));
    assert_eq!(*cwd, None);
    let env: std::collections::BTreeMap<_, _> = env.iter().cloned().collect();
    let author = fpr('A');
    let expect = [
        ("PATH", EXEC_PATH),
        ("CER_PLAYBOOK", "block"),
        ("CER_EVENT", "incident.received"),
        ("CER_INCIDENT_ID", id.as_str()),
        ("CER_TLP", "green"),
        ("CER_SEVERITY", "high"),
        ("CER_CLASSIFICATION", "malicious-code/c2-server"),
        ("CER_STATUS", "new"),
        ("CER_AUTHOR", author.as_str()),
        ("CER_AUTHOR_NAME", "KE-CIRT"),
        ("CER_INDICATOR_TYPE", "ipv6"),
        ("CER_INDICATOR_VALUE", "2001:db8::7"),
        ("BLOCK_TABLE", "cert"),
        ("CER_RUN_KEY", actions[1].key.as_str()),
    ];
    assert_eq!(env.len(), expect.len(), "{env:?}");
    for name in env.keys().filter(|k| k.starts_with("CER_")) {
        assert!(crate::CER_VARIABLES.contains(&name.as_str()), "{name}");
    }
    for (k, v) in expect {
        assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
    }
    let json: serde_json::Value = serde_json::from_slice(stdin).unwrap();
    assert_eq!(json["event"], "incident.received");
    assert_eq!(json["incident"]["content"]["title"], "C2 server");
    assert_eq!(json["reporter_name"], "KE-CIRT");
    assert_eq!(
        serde_json::from_value::<IncidentState>(json["incident"].clone()).unwrap(),
        state
    );
    // One payload shared by every action of the trigger.
    let PlannedKind::Webhook { body, retries, .. } = &actions[2].kind else {
        panic!("not webhook");
    };
    assert!(Arc::ptr_eq(body, stdin));
    assert_eq!(*retries, 2);
}

#[test]
fn keys_are_unique_and_stable() {
    let own = fpr('B');
    let state = incident();
    let playbooks = [block_ip(), playbook("")];
    let t = trigger(EventKind::IncidentReceived, Some(&state), &own);
    let first: Vec<String> = plan(&playbooks, &t).into_iter().map(|a| a.key).collect();
    let again: Vec<String> = plan(&playbooks, &t).into_iter().map(|a| a.key).collect();
    assert_eq!(first, again);
    let unique: BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "{first:?}");
    assert_eq!(
        first[0],
        format!("block:incident.received:{}:v1:0:ipv4:203.0.113.7", state.id)
    );
    // Another version, event or incident gives other keys.
    let mut t2 = trigger(EventKind::IncidentReceived, Some(&state), &own);
    t2.version = "v2".into();
    let t3 = trigger(EventKind::IncidentUpdated, Some(&state), &own);
    let mut other = state.clone();
    other.id = Uuid::from_u128(7);
    let t4 = trigger(EventKind::IncidentReceived, Some(&other), &own);
    for t in [t2, t3, t4] {
        for action in plan(&playbooks, &t) {
            assert!(!unique.contains(&action.key), "{}", action.key);
        }
    }
    // A version with ':' cannot collide with the fields after it.
    let mut t5 = trigger(EventKind::IncidentReceived, Some(&state), &own);
    t5.version = "v1:0".into();
    assert!(plan(&playbooks, &t5)[0].key.contains(":v1%3A0:0:"));
}

#[test]
fn for_each_with_no_matching_indicator_plans_no_exec() {
    let own = fpr('B');
    let mut state = incident();
    state.indicators.retain(|i| i.kind == IndicatorType::Domain);
    let mut playbook = block_ip();
    playbook.matcher.has_indicator.clear();
    let actions = plan(
        &[playbook],
        &trigger(EventKind::IncidentReceived, Some(&state), &own),
    );
    assert_eq!(
        actions.iter().map(|a| a.action_index).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[test]
fn envelope_kinds_map_to_events() {
    let (me, peer) = (fpr('B'), fpr('A'));
    let cases = [
        (Kind::Incident, &me, Some(EventKind::IncidentFiled)),
        (Kind::Incident, &peer, Some(EventKind::IncidentReceived)),
        (Kind::Update, &me, Some(EventKind::IncidentUpdated)),
        (Kind::Update, &peer, Some(EventKind::IncidentUpdated)),
        (Kind::Sighting, &peer, Some(EventKind::SightingReceived)),
        (Kind::Sighting, &me, None),
        (Kind::Retraction, &peer, Some(EventKind::RetractionReceived)),
        (Kind::Retraction, &me, Some(EventKind::RetractionReceived)),
        (Kind::Receipt, &peer, Some(EventKind::ReceiptReceived)),
        (Kind::Receipt, &me, None),
    ];
    for (kind, author, want) in cases {
        assert_eq!(
            EventKind::for_envelope(kind, author, &me),
            want,
            "{kind} by {author}"
        );
    }
}

#[test]
fn injection_corpus_only_fills_typed_values_into_their_own_element() {
    let own = fpr('B');
    let state = hostile_incident();
    assert!(state.indicators.len() >= 12, "{}", state.indicators.len());
    let playbook = parse(
        r#"name: inject
on: [incident.received]
actions:
  - exec:
      argv: ["/bin/echo", "{indicator.value}", "id={incident.id}", "{indicator.type}", "x{{incident.id}}"]
      for_each_indicator: [filename, url]
"#,
        "inject.yaml",
    )
    .unwrap();
    let actions = plan(
        &[playbook],
        &trigger(EventKind::IncidentReceived, Some(&state), &own),
    );
    assert_eq!(actions.len(), state.indicators.len());
    for (action, indicator) in actions.iter().zip(&state.indicators) {
        let PlannedKind::Exec { argv, env, .. } = &action.kind else {
            panic!("not exec");
        };
        assert_eq!(
            argv,
            &[
                "/bin/echo".to_owned(),
                indicator.value.clone(),
                format!("id={}", state.id),
                indicator.kind.as_str().to_owned(),
                "x{incident.id}".to_owned(),
            ]
        );
        // Free text is never in argv or the environment.
        for (_, value) in env {
            assert!(!value.contains("rm -rf"), "{value}");
            assert!(!value.contains("C2 server"));
        }
    }
}

fn acted(action: usize, kind: IndicatorType, value: &str) -> Acted {
    Acted {
        action,
        kind,
        value: value.into(),
        run_key: format!("block:incident.received:x:v0:{action}:{kind}:{value}"),
        at: at(),
    }
}

fn block_unblock(only: &str) -> Playbook {
    parse(
        &format!(
            r#"name: fw
on: [incident.received, incident.updated, retraction.received, indicator.removed]
actions:
  - exec:
      argv: [/bin/block, "{{indicator.value}}"]
      for_each_indicator: {{ types: [ipv4, ipv6], only: {only} }}
    on: [incident.received, incident.updated]
  - exec:
      argv: [/bin/unblock, "{{indicator.value}}"]
      for_each_indicator: [ipv4, ipv6]
    on: [retraction.received, indicator.removed]
"#
        ),
        "fw.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn argv_and_effects(actions: &[PlannedAction]) -> Vec<(String, Effect)> {
    actions
        .iter()
        .map(|a| match &a.kind {
            PlannedKind::Exec { argv, .. } => (argv.join(" "), a.effect.clone()),
            other => (format!("{other:?}"), a.effect.clone()),
        })
        .collect()
}

#[test]
fn only_added_skips_what_the_action_already_did() {
    let own = fpr('B');
    let state = incident();
    let done = [acted(0, IndicatorType::Ipv4, "203.0.113.7")];
    let mut trigger = trigger(EventKind::IncidentUpdated, Some(&state), &own);
    trigger.acted = &done;
    let added = plan_one(&block_unblock("added"), &trigger).unwrap();
    assert_eq!(
        argv_and_effects(&added),
        [(
            "/bin/block 2001:db8::7".to_owned(),
            Effect::Acted {
                kind: IndicatorType::Ipv6,
                value: "2001:db8::7".into()
            }
        )]
    );
    // A record of another action does not count for this one.
    let other = [acted(1, IndicatorType::Ipv4, "203.0.113.7")];
    trigger.acted = &other;
    assert_eq!(
        plan_one(&block_unblock("added"), &trigger).unwrap().len(),
        2
    );
    // only: all runs for everything again.
    trigger.acted = &done;
    assert_eq!(plan_one(&block_unblock("all"), &trigger).unwrap().len(), 2);
}

#[test]
fn undo_events_run_for_what_was_acted_on_and_is_gone() {
    let own = fpr('B');
    let mut state = incident();
    let done = [
        acted(0, IndicatorType::Ipv4, "203.0.113.7"),
        acted(0, IndicatorType::Ipv4, "192.0.2.99"),
        acted(0, IndicatorType::Ipv6, "2001:db8::7"),
    ];
    // 192.0.2.99 came with an update that was withdrawn.
    let mut trigger = trigger(EventKind::IndicatorRemoved, Some(&state), &own);
    trigger.acted = &done;
    let undo = plan_one(&block_unblock("added"), &trigger).unwrap();
    assert_eq!(
        argv_and_effects(&undo),
        [(
            "/bin/unblock 192.0.2.99".to_owned(),
            Effect::Undone {
                kind: IndicatorType::Ipv4,
                value: "192.0.2.99".into()
            }
        )]
    );
    let PlannedKind::Exec { env, stdin, .. } = &undo[0].kind else {
        panic!("not exec");
    };
    assert!(env.contains(&("CER_ACTED_RUN_KEY".into(), done[1].run_key.clone())));
    let json: serde_json::Value = serde_json::from_slice(stdin).unwrap();
    assert_eq!(json["acted_on"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["acted_on"][0]["value"], "192.0.2.99");

    // Retracted: everything acted on is gone, each value once.
    retract(&mut state);
    state.indicators.clear();
    let mut trigger = trigger_for(EventKind::RetractionReceived, &state, &own);
    trigger.acted = &done;
    let undo = plan_one(&block_unblock("added"), &trigger).unwrap();
    let argv: Vec<String> = argv_and_effects(&undo)
        .into_iter()
        .map(|(a, _)| a)
        .collect();
    assert_eq!(
        argv,
        [
            "/bin/unblock 203.0.113.7",
            "/bin/unblock 192.0.2.99",
            "/bin/unblock 2001:db8::7"
        ]
    );
    // Nothing acted on: nothing to undo.
    trigger.acted = &[];
    assert_eq!(
        plan_one(&block_unblock("added"), &trigger),
        Ok(vec![]),
        "the playbook matches, its undo action has nothing to run for"
    );
}

fn trigger_for<'a>(
    event: EventKind,
    state: &'a IncidentState,
    own: &'a Fingerprint,
) -> Trigger<'a> {
    trigger(event, Some(state), own)
}

#[test]
fn a_retraction_undoes_what_a_content_matched_playbook_did() {
    let own = fpr('B');
    let playbook = parse(
        r#"name: fw
on: [incident.received, retraction.received]
match: { severity_at_least: high, classification: ["malicious-code/*"], has_indicator: [ipv4] }
actions:
  - exec:
      argv: [/bin/unblock, "{indicator.value}"]
      for_each_indicator: [ipv4]
    on: [retraction.received]
"#,
        "fw.yaml",
    )
    .unwrap();
    let mut state = incident();
    retract(&mut state);
    state.content = None;
    state.indicators.clear();
    let done = [acted(0, IndicatorType::Ipv4, "203.0.113.7")];
    let mut trigger = trigger_for(EventKind::RetractionReceived, &state, &own);
    assert_eq!(plan_one(&playbook, &trigger), Err(Skip::NoContent));
    trigger.acted = &done;
    let undo = plan_one(&playbook, &trigger).unwrap();
    assert_eq!(argv_and_effects(&undo)[0].0, "/bin/unblock 203.0.113.7");
}
