//! Playbooks that remember what they did, on real nodes: block on
//! receipt, block only what an update adds, unblock what a withdrawn
//! update or a retraction takes back; limits that pause a playbook until
//! the operator resumes it; and forgetting the local record.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{eventually, write_file, TestNode};
// KE runs playbooks; NG files. Linked, each trusting the other.
use crate::playbooks::pair;

const SOON: Duration = Duration::from_secs(30);

/// A script that appends `VERB VALUE` to `$OUT` and keeps its stdin in
/// `$OUT.VERB.VALUE.json`.
fn recorder(node: &TestNode) -> (PathBuf, PathBuf) {
    let script = node.dir.path().join("record.sh");
    write_file(
        &script,
        b"#!/bin/sh\nprintf '%s %s\\n' \"$1\" \"$CER_INDICATOR_VALUE$CER_PAUSED_PLAYBOOK\" >> \"$OUT\"\ncat > \"$OUT.$1.$CER_INDICATOR_VALUE.json\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, node.dir.path().join("actions.log"))
}

fn install(node: &TestNode, name: &str, yaml: &str) {
    write_file(
        &node.dir.path().join(format!("playbooks/{name}.yaml")),
        yaml.as_bytes(),
    );
    eventually(SOON, "the playbook to load", || {
        node.json(&["playbook", "list"])["playbooks"]
            .as_array()?
            .iter()
            .any(|p| p["name"] == name)
            .then_some(())
    });
}

fn lines(out: &Path) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// Recorded runs of `playbook` for `incident` whose action starts with
/// `action` and whose event is `event`.
fn runs(node: &TestNode, incident: &str, event: &str, action: &str) -> usize {
    node.json(&[
        "playbook",
        "runs",
        "--incident",
        incident,
        "--limit",
        "1000",
    ])["runs"]
        .as_array()
        .map_or(0, |runs| {
            runs.iter()
                .filter(|r| r["event"] == event)
                .filter(|r| r["action"].as_str().is_some_and(|a| a.starts_with(action)))
                .count()
        })
}

/// Files a high-severity green C2 incident naming these addresses.
fn file_c2(ng: &TestNode, ips: &[&str]) -> String {
    let mut args = vec![
        "--title",
        "C2 servers",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
    ];
    let iocs: Vec<String> = ips
        .iter()
        .map(|ip| match ip.contains(':') {
            true => format!("ipv6:{ip}"),
            false => format!("ipv4:{ip}"),
        })
        .collect();
    for ioc in &iocs {
        args.push("--ioc");
        args.push(ioc);
    }
    ng.file(&args)
}

#[test]
fn block_on_receipt_block_only_what_is_added_unblock_what_is_withdrawn() {
    let (ke, ng) = pair();
    let (script, out) = recorder(&ke);
    let (script, out_text) = (script.display().to_string(), out.display().to_string());
    install(
        &ke,
        "block-c2",
        &format!(
            r#"name: block-c2
on: [incident.received, incident.updated, retraction.received, indicator.removed]
match: {{ has_indicator: [ipv4] }}
limits: {{ max_indicators_per_run: 100 }}
actions:
  - exec:
      argv: ["{script}", "block", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{out_text}" }}
    on: [incident.received, incident.updated]
  - exec:
      argv: ["{script}", "unblock", "--", "{{indicator.value}}"]
      for_each_indicator: {{ types: [ipv4] }}
      env: {{ OUT: "{out_text}" }}
    on: [retraction.received, indicator.removed]
  - tag: handled
    when: always
"#
        ),
    );

    // Received: both addresses blocked.
    let id = file_c2(&ng, &["203.0.113.7", "198.51.100.9"]);
    eventually(SOON, "the receipt handled", || {
        (runs(&ke, &id, "incident.received", "tag") == 1).then_some(())
    });
    assert_eq!(lines(&out), ["block 198.51.100.9", "block 203.0.113.7"]);

    // An update that changes the status and adds one address blocks only
    // that one: the tag, run after every block, proves the trigger is done.
    let update = ng
        .cerctl(&[
            "incident",
            "update",
            &id,
            "--status",
            "open",
            "--ioc",
            "ipv4:192.0.2.33",
        ])
        .ok()
        .trim()
        .to_owned();
    eventually(SOON, "the update handled", || {
        (runs(&ke, &id, "incident.updated", "tag") == 1).then_some(())
    });
    assert_eq!(
        lines(&out),
        [
            "block 192.0.2.33",
            "block 198.51.100.9",
            "block 203.0.113.7"
        ]
    );
    let acted = ke.json(&["playbook", "acted", "block-c2", "--incident", &id]);
    assert_eq!(acted["acted"].as_array().unwrap().len(), 3, "{acted}");

    // Withdrawing the update takes its address out of the incident: it is
    // unblocked, once, as indicator.removed, with the run that blocked it.
    ng.cerctl(&["incident", "retract", &id, "--envelope", &update])
        .ok();
    eventually(SOON, "the withdrawal handled", || {
        (runs(&ke, &id, "retraction.received", "tag") == 1).then_some(())
    });
    assert_eq!(runs(&ke, &id, "indicator.removed", "exec"), 1);
    assert_eq!(runs(&ke, &id, "retraction.received", "exec"), 0);
    assert_eq!(
        lines(&out),
        [
            "block 192.0.2.33",
            "block 198.51.100.9",
            "block 203.0.113.7",
            "unblock 192.0.2.33"
        ]
    );
    let stdin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{out_text}.unblock.192.0.2.33.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stdin["event"], "indicator.removed");
    assert_eq!(stdin["acted_on"][0]["value"], "192.0.2.33", "{stdin}");
    let blocked_by = stdin["acted_on"][0]["run_key"].as_str().unwrap();
    assert!(
        stdin["acted_runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == blocked_by && r["outcome"]["status"] == "ok"),
        "the original run's record: {stdin}"
    );

    // Retracting the incident unblocks the rest, nothing twice.
    ng.cerctl(&["incident", "retract", &id, "--reason", "false positive"])
        .ok();
    eventually(SOON, "the retraction handled", || {
        (runs(&ke, &id, "retraction.received", "tag") == 2).then_some(())
    });
    assert_eq!(
        lines(&out),
        [
            "block 192.0.2.33",
            "block 198.51.100.9",
            "block 203.0.113.7",
            "unblock 192.0.2.33",
            "unblock 198.51.100.9",
            "unblock 203.0.113.7",
        ]
    );
    let stdin: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{out_text}.unblock.203.0.113.7.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(stdin["event"], "retraction.received");
    assert_eq!(stdin["acted_on"].as_array().unwrap().len(), 2, "{stdin}");
    assert_eq!(stdin["acted_runs"].as_array().unwrap().len(), 2, "{stdin}");
    let acted = ke.json(&["playbook", "acted", "block-c2", "--incident", &id]);
    assert!(acted["acted"].as_array().unwrap().is_empty(), "{acted}");
}

#[test]
fn a_limit_pauses_until_resumed_and_forget_drops_the_record() {
    let (ke, ng) = pair();
    let (script, out) = recorder(&ke);
    let (script, out_text) = (script.display().to_string(), out.display().to_string());
    install(
        &ke,
        "pager",
        &format!(
            r#"name: pager
on: [playbook.paused]
actions:
  - exec:
      argv: ["{script}", "paused"]
      env: {{ OUT: "{out_text}" }}
"#
        ),
    );
    install(
        &ke,
        "guarded",
        &format!(
            r#"name: guarded
on: [incident.received, retraction.received]
limits: {{ max_indicators_per_run: 2 }}
actions:
  - exec:
      argv: ["{script}", "block", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{out_text}" }}
    on: [incident.received]
  - exec:
      argv: ["{script}", "unblock", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{out_text}" }}
    on: [retraction.received]
  - note: handled
    when: always
"#
        ),
    );

    // Three addresses at once pass the limit of two: nothing runs, the
    // playbook pauses, the pager hears of it.
    let big = file_c2(&ng, &["203.0.113.1", "203.0.113.2", "203.0.113.3"]);
    let paused = eventually(SOON, "the pause", || {
        let list = ke.json(&["playbook", "list"]);
        let guarded = list["playbooks"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "guarded")?
            .clone();
        guarded["paused"].is_object().then_some(guarded)
    });
    let reason = paused["paused"]["reason"].as_str().unwrap();
    assert!(reason.contains("max_indicators_per_run"), "{reason}");
    eventually(SOON, "the pager", || {
        lines(&out)
            .contains(&"paused guarded".to_owned())
            .then_some(())
    });
    assert!(ke.log().contains("playbook_paused"), "an audit event");

    // Held, not run, while paused: the held count proves it arrived.
    let small = file_c2(&ng, &["192.0.2.9"]);
    eventually(SOON, "the second event held", || {
        let list = ke.json(&["playbook", "list"]);
        list["playbooks"]
            .as_array()?
            .iter()
            .any(|p| p["name"] == "guarded" && p["paused"]["held"] == 2)
            .then_some(())
    });
    assert_eq!(lines(&out), ["paused guarded"]);
    let human = ke.cerctl(&["playbook", "list"]);
    assert!(human.ok().contains("PAUSED"), "{}", human.stdout);

    // Resumed: what was held runs, the operator's decision overriding the
    // limit for those events.
    let resumed = ke.json(&["playbook", "resume", "guarded"]);
    assert_eq!(resumed["replaying"], 2, "{resumed}");
    eventually(SOON, "the held events run", || {
        (runs(&ke, &big, "incident.received", "note") == 1
            && runs(&ke, &small, "incident.received", "note") == 1)
            .then_some(())
    });
    assert_eq!(
        lines(&out),
        [
            "block 192.0.2.9",
            "block 203.0.113.1",
            "block 203.0.113.2",
            "block 203.0.113.3",
            "paused guarded"
        ]
    );
    let list = ke.json(&["playbook", "list"]);
    assert!(list["playbooks"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p.get("paused").is_none()));
    let again = ke.cerctl(&["playbook", "resume", "guarded"]);
    assert_ne!(again.code, 0, "not paused any more");

    // Forgotten for the big incident: its retraction has nothing to undo.
    let forgotten = ke.json(&["playbook", "forget", "guarded", "--incident", &big]);
    assert_eq!(forgotten["records"], 3, "{forgotten}");
    ng.cerctl(&["incident", "retract", &big]).ok();
    eventually(SOON, "the big retraction handled", || {
        (runs(&ke, &big, "retraction.received", "note") == 1).then_some(())
    });
    ng.cerctl(&["incident", "retract", &small]).ok();
    eventually(SOON, "the small retraction handled", || {
        (runs(&ke, &small, "retraction.received", "note") == 1).then_some(())
    });
    let unblocked: Vec<String> = lines(&out)
        .into_iter()
        .filter(|l| l.starts_with("unblock"))
        .collect();
    assert_eq!(unblocked, ["unblock 192.0.2.9"]);
}

/// The shipped examples, turned on: block-c2 blocks through bin/block-ip
/// and unblocks through bin/unblock-ip (a stand-in `nft` first on their
/// PATH records both), phishing-rpz writes a zone file and takes the
/// domain out again on retraction.
#[test]
fn the_shipped_examples_block_and_unblock() {
    let (ke, ng) = pair();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
    let folder = ke.dir.path().join("playbooks");
    std::fs::create_dir_all(folder.join("bin")).unwrap();
    for script in ["block-ip", "unblock-ip", "rpz-add", "rpz-remove"] {
        std::fs::copy(
            examples.join("bin").join(script),
            folder.join("bin").join(script),
        )
        .unwrap();
    }
    let fake = ke.dir.path().join("fakebin");
    std::fs::create_dir_all(&fake).unwrap();
    let nft_log = ke.dir.path().join("nft.log");
    write_file(
        &fake.join("nft"),
        format!(
            // One write per call (the whole line at once), so two runs
            // at the same moment never interleave their lines.
            "#!/bin/sh\nline=$(printf '%s|' \"$@\")\nprintf '%s\\n' \"$line\" >> '{}'\n",
            nft_log.display()
        )
        .as_bytes(),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(fake.join("nft"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let zone = ke.dir.path().join("rpz.zone");
    write_file(
        &zone,
        b"$TTL 300\n@ SOA localhost. root.localhost. 1 3600 600 86400 300\n@ NS localhost.\n",
    );

    let block = std::fs::read_to_string(examples.join("block-c2.yaml"))
        .unwrap()
        .replace("enabled: false", "enabled: true")
        .replace(
            "        # CER_BLOCK_APPLY: \"1\"",
            &format!(
                "        CER_BLOCK_APPLY: \"1\"\n        PATH: \"{}:/usr/bin:/bin\"",
                fake.display()
            ),
        );
    let rpz = std::fs::read_to_string(examples.join("phishing-rpz.yaml"))
        .unwrap()
        .replace("enabled: false", "enabled: true")
        .replace(
            "      # env:\n      #   RPZ_ZONE_FILE: /var/lib/bind/rpz.cert.db",
            &format!("      env:\n        RPZ_ZONE_FILE: \"{}\"", zone.display()),
        );
    assert!(block.contains("CER_BLOCK_APPLY: \"1\""));
    assert!(rpz.contains("RPZ_ZONE_FILE: \""));
    install(&ke, "block-c2-addresses", &block);
    install(&ke, "phishing-rpz", &rpz);

    let c2 = file_c2(&ng, &["203.0.113.7", "2001:db8::7"]);
    let phish = ng.file(&[
        "--title",
        "Phishing kit",
        "--severity",
        "medium",
        "--tlp",
        "green",
        "--class",
        "fraud/phishing",
        "--ioc",
        "domain:login-bank.example",
    ]);
    eventually(SOON, "both blocked and the domain in the zone", || {
        let nft = std::fs::read_to_string(&nft_log).unwrap_or_default();
        let zone = std::fs::read_to_string(&zone).unwrap_or_default();
        (nft.lines().count() == 2 && zone.contains("*.login-bank.example CNAME .")).then_some(())
    });
    let mut nft: Vec<String> = std::fs::read_to_string(&nft_log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    nft.sort();
    assert_eq!(
        nft,
        [
            "add|element|inet|cert_block|block_v4|{ 203.0.113.7 }|",
            "add|element|inet|cert_block|block_v6|{ 2001:db8::7 }|",
        ]
    );
    eventually(SOON, "the blocked tag", || {
        (runs(&ke, &c2, "incident.received", "tag") == 1).then_some(())
    });

    ng.cerctl(&["incident", "retract", &c2, "--reason", "sinkholed, not C2"])
        .ok();
    ng.cerctl(&["incident", "retract", &phish]).ok();
    eventually(
        SOON,
        "both unblocked and the domain out of the zone",
        || {
            let nft = std::fs::read_to_string(&nft_log).unwrap_or_default();
            let zone = std::fs::read_to_string(&zone).unwrap_or_default();
            (nft.lines().count() == 4 && !zone.contains("login-bank")).then_some(())
        },
    );
    let nft = std::fs::read_to_string(&nft_log).unwrap();
    assert!(
        nft.contains("delete|element|inet|cert_block|block_v4|{ 203.0.113.7 }|"),
        "{nft}"
    );
    assert!(
        nft.contains("delete|element|inet|cert_block|block_v6|{ 2001:db8::7 }|"),
        "{nft}"
    );
    let zone = std::fs::read_to_string(&zone).unwrap();
    assert!(
        zone.starts_with("$TTL 300\n@ SOA"),
        "the rest of the zone stays: {zone}"
    );
}

/// `playbook test --run`: the actions really run once against a real
/// incident, are recorded as a test run, and change no playbook record.
#[test]
fn a_test_run_runs_once_and_is_recorded_as_one() {
    let (ke, ng) = pair();
    let (script, out) = recorder(&ke);
    let id = file_c2(&ng, &["203.0.113.7", "198.51.100.9"]);
    eventually(SOON, "KE to hold the incident", || {
        (ke.cerctl(&["incident", "show", &id]).code == 0).then_some(())
    });
    // Not in the playbook folder: a draft being tried.
    let draft = ke.dir.path().join("draft.yaml");
    write_file(
        &draft,
        format!(
            r#"name: draft
on: [incident.received]
actions:
  - exec:
      argv: ["{}", "block", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{}" }}
  - tag: tried
"#,
            script.display(),
            out.display()
        )
        .as_bytes(),
    );
    let draft = draft.display().to_string();
    let test = ke.json(&["playbook", "test", &draft, "--incident", &id, "--run"]);
    let ran = test["ran"].as_array().unwrap();
    assert_eq!(ran.len(), 3, "{test}");
    assert!(ran.iter().all(|r| r["test"] == true), "{test}");
    assert_eq!(ran[0]["outcome"]["status"], "ok", "{test}");
    assert_eq!(ran[2]["outcome"]["status"], "skipped", "{test}");
    assert_eq!(lines(&out), ["block 198.51.100.9", "block 203.0.113.7"]);
    let history = ke.json(&["playbook", "runs", "--playbook", "draft"]);
    assert_eq!(history["runs"].as_array().unwrap().len(), 3, "{history}");
    let acted = ke.json(&["playbook", "acted", "draft"]);
    assert!(acted["acted"].as_array().unwrap().is_empty(), "{acted}");
    let human = ke.cerctl(&["playbook", "test", &draft, "--incident", &id, "--run"]);
    assert!(
        human.ok().contains("ran once (recorded as a test run)"),
        "{}",
        human.stdout
    );
    assert_eq!(lines(&out).len(), 4, "each --run runs again");

    // A failing action fails the test run's exit status.
    write_file(
        Path::new(&draft),
        b"name: draft\non: [incident.received]\nactions:\n  - exec:\n      argv: [/bin/false]\n",
    );
    let failed = ke.cerctl(&["playbook", "test", &draft, "--incident", &id, "--run"]);
    assert_eq!(failed.code, 1, "{}", failed.stdout);
    assert!(
        failed.stdout.contains("failed (exit status 1)"),
        "{}",
        failed.stdout
    );
}

/// An indicator's expiry takes back what a playbook did for it: the
/// author's valid_until passing, or the author ending it with an update;
/// an expired indicator is not acted on again.
#[test]
fn an_expired_indicator_is_unblocked_and_not_blocked_again() {
    let mut ke = TestNode::new("KE-CIRT");
    let mut ng = TestNode::new("NG-CERT");
    ke.init();
    ng.init();
    ke.trust(&ng);
    ng.trust(&ke);
    let config = std::fs::read_to_string(ke.config_path()).unwrap();
    write_file(
        &ke.config_path(),
        format!("expiry_check_interval = \"1s\"\n{config}").as_bytes(),
    );
    ke.spawn();
    ke.pin_listen();
    ng.add_peer(&ke.listen_addr());
    ng.spawn();
    let (script, out) = recorder(&ke);
    let (script, out_text) = (script.display().to_string(), out.display().to_string());
    install(
        &ke,
        "block-c2",
        &format!(
            r#"name: block-c2
on: [incident.received, incident.updated, indicator.expired]
actions:
  - exec:
      argv: ["{script}", "block", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{out_text}" }}
    on: [incident.received, incident.updated]
  - exec:
      argv: ["{script}", "unblock", "--", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{out_text}" }}
    on: [indicator.expired]
  - tag: handled
    when: always
"#
        ),
    );
    let soon =
        cer_proto::model::Timestamp(time::OffsetDateTime::now_utc() + time::Duration::seconds(4));
    let incident = serde_json::json!({
        "title": "C2 servers", "severity": "high", "tlp": "green",
        "classification": "malicious-code/c2-server",
        "indicators": [
            {"type": "ipv4", "value": "203.0.113.7", "valid_until": soon.to_string()},
            {"type": "ipv4", "value": "198.51.100.9"},
        ],
    });
    let id = ng
        .cerctl_stdin(&["incident", "file", "--from", "-"], &incident.to_string())
        .ok()
        .trim()
        .to_owned();
    eventually(SOON, "the receipt handled", || {
        (runs(&ke, &id, "incident.received", "tag") == 1).then_some(())
    });
    assert_eq!(lines(&out), ["block 198.51.100.9", "block 203.0.113.7"]);

    // Its valid_until passes: unblocked; the other stays.
    eventually(SOON, "the expiry handled", || {
        (runs(&ke, &id, "indicator.expired", "exec") == 1).then_some(())
    });
    eventually(SOON, "the expiry's tag", || {
        (runs(&ke, &id, "indicator.expired", "tag") == 1).then_some(())
    });
    assert_eq!(
        lines(&out),
        [
            "block 198.51.100.9",
            "block 203.0.113.7",
            "unblock 203.0.113.7"
        ]
    );
    let shown = ke.json(&["incident", "show", &id]);
    let entry = shown["incident"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["value"] == "203.0.113.7")
        .cloned()
        .unwrap();
    assert_eq!(entry["valid_until"], soon.to_string(), "{entry}");

    // An update naming the expired address again does not block it again;
    // the author ends the other one now, and it is unblocked too.
    ng.cerctl(&[
        "incident",
        "update",
        &id,
        "--note",
        "still active?",
        "--ioc",
        "ipv4:203.0.113.7",
    ])
    .ok();
    eventually(SOON, "the update handled", || {
        (runs(&ke, &id, "incident.updated", "tag") == 1).then_some(())
    });
    ng.cerctl(&["incident", "update", &id, "--expire", "ipv4:198.51.100.9"])
        .ok();
    eventually(SOON, "the second expiry handled", || {
        (lines(&out).len() == 4).then_some(())
    });
    assert_eq!(
        lines(&out),
        [
            "block 198.51.100.9",
            "block 203.0.113.7",
            "unblock 198.51.100.9",
            "unblock 203.0.113.7"
        ]
    );
    // Only the author decides expiry.
    let refused = ke.cerctl(&["incident", "update", &id, "--expire", "ipv4:198.51.100.9"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("only the incident's author"),
        "{}",
        refused.stderr
    );
}

/// `cerctl ioc sight`: a signed sighting goes back to the incident's
/// author, counts in the indicator's sightings and triggers
/// `sighting.received` there; a false-positive report is told apart.
#[test]
fn a_sighting_reaches_the_author_and_triggers_its_playbooks() {
    let (ke, ng) = pair();
    let (script, out) = recorder(&ng);
    install(
        &ng,
        "sighted",
        &format!(
            r#"name: sighted
on: [sighting.received]
actions:
  - exec:
      argv: ["{}", "sighted"]
      env: {{ OUT: "{}" }}
"#,
            script.display(),
            out.display()
        ),
    );
    let id = file_c2(&ng, &["203.0.113.7"]);
    eventually(SOON, "KE to hold the incident", || {
        (ke.cerctl(&["incident", "show", &id]).code == 0).then_some(())
    });
    let filed = ke.json(&[
        "ioc",
        "sight",
        "203.0.113.7",
        "--count",
        "3",
        "--comment",
        "seen at the border",
    ]);
    assert_eq!(filed["sightings"].as_array().unwrap().len(), 1, "{filed}");
    eventually(SOON, "the author to count it", || {
        let shown = ng.json(&["incident", "show", &id]);
        (shown["incident"]["indicators"][0]["sightings"] == 3).then_some(())
    });
    eventually(SOON, "the author's playbook", || {
        lines(&out).contains(&"sighted ".to_owned()).then_some(())
    });
    ke.cerctl(&[
        "ioc",
        "sight",
        "203.0.113.7",
        "--incident",
        &id,
        "--false-positive",
    ])
    .ok();
    let shown = eventually(SOON, "the false-positive report", || {
        let shown = ng.json(&["incident", "show", &id]);
        shown["incident"]["timeline"]
            .as_array()?
            .iter()
            .any(|e| e["false_positive"] == true)
            .then_some(shown)
    });
    assert_eq!(
        shown["incident"]["indicators"][0]["sightings"], 3,
        "a false positive is not a sighting"
    );
    let human = ng.cerctl(&["incident", "show", &id]);
    assert!(
        human.ok().contains("as a false positive"),
        "{}",
        human.stdout
    );
    // The author's search shows who sighted it, and the report against it.
    let found = ng.json(&["ioc", "search", "203.0.113.7"]);
    let sighted = &found["matches"][0]["sighted_by"][0];
    assert_eq!(sighted["cert"]["name"], "KE-CIRT", "{found}");
    assert_eq!(sighted["count"], 3, "{found}");
    assert_eq!(sighted["false_positives"], 1, "{found}");
    assert!(
        found["matches"][0]["valid_until"].is_string(),
        "ipv4 expires by default: {found}"
    );
    let table = ng.cerctl(&["ioc", "search", "203.0.113.7"]);
    assert!(
        table.ok().contains("sighted by KE-CIRT 3x"),
        "{}",
        table.stdout
    );
    // Nothing to sight: exit 1 with the reason.
    let none = ke.cerctl(&["ioc", "sight", "192.0.2.250"]);
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("no incident here names"),
        "{}",
        none.stderr
    );
}
