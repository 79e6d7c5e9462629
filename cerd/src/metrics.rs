//! What the node counts for Prometheus, and the text it is scraped as.
//!
//! Architecture invariant: this is the only module that imports
//! prometheus-client. Other modules call its small typed methods
//! ([`Metrics::api_request`], [`Metrics::playbook_run`],
//! [`Metrics::filed`]); none of them sees a registry, a family or a label
//! type. It refers to no other module of the daemon: what it reports at
//! scrape time (store counts, peers, certificates) is handed to
//! [`Metrics::encode`] as a [`Snapshot`] the node fills.
//!
//! Hot paths stay cheap: a filing is one atomic add, an API request or a
//! playbook run one family lookup (a read lock on a small map) and two
//! atomic adds. Per-peer series cost the mesh nothing: they are read from
//! the peer board, which the engine keeps anyway, when Prometheus scrapes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cer_proto::api::{Outcome, PeerInfo, Status};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Consecutive failed runs after which a playbook counts as failing
/// repeatedly (`cerctl health`).
pub const FAILING_RUNS: u32 = 3;

/// What the node reports at scrape time; filled by the node on a
/// blocking thread (store size and counts read the disk).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: Status,
    pub peers: Vec<PeerInfo>,
    /// Certificates in the trust store that expire: fingerprint, name,
    /// whether it is this node's own, and when.
    pub cert_expiry: Vec<(String, String, bool, SystemTime)>,
}

/// The node's counters and histograms, shared by every task of the node.
#[derive(Debug)]
pub struct Metrics {
    started: SystemTime,
    filed: Counter,
    api_requests: Family<ApiLabels, Counter>,
    api_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    playbook_runs: Family<RunLabels, Counter>,
    playbook_duration: Family<PlaybookLabels, Histogram, fn() -> Histogram>,
    /// Per playbook, its failed runs since its last success.
    failing: Mutex<HashMap<String, u32>>,
    /// Seconds since the epoch; 0 when there is no TAXII certificate.
    taxii_cert_expiry: AtomicI64,
    reloads: AtomicU64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    playbook: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PlaybookLabels {
    playbook: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerReasonLabels {
    peer: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerInfoLabels {
    peer: String,
    name: String,
    address: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    origin: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CertLabels {
    fingerprint: String,
    name: String,
    own: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IdentityLabels {
    fingerprint: String,
    name: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started: SystemTime::now(),
            filed: Counter::default(),
            api_requests: Family::default(),
            // 0.5 ms to ~4 s: a status read to a large export.
            api_latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 14))
            }),
            playbook_runs: Family::default(),
            // 10 ms to ~80 s: a tag to a webhook retried until its timeout.
            playbook_duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.01, 2.0, 14))
            }),
            failing: Mutex::new(HashMap::new()),
            taxii_cert_expiry: AtomicI64::new(0),
            reloads: AtomicU64::new(0),
        }
    }
}

impl Metrics {
    /// An envelope filed here (incident, update, sighting, retraction,
    /// receipt) is durable.
    pub fn filed(&self) {
        self.filed.inc();
    }

