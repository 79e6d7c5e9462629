//! Federation benchmarks: real daemons (in one process, each with its own
//! store, keys, API socket and QUIC endpoint on loopback). Prints figures;
//! asserts nothing about time.
//!
//! ```text
//! cargo bench -p cerd --bench federation
//! ```
//!
//! (a) propagation latency from filing to arrival at every node, 16- and
//!     32-node meshes with random degree 3-4;
//! (b) catch-up of 100,000 missing envelopes: rate, bytes on the wire
//!     against the envelopes' own bytes, and the summary exchange;
//! (c) copies received per node per incident in the 32-node mesh.
//!
//! `CERD_BENCH_QUICK=1` shrinks the sizes for a smoke run.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cer_proto::api::{ExportFormat, ExportQuery};
use cer_proto::wire::{Frame, Tip};
use cerd::store::Change;
use cerd::{local, Daemon};
use uuid::Uuid;

mod common;
use common::{c2_incident, report_latency};

fn main() {
    let quick = std::env::var_os("CERD_BENCH_QUICK").is_some();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "cerd federation benchmarks{}",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "machine: {} cores; every node is a full daemon on 127.0.0.1",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    let incidents = if quick { 10 } else { 50 };
    rt.block_on(propagation(16, incidents, 1));
    rt.block_on(propagation(32, incidents, 2));
    rt.block_on(catch_up(if quick { 10_000 } else { 100_000 }));
}

struct Cluster {
    _root: tempfile::TempDir,
    daemons: Vec<Daemon>,
}

