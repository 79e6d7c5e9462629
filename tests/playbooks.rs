//! Playbooks on real nodes: an incident received over the mesh runs the
//! configured argv once per indicator (and nothing else, whatever the
//! incident says), runs are recorded and survive restarts without
//! re-running, and playbooks reload without a restart.

use std::time::Duration;

use crate::harness::{eventually, write_file, TestNode};

const SOON: Duration = Duration::from_secs(30);

pub(crate) fn pair() -> (TestNode, TestNode) {
    let mut ke = TestNode::new("KE-CIRT");
    let mut ng = TestNode::new("NG-CERT");
    ke.init();
    ng.init();
    ke.trust(&ng);
    ng.trust(&ke);
    ke.spawn();
    ke.pin_listen();
    ng.add_peer(&ke.listen_addr());
    ng.spawn();
    eventually(SOON, "the link", || {
        let peers = ke.json(&["peers"]);
        peers["peers"]
            .as_array()?
            .iter()
            .any(|p| p["connected"] == true)
            .then_some(())
    });
    (ke, ng)
}

fn install(node: &TestNode) -> std::path::PathBuf {
    let out = node.dir.path().join("argv.log");
    let script = node.dir.path().join("record.sh");
    write_file(
        &script,
        b"#!/bin/sh\nprintf '%s\\n' \"$@\" >> \"$OUT\"\ncat > \"$OUT.$CER_INDICATOR_VALUE.stdin\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let playbook = format!(
        r#"name: block-c2
description: record C2 addresses
on: [incident.received]
match:
  severity_at_least: high
  classification: ["malicious-code/*"]
  has_indicator: [ipv4]
max_tlp: green
actions:
  - exec:
      argv: ["{script}", "{{indicator.value}}", "{{incident.id}}"]
      for_each_indicator: [ipv4]
      timeout: 10s
      env: {{ OUT: "{out}" }}
  - tag: blocked
"#,
        script = script.display(),
        out = out.display()
    );
    write_file(
        &node.dir.path().join("playbooks/block-c2.yaml"),
        playbook.as_bytes(),
    );
    out
}

#[test]
fn received_incident_runs_exactly_the_configured_argv() {
    let (mut ke, ng) = pair();
    let out = install(&ke);
    eventually(SOON, "the playbook to load", || {
        let list = ke.json(&["playbook", "list"]);
        (list["playbooks"][0]["name"] == "block-c2").then_some(())
    });
    let pwned = std::path::Path::new("/tmp/cerd-playbook-pwned");
    let _ = std::fs::remove_file(pwned);
    let hostile =
        "$(touch /tmp/cerd-playbook-pwned); `touch /tmp/cerd-playbook-pwned` {incident.id} {{7*7}}";
    let id = ng.file(&[
        "--title",
        hostile,
        "--description",
        "; rm -rf / ; $(id)\nsecond line",
        "--severity",
        "critical",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.7",
        "--ioc",
        "ipv4:198.51.100.9",
        "--ioc",
        "filename:$(touch pwned; id).exe",
        "--tag",
        "botnet",
    ]);
    let runs = eventually(SOON, "two exec runs and a tag", || {
        let runs = ke.json(&["playbook", "runs", "--incident", &id]);
        (runs["runs"].as_array()?.len() == 3).then_some(runs)
    });
    for run in runs["runs"].as_array().unwrap() {
        assert_eq!(run["outcome"]["status"], "ok", "{run}");
        assert_eq!(run["event"], "incident.received");
    }
    let argv = std::fs::read_to_string(&out).unwrap();
    let mut lines: Vec<&str> = argv.lines().collect();
    lines.sort();
    let mut expected = vec!["198.51.100.9", "203.0.113.7", id.as_str(), id.as_str()];
    expected.sort();
    assert_eq!(
        lines, expected,
        "argv must be exactly the configured elements"
    );
    assert!(!pwned.exists(), "incident data was executed");
    // The incident JSON reached the action on stdin, untouched.
    let stdin = std::fs::read_to_string(format!("{}.203.0.113.7.stdin", out.display())).unwrap();
    let json: serde_json::Value = serde_json::from_str(&stdin).unwrap();
    assert_eq!(json["incident"]["content"]["title"], hostile);
    // The local tag is on the incident at KE only.
    let detail = ke.json(&["incident", "show", &id]);
    assert_eq!(detail["local"][0]["tag"], "blocked");
    assert!(ng.json(&["incident", "show", &id]).get("local").is_none());
    let table = ke.cerctl(&["playbook", "runs", "--incident", &id]);
    assert!(table.ok().contains("block-c2"), "{}", table.stdout);

    // A restart does not run anything again, and a low-severity incident
    // does not match: once the driver's cursor has passed every event in
    // the store, the low one received after the restart included, the
    // runs are those from before.
    ke.stop();
    ke.spawn();
    let low = ng.file(&[
        "--title",
        "scan",
        "--severity",
        "low",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:192.0.2.1",
    ]);
    eventually(SOON, "KE to receive the low incident", || {
        (ke.cerctl(&["incident", "show", &low]).code == 0).then_some(())
    });
    playbooks_done(&ke);
    let after = ke.json(&["playbook", "runs", "--incident", &id]);
    assert_eq!(after["runs"].as_array().unwrap().len(), 3);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);
    assert!(ke.json(&["playbook", "runs", "--incident", &low])["runs"]
        .as_array()
        .unwrap()
        .is_empty());
}

