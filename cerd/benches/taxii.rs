//! TAXII 2.1 and feed benchmarks: one node in this process, its HTTPS
//! listener read over real TLS connections with keep-alive, as a SIEM's
//! connector or a firewall reads it. Prints figures, each beside its
//! target; asserts nothing about time.
//!
//! ```text
//! cargo bench -p cerd --bench taxii
//! ```
//!
//! (a) every object of a collection holding 10,000 and then 100,000
//!     indicators (incidents of 1,000), read through paged GETs of 1,000:
//!     total time, objects per second;
//! (b) small pages (`limit=10`) from 8 clients at once, each on its own
//!     keep-alive connection: requests per second;
//! (c) `/feeds/ipv4.txt` of 1,000,000 addresses: time to the first byte
//!     and in total, when built and when reused; gzip; and the 304 path
//!     (`If-None-Match`).
//!
//! `CERD_BENCH_QUICK=1` shrinks the sizes tenfold for a smoke run.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cer_proto::api::{AddTaxiiClient, FileIncident, TaxiiClientAdded};
use cer_proto::model::{Classification, Indicator, IndicatorType, Severity, Tlp};
use cerd::{Daemon, Node};
use http_body_util::BodyExt;

mod common;
use common::{config_in, ms, verdict, wanted, workdir, MIB};

const PER_INCIDENT: usize = 1_000;
const TAXII: &str = "application/taxii+json;version=2.1";

fn main() {
    let scale = if common::quick() { 10 } else { 1 };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    common::banner("cerd TAXII and feed benchmarks");
    if wanted('a') || wanted('b') {
        rt.block_on(paging(scale));
    }
    if wanted('c') {
        rt.block_on(feed(1_000_000 / scale));
    }
}

/// A node serving TAXII on a free port, with a GREEN client; returns the
/// daemon, the port, the CA to trust and the client's Authorization.
async fn serve(dir: &std::path::Path) -> (Daemon, u16, Vec<u8>, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    // No rate limit to speak of: this measures the server.
    let config = config_in(
        dir,
        &format!("[taxii]\nlisten = \"127.0.0.1:{port}\"\nrate_limit = 1000000\n"),
    );
    let socket = config.api_socket.clone();
    let data_dir = config.data_dir.clone();
    let daemon = Daemon::start(config).await.expect("daemon");
    let mut api = cerctl::Client::connect(&socket).await.expect("API");
    let added: TaxiiClientAdded = api
        .post_json(
            "/v1/taxii/clients",
            &AddTaxiiClient {
                name: "bench".into(),
                max_tlp: Tlp::Green,
                write: false,
            },
        )
        .await
        .expect("a TAXII client");
    let ca = std::fs::read(data_dir.join("taxii-ca.pem")).expect("the generated CA");
    (daemon, port, ca, format!("Bearer {}", added.token))
}

/// Files `count` GREEN indicators from `first` on, in incidents of
/// [`PER_INCIDENT`] addresses.
async fn fill(node: &Arc<Node>, first: usize, count: usize) -> Duration {
    let class = Classification::parse("malicious-code/c2-server").expect("class");
    let started = Instant::now();
    for chunk in (first..first + count)
        .collect::<Vec<_>>()
        .chunks(PER_INCIDENT)
    {
        let indicators = chunk
            .iter()
            .map(|n| {
                Indicator::new(IndicatorType::Ipv4, &address(*n).to_string()).expect("an address")
            })
            .collect();
        let incident = FileIncident {
            indicators,
            ..FileIncident::new(
                format!("C2 block {}", chunk[0] / PER_INCIDENT),
                Severity::High,
                Tlp::Green,
                class.clone(),
            )
        };
        node.file(incident).await.expect("file");
    }
    started.elapsed()
}

/// Distinct public addresses: 11.0.0.0 onwards.
fn address(n: usize) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(11, 0, 0, 0)) + n as u32)
}

async fn paging(scale: usize) {
    let dir = workdir();
    let (daemon, port, ca, auth) = serve(dir.path()).await;
    let node = daemon.node().clone();
    let mut held = 0;
    for size in [10_000 / scale, 100_000 / scale] {
        let took = fill(&node, held, size - held).await;
        held = size;
        println!(
            "(a) {size} GREEN indicators ({} incidents, filed in {:.1} s), read through paged GETs of 1,000",
            size / PER_INCIDENT,
            took.as_secs_f64()
        );
        let mut conn = Conn::open(port, &ca).await;
        let started = Instant::now();
        let (mut objects, mut pages, mut bytes) = (0usize, 0usize, 0usize);
        let mut next: Option<String> = None;
        loop {
            let mut path = "/api/collections/green/objects/?limit=1000".to_owned();
            if let Some(next) = &next {
                path.push_str("&next=");
                path.push_str(next);
            }
            let (status, body, _) = conn
                .get(&path, &[("accept", TAXII), ("authorization", &auth)])
                .await;
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
            bytes += body.len();
            let page: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            objects += page["objects"].as_array().map_or(0, Vec::len);
            pages += 1;
            if page["more"] != true {
                break;
            }
            next = page["next"].as_str().map(str::to_owned);
        }
        let elapsed = started.elapsed();
        let target = if size == 10_000 / scale {
            format!(
                "target <= 1 s for 10,000 indicators: {}",
                verdict(elapsed <= Duration::from_secs(1) * (size as u32) / 10_000)
            )
        } else {
            "(no target; medallion took 662 s for one GET of 10,000 objects here)".to_owned()
        };
        println!(
            "    {objects} objects in {pages} pages ({:.1} MiB): {:.2} s, {:.0} objects/s, {:.0} indicators/s; {target}",
            bytes as f64 / MIB,
            elapsed.as_secs_f64(),
            objects as f64 / elapsed.as_secs_f64(),
            size as f64 / elapsed.as_secs_f64(),
        );
    }
    if wanted('b') {
        small_pages(port, &ca, &auth).await;
    }
    daemon.shutdown().await.expect("shutdown");
    println!();
}

