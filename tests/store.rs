//! The write path on real nodes: a crash between the store and the
//! playbooks, a damaged store, and a filing retried after its answer was
//! lost.

use std::time::Duration;

use crate::harness::{eventually, write_file, TestNode};

const SOON: Duration = Duration::from_secs(30);

/// A playbook that appends one line per run (the incident's id) to a file.
fn install_recorder(node: &TestNode) -> std::path::PathBuf {
    let out = node.dir.path().join("runs.log");
    let script = node.dir.path().join("record.sh");
    write_file(&script, b"#!/bin/sh\nprintf '%s\\n' \"$1\" >> \"$OUT\"\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let playbook = format!(
        r#"name: record-filings
description: one line per filing
on: [incident.filed]
max_tlp: green
actions:
  - exec:
      argv: ["{script}", "{{incident.id}}"]
      timeout: 10s
      env: {{ OUT: "{out}" }}
"#,
        script = script.display(),
        out = out.display()
    );
    write_file(
        &node.dir.path().join("playbooks/record.yaml"),
        playbook.as_bytes(),
    );
    out
}

fn file(node: &TestNode, title: &str) -> String {
    node.file(&[
        "--title",
        title,
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.9",
    ])
}

/// Waits until every playbook action of every stored event has finished
/// (the driver's cursor has reached the newest event).
fn playbooks_caught_up(node: &TestNode) -> u64 {
    eventually(SOON, "playbooks to catch up with the event log", || {
        let status = node.status();
        let events = status["events"].as_u64()?;
        (events > 0 && status["playbook_cursor"].as_u64()? == events).then_some(events)
    })
}

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_trigger_missed_by_a_crash_runs_once_after_restart() {
    let mut node = TestNode::new("KE-CIRT");
    let out = install_recorder(&node);
    // The driver is held: the filing is durable, its trigger is not run.
    node.spawn_with(&[("CERD_FAULT_HOLD_PLAYBOOKS", "1")]);
    let first = file(&node, "filed just before a crash");
    let status = node.status();
    assert_eq!(status["events"], 1);
    assert_eq!(status["playbook_cursor"], 0);
    node.kill9();
    assert!(
        lines(&out).is_empty(),
        "ran before the crash: {:?}",
        lines(&out)
    );

    // After the restart the missed trigger runs, once.
    node.spawn();
    playbooks_caught_up(&node);
    assert_eq!(lines(&out), vec![first.clone()]);

    // Restarting again re-runs nothing; a new filing runs once.
    node.stop();
    node.spawn();
    let second = file(&node, "filed after the restarts");
    assert_eq!(playbooks_caught_up(&node), 2);
    assert_eq!(lines(&out), vec![first, second]);
    let runs = node.json(&["playbook", "runs"]);
    assert_eq!(runs["runs"].as_array().unwrap().len(), 2, "{runs}");
}

#[test]
fn a_retried_filing_creates_one_incident() {
    let node = TestNode::start("KE-CIRT");
    let request = "6f1d3c2a-9b8e-4d7f-a1b2-c3d4e5f60718";
    let args = [
        "incident",
        "file",
        "--title",
        "sent twice",
        "--severity",
        "low",
        "--tlp",
        "green",
        "--class",
        "test/test",
        "--request-id",
        request,
    ];
    let first = node.cerctl(&args).ok().trim().to_owned();
    let again = node.cerctl(&args).ok().trim().to_owned();
    assert_eq!(first, again);
    let status = node.status();
    assert_eq!(
        (status["incidents"].as_u64(), status["envelopes"].as_u64()),
        (Some(1), Some(1))
    );
    // The same id with another incident is still the first answer: the id
    // names the request, whatever it says.
    let mut other = args.to_vec();
    other[3] = "something else";
    assert_eq!(node.cerctl(&other).ok().trim(), first);
    assert_eq!(node.status()["incidents"], 1);
}

#[test]
fn a_damaged_store_is_refused_clearly_and_repair_keeps_what_verifies() {
    let mut node = TestNode::new("KE-CIRT");
    node.spawn();
    let mut filed = Vec::new();
    for n in 0..5 {
        filed.push(file(&node, &format!("report {n}")));
    }
    node.stop();
    let store = node.data_dir().join("store");
    let db = store.join("db");
    let pristine = node.dir.path().join("pristine");
    copy_dir(&store, &pristine);

    // Cut the store's log short, and separately overwrite part of it.
    type Damage<'a> = (&'a str, &'a dyn Fn(&std::path::Path));
    let damages: [Damage<'_>; 2] = [
        ("truncated", &|db| {
            let len = std::fs::metadata(db).unwrap().len();
            let file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            file.set_len(len * 2 / 5).unwrap();
        }),
        ("overwritten", &|db| {
            use std::io::{Seek, SeekFrom, Write};
            let len = std::fs::metadata(db).unwrap().len();
            let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
            file.seek(SeekFrom::Start(len / 3)).unwrap();
            file.write_all(&[0xA5; 512]).unwrap();
        }),
    ];
    for (what, damage) in damages {
        std::fs::remove_dir_all(&store).unwrap();
        copy_dir(&pristine, &store);
        damage(&db);
        let (code, text) = node.cerd(&["run"]);
        assert_eq!(code, 1, "{what}: cerd did not refuse the store:\n{text}");
        assert!(!text.contains("panicked"), "{what}: {text}");
        assert!(
            text.contains("is damaged") && text.contains("cerd repair"),
            "{what}: no clear message:\n{text}"
        );

        let (code, text) = node.cerd(&["repair"]);
        assert_eq!(code, 0, "{what}: repair failed:\n{text}");
        let (code, text) = node.cerd(&["check", "--store"]);
        assert_eq!(
            code, 0,
            "{what}: the repaired store does not check:\n{text}"
        );

        // The node starts on what verified: a prefix of its own chain.
        node.spawn();
        let status = node.status();
        let kept = status["envelopes"].as_u64().unwrap() as usize;
        assert!(kept <= filed.len(), "{what}: {status}");
        for (n, id) in filed.iter().enumerate() {
            let shown = node.cerctl(&["incident", "show", id]).code == 0;
            assert_eq!(shown, n < kept, "{what}: incident {n} of {kept} kept");
        }
        // And the chain continues from there.
        file(&node, &format!("after the {what} store was repaired"));
        node.stop();
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}
