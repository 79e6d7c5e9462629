//! Helpers shared by the benchmarks.

// Each benchmark compiles this module on its own and uses part of it.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cer_proto::api::FileIncident;
use cer_proto::envelope::{Body, Draft, DraftBody, IncidentBody};
use cer_proto::model::{Classification, Indicator, Severity, Status, Timestamp, Tlp};
use cer_proto::wire::Item;
use cer_proto::EnvelopeId;
use cerd::sign::Identity;
use cerd::{Config, Node};
use tokio::sync::mpsc;
use uuid::Uuid;

/// The daemon's allocator (see cerd's main.rs), so in-process nodes run
/// as the binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// True when `CERD_BENCH_QUICK` is set: shrunken sizes for a smoke run.
pub fn quick() -> bool {
    std::env::var_os("CERD_BENCH_QUICK").is_some()
}

/// Whether section `letter` runs: all of them unless `CERD_BENCH_ONLY`
/// lists letters (`CERD_BENCH_ONLY=de`), to profile one section alone.
pub fn wanted(letter: char) -> bool {
    std::env::var("CERD_BENCH_ONLY").map_or(true, |only| only.contains(letter))
}

/// Prints the benchmark's title and the machine it runs on.
pub fn banner(what: &str) {
    println!("{what}{}", if quick() { " (quick)" } else { "" });
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
}

/// A short temporary folder (Unix socket paths are limited to ~108 bytes).
pub fn workdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cerb")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

/// A single node's configuration in `dir`, listening for peers on a free
/// loopback port; `extra` is appended to `cerd.toml` as is.
pub fn config_in(dir: &Path, extra: &str) -> Config {
    let text = format!(
        "name = \"BENCH-CERT\"\ndata_dir = \"data\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\nlisten = \"127.0.0.1:0\"\n{extra}"
    );
    let path = dir.join("cerd.toml");
    std::fs::write(&path, text).expect("config");
    std::fs::create_dir_all(dir.join("certs")).expect("certs dir");
    Config::load(&path).expect("valid config")
}

/// A TLP:GREEN, high-severity C2 incident with no indicators.
pub fn c2_incident(title: String) -> FileIncident {
    let class = Classification::parse("malicious-code/c2-server").expect("known class");
    FileIncident::new(title, Severity::High, Tlp::Green, class)
}

/// An incident body as an author signs it.
pub fn incident_body(title: String, indicators: Vec<Indicator>) -> Body {
    Body::Incident(IncidentBody {
        title,
        description: String::new(),
        severity: Severity::High,
        classification: Classification::parse("malicious-code/c2-server").expect("class"),
        status: Status::New,
        indicators,
        affected: Default::default(),
        occurred: None,
        detected: None,
        tags: vec![],
        source: None,
    })
}

/// An in-process author that signs a contiguous chain of envelopes, as a
/// peer CERT would.
pub struct Author {
    pub identity: Identity,
    seq: u64,
    prev: Option<EnvelopeId>,
}

impl Author {
    pub fn generate(name: &str) -> Author {
        Author {
            identity: Identity::generate(name).expect("key"),
            seq: 0,
            prev: None,
        }
    }

    /// Signs the author's next envelope: `body` about a new incident.
    pub fn next(&mut self, body: Body) -> Item {
        self.seq += 1;
        let draft = Draft {
            author: self.identity.fingerprint().clone(),
            seq: self.seq,
            prev: self.prev,
            created: Timestamp(time::OffsetDateTime::now_utc()),
            subject: Uuid::new_v4(),
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(body),
            withdraws: vec![],
        };
        let bytes = draft.to_bytes().expect("draft");
        let sig = self.identity.sign_detached(&bytes);
        self.prev = Some(EnvelopeId::of(&bytes));
        Item::Live { bytes, sig }
    }
}

