//! The continental mesh: 60 full daemons in this process, linked as a
//! random geometric graph (degree 3-5), every link real QUIC through its
//! own impairing UDP relay (`tests/relay.rs`), with real signatures and
//! sled stores. Prints figures beside their targets; asserts nothing about
//! time.
//!
//! ```text
//! cargo build --release --bins
//! cargo bench -p cerd --bench continental
//! ```
//!
//! Link profiles. The figures are round-trip times: the relay delays each
//! datagram by half of them in each direction, and the loss applies to each
//! direction on its own.
//!
//! | profile     | RTT    | loss | bandwidth      |
//! |-------------|--------|------|----------------|
//! | fibre       | 20 ms  | 0 %  | unlimited      |
//! | terrestrial | 80 ms  | 1 %  | unlimited      |
//! | long-haul   | 250 ms | 2 %  | unlimited      |
//! | satellite   | 600 ms | 5 %  | 2 Mbit/s each way, one RTT of queue |
//!
//! The shortest two fifths of the links are fibre, the next third
//! terrestrial, the longest long-haul; then a tenth of all links, picked at
//! random, become satellite.
//!
//! (a) propagation from filing to all 60 nodes, incidents filed one after
//!     another at random nodes;
//! (b) copies received per node per incident during (a), from the peer
//!     counters `cerctl peers` shows (stored + duplicates dropped);
//! (c) a node offline for "a week" (50,000 envelopes filed meanwhile)
//!     catching up over its satellite link alone: time, rate, and bytes on
//!     the wire (relay counters, both directions) against the envelopes'
//!     own; then the target case on its own: one pair of nodes through one
//!     relay at 120 ms RTT and 5 % loss, 50,000 envelopes;
//! (d) the delay of a fresh incident filed at another node while that
//!     catch-up runs on the same link;
//! (e) a partition heal: all of one node's links cut for longer than the
//!     QUIC idle timeout, incidents filed elsewhere during the cut, then
//!     the links healed: time until the node holds them all.
//!
//! `CERD_BENCH_QUICK=1` shrinks the sizes for a smoke run (60 nodes
//! still); `CERD_BENCH_ONLY=<letters>` runs some sections: `ab` form the
//! mesh and propagate, `cd` run the week in the mesh, `C` the 120 ms pair
//! alone, `e` the partition. `CERD_BENCH_SEED` changes the graph.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cer_proto::api::{ExportFormat, ExportQuery, FileIncident};
use cer_proto::model::Severity;
use cerd::local::{self, LocalNode};
use cerd::{Config, Daemon, Node};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use uuid::Uuid;

mod common;
use common::{c2_incident, ms, quick, sibling_binary, verdict, wanted, Latency, MIB};

#[path = "../../tests/relay.rs"]
mod relay;
use relay::{Profile, Relay};

const NODES: usize = 60;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    common::banner("cerd continental mesh: 60 daemons in one process, every link QUIC through an impairing relay");
    let seed = std::env::var("CERD_BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee_u64);
    let week = if quick() { 5_000 } else { 50_000 };
    if wanted('a') || wanted('b') || wanted('c') || wanted('d') || wanted('e') {
        rt.block_on(continental(seed, week));
    }
    if wanted('C') {
        rt.block_on(pair_catch_up(week));
    }
}

/// The four kinds of link in the issue's model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Fibre,
    Terrestrial,
    LongHaul,
    Satellite,
}

impl Kind {
    fn profile(self) -> Profile {
        match self {
            Kind::Fibre => Profile::lossy(Duration::from_millis(20), 0.0),
            Kind::Terrestrial => Profile::lossy(Duration::from_millis(80), 0.01),
            Kind::LongHaul => Profile::lossy(Duration::from_millis(250), 0.02),
            Kind::Satellite => Profile {
                bandwidth: Some(SATELLITE_BYTES_PER_S),
                // One round trip of queue at the link's rate.
                queue_bytes: (SATELLITE_BYTES_PER_S * 6 / 10) as usize,
                ..Profile::lossy(Duration::from_millis(600), 0.05)
            },
        }
    }
}

