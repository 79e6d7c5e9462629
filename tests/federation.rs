//! Several real nodes on loopback: relay across hops, catch-up after being
//! offline, TLP:RED ciphertext at the relay, retraction, receipts, and the
//! trust store deciding who may connect.

use std::time::Duration;

use crate::harness::{eventually, TestNode};

const SOON: Duration = Duration::from_secs(30);

/// CN-CERT — KE-CIRT — NG-CERT: the ends are not connected to each other.
/// KE starts first and keeps its port; CN and NG dial it.
fn line() -> (TestNode, TestNode, TestNode) {
    let (mut ke, mut cn, mut ng) = three_trusting_each_other();
    ke.spawn();
    ke.pin_listen();
    let addr = ke.listen_addr();
    cn.add_peer(&addr);
    ng.add_peer(&addr);
    cn.spawn();
    ng.spawn();
    wait_connected(&ke, 2);
    (cn, ke, ng)
}

/// KE-CIRT, CN-CERT and NG-CERT, initialised, each trusting the other two;
/// not started.
fn three_trusting_each_other() -> (TestNode, TestNode, TestNode) {
    let ke = TestNode::new("KE-CIRT");
    let cn = TestNode::new("CN-CERT");
    let ng = TestNode::new("NG-CERT");
    for node in [&ke, &cn, &ng] {
        node.init();
    }
    ke.trust(&cn);
    ke.trust(&ng);
    cn.trust(&ke);
    cn.trust(&ng);
    ng.trust(&ke);
    ng.trust(&cn);
    (ke, cn, ng)
}

fn wait_connected(node: &TestNode, n: usize) {
    eventually(
        SOON,
        &format!("{} to have {n} connected peers", node.name),
        || {
            let peers = node.json(&["peers"]);
            let up = peers["peers"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["connected"] == true)
                .count();
            (up >= n).then_some(())
        },
    );
}

fn has_incident(node: &TestNode, id: &str) -> Option<serde_json::Value> {
    let out = node.cerctl(&["--json", "incident", "show", id]);
    (out.code == 0).then(|| serde_json::from_str(&out.stdout).unwrap())
}

#[test]
fn incident_crosses_a_relay_with_the_authors_signature() {
    let (cn, ke, ng) = line();
    let id = ng.file(&[
        "--title",
        "Ransomware C2 seen in two countries",
        "--severity",
        "high",
        "--tlp",
        "green",
        "--class",
        "malicious-code/c2-server",
        "--ioc",
        "ipv4:203.0.113.50",
    ]);
    let detail = eventually(SOON, "CN to receive NG's incident through KE", || {
        has_incident(&cn, &id)
    });
    let ng_fpr = ng.fingerprint();
    assert_eq!(detail["incident"]["reporter"], ng_fpr.as_str());
    assert_eq!(
        detail["incident"]["content"]["title"],
        "Ransomware C2 seen in two countries"
    );
    assert_eq!(detail["envelopes"][0]["author"], ng_fpr.as_str());
    assert_eq!(detail["envelopes"][0]["signature"], "good");
    assert_eq!(detail["names"][&ng_fpr], "NG-CERT");
    // KE relayed it and holds it too.
    assert!(has_incident(&ke, &id).is_some());
    // CN's copy is byte-identical: the id is the hash of the same bytes.
    let cn_export = cn.json(&["export", "--format", "envelopes", "--incident", &id]);
    let ng_export = ng.json(&["export", "--format", "envelopes", "--incident", &id]);
    assert_eq!(cn_export["envelopes"], ng_export["envelopes"]);
    // An update by the author follows the same way; CN's IOC search names NG.
    ng.cerctl(&["incident", "update", &id, "--status", "contained"])
        .ok();
    eventually(SOON, "CN to see the update", || {
        let d = has_incident(&cn, &id)?;
        (d["incident"]["content"]["status"] == "contained").then_some(())
    });
    let search = cn.json(&["ioc", "search", "203.0.113.50"]);
    assert_eq!(search["matches"][0]["reported_by"][0]["name"], "NG-CERT");
    // Peers show traffic and no rejections.
    let peers = ke.json(&["peers"]);
    for peer in peers["peers"].as_array().unwrap() {
        assert_eq!(peer["connected"], true, "{peers}");
        assert!(
            peer["rejections"].as_object().is_none_or(|r| r.is_empty()),
            "{peers}"
        );
    }
}