/// Verifies and stores batches of received items as the mesh's ingest
/// pipeline does: each batch (one `Envelopes` frame) verified on every
/// core on a blocking thread, then queued to the store's writer in order,
/// so the next batch is verified while the writer stores the last. At most
/// `depth` batches wait for the writer. Returns when every item is durable;
/// panics on any refusal.
pub async fn ingest_batches(node: &Arc<Node>, mut batches: mpsc::Receiver<Vec<Item>>) -> usize {
    const DEPTH: usize = 16;
    let mut waiting = VecDeque::new();
    let mut stored = 0;
    let settle = |results: cerd::store::BatchResult| {
        let results = results.expect("batch stored");
        for result in &results {
            result.as_ref().expect("item stored");
        }
        results.len()
    };
    while let Some(batch) = batches.recv().await {
        let verifier = node.clone();
        let verified = tokio::task::spawn_blocking(move || verifier.verify_items(batch))
            .await
            .expect("verify");
        let good = verified
            .into_iter()
            .map(|(_, v)| v.expect("verifies"))
            .collect();
        waiting.push_back(node.store().queue_ingest(good, None).await.expect("queue"));
        if waiting.len() > DEPTH {
            let answer = waiting.pop_front().expect("waiting");
            stored += settle(answer.await.expect("writer answers"));
        }
    }
    for answer in waiting {
        stored += settle(answer.await.expect("writer answers"));
    }
    stored
}

/// A channel already holding `items` in batches of one `Envelopes` frame.
pub fn batched(items: Vec<Item>) -> mpsc::Receiver<Vec<Item>> {
    let batches = items.len().div_ceil(cer_proto::wire::MAX_BATCH).max(1);
    let (tx, rx) = mpsc::channel(batches);
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        let batch = items
            .by_ref()
            .take(cer_proto::wire::MAX_BATCH)
            .collect::<Vec<_>>();
        tx.try_send(batch).expect("room for every batch");
    }
    rx
}

/// A binary built beside this benchmark (`cargo build --release --bins`):
/// target/<profile>/deps/NAME-HASH -> target/<profile>/NAME.
pub fn sibling_binary(name: &str) -> Option<std::path::PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join(name);
    candidate.exists().then_some(candidate)
}

/// CPU time the calling thread has used (not wall time: a thread that
/// shares its core with another process is not charged for the other's
/// time).
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to
    // a local; CLOCK_THREAD_CPUTIME_ID is supported on every Linux.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// A `/proc/self/status` field in bytes (`VmRSS`, `VmHWM`); the daemon
/// runs in this process, so this is its memory plus the benchmark's.
pub fn proc_status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status
        .lines()
        .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))?;
    let kib: u64 = line[field.len() + 1..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Bytes of the regular files under `dir` (what `du --apparent-size` says).
pub fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

pub const MIB: f64 = 1024.0 * 1024.0;

/// Percentiles of a sample of durations.
pub struct Latency {
    pub n: usize,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of(times: &mut [Duration]) -> Option<Latency> {
        if times.is_empty() {
            return None;
        }
        times.sort();
        let pct =
            |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
        Some(Latency {
            n: times.len(),
            p50: pct(0.50),
            p90: pct(0.90),
            p99: pct(0.99),
            max: times[times.len() - 1],
        })
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prints p50, p90, p99 and max of `times` in milliseconds.
pub fn report_latency(times: &mut [Duration], target: &str) {
    let Some(l) = Latency::of(times) else {
        println!("no samples");
        return;
    };
    println!(
        "p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms   {target}",
        ms(l.p50),
        ms(l.p90),
        ms(l.p99),
        ms(l.max)
    );
}

/// "met" or "MISSED", for a figure printed beside its target.
pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "MISSED"
    }
}

/// A deterministic xorshift sequence, for picking what to look up.
pub struct Xorshift(pub u64);

impl Xorshift {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Waits until the store holds at least `envelopes` durable envelopes
/// (`counts()` is updated by the writer after each batch's flush, before
/// it announces the batch on `durable_events`). Panics after `limit`.
pub async fn wait_durable(node: &Node, envelopes: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut durable = node.store().durable_events();
    while node.store().counts().envelopes < envelopes {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "stalled: fewer than {envelopes} envelopes durable"
        );
        // A short bound as well: the watch only wakes on new events.
        let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), durable.changed()).await;
    }
}
