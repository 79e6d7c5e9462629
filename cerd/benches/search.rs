//! Search benchmarks, one node in this process. Prints figures, each beside
//! its target; asserts nothing about time.
//!
//! ```text
//! cargo bench -p cerd --bench search
//! ```
//!
//! (a) builds a store of 1,000,000 indicators: 1,000 incidents of 1,000
//!     each (400 ipv4 in 10.0.0.0/12, 200 ipv6 in 2001:db8::/32, 100
//!     CIDRs: IPv4 /22 to /32 and a few /16 in 10.0.0.0/12, IPv6 /48 to
//!     /64; 300 domains in 3,000 zones under example.com, .net and .org),
//!     each filing durable;
//!     prints the time, the rate and the store's size;
//! (b) a random /24 of 10.0.0.0/12 (about 100 addresses in each);
//! (c) a random address: its exact matches and the CIDRs containing it
//!     (33 prefix probes), and the same for IPv6 (129);
//! (d) `*.zN.example.com` (about 100 names in each);
//! (e) searches cut at the default limit of 1,000: a /16 and
//!     `*.example.com`;
//! (f) `incident list --text` over 100,000 incidents: words that match
//!     none (every incident read) and words most incidents hold.
//!
//! Every search goes through the API on the Unix socket, as `cerctl ioc
//! search` sends it; (b)–(d) also through the store alone, on a blocking
//! thread, to separate the store's part from the round trip.
//!
//! `CERD_BENCH_QUICK=1` shrinks the sizes tenfold for a smoke run.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cer_proto::api::{FileIncident, IncidentQuery, IocQuery, IocSearch};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Tlp};
use cerd::{Daemon, Node};

mod common;
use common::{
    config_in, dir_bytes, ms, proc_status_bytes, verdict, wanted, workdir, Latency, Xorshift, MIB,
};

const PER_INCIDENT: usize = 1_000;
const ZONES: usize = 3_000;
const TLDS: [&str; 3] = ["com", "net", "org"];