/// How long (d) waits for the fresh incident.
const FRESH_LIMIT: Duration = Duration::from_secs(120);

/// 2 Mbit/s.
const SATELLITE_BYTES_PER_S: u64 = 2_000_000 / 8;

/// One link: `dialer` dials the relay in front of `listener`.
struct Link {
    dialer: usize,
    listener: usize,
    kind: Kind,
    relay: Relay,
}

struct Mesh {
    _root: tempfile::TempDir,
    configs: Vec<Config>,
    daemons: Vec<Option<Daemon>>,
    links: Vec<Link>,
}

impl Mesh {
    fn node(&self, i: usize) -> &Arc<Node> {
        self.daemons[i].as_ref().expect("node running").node()
    }

    /// The links that touch node `i`.
    fn links_of(&self, i: usize) -> impl Iterator<Item = &Link> {
        self.links
            .iter()
            .filter(move |l| l.dialer == i || l.listener == i)
    }

    fn degree(&self, i: usize) -> usize {
        self.links_of(i).count()
    }

    /// Waits until node `i` has `want` connected peers.
    async fn wait_connected(&self, i: usize, want: usize, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let connected = self
                .node(i)
                .peers()
                .peers
                .iter()
                .filter(|p| p.connected)
                .count();
            if connected >= want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    async fn shutdown(self) {
        for d in self.daemons.into_iter().flatten() {
            d.shutdown().await.expect("shutdown");
        }
    }
}

/// A random geometric graph on the unit square: node positions from
/// `seed`; the pairs taken shortest first while either end has fewer than
/// three links and neither has five; then the closest pair between two
/// components joined until the graph is connected. Returns the edges
/// (lower index first, the dialer) with their lengths.
fn geometric_graph(n: usize, rng: &mut StdRng) -> Vec<(usize, usize, f64)> {
    let points: Vec<(f64, f64)> = (0..n).map(|_| (rng.gen(), rng.gen())).collect();
    let dist = |a: usize, b: usize| {
        let (dx, dy) = (points[a].0 - points[b].0, points[a].1 - points[b].1);
        (dx * dx + dy * dy).sqrt()
    };
    let mut pairs: Vec<(usize, usize, f64)> = (0..n)
        .flat_map(|a| ((a + 1)..n).map(move |b| (a, b)))
        .map(|(a, b)| (a, b, dist(a, b)))
        .collect();
    pairs.sort_by(|x, y| x.2.total_cmp(&y.2));
    let mut degree = vec![0usize; n];
    let mut edges = Vec::new();
    for &(a, b, d) in &pairs {
        if (degree[a] < 3 || degree[b] < 3) && degree[a] < 5 && degree[b] < 5 {
            edges.push((a, b, d));
            degree[a] += 1;
            degree[b] += 1;
        }
    }
    loop {
        // Components by repeated relabelling: small enough not to matter.
        let mut component: Vec<usize> = (0..n).collect();
        let mut changed = true;
        while changed {
            changed = false;
            for &(a, b, _) in &edges {
                let low = component[a].min(component[b]);
                if component[a] != low || component[b] != low {
                    component[a] = low;
                    component[b] = low;
                    changed = true;
                }
            }
        }
        if component.iter().all(|c| *c == component[0]) {
            return edges;
        }
        let join = pairs
            .iter()
            .find(|(a, b, _)| component[*a] != component[*b] && degree[*a] < 5 && degree[*b] < 5)
            .copied()
            .expect("a pair joins two components");
        degree[join.0] += 1;
        degree[join.1] += 1;
        edges.push(join);
    }
}

/// Kinds by length (two fifths fibre, a third terrestrial, the rest
/// long-haul), then a tenth of the links at random made satellite.
fn assign_kinds(edges: &[(usize, usize, f64)], rng: &mut StdRng) -> Vec<Kind> {
    let mut by_length: Vec<usize> = (0..edges.len()).collect();
    by_length.sort_by(|x, y| edges[*x].2.total_cmp(&edges[*y].2));
    let mut kinds = vec![Kind::LongHaul; edges.len()];
    for (rank, e) in by_length.iter().enumerate() {
        let share = rank as f64 / edges.len() as f64;
        kinds[*e] = if share < 0.40 {
            Kind::Fibre
        } else if share < 0.75 {
            Kind::Terrestrial
        } else {
            Kind::LongHaul
        };
    }
    let mut all: Vec<usize> = (0..edges.len()).collect();
    all.shuffle(rng);
    for e in all.into_iter().take((edges.len() + 5) / 10) {
        kinds[e] = Kind::Satellite;
    }
    kinds
}

/// A node's configuration: a small sled cache (60 stores in one process),
/// dialling `peers` (relay addresses).
fn config(node: &LocalNode, peers: &[SocketAddr]) -> Config {
    let mut text = format!(
        "name = \"{}\"\ndata_dir = \"data\"\nlisten = \"127.0.0.1:{}\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\nanti_entropy_interval = \"10s\"\nstore_cache_mib = 8\n",
        node.name, node.port
    );
    for addr in peers {
        text.push_str(&format!("\n[[peer]]\naddr = \"{addr}\"\n"));
    }
    std::fs::create_dir_all(node.dir.join("playbooks")).expect("playbooks dir");
    let path = node.dir.join("cerd.toml");
    std::fs::write(&path, text).expect("config");
    Config::load(&path).expect("valid config")
}

async fn start_mesh(seed: u64) -> Mesh {
    let mut rng = StdRng::seed_from_u64(seed);
    let edges = geometric_graph(NODES, &mut rng);
    let kinds = assign_kinds(&edges, &mut rng);
    let root = tempfile::Builder::new()
        .prefix("cerm")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let names: Vec<String> = (0..NODES).map(|i| format!("CERT-{i:02}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut nodes = local::prepare(root.path(), &names).expect("prepare nodes");
    // The nodes' ports are held while the relays take theirs (ephemeral
    // ports, which could otherwise land on a node's); a port taken since
    // it was picked is replaced.
    let held: Vec<std::net::UdpSocket> = nodes
        .iter_mut()
        .map(|node| {
            std::net::UdpSocket::bind(("127.0.0.1", node.port)).unwrap_or_else(|_| {
                let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a free port");
                node.port = socket.local_addr().expect("bound").port();
                socket
            })
        })
        .collect();
    let mut links = Vec::new();
    for (k, (&(a, b, _), kind)) in edges.iter().zip(&kinds).enumerate() {
        let target: SocketAddr = format!("127.0.0.1:{}", nodes[b].port)
            .parse()
            .expect("address");
        links.push(Link {
            dialer: a,
            listener: b,
            kind: *kind,
            relay: Relay::start(target, kind.profile(), seed ^ (k as u64 + 1)),
        });
    }
    let mut configs = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let peers: Vec<SocketAddr> = links
            .iter()
            .filter(|l| l.dialer == i)
            .map(|l| l.relay.addr())
            .collect();
        configs.push(config(node, &peers));
    }
    drop(held);
    let mut daemons = Vec::new();
    for c in &configs {
        daemons.push(Some(Daemon::start(c.clone()).await.expect("daemon starts")));
    }
    Mesh {
        _root: root,
        configs,
        daemons,
        links,
    }
}

async fn continental(seed: u64, week: usize) {
    let started = Instant::now();
    let mesh = start_mesh(seed).await;
    let degrees: Vec<usize> = (0..NODES).map(|i| mesh.degree(i)).collect();
    let count = |k: Kind| mesh.links.iter().filter(|l| l.kind == k).count();
    println!(
        "graph: seed {seed:#x}, {NODES} nodes, {} links, degree {}-{} (mean {:.2}); {} fibre, {} terrestrial, {} long-haul, {} satellite",
        mesh.links.len(),
        degrees.iter().min().unwrap_or(&0),
        degrees.iter().max().unwrap_or(&0),
        degrees.iter().sum::<usize>() as f64 / NODES as f64,
        count(Kind::Fibre),
        count(Kind::Terrestrial),
        count(Kind::LongHaul),
        count(Kind::Satellite)
    );
    println!("links (RTT, loss each way): fibre 20 ms 0 %, terrestrial 80 ms 1 %, long-haul 250 ms 2 %, satellite 600 ms 5 % 2 Mbit/s");
    for (i, degree) in degrees.iter().enumerate() {
        assert!(
            mesh.wait_connected(i, *degree, Duration::from_secs(120))
                .await,
            "node {i} did not connect to its {degree} peers"
        );
    }
    println!(
        "mesh formed in {:.1} s (every link connected and authenticated)",
        started.elapsed().as_secs_f64()
    );
    println!();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
    if wanted('a') || wanted('b') {
        propagation(&mesh, if quick() { 15 } else { 60 }, &mut rng).await;
    }
    let mut mesh = mesh;
    if wanted('c') || wanted('d') {
        mesh = offline_week(mesh, week, &mut rng).await;
    }
    if wanted('e') {
        partition_heal(&mesh, &mut rng).await;
    }
    mesh.shutdown().await;
}

/// Waits until `node` holds incident `subject`; returns when it first
/// saw it, or `None` past `deadline`. Wakes on each durable batch.
async fn arrival(node: Arc<Node>, subject: Uuid, deadline: Instant) -> Option<Instant> {
    let mut durable = node.store().durable_events();
    loop {
        if node.store().incident(subject).ok().flatten().is_some() {
            return Some(Instant::now());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(20)), durable.changed()).await;
    }
}

/// Copies received (stored + duplicates) summed over every node's peers.
fn copies(mesh: &Mesh) -> (u64, u64) {
    let mut received = 0;
    let mut duplicates = 0;
    for d in mesh.daemons.iter().flatten() {
        for p in d.node().peers().peers {
            received += p.envelopes_received;
            duplicates += p.duplicates;
        }
    }
    (received, duplicates)
}

async fn propagation(mesh: &Mesh, incidents: usize, rng: &mut StdRng) {
    println!("(a) propagation: {incidents} incidents, one after another, each filed at a random node; time from the filing call until it is durable at every other node");
    let before = copies(mesh);
    let mut to_all = Vec::new();
    let mut per_node = Vec::new();
    let mut missing = 0;
    for k in 0..incidents {
        let origin = rng.gen_range(0..NODES);
        let filed_at = Instant::now();
        let filed = mesh
            .node(origin)
            .file(c2_incident(format!("continental {k}")))
            .await
            .expect("file");
        let deadline = Instant::now() + Duration::from_secs(30);
        let waits: Vec<_> = (0..NODES)
            .filter(|i| *i != origin)
            .map(|i| tokio::spawn(arrival(mesh.node(i).clone(), filed.incident, deadline)))
            .collect();
        let mut worst = Duration::ZERO;
        for w in waits {
            match w.await.expect("waiter") {
                Some(at) => {
                    let d = at.saturating_duration_since(filed_at);
                    worst = worst.max(d);
                    per_node.push(d);
                }
                None => missing += 1,
            }
        }
        to_all.push(worst);
    }
    if missing > 0 {
        println!("    {missing} arrivals missed the 30 s deadline (not in the figures)");
    }
    let all = Latency::of(&mut to_all).expect("samples");
    println!(
        "    filing -> all {NODES} nodes: p50 {:.0} ms   p90 {:.0} ms   p99 {:.0} ms   max {:.0} ms   target p99 <= 3 s: {}",
        ms(all.p50),
        ms(all.p90),
        ms(all.p99),
        ms(all.max),
        verdict(all.p99 <= Duration::from_secs(3) && missing == 0)
    );
    let each = Latency::of(&mut per_node).expect("samples");
    println!(
        "    filing -> each node:      p50 {:.0} ms   p90 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        ms(each.p50),
        ms(each.p90),
        ms(each.p99),
        ms(each.max)
    );

    // Duplicates still in flight on the slow links: wait until the
    // counters have not moved for three seconds (at most 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = copies(mesh);
    let mut still_since = Instant::now();
    while Instant::now() < deadline && still_since.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = copies(mesh);
        if now != last {
            last = now;
            still_since = Instant::now();
        }
    }
    let received = last.0 - before.0;
    let duplicates = last.1 - before.1;
    let per = |x: u64| x as f64 / (incidents * (NODES - 1)) as f64;
    let total = per(received + duplicates);
    println!(
        "(b) copies received per node per incident: {total:.2} ({:.2} stored + {:.2} duplicates dropped on arrival)   target <= 1.5: {}",
        per(received),
        per(duplicates),
        verdict(total <= 1.5)
    );
    println!();
}

