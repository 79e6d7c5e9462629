//! Playbook benchmarks. Prints figures; asserts nothing about time.
//!
//! ```text
//! cargo bench -p cerd --bench playbooks
//! ```
//!
//! (1) matching throughput: 10,000 incidents against 100 playbooks (the
//!     pure planning step, no processes);
//! (2) latency from an envelope being stored (the node's `Stored` event)
//!     to its action's process running, through a real daemon.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cer_proto::envelope::{Body, Header, IncidentBody, Kind};
use cer_proto::incident::{FoldInput, IncidentState};
use cer_proto::model::{Classification, Indicator, Severity, Status, Timestamp, Tlp};
use cer_proto::{EnvelopeId, Fingerprint};
use cerd::playbook::{plan, spec, EventKind, Trigger};
use cerd::store::Change;
use cerd::{Config, Daemon};
use uuid::Uuid;

mod common;
use common::{c2_incident, report_latency};

const SEVERITIES: [&str; 4] = ["low", "medium", "high", "critical"];
const CLASSES: [&str; 6] = [
    "malicious-code/c2-server",
    "fraud/phishing",
    "availability/ddos",
    "intrusions/system-compromise",
    "malicious-code/*",
    "vulnerable/vulnerable-system",
];

fn main() {
    let quick = std::env::var_os("CERD_BENCH_QUICK").is_some();
    println!(
        "cerd playbook benchmarks{}",
        if quick { " (quick)" } else { "" }
    );
    println!();
    matching(if quick { 1_000 } else { 10_000 }, 100);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(latency(if quick { 20 } else { 200 }));
}

fn playbook_yaml(i: usize) -> String {
    format!(
        "name: p{i}\non: [incident.received, incident.filed]\nmatch:\n  severity_at_least: {}\n  classification: [\"{}\"]\n  has_indicator: [ipv4]\nmax_tlp: amber\nactions:\n  - exec:\n      argv: [\"/bin/true\", \"{{indicator.value}}\"]\n      for_each_indicator: [ipv4]\n",
        SEVERITIES[i % 4],
        CLASSES[i % CLASSES.len()]
    )
}

fn state(n: usize, author: &Fingerprint) -> IncidentState {
    let body = Body::Incident(IncidentBody {
        title: format!("incident {n}"),
        description: String::new(),
        severity: [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ][n % 4],
        classification: Classification::parse(
            [
                "malicious-code/c2-server",
                "fraud/phishing",
                "availability/ddos",
                "other/other",
            ][n % 4],
        )
        .expect("class"),
        status: Status::New,
        indicators: vec![
            Indicator::parse_spec(&format!("ipv4:10.0.{}.{}", n / 250 % 250, n % 250))
                .expect("ioc"),
            Indicator::parse_spec(&format!("domain:h{n}.example")).expect("ioc"),
        ],
        affected: Default::default(),
        occurred: None,
        detected: None,
        tags: vec![],
        source: None,
    });
    let subject = Uuid::new_v4();
    let input = FoldInput {
        id: EnvelopeId::of(format!("{n}").as_bytes()),
        header: Header {
            author: author.clone(),
            seq: n as u64 + 1,
            subject,
            kind: Kind::Incident,
            created: Timestamp(time::OffsetDateTime::now_utc()),
            tlp: Tlp::Green,
            recipients: vec![],
        },
        body: Some(body),
    };
    IncidentState::fold(subject, &[input]).expect("state")
}

fn matching(incidents: usize, playbooks: usize) {
    println!("(1) matching {incidents} incidents against {playbooks} playbooks (planning only)");
    let loaded: Vec<_> = (0..playbooks)
        .map(|i| spec::parse(&playbook_yaml(i), &format!("p{i}.yaml")).expect("valid playbook"))
        .collect();
    let own = Fingerprint::parse(&"A".repeat(40)).expect("fpr");
    let peer = Fingerprint::parse(&"B".repeat(40)).expect("fpr");
    let states: Vec<IncidentState> = (0..incidents).map(|n| state(n, &peer)).collect();
    let names = |_: &Fingerprint| Some("PEER".to_owned());
    let started = Instant::now();
    let mut planned = 0usize;
    for (n, state) in states.iter().enumerate() {
        let trigger = Trigger {
            event: EventKind::IncidentReceived,
            incident: Some(state),
            peer: None,
            own: &own,
            names: &names,
            version: n.to_string(),
            acted: &[],
            acted_runs: &[],
            paused: None,
            expiry: None,
            warninglisted: None,
        };
        planned += plan(&loaded, &trigger).len();
    }
    let elapsed = started.elapsed();
    println!(
        "    {:.1} ms: {:.0} incidents/s, {:.1} M playbook evaluations/s; {planned} actions planned",
        elapsed.as_secs_f64() * 1000.0,
        incidents as f64 / elapsed.as_secs_f64(),
        (incidents * playbooks) as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!();
}

async fn latency(n: usize) {
    println!("(2) stored envelope -> action process running, {n} incidents (includes starting /bin/sh and date)");
    let dir = tempfile::Builder::new()
        .prefix("cerp")
        .tempdir_in("/tmp")
        .expect("dir");
    std::fs::create_dir_all(dir.path().join("playbooks")).expect("dir");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("dir");
    let script = dir.path().join("stamp.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec date +%s%N > \"$OUT/$CER_INCIDENT_ID\"\n",
    )
    .expect("script");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(
        dir.path().join("playbooks/stamp.yaml"),
        format!(
            "name: stamp\non: [incident.filed]\nactions:\n  - exec:\n      argv: [\"{}\"]\n      env: {{ OUT: \"{}\" }}\n",
            script.display(),
            out.display()
        ),
    )
    .expect("playbook");
    let config_path = dir.path().join("cerd.toml");
    std::fs::write(
        &config_path,
        "name = \"BENCH\"\ndata_dir = \"data\"\nlisten = \"127.0.0.1:0\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\n",
    )
    .expect("config");
    let daemon = Daemon::start(Config::load(&config_path).expect("config"))
        .await
        .expect("daemon");
    let node = daemon.node().clone();
    let mut events = node.store().subscribe();
    let mut latencies = Vec::with_capacity(n);
    for k in 0..n {
        let filed = node
            .file(c2_incident(format!("latency {k}")))
            .await
            .expect("file");
        // The store announces each batch once it is durable.
        let stored_at = 'stored: loop {
            if let Ok(batch) = events.recv().await {
                for event in batch.iter() {
                    if matches!(event.change, Change::Stored { subject, .. } if subject == filed.incident)
                    {
                        break 'stored SystemTime::now();
                    }
                }
            }
        };
        let stamp = out.join(filed.incident.to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        let ran_at = loop {
            if let Some(nanos) = std::fs::read_to_string(&stamp)
                .ok()
                .and_then(|s| s.trim().parse::<u128>().ok())
            {
                break nanos;
            }
            assert!(Instant::now() < deadline, "action never ran");
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let stored = stored_at
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_nanos();
        latencies.push(Duration::from_nanos(ran_at.saturating_sub(stored) as u64));
    }
    daemon.shutdown().await.expect("shutdown");
    print!("    ");
    report_latency(&mut latencies, "");
}
