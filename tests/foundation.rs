//! One node: filing, queries, updates, retractions, IOC search, bad input,
//! durability across kill -9, and GnuPG verification of exports.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::harness::{cerctl_raw, run, write_file, TestNode};

fn file_phishing(node: &TestNode) -> String {
    node.file(&[
        "--title",
        "Phishing wave against banks",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "fraud/phishing",
        "--ioc",
        "domain:Login-Secure-Bank.example.",
        "--ioc",
        "url:HTTPS://login-secure-bank.example/x",
        "--ioc",
        "ipv4:203.0.113.7",
    ])
}

#[test]
fn file_show_update_retract_with_flags() {
    let node = TestNode::start("KE-CIRT");
    let id = file_phishing(&node);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "not a uuid: {id}");

    let detail = node.json(&["incident", "show", &id]);
    let incident = &detail["incident"];
    assert_eq!(incident["content"]["title"], "Phishing wave against banks");
    assert_eq!(incident["content"]["severity"], "high");
    assert_eq!(incident["content"]["status"], "new");
    assert_eq!(incident["tlp"], "green");
    let values: Vec<&str> = incident["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(
        values,
        [
            "login-secure-bank.example",
            "https://login-secure-bank.example/x",
            "203.0.113.7"
        ]
    );
    let fingerprint = node.status()["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(incident["reporter"], fingerprint.as_str());
    assert_eq!(detail["envelopes"][0]["signature"], "good");

    // The human view names the author and the signature state.
    let shown = node.cerctl(&["incident", "show", &id]);
    let text = shown.ok();
    assert!(text.contains("Phishing wave against banks"), "{text}");
    assert!(text.contains("KE-CIRT"), "{text}");
    assert!(text.contains(&fingerprint), "{text}");

    let out = node.cerctl(&[
        "incident",
        "update",
        &id,
        "--status",
        "contained",
        "--note",
        "takedown requested",
    ]);
    out.ok();
    let incident = node.json(&["incident", "show", &id])["incident"].clone();
    assert_eq!(incident["content"]["status"], "contained");
    let timeline = incident["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 2);
    assert_eq!(timeline[1]["note"], "takedown requested");
    assert_eq!(timeline[1]["seq"], 2);

    node.cerctl(&["incident", "retract", &id, "--reason", "duplicate report"])
        .ok();
    let list = node.json(&["incident", "list"]);
    assert_eq!(list["incidents"].as_array().unwrap().len(), 0, "{list}");
    let all = node.json(&["incident", "list", "--all"]);
    assert_eq!(all["incidents"][0]["retracted"], true);
    let incident = node.json(&["incident", "show", &id])["incident"].clone();
    assert!(incident["retracted"].is_object());
    assert!(
        incident.get("content").is_none(),
        "retracted content must be gone: {incident}"
    );
    // Retracted indicators are no longer found.
    let search = node.cerctl(&["ioc", "search", "203.0.113.7"]);
    assert_eq!(search.code, 1, "{search:?}");
    // The filed envelope's body is gone from the store: only a tombstone.
    let status = node.status();
    assert_eq!(status["tombstones"], 2);
    assert_eq!(status["envelopes"], 3);

    // A retracted incident can be neither updated nor retracted again.
    let again = node.cerctl(&["incident", "retract", &id]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("already retracted"), "{again:?}");
    let update = node.cerctl(&["incident", "update", &id, "--note", "x"]);
    assert_eq!(update.code, 1, "{update:?}");
}

#[test]
fn file_from_yaml_file_json_stdin_and_yaml_stdin() {
    let node = TestNode::start("NG-CERT");
    let yaml = r#"
title: Botnet C2 in transit network
severity: critical
tlp: clear
classification: malicious-code/c2-server
description: |
  Several hosts beacon to the addresses below.
indicators:
  - type: ipv4
    value: 198.51.100.23
  - type: sha256
    value: E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855
affected:
  sectors: [finance]
  countries: [ng, KE]
tags: [botnet]
"#;
    let file = node.dir.path().join("incident.yaml");
    write_file(&file, yaml.as_bytes());
    let id = node.file(&["--from", file.to_str().unwrap()]);
    let incident = node.json(&["incident", "show", &id])["incident"].clone();
    assert_eq!(incident["content"]["severity"], "critical");
    assert_eq!(incident["tlp"], "clear");
    assert_eq!(
        incident["content"]["affected"]["countries"],
        serde_json::json!(["NG", "KE"])
    );
    assert_eq!(
        incident["indicators"][1]["value"],
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );

    let json = r#"{"title":"Defacement of ministry site","severity":"medium","tlp":"green",
                   "classification":"intrusions/application-compromise",
                   "indicators":[{"type":"domain","value":"ministry.example"}]}"#;
    let out = node.cerctl_stdin(&["incident", "file", "--from", "-"], json);
    let id2 = out.ok().trim().to_owned();
    let incident = node.json(&["incident", "show", &id2])["incident"].clone();
    assert_eq!(
        incident["content"]["classification"],
        "intrusions/application-compromise"
    );

    let out = node.cerctl_stdin(
        &["incident", "file", "--from", "-"],
        "title: Scan from one host\nseverity: low\ntlp: white\nclassification: information-gathering/scanner\n",
    );
    let id3 = out.ok().trim().to_owned();
    let incident = node.json(&["incident", "show", &id3])["incident"].clone();
    assert_eq!(incident["tlp"], "clear", "white is accepted as clear");
    assert_eq!(node.status()["incidents"], 3);
}