fn main() {
    let scale = if common::quick() { 10 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    common::banner("cerd search benchmarks");
    let queries = 3_000 / scale;
    if ["a", "b", "c", "d", "e"]
        .iter()
        .any(|s| wanted(s.as_bytes()[0] as char))
    {
        rt.block_on(ranges(1_000 / scale, queries));
    }
    if wanted('f') {
        rt.block_on(text(100_000 / scale, 200 / scale));
    }
}

async fn ranges(incidents: usize, queries: usize) {
    let total = incidents * PER_INCIDENT;
    println!("(a) a store of {total} indicators: {incidents} incidents x {PER_INCIDENT}, each filing durable");
    let dir = workdir();
    // CERD_BENCH_STORE_CACHE_MIB sets the store's page cache (cerd.toml's
    // store_cache_mib), to see what the searches owe to it.
    let cache = std::env::var("CERD_BENCH_STORE_CACHE_MIB")
        .map(|mib| format!("store_cache_mib = {mib}\n"))
        .unwrap_or_default();
    let config = config_in(dir.path(), &cache);
    let cache_mib = config.store_cache_mib;
    let data_dir = config.data_dir.clone();
    let socket = config.api_socket.clone();
    let daemon = Daemon::start(config).await.expect("daemon");
    let node = daemon.node().clone();
    let mut rng = Xorshift(0x2545f4914f6cdd1d);
    let started = Instant::now();
    for n in 0..incidents {
        let indicators = incident_indicators(&mut rng);
        node.file(with_indicators(format!("search bench {n}"), indicators))
            .await
            .expect("file");
    }
    let elapsed = started.elapsed();
    let sled_size = node.store().size_on_disk() as f64 / MIB;
    let dir_size = dir_bytes(&data_dir) as f64 / MIB;
    println!(
        "    built in {:.1} s: {:.0} indicators/s; store on disk {sled_size:.1} MiB (sled's count; data folder {dir_size:.1} MiB); RSS {:.0} MB; store_cache_mib = {cache_mib}",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        proc_status_bytes("VmRSS").unwrap_or(0) as f64 / 1e6,
    );
    println!();

    let mut client = cerctl::Client::connect(&socket).await.expect("client");
    let target = "target p99 <= 5 ms";
    if wanted('b') {
        println!("(b) a random /24 of 10.0.0.0/12, {queries} searches");
        let pick = |rng: &mut Xorshift| {
            let net = u32::from(Ipv4Addr::new(10, 0, 0, 0)) | (rng.below(1 << 12) as u32) << 8;
            format!("{}/24", Ipv4Addr::from(net))
        };
        measure(&mut client, &node, queries, pick, Some(5.0), target).await;
    }
    if wanted('c') {
        println!("(c) an address: exact matches and the CIDRs containing it, {queries} searches");
        let pick = |rng: &mut Xorshift| {
            let addr = u32::from(Ipv4Addr::new(10, 0, 0, 0)) | rng.below(1 << 20) as u32;
            Ipv4Addr::from(addr).to_string()
        };
        print!("    IPv4 ");
        measure(&mut client, &node, queries, pick, Some(5.0), target).await;
        print!("    IPv6 ");
        measure(&mut client, &node, queries, ipv6_address, Some(5.0), target).await;
    }
    if wanted('d') {
        println!("(d) *.zN.example.com, {queries} searches");
        let pick = |rng: &mut Xorshift| format!("*.{}", zone(rng.below(ZONES / 3) * 3));
        measure(&mut client, &node, queries, pick, Some(5.0), target).await;
    }
    if wanted('e') {
        println!("(e) searches cut at the default limit of 1,000 matches, {queries} each");
        print!("    a /16          ");
        let pick = |rng: &mut Xorshift| format!("10.{}.0.0/16", rng.below(16));
        measure(&mut client, &node, queries, pick, None, "(no target)").await;
        print!("    *.example.com  ");
        let pick = |_: &mut Xorshift| "*.example.com".to_owned();
        measure(&mut client, &node, queries, pick, None, "(no target)").await;
    }
    drop(client);
    daemon.shutdown().await.expect("shutdown");
    println!();
}

/// Times `queries` searches of values `pick` gives, through the API and,
/// when `target_ms`, through the store alone; prints both.
async fn measure(
    client: &mut cerctl::Client,
    node: &Arc<Node>,
    queries: usize,
    pick: impl Fn(&mut Xorshift) -> String,
    target_ms: Option<f64>,
    target: &str,
) {
    let mut rng = Xorshift(0x9e3779b97f4a7c15);
    let values: Vec<String> = (0..queries).map(|_| pick(&mut rng)).collect();
    let mut times = Vec::with_capacity(queries);
    let (mut found, mut truncated) = (0usize, 0usize);
    for value in &values {
        let query = IocQuery {
            value: value.clone(),
            kind: None,
            limit: None,
        };
        let started = Instant::now();
        let answer: IocSearch = client.search_ioc(&query).await.expect("search");
        times.push(started.elapsed());
        found += answer.matches.len();
        truncated += usize::from(answer.truncated);
    }
    let l = Latency::of(&mut times).expect("samples");
    let met = target_ms.is_none_or(|limit| ms(l.p99) <= limit);
    println!(
        "API p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   {:.0} matches on average{}   {target}{}",
        ms(l.p50),
        ms(l.p99),
        ms(l.max),
        found as f64 / queries as f64,
        if truncated > 0 {
            format!(" ({truncated} cut at the limit)")
        } else {
            String::new()
        },
        if target_ms.is_some() {
            format!(": {}", verdict(met))
        } else {
            String::new()
        }
    );
    if target_ms.is_none() {
        return;
    }
    let mut times = Vec::with_capacity(queries);
    for value in values {
        let node = node.clone();
        let query = IocQuery {
            value,
            kind: None,
            limit: None,
        };
        let elapsed = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            node.search_ioc(&query).expect("search");
            started.elapsed()
        })
        .await
        .expect("blocking read");
        times.push(elapsed);
    }
    let s = Latency::of(&mut times).expect("samples");
    println!(
        "         in process (Node::search_ioc on a blocking thread): p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        ms(s.p50),
        ms(s.p99),
        ms(s.max)
    );
}

