//! Federation under faults: nodes linked through [`Relay`]s that delay,
//! drop, partition; nodes killed with SIGKILL mid-write; a node whose
//! clock is an hour off. Every check compares positive signals: envelope
//! sets, counts and counters, never the absence of something after a
//! fixed wait.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::harness::{cerctl_raw, eventually, TestNode};
use crate::relay::{Profile, Relay};

const SOON: Duration = Duration::from_secs(30);

/// A seed from `CER_FAULT_SEED`, or a fresh one; printed so that a failing
/// run can be repeated.
fn seed(test: &str) -> u64 {
    let seed = std::env::var("CER_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: seed {seed} (CER_FAULT_SEED={seed} repeats it)");
    seed
}

/// Nodes that all trust each other, linked through one relay per link.
struct Mesh {
    nodes: Vec<TestNode>,
    /// (dialer, listener, relay)
    links: Vec<(usize, usize, Relay)>,
}

impl Mesh {
    /// `n` nodes; for each `(a, b)` in `links`, `a` dials `b` through a
    /// relay with `profile`.
    fn start(names: &[&str], links: &[(usize, usize)], profile: &Profile, seed: u64) -> Mesh {
        let mut nodes: Vec<TestNode> = names.iter().map(|n| TestNode::new(n)).collect();
        for node in &nodes {
            node.init();
        }
        for a in &nodes {
            for b in &nodes {
                if a.name != b.name {
                    a.trust(b);
                }
            }
        }
        // Each node gets its port once, keeps it, and is started again with
        // its peers (the relays) in its config.
        for node in nodes.iter_mut() {
            node.spawn();
            node.pin_listen();
        }
        let addrs: Vec<std::net::SocketAddr> = nodes
            .iter()
            .map(|n| n.listen_addr().parse().unwrap())
            .collect();
        for node in nodes.iter_mut() {
            node.stop();
        }
        let mut relays = Vec::new();
        for (k, &(a, b)) in links.iter().enumerate() {
            let relay = Relay::start(addrs[b], profile.clone(), seed.wrapping_add(k as u64));
            nodes[a].add_peer(&relay.addr().to_string());
            relays.push((a, b, relay));
        }
        for node in nodes.iter_mut() {
            node.spawn();
        }
        let mesh = Mesh {
            nodes,
            links: relays,
        };
        mesh.wait_linked();
        mesh
    }

    /// Waits until every link is up at both ends.
    fn wait_linked(&self) {
        for (i, node) in self.nodes.iter().enumerate() {
            let degree = self
                .links
                .iter()
                .filter(|(a, b, _)| *a == i || *b == i)
                .count();
            wait_connected(node, degree);
        }
    }
}

fn connected(node: &TestNode) -> usize {
    let peers = node.json(&["peers"]);
    peers["peers"]
        .as_array()
        .map(|p| p.iter().filter(|p| p["connected"] == true).count())
        .unwrap_or(0)
}

fn wait_connected(node: &TestNode, n: usize) {
    eventually(
        SOON,
        &format!("{} to have {n} connected peers", node.name),
        || (connected(node) >= n).then_some(()),
    );
}

fn envelopes(node: &TestNode) -> u64 {
    node.status()["envelopes"].as_u64().unwrap()
}

/// Every envelope the node holds, by id, with its author and seq.
fn envelope_set(node: &TestNode) -> BTreeMap<String, (String, u64)> {
    let export = node.json(&["export", "--format", "envelopes"]);
    let mut set = BTreeMap::new();
    for e in export["envelopes"].as_array().unwrap() {
        let doc: serde_json::Value = serde_json::from_str(e["json"].as_str().unwrap()).unwrap();
        let key = (
            doc["author"].as_str().unwrap().to_owned(),
            doc["seq"].as_u64().unwrap(),
        );
        let id = e["id"].as_str().unwrap().to_owned();
        assert!(
            set.insert(id.clone(), key).is_none(),
            "{} lists envelope {id} twice",
            node.name
        );
    }
    set
}