/// Waits until the playbook driver has finished with every event the
/// store holds (its cursor is at the newest event).
pub(crate) fn playbooks_done(node: &TestNode) {
    eventually(SOON, "the playbooks to finish every event", || {
        let status = node.status();
        let events = status["events"].as_u64()?;
        (events > 0 && status["playbook_cursor"].as_u64() == Some(events)).then_some(())
    });
}

#[test]
fn hot_reload_check_and_dry_run() {
    let (ke, ng) = pair();
    let out = install(&ke);
    eventually(SOON, "the playbook to load", || {
        (ke.json(&["playbook", "list"])["playbooks"]
            .as_array()?
            .len()
            == 1)
            .then_some(())
    });
    // Break the file: the error is shown with line and column, the
    // previous version stays active.
    let file = ke.dir.path().join("playbooks/block-c2.yaml");
    let good = std::fs::read_to_string(&file).unwrap();
    write_file(
        &file,
        good.replace("severity_at_least: high", "severity_at_least: hgih")
            .as_bytes(),
    );
    let list = eventually(SOON, "the refusal", || {
        let list = ke.json(&["playbook", "list"]);
        (!list["errors"].as_array()?.is_empty()).then_some(list)
    });
    let message = list["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("block-c2.yaml:5:"), "{message}");
    assert!(message.contains("severity"), "{message}");
    assert_eq!(
        list["playbooks"][0]["name"], "block-c2",
        "previous version stays active"
    );
    // It still runs with the previous version.
    let id = ng.file(&[
        "--title",
        "C2",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.77",
    ]);
    eventually(SOON, "the run", || {
        std::fs::read_to_string(&out)
            .ok()?
            .contains("203.0.113.77")
            .then_some(())
    });

    // check and test from the CLI.
    let bad = ke.cerctl(&["playbook", "check", file.to_str().unwrap()]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains(":5:22"), "{bad:?}");
    write_file(&file, good.as_bytes());
    let ok = ke.cerctl(&["playbook", "check", file.to_str().unwrap()]);
    assert!(ok.ok().contains("block-c2"));
    let test = ke.cerctl(&[
        "playbook",
        "test",
        file.to_str().unwrap(),
        "--incident",
        &id,
    ]);
    let text = test.ok();
    assert!(
        text.contains("203.0.113.77") && text.contains("tag blocked"),
        "{text}"
    );
    // Removing the file unloads it.
    std::fs::remove_file(&file).unwrap();
    eventually(SOON, "the playbook to unload", || {
        ke.json(&["playbook", "list"])["playbooks"]
            .as_array()?
            .is_empty()
            .then_some(())
    });
}

/// A playbook records only what happened: a tag after a webhook that
/// failed, or after a script that only did a dry run, is skipped; a note
/// with `when: always` is added whatever happened; a dry run is recorded
/// as such.
#[test]
fn tags_and_notes_wait_for_the_actions_before_them() {
    let node = TestNode::start("KE-CIRT");
    // A port nobody listens on: the webhook fails at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let script = node.dir.path().join("dry-run.sh");
    write_file(
        &script,
        b"#!/bin/sh\necho 'dry run: would block'\nexit 99\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    write_file(
        &node.dir.path().join("playbooks/ticket.yaml"),
        format!(
            r#"name: ticket
on: [incident.filed]
actions:
  - webhook:
      url: "http://127.0.0.1:{port}/tickets"
      timeout: 5s
      retries: 0
  - tag: ticketed
  - note: "ticket attempted"
    when: always
"#
        )
        .as_bytes(),
    );
    write_file(
        &node.dir.path().join("playbooks/block.yaml"),
        format!(
            r#"name: block
on: [incident.filed]
actions:
  - exec:
      argv: ["{}"]
      timeout: 10s
  - tag: blocked
"#,
            script.display()
        )
        .as_bytes(),
    );
    eventually(SOON, "both playbooks to load", || {
        (ke_playbooks(&node) == 2).then_some(())
    });
    let id = node.file(&[
        "--title",
        "C2",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
    ]);
    let runs = eventually(SOON, "five recorded actions", || {
        let runs = node.json(&["playbook", "runs", "--incident", &id]);
        (runs["runs"].as_array()?.len() == 5).then_some(runs)
    });
    let mut outcomes: Vec<(String, String)> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let action = r["action"].as_str().unwrap();
            let kind = action.split(' ').next().unwrap().to_owned();
            let what = if kind == "exec" || kind == "webhook" {
                kind
            } else {
                action.to_owned()
            };
            (what, r["outcome"]["status"].as_str().unwrap().to_owned())
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("exec".to_owned(), "dry_run".to_owned()),
            ("note \"ticket attempted\"".to_owned(), "ok".to_owned()),
            ("tag blocked".to_owned(), "skipped".to_owned()),
            ("tag ticketed".to_owned(), "skipped".to_owned()),
            ("webhook".to_owned(), "failed".to_owned()),
        ],
        "{runs}"
    );
    let detail = node.json(&["incident", "show", &id]);
    let local = detail["local"].as_array().unwrap();
    assert_eq!(local.len(), 1, "{detail}");
    assert_eq!(local[0]["note"], "ticket attempted");
    let table = node.cerctl(&["playbook", "runs", "--wide", "--incident", &id]);
    assert!(table.ok().contains("dry run (exit 99)"), "{}", table.stdout);
}

