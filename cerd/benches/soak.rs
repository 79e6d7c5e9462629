//! The soak: five real `cerd` processes (the release binary) filing and
//! syncing for an hour under faults, then checked for convergence, lost
//! writes, playbook runs and resource growth. Prints figures; exits
//! non-zero when an invariant fails.
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p cerd --bench soak                       # one hour
//! CERD_SOAK_SECS=180 cargo bench -p cerd --bench soak    # a smoke run
//! CERD_SOAK_SEED=42 cargo bench -p cerd --bench soak     # repeat a run's faults
//! ```
//!
//! The mesh: a ring of five nodes with two chords (seven links), each link
//! through its own impairing UDP relay (`tests/relay.rs`) with a round trip
//! of 40–120 ms and 1–3 % loss each way, drawn per link from the seed.
//! Nodes are started, trusted and peered as the fault tests do
//! (`tests/harness.rs`) and driven through cerctl's library.
//!
//! During the run:
//! - a writer per node files a TLP:GREEN incident every 200–500 ms, or one
//!   time in five a note on one of its own incidents, and keeps every
//!   acknowledged answer (incident and envelope id);
//! - every 5–20 s one fault, the three kinds in rounds of a random order:
//!   a node killed with SIGKILL and started again 1–6 s later, one link
//!   cut, or all of one node's links cut, for 3–25 s (past the 10 s QUIC
//!   idle timeout, links die and are dialled again);
//! - every node has a playbook that runs `bin/record` on every
//!   incident.filed, incident.received and incident.updated event; the
//!   script appends its run key (`CER_RUN_KEY`), the event, the incident
//!   and its parent's pid (the cerd process) to a log. Nothing untrusted
//!   goes through a shell string: the values come as argv and environment;
//! - each node's RSS (`VmRSS`) and open descriptors (`/proc/PID/fd`) are
//!   sampled every 10 s, per process lifetime (a restarted node is a new
//!   pid).
//!
//! At the end the writers and faults stop, every link is healed, and the
//! bench polls (10 min at most) until all nodes hold the same envelopes
//! and every node's playbooks have finished every event. Then it checks:
//! the same envelope ids on every node, each author's chain whole from 1,
//! no equivocation, every acknowledged filing on every node, and on every
//! node exactly one run of the playbook per event (a run key is the
//! playbook, event, incident and envelope id). A run key that ran again in
//! a *new* process after a SIGKILL is counted apart and allowed: the
//! driver runs at least once, with the same run key, when it was killed
//! before recording the run (ARCHITECTURE.md, "Every stored envelope is an
//! event, at least once"). The same key twice from one process fails.
//!
//! Resource growth is reported, not asserted: a least-squares slope per
//! hour over the second half of the run, on each node's longest lifetime
//! there, flagged when RSS grows faster than 10 MiB/h or descriptors
//! faster than 20/h over a window of 10 min at least (a smoke run's
//! window measures the warm-up, and is printed unjudged).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

#[allow(dead_code)]
#[path = "../../tests/harness.rs"]
mod harness;
#[path = "../../tests/relay.rs"]
mod relay;

#[path = "soak/resources.rs"]
mod resources;

use harness::{cerctl_raw, TestNode};
use relay::{Profile, Relay};
use resources::Sampler;

const NAMES: [&str; 5] = ["AT-CERT", "BE-CERT", "CZ-CERT", "DK-CERT", "EE-CERT"];
/// A ring with two chords: every node has two or three links, and some
/// envelopes travel two hops.
const LINKS: [(usize, usize); 7] = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0), (0, 2), (1, 3)];
const PLAYBOOK: &str = "soak-record";
/// How long the end waits for convergence.
const CONVERGE_LIMIT: Duration = Duration::from_secs(600);

