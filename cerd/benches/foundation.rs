//! Foundation benchmarks. Prints figures; asserts nothing about time.
//!
//! ```text
//! cargo build --release --bins && cargo bench -p cerd --bench foundation
//! ```
//!
//! (a) raw signature verification vs envelope ingest (verify + store +
//!     index), same run, as a ratio;
//! (b) `cerctl incident file` as a whole process, round trip;
//! (c) exact indicator lookup through the API on a store of 1,000,000
//!     indicators;
//! (d) bulk indicator insert rate (filing incidents of 10,000 indicators).
//!
//! Sequoia caches verification results per process, so every measured
//! verification is over a distinct document.
//!
//! `CERD_BENCH_QUICK=1` shrinks every size tenfold for a smoke run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use cer_proto::api::{FileIncident, IocQuery};
use cer_proto::envelope::{Body, Draft, DraftBody, IncidentBody};
use cer_proto::model::{
    Classification, Indicator, IndicatorType, Severity, Status, Timestamp, Tlp,
};
use cer_proto::wire::Item;
use cer_proto::EnvelopeId;
use cerd::sign::{Identity, TrustStore};
use cerd::{Config, Daemon};
use uuid::Uuid;

mod common;
use common::report_latency;

fn main() {
    let quick = std::env::var_os("CERD_BENCH_QUICK").is_some();
    let scale = if quick { 10 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "cerd foundation benchmarks{}",
        if quick { " (quick)" } else { "" }
    );
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    verify_vs_ingest(&rt, 20_000 / scale);
    rt.block_on(cerctl_round_trip(200 / scale));
    rt.block_on(indicator_lookup_and_bulk_insert(
        100 / scale,
        10_000,
        20_000 / scale,
    ));
}

fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cerb")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

fn config_in(dir: &Path) -> Config {
    let text = "name = \"BENCH-CERT\"\ndata_dir = \"data\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\n";
    let path = dir.join("cerd.toml");
    std::fs::write(&path, text).expect("config");
    std::fs::create_dir_all(dir.join("certs")).expect("certs dir");
    Config::load(&path).expect("valid config")
}

fn body(n: usize, indicators: Vec<Indicator>) -> Body {
    Body::Incident(IncidentBody {
        title: format!("Benchmark incident {n}"),
        description: String::new(),
        severity: Severity::High,
        classification: Classification::parse("malicious-code/c2-server").expect("class"),
        status: Status::New,
        indicators,
        affected: Default::default(),
        occurred: None,
        detected: None,
        tags: vec![],
    })
}

/// A chain of `n` signed envelopes by `author`, each distinct.
fn chain(author: &Identity, n: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(n);
    let mut prev: Option<EnvelopeId> = None;
    for i in 0..n {
        let ioc = Indicator::new(
            IndicatorType::Ipv4,
            &format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255),
        )
        .expect("ipv4");
        let draft = Draft {
            author: author.fingerprint().clone(),
            seq: i as u64 + 1,
            prev,
            created: Timestamp(time::OffsetDateTime::now_utc()),
            subject: Uuid::new_v4(),
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(body(i, vec![ioc])),
            withdraws: vec![],
        };
        let bytes = draft.to_bytes().expect("draft");
        let sig = author.sign_detached(&bytes);
        prev = Some(EnvelopeId::of(&bytes));
        out.push((bytes, sig));
    }
    out
}

