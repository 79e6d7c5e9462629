//! Foundation benchmarks, one node in this process. Prints figures, each
//! beside its target; asserts nothing about time.
//!
//! ```text
//! cargo build --release --bins && cargo bench -p cerd --bench foundation
//! ```
//!
//! (a) envelope ingest (verify + store + index, whole node, every core) as
//!     a share of one core's raw Ed25519 verification rate, both measured
//!     in the same run; per-core rates in thread CPU time;
//! (b) `cerctl incident file` as a whole process, round trip;
//! (d) bulk indicator insert (incidents of 10,000 indicators, each filing
//!     durable, 1,000,000 in all): rate, store size on disk, RSS after;
//! (c) exact indicator lookup through the API on that store;
//! (e) latency of a note added to incidents of 100, 1,000 and 10,000
//!     indicators.
//!
//! Sequoia caches verification results per process, so every measured
//! verification is over a distinct document.
//!
//! `CERD_BENCH_QUICK=1` shrinks the sizes tenfold for a smoke run.

use std::time::{Duration, Instant};

use cer_proto::api::{FileIncident, IocQuery, UpdateIncident};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Tlp};
use cer_proto::wire::Item;
use cerd::sign::TrustStore;
use cerd::Daemon;

mod common;
use common::{
    batched, config_in, dir_bytes, incident_body, ingest_batches, ms, proc_status_bytes,
    report_latency, sibling_binary, thread_cpu_time, verdict, wanted, workdir, Author, Latency,
    Xorshift, MIB,
};