fn main() -> ExitCode {
    let secs: u64 = std::env::var("CERD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let seed: u64 = std::env::var("CERD_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("cerd soak: 5 cerd processes, 7 impaired links, writers, kills and partitions");
    println!("seed {seed} (CERD_SOAK_SEED={seed} repeats the faults), {secs} s of faults");
    println!("cerd: {}", harness::CERD);
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut mesh = Mesh::start(&mut rng, seed);
    println!(
        "mesh formed in {:.1} s; links (RTT, loss each way):",
        started.elapsed().as_secs_f64()
    );
    for (k, (a, b, relay)) in mesh.links.iter().enumerate() {
        let profile = &mesh.profiles[k];
        println!(
            "  {} -> {}: {} ms, {:.1} %   (relay {})",
            NAMES[*a],
            NAMES[*b],
            (profile.delay * 2).as_millis(),
            profile.loss * 100.0,
            relay.addr()
        );
    }
    println!();

    let outcome = soak(&mut mesh, &mut rng, seed, Duration::from_secs(secs));
    if !outcome {
        for node in &mut mesh.nodes {
            let kept = std::mem::replace(
                &mut node.dir,
                tempfile::Builder::new()
                    .prefix("cer")
                    .tempdir_in("/tmp")
                    .expect("temp dir"),
            );
            println!(
                "{}'s folder (log, runs.log) kept: {}",
                node.name,
                kept.keep().display()
            );
        }
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Nodes that all trust each other, linked through one relay per link.
struct Mesh {
    nodes: Vec<TestNode>,
    /// (dialer, listener, relay)
    links: Vec<(usize, usize, Relay)>,
    profiles: Vec<Profile>,
}

impl Mesh {
    fn start(rng: &mut StdRng, seed: u64) -> Mesh {
        let mut nodes: Vec<TestNode> = NAMES.iter().map(|n| TestNode::new(n)).collect();
        for node in &nodes {
            node.init();
            install_playbook(node);
        }
        for a in &nodes {
            for b in &nodes {
                if a.name != b.name {
                    a.trust(b);
                }
            }
        }
        // A port each, kept across restarts, then the peers (the relays).
        for node in nodes.iter_mut() {
            node.spawn();
            node.pin_listen();
        }
        let addrs: Vec<std::net::SocketAddr> = nodes
            .iter()
            .map(|n| n.listen_addr().parse().expect("listen address"))
            .collect();
        for node in nodes.iter_mut() {
            node.stop();
        }
        let mut links = Vec::new();
        let mut profiles = Vec::new();
        for (k, &(a, b)) in LINKS.iter().enumerate() {
            let profile = Profile::lossy(
                Duration::from_millis(rng.gen_range(40..=120)),
                rng.gen_range(0.01..=0.03),
            );
            let relay = Relay::start(addrs[b], profile.clone(), seed ^ (k as u64 + 1));
            nodes[a].add_peer(&relay.addr().to_string());
            links.push((a, b, relay));
            profiles.push(profile);
        }
        for node in nodes.iter_mut() {
            node.spawn();
        }
        let mesh = Mesh {
            nodes,
            links,
            profiles,
        };
        assert!(
            mesh.wait_linked(Duration::from_secs(120)),
            "the mesh did not form within 120 s"
        );
        mesh
    }

    fn degree(&self, i: usize) -> usize {
        self.links
            .iter()
            .filter(|(a, b, _)| *a == i || *b == i)
            .count()
    }

    /// Polls until every link is up at both ends; false past `limit`.
    fn wait_linked(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let all = self
                .nodes
                .iter()
                .enumerate()
                .all(|(i, node)| connected(node) >= self.degree(i));
            if all {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The playbook and its script, in the node's `playbooks/`.
fn install_playbook(node: &TestNode) {
    let dir = node.dir.path().join("playbooks");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("playbooks/bin");
    let script = bin.join("record");
    // The values arrive as arguments and environment and are only quoted
    // expansions here: nothing is parsed as shell text. One short printf
    // is one write to an O_APPEND file.
    std::fs::write(
        &script,
        "#!/bin/sh\nprintf '%s %s %s %s\\n' \"$CER_RUN_KEY\" \"$1\" \"$2\" \"$PPID\" >> \"$SOAK_LOG\"\n",
    )
    .expect("record script");
    let mut permissions = std::fs::metadata(&script).expect("script").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&script, permissions).expect("chmod");
    let yaml = format!(
        "name: {PLAYBOOK}\ndescription: Records every run of the soak's playbook\non: [incident.filed, incident.received, incident.updated]\nactions:\n  - exec:\n      argv: [\"./bin/record\", \"{{event}}\", \"{{incident.id}}\"]\n      timeout: 30s\n      env:\n        SOAK_LOG: {}\n",
        runs_log(node).display()
    );
    std::fs::write(dir.join("soak.yaml"), yaml).expect("playbook");
}

fn runs_log(node: &TestNode) -> PathBuf {
    node.dir.path().join("runs.log")
}

fn connected(node: &TestNode) -> usize {
    let out = node.cerctl(&["--json", "peers"]);
    if out.code != 0 {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|p| {
            p["peers"]
                .as_array()
                .map(|p| p.iter().filter(|p| p["connected"] == true).count())
        })
        .unwrap_or(0)
}

/// One acknowledged filing: the incident and the envelope cerd answered.
#[derive(Debug, Clone)]
struct Ack {
    incident: String,
    envelope: String,
    update: bool,
}

#[derive(Debug, Default)]
struct Tally {
    acks: Vec<Ack>,
    /// Requests not acknowledged (the node was down or killed mid-way).
    refused: u64,
}

/// Files or updates at `socket` every 200–500 ms until `stop`.
fn write(i: usize, socket: &Path, stop: &AtomicBool, seed: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed ^ (0x0077_7700 + i as u64));
    let mut tally = Tally::default();
    let socket = socket.display().to_string();
    let mut own: Vec<String> = Vec::new();
    let mut k = 0u64;
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(200..=500)));
        k += 1;
        let update = !own.is_empty() && rng.gen_bool(0.2);
        let mut argv = vec!["cerctl", "--socket", socket.as_str(), "--json", "incident"];
        let (id, note, title);
        if update {
            id = own[rng.gen_range(0..own.len())].clone();
            note = format!("soak note {k}");
            argv.extend(["update", id.as_str(), "--note", note.as_str()]);
        } else {
            title = format!("soak {} {k}", NAMES[i]);
            argv.extend(["file", "--title", title.as_str(), "--severity", "low"]);
            argv.extend(["--tlp", "green", "--class", "test/test"]);
        }
        let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
        let out = cerctl_raw(&argv, "");
        let filed = (out.code == 0)
            .then(|| serde_json::from_str::<serde_json::Value>(&out.stdout).ok())
            .flatten();
        let ack = filed.and_then(|f| {
            Some(Ack {
                incident: f["incident"].as_str()?.to_owned(),
                envelope: f["envelope"].as_str()?.to_owned(),
                update,
            })
        });
        match ack {
            Some(ack) => {
                if !update {
                    own.push(ack.incident.clone());
                }
                tally.acks.push(ack);
            }
            None => tally.refused += 1,
        }
    }
    tally
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

enum Fault {
    Kill,
    LinkCut,
    NodeCut,
}

/// What happened during the run, for the report.
#[derive(Default)]
struct Faults {
    kills: Vec<usize>,
    link_cuts: usize,
    node_cuts: usize,
    cut_secs: u64,
}

/// Runs the writers, the sampler and the faults for `length`, then heals
/// and checks. True when every invariant held.
fn soak(mesh: &mut Mesh, rng: &mut StdRng, seed: u64, length: Duration) -> bool {
    let sockets: Vec<PathBuf> = mesh.nodes.iter().map(TestNode::socket).collect();
    let configs: Vec<PathBuf> = mesh.nodes.iter().map(TestNode::config_path).collect();
    let stop_writers = AtomicBool::new(false);
    let sampler = Arc::new(Sampler::new(configs));
    let started = Instant::now();
    let sampling = std::thread::spawn({
        let sampler = sampler.clone();
        move || sampler.run(started)
    });
    let mut faults = Faults::default();
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        // Stops the writers however this scope ends, a panic included, so
        // that the scope's join cannot wait on them for ever.
        let _stop = StopOnDrop(&stop_writers);
        let writers: Vec<_> = sockets
            .iter()
            .enumerate()
            .map(|(i, socket)| {
                let stop = &stop_writers;
                s.spawn(move || write(i, socket, stop, seed))
            })
            .collect();
        inject(mesh, rng, started + length, &mut faults);
        stop_writers.store(true, Ordering::SeqCst);
        writers
            .into_iter()
            .map(|w| w.join().expect("writer"))
            .collect()
    });
    let ran = started.elapsed();
    for (_, _, relay) in &mesh.links {
        relay.heal();
    }
    let healed = Instant::now();
    println!(
        "run: {:.0} s; {} kills ({}), {} link cuts, {} node cuts ({} s cut in all)",
        ran.as_secs_f64(),
        faults.kills.len(),
        (0..NAMES.len())
            .map(|i| format!(
                "{} {}",
                NAMES[i],
                faults.kills.iter().filter(|v| **v == i).count()
            ))
            .collect::<Vec<_>>()
            .join(", "),
        faults.link_cuts,
        faults.node_cuts,
        faults.cut_secs
    );
    let acks: usize = tallies.iter().map(|t| t.acks.len()).sum();
    for (i, tally) in tallies.iter().enumerate() {
        let updates = tally.acks.iter().filter(|a| a.update).count();
        println!(
            "  {}: {} acknowledged ({} incidents, {updates} updates), {} not acknowledged",
            NAMES[i],
            tally.acks.len(),
            tally.acks.len() - updates,
            tally.refused
        );
    }
    let lost: u64 = mesh.links.iter().map(|(_, _, r)| r.stats().lost()).sum();
    let forwarded: u64 = mesh
        .links
        .iter()
        .map(|(_, _, r)| r.stats().forwarded())
        .sum();
    println!("  filings acknowledged: {acks}; relays forwarded {forwarded} datagrams, lost or cut {lost}");
    println!();

    let converged = converge(mesh, healed);
    let mut ok = converged.is_some();
    if let Some(sets) = converged {
        ok &= check(mesh, &sets, &tallies);
    }
    sampler.stop();
    let _ = sampling.join();
    println!();
    resources::report(&sampler.samples(), ran, NAMES.as_slice());
    println!();
    println!("{}", if ok { "soak: PASSED" } else { "soak: FAILED" });
    ok
}