#[test]
fn every_query_filter() {
    let node = TestNode::start("CN-CERT");
    let low = node.file(&[
        "--title",
        "Low scan",
        "--severity",
        "low",
        "--tlp",
        "clear",
        "--class",
        "information-gathering/scanner",
    ]);
    let high = node.file(&[
        "--title",
        "High C2",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
    ]);
    let crit = node.file(&[
        "--title",
        "Critical ransomware",
        "--severity",
        "critical",
        "--tlp",
        "green",
        "--class",
        "malicious-code/infected-system",
        "--status",
        "open",
    ]);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["incident", "list"];
        all.extend_from_slice(args);
        let v = node.json(&all);
        v["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // Newest first.
    assert_eq!(ids(&[]), [crit.clone(), high.clone(), low.clone()]);
    assert_eq!(
        ids(&["--severity-at-least", "high"]),
        [crit.clone(), high.clone()]
    );
    assert_eq!(
        ids(&["--severity-at-least", "medium", "--since", "24h"]),
        [crit.clone(), high.clone()]
    );
    assert_eq!(ids(&["--tlp", "clear"]), [low.as_str()]);
    assert_eq!(ids(&["--status", "open"]), [crit.as_str()]);
    assert_eq!(ids(&["--status", "new"]), [high.clone(), low.clone()]);
    assert_eq!(
        ids(&["--class", "malicious-code/*"]),
        [crit.clone(), high.clone()]
    );
    assert_eq!(
        ids(&["--class", "information-gathering/scanner"]),
        [low.as_str()]
    );
    assert_eq!(
        ids(&["--from", "CN-CERT"]),
        [crit.clone(), high.clone(), low.clone()]
    );
    let fpr = node.status()["fingerprint"].as_str().unwrap().to_owned();
    assert_eq!(ids(&["--from", &fpr, "--limit", "1"]).len(), 1);
    let limited = node.json(&["incident", "list", "--limit", "2"]);
    assert_eq!(limited["truncated"], true);
    // A time in the future excludes everything; an update brings one back.
    assert!(ids(&["--since", "2999-01-01T00:00:00Z"]).is_empty());
    node.cerctl(&["incident", "update", &low, "--note", "seen again"])
        .ok();
    assert_eq!(ids(&[])[0], low, "updated incidents move to the top");
    // Unknown reporter is refused with the reason.
    let out = node.cerctl(&["incident", "list", "--from", "XX-CERT"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("XX-CERT"), "{out:?}");
    // The human table shows the rows, within 100 columns; --wide shows
    // full titles and ids.
    let table = node.cerctl(&["incident", "list"]);
    let text = table.ok();
    assert!(
        text.contains("Critical ransom") && text.contains("Low scan"),
        "{text}"
    );
    assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
    let wide = node.cerctl(&["incident", "list", "--wide"]);
    let wide = wide.ok();
    assert!(
        wide.contains("Critical ransomware") && wide.contains(&low),
        "{wide}"
    );
}

#[test]
fn ioc_search_across_incidents() {
    let node = TestNode::start("EG-CERT");
    let a = node.file(&[
        "--title",
        "A",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.7",
        "--ioc",
        "domain:evil.example",
    ]);
    let b = node.file(&[
        "--title",
        "B",
        "--severity",
        "low",
        "--tlp",
        "clear",
        "--class",
        "fraud/phishing",
        "--ioc",
        "domain:EVIL.example.",
    ]);
    let c = node.file(&[
        "--title",
        "C",
        "--severity",
        "medium",
        "--tlp",
        "green",
        "--class",
        "other/other",
        "--ioc",
        "ipv4:198.51.100.1",
    ]);
    let search = node.json(&["ioc", "search", "Evil.Example"]);
    let mut found: Vec<String> = search["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["incident"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    let mut expected = vec![a.clone(), b.clone()];
    expected.sort();
    assert_eq!(found, expected);
    let m = &search["matches"][0];
    assert_eq!(m["reported_by"][0]["name"], "EG-CERT");
    assert!(m["first_seen"].is_string() && m["last_seen"].is_string());

    let ip = node.json(&["ioc", "search", "203.0.113.7"]);
    assert_eq!(ip["matches"].as_array().unwrap().len(), 1);
    assert_eq!(ip["matches"][0]["incident"], a.as_str());
    // Indicators added by an update are found too.
    node.cerctl(&["incident", "update", &c, "--ioc", "ipv4:203.0.113.7"])
        .ok();
    let ip = node.json(&["ioc", "search", "203.0.113.7"]);
    assert_eq!(ip["matches"].as_array().unwrap().len(), 2);
    // Nothing found: exit 1 with a message.
    let none = node.cerctl(&["ioc", "search", "192.0.2.99"]);
    assert_eq!(none.code, 1, "{none:?}");
    let text = node.cerctl(&["ioc", "search", "evil.example"]);
    assert!(text.ok().contains("EG-CERT"));
}

/// An update that sets a field to its current value is refused, naming the
/// field, and nothing is signed; so is TLP:RED addressed only to oneself.
#[test]
fn updates_that_change_nothing_and_red_to_oneself_are_refused() {
    let node = TestNode::start("KE-CIRT");
    let id = file_phishing(&node);
    let envelopes = node.status()["envelopes"].clone();
    for (args, field, value) in [
        (vec!["--status", "new"], "status", "new"),
        (vec!["--severity", "high"], "severity", "high"),
        (
            vec!["--status", "new", "--note", "still new"],
            "status",
            "new",
        ),
    ] {
        let mut argv = vec!["incident", "update", &id];
        argv.extend(args);
        let out = node.cerctl(&argv);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            out.stderr.contains(&format!("{field}: is already {value}")),
            "{out:?}"
        );
    }
    assert_eq!(node.status()["envelopes"], envelopes);
    // A real change still goes through, and then repeating it is refused.
    node.cerctl(&["incident", "update", &id, "--status", "open"])
        .ok();
    let again = node.cerctl(&["incident", "update", &id, "--status", "open"]);
    assert!(
        again.stderr.contains("status: is already open"),
        "{again:?}"
    );

    let red = node.cerctl(&[
        "incident",
        "file",
        "--title",
        "T",
        "--severity",
        "high",
        "--tlp",
        "red",
        "--class",
        "fraud/phishing",
        "--to",
        "KE-CIRT",
    ]);
    assert_eq!(red.code, 1, "{red:?}");
    assert!(
        red.stderr
            .contains("at least one recipient besides this node")
            && red
                .stderr
                .contains("the author always reads its own incident"),
        "{red:?}"
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let node = TestNode::start("KE-CIRT");
    let id = file_phishing(&node);
    let before = node.status();
    let base = [
        "incident",
        "file",
        "--title",
        "T",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "fraud/phishing",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "incident",
                "file",
                "--title",
                "T",
                "--severity",
                "hgih",
                "--tlp",
                "green",
                "--class",
                "fraud/phishing",
            ],
            "severity",
        ),
        (
            vec![
                "incident",
                "file",
                "--title",
                "T",
                "--severity",
                "high",
                "--tlp",
                "purple",
                "--class",
                "fraud/phishing",
            ],
            "tlp",
        ),
        (
            vec![
                "incident",
                "file",
                "--title",
                "T",
                "--severity",
                "high",
                "--tlp",
                "green",
                "--class",
                "fraud/fishing",
            ],
            "fraud/phishing",
        ),
        (
            vec![
                "incident",
                "file",
                "--title",
                "",
                "--severity",
                "high",
                "--tlp",
                "green",
                "--class",
                "fraud/phishing",
            ],
            "title",
        ),
        ([&base[..], &["--ioc", "sha256:abc"]].concat(), "sha256"),
        ([&base[..], &["--ioc", "ipv4:999.1.1.1"]].concat(), "ipv4"),
        ([&base[..], &["--ioc", "nonsense"]].concat(), "ioc"),
        ([&base[..], &["--ioc", "colour:red"]].concat(), "type"),
        ([&base[..], &["--country", "XX"]].concat(), "country"),
        ([&base[..], &["--to", "KE-CIRT"]].concat(), "to"),
        (
            vec![
                "incident",
                "file",
                "--title",
                "T",
                "--severity",
                "high",
                "--tlp",
                "red",
                "--class",
                "fraud/phishing",
            ],
            "RED",
        ),
        (
            vec!["incident", "update", &id, "--status", "finished"],
            "status",
        ),
        (vec!["incident", "update", &id], "required"),
        (vec!["incident", "show", "not-a-uuid"], "uuid"),
        (
            vec!["incident", "list", "--since", "yesterday-ish"],
            "since",
        ),
        (vec!["incident", "list", "--limit", "0"], "limit"),
    ];
    for (args, needle) in &cases {
        let out = node.cerctl(args);
        assert_ne!(out.code, 0, "{args:?} was accepted: {out:?}");
        assert!(
            out.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: error does not mention {needle}: {out:?}"
        );
    }
    let bad_yaml = node.cerctl_stdin(
        &["incident", "file", "--from", "-"],
        "title: x\nseverity: [\n",
    );
    assert_eq!(bad_yaml.code, 2, "{bad_yaml:?}");
    assert!(bad_yaml.stderr.contains("line"), "{bad_yaml:?}");
    let unknown_field = node.cerctl_stdin(
        &["incident", "file", "--from", "-"],
        "title: x\nseverity: high\ntlp: green\nclassification: fraud/phishing\nsevrity: low\n",
    );
    assert_ne!(unknown_field.code, 0);
    assert!(
        unknown_field.stderr.contains("sevrity"),
        "{unknown_field:?}"
    );
    let missing = node.cerctl(&["incident", "show", &uuid::Uuid::new_v4().to_string()]);
    assert_eq!(missing.code, 1, "{missing:?}");

    let after = node.status();
    for field in ["envelopes", "incidents", "indicators", "authors"] {
        assert_eq!(
            before[field], after[field],
            "{field} changed after refused input"
        );
    }
}

#[test]
fn api_refuses_malformed_bodies_with_json_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = TestNode::start("KE-CIRT");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exchange = |request: String| -> String {
        rt.block_on(async {
            let s = tokio::net::UnixStream::connect(node.socket())
                .await
                .unwrap();
            let (mut rd, mut wr) = s.into_split();
            // The node may answer (and close) before reading a refused body:
            // write concurrently and ignore a broken pipe.
            let writer = tokio::spawn(async move {
                let _ = wr.write_all(request.as_bytes()).await;
                wr
            });
            let mut out = Vec::new();
            let _ = rd.read_to_end(&mut out).await;
            drop(writer.await);
            String::from_utf8_lossy(&out).into_owned()
        })
    };
    let post = |path: &str, body: &str| {
        exchange(format!(
            "POST {path} HTTP/1.1\r\nhost: cerd\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ))
    };
    let r = post("/v1/incidents", "{not json");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.contains("\"code\":\"bad_request\""), "{r}");
    let r = post(
        "/v1/incidents",
        r#"{"title":"x","severity":"high","tlp":"green","classification":"nope/nope"}"#,
    );
    assert!(r.starts_with("HTTP/1.1 422"), "{r}");
    assert!(r.contains("classification"), "{r}");
    let r = post(
        "/v1/incidents",
        r#"{"title":"x","severity":"high","tlp":"green","classification":"fraud/phishing","extra":1}"#,
    );
    assert!(r.starts_with("HTTP/1.1 422"), "{r}");
    assert!(r.contains("extra"), "{r}");
    let list = node.json(&["incident", "list", "--all"]);
    assert!(list["incidents"].as_array().unwrap().is_empty());
    let id = node.file_test("t");
    let before = node.status();
    let r = post(&format!("/v1/incidents/{id}/updates"), "{}");
    assert!(r.starts_with("HTTP/1.1 422"), "{r}");
    assert!(r.contains("changes nothing"), "{r}");
    let r = post("/v1/incidents/not-a-uuid/updates", r#"{"note":"x"}"#);
    assert!(r.starts_with("HTTP/1.1 422"), "{r}");
    let r =
        exchange("DELETE /v1/status HTTP/1.1\r\nhost: cerd\r\nconnection: close\r\n\r\n".into());
    assert!(r.starts_with("HTTP/1.1 405"), "{r}");
    assert!(r.contains("\"code\":\"method_not_allowed\""), "{r}");
    let huge = format!("{{\"title\":\"{}\"}}", "x".repeat(5 * 1024 * 1024));
    let r = post("/v1/incidents", &huge);
    assert!(r.starts_with("HTTP/1.1 413"), "{}", &r[..r.len().min(300)]);
    assert!(
        r.contains("\"code\":\"too_large\""),
        "{}",
        &r[..r.len().min(300)]
    );
    let r = exchange("GET /v1/nowhere HTTP/1.1\r\nhost: cerd\r\nconnection: close\r\n\r\n".into());
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    let r = exchange("GET /metrics HTTP/1.1\r\nhost: cerd\r\nconnection: close\r\n\r\n".into());
    assert!(r.contains("cerd_store_incidents 1"), "{r}");
    let after = node.status();
    assert_eq!(before["envelopes"], after["envelopes"]);
}

#[test]
fn daemon_not_running_names_the_socket() {
    let node = TestNode::new("KE-CIRT");
    let out = node.cerctl(&["status"]);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains(&node.socket().display().to_string()),
        "{out:?}"
    );
    assert!(out.stderr.contains("cerd"), "{out:?}");
}

#[test]
fn socket_mode_and_identity_files() {
    use std::os::unix::fs::PermissionsExt;
    let node = TestNode::start("KE-CIRT");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&node.socket()), 0o660);
    assert_eq!(mode(&node.data_dir().join("identity.key")), 0o600);
    let cert = std::fs::read_to_string(node.data_dir().join("KE-CIRT.asc")).unwrap();
    assert!(
        cert.starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----"),
        "{cert}"
    );
    assert!(
        !cert.contains("PRIVATE"),
        "the shared certificate must not hold secret keys"
    );
    // SIGTERM stops it cleanly and removes the socket.
    let mut node = node;
    node.stop();
    assert!(!node.socket().exists());
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let mut node = TestNode::start("KE-CIRT");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let socket = node.socket().display().to_string();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let acknowledged = acknowledged.clone();
            let socket = socket.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    let title = format!("load {w}-{n}");
                    let argv: Vec<String> = [
                        "cerctl",
                        "--socket",
                        &socket,
                        "incident",
                        "file",
                        "--title",
                        &title,
                        "--severity",
                        "low",
                        "--tlp",
                        "green",
                        "--class",
                        "test/test",
                        "--ioc",
                        &format!("ipv4:10.{w}.{}.{}", n / 250, n % 250),
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                    let out = cerctl_raw(&argv, "");
                    if out.code == 0 {
                        acknowledged
                            .lock()
                            .unwrap()
                            .push(out.stdout.trim().to_owned());
                    } else {
                        return;
                    }
                }
            })
        })
        .collect();
    // Let the load run until a good number of filings is acknowledged.
    crate::harness::eventually(Duration::from_secs(60), "100 acknowledged filings", || {
        (acknowledged.lock().unwrap().len() >= 100).then_some(())
    });
    node.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let acked = acknowledged.lock().unwrap().clone();
    node.spawn();
    let status = node.status();
    assert!(
        status["incidents"].as_u64().unwrap() >= acked.len() as u64,
        "{status}"
    );
    for id in &acked {
        let out = node.cerctl(&["--json", "incident", "show", id]);
        assert_eq!(
            out.code, 0,
            "acknowledged incident {id} lost after kill -9: {out:?}"
        );
    }
    // The store stays writable and consistent after recovery.
    let id = node.file_test("after restart");
    assert_eq!(
        node.json(&["incident", "show", &id])["incident"]["content"]["title"],
        "after restart"
    );
}