fn main() {
    let scale = if common::quick() { 10 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    common::banner("cerd foundation benchmarks");
    if wanted('a') {
        verify_vs_ingest(&rt, 20_000 / scale);
    }
    if wanted('b') {
        rt.block_on(cerctl_round_trip(200 / scale));
    }
    // Before (d), so its latencies are not taken while the process returns
    // the bulk insert's memory.
    if wanted('e') {
        let notes = if scale == 1 { 500 } else { 100 };
        rt.block_on(note_latency(&[100, 1_000, 10_000], notes));
    }
    if wanted('d') || wanted('c') {
        rt.block_on(indicator_lookup_and_bulk_insert(
            100 / scale,
            10_000,
            20_000 / scale,
        ));
    }
}

fn verify_vs_ingest(rt: &tokio::runtime::Runtime, n: usize) {
    println!("(a) signature verification vs envelope ingest, {n} distinct envelopes each");
    let mut author = Author::generate("AUTHOR-CERT");
    let mut trust = TrustStore::new();
    trust.insert(author.identity.public_cert());
    let mut sign = |n: usize| -> Vec<Item> {
        (0..n)
            .map(|i| {
                let ioc = Indicator::new(
                    IndicatorType::Ipv4,
                    &format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
                )
                .expect("ipv4");
                author.next(incident_body(format!("Benchmark incident {i}"), vec![ioc]))
            })
            .collect()
    };
    // Two chains by one author: the raw set continues where the ingest set
    // ends, so every envelope is distinct.
    let ingest_set = sign(n);
    let raw_set = sign(n);
    let live = |item: &Item| match item {
        Item::Live { bytes, sig } => (bytes.clone(), sig.clone()),
        Item::Tombstone(_) => unreachable!("only live envelopes are signed here"),
    };
    let raw_set: Vec<(Vec<u8>, Vec<u8>)> = raw_set.iter().map(live).collect();
    let avg_len = raw_set.iter().map(|(b, _)| b.len()).sum::<usize>() / n;

    // Per-core rates are measured in this thread's CPU time, so a compiler
    // or another process on the same core does not lower them.
    let cpu = thread_cpu_time();
    for (bytes, sig) in &raw_set {
        trust.verify_detached(bytes, sig).expect("verifies");
    }
    let openpgp = n as f64 / (thread_cpu_time() - cpu).as_secs_f64();

    // The physical limit: bare Ed25519 verification of a 64-byte digest
    // (what an OpenPGP signature signs), no parsing, one core.
    let (raw_ed25519, raw_wall) = {
        use ed25519_dalek::{Signer, SigningKey};
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let verifying = key.verifying_key();
        let digests: Vec<[u8; 64]> = (0..n)
            .map(|i| {
                let mut d = [0u8; 64];
                d[..8].copy_from_slice(&(i as u64).to_le_bytes());
                d
            })
            .collect();
        let sigs: Vec<_> = digests.iter().map(|d| key.sign(d)).collect();
        let (wall, cpu) = (Instant::now(), thread_cpu_time());
        for (d, s) in digests.iter().zip(&sigs) {
            verifying.verify_strict(d, s).expect("verifies");
        }
        (
            n as f64 / (thread_cpu_time() - cpu).as_secs_f64(),
            n as f64 / wall.elapsed().as_secs_f64(),
        )
    };

    let dir = workdir();
    let config = config_in(dir.path(), "");
    std::fs::write(
        dir.path().join("certs/author.asc"),
        author.identity.public_armored(),
    )
    .expect("cert");
    let daemon = rt.block_on(Daemon::start(config)).expect("daemon");
    let node = daemon.node().clone();
    let batches = batched(ingest_set);
    let started = Instant::now();
    let stored = rt.block_on(ingest_batches(&node, batches));
    let ingest = n as f64 / started.elapsed().as_secs_f64();
    assert_eq!(stored, n);
    rt.block_on(daemon.shutdown()).expect("shutdown");

    let ratio = 100.0 * ingest / raw_ed25519;
    println!("    envelope size                   {avg_len} bytes");
    println!(
        "    raw Ed25519 verify, 1 core      {raw_ed25519:>8.0} /s per CPU-second   (the physical limit per core; wall clock {raw_wall:.0} /s)"
    );
    println!("    OpenPGP detached verify, 1 core {openpgp:>8.0} /s per CPU-second   (parse + hash + Ed25519: each ingest does it once)");
    println!(
        "    ingest verify+store+index       {ingest:>8.0} /s wall clock   (whole node, batches of {}, verification on every core)",
        cer_proto::wire::MAX_BATCH
    );
    println!(
        "    ingest / raw Ed25519 (1 core)   {ratio:>8.1} %   target >= 60 %: {}   (ingest / OpenPGP verify {:.1} %)",
        verdict(ratio >= 60.0),
        100.0 * ingest / openpgp
    );
    println!();
}

async fn cerctl_round_trip(n: usize) {
    println!("(b) `cerctl incident file` whole-process round trip, {n} runs");
    let Some(cerctl) = sibling_binary("cerctl") else {
        println!("    skipped: build the binaries first (cargo build --release --bins)");
        println!();
        return;
    };
    let dir = workdir();
    let config = config_in(dir.path(), "");
    let socket = config.api_socket.clone();
    let daemon = Daemon::start(config).await.expect("daemon");
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let out = tokio::process::Command::new(&cerctl)
            .arg("--socket")
            .arg(&socket)
            .args([
                "incident",
                "file",
                "--title",
                &format!("round trip {i}"),
                "--severity",
                "high",
                "--tlp",
                "green",
            ])
            .args([
                "--class",
                "fraud/phishing",
                "--ioc",
                "domain:bank-login.example",
                "--ioc",
                "ipv4:203.0.113.7",
            ])
            .output()
            .await
            .expect("cerctl runs");
        times.push(started.elapsed());
        assert!(
            out.status.success(),
            "cerctl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    daemon.shutdown().await.expect("shutdown");
    print!("    ");
    report_latency(&mut times, "(target median <= 20 ms)");
    println!();
}

async fn indicator_lookup_and_bulk_insert(incidents: usize, per_incident: usize, lookups: usize) {
    let total = incidents * per_incident;
    println!("(d) bulk indicator insert: {incidents} incidents x {per_incident} indicators, each filing durable");
    let dir = workdir();
    // CERD_BENCH_STORE_CACHE_MIB sets the store's page cache (cerd.toml's
    // store_cache_mib), to see how much of the RSS it accounts for.
    let cache = std::env::var("CERD_BENCH_STORE_CACHE_MIB")
        .map(|mib| format!("store_cache_mib = {mib}\n"))
        .unwrap_or_default();
    let config = config_in(dir.path(), &cache);
    let cache_mib = config.store_cache_mib;
    let data_dir = config.data_dir.clone();
    let socket = config.api_socket.clone();
    let rss_before = proc_status_bytes("VmRSS").unwrap_or(0);
    let daemon = Daemon::start(config).await.expect("daemon");
    let node = daemon.node().clone();
    let value = |i: usize| format!("h{i}.bench.example");
    let started = Instant::now();
    for n in 0..incidents {
        let indicators = (0..per_incident)
            .map(|k| {
                Indicator::new(IndicatorType::Domain, &value(n * per_incident + k)).expect("domain")
            })
            .collect();
        node.file(with_indicators(format!("bulk {n}"), indicators))
            .await
            .expect("file");
    }
    let elapsed = started.elapsed();
    let rate = total as f64 / elapsed.as_secs_f64();
    let sled_size = node.store().size_on_disk() as f64 / MIB;
    let dir_size = dir_bytes(&data_dir) as f64 / MIB;
    let rss = proc_status_bytes("VmRSS").unwrap_or(0) as f64 / 1e6;
    let peak = proc_status_bytes("VmHWM").unwrap_or(0) as f64 / 1e6;
    println!(
        "    inserted {total} indicators in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "    rate                          {rate:>10.0} indicators/s   target >= 100,000/s: {}",
        verdict(rate >= 100_000.0)
    );
    println!(
        "    store on disk                 {sled_size:>10.1} MiB   (sled's count; data folder {dir_size:.1} MiB)   target <= 200 MiB: {}",
        verdict(sled_size.max(dir_size) <= 200.0)
    );
    println!(
        "    RSS after insert              {rss:>10.0} MB   (peak {peak:.0} MB, {:.0} MB before the daemon started; store_cache_mib = {cache_mib})   target <= 500 MB: {}",
        rss_before as f64 / 1e6,
        verdict(rss <= 500.0)
    );
    println!();

    println!("(c) exact indicator lookup through the API, store of {total} indicators, {lookups} lookups");
    let mut client = cerctl::Client::connect(&socket).await.expect("client");
    let mut times = Vec::with_capacity(lookups);
    let mut pick = Xorshift(0x9e3779b97f4a7c15);
    for _ in 0..lookups {
        let i = pick.below(total);
        let query = IocQuery {
            value: value(i),
            kind: None,
            limit: None,
        };
        let started = Instant::now();
        let found = client.search_ioc(&query).await.expect("search");
        times.push(started.elapsed());
        assert_eq!(found.matches.len(), 1, "indicator {i} must be found once");
    }
    drop(client);
    daemon.shutdown().await.expect("shutdown");
    print!("    ");
    report_latency(&mut times, "(target p99 <= 1 ms)");
    println!();
}

/// (e) A note added to incidents of growing size: the incremental fold
/// should make its cost independent of the incident's indicator count.
async fn note_latency(sizes: &[usize], notes: usize) {
    println!("(e) `Node::update` with only a note, {notes} notes on each of incidents with {sizes:?} indicators");
    let dir = workdir();
    let config = config_in(dir.path(), "");
    let daemon = Daemon::start(config).await.expect("daemon");
    let node = daemon.node().clone();
    for (s, &size) in sizes.iter().enumerate() {
        let indicators = (0..size)
            .map(|k| {
                Indicator::new(IndicatorType::Domain, &format!("n{s}-{k}.notes.example"))
                    .expect("domain")
            })
            .collect();
        let filed = node
            .file(with_indicators(format!("notes {size}"), indicators))
            .await
            .expect("file");
        let mut times = Vec::with_capacity(notes);
        for k in 0..notes {
            let update = UpdateIncident {
                note: Some(format!("note {k}: seen again from another sensor")),
                ..UpdateIncident::default()
            };
            let started = Instant::now();
            node.update(filed.incident, update).await.expect("note");
            times.push(started.elapsed());
        }
        // Node::update first reads the incident (to check who may change
        // what); time that read alone, on a blocking thread as it runs.
        let mut reads = Vec::with_capacity(notes);
        for _ in 0..notes {
            let store = node.store().clone();
            let started = Instant::now();
            tokio::task::spawn_blocking(move || store.incident(filed.incident))
                .await
                .expect("read")
                .expect("incident")
                .expect("held");
            reads.push(started.elapsed());
        }
        let l = Latency::of(&mut times).expect("samples");
        let r = Latency::of(&mut reads).expect("samples");
        println!(
            "    {size:>6} indicators: p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   target p50, p99 <= 2 ms: {}   (its Store::incident read alone: p50 {:.2} ms)",
            ms(l.p50),
            ms(l.p99),
            ms(l.max),
            verdict(l.p50 <= Duration::from_millis(2) && l.p99 <= Duration::from_millis(2)),
            ms(r.p50)
        );
    }
    daemon.shutdown().await.expect("shutdown");
    println!();
}

fn with_indicators(title: String, indicators: Vec<Indicator>) -> FileIncident {
    let class = Classification::parse("malicious-code/malware-distribution").expect("class");
    FileIncident {
        indicators,
        ..FileIncident::new(title, Severity::Medium, Tlp::Green, class)
    }
}