/// Faults one after another until `until`: a kill -9 and restart, or a
/// link or node cut and heal.
fn inject(mesh: &mut Mesh, rng: &mut StdRng, until: Instant, faults: &mut Faults) {
    let t0 = Instant::now();
    let at = || format!("{:>6.1} s", t0.elapsed().as_secs_f64());
    let mut kinds = Vec::new();
    loop {
        let pause = Duration::from_secs(rng.gen_range(5..=20));
        if Instant::now() + pause >= until {
            // The writers go on until the end.
            std::thread::sleep(until.saturating_duration_since(Instant::now()));
            break;
        }
        std::thread::sleep(pause);
        let left = until.saturating_duration_since(Instant::now());
        let hold = Duration::from_secs(rng.gen_range(3..=25)).min(left);
        if kinds.is_empty() {
            // Rounds of the three kinds in a random order: a short run
            // sees each of them.
            kinds = vec![Fault::Kill, Fault::LinkCut, Fault::NodeCut];
            kinds.shuffle(rng);
        }
        match kinds.pop().expect("a fault") {
            Fault::Kill => {
                let victim = rng.gen_range(0..NAMES.len());
                let down = Duration::from_millis(rng.gen_range(1000..=6000));
                mesh.nodes[victim].kill9();
                println!(
                    "{}  kill -9 {}, down {} ms",
                    at(),
                    NAMES[victim],
                    down.as_millis()
                );
                std::thread::sleep(down);
                mesh.nodes[victim].spawn();
                faults.kills.push(victim);
            }
            Fault::LinkCut => {
                let k = rng.gen_range(0..mesh.links.len());
                let (a, b, relay) = &mesh.links[k];
                println!(
                    "{}  cut {} -> {} for {} s",
                    at(),
                    NAMES[*a],
                    NAMES[*b],
                    hold.as_secs()
                );
                relay.partition();
                std::thread::sleep(hold);
                relay.heal();
                faults.link_cuts += 1;
                faults.cut_secs += hold.as_secs();
            }
            Fault::NodeCut => {
                let n = rng.gen_range(0..NAMES.len());
                println!(
                    "{}  cut {} from everyone ({} links) for {} s",
                    at(),
                    NAMES[n],
                    mesh.degree(n),
                    hold.as_secs()
                );
                let cut: Vec<&Relay> = mesh
                    .links
                    .iter()
                    .filter(|(a, b, _)| *a == n || *b == n)
                    .map(|(_, _, r)| r)
                    .collect();
                for relay in &cut {
                    relay.partition();
                }
                std::thread::sleep(hold);
                for relay in &cut {
                    relay.heal();
                }
                faults.node_cuts += 1;
                faults.cut_secs += hold.as_secs();
            }
        }
    }
    println!("{}  end of the run: faults and writers stop", at());
}

