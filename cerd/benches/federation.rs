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
//! (b) catch-up of 100,000 missing envelopes, counted when durable on the
//!     receiver: rate, and bytes on the wire against the envelopes' own;
//! (c) copies received per node per incident in the 32-node mesh;
//! (d) exact indicator lookup through the API of a node during such a
//!     catch-up;
//! (e) the summary a node sends on connect, read off a real link, with 50
//!     authors and 1,000,000 envelopes held.
//!
//! `CERD_BENCH_QUICK=1` shrinks the sizes for a smoke run.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cer_proto::api::{ExportFormat, ExportQuery, FileIncident, IocQuery};
use cer_proto::model::{Indicator, IndicatorType};
use cer_proto::wire::{Frame, MAX_BATCH};
use cerd::local::LocalNode;
use cerd::mesh::transport::CloseCode;
use cerd::mesh::Endpoint;
use cerd::sign::{Identity, TrustStore};
use cerd::store::Change;
use cerd::{local, Daemon};
use tokio::sync::mpsc;
use uuid::Uuid;

mod common;
use common::{
    c2_incident, config_in, incident_body, ingest_batches, ms, quick, report_latency,
    sibling_binary, verdict, wait_durable, wanted, workdir, Author, Latency, Xorshift, MIB,
};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    common::banner("cerd federation benchmarks; every node is a full daemon on 127.0.0.1");
    let incidents = if quick() { 10 } else { 50 };
    if wanted('a') || wanted('c') {
        rt.block_on(propagation(16, incidents, 1));
        rt.block_on(propagation(32, incidents, 2));
    }
    if wanted('b') || wanted('d') {
        rt.block_on(catch_up(if quick() { 10_000 } else { 100_000 }));
    }
    if wanted('e') {
        rt.block_on(summary_on_connect(
            50,
            if quick() { 20_000 } else { 1_000_000 },
        ));
    }
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
    let nodes =
        local::prepare(root.path(), &["CERT-OLD", "CERT-NEW", "CERT-LOOK"]).expect("prepare nodes");
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
    // sled serializes every read in a process behind any batch being
    // applied (a process-wide lock), so a sender in the receiver's process
    // would wait for the receiver's writes. Serve the catch-up from a real
    // `cerd` process, as a peer would.
    let served = match sibling_binary("cerd") {
        Some(cerd) => {
            let config = first.node().config().clone();
            // Every handle on the store goes, so the process can open it.
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
            wait_api(&config.api_socket).await;
            println!("    the first node serves from its own `cerd` process");
            Served::Process(process)
        }
        None => {
            println!("    the first node serves in this process (build the binaries to serve from a `cerd` process)");
            Served::InProcess(first)
        }
    };

    // The second node starts empty and dials the first. An envelope counts
    // once the second node's writer has flushed it.
    let config = nodes[1].config(&[nodes[0].port], "10s").expect("config");
    let started = Instant::now();
    let b = Daemon::start(config).await.expect("second node");
    wait_durable(b.node(), total as u64, Duration::from_secs(900)).await;
    let elapsed = started.elapsed();
    let rate = total as f64 / elapsed.as_secs_f64();
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
        "    caught up {total} envelopes, durable, in {:.2} s: {rate:>8.0} envelopes/s   target >= 10,000/s (aim 15,000): {}   (includes start, connecting and authenticating)",
        elapsed.as_secs_f64(),
        verdict(rate >= 10_000.0)
    );
    println!(
        "    bytes on the wire (UDP, both directions) {:.1} MiB for {:.1} MiB of envelopes + signatures: {:.3}x   (target <= 1.2x)",
        wire as f64 / MIB,
        own_bytes as f64 / MIB,
        wire as f64 / own_bytes as f64
    );
    b.shutdown().await.expect("shutdown");
    println!();

    lookups_during_catch_up(&nodes[2], nodes[0].port, total).await;
    match served {
        Served::Process(mut process) => {
            let _ = process.kill().await;
        }
        Served::InProcess(first) => first.shutdown().await.expect("shutdown"),
    }
}

