//! Per-entry TLP on real nodes: an AMBER update on a GREEN incident,
//! encrypted by its author to the receiving node, reaches that node's
//! `max_tlp: amber` playbook and stays out of what its `max_tlp: green`
//! playbook sees, in the stdin JSON and in `for_each_indicator` runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{eventually, write_file, TestNode};
use crate::playbooks::pair;

const SOON: Duration = Duration::from_secs(30);

const GREEN_IP: &str = "203.0.113.7";
const AMBER_IP: &str = "198.51.100.9";
const AMBER_NOTE: &str = "attributed to a group only the AMBER circle knows";

/// Two playbooks on `incident.updated`, alike but for `max_tlp`, each
/// recording every run's indicator and stdin under `out`.
fn install(node: &TestNode) -> PathBuf {
    let out = node.dir.path().join("records");
    std::fs::create_dir_all(&out).unwrap();
    let script = node.dir.path().join("record.sh");
    write_file(
        &script,
        b"#!/bin/sh\necho \"$CER_PLAYBOOK $1\" >> \"$OUT/runs.log\"\ncat > \"$OUT/$CER_PLAYBOOK.$1.stdin\"\n",
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    for max_tlp in ["green", "amber"] {
        let playbook = format!(
            r#"name: record-{max_tlp}
on: [incident.updated]
max_tlp: {max_tlp}
actions:
  - exec:
      argv: ["{script}", "{{indicator.value}}"]
      for_each_indicator: [ipv4]
      env: {{ OUT: "{out}" }}
"#,
            script = script.display(),
            out = out.display()
        );
        write_file(
            &node
                .dir
                .path()
                .join(format!("playbooks/record-{max_tlp}.yaml")),
            playbook.as_bytes(),
        );
    }
    out
}

fn stdin_of(out: &Path, playbook: &str, value: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join(format!("{playbook}.{value}.stdin"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn an_amber_update_stays_out_of_a_green_playbook() {
    let (ke, ng) = pair();
    let out = install(&ng);
    eventually(SOON, "both playbooks to load", || {
        (ng.json(&["playbook", "list"])["playbooks"]
            .as_array()?
            .len()
            == 2)
            .then_some(())
    });
    let id = ke.file(&[
        "--title",
        "C2 server",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        &format!("ipv4:{GREEN_IP}"),
    ]);
    eventually(SOON, "NG to receive the incident", || {
        (ng.cerctl(&["incident", "show", &id]).code == 0).then_some(())
    });

    // KE adds a note and an address for the AMBER circle only: encrypted
    // to every CERT it trusts (NG), the incident itself staying GREEN.
    let update = ke.cerctl(&[
        "incident",
        "update",
        &id,
        "--tlp",
        "amber",
        "--note",
        AMBER_NOTE,
        "--ioc",
        &format!("ipv4:{AMBER_IP}"),
    ]);
    update.ok();
    let envelopes = ke.json(&["incident", "show", &id])["envelopes"].clone();
    assert_eq!(envelopes[1]["tlp"], "amber", "{envelopes}");
    assert_eq!(
        envelopes[1]["recipients"],
        serde_json::json!([ng.fingerprint()])
    );

    // The AMBER playbook's run for the AMBER address proves NG read and
    // processed the update; NG's playbook cursor reaching its newest
    // event proves every action for it has finished.
    eventually(
        SOON,
        "the amber playbook to act on the amber address",
        || {
            out.join(format!("record-amber.{AMBER_IP}.stdin"))
                .exists()
                .then_some(())
        },
    );
    eventually(SOON, "NG's playbooks to finish every event", || {
        let status = ng.status();
        (status["playbook_cursor"] == status["events"]).then_some(())
    });

    let mut runs: Vec<String> = std::fs::read_to_string(out.join("runs.log"))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [
            format!("record-amber {AMBER_IP}"),
            format!("record-amber {GREEN_IP}"),
            format!("record-green {GREEN_IP}"),
        ]
    );

    // The GREEN playbook's input: the incident without the AMBER note or
    // address, nor any trace of the AMBER envelope.
    let green = stdin_of(&out, "record-green", GREEN_IP);
    let text = green.to_string();
    assert!(!text.contains(AMBER_NOTE), "{text}");
    assert!(!text.contains(AMBER_IP), "{text}");
    assert!(!text.contains("amber"), "{text}");
    assert_eq!(green["event"], "incident.updated");
    assert_eq!(green["incident"]["tlp"], "green");
    let timeline = green["incident"]["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{text}");
    assert_eq!(timeline[0]["event"], "filed");
    assert_eq!(green["incident"]["indicators"][0]["value"], GREEN_IP);

    // The AMBER playbook's input has both, the update marked as AMBER.
    let amber = stdin_of(&out, "record-amber", GREEN_IP);
    let timeline = amber["incident"]["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2, "{amber}");
    assert_eq!(timeline[1]["tlp"], "amber");
    assert_eq!(timeline[1]["note"], AMBER_NOTE);
    let values: Vec<&str> = amber["incident"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["value"].as_str())
        .collect();
    assert_eq!(values, [GREEN_IP, AMBER_IP]);

    // The analyst at NG sees everything, each entry's label where it
    // differs from the incident's.
    let show = ng.cerctl(&["incident", "show", &id]);
    let text = show.ok();
    assert!(
        text.contains("[AMBER] +1 indicator; note: attributed to"),
        "{text}"
    );
    assert!(text.contains(&format!("{AMBER_IP} [AMBER]")), "{text}");
}

/// What the node refuses before anything is signed: an update shared more
/// widely than its incident, and field changes above the incident's label.
#[test]
fn an_update_keeps_to_its_incidents_label_rules() {
    let node = TestNode::start("KE-CIRT");
    let amber = node.file(&[
        "--title",
        "Phishing kit",
        "--severity",
        "medium",
        "--tlp",
        "amber",
        "--class",
        "fraud/phishing",
    ]);
    let below = node.cerctl(&[
        "incident", "update", &amber, "--tlp", "green", "--note", "x",
    ]);
    assert_eq!(below.code, 1, "{below:?}");
    assert!(
        below
            .stderr
            .contains("tlp: TLP:GREEN is below the incident's TLP:AMBER"),
        "{below:?}"
    );
    let green = node.file_test("scan");
    let fields = node.cerctl(&[
        "incident", "update", &green, "--tlp", "amber", "--status", "open",
    ]);
    assert_eq!(fields.code, 1, "{fields:?}");
    assert!(
        fields.stderr.contains(
            "tlp: an update above the incident's TLP:GREEN carries only a note and indicators"
        ),
        "{fields:?}"
    );
    let to = node.cerctl(&[
        "--json", "incident", "update", &green, "--tlp", "green", "--to", "NG-CERT", "--note", "x",
    ]);
    assert_eq!(to.code, 1, "{to:?}");
    let to: serde_json::Value = serde_json::from_str(&to.stdout).unwrap();
    assert_eq!(to["error"]["fields"][0]["field"], "to", "{to}");
    // Nothing was published.
    let envelopes = node.json(&["incident", "show", &green])["envelopes"].clone();
    assert_eq!(envelopes.as_array().unwrap().len(), 1, "{envelopes}");
}