/// The envelopes' own bytes (JSON + raw signature) as `node` exports them.
fn own_bytes(node: &Node) -> usize {
    let mut bytes = 0usize;
    node.export_each(
        &ExportQuery {
            format: ExportFormat::Envelopes,
            incident: None,
        },
        &mut |e| {
            bytes += e.json.len() + base64_len(&e.sig);
            true
        },
    )
    .expect("export");
    bytes
}

fn base64_len(s: &str) -> usize {
    s.len() / 4 * 3 - s.bytes().rev().take_while(|b| *b == b'=').count()
}

/// Files `total` incidents at `node`, 64 at a time.
async fn file_many(node: &Arc<Node>, total: usize, label: &str) {
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let node = node.clone();
        let title = format!("{label} {k}");
        tasks.spawn(async move { node.file(c2_incident(title)).await.expect("file") });
        if tasks.len() >= 64 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
}

/// Waits until `node` holds at least `envelopes`; false past `limit`.
async fn reaches(node: &Node, envelopes: u64, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut durable = node.store().durable_events();
    while node.store().counts().envelopes < envelopes {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), durable.changed()).await;
    }
    true
}

/// (c) and (d): the node at the dialling end of a satellite link goes
/// offline; `week` incidents are filed at its satellite neighbour and
/// flood the rest of the mesh; the node comes back with its other links
/// cut, so it catches up over the satellite link alone, and a fresh
/// critical incident is filed at a third node meanwhile.
async fn offline_week(mut mesh: Mesh, week: usize, rng: &mut StdRng) -> Mesh {
    let sat = mesh
        .links
        .iter()
        .position(|l| l.kind == Kind::Satellite)
        .expect("a satellite link");
    let (w, s) = (mesh.links[sat].dialer, mesh.links[sat].listener);
    println!("(c) a week offline: node {w} is shut down; {week} incidents are filed at node {s}, its neighbour over a satellite link, and flood the mesh; node {w} then restarts with only that link up");
    let daemon = mesh.daemons[w].take().expect("running");
    daemon.shutdown().await.expect("shutdown");
    let held_before = mesh.node(s).store().counts().envelopes;
    let own_before = own_bytes(mesh.node(s));
    let filing = Instant::now();
    file_many(mesh.node(s), week, "week").await;
    let filed_in = filing.elapsed();
    let target = held_before + week as u64;
    let mut spread = true;
    for i in (0..NODES).filter(|i| *i != w) {
        spread &= reaches(mesh.node(i), target, Duration::from_secs(1800)).await;
    }
    println!(
        "    filed in {:.1} s; held by the other {} nodes after {:.1} s{}",
        filed_in.as_secs_f64(),
        NODES - 1,
        filing.elapsed().as_secs_f64(),
        if spread {
            ""
        } else {
            " (some never caught up)"
        }
    );
    let week_bytes = own_bytes(mesh.node(s)) - own_before;

    // Every other link of the returning node is cut, both ways.
    let others: Vec<usize> = (0..mesh.links.len())
        .filter(|k| *k != sat && (mesh.links[*k].dialer == w || mesh.links[*k].listener == w))
        .collect();
    for k in &others {
        mesh.links[*k].relay.partition();
    }
    let relay_before = mesh.links[sat].relay.stats();
    let restarted = Instant::now();
    mesh.daemons[w] = Some(
        Daemon::start(mesh.configs[w].clone())
            .await
            .expect("restarts"),
    );
    let returning = mesh.node(w).clone();
    let start_count = returning.store().counts().envelopes;
    let need = start_count + week as u64;

    // (d) Once the catch-up is under way, a fresh critical incident at a
    // node far from both ends.
    let fresh = tokio::spawn({
        let returning = returning.clone();
        let origin = loop {
            let o = rng.gen_range(0..NODES);
            if o != w && o != s {
                break o;
            }
        };
        let filer = mesh.node(origin).clone();
        let neighbour = mesh.node(s).clone();
        let after = start_count + (week as u64) / 5;
        async move {
            reaches(&returning, after, Duration::from_secs(3600)).await;
            let request = FileIncident {
                severity: Severity::Critical,
                ..c2_incident("fresh during the backfill".into())
            };
            let filed_at = Instant::now();
            let filed = filer.file(request).await.expect("file");
            let deadline = Instant::now() + FRESH_LIMIT;
            // When the satellite neighbour had it: the mesh's part of the
            // delay, apart from the satellite link's.
            let at_neighbour = tokio::spawn(arrival(neighbour, filed.incident, deadline));
            let got = arrival(returning.clone(), filed.incident, deadline).await;
            let backlog = returning.store().counts().envelopes;
            let at_neighbour = at_neighbour.await.ok().flatten();
            (
                origin,
                got.map(|at| at.saturating_duration_since(filed_at)),
                at_neighbour.map(|at| at.saturating_duration_since(filed_at)),
                backlog,
            )
        }
    });
    let caught = reaches(&returning, need, Duration::from_secs(3600)).await;
    let elapsed = restarted.elapsed();
    let relay_after = mesh.links[sat].relay.stats();
    let wire = (relay_after.to_target.forwarded_bytes + relay_after.to_client.forwarded_bytes)
        - (relay_before.to_target.forwarded_bytes + relay_before.to_client.forwarded_bytes);
    // Random loss and the bandwidth queue's overflow apart: the first is
    // the link model, the second is what the sender's pacing costs.
    let both = |s: relay::Stats, f: fn(&relay::Counts) -> u64| f(&s.to_target) + f(&s.to_client);
    let random = both(relay_after, |c| c.dropped) - both(relay_before, |c| c.dropped);
    let overflowed = both(relay_after, |c| c.overflowed) - both(relay_before, |c| c.overflowed);
    let datagrams = both(relay_after, |c| c.received) - both(relay_before, |c| c.received);
    let rate = week as f64 / elapsed.as_secs_f64();
    let bound = SATELLITE_BYTES_PER_S as f64 / (week_bytes as f64 / week as f64);
    println!(
        "    caught up {week} envelopes over the satellite link in {:.1} s: {rate:.0} envelopes/s{}   (the link's 2 Mbit/s carries at most {bound:.0} of these envelopes/s; time includes start, connect, authentication)",
        elapsed.as_secs_f64(),
        if caught { "" } else { " (NOT complete)" }
    );
    println!(
        "    bytes on the wire (UDP payload the relay forwarded, both directions) {:.1} MiB for {:.1} MiB of envelopes + signatures: {:.3}x   target <= 1.2x: {}   ({datagrams} datagrams, {random} lost at random and {overflowed} to the full 2 Mbit/s queue)",
        wire as f64 / MIB,
        week_bytes as f64 / MIB,
        wire as f64 / week_bytes as f64,
        verdict((wire as f64) <= 1.2 * week_bytes as f64)
    );
    // What the neighbour counts as sent to the returning node (queued on
    // the link, not necessarily on the wire yet) against what it stored.
    let w_fingerprint = returning.fingerprint().clone();
    let sent = mesh
        .node(s)
        .peers()
        .peers
        .into_iter()
        .find(|p| p.fingerprint.as_ref() == Some(&w_fingerprint))
        .map_or(0, |p| p.envelopes_sent);
    println!(
        "    node {s} counts {sent} envelopes sent to node {w}, which stored {week} of the week"
    );
    let (origin, delay, at_neighbour, backlog) = fresh.await.expect("fresh incident");
    let neighbour = at_neighbour.map_or_else(
        || "never".to_owned(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    );
    match delay {
        Some(d) => println!(
            "(d) a fresh critical incident filed at node {origin} during the backfill reached node {w} in {:.2} s   target <= 2 s: {}   (it reached node {s}, the other end of the satellite link, in {neighbour}; node {w} then held {} of {} envelopes)",
            d.as_secs_f64(),
            verdict(d <= Duration::from_secs(2)),
            backlog - start_count,
            week
        ),
        None => println!(
            "(d) the fresh incident had not reached node {w} {} s after its filing   target <= 2 s: MISSED",
            FRESH_LIMIT.as_secs()
        ),
    }
    for k in &others {
        mesh.links[*k].relay.heal();
    }
    let degree = mesh.degree(w);
    mesh.wait_connected(w, degree, Duration::from_secs(120))
        .await;
    println!();
    mesh
}

/// (e) Every link of one node cut for longer than the QUIC idle timeout;
/// incidents filed elsewhere meanwhile; time from the heal until the node
/// holds them all.
async fn partition_heal(mesh: &Mesh, rng: &mut StdRng) {
    let cut_for = Duration::from_secs(15);
    let p = rng.gen_range(0..NODES);
    let filed_count = 5;
    println!(
        "(e) partition heal: node {p}'s {} links cut for {} s (QUIC idle timeout 10 s), {filed_count} incidents filed at other nodes during the cut",
        mesh.degree(p),
        cut_for.as_secs()
    );
    for l in mesh.links_of(p) {
        l.relay.partition();
    }
    let cut = Instant::now();
    let mut subjects = Vec::new();
    for k in 0..filed_count {
        let origin = loop {
            let o = rng.gen_range(0..NODES);
            if o != p {
                break o;
            }
        };
        let filed = mesh
            .node(origin)
            .file(c2_incident(format!("during the cut {k}")))
            .await
            .expect("file");
        subjects.push(filed.incident);
    }
    tokio::time::sleep(cut_for.saturating_sub(cut.elapsed())).await;
    let held = subjects
        .iter()
        .filter(|s| mesh.node(p).store().incident(**s).ok().flatten().is_some())
        .count();
    assert_eq!(held, 0, "the cut node received incidents through a cut");
    for l in mesh.links_of(p) {
        l.relay.heal();
    }
    let healed = Instant::now();
    let deadline = healed + Duration::from_secs(120);
    let mut last = None;
    for subject in &subjects {
        match arrival(mesh.node(p).clone(), *subject, deadline).await {
            Some(at) => last = last.max(Some(at)),
            None => {
                last = None;
                break;
            }
        }
    }
    match last {
        Some(at) => {
            let took = at.saturating_duration_since(healed);
            println!(
                "    held all {filed_count} {:.2} s after the heal   target <= 5 s: {}",
                took.as_secs_f64(),
                verdict(took <= Duration::from_secs(5))
            );
        }
        None => println!("    not all held 120 s after the heal   target <= 5 s: MISSED"),
    }
    println!();
}

/// (c) alone, the target's case: one pair of nodes through one relay at
/// 120 ms RTT and 5 % random loss each way, `total` envelopes. The serving
/// node runs as a `cerd` process when the binaries are built (sled
/// serializes reads in a process behind any batch being applied, so a
/// sender in the receiver's process would wait for its writes).
async fn pair_catch_up(total: usize) {
    println!("(C) catch-up of {total} envelopes, one pair through one relay: 120 ms RTT, 5 % loss each way");
    let root = tempfile::Builder::new()
        .prefix("cerm")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let nodes = local::prepare(root.path(), &["CERT-OLD", "CERT-NEW"]).expect("prepare nodes");
    let first = Daemon::start(config(&nodes[0], &[]))
        .await
        .expect("first node");
    let a = first.node().clone();
    let filing = Instant::now();
    file_many(&a, total, "pair").await;
    println!(
        "    filed {total} at the first node in {:.1} s",
        filing.elapsed().as_secs_f64()
    );
    let week_bytes = own_bytes(&a);
    let served = match sibling_binary("cerd") {
        Some(cerd) => {
            drop(a);
            first.shutdown().await.expect("shutdown");
            let process = tokio::process::Command::new(cerd)
                .arg("--config")
                .arg(nodes[0].dir.join("cerd.toml"))
                .arg("run")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("cerd starts");
            wait_api(&nodes[0].dir).await;
            println!("    the first node serves from its own `cerd` process");
            Served::Process(process)
        }
        None => {
            println!("    the first node serves in this process (build the binaries to serve from a `cerd` process)");
            Served::InProcess(first)
        }
    };
    let target: SocketAddr = format!("127.0.0.1:{}", nodes[0].port)
        .parse()
        .expect("address");
    let relay = Relay::start(
        target,
        Profile::lossy(Duration::from_millis(120), 0.05),
        0x0c0c,
    );
    let started = Instant::now();
    let b = Daemon::start(config(&nodes[1], &[relay.addr()]))
        .await
        .expect("second node");
    let caught = reaches(b.node(), total as u64, Duration::from_secs(1800)).await;
    let elapsed = started.elapsed();
    let stats = relay.stats();
    let wire = stats.to_target.forwarded_bytes + stats.to_client.forwarded_bytes;
    let rate = total as f64 / elapsed.as_secs_f64();
    println!(
        "    caught up {total} envelopes, durable, in {:.1} s: {rate:.0} envelopes/s{}   target >= 1,000/s: {}   (includes start, connect, authentication)",
        elapsed.as_secs_f64(),
        if caught { "" } else { " (NOT complete)" },
        verdict(caught && rate >= 1_000.0)
    );
    println!(
        "    bytes on the wire (UDP payload the relay forwarded, both directions) {:.1} MiB for {:.1} MiB of envelopes + signatures: {:.3}x   target <= 1.2x: {}   ({} of {} datagrams lost)",
        wire as f64 / MIB,
        week_bytes as f64 / MIB,
        wire as f64 / week_bytes as f64,
        verdict((wire as f64) <= 1.2 * week_bytes as f64),
        stats.lost(),
        stats.to_target.received + stats.to_client.received
    );
    b.shutdown().await.expect("shutdown");
    match served {
        Served::Process(mut process) => {
            let _ = process.kill().await;
        }
        Served::InProcess(first) => first.shutdown().await.expect("shutdown"),
    }
    println!();
}

enum Served {
    Process(tokio::process::Child),
    InProcess(Daemon),
}

/// Waits until the daemon whose folder is `dir` answers on its API socket.
async fn wait_api(dir: &Path) {
    let config = Config::load(&dir.join("cerd.toml")).expect("valid config");
    let socket = config.api_socket;
    let started = Instant::now();
    loop {
        if let Ok(mut client) = cerctl::Client::connect(&socket).await {
            if client.status().await.is_ok() {
                return;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "cerd did not answer on {}",
            socket.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