/// A playbook with `enabled: false` loads, is listed as disabled, and never
/// runs.
#[test]
fn a_disabled_playbook_is_listed_and_never_runs() {
    let node = TestNode::start("KE-CIRT");
    write_file(
        &node.dir.path().join("playbooks/off.yaml"),
        b"name: off\nenabled: false\non: [incident.filed]\nactions:\n  - tag: ran\n",
    );
    write_file(
        &node.dir.path().join("playbooks/on.yaml"),
        b"name: on\non: [incident.filed]\nactions:\n  - tag: on-ran\n",
    );
    eventually(SOON, "both playbooks to load", || {
        (ke_playbooks(&node) == 2).then_some(())
    });
    let list = node.json(&["playbook", "list"]);
    let enabled: Vec<(String, bool)> = list["playbooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["enabled"].as_bool().unwrap(),
            )
        })
        .collect();
    assert!(enabled.contains(&("off".to_owned(), false)), "{list}");
    assert!(enabled.contains(&("on".to_owned(), true)), "{list}");
    assert!(
        node.cerctl(&["playbook", "list"])
            .ok()
            .contains("off (disabled)"),
        "{list}"
    );
    let id = node.file(&[
        "--title",
        "T",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "test/test",
    ]);
    // The enabled playbook's run is the marker that the event was handled.
    let runs = eventually(SOON, "the enabled playbook to run", || {
        let runs = node.json(&["playbook", "runs", "--incident", &id]);
        (!runs["runs"].as_array()?.is_empty()).then_some(runs)
    });
    let playbooks: Vec<&str> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["playbook"].as_str().unwrap())
        .collect();
    assert_eq!(playbooks, ["on"], "{runs}");
}

fn ke_playbooks(node: &TestNode) -> usize {
    node.json(&["playbook", "list"])["playbooks"]
        .as_array()
        .map_or(0, |p| p.len())
}