#[test]
fn exported_envelopes_verify_with_gnupg() {
    if Command::new("gpg").arg("--version").output().is_err() {
        eprintln!("skipping: gpg not found on PATH");
        return;
    }
    let node = TestNode::start("KE-CIRT");
    let id = file_phishing(&node);
    node.cerctl(&[
        "incident",
        "update",
        &id,
        "--status",
        "contained",
        "--note",
        "takedown requested",
    ])
    .ok();
    let out_dir = node.dir.path().join("export");
    let out = node.cerctl(&[
        "export",
        "--format",
        "envelopes",
        "--incident",
        &id,
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    out.ok();
    let home = node.dir.path().join("gnupg");
    std::fs::create_dir_all(&home).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let gpg = || {
        let mut c = Command::new("gpg");
        c.arg("--homedir").arg(&home).arg("--batch").arg("--no-tty");
        c
    };
    let (ok, text) = run(gpg()
        .arg("--import")
        .arg(node.data_dir().join("KE-CIRT.asc")));
    assert!(ok, "gpg --import failed: {text}");
    let mut jsons: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    jsons.sort();
    assert_eq!(jsons.len(), 2, "one file per envelope");
    for json in &jsons {
        let sig = json.with_extension("sig");
        let (ok, text) = run(gpg().arg("--verify").arg(&sig).arg(json));
        assert!(
            ok && text.contains("Good signature"),
            "gpg --verify {}: {text}",
            json.display()
        );
        // The file name is the SHA-256 of the bytes.
        let bytes = std::fs::read(json).unwrap();
        let id = cer_proto::EnvelopeId::of(&bytes).to_hex();
        assert_eq!(json.file_stem().unwrap().to_str().unwrap(), id);
        // One byte changed: gpg refuses.
        let mut tampered = bytes.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 0x01;
        let copy = node.dir.path().join("tampered.json");
        write_file(&copy, &tampered);
        let (ok, text) = run(gpg().arg("--verify").arg(&sig).arg(&copy));
        assert!(!ok, "gpg accepted a tampered envelope: {text}");
        assert!(text.contains("BAD signature"), "{text}");
    }
}

#[test]
fn cerd_check_reports_every_problem() {
    let node = TestNode::new("KE-CIRT");
    write_file(
        &node.config_path(),
        b"name = \"\"\nlisten = \"nowhere\"\nanti_entropy_interval = \"soon\"\n",
    );
    let (ok, text) = run(Command::new(crate::harness::CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("check"));
    assert!(!ok, "{text}");
    for field in ["name", "listen", "anti_entropy_interval"] {
        assert!(
            text.contains(field),
            "check does not mention {field}: {text}"
        );
    }
    write_file(
        &node.config_path(),
        b"name = \"KE-CIRT\"\ncerts_dir = \"certs\"\ncolour = 1\n",
    );
    let (ok, text) = run(Command::new(crate::harness::CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("check"));
    assert!(!ok && text.contains("colour"), "{text}");
    // A junk certificate is named with its reason; a good config passes.
    write_file(
        &node.config_path(),
        b"name = \"KE-CIRT\"\ncerts_dir = \"certs\"\n",
    );
    write_file(&node.dir.path().join("certs/junk.asc"), b"not a key");
    let (ok, text) = run(Command::new(crate::harness::CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("check"));
    assert!(!ok && text.contains("junk.asc"), "{text}");
    std::fs::remove_file(node.dir.path().join("certs/junk.asc")).unwrap();
    let (ok, text) = run(Command::new(crate::harness::CERD)
        .arg("--config")
        .arg(node.config_path())
        .arg("check"));
    assert!(ok, "{text}");
}

#[test]
fn cerd_init_creates_identity_once() {
    let node = TestNode::new("KE-CIRT");
    let init = || {
        run(Command::new(crate::harness::CERD)
            .arg("--config")
            .arg(node.config_path())
            .args(["init", "--name", "KE-CIRT"]))
    };
    let (ok, text) = init();
    assert!(ok, "{text}");
    assert!(text.contains("fingerprint"), "{text}");
    assert!(node.data_dir().join("KE-CIRT.asc").exists());
    let (ok, text) = init();
    assert!(!ok && text.contains("already initialised"), "{text}");
}

/// Reading the watched folders is not a change: a node does not reload
/// them again and again after a change, and reports a refused file once.
#[test]
fn refused_files_are_reported_once_while_idle() {
    let mut node = TestNode::new("KE-CIRT");
    let cn = TestNode::new("CN-CERT");
    let ng = TestNode::new("NG-CERT");
    cn.init();
    ng.init();
    write_file(&node.certs_dir().join("junk.asc"), b"not a certificate\n");
    write_file(
        &node.dir.path().join("playbooks").join("junk.yaml"),
        b"name: [unclosed\n",
    );
    node.spawn();
    let trusted = |n: usize| {
        crate::harness::eventually(Duration::from_secs(30), "a certificate trusted", || {
            (node.log().matches("certificate trusted").count() >= n).then_some(())
        })
    };
    // A first change: the reload reads every file in certs/.
    node.trust(&cn);
    trusted(1);
    // Time for many reloads, had that reload's reads triggered the next
    // (every 250 ms): seen as the node's uptime, not slept.
    let uptime = || node.status()["uptime_seconds"].as_u64();
    let after = uptime().unwrap() + 2;
    crate::harness::eventually(Duration::from_secs(30), "2 s more uptime", || {
        (uptime()? >= after).then_some(())
    });
    // A second change is still picked up, and does not report junk.asc again.
    node.trust(&ng);
    trusted(2);
    let log = node.log();
    assert_eq!(log.matches("certificate refused").count(), 1, "{log}");
    assert_eq!(log.matches("playbook refused").count(), 1, "{log}");
    assert_eq!(log.matches("folder changed; reloading").count(), 2, "{log}");
}

/// A store whose key is gone is not silently given a new identity: the
/// node refuses to start, naming the key, until `cerd init --force`.
#[test]
fn store_without_its_key_is_refused_until_init_force() {
    let mut node = TestNode::start("KE-CIRT");
    let id = file_phishing(&node);
    let old = node.fingerprint();
    node.stop();
    let key = node.data_dir().join("identity.key");
    std::fs::remove_file(&key).unwrap();

    let (code, text) = node.cerd(&["run"]);
    assert!(
        code != 0 && code != -1,
        "cerd run did not refuse ({code}): {text}"
    );
    assert!(text.contains(&key.display().to_string()), "{text}");
    assert!(text.contains("holds data"), "{text}");
    assert!(!key.exists(), "a refused start created a key");

    let (code, text) = node.cerd(&["init", "--name", "KE-CIRT"]);
    assert!(code != 0 && text.contains("--force"), "{code}: {text}");
    assert!(!key.exists());

    let (code, text) = node.cerd(&["init", "--force", "--name", "KE-CIRT"]);
    assert_eq!(code, 0, "{text}");
    node.spawn();
    assert_ne!(node.fingerprint(), old);
    assert!(
        node.cerctl(&["incident", "show", &id]).code == 0,
        "the store was kept"
    );
}

/// A first start that fails to bind leaves no key behind.
#[test]
fn failed_first_start_creates_no_key() {
    let node = TestNode::new("KE-CIRT");
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let config = std::fs::read_to_string(node.config_path())
        .unwrap()
        .replace("127.0.0.1:0", &addr);
    std::fs::write(node.config_path(), config).unwrap();
    let (code, text) = node.cerd(&["run"]);
    assert!(
        code != 0 && code != -1,
        "cerd run did not fail ({code}): {text}"
    );
    assert!(text.contains(&addr), "{text}");
    assert!(!node.data_dir().join("identity.key").exists(), "{text}");
    assert!(!node.data_dir().join("store").exists(), "{text}");
}

/// A client that connects to the API and sends nothing is disconnected
/// (after the server's header timeout, 10 s), so idle connections cannot
/// pile up until the node runs out of file descriptors.
#[test]
fn silent_api_client_is_disconnected() {
    use std::io::Read;
    let node = TestNode::start("KE-CIRT");
    let mut silent = std::os::unix::net::UnixStream::connect(node.socket()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = silent.read_to_end(&mut answer);
    assert!(
        read.is_ok(),
        "still open after {:?}: {read:?}",
        started.elapsed()
    );
    eprintln!(
        "silent API client disconnected after {:?}",
        started.elapsed()
    );
    // The node still serves others.
    node.status();
}

/// Listings page: --offset and --limit walk every match once, in either
/// order, and --until bounds them in time.
#[test]
fn listings_page_through_every_match() {
    let node = TestNode::start("KE-CIRT");
    let mut filed = Vec::new();
    for n in 0..5 {
        filed.push(node.file_test(&format!("page {n}")));
    }
    let ids = |args: &[&str]| -> (Vec<String>, bool) {
        let mut argv = vec!["incident", "list"];
        argv.extend_from_slice(args);
        let list = node.json(&argv);
        let ids = list["incidents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        (ids, list["truncated"] == true)
    };
    let newest_first: Vec<String> = filed.iter().rev().cloned().collect();
    let mut walked = Vec::new();
    for offset in [0, 2, 4] {
        let (page, more) = ids(&["--limit", "2", "--offset", &offset.to_string()]);
        assert_eq!(more, offset < 4, "offset {offset}");
        walked.extend(page);
    }
    assert_eq!(walked, newest_first);
    let (oldest, more) = ids(&["--oldest-first", "--limit", "2"]);
    assert_eq!((oldest, more), (filed[..2].to_vec(), true));
    // Until the third filing changed: the two before it.
    let third = node.json(&["incident", "show", &filed[2]]);
    let until = third["incident"]["updated"].as_str().unwrap().to_owned();
    let (before, _) = ids(&["--until", &until, "--oldest-first"]);
    assert_eq!(before, filed[..2].to_vec());
    let refused = node.cerctl(&["incident", "list", "--since", &until, "--until", &until]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("until"), "{refused:?}");
}