/// Every envelope a node holds: id -> (author, seq, kind, subject).
type EnvelopeSet = BTreeMap<String, (String, u64, String, String)>;

fn envelope_set(node: &TestNode) -> Option<EnvelopeSet> {
    let out = node.cerctl(&["--json", "export", "--format", "envelopes"]);
    if out.code != 0 {
        return None;
    }
    let export: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    let mut set = EnvelopeSet::new();
    for e in export["envelopes"].as_array()? {
        let doc: serde_json::Value = serde_json::from_str(e["json"].as_str()?).ok()?;
        set.insert(
            e["id"].as_str()?.to_owned(),
            (
                doc["author"].as_str()?.to_owned(),
                doc["seq"].as_u64()?,
                doc["kind"].as_str()?.to_owned(),
                doc["subject"].as_str()?.to_owned(),
            ),
        );
    }
    Some(set)
}

/// Polls until every node holds the same envelopes and has run its
/// playbooks on all of them; their sets, or None past the limit.
fn converge(mesh: &Mesh, healed: Instant) -> Option<Vec<EnvelopeSet>> {
    let deadline = healed + CONVERGE_LIMIT;
    loop {
        let statuses: Vec<Option<serde_json::Value>> = mesh
            .nodes
            .iter()
            .map(|n| {
                let out = n.cerctl(&["--json", "status"]);
                (out.code == 0)
                    .then(|| serde_json::from_str(&out.stdout).ok())
                    .flatten()
            })
            .collect();
        let figure = |s: &Option<serde_json::Value>, key: &str| {
            s.as_ref().and_then(|s| s[key].as_u64()).unwrap_or(0)
        };
        let counts: Vec<u64> = statuses.iter().map(|s| figure(s, "envelopes")).collect();
        let idle = statuses
            .iter()
            .all(|s| s.is_some() && figure(s, "playbook_cursor") == figure(s, "events"));
        let last = format!(
            "envelopes {counts:?}, playbooks behind by {:?}",
            statuses
                .iter()
                .map(|s| figure(s, "events").saturating_sub(figure(s, "playbook_cursor")))
                .collect::<Vec<_>>()
        );
        if idle && counts.windows(2).all(|w| w[0] == w[1]) {
            let sets: Vec<Option<EnvelopeSet>> = mesh.nodes.iter().map(envelope_set).collect();
            if sets.iter().all(|s| s.is_some() && *s == sets[0]) {
                println!(
                    "converged {:.2} s after the final heal: {} envelopes on every node, every playbook event handled",
                    healed.elapsed().as_secs_f64(),
                    counts[0]
                );
                return Some(sets.into_iter().flatten().collect());
            }
        }
        if Instant::now() > deadline {
            println!(
                "FAILED: not converged {} s after the final heal ({last})",
                CONVERGE_LIMIT.as_secs()
            );
            return None;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The invariants on converged nodes; prints each and returns whether all
/// held.
fn check(mesh: &Mesh, sets: &[EnvelopeSet], tallies: &[Tally]) -> bool {
    let mut ok = true;
    let reference = &sets[0];

    // Each author's chain whole from 1, nothing twice.
    let mut chains: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (author, seq, _, _) in reference.values() {
        chains.entry(author).or_default().push(*seq);
    }
    let whole = chains.values_mut().all(|seqs| {
        seqs.sort_unstable();
        seqs.iter().copied().eq(1..=seqs.len() as u64)
    });
    let tips: Vec<usize> = chains.values().map(Vec::len).collect();
    println!(
        "envelope sets: identical on all {} nodes ({} envelopes; chain lengths per author {tips:?}), chains whole: {}",
        sets.len(),
        reference.len(),
        verdict(whole)
    );
    ok &= whole;

    let equivocations: Vec<u64> = mesh
        .nodes
        .iter()
        .map(|n| n.status()["equivocations"].as_u64().unwrap_or(u64::MAX))
        .collect();
    let none = equivocations.iter().all(|e| *e == 0);
    println!(
        "equivocations per node {equivocations:?}: {}",
        verdict(none)
    );
    ok &= none;

    let acks: Vec<&Ack> = tallies.iter().flat_map(|t| &t.acks).collect();
    let missing: Vec<&&Ack> = acks
        .iter()
        .filter(|a| {
            reference
                .get(&a.envelope)
                .is_none_or(|(_, _, _, subject)| *subject != a.incident)
        })
        .collect();
    println!(
        "acknowledged filings on every node: {} of {}: {}",
        acks.len() - missing.len(),
        acks.len(),
        verdict(missing.is_empty())
    );
    for a in missing.iter().take(10) {
        println!(
            "    lost: envelope {} of incident {}",
            a.envelope, a.incident
        );
    }
    ok &= missing.is_empty();

    println!("playbook runs (one per incident.filed / incident.received / incident.updated event on each node):");
    for node in &mesh.nodes {
        ok &= check_runs(node, reference);
    }
    ok
}

/// The run keys `node`'s playbook must have run, once each.
fn expected_runs(own: &str, set: &EnvelopeSet) -> BTreeSet<String> {
    set.iter()
        .filter_map(|(id, (author, _, kind, subject))| {
            let event = match kind.as_str() {
                "incident" if author == own => "incident.filed",
                "incident" => "incident.received",
                "update" => "incident.updated",
                _ => return None,
            };
            Some(format!("{PLAYBOOK}:{event}:{subject}:{id}:0"))
        })
        .collect()
}

fn check_runs(node: &TestNode, set: &EnvelopeSet) -> bool {
    let expected = expected_runs(&node.fingerprint(), set);
    let text = std::fs::read_to_string(runs_log(node)).unwrap_or_default();
    // key -> the cerd pids that ran it
    let mut ran: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut malformed = 0;
    for line in text.lines() {
        match line.split(' ').collect::<Vec<_>>()[..] {
            [key, _event, _incident, ppid] => ran.entry(key).or_default().push(ppid),
            _ => malformed += 1,
        }
    }
    let missed = expected
        .iter()
        .filter(|k| !ran.contains_key(k.as_str()))
        .count();
    let unexpected = ran.keys().filter(|k| !expected.contains(**k)).count();
    let mut rerun_after_kill = 0;
    let mut twice = 0;
    for pids in ran.values().filter(|p| p.len() > 1) {
        let distinct: BTreeSet<&&str> = pids.iter().collect();
        if distinct.len() == pids.len() {
            rerun_after_kill += 1;
        } else {
            twice += 1;
        }
    }
    let good = missed == 0 && unexpected == 0 && twice == 0 && malformed == 0;
    println!(
        "  {}: {} events, {} runs logged: {missed} missed, {unexpected} not an event, {twice} run twice by one process, {rerun_after_kill} run again after a kill -9 (same run key, allowed): {}",
        node.name,
        expected.len(),
        text.lines().count(),
        verdict(good)
    );
    if malformed > 0 {
        println!(
            "    {malformed} malformed lines in {}",
            runs_log(node).display()
        );
    }
    for key in expected
        .iter()
        .filter(|k| !ran.contains_key(k.as_str()))
        .take(5)
    {
        println!("    missed: {key}");
    }
    for key in ran.keys().filter(|k| !expected.contains(**k)).take(5) {
        println!("    not an event: {key}");
    }
    good
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "FAILED"
    }
}