impl Cluster {
    /// Starts `n` nodes that all trust each other; node i dials the nodes
    /// in `dials[i]`.
    async fn start(n: usize, dials: &[Vec<usize>]) -> Cluster {
        let root = tempfile::Builder::new()
            .prefix("cerf")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let names: Vec<String> = (0..n).map(|i| format!("CERT-{i:02}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let nodes = local::prepare(root.path(), &names).expect("prepare nodes");
        let mut daemons = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let peers: Vec<u16> = dials[i].iter().map(|j| nodes[*j].port).collect();
            let config = node.config(&peers, "10s").expect("config");
            daemons.push(Daemon::start(config).await.expect("daemon starts"));
        }
        Cluster {
            _root: root,
            daemons,
        }
    }

    /// Waits until every node has at least `degree[i]` connected peers.
    async fn wait_connected(&self, degree: &[usize]) -> Duration {
        let started = Instant::now();
        loop {
            let ready = self.daemons.iter().zip(degree).all(|(d, want)| {
                d.node()
                    .peers()
                    .peers
                    .iter()
                    .filter(|p| p.connected)
                    .count()
                    >= *want
            });
            if ready {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "mesh did not form"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(self) {
        for d in self.daemons {
            d.shutdown().await.expect("shutdown");
        }
    }
}

/// A connected random graph where every node has degree 3 or 4: a ring
/// plus random chords. Returns who dials whom, and each node's degree.
fn random_graph(n: usize, seed: u64) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut edges: BTreeSet<(usize, usize)> = (0..n)
        .map(|i| (i.min((i + 1) % n), i.max((i + 1) % n)))
        .collect();
    let degree = |edges: &BTreeSet<(usize, usize)>, v: usize| {
        edges.iter().filter(|(a, b)| *a == v || *b == v).count()
    };
    for _ in 0..n * 20 {
        let a = (next() % n as u64) as usize;
        let b = (next() % n as u64) as usize;
        let e = (a.min(b), a.max(b));
        if a != b && !edges.contains(&e) && degree(&edges, a) < 4 && degree(&edges, b) < 4 {
            let want = (0..n).any(|v| degree(&edges, v) < 3);
            if want && (degree(&edges, a) < 3 || degree(&edges, b) < 3) {
                edges.insert(e);
            }
        }
    }
    let mut dials = vec![Vec::new(); n];
    for (a, b) in &edges {
        dials[*a].push(*b);
    }
    let degrees = (0..n).map(|v| degree(&edges, v)).collect();
    (dials, degrees)
}

async fn propagation(n: usize, incidents: usize, seed: u64) {
    let (dials, degrees) = random_graph(n, seed);
    let edges: usize = dials.iter().map(Vec::len).sum();
    println!("(a) propagation, {n} nodes, {edges} links (degree {}-{}), {incidents} incidents filed one after another at rotating nodes",
        degrees.iter().min().unwrap_or(&0), degrees.iter().max().unwrap_or(&0));
    let cluster = Cluster::start(n, &dials).await;
    let formed = cluster.wait_connected(&degrees).await;
    println!("    mesh formed in {:.2} s", formed.as_secs_f64());

    // Every node records when each incident's envelope became durable there.
    let arrivals: Arc<Mutex<HashMap<(usize, Uuid), Instant>>> = Arc::default();
    let mut listeners = Vec::new();
    for (i, d) in cluster.daemons.iter().enumerate() {
        let mut events = d.node().store().subscribe();
        let arrivals = arrivals.clone();
        listeners.push(tokio::spawn(async move {
            while let Ok(batch) = events.recv().await {
                for event in batch.iter() {
                    if let Change::Stored { subject, .. } = event.change {
                        arrivals
                            .lock()
                            .expect("lock")
                            .entry((i, subject))
                            .or_insert_with(Instant::now);
                    }
                }
            }
        }));
    }
    let mut latencies = Vec::new();
    let mut worst_per_incident = Vec::new();
    for k in 0..incidents {
        let origin = (k * 7) % n;
        let started = Instant::now();
        let filed = cluster.daemons[origin]
            .node()
            .file(c2_incident(format!("propagation {k}")))
            .await
            .expect("file");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let done = (0..n).all(|i| {
                arrivals
                    .lock()
                    .expect("lock")
                    .contains_key(&(i, filed.incident))
            });
            if done || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let map = arrivals.lock().expect("lock");
        let mut worst = Duration::ZERO;
        for i in (0..n).filter(|i| *i != origin) {
            match map.get(&(i, filed.incident)) {
                Some(at) => {
                    let d = at.saturating_duration_since(started);
                    worst = worst.max(d);
                    latencies.push(d);
                }
                None => println!("    incident {k} never reached node {i}"),
            }
        }
        worst_per_incident.push(worst);
    }
    for l in listeners {
        l.abort();
    }
    print!("    filing -> arrival, per node:        ");
    report_latency(&mut latencies, "target p50 <= 200 ms, p99 <= 1 s");
    print!("    filing -> arrival at the last node: ");
    report_latency(&mut worst_per_incident, "");

    // (c) copies received per node per incident.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut received = 0u64;
    let mut duplicates = 0u64;
    for d in &cluster.daemons {
        for p in d.node().peers().peers {
            received += p.envelopes_received;
            duplicates += p.duplicates;
        }
    }
    let per = |x: u64| x as f64 / (incidents * (n - 1)) as f64;
    println!(
        "(c) copies received per node per incident: {:.2} (1 stored + {:.2} duplicates dropped on arrival)",
        per(received + duplicates),
        per(duplicates)
    );
    println!();
    cluster.shutdown().await;
}

async fn catch_up(total: usize) {
    println!("(b) catch-up: a new node joins a peer holding {total} envelopes it lacks");
    let root = tempfile::Builder::new()
        .prefix("cerf")
        .tempdir_in("/tmp")
        .expect("temp dir");
    let nodes = local::prepare(root.path(), &["CERT-OLD", "CERT-NEW"]).expect("prepare nodes");
    let first = Daemon::start(nodes[0].config(&[], "10s").expect("config"))
        .await
        .expect("first node");
    let a = first.node().clone();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let a = a.clone();
        tasks.spawn(async move {
            a.file(c2_incident(format!("catch-up {k}")))
                .await
                .expect("file")
        });
        if tasks.len() >= 64 {
            tasks.join_next().await;
        }
    }
    while tasks.join_next().await.is_some() {}
    println!(
        "    filed {total} at the first node in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut own_bytes = 0usize;
    a.export_each(
        &ExportQuery {
            format: ExportFormat::Envelopes,
            incident: None,
        },
        &mut |e| {
            own_bytes += e.json.len() + base64_len(&e.sig);
            true
        },
    )
    .expect("export");

    // The second node starts empty and dials the first.
    let config = nodes[1].config(&[nodes[0].port], "10s").expect("config");
    let started = Instant::now();
    let b = Daemon::start(config).await.expect("second node");
    loop {
        if b.node().store().counts().envelopes as usize >= total {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "catch-up stalled"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let link = b
        .node()
        .peers()
        .peers
        .into_iter()
        .find(|p| p.connected)
        .expect("linked");
    let wire = link.bytes_received + link.bytes_sent;
    println!(
        "    caught up {total} envelopes in {:.2} s: {:>8.0} envelopes/s   (target >= 10,000/s; includes connecting and authenticating)",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "    bytes on the wire (UDP, both directions) {:.1} MiB for {:.1} MiB of envelopes + signatures: {:.3}x   (target <= 1.2x)",
        wire as f64 / 1048576.0,
        own_bytes as f64 / 1048576.0,
        wire as f64 / own_bytes as f64
    );
    let tips: Vec<Tip> = b
        .node()
        .store()
        .chain_tips()
        .expect("tips")
        .into_iter()
        .map(|(author, tip)| Tip {
            author,
            seq: tip.seq,
            id: tip.id,
        })
        .collect();
    let authors = tips.len();
    let summary = Frame::Summary { tips }.encoded_len();
    println!(
        "    summary frame: {summary} bytes for {authors} author(s) and a store of {total} envelopes (one tip per author, whatever the store size)"
    );
    b.shutdown().await.expect("shutdown");
    first.shutdown().await.expect("shutdown");
    println!();
}

fn base64_len(s: &str) -> usize {
    s.len() / 4 * 3 - s.bytes().rev().take_while(|b| *b == b'=').count()
}