/// Checks that the set holds each author's chain exactly once, from 1 on
/// with no gap.
fn check_chains(node: &TestNode, set: &BTreeMap<String, (String, u64)>) {
    let mut by_author: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (author, seq) in set.values() {
        by_author.entry(author).or_default().push(*seq);
    }
    for (author, mut seqs) in by_author {
        seqs.sort_unstable();
        let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(
            seqs, expected,
            "{}: chain of {author} has gaps or repeats",
            node.name
        );
    }
}

/// Files one small incident through the API at `socket`; its id, or None
/// if the node did not acknowledge it (down, or killed mid-request).
fn file_at(socket: &std::path::Path, title: &str) -> Option<String> {
    let argv: Vec<String> = [
        "cerctl",
        "--socket",
        socket.to_str().unwrap(),
        "incident",
        "file",
        "--title",
        title,
        "--severity",
        "low",
        "--tlp",
        "green",
        "--class",
        "test/test",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = cerctl_raw(&argv, "");
    (out.code == 0).then(|| out.stdout.trim().to_owned())
}

/// Files `n` incidents at `node` from `threads` threads (the writer
/// batches what arrives together); their ids.
fn file_many(node: &TestNode, n: usize, threads: usize) -> Vec<String> {
    let socket = node.socket();
    let ids = Mutex::new(Vec::with_capacity(n));
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= n {
                    return;
                }
                let id = file_at(&socket, &format!("bulk {k}")).expect("filing acknowledged");
                ids.lock().unwrap().push(id);
            });
        }
    });
    ids.into_inner().unwrap()
}

/// Five nodes on a ring with two chords, every link through a relay.
/// Three times: a random cut partitions them into two sides, each side
/// files and converges on its own, the cut is healed, and every node holds
/// the same envelope set within 5 s. The partitions last 5 s and 9 s (links
/// survive) and 21 s (longer than the idle timeout: links die and
/// are dialed again).
#[test]
fn partitions_heal_within_five_seconds() {
    let seed = seed("partitions_heal_within_five_seconds");
    let mut rng = StdRng::seed_from_u64(seed);
    let names = ["CN-CERT", "KE-CIRT", "NG-CERT", "EG-CERT", "ZA-CSIRT"];
    let links = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (1, 3)];
    let mesh = Mesh::start(&names, &links, &link_profile(), seed);
    let mut total = 0u64;
    for node in &mesh.nodes {
        node.file_test("before the partitions");
        total += 1;
    }
    wait_all(&mesh.nodes, total);

    for (round, hold) in [5u64, 9, 21].into_iter().enumerate() {
        // A random side: one node, or two linked nodes (so that each side
        // stays connected); the rest is the other side.
        let side: BTreeSet<usize> = if rng.gen_bool(0.5) {
            BTreeSet::from([rng.gen_range(0..names.len())])
        } else {
            let (a, b) = links[rng.gen_range(0..links.len())];
            BTreeSet::from([a, b])
        };
        let cut: Vec<&Relay> = mesh
            .links
            .iter()
            .filter(|(a, b, _)| side.contains(a) != side.contains(b))
            .map(|(_, _, relay)| relay)
            .collect();
        let before: u64 = cut.iter().map(|r| r.stats().lost()).sum();
        let started = Instant::now();
        for relay in &cut {
            relay.partition();
        }
        // Every node keeps filing while the cut holds.
        let mut counts = [total; 5];
        let mut k = 0;
        while started.elapsed() < Duration::from_secs(hold) {
            for (i, node) in mesh.nodes.iter().enumerate() {
                node.file_test(&format!("round {round}: {k} at {}", node.name));
                for (j, count) in counts.iter_mut().enumerate() {
                    if side.contains(&i) == side.contains(&j) {
                        *count += 1;
                    }
                }
                total += 1;
            }
            k += 1;
            std::thread::sleep(Duration::from_millis(250));
        }
        // Each side converged on its own: exactly its own filings.
        for (node, count) in mesh.nodes.iter().zip(counts) {
            eventually(
                SOON,
                &format!("{} to hold its side's {count}", node.name),
                || (envelopes(node) == count).then_some(()),
            );
        }
        let dropped: u64 = cut.iter().map(|r| r.stats().lost()).sum::<u64>() - before;
        assert!(dropped > 0, "round {round}: nothing crossed the cut");

        let healed = Instant::now();
        for relay in &cut {
            relay.heal();
        }
        wait_all(&mesh.nodes, total);
        let took = healed.elapsed();
        eprintln!(
            "round {round}: side {side:?} cut from the rest for {hold} s ({} links, {dropped} datagrams dropped); all {total} envelopes everywhere {took:?} after the heal",
            cut.len()
        );
        let reference = envelope_set(&mesh.nodes[0]);
        check_chains(&mesh.nodes[0], &reference);
        for node in &mesh.nodes[1..] {
            assert_eq!(
                envelope_set(node),
                reference,
                "{} differs after round {round}",
                node.name
            );
        }
        assert!(
            took <= Duration::from_secs(5),
            "round {round}: healed only after {took:?}"
        );
    }
    for node in &mesh.nodes {
        assert_eq!(node.status()["equivocations"], 0);
    }
}