    /// An API request was answered. `route` is the route's pattern
    /// (`/v1/incidents/{id}`), never the raw path, so label values stay few.
    pub fn api_request(&self, route: &str, method: &str, status: u16, took: Duration) {
        self.api_requests
            .get_or_create(&ApiLabels {
                route: route.to_owned(),
                method: method.to_owned(),
                status,
            })
            .inc();
        self.api_latency
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
            })
            .observe(took.as_secs_f64());
    }

    /// A playbook action ran (or was skipped) and was recorded.
    pub fn playbook_run(&self, playbook: &str, outcome: &Outcome, took: Duration) {
        let label = outcome_label(outcome);
        self.playbook_runs
            .get_or_create(&RunLabels {
                playbook: playbook.to_owned(),
                outcome: label,
            })
            .inc();
        self.playbook_duration
            .get_or_create(&PlaybookLabels {
                playbook: playbook.to_owned(),
            })
            .observe(took.as_secs_f64());
        // Skipped actions and dry runs say nothing about whether the
        // playbook works.
        if matches!(outcome, Outcome::Skipped { .. } | Outcome::DryRun) {
            return;
        }
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if outcome.is_ok() {
            failing.remove(playbook);
        } else {
            *failing.entry(playbook.to_owned()).or_default() += 1;
        }
    }

    /// Playbooks whose last [`FAILING_RUNS`] or more runs all failed, with
    /// how many, by name.
    pub fn failing_playbooks(&self) -> Vec<(String, u32)> {
        let failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, u32)> = failing
            .iter()
            .filter(|(_, runs)| **runs >= FAILING_RUNS)
            .map(|(name, runs)| (name.clone(), *runs))
            .collect();
        out.sort();
        out
    }

    /// When the TAXII listener's certificate expires (None: no listener,
    /// or its certificate could not be read).
    pub fn set_taxii_cert_expiry(&self, expires: Option<SystemTime>) {
        let seconds = expires.map_or(0, |t| unix_seconds(t) as i64);
        self.taxii_cert_expiry.store(seconds, Ordering::Relaxed);
    }

    /// A reload (SIGHUP) finished.
    pub fn reloaded(&self) {
        self.reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition: live counters and the snapshot's values, in the
    /// OpenMetrics text format.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        let mut registry = Registry::with_prefix("cerd");
        self.register_live(&mut registry, snapshot);
        register_store(&mut registry, &snapshot.status);
        register_peers(&mut registry, &snapshot.peers);
        self.register_certs(&mut registry, snapshot);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    fn register_live(&self, registry: &mut Registry, snapshot: &Snapshot) {
        let status = &snapshot.status;
        registry.register(
            "build",
            "The running cerd's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        registry.register(
            "identity",
            "This node's OpenPGP identity: its fingerprint and name",
            Info::new(IdentityLabels {
                fingerprint: status.fingerprint.to_string(),
                name: status.name.clone(),
            }),
        );
        registry.register_with_unit(
            "start_time",
            "When the daemon started, in seconds since the epoch",
            Unit::Seconds,
            const_gauge_f64(unix_seconds(self.started)),
        );
        registry.register(
            "reloads",
            "Reloads done on SIGHUP",
            const_counter(self.reloads.load(Ordering::Relaxed)),
        );
        let stored = Family::<OriginLabels, Counter>::default();
        stored
            .get_or_create(&OriginLabels { origin: "local" })
            .inc_by(self.filed.get());
        let received: u64 = snapshot.peers.iter().map(|p| p.envelopes_received).sum();
        stored
            .get_or_create(&OriginLabels { origin: "peer" })
            .inc_by(received);
        registry.register(
            "envelopes_stored",
            "Envelopes made durable since start: filed here (local) or received from peers (peer)",
            stored,
        );
        registry.register(
            "api_requests",
            "Local API requests answered, by route pattern, method and status",
            self.api_requests.clone(),
        );
        registry.register_with_unit(
            "api_request_duration",
            "Time to answer a local API request, by route pattern",
            Unit::Seconds,
            self.api_latency.clone(),
        );
        registry.register(
            "playbook_runs",
            "Playbook actions run and recorded, by playbook and outcome",
            self.playbook_runs.clone(),
        );
        registry.register_with_unit(
            "playbook_run_duration",
            "Time a playbook action took, by playbook",
            Unit::Seconds,
            self.playbook_duration.clone(),
        );
        let streaks = Family::<PlaybookLabels, Gauge>::default();
        for (name, runs) in self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            streaks
                .get_or_create(&PlaybookLabels {
                    playbook: name.clone(),
                })
                .set(i64::from(*runs));
        }
        registry.register(
            "playbook_failed_runs_in_a_row",
            "Failed runs of a playbook since its last success (only playbooks with one)",
            streaks,
        );
        registry.register(
            "playbook_backlog_events",
            "Stored events the playbook driver has not finished yet",
            const_gauge(status.events.saturating_sub(status.playbook_cursor)),
        );
    }

    fn register_certs(&self, registry: &mut Registry, snapshot: &Snapshot) {
        let expiry = Family::<CertLabels, Gauge<f64, AtomicU64>>::default();
        for (fingerprint, name, own, expires) in &snapshot.cert_expiry {
            expiry
                .get_or_create(&CertLabels {
                    fingerprint: fingerprint.clone(),
                    name: name.clone(),
                    own: *own,
                })
                .set(unix_seconds(*expires));
        }
        registry.register_with_unit(
            "cert_expiry_timestamp",
            "When an OpenPGP certificate in the trust store (own: this node's) stops verifying new signatures; certificates that never expire are not listed",
            Unit::Seconds,
            expiry,
        );
        let taxii = self.taxii_cert_expiry.load(Ordering::Relaxed);
        if taxii > 0 {
            registry.register_with_unit(
                "taxii_cert_expiry_timestamp",
                "When the TAXII listener's TLS certificate expires",
                Unit::Seconds,
                const_gauge_f64(taxii as f64),
            );
        }
    }
}