/// 400 ipv4, 200 ipv6, 100 CIDRs and 300 domains.
fn incident_indicators(rng: &mut Xorshift) -> Vec<Indicator> {
    let mut out = Vec::with_capacity(PER_INCIDENT);
    let mut add = |kind, value: String| {
        out.push(Indicator::new(kind, &value).expect("valid indicator"));
    };
    for _ in 0..400 {
        let addr = u32::from(Ipv4Addr::new(10, 0, 0, 0)) | rng.below(1 << 20) as u32;
        add(IndicatorType::Ipv4, Ipv4Addr::from(addr).to_string());
    }
    for _ in 0..200 {
        add(IndicatorType::Ipv6, ipv6_address(rng));
    }
    for i in 0..100 {
        if i % 4 == 3 {
            let len = [48, 56, 64][rng.below(3)];
            let net: ipnet::Ipv6Net = format!("{}/{len}", ipv6_address(rng)).parse().expect("net");
            add(IndicatorType::Cidr, net.trunc().to_string());
        } else {
            // Mostly small networks, as CIDR indicators are; one in a
            // thousand a /16.
            let len = if rng.below(1000) == 0 {
                16
            } else {
                22 + rng.below(11) as u8
            };
            let addr = u32::from(Ipv4Addr::new(10, 0, 0, 0)) | rng.below(1 << 20) as u32;
            let net = ipnet::Ipv4Net::new(Ipv4Addr::from(addr), len).expect("net");
            add(IndicatorType::Cidr, net.trunc().to_string());
        }
    }
    for _ in 0..300 {
        let host = rng.below(1 << 30);
        add(
            IndicatorType::Domain,
            format!("h{host:x}.{}", zone(rng.below(ZONES))),
        );
    }
    out
}

/// Zone `n`: `zN.example.com`, `.net` or `.org`.
fn zone(n: usize) -> String {
    format!("z{n}.example.{}", TLDS[n % TLDS.len()])
}

fn ipv6_address(rng: &mut Xorshift) -> String {
    format!(
        "2001:db8:{:x}:{:x}::{:x}",
        rng.below(1 << 16),
        rng.below(1 << 16),
        rng.below(1 << 16)
    )
}

fn with_indicators(title: String, indicators: Vec<Indicator>) -> FileIncident {
    let class = Classification::parse("malicious-code/c2-server").expect("class");
    FileIncident {
        indicators,
        ..FileIncident::new(title, Severity::High, Tlp::Green, class)
    }
}

/// (f) `incident list --text` over `incidents` incidents.
async fn text(incidents: usize, lists: usize) {
    println!("(f) `incident list --text` over {incidents} incidents");
    let dir = workdir();
    let config = config_in(dir.path(), "");
    let socket = config.api_socket.clone();
    let daemon = Daemon::start(config).await.expect("daemon");
    let node = daemon.node().clone();
    let started = Instant::now();
    // Filed by many tasks at once, so the writer's batches hold many.
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..64 {
        let node = node.clone();
        tasks.spawn(async move {
            for n in (worker..incidents).step_by(64) {
                let class = Classification::parse("fraud/phishing").expect("class");
                let incident = FileIncident {
                    description: format!(
                        "Lures imitate the portal of bank {}; the kit posts credentials to a drop in zone {}.",
                        n % 997,
                        n % 31
                    ),
                    ..FileIncident::new(
                        format!("Phishing wave {n} against customers of bank {}", n % 997),
                        Severity::Medium,
                        Tlp::Green,
                        class,
                    )
                };
                node.file(incident).await.expect("file");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("filer");
    }
    println!("    filed in {:.1} s", started.elapsed().as_secs_f64());
    let mut client = cerctl::Client::connect(&socket).await.expect("client");
    for (what, words, lists) in [
        (
            "words no incident holds (every incident read)",
            "ransomware hospital",
            lists / 10,
        ),
        (
            "words in every incident, first page of 100",
            "PHISHING credentials",
            lists,
        ),
        ("a word in one incident of 997", "bank 513;", lists / 10),
    ] {
        let query = IncidentQuery {
            text: Some(words.into()),
            ..IncidentQuery::default()
        };
        let mut times: Vec<Duration> = Vec::with_capacity(lists);
        let mut found = 0;
        for _ in 0..lists {
            let started = Instant::now();
            let list = client.list_incidents(&query).await.expect("list");
            times.push(started.elapsed());
            found = list.incidents.len();
        }
        let l = Latency::of(&mut times).expect("samples");
        println!(
            "    {what:<48} p50 {:>7.1} ms   p99 {:>7.1} ms   {found} listed, {lists} listings   (no target)",
            ms(l.p50),
            ms(l.p99)
        );
    }
    drop(client);
    daemon.shutdown().await.expect("shutdown");
    println!();
}