/// The links of the partition test: the measured case, 60 ms each
/// way with 5 % loss (`CER_FAULT_LINK=clean` for loopback as it is).
fn link_profile() -> Profile {
    if std::env::var("CER_FAULT_LINK").is_ok_and(|v| v == "clean") {
        return Profile::default();
    }
    Profile::lossy(Duration::from_millis(120), 0.05)
}

/// Waits (60 s at most) until every node holds `count` envelopes.
fn wait_all(nodes: &[TestNode], count: u64) {
    eventually(
        Duration::from_secs(60),
        &format!("all nodes to hold {count}"),
        || nodes.iter().all(|n| envelopes(n) == count).then_some(()),
    );
}

/// One link of 300 ms round trip and 5 % loss each way: a node that
/// joins late catches up on everything its peer holds, and stores each
/// envelope exactly once: 5,000 envelopes.
#[test]
fn lossy_link_catch_up_loses_and_duplicates_nothing() {
    let total = 5_000;
    let seed = seed("lossy_link_catch_up_loses_and_duplicates_nothing");
    let mut ke = TestNode::new("KE-CIRT");
    let mut ng = TestNode::new("NG-CERT");
    ke.init();
    ng.init();
    ke.trust(&ng);
    ng.trust(&ke);
    ke.spawn();
    let started = Instant::now();
    file_many(&ke, total, 4);
    eprintln!("filed {total} at KE in {:?}", started.elapsed());
    let relay = Relay::start(
        ke.listen_addr().parse().unwrap(),
        Profile::lossy(Duration::from_millis(300), 0.05),
        seed,
    );
    ng.add_peer(&relay.addr().to_string());
    let started = Instant::now();
    ng.spawn();
    eventually(
        Duration::from_secs(600),
        &format!("NG to catch up on {total}"),
        || (envelopes(&ng) == total as u64).then_some(()),
    );
    let took = started.elapsed();
    let stats = relay.stats();
    eprintln!(
        "caught up {total} envelopes over 300 ms RTT and 5 % loss in {took:.1?}: {:.0} envelopes/s; relay forwarded {} datagrams ({} bytes to NG), dropped {}",
        total as f64 / took.as_secs_f64(),
        stats.forwarded(),
        stats.to_client.forwarded_bytes,
        stats.lost()
    );
    assert!(stats.lost() > 0, "the link lost nothing: {stats:?}");
    let at_ke = envelope_set(&ke);
    let at_ng = envelope_set(&ng);
    assert_eq!(at_ng.len(), total);
    assert_eq!(at_ng, at_ke);
    check_chains(&ng, &at_ng);
    let status = ng.status();
    assert_eq!(status["incidents"], total as u64, "{status}");
    assert_eq!(status["equivocations"], 0, "{status}");
}

