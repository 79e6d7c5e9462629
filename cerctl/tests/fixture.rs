//! The real `cerctl` binary testing the shipped example playbook against
//! the shipped example fixture, with no node running: its socket names a
//! file that does not exist, so anything that tried to reach a node fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cerctl(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_cerctl"))
        .current_dir(root())
        .env_remove("CERD_SOCKET")
        .arg("--socket")
        .arg(dir.path().join("no-node-here.sock"))
        .args(args)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

const TEST: [&str; 5] = [
    "playbook",
    "test",
    "playbooks/block-c2.yaml",
    "--fixture",
    "playbooks/fixtures/c2-incident.yaml",
];

#[test]
fn the_example_playbook_is_tested_against_the_example_fixture_without_a_node() {
    let out = cerctl(&TEST);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // block-c2 (max_tlp: amber) blocks the GREEN and AMBER addresses of
    // the fixture, not the RED one.
    for needle in [
        "block-c2-addresses on incident.received",
        "bin/block-ip -- 203.0.113.7",
        "bin/block-ip -- 2001:db8::7",
        "bin/block-ip -- 2001:db8::99",
        "CER_AUTHOR_NAME=KE-CIRT",
        "BLOCK_TABLE=cert_block",
        "tag blocked",
    ] {
        assert!(stdout.contains(needle), "{needle} missing from\n{stdout}");
    }
    assert!(!stdout.contains("198.51.100.9"), "{stdout}");
    assert!(!stdout.contains("update-check.example"), "{stdout}");
}

#[test]
fn show_input_is_the_json_a_script_reads() {
    let mut args = TEST.to_vec();
    args.push("--show-input");
    let out = cerctl(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let input: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(input["event"], "incident.received");
    assert_eq!(input["reporter_name"], "KE-CIRT");
    let incident = &input["incident"];
    assert_eq!(incident["tlp"], "green");
    let notes: Vec<&str> = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["note"].as_str())
        .collect();
    assert_eq!(
        notes,
        [
            "takedown requested from the hosting provider",
            "the same operator runs a second server, seen by our AMBER partners"
        ]
    );
    let values: Vec<&str> = incident["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["value"].as_str())
        .collect();
    assert_eq!(
        values,
        [
            "203.0.113.7",
            "2001:db8::7",
            "update-check.example",
            "2001:db8::99"
        ]
    );
    // The same input, run after run: the fixture's id and times are fixed.
    assert_eq!(cerctl(&args).stdout, out.stdout);

    // And machine-readable, with the plan.
    let mut args = vec!["--json"];
    args.extend(TEST);
    let out = cerctl(&args);
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["input"], input);
    assert_eq!(report["would_run"].as_array().unwrap().len(), 5);
}

#[test]
fn a_bad_fixture_names_the_file_the_field_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = dir.path().join("bad.yaml");
    let example =
        std::fs::read_to_string(root().join("playbooks/fixtures/c2-incident.yaml")).unwrap();
    std::fs::write(
        &fixture,
        example.replace("reporter: peer ", "reporter: nobody "),
    )
    .unwrap();
    let out = cerctl(&[
        "playbook",
        "test",
        "playbooks/block-c2.yaml",
        "--fixture",
        fixture.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.yaml: invalid fixture"), "{stderr}");
    assert!(
        stderr.contains("reporter: expected own, peer or a CERT's fingerprint"),
        "{stderr}"
    );
    assert!(stderr.contains("(line 27, column 1)"), "{stderr}");
    assert!(out.stdout.is_empty());
}
