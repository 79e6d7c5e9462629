//! Backup and restore with real processes: a backup taken while the node
//! files, restored into a fresh data dir, serves the same incidents and
//! search results; a damaged or cut-short backup is refused with where.

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::harness::{run, TestNode, CERD};

fn file(node: &TestNode, n: usize, tlp: &str) -> String {
    node.file(&[
        "--title",
        &format!("C2 wave {n}"),
        "--severity",
        "high",
        "--tlp",
        tlp,
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        &format!("ipv4:11.1.{}.{}", n / 250, n % 250),
        "--ioc",
        &format!("domain:c2-{n}.example"),
    ])
}

/// `cerd restore` into `node`'s data dir; (success, output).
fn restore(node: &TestNode, backup: &std::path::Path) -> (bool, String) {
    run(Command::new(CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("restore")
        .arg(backup))
}

/// What `incident list` shows, without the per-node parts.
fn listing(node: &TestNode) -> Vec<String> {
    let list = node.json(&["incident", "list", "--limit", "1000"]);
    let mut rows: Vec<String> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{} {} {} {} {}",
                i["id"], i["title"], i["updated"], i["tlp"], i["indicators"]
            )
        })
        .collect();
    rows.sort();
    rows
}

fn search(node: &TestNode, what: &str) -> serde_json::Value {
    node.json(&["ioc", "search", what])["matches"].clone()
}

#[test]
fn a_backup_under_load_restores_to_the_same_listings_and_searches() {
    let mut node = TestNode::start("KE-CIRT");
    for n in 0..20 {
        file(&node, n, if n % 5 == 0 { "amber" } else { "green" });
    }
    let before = listing(&node).len();

    // Filing continues on another thread while the first backup runs.
    let node = Arc::new(std::mem::replace(&mut node, TestNode::new("unused")));
    let stop = Arc::new(AtomicBool::new(false));
    let filed = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (node, stop, filed) = (node.clone(), stop.clone(), filed.clone());
        std::thread::spawn(move || {
            let mut n = 100;
            while !stop.load(Ordering::SeqCst) || filed.load(Ordering::SeqCst) < 5 {
                file(&node, n, "green");
                filed.fetch_add(1, Ordering::SeqCst);
                n += 1;
            }
        })
    };
    crate::harness::eventually(
        std::time::Duration::from_secs(30),
        "filings under way",
        || (filed.load(Ordering::SeqCst) >= 2).then_some(()),
    );
    let under_load = node.dir.path().join("under-load.cerb");
    let out = node.cerctl(&[
        "backup",
        "--out",
        under_load.to_str().unwrap(),
        "--include-secret-key",
    ]);
    out.ok();
    assert!(out.stderr.contains("secret key"), "{out:?}");
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&under_load).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    // Never over an existing file.
    assert_ne!(
        node.cerctl(&["backup", "--out", under_load.to_str().unwrap()])
            .code,
        0
    );
    let quiet = node.dir.path().join("quiet.cerb");
    node.cerctl(&[
        "backup",
        "--out",
        quiet.to_str().unwrap(),
        "--include-secret-key",
    ])
    .ok();
    let after = listing(&node);
    assert_eq!(after.len(), before + filed.load(Ordering::SeqCst));

    // The one taken under load: a consistent cut, every incident in it
    // as the node holds it, the store checks clean.
    let mut first = TestNode::new("KE-CIRT");
    let (ok, text) = restore(&first, &under_load);
    assert!(ok, "{text}");
    assert!(text.contains("wrote"), "{text}");
    let (ok, text) = run(Command::new(CERD)
        .arg("--config")
        .arg(first.config_path())
        .args(["check", "--store"]));
    assert!(ok, "{text}");
    first.spawn();
    assert_eq!(first.status()["fingerprint"], node.status()["fingerprint"]);
    let restored = listing(&first);
    assert!(restored.len() >= before && restored.len() <= after.len());
    for row in &restored {
        assert!(after.contains(row), "{row} is not what the node holds");
    }

    // The one taken after: the same listings and search answers.
    let mut second = TestNode::new("KE-CIRT");
    let (ok, text) = restore(&second, &quiet);
    assert!(ok, "{text}");
    second.spawn();
    assert_eq!(listing(&second), after);
    for what in ["11.1.0.0/16", "*.example", "c2-5.example"] {
        assert_eq!(search(&second, what), search(&node, what), "{what}");
    }
    // An AMBER incident's body was restored readable.
    let amber = node.json(&["incident", "list", "--tlp", "amber"]);
    let id = amber["incidents"][0]["id"].as_str().unwrap();
    let shown = second.json(&["incident", "show", id]);
    let title = &shown["incident"]["content"]["title"];
    assert!(
        title.as_str().is_some_and(|t| t.starts_with("C2 wave")),
        "{shown}"
    );
    assert_eq!(
        *title,
        node.json(&["incident", "show", id])["incident"]["content"]["title"]
    );
}