/// Four nodes, fully linked, each filing without pause; ten times a random
/// node is killed with SIGKILL mid-write and started again. Afterwards
/// every node holds the same envelopes, every acknowledged filing is
/// among them, each author's chain is whole, and nobody recorded an
/// equivocation (a restarted author never reuses a seq).
#[test]
fn kill_nine_during_writes_loses_nothing_acknowledged() {
    let seed = seed("kill_nine_during_writes_loses_nothing_acknowledged");
    let mut rng = StdRng::seed_from_u64(seed);
    let names = ["CN-CERT", "KE-CIRT", "NG-CERT", "EG-CERT"];
    let links = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];
    let mut mesh = Mesh::start(&names, &links, &Profile::default(), seed);
    let sockets: Vec<PathBuf> = mesh.nodes.iter().map(|n| n.socket()).collect();
    let stop = AtomicBool::new(false);
    let acknowledged: Vec<Mutex<Vec<String>>> = names.iter().map(|_| Mutex::default()).collect();
    let cycles = 10;
    std::thread::scope(|s| {
        for (i, socket) in sockets.iter().enumerate() {
            let (stop, acknowledged) = (&stop, &acknowledged[i]);
            s.spawn(move || {
                let mut k = 0;
                while !stop.load(Ordering::SeqCst) {
                    match file_at(socket, &format!("write {k} at node {i}")) {
                        Some(id) => acknowledged.lock().unwrap().push(id),
                        // Down: try again shortly.
                        None => std::thread::sleep(Duration::from_millis(50)),
                    }
                    k += 1;
                }
            });
        }
        for cycle in 0..cycles {
            let victim = rng.gen_range(0..names.len());
            let before = acknowledged[victim].lock().unwrap().len();
            // Let the victim acknowledge a few writes first.
            let writes = rng.gen_range(3..30);
            eventually(SOON, "writes before the kill", || {
                (acknowledged[victim].lock().unwrap().len() >= before + writes).then_some(())
            });
            mesh.nodes[victim].kill9();
            let down = rng.gen_range(0..1000);
            std::thread::sleep(Duration::from_millis(down));
            mesh.nodes[victim].spawn();
            eprintln!(
                "cycle {cycle}: killed {} after {writes} more writes, down {down} ms",
                names[victim]
            );
        }
        stop.store(true, Ordering::SeqCst);
    });
    mesh.wait_linked();
    // Converged: every node holds as many envelopes as each author's tip
    // says it filed.
    let counts = eventually(Duration::from_secs(60), "all nodes to agree", || {
        let counts: Vec<u64> = mesh.nodes.iter().map(envelopes).collect();
        counts.windows(2).all(|w| w[0] == w[1]).then_some(counts)
    });
    let reference = envelope_set(&mesh.nodes[0]);
    check_chains(&mesh.nodes[0], &reference);
    for node in &mesh.nodes[1..] {
        assert_eq!(envelope_set(node), reference, "{} differs", node.name);
    }
    let export = mesh.nodes[0].json(&["export", "--format", "envelopes"]);
    let subjects: BTreeSet<String> = export["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let doc: serde_json::Value = serde_json::from_str(e["json"].as_str().unwrap()).unwrap();
            doc["subject"].as_str().unwrap().to_owned()
        })
        .collect();
    let mut total_acknowledged = 0;
    for (node, acknowledged) in mesh.nodes.iter().zip(&acknowledged) {
        let acknowledged = acknowledged.lock().unwrap();
        total_acknowledged += acknowledged.len();
        for id in acknowledged.iter() {
            assert!(
                subjects.contains(id),
                "{id}, acknowledged by {}, is lost",
                node.name
            );
        }
        let status = node.status();
        assert_eq!(status["equivocations"], 0, "{}: {status}", node.name);
    }
    eprintln!(
        "{cycles} kills: {total_acknowledged} filings acknowledged, {} envelopes on every node",
        counts[0]
    );
}