/// The outcome as a label value.
fn outcome_label(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Ok { .. } => "ok",
        Outcome::Failed { .. } => "failed",
        Outcome::TimedOut => "timed_out",
        Outcome::SpawnError { .. } => "spawn_error",
        Outcome::Skipped { .. } => "skipped",
        Outcome::DryRun => "dry_run",
    }
}

fn register_store(registry: &mut Registry, status: &Status) {
    let gauges: [(&str, &str, u64); 7] = [
        (
            "store_envelopes",
            "Envelopes held, tombstones included",
            status.envelopes,
        ),
        (
            "store_tombstones",
            "Envelopes withdrawn by their authors (bodies dropped)",
            status.tombstones,
        ),
        ("store_incidents", "Incidents known", status.incidents),
        (
            "store_indicators",
            "Indicator index entries",
            status.indicators,
        ),
        (
            "store_authors",
            "Authors with at least one envelope held",
            status.authors,
        ),
        (
            "store_equivocations",
            "Conflicting envelopes kept as evidence",
            status.equivocations,
        ),
        (
            "trusted_certs",
            "Certificates in the trust store, this node's own included",
            status.trusted_certs,
        ),
    ];
    for (name, help, value) in gauges {
        registry.register(name, help, const_gauge(value));
    }
    registry.register_with_unit(
        "store_size",
        "Space the store occupies on disk",
        Unit::Bytes,
        const_gauge(status.store_bytes),
    );
    registry.register(
        "peers_configured",
        "Peers listed in the configuration",
        const_gauge(status.peers_configured),
    );
}

fn register_peers(registry: &mut Registry, peers: &[PeerInfo]) {
    let info = Family::<PeerInfoLabels, Gauge>::default();
    let connected = Family::<PeerLabels, Gauge>::default();
    let last_seen = Family::<PeerLabels, Gauge<f64, AtomicU64>>::default();
    let lag = Family::<PeerLabels, Gauge>::default();
    let received = Family::<PeerLabels, Counter>::default();
    let sent = Family::<PeerLabels, Counter>::default();
    let duplicates = Family::<PeerLabels, Counter>::default();
    let bytes_in = Family::<PeerLabels, Counter>::default();
    let bytes_out = Family::<PeerLabels, Counter>::default();
    let rejected = Family::<PeerReasonLabels, Counter>::default();
    let mut backlog = 0;
    for peer in peers {
        let id = peer_label(peer);
        let labels = PeerLabels { peer: id.clone() };
        info.get_or_create(&PeerInfoLabels {
            peer: id.clone(),
            name: peer.name.clone().unwrap_or_default(),
            address: peer.address.clone().unwrap_or_default(),
        })
        .set(1);
        connected
            .get_or_create(&labels)
            .set(i64::from(peer.connected));
        if let Some(seen) = peer.last_seen {
            last_seen
                .get_or_create(&labels)
                .set(seen.0.unix_timestamp_nanos() as f64 / 1e9);
        }
        lag.get_or_create(&labels).set(clamp(peer.behind));
        backlog += peer.behind;
        received
            .get_or_create(&labels)
            .inc_by(peer.envelopes_received);
        sent.get_or_create(&labels).inc_by(peer.envelopes_sent);
        duplicates.get_or_create(&labels).inc_by(peer.duplicates);
        bytes_in.get_or_create(&labels).inc_by(peer.bytes_received);
        bytes_out.get_or_create(&labels).inc_by(peer.bytes_sent);
        for (reason, count) in &peer.rejections {
            rejected
                .get_or_create(&PeerReasonLabels {
                    peer: id.clone(),
                    reason: reason.clone(),
                })
                .inc_by(*count);
        }
    }
    registry.register(
        "peer",
        "A peer this node knows of (configured, linked or refused), with its name and address",
        info,
    );
    registry.register(
        "peer_connected",
        "1 while a mesh link to the peer is up",
        connected,
    );
    registry.register_with_unit(
        "peer_last_seen_timestamp",
        "When the peer was last heard from",
        Unit::Seconds,
        last_seen,
    );
    registry.register(
        "peer_lag_envelopes",
        "Envelopes the peer holds that this node lacks, as of its last summary",
        lag,
    );
    registry.register(
        "sync_backlog_envelopes",
        "Envelopes peers hold that this node lacks, summed over peers",
        const_gauge(backlog),
    );
    registry.register(
        "envelopes_received",
        "Envelopes received from the peer and stored",
        received,
    );
    registry.register("envelopes_sent", "Envelopes sent to the peer", sent);
    registry.register(
        "envelopes_duplicate",
        "Envelopes received from the peer that were already held",
        duplicates,
    );
    registry.register(
        "envelopes_rejected",
        "Envelopes and frames refused from the peer, by reason",
        rejected,
    );
    registry.register_with_unit(
        "peer_received",
        "UDP payload received from the peer",
        Unit::Bytes,
        bytes_in,
    );
    registry.register_with_unit(
        "peer_sent",
        "UDP payload sent to the peer",
        Unit::Bytes,
        bytes_out,
    );
}