enum Served {
    Process(tokio::process::Child),
    InProcess(Daemon),
}

/// Waits until a daemon answers on its API socket.
async fn wait_api(socket: &std::path::Path) {
    let started = Instant::now();
    loop {
        if let Ok(mut client) = cerctl::Client::connect(socket).await {
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

/// (d) A node that already holds indicators catches up `total` envelopes
/// while an analyst looks indicators up through its API: the lookups must
/// not wait behind the catch-up.
async fn lookups_during_catch_up(node: &LocalNode, old_port: u16, total: usize) {
    let (incidents, per_incident) = if quick() { (2, 500) } else { (10, 1_000) };
    let indexed = incidents * per_incident;
    println!("(d) exact indicator lookup through the API during a catch-up of {total} envelopes (the node holds {indexed} indicators; one lookup per ms)");
    let value = |i: usize| format!("h{i}.look.example");

    // First alone: file the incidents the lookups will find.
    let config = node.config(&[], "10s").expect("config");
    let socket = config.api_socket.clone();
    let c = Daemon::start(config).await.expect("node starts");
    for n in 0..incidents {
        let indicators = (0..per_incident)
            .map(|k| {
                Indicator::new(IndicatorType::Domain, &value(n * per_incident + k)).expect("domain")
            })
            .collect();
        let request = FileIncident {
            indicators,
            ..c2_incident(format!("looked up {n}"))
        };
        c.node().file(request).await.expect("file");
    }
    let own = c.node().store().counts().envelopes;
    c.shutdown().await.expect("shutdown");

    // Then again, dialling the peer: the catch-up starts at once.
    let config = node.config(&[old_port], "10s").expect("config");
    let started = Instant::now();
    let c = Daemon::start(config).await.expect("node starts");
    let done = Arc::new(AtomicBool::new(false));
    // Three probes side by side, to tell a slow read from a busy runtime:
    // the lookup through the API; the same lookup straight from the node
    // on a blocking thread (no HTTP, no socket); and a task that sleeps
    // 1 ms and records how late it wakes.
    let lookups = tokio::spawn({
        let done = done.clone();
        let node = c.node().clone();
        async move {
            let mut client = cerctl::Client::connect(&socket).await.expect("client");
            let mut pick = Xorshift(0x9e37_79b9_7f4a_7c15);
            let (mut api, mut direct) = (Vec::new(), Vec::new());
            while !done.load(Ordering::Relaxed) {
                let query = IocQuery {
                    value: value(pick.below(indexed)),
                    kind: None,
                    limit: None,
                };
                let asked = Instant::now();
                let found = client.search_ioc(&query).await.expect("search");
                api.push(asked.elapsed());
                assert_eq!(found.matches.len(), 1, "{} must be found once", query.value);
                tokio::time::sleep(Duration::from_millis(1)).await;
                let node = node.clone();
                let asked = Instant::now();
                let found = tokio::task::spawn_blocking(move || node.search_ioc(&query))
                    .await
                    .expect("lookup")
                    .expect("search");
                direct.push(asked.elapsed());
                assert_eq!(found.matches.len(), 1);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            (api, direct)
        }
    });
    let ticks = tokio::spawn({
        let done = done.clone();
        async move {
            let mut late = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let slept = Instant::now();
                tokio::time::sleep(Duration::from_millis(1)).await;
                late.push(slept.elapsed().saturating_sub(Duration::from_millis(1)));
            }
            late
        }
    });
    wait_durable(c.node(), own + total as u64, Duration::from_secs(900)).await;
    let elapsed = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let (mut api, mut direct) = lookups.await.expect("lookups");
    let mut late = ticks.await.expect("ticks");
    let l = Latency::of(&mut api).expect("samples");
    println!(
        "    caught up in {:.2} s ({:.0} envelopes/s) while {} lookups ran",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        l.n
    );
    println!(
        "    API lookup         p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   target p99 <= 2 ms: {}",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max),
        verdict(l.p99 <= Duration::from_millis(2))
    );
    print!("    same lookup, in process, blocking thread: ");
    report_latency(&mut direct, "");
    print!("    runtime: a 1 ms sleep wakes late by:      ");
    report_latency(&mut late, "");
    c.shutdown().await.expect("shutdown");
    println!();
}

/// (e) What a node sends a peer that connects: its summary, one tip per
/// author. The store is built by ingesting envelopes that `authors`
/// in-process identities sign (on every core, while the node stores them);
/// then a bare QUIC link dials the node as a trusted peer and reads the
/// first frame.
async fn summary_on_connect(authors: usize, total: usize) {
    println!("(e) summary on connect: {authors} authors, {total} envelopes held");
    let dir = workdir();
    let config = config_in(dir.path(), "");
    let mut signers: Vec<Author> = (0..authors)
        .map(|i| Author::generate(&format!("AUTHOR-{i:02}")))
        .collect();
    for (i, author) in signers.iter().enumerate() {
        std::fs::write(
            dir.path().join(format!("certs/author-{i:02}.asc")),
            author.identity.public_armored(),
        )
        .expect("cert");
    }
    let peer = Arc::new(Identity::generate("PEER-CERT").expect("key"));
    std::fs::write(dir.path().join("certs/peer.asc"), peer.public_armored()).expect("cert");
    let holder = Daemon::start(config).await.expect("daemon");
    let node = holder.node().clone();

    // Each signing thread takes every n-th author and signs that share in
    // rounds, so each author's chain arrives in order.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_author = total / authors;
    let (tx, rx) = mpsc::channel(64);
    let mut groups: Vec<Vec<Author>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, author) in signers.drain(..).enumerate() {
        groups[i % threads].push(author);
    }
    let signing: Vec<_> = groups
        .into_iter()
        .map(|mut group| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut batch = Vec::with_capacity(MAX_BATCH);
                for round in 0..per_author {
                    for author in &mut group {
                        batch.push(author.next(incident_body(format!("held {round}"), vec![])));
                        if batch.len() == MAX_BATCH {
                            let full = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
                            tx.blocking_send(full).expect("ingest runs");
                        }
                    }
                }
                if !batch.is_empty() {
                    tx.blocking_send(batch).expect("ingest runs");
                }
            })
        })
        .collect();
    drop(tx);
    let started = Instant::now();
    let stored = ingest_batches(&node, rx).await;
    for thread in signing {
        thread.join().expect("signer");
    }
    println!(
        "    store built: {stored} envelopes in {:.1} s ({:.0} /s, signing on the same cores)",
        started.elapsed().as_secs_f64(),
        stored as f64 / started.elapsed().as_secs_f64()
    );

    let mut trust = TrustStore::new();
    trust.insert(node.identity().public_cert());
    let endpoint = Endpoint::bind("127.0.0.1:0".parse().expect("address"), peer).expect("bind");
    let addr = node.listen().expect("node listens");
    let link = endpoint
        .connect(addr, &trust, Some(node.fingerprint()))
        .await
        .expect("connect");
    let (_sender, mut receiver, handle) = link.split();
    let before = handle.stats();
    let frame = receiver.recv().await.expect("frame").expect("a frame");
    let after = handle.stats();
    let Frame::Summary { tips } = frame else {
        panic!("the first frame after authentication is not a summary: {frame:?}");
    };
    let bytes = after.frame_bytes_received - before.frame_bytes_received;
    println!(
        "    summary frame on the wire: {bytes} bytes for {} tips ({:.1} bytes per author) and a store of {stored} envelopes; {} UDP bytes received for the whole connect (handshake and authentication included)",
        tips.len(),
        bytes as f64 / tips.len().max(1) as f64,
        after.udp_bytes_received
    );
    println!("    target: proportional to authors, independent of store size");
    handle.close(CloseCode::Normal, "benchmark done");
    endpoint.close();
    holder.shutdown().await.expect("shutdown");
    println!();
}

fn base64_len(s: &str) -> usize {
    s.len() / 4 * 3 - s.bytes().rev().take_while(|b| *b == b'=').count()
}