/// Nodes whose clocks are off. Peers authenticate each other with
/// signatures checked against the clock (sequoia's tolerance: 30 min), so
/// an hour either way is refused at the link, with the reason in words,
/// by the node whose clock disagrees: nothing crosses. Twenty minutes
/// behind is within the tolerance: what that node files is accepted and
/// listed by its own, earlier, time.
#[test]
fn clock_skewed_nodes_are_refused_beyond_half_an_hour_and_ordered_within() {
    let mut ke = TestNode::new("KE-CIRT");
    let mut fast = TestNode::new("NG-CERT");
    let mut slow = TestNode::new("EG-CERT");
    let mut drift = TestNode::new("ZA-CSIRT");
    ke.init();
    fast.init();
    // The slow nodes' keys were made two hours "ago" by their own clocks,
    // as keys made long before a clock went wrong would be.
    for node in [&slow, &drift] {
        let out = std::process::Command::new(crate::harness::CERD)
            .arg("--config")
            .arg(node.config_path())
            .args(["init", "--name", &node.name])
            .env("CERD_CLOCK_OFFSET", "-2h")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    for node in [&fast, &slow, &drift] {
        ke.trust(node);
        node.trust(&ke);
    }
    ke.spawn();
    ke.pin_listen();
    for node in [&fast, &slow, &drift] {
        node.add_peer(&ke.listen_addr());
    }
    fast.spawn_with(&[("CERD_CLOCK_OFFSET", "+1h")]);
    slow.spawn_with(&[("CERD_CLOCK_OFFSET", "-1h")]);
    drift.spawn_with(&[("CERD_CLOCK_OFFSET", "-20m")]);

    // An hour ahead: KE refuses the link and says why.
    let reason = "ahead of this node's clock, more than the 30m tolerated: the signer's clock (or this node's) is wrong";
    eventually(SOON, "KE to refuse NG, which is an hour ahead", || {
        ke.log()
            .lines()
            .any(|l| l.contains("incoming connection refused") && l.contains(reason))
            .then_some(())
    });
    // An hour behind: EG refuses KE (whose signatures are an hour in EG's
    // future) and says why.
    eventually(SOON, "EG to refuse KE", || {
        slow.log()
            .lines()
            .any(|l| l.contains("cannot reach peer") && l.contains(reason))
            .then_some(())
    });
    // Twenty minutes behind: linked, and only that one.
    wait_connected(&ke, 1);
    wait_connected(&drift, 1);
    for node in [&fast, &slow] {
        assert_eq!(connected(node), 0, "{} linked", node.name);
    }

    // What the drifting node files is accepted, and KE lists it by its
    // time: older than KE's own incident filed just before it.
    let own = ke.file_test("filed by KE");
    let late = drift.file_test("filed twenty minutes late");
    let early = fast.file_test("filed an hour early");
    let behind = slow.file_test("filed an hour late");
    eventually(SOON, "KE to store ZA's incident", || {
        (ke.cerctl(&["incident", "show", &late]).code == 0).then_some(())
    });
    let list = ke.json(&["incident", "list"]);
    let order: Vec<&str> = list["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, [own.as_str(), late.as_str()], "{list}");
    let shown = ke.json(&["incident", "show", &late]);
    let created: &str = shown["envelopes"][0]["created"].as_str().unwrap();
    let own_created = ke.json(&["incident", "show", &own])["envelopes"][0]["created"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(created < own_created.as_str(), "{created} vs {own_created}");
    // The refused nodes' filings stayed home: KE and ZA hold KE's and
    // ZA's only (2 envelopes), and the link carried nothing else.
    for id in [&early, &behind] {
        assert_eq!(ke.cerctl(&["incident", "show", id]).code, 1);
    }
    eventually(SOON, "ZA to hold KE's incident", || {
        (envelopes(&drift) == 2).then_some(())
    });
    assert_eq!(envelopes(&ke), 2);
    assert_eq!(ke.status()["equivocations"], 0);
}