/// A peer's label: its fingerprint, or its address while it is unknown.
fn peer_label(peer: &PeerInfo) -> String {
    match (&peer.fingerprint, &peer.address) {
        (Some(fingerprint), _) => fingerprint.to_string(),
        (None, Some(address)) => address.clone(),
        (None, None) => "unknown".to_owned(),
    }
}

fn const_gauge(value: u64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(clamp(value));
    gauge
}

fn const_gauge_f64(value: f64) -> Gauge<f64, AtomicU64> {
    let gauge = Gauge::<f64, AtomicU64>::default();
    gauge.set(value);
    gauge
}

fn const_counter(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status() -> Status {
        serde_json::from_value(serde_json::json!({
            "name": "KE-CIRT",
            "fingerprint": "0123456789ABCDEF0123456789ABCDEF01234567",
            "version": "0.1.0",
            "data_dir": "d",
            "api_socket": "s",
            "uptime_seconds": 1,
            "envelopes": 3,
            "tombstones": 0,
            "incidents": 3,
            "indicators": 2,
            "authors": 1,
            "store_bytes": 4096,
            "trusted_certs": 1,
            "peers_connected": 0,
            "peers_configured": 0,
            "equivocations": 0,
            "events": 3,
            "playbook_cursor": 1
        }))
        .expect("a status")
    }

    #[test]
    fn failing_counts_runs_since_the_last_success() {
        let metrics = Metrics::default();
        let failed = Outcome::Failed {
            exit_code: Some(1),
            http_status: None,
            reason: "exit 1".into(),
        };
        let ok = Outcome::Ok {
            exit_code: Some(0),
            http_status: None,
        };
        let skipped = Outcome::Skipped { reason: "x".into() };
        for _ in 0..FAILING_RUNS - 1 {
            metrics.playbook_run("block", &failed, Duration::from_millis(5));
        }
        metrics.playbook_run("block", &skipped, Duration::ZERO);
        assert!(metrics.failing_playbooks().is_empty());
        metrics.playbook_run("block", &Outcome::TimedOut, Duration::from_secs(30));
        assert_eq!(
            metrics.failing_playbooks(),
            [("block".to_owned(), FAILING_RUNS)]
        );
        metrics.playbook_run("block", &ok, Duration::from_millis(5));
        assert!(metrics.failing_playbooks().is_empty());
    }

    #[test]
    fn the_exposition_names_every_family_once_and_ends_with_eof() {
        let metrics = Metrics::default();
        metrics.filed();
        metrics.api_request("/v1/incidents", "POST", 201, Duration::from_micros(800));
        let text = metrics.encode(&Snapshot {
            status: status(),
            peers: Vec::new(),
            cert_expiry: Vec::new(),
        });
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("cerd_envelopes_stored_total{origin=\"local\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("cerd_store_envelopes 3\n"), "{text}");
        assert!(text.contains("cerd_playbook_backlog_events 2\n"), "{text}");
        assert!(
            text.contains(
                "cerd_identity_info{fingerprint=\"0123456789ABCDEF0123456789ABCDEF01234567\",name=\"KE-CIRT\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "cerd_api_requests_total{route=\"/v1/incidents\",method=\"POST\",status=\"201\"} 1"
            ),
            "{text}"
        );
        let mut types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let all = types.len();
        types.sort_unstable();
        types.dedup();
        assert_eq!(types.len(), all, "{text}");
    }
}