#[test]
fn a_damaged_or_cut_backup_is_refused_with_where_and_nothing_is_left() {
    let node = TestNode::start("KE-CIRT");
    for n in 0..5 {
        file(&node, n, "green");
    }
    let backup = node.dir.path().join("b.cerb");
    node.cerctl(&["backup", "--out", backup.to_str().unwrap()])
        .ok();
    let bytes = std::fs::read(&backup).unwrap();

    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x40;
    let damaged = node.dir.path().join("damaged.cerb");
    std::fs::write(&damaged, &flipped).unwrap();
    let target = TestNode::new("KE-CIRT");
    let (ok, text) = restore(&target, &damaged);
    assert!(!ok);
    assert!(text.contains("damaged at byte"), "{text}");
    assert!(!target.data_dir().join("store").exists());

    let cut = node.dir.path().join("cut.cerb");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let (ok, text) = restore(&target, &cut);
    assert!(!ok);
    assert!(text.contains("cut short"), "{text}");
    assert!(!target.data_dir().join("store").exists());

    // Without the key: restored, and told how to start as this node.
    let (ok, text) = restore(&target, &backup);
    assert!(ok, "{text}");
    assert!(text.contains("holds no secret key"), "{text}");
    // A second restore into the same place is refused.
    let (ok, text) = restore(&target, &backup);
    assert!(!ok);
    assert!(text.contains("already holds a store"), "{text}");
}

#[test]
fn a_node_that_rotated_its_key_restores_whole() {
    let mut node = TestNode::new("KE-CIRT");
    node.init();
    node.spawn();
    file(&node, 1, "green");
    file(&node, 2, "amber");
    node.stop();
    let (code, text) = node.cerd(&["key", "rotate"]);
    assert_eq!(code, 0, "{text}");
    node.spawn();
    file(&node, 3, "green");
    file(&node, 4, "amber");
    let backup = node.dir.path().join("rotated.cerb");
    node.cerctl(&[
        "backup",
        "--out",
        backup.to_str().unwrap(),
        "--include-secret-key",
    ])
    .ok();

    // Every envelope verifies: the first key's, the transition, the new
    // key's; both keys come back, so both AMBER bodies open.
    let mut restored = TestNode::new("KE-CIRT");
    let (ok, text) = restore(&restored, &backup);
    assert!(ok, "{text}");
    assert!(!text.contains("dropped"), "{text}");
    assert!(restored.data_dir().join("identity.retired.key").exists());
    restored.spawn();
    assert_eq!(listing(&restored), listing(&node));
    file(&restored, 5, "green");
    let amber = node.json(&["incident", "list", "--tlp", "amber"]);
    for incident in amber["incidents"].as_array().unwrap() {
        let id = incident["id"].as_str().unwrap();
        let shown = restored.json(&["incident", "show", id]);
        assert!(
            shown["incident"]["content"]["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("C2 wave")),
            "{shown}"
        );
    }
}
