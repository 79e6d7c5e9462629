//! How the node is doing: the Prometheus exposition (a snapshot of what
//! the node holds, handed to `metrics`) and the health checks behind
//! `cerctl health`.

use std::time::{Duration, Instant};

use cer_proto::api::{Health, HealthCheck};

use super::Node;
use crate::metrics::{Snapshot, FAILING_RUNS};

/// How long the store's writer may take to flush the health probe's write
/// before the store counts as not writable.
pub const STORE_PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The cursor the health probe writes (its value: seconds since the
/// epoch of the last probe).
const PROBE_CURSOR: &str = "health-probe";

impl Node {
    /// The metrics text a scrape answers. Reads the store's size and
    /// counts: call it on a blocking thread.
    pub fn metrics_text(&self) -> String {
        let own = self.fingerprint().clone();
        let cert_expiry = self
            .trust_store()
            .iter()
            .filter_map(|cert| {
                let expires = cert.expires()?;
                Some((
                    cert.fingerprint().to_string(),
                    cert.name().to_owned(),
                    *cert.fingerprint() == own,
                    expires,
                ))
            })
            .collect();
        self.metrics.encode(&Snapshot {
            status: self.status(),
            peers: self.peers().peers,
            cert_expiry,
        })
    }

    /// Runs the health checks: the store takes a write (flushed), a
    /// configured peer is connected, and no playbook failed its last
    /// [`FAILING_RUNS`] runs.
    pub async fn health(&self) -> Health {
        let mut checks = vec![self.check_store().await];
        let configured = self.config().peers.len();
        let connected = self.peer_board().connected();
        checks.push(HealthCheck {
            name: "peers".into(),
            ok: configured == 0 || connected > 0,
            detail: match (configured, connected) {
                (0, 0) => "none configured".to_owned(),
                (0, n) => format!("none configured, {n} connected"),
                (c, 0) => format!(
                    "no peer connected ({c} configured: {})",
                    self.config()
                        .peers
                        .iter()
                        .map(|p| p.addr.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                (c, n) => format!("{n} connected, {c} configured"),
            },
        });
        let failing = self.metrics.failing_playbooks();
        checks.push(HealthCheck {
            name: "playbooks".into(),
            ok: failing.is_empty(),
            detail: if failing.is_empty() {
                format!("none failed its last {FAILING_RUNS} runs")
            } else {
                failing
                    .iter()
                    .map(|(name, runs)| {
                        format!(
                            "{} failed its last {runs} runs",
                            cer_proto::text::escape(name)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
        Health::from_checks(checks)
    }

    /// A real write through the store's writer, answered once flushed.
    async fn check_store(&self) -> HealthCheck {
        let started = Instant::now();
        let now = crate::audit::now().0.unix_timestamp().max(0) as u64;
        let probe = self.store().set_cursor(PROBE_CURSOR, now);
        let (ok, detail) = match tokio::time::timeout(STORE_PROBE_TIMEOUT, probe).await {
            Ok(Ok(())) => (
                true,
                format!(
                    "a write was flushed in {} ms",
                    started.elapsed().as_millis()
                ),
            ),
            Ok(Err(e)) => (false, format!("a write failed: {e}")),
            Err(_) => (
                false,
                format!(
                    "a write was not flushed within {} s",
                    STORE_PROBE_TIMEOUT.as_secs()
                ),
            ),
        };
        HealthCheck {
            name: "store".into(),
            ok,
            detail,
        }
    }
}