/// (b) 8 clients asking for small pages at once.
async fn small_pages(port: u16, ca: &[u8], auth: &str) {
    const CLIENTS: usize = 8;
    const EACH: Duration = Duration::from_secs(5);
    println!(
        "(b) pages of 10 objects, {CLIENTS} clients with keep-alive, {} s",
        EACH.as_secs()
    );
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..CLIENTS {
        let (ca, auth) = (ca.to_vec(), auth.to_owned());
        tasks.spawn(async move {
            let mut conn = Conn::open(port, &ca).await;
            let mut times = Vec::new();
            let begun = Instant::now();
            while begun.elapsed() < EACH {
                let at = Instant::now();
                let (status, _, _) = conn
                    .get(
                        "/api/collections/green/objects/?limit=10",
                        &[("accept", TAXII), ("authorization", &auth)],
                    )
                    .await;
                assert_eq!(status, 200);
                times.push(at.elapsed());
            }
            times
        });
    }
    let mut times = Vec::new();
    while let Some(done) = tasks.join_next().await {
        times.extend(done.expect("client task"));
    }
    let elapsed = started.elapsed();
    let rate = times.len() as f64 / elapsed.as_secs_f64();
    let latency = common::Latency::of(&mut times).expect("requests");
    println!(
        "    {} requests: {rate:.0} requests/s; p50 {:.2} ms, p99 {:.2} ms; target >= 5,000/s: {}",
        latency.n,
        ms(latency.p50),
        ms(latency.p99),
        verdict(rate >= 5_000.0)
    );
}

/// (c) a 1M-address feed.
async fn feed(addresses: usize) {
    println!("(c) /feeds/ipv4.txt of {addresses} addresses");
    let dir = workdir();
    let (daemon, port, ca, auth) = serve(dir.path()).await;
    let node = daemon.node().clone();
    let took = fill(&node, 0, addresses).await;
    println!("    filed in {:.1} s", took.as_secs_f64());
    let mut conn = Conn::open(port, &ca).await;
    let headers = [("authorization", auth.as_str())];
    let mut etag = String::new();
    for (what, extra) in [
        ("built", None),
        ("reused", None),
        ("gzip", Some(("accept-encoding", "gzip"))),
        ("gzip again", Some(("accept-encoding", "gzip"))),
    ] {
        let mut all = headers.to_vec();
        all.extend(extra);
        let started = Instant::now();
        let (status, first, total, size, tag) = conn.timed("/feeds/ipv4.txt", &all).await;
        assert_eq!(status, 200);
        etag = tag;
        println!(
            "    {what:<10}: first byte {:.1} ms, all {:.1} ms, {:.1} MiB",
            ms(first),
            ms(total.max(started.elapsed())),
            size as f64 / MIB
        );
    }
    let mut times = Vec::new();
    for _ in 0..200 {
        let started = Instant::now();
        let (status, _, _) = conn
            .get(
                "/feeds/ipv4.txt",
                &[("authorization", &auth), ("if-none-match", &etag)],
            )
            .await;
        assert_eq!(status, 304);
        times.push(started.elapsed());
    }
    print!("    304 (If-None-Match), 200 polls: ");
    common::report_latency(&mut times, "(no target)");
    daemon.shutdown().await.expect("shutdown");
    println!();
}

/// One keep-alive HTTPS connection trusting the node's generated CA.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Empty<axum::body::Bytes>>,
    port: u16,
}

impl Conn {
    async fn open(port: u16, ca: &[u8]) -> Conn {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca) {
            roots.add(cert.expect("PEM")).expect("CA");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let tls = connector.connect(name, tcp).await.expect("TLS");
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .expect("HTTP");
        tokio::spawn(connection);
        Conn { sender, port }
    }

    fn request(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> hyper::Request<http_body_util::Empty<axum::body::Bytes>> {
        let mut request =
            hyper::Request::get(path).header("host", format!("127.0.0.1:{}", self.port));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        request.body(http_body_util::Empty::new()).expect("request")
    }

    /// Status, body and ETag.
    async fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> (u16, Vec<u8>, String) {
        self.sender.ready().await.expect("connection");
        let response = self
            .sender
            .send_request(self.request(path, headers))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let etag = etag(&response);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, body.to_vec(), etag)
    }

    /// Status, time to the first body byte, time to the last, size, ETag.
    async fn timed(
        &mut self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, Duration, Duration, usize, String) {
        self.sender.ready().await.expect("connection");
        let started = Instant::now();
        let response = self
            .sender
            .send_request(self.request(path, headers))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let etag = etag(&response);
        let mut body = response.into_body();
        let mut first = None;
        let mut size = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("body").into_data() {
                first.get_or_insert_with(|| started.elapsed());
                size += data.len();
            }
        }
        let total = started.elapsed();
        (status, first.unwrap_or(total), total, size, etag)
    }
}

fn etag(response: &hyper::Response<hyper::body::Incoming>) -> String {
    response
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}