#[test]
fn offline_node_catches_up_with_only_what_is_missing() {
    let (cn, mut ke, ng) = line();
    let first = ng.file_test("before the outage");
    eventually(SOON, "CN to receive the first incident", || {
        has_incident(&cn, &first)
    });
    ke.stop();
    let mut filed = Vec::new();
    for i in 0..200 {
        filed.push(ng.file_test(&format!("during the outage {i}")));
    }
    assert!(
        has_incident(&cn, &filed[0]).is_none(),
        "CN has no path to NG while KE is down"
    );
    ke.spawn();
    let last = filed.last().unwrap().clone();
    eventually(Duration::from_secs(60), "CN to catch up through KE", || {
        has_incident(&cn, &last)
    });
    for id in &filed {
        assert!(has_incident(&cn, id).is_some(), "{id} missing at CN");
    }
    assert_eq!(cn.status()["incidents"], 201);
    // KE received from NG only what it lacked: the 200 filed while it was
    // down (its counters are published a moment after the envelopes).
    let from_ng = eventually(SOON, "KE to count what NG sent", || {
        let peers = ke.json(&["peers"]);
        let from_ng = peers["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "NG-CERT")?
            .clone();
        (from_ng["behind"] == 0).then_some(from_ng)
    });
    assert_eq!(from_ng["envelopes_received"], 200, "{from_ng}");
}

#[test]
fn red_incident_is_ciphertext_at_the_relay() {
    let (cn, ke, ng) = line();
    let title = "Compromise of the ministry mail server";
    let id = ng.file(&[
        "--title",
        title,
        "--severity",
        "critical",
        "--tlp",
        "red",
        "--class",
        "intrusions/system-compromise",
        "--to",
        "CN-CERT",
        "--ioc",
        "domain:exfil-drop.example",
    ]);
    let at_cn = eventually(SOON, "CN to receive the RED incident", || {
        has_incident(&cn, &id)
    });
    assert_eq!(at_cn["incident"]["content"]["title"], title);
    assert_eq!(at_cn["incident"]["readable"], true);
    let at_ke = eventually(SOON, "KE to relay the RED incident", || {
        has_incident(&ke, &id)
    });
    assert_eq!(at_ke["incident"]["readable"], false);
    assert!(at_ke["incident"].get("content").is_none(), "{at_ke}");
    assert_eq!(
        at_ke["incident"]["recipients"][0],
        cn.fingerprint().as_str()
    );
    let shown = ke.cerctl(&["incident", "show", &id]);
    assert!(
        shown.ok().contains("CN-CERT"),
        "the relay says whom it is encrypted for: {}",
        shown.stdout
    );
    // Nothing readable in the relay's files.
    ke.cerctl(&["status"]).ok();
    assert!(
        !dir_contains(&ke.data_dir(), title.as_bytes()),
        "plaintext title found in KE's data dir"
    );
    assert!(
        !dir_contains(&ke.data_dir(), b"exfil-drop.example"),
        "plaintext indicator found in KE's data dir"
    );
    // The recipient indexes it: IOC search works at CN, not at KE.
    assert_eq!(
        cn.json(&["ioc", "search", "exfil-drop.example"])["matches"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(ke.cerctl(&["ioc", "search", "exfil-drop.example"]).code, 1);
}

fn dir_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    walk(dir).into_iter().any(|file| {
        std::fs::read(&file)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn retraction_and_receipt_travel_across_the_mesh() {
    let (cn, ke, ng) = line();
    let id = ng.file(&[
        "--title",
        "Phishing kit",
        "--severity",
        "medium",
        "--tlp",
        "green",
        "--class",
        "fraud/phishing",
        "--ioc",
        "domain:kit.example",
    ]);
    eventually(SOON, "CN to receive it", || has_incident(&cn, &id));

    // CN's analyst marks it actioned; NG sees CN's signed receipt.
    cn.cerctl(&[
        "incident",
        "ack",
        &id,
        "--state",
        "actioned",
        "--comment",
        "blocked at the border",
    ])
    .ok();
    let cn_fpr = cn.fingerprint();
    eventually(SOON, "NG to see CN's receipt", || {
        let d = has_incident(&ng, &id)?;
        d["incident"]["timeline"]
            .as_array()?
            .iter()
            .find(|e| {
                e["event"] == "receipt"
                    && e["author"] == cn_fpr.as_str()
                    && e["state"] == "actioned"
            })
            .cloned()
    });

    // Receipts only move forward: going back, or repeating the same state
    // without a comment, is refused and nothing is sent.
    let back = cn.cerctl(&["incident", "ack", &id, "--state", "received"]);
    assert_eq!(back.code, 1, "{back:?}");
    assert!(
        back.stderr.contains("already acknowledged incident")
            && back.stderr.contains("as actioned")
            && back.stderr.contains("cannot go back to received"),
        "{back:?}"
    );
    let same = cn.cerctl(&["incident", "ack", &id, "--state", "actioned"]);
    assert_eq!(same.code, 1, "{same:?}");
    assert!(same.stderr.contains("changes nothing"), "{same:?}");
    cn.cerctl(&["incident", "ack", &id, "--state", "resolved"])
        .ok();
    let receipts = has_incident(&cn, &id).unwrap()["incident"]["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "receipt")
        .map(|e| e["state"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(receipts, ["actioned", "resolved"]);

    // NG retracts; it disappears from every listing, a tombstone remains.
    ng.cerctl(&["incident", "retract", &id, "--reason", "false positive"])
        .ok();
    for node in [&cn, &ke, &ng] {
        eventually(
            SOON,
            &format!("{} to drop the retracted incident", node.name),
            || {
                let list = node.json(&["incident", "list"]);
                let listed = list["incidents"]
                    .as_array()?
                    .iter()
                    .any(|i| i["id"] == id.as_str());
                (!listed).then_some(())
            },
        );
        let d = has_incident(node, &id).expect("tombstone kept");
        assert!(d["incident"]["retracted"].is_object());
        assert_eq!(node.cerctl(&["ioc", "search", "kit.example"]).code, 1);
    }
    // A node that was offline throughout catches up from KE: NG's filing
    // reaches it only as a tombstone, proven by NG's signed retraction, and
    // NG's chain continues past it.
    let mut eg = TestNode::new("EG-CERT");
    eg.init();
    eg.trust(&ke);
    eg.trust(&ng);
    ke.trust(&eg);
    eg.add_peer(&ke.listen_addr());
    eg.spawn();
    let later = ng.file(&[
        "--title",
        "Second kit",
        "--severity",
        "low",
        "--tlp",
        "green",
        "--class",
        "fraud/phishing",
    ]);
    eventually(SOON, "EG to catch up past the tombstone", || {
        has_incident(&eg, &later)
    });
    let d = has_incident(&eg, &id).expect("EG holds the retracted incident");
    assert!(d["incident"]["retracted"].is_object());
    let status = eg.status();
    assert_eq!(status["tombstones"], 1, "{status}");
    assert_eq!(status["equivocations"], 0);
    let peers = eg.json(&["peers"]);
    for peer in peers["peers"].as_array().unwrap() {
        assert_eq!(peer["rejections"], serde_json::json!({}), "{peer}");
    }

    // The withdrawn body is no longer served by any node: exports hold only
    // the retraction and the receipt, not the filing.
    for node in [&cn, &ke, &ng, &eg] {
        let export = node.json(&["export", "--format", "envelopes", "--incident", &id]);
        let text = export.to_string();
        assert!(
            !text.contains("Phishing kit"),
            "{} still serves the retracted body",
            node.name
        );
    }
}

/// A crashed relay that comes back is taken back at once: the ends replace
/// the dead link with the relay's new one instead of refusing it until the
/// old one times out.
#[test]
fn relay_killed_and_restarted_relays_again_within_seconds() {
    // The same line, but the relay dials the ends, as a restarted node does.
    let (mut ke, mut cn, mut ng) = three_trusting_each_other();
    cn.spawn();
    ng.spawn();
    ke.add_peer(&cn.listen_addr());
    ke.add_peer(&ng.listen_addr());
    ke.spawn();
    wait_connected(&ke, 2);
    let before = ng.file_test("before the crash");
    eventually(SOON, "CN to receive NG's first incident", || {
        has_incident(&cn, &before)
    });

    ke.kill9();
    ke.spawn();
    let filed_at = std::time::Instant::now();
    let id = ng.file_test("after the crash");
    eventually(
        SOON,
        "CN to receive NG's incident through the restarted KE",
        || has_incident(&cn, &id),
    );
    let took = filed_at.elapsed();
    eprintln!("relay restarted: NG's incident reached CN {took:?} after filing");
    assert!(
        took < Duration::from_secs(5),
        "took {took:?}: the ends kept the dead link\n{}",
        cn.log()
    );
    // Neither end refused the relay's new links.
    assert!(!ke.log().contains("already connected"), "{}", ke.log());
}

#[test]
fn unknown_node_cannot_connect_and_removed_cert_disconnects() {
    let (cn, ke, ng) = line();
    // A stranger with its own key, unknown to KE, dials KE.
    let mut stranger = TestNode::new("XX-CERT");
    stranger.init();
    stranger.trust(&ke);
    stranger.add_peer(&ke.listen_addr());
    stranger.spawn();
    eventually(SOON, "KE to refuse the stranger", || {
        ke.log().contains("peer_refused").then_some(())
    });
    let peers = stranger.json(&["peers"]);
    assert!(
        peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["connected"] == false),
        "{peers}"
    );
    let at_ke = ke.json(&["peers"]);
    assert!(
        at_ke["peers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "XX-CERT"),
        "{at_ke}"
    );
    // KE's peers list shows the refused key, where from, and how often.
    let stranger_fpr = stranger.fingerprint();
    let refused = eventually(SOON, "KE to list the refused key", || {
        let peers = ke.json(&["peers"]);
        peers["peers"]
            .as_array()?
            .iter()
            .find(|p| p["fingerprint"] == stranger_fpr.as_str())
            .cloned()
    });
    assert_eq!(refused["connected"], false, "{refused}");
    assert!(
        refused["rejections"]["not_trusted"].as_u64() >= Some(1),
        "{refused}"
    );
    assert!(refused["address"]
        .as_str()
        .unwrap()
        .starts_with("127.0.0.1:"));

    // KE stops trusting NG: NG is disconnected within seconds, no restart.
    let ng_fpr = ng.fingerprint();
    ke.cerctl(&["certs", "remove", &ng_fpr]).ok();
    eventually(SOON, "KE to drop NG", || {
        let peers = ke.json(&["peers"]);
        let ng_up = peers["peers"]
            .as_array()?
            .iter()
            .any(|p| p["fingerprint"] == ng_fpr.as_str() && p["connected"] == true);
        (!ng_up).then_some(())
    });
    // NG keeps redialing; KE says "refused: not trusted" once, in words,
    // and NG says once that KE refused it, not a debug dump per back-off.
    let refused_again = "refused again: not trusted remote=127.0.0.1";
    // (The stranger redials too: count NG's refusals only.)
    eventually(SOON, "NG to redial KE twice more", || {
        let again = ke
            .log()
            .lines()
            .filter(|l| l.contains(refused_again) && l.contains(ng_fpr.as_str()))
            .count();
        (again >= 2).then_some(())
    });
    let ke_log = ke.log();
    let refusals = ke_log
        .lines()
        .filter(|l| l.contains("refused: not trusted (its certificate is not in certs/)"))
        .filter(|l| l.contains(ng_fpr.as_str()))
        .count();
    assert_eq!(refusals, 1, "{ke_log}");
    let ng_log = ng.log();
    assert!(!ng_log.contains("ByPeer"), "{ng_log}");
    assert!(!ng_log.contains("cannot reach peer"), "{ng_log}");
    assert!(
        ng_log.contains("peer disconnected")
            && ng_log
                .contains("the peer refused: not trusted (this node is not in its trust store)"),
        "{ng_log}"
    );
    assert_eq!(
        ng_log.matches("the peer refused this node").count(),
        1,
        "{ng_log}"
    );
    // CN stops trusting KE, the node it dials: CN says so once and stops
    // dialing, rather than reporting KE unreachable at every back-off.
    let ke_fpr = ke.fingerprint();
    cn.cerctl(&["certs", "remove", &ke_fpr]).ok();
    eventually(SOON, "CN to stop dialing KE", || {
        cn.log().contains("not dialing it").then_some(())
    });
    let cn_log = cn.log();
    assert!(!cn_log.contains("cannot reach peer"), "{cn_log}");
    assert_eq!(cn_log.matches("peer_not_dialed").count(), 1, "{cn_log}");
    // Adding the certificate back dials at once, without waiting out the
    // back-off (it was about 6 s).
    let added = std::time::Instant::now();
    cn.cerctl(&["certs", "add", ke.cert_path().to_str().unwrap()])
        .ok();
    wait_connected(&cn, 1);
    assert!(
        added.elapsed() < Duration::from_secs(5),
        "CN reconnected only after {:?}",
        added.elapsed()
    );
    // And NG's new incidents no longer reach CN through KE.
    let id = ng.file_test("after removal");
    // NG's only way to CN is through KE, which no longer links to NG: once
    // CN has an incident KE filed after NG's, it has all it will get.
    let marker = ke.file_test("marker from KE");
    eventually(SOON, "CN to receive KE's marker", || {
        has_incident(&cn, &marker)
    });
    assert!(has_incident(&cn, &id).is_none());
    // Adding it back with cerctl restores the link.
    ke.cerctl(&["certs", "add", ng.cert_path().to_str().unwrap()])
        .ok();
    eventually(
        SOON,
        "CN to receive NG's incident once KE trusts NG again",
        || has_incident(&cn, &id),
    );
}

/// `cerctl peers` counts bytes, like envelopes, across every link to a
/// peer: a reconnect does not start them again from zero.
#[test]
fn peer_byte_counters_add_up_across_links() {
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
    wait_connected(&ke, 1);
    let description = "x".repeat(20_000);
    let id = ng.file(&[
        "--title",
        "Large report",
        "--severity",
        "low",
        "--tlp",
        "green",
        "--class",
        "test/test",
        "--description",
        &description,
    ]);
    eventually(SOON, "KE to receive it", || has_incident(&ke, &id));
    let ng_fpr = ng.fingerprint();
    let counters = |node: &TestNode| {
        let peers = node.json(&["peers"]);
        let peer = peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["fingerprint"] == ng_fpr.as_str())
            .cloned()
            .unwrap();
        (
            peer["connected"] == true,
            peer["bytes_received"].as_u64().unwrap(),
            peer["envelopes_received"].as_u64().unwrap(),
        )
    };
    let (_, first_link_bytes, envelopes) = counters(&ke);
    assert!(first_link_bytes > 20_000, "{first_link_bytes}");
    ng.stop();
    eventually(SOON, "KE to see NG go", || (!counters(&ke).0).then_some(()));
    ng.spawn();
    let (_, bytes, again) = eventually(SOON, "NG to reconnect", || {
        let now = counters(&ke);
        now.0.then_some(now)
    });
    assert_eq!(again, envelopes);
    assert!(bytes > first_link_bytes, "{bytes} after {first_link_bytes}");
}

#[test]
fn tampered_envelope_from_a_peer_is_refused_and_the_peer_dropped() {
    use std::sync::Arc;

    use cer_proto::envelope::{Body, Draft, DraftBody, IncidentBody};
    use cer_proto::model::{Classification, Severity, Status, Tlp};
    use cer_proto::wire::{Frame, Item};
    use cerd::mesh::transport::Endpoint;
    use cerd::sign::{Identity, TrustStore};

    let mut ke = TestNode::new("KE-CIRT");
    ke.init();
    let evil = Identity::generate("EVIL-CERT").unwrap();
    std::fs::write(ke.certs_dir().join("evil.asc"), evil.public_armored()).unwrap();
    ke.spawn();
    let addr: std::net::SocketAddr = ke.listen_addr().parse().unwrap();

    let draft = Draft {
        author: evil.fingerprint().clone(),
        seq: 1,
        prev: None,
        created: "2026-11-28T13:00:00Z".parse().unwrap(),
        subject: uuid::Uuid::new_v4(),
        tlp: Tlp::Green,
        recipients: vec![],
        body: DraftBody::Plain(Body::Incident(IncidentBody {
            title: "Harmless report".into(),
            description: String::new(),
            severity: Severity::Low,
            classification: Classification::parse("test/test").unwrap(),
            status: Status::New,
            indicators: vec![],
            affected: Default::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            source: None,
        })),
        withdraws: vec![],
    };
    let bytes = draft.to_bytes().unwrap();
    let sig = evil.sign_detached(&bytes);
    // Same length, different meaning: the signature no longer matches.
    let tampered = String::from_utf8(bytes)
        .unwrap()
        .replace("Harmless", "Alarming")
        .into_bytes();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ke_cert = std::fs::read(ke.cert_path()).unwrap();
    rt.block_on(async {
        let mut trust = TrustStore::new();
        trust.insert(cerd::sign::TrustedCert::parse(&ke_cert).unwrap());
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), Arc::new(evil)).unwrap();
        let link = endpoint
            .connect(addr, &trust, None)
            .await
            .expect("the trusted test peer connects");
        let (mut sender, mut receiver, handle) = link.split();
        sender
            .send(&Frame::Envelopes {
                items: vec![Item::Live {
                    bytes: tampered,
                    sig,
                }],
            })
            .await
            .unwrap();
        // KE closes the link: read until it does.
        let closed = tokio::time::timeout(SOON, async {
            while let Ok(Some(_)) = receiver.recv().await {}
            handle.closed().await
        })
        .await
        .expect("KE disconnects the peer");
        assert!(
            format!("{closed:?}").contains("bad signature"),
            "{closed:?}"
        );
        endpoint.close();
    });
    let peers = eventually(SOON, "KE to count the bad signature", || {
        let peers = ke.json(&["peers"]);
        let evil = peers["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "EVIL-CERT")?
            .clone();
        (evil["rejections"]["bad_signature"] == 1).then_some(evil)
    });
    assert_eq!(peers["envelopes_received"], 0);
    // Nothing was stored, and the API kept serving throughout.
    let status = ke.status();
    assert_eq!(status["envelopes"], 0);
    assert!(ke.log().contains("bad_signature"));
}

#[test]
fn cerd_demo_runs_and_narrates() {
    let (ok, text) =
        crate::harness::run(std::process::Command::new(crate::harness::CERD).arg("demo"));
    assert!(ok, "cerd demo failed:\n{text}");
    for needle in [
        "signature verified against NG-CERT's certificate",
        "encrypted for CN-CERT",
        "not found, only ciphertext",
        "CN-CERT had all 500",
        "receipt signed by CN-CERT: actioned",
        "Gone from every node's listings",
    ] {
        assert!(
            text.contains(needle),
            "demo output lacks {needle:?}:\n{text}"
        );
    }
}

/// A trusted peer forges a tombstone at another CERT's next seq (the
/// attack that would make that CERT's real envelope look like
/// equivocation). The forgery is refused and counted against the peer; the
/// honest envelopes arrive afterwards and are stored normally.
#[test]
fn forged_tombstone_is_refused_and_the_honest_chain_continues() {
    use std::sync::Arc;

    use cer_proto::envelope::{
        Body, Draft, DraftBody, IncidentBody, Kind, RetractionBody, Withdrawal,
    };
    use cer_proto::model::{Classification, Severity, Status, Tlp};
    use cer_proto::wire::{Frame, Item, WireTombstone};
    use cer_proto::EnvelopeId;
    use cerd::mesh::transport::Endpoint;
    use cerd::sign::{Identity, TrustStore, TrustedCert};

    let mut ke = TestNode::new("KE-CIRT");
    ke.init();
    let cn = Identity::generate("CN-CERT").unwrap();
    let evil = Identity::generate("EVIL-CERT").unwrap();
    std::fs::write(ke.certs_dir().join("cn.asc"), cn.public_armored()).unwrap();
    std::fs::write(ke.certs_dir().join("evil.asc"), evil.public_armored()).unwrap();
    ke.spawn();
    let addr: std::net::SocketAddr = ke.listen_addr().parse().unwrap();
    let ke_cert = TrustedCert::parse(&std::fs::read(ke.cert_path()).unwrap()).unwrap();

    let incident = |title: &str| {
        DraftBody::Plain(Body::Incident(IncidentBody {
            title: title.into(),
            description: String::new(),
            severity: Severity::High,
            classification: Classification::parse("fraud/phishing").unwrap(),
            status: Status::New,
            indicators: vec![],
            affected: Default::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            source: None,
        }))
    };
    let draft = |author: &Identity, seq: u64, prev: Option<EnvelopeId>, body: DraftBody| {
        let withdraws = match &body {
            DraftBody::Plain(Body::Retraction(_)) => vec![Withdrawal {
                seq: 1,
                id: EnvelopeId::of(b"what the forger wants withdrawn"),
                kind: Kind::Incident,
                created: "2026-11-28T13:00:00Z".parse().unwrap(),
            }],
            _ => vec![],
        };
        let bytes = Draft {
            author: author.fingerprint().clone(),
            seq,
            prev,
            created: "2026-11-28T13:00:00Z".parse().unwrap(),
            subject: uuid::Uuid::new_v4(),
            tlp: Tlp::Green,
            recipients: vec![],
            body,
            withdraws,
        }
        .to_bytes()
        .unwrap();
        let sig = author.sign_detached(&bytes);
        (bytes, sig)
    };
    // CN's real chain: two incidents.
    let (cn1, cn1_sig) = draft(&cn, 1, None, incident("CN report one"));
    let (cn2, cn2_sig) = draft(
        &cn,
        2,
        Some(EnvelopeId::of(&cn1)),
        incident("CN report two"),
    );
    // The forgery: a tombstone at CN's seq 1, "proven" by a retraction the
    // forger signed itself (the best a peer without CN's key can do).
    let (proof, proof_sig) = draft(
        &evil,
        2,
        Some(EnvelopeId::of(b"the forger's first envelope")),
        DraftBody::Plain(Body::Retraction(RetractionBody {
            target: None,
            reason: None,
        })),
    );
    let forged = Item::Tombstone(WireTombstone {
        author: cn.fingerprint().clone(),
        seq: 1,
        id: EnvelopeId::of(b"what the forger wants withdrawn"),
        proof,
        proof_sig,
    });

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut trust = TrustStore::new();
        trust.insert(ke_cert.clone());
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), Arc::new(evil)).unwrap();
        let link = endpoint
            .connect(addr, &trust, None)
            .await
            .expect("the trusted forger connects");
        let (mut sender, mut receiver, handle) = link.split();
        sender
            .send(&Frame::Envelopes {
                items: vec![forged],
            })
            .await
            .unwrap();
        let closed = tokio::time::timeout(SOON, async {
            while let Ok(Some(_)) = receiver.recv().await {}
            handle.closed().await
        })
        .await
        .expect("KE disconnects the forger");
        assert!(format!("{closed:?}").contains("not proven"), "{closed:?}");
        endpoint.close();
    });
    eventually(SOON, "KE to count the forged tombstone", || {
        let peers = ke.json(&["peers"]);
        let evil = peers["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "EVIL-CERT")?
            .clone();
        (evil["rejections"]["unproven_tombstone"] == 1).then_some(())
    });
    let status = ke.status();
    assert_eq!(status["envelopes"], 0, "the forgery was stored: {status}");
    assert_eq!(status["tombstones"], 0);

    // CN's honest envelopes now arrive and extend its chain normally. The
    // link lives on a multi-threaded runtime that keeps driving it while
    // this thread polls KE.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (endpoint, link) = rt.block_on(async {
        let mut trust = TrustStore::new();
        trust.insert(ke_cert);
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), Arc::new(cn)).unwrap();
        let link = endpoint
            .connect(addr, &trust, None)
            .await
            .expect("CN connects");
        let (mut sender, receiver, handle) = link.split();
        sender
            .send(&Frame::Envelopes {
                items: vec![
                    Item::Live {
                        bytes: cn1,
                        sig: cn1_sig,
                    },
                    Item::Live {
                        bytes: cn2,
                        sig: cn2_sig,
                    },
                ],
            })
            .await
            .unwrap();
        (endpoint, (sender, receiver, handle))
    });
    eventually(SOON, "KE to store CN's two envelopes", || {
        (ke.status()["envelopes"] == 2).then_some(())
    });
    drop(link);
    endpoint.close();
    let status = ke.status();
    assert_eq!(status["equivocations"], 0, "{status}");
    assert_eq!(status["incidents"], 2);
    let list = ke.json(&["incident", "list"]);
    let titles: Vec<&str> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["title"].as_str().unwrap())
        .collect();
    assert!(titles.contains(&"CN report one") && titles.contains(&"CN report two"));
    assert!(ke.log().contains("unproven_tombstone"));
}