fn verify_vs_ingest(rt: &tokio::runtime::Runtime, n: usize) {
    println!("(a) signature verification vs envelope ingest, {n} distinct envelopes each");
    let author = Identity::generate("AUTHOR-CERT").expect("key");
    let mut trust = TrustStore::new();
    trust.insert(author.public_cert());
    let raw_set = chain(&author, n);
    let ingest_set = chain(&author, n);
    let avg_len = ingest_set.iter().map(|(b, _)| b.len()).sum::<usize>() / n;

    let started = Instant::now();
    for (bytes, sig) in &raw_set {
        trust.verify_detached(bytes, sig).expect("verifies");
    }
    let raw = n as f64 / started.elapsed().as_secs_f64();

    // The physical limit: bare Ed25519 verification of a 64-byte digest
    // (what an OpenPGP signature signs), no parsing, one core.
    let raw_ed25519 = {
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
        let started = Instant::now();
        for (d, s) in digests.iter().zip(&sigs) {
            verifying.verify_strict(d, s).expect("verifies");
        }
        n as f64 / started.elapsed().as_secs_f64()
    };

    let dir = workdir();
    let config = config_in(dir.path());
    std::fs::write(dir.path().join("certs/author.asc"), author.public_armored()).expect("cert");
    let daemon = rt.block_on(Daemon::start(config)).expect("daemon");
    let node = daemon.node().clone();
    // As the mesh's ingest pipeline does: batches of one Envelopes frame,
    // verified on every core, queued to the store's writer in order; the
    // next batch is verified while the writer stores the last.
    let started = Instant::now();
    rt.block_on(async {
        let mut answers = Vec::new();
        let mut set = ingest_set.into_iter().peekable();
        while set.peek().is_some() {
            let batch: Vec<Item> = set
                .by_ref()
                .take(cer_proto::wire::MAX_BATCH)
                .map(|(bytes, sig)| Item::Live { bytes, sig })
                .collect();
            let verifier = node.clone();
            let verified = tokio::task::spawn_blocking(move || verifier.verify_items(batch))
                .await
                .expect("verify");
            let good = verified
                .into_iter()
                .map(|(_, v)| v.expect("verifies"))
                .collect();
            answers.push(node.store().queue_ingest(good, None).await.expect("queue"));
        }
        for answer in answers {
            for result in answer.await.expect("answer").expect("batch") {
                result.expect("ingest");
            }
        }
    });
    let ingest = n as f64 / started.elapsed().as_secs_f64();
    rt.block_on(daemon.shutdown()).expect("shutdown");

    println!("    envelope size                 {avg_len} bytes");
    println!(
        "    raw Ed25519 verify, 1 core    {raw_ed25519:>10.0} /s   (the physical limit per core)"
    );
    println!("    OpenPGP detached verify, 1 core {raw:>8.0} /s   (parse + hash + Ed25519: each ingest does it once)");
    println!("    ingest verify+store+index     {ingest:>10.0} /s   (batches of {}, verification on every core)", cer_proto::wire::MAX_BATCH);
    println!(
        "    ratio ingest / raw Ed25519    {:>10.1} %   (target >= 50 %); ingest / OpenPGP verify {:.1} %",
        100.0 * ingest / raw_ed25519,
        100.0 * ingest / raw
    );
    println!();
}

fn cerctl_binary() -> Option<PathBuf> {
    // target/<profile>/deps/foundation-HASH -> target/<profile>/cerctl
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("cerctl");
    candidate.exists().then_some(candidate)
}

async fn cerctl_round_trip(n: usize) {
    println!("(b) `cerctl incident file` whole-process round trip, {n} runs");
    let Some(cerctl) = cerctl_binary() else {
        println!("    skipped: build the binaries first (cargo build --release --bins)");
        println!();
        return;
    };
    let dir = workdir();
    let config = config_in(dir.path());
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
    let config = config_in(dir.path());
    let socket = config.api_socket.clone();
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
        let class = Classification::parse("malicious-code/malware-distribution").expect("class");
        let request = FileIncident {
            indicators,
            ..FileIncident::new(format!("bulk {n}"), Severity::Medium, Tlp::Green, class)
        };
        node.file(request).await.expect("file");
    }
    let elapsed = started.elapsed();
    println!(
        "    inserted {total} indicators in {:.2} s",
        elapsed.as_secs_f64()
    );
    println!(
        "    rate                          {:>10.0} indicators/s   (target >= 100,000/s)",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "    store on disk                 {:>10.1} MiB",
        node.store().size_on_disk() as f64 / 1048576.0
    );
    println!();

    println!("(c) exact indicator lookup through the API, store of {total} indicators, {lookups} lookups");
    let mut client = cerctl::Client::connect(&socket).await.expect("client");
    let mut times = Vec::with_capacity(lookups);
    let mut state = 0x9e3779b97f4a7c15u64;
    for _ in 0..lookups {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let i = (state % total as u64) as usize;
        let query = IocQuery {
            value: value(i),
            kind: None,
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
