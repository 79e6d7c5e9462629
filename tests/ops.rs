//! Running a node as a service: the Prometheus listener (its text judged
//! by Prometheus's own Python parser when `CER_PYTHON` is set), `cerctl
//! health`, and systemd's notify protocol (readiness, reload on SIGHUP,
//! stopping) read from a datagram socket as systemd would.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::harness::{eventually, TestNode};

const SOON: Duration = Duration::from_secs(30);

/// Turns on `[metrics]` on a free port.
fn enable_metrics(node: &TestNode) {
    let mut config = std::fs::read_to_string(node.config_path()).unwrap();
    config.push_str("\n[metrics]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(node.config_path(), config).unwrap();
}

/// The metrics listener's port, from the node's start-up line.
fn metrics_port(node: &TestNode) -> u16 {
    eventually(SOON, "the metrics address in the log", || {
        let log = node.log();
        let line = log.lines().find(|l| l.contains("cerd ready"))?;
        let marker = "metrics=Some(127.0.0.1:";
        let at = line.find(marker)? + marker.len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    })
}

/// `GET path` on the metrics listener: status and body.
fn http_get(port: u16, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// `GET path` on the node's API socket: the whole answer.
fn socket_get(node: &TestNode, path: &str) -> String {
    let mut stream = std::os::unix::net::UnixStream::connect(node.socket()).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: cerd\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The samples of an exposition as `name{label="v",…}` → value, read by
/// `prometheus_client`'s Prometheus text parser and its OpenMetrics
/// parser (the stricter: EOF, counter suffixes, label syntax), which must
/// agree. None, having said why, without `CER_PYTHON`.
fn parse_with_python(text: &str) -> Option<BTreeMap<String, f64>> {
    let Some(python) = std::env::var("CER_PYTHON").ok().filter(|p| !p.is_empty()) else {
        eprintln!("skipped: CER_PYTHON not set (bash .ci/python-tools makes it); parser not run");
        return None;
    };
    let script = r##"
import json, sys
from prometheus_client.parser import text_string_to_metric_families as prometheus
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics
text = sys.stdin.read()
def samples(families):
    out = {}
    for family in families:
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out
strict = samples(openmetrics(text))
plain = samples(prometheus(text))
missing = sorted(set(strict) - set(plain))
assert not missing, f"the Prometheus parser lost {missing[:5]}"
print(json.dumps(strict))
"##;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running CER_PYTHON");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused the exposition:\n{}\n---\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("the parser's JSON"))
}

fn sample(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {samples:#?}"))
}

/// Two linked nodes, the first with `[metrics]`; three incidents filed at
/// it reach the second. Each node's metrics, parsed by Prometheus's
/// parsers, count what happened.
#[test]
fn metrics_count_filings_peers_and_requests_and_parse_as_openmetrics() {
    let mut ke = TestNode::new("KE-CIRT");
    let mut ng = TestNode::new("NG-CERT");
    enable_metrics(&ke);
    enable_metrics(&ng);
    ke.init();
    ng.init();
    ke.trust(&ng);
    ng.trust(&ke);
    ke.spawn();
    ke.pin_listen();
    ng.add_peer(&ke.listen_addr());
    ng.spawn();
    let (ke_fpr, ng_fpr) = (ke.fingerprint(), ng.fingerprint());
    for n in 0..3 {
        ke.file(&[
            "--title",
            &format!("C2 server {n}"),
            "--severity",
            "high",
            "--tlp",
            "green",
            "--class",
            "malicious-code/c2-server",
            "--ioc",
            &format!("ipv4:203.0.113.{n}"),
        ]);
    }
    eventually(SOON, "the three incidents at NG-CERT", || {
        (ng.status()["incidents"] == 3).then_some(())
    });

    let port = metrics_port(&ke);
    let (status, text) = http_get(port, "/metrics");
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("cerd_envelopes_stored_total{origin=\"local\"} 3\n"),
        "{text}"
    );
    // The socket serves the same exposition.
    let on_socket = socket_get(&ke, "/metrics");
    assert!(
        on_socket.contains("cerd_store_envelopes 3\n"),
        "{on_socket}"
    );
    assert_eq!(http_get(port, "/v1/incidents").0, 404);

    if let Some(samples) = parse_with_python(&text) {
        assert_eq!(
            sample(&samples, "cerd_envelopes_stored_total{origin=\"local\"}"),
            3.0
        );
        assert_eq!(sample(&samples, "cerd_store_envelopes{}"), 3.0);
        assert_eq!(sample(&samples, "cerd_store_incidents{}"), 3.0);
        assert_eq!(
            sample(
                &samples,
                &format!("cerd_peer_connected{{peer=\"{ng_fpr}\"}}")
            ),
            1.0
        );
        assert_eq!(
            sample(
                &samples,
                "cerd_api_requests_total{method=\"POST\",route=\"/v1/incidents\",status=\"201\"}"
            ),
            3.0
        );
        assert_eq!(
            sample(
                &samples,
                "cerd_api_request_duration_seconds_count{route=\"/v1/incidents\"}"
            ),
            3.0
        );
        assert_eq!(
            sample(
                &samples,
                &format!("cerd_identity_info{{fingerprint=\"{ke_fpr}\",name=\"KE-CIRT\"}}")
            ),
            1.0
        );
        let version = env!("CARGO_PKG_VERSION");
        assert_eq!(
            sample(
                &samples,
                &format!("cerd_build_info{{version=\"{version}\"}}")
            ),
            1.0
        );
        assert!(sample(&samples, "cerd_store_size_bytes{}") > 0.0);
        assert!(sample(&samples, "cerd_start_time_seconds{}") > 1.7e9);
    }

    // The receiving end counts them as received from its peer.
    let (status, text) = http_get(metrics_port(&ng), "/metrics");
    assert_eq!(status, 200, "{text}");
    if let Some(samples) = parse_with_python(&text) {
        assert_eq!(
            sample(&samples, "cerd_envelopes_stored_total{origin=\"peer\"}"),
            3.0
        );
        assert_eq!(
            sample(&samples, "cerd_envelopes_stored_total{origin=\"local\"}"),
            0.0
        );
        assert_eq!(
            sample(
                &samples,
                &format!("cerd_envelopes_received_total{{peer=\"{ke_fpr}\"}}")
            ),
            3.0
        );
        assert_eq!(
            sample(
                &samples,
                &format!("cerd_peer_connected{{peer=\"{ke_fpr}\"}}")
            ),
            1.0
        );
        assert!(
            sample(
                &samples,
                &format!("cerd_peer_received_bytes_total{{peer=\"{ke_fpr}\"}}")
            ) > 0.0
        );
        assert_eq!(sample(&samples, "cerd_sync_backlog_envelopes{}"), 0.0);
    }
}

/// `cerctl health`: 0 and "healthy" for a node without peers; 1 with the
/// reason for one whose only configured peer never answers, and for a
/// node that is not running. The metrics listener's `/health` agrees.
#[test]
fn health_is_zero_when_serving_and_one_with_the_reason_otherwise() {
    let mut alone = TestNode::start("KE-CIRT");
    let out = alone.cerctl(&["health"]);
    assert_eq!(out.code, 0, "{out:#?}");
    assert!(
        out.stdout
            .starts_with("healthy: store: a write was flushed"),
        "{out:#?}"
    );
    assert_eq!(out.stdout.lines().count(), 1, "{out:#?}");
    let json = alone.json(&["health"]);
    assert_eq!(json["healthy"], true, "{json}");

    let mut lonely = TestNode::new("NG-CERT");
    enable_metrics(&lonely);
    // Nothing answers QUIC there: the discard port of this host.
    lonely.add_peer("127.0.0.1:9");
    lonely.spawn();
    let out = lonely.cerctl(&["health"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(
        out.stdout, "unhealthy: peers: no peer connected (1 configured: 127.0.0.1:9)\n",
        "{out:#?}"
    );
    let (status, body) = http_get(metrics_port(&lonely), "/health");
    assert_eq!(
        (status, body.as_str()),
        (
            503,
            "peers: no peer connected (1 configured: 127.0.0.1:9)\n"
        )
    );
    lonely.stop();

    alone.stop();
    let out = alone.cerctl(&["health"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stdout.starts_with("unhealthy: cannot connect to cerd"),
        "{out:#?}"
    );
}

/// A playbook whose action fails on every run makes the node unhealthy
/// from its third failure on, naming it; the metrics count its runs.
#[test]
fn a_playbook_failing_three_runs_in_a_row_makes_the_node_unhealthy() {
    let mut node = TestNode::new("KE-CIRT");
    enable_metrics(&node);
    std::fs::write(
        node.dir.path().join("playbooks/broken.yaml"),
        "name: broken-hook\non: [incident.filed]\nactions:\n  - exec:\n      argv: [/bin/false]\n",
    )
    .unwrap();
    node.spawn();
    for n in 0..3 {
        let out = node.cerctl(&["health"]);
        assert_eq!(out.code, 0, "after {n} failures: {out:#?}");
        node.file(&[
            "--title",
            &format!("Phishing wave {n}"),
            "--severity",
            "medium",
            "--tlp",
            "green",
            "--class",
            "fraud/phishing",
        ]);
        eventually(SOON, "the run recorded", || {
            let runs = node.json(&["playbook", "runs"]);
            (runs["runs"].as_array()?.len() == n + 1).then_some(())
        });
    }
    let out = node.cerctl(&["health"]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert_eq!(
        out.stdout, "unhealthy: playbooks: broken-hook failed its last 3 runs\n",
        "{out:#?}"
    );
    let (_, text) = http_get(metrics_port(&node), "/metrics");
    assert!(
        text.contains("cerd_playbook_runs_total{playbook=\"broken-hook\",outcome=\"failed\"} 3\n"),
        "{text}"
    );
    assert!(
        text.contains("cerd_playbook_failed_runs_in_a_row{playbook=\"broken-hook\"} 3\n"),
        "{text}"
    );
}

/// The notify protocol as systemd runs it (`Type=notify`, `ExecReload=`
/// sending SIGHUP, `systemctl stop` sending SIGTERM): READY=1 only once
/// the API answers; SIGHUP gives RELOADING=1 (with MONOTONIC_USEC) then
/// READY=1 again; SIGTERM gives STOPPING=1.
#[test]
fn systemd_is_told_ready_reloading_and_stopping() {
    let mut node = TestNode::new("KE-CIRT");
    let mut config = std::fs::read_to_string(node.config_path()).unwrap();
    config.push_str("\n[taxii]\nlisten = \"127.0.0.1:0\"\n");
    std::fs::write(node.config_path(), config).unwrap();
    let path = node.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    node.spawn_unready(&[("NOTIFY_SOCKET", path.to_str().unwrap())]);

    let first = receive(&socket);
    assert!(first.lines().any(|l| l == "READY=1"), "{first}");
    assert!(
        first.contains("STATUS=serving as KE-CIRT on 127.0.0.1:"),
        "{first}"
    );
    // Ready means serving: the API answers at once, without a retry.
    let status = node.cerctl(&["status"]);
    assert_eq!(status.code, 0, "{status:#?}");

    let metrics = socket_get(&node, "/metrics");
    assert!(
        metrics.contains("cerd_taxii_cert_expiry_timestamp_seconds "),
        "{metrics}"
    );
    assert!(metrics.contains("cerd_reloads_total 0\n"), "{metrics}");

    // A changed key is reported as needing a restart; a TAXII client's
    // rate limit is applied.
    let config = std::fs::read_to_string(node.config_path())
        .unwrap()
        .replace(
            "[taxii]",
            "anti_entropy_interval = \"45s\"\n[taxii]\nrate_limit = 7",
        );
    std::fs::write(node.config_path(), config).unwrap();
    node.signal(libc::SIGHUP);
    let reloading = receive(&socket);
    assert!(reloading.lines().any(|l| l == "RELOADING=1"), "{reloading}");
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");
    let ready = receive(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready}");
    assert!(
        node.log().contains("keys=anti_entropy_interval"),
        "{}",
        node.log()
    );
    assert!(
        node.log().contains("keys=taxii.rate_limit"),
        "{}",
        node.log()
    );
    assert!(
        node.log().contains("TAXII certificate reloaded"),
        "{}",
        node.log()
    );
    assert!(socket_get(&node, "/metrics").contains("cerd_reloads_total 1\n"));
    assert_eq!(node.cerctl(&["status"]).code, 0);

    node.stop();
    let stopping = receive(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping}");
}

/// The next notification, within the socket's timeout.
fn receive(socket: &UnixDatagram) -> String {
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("no notification after {:?}: {e}", started.elapsed()));
    String::from_utf8_lossy(&buf[..n]).into_owned()
}
