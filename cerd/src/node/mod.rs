//! The node: this CERT's identity, and the parts the API and the mesh act
//! through. Each part has one owner:
//!
//! - [`Trust`](crate::trust::Trust): the certificates in `certs/`;
//! - the playbook [`Registry`]: the playbooks in force;
//! - the [`Store`]: everything durable, written by its one writer;
//! - the [`PeerBoard`]: what the mesh reports about its peers.
//!
//! What the node itself does is split by concern: publishing (`publish`),
//! verifying what peers send (`ingest`) and answering queries (`query`).

mod automation;
mod backup;
mod health;
pub use backup::{CERTS, OWN_CERT, RETIRED_KEYS, SECRET_KEY};
mod ingest;
mod lifecycle;
mod publish;
mod query;
mod search;

use std::sync::Arc;
use std::time::Instant;

use cer_proto::api::Status;
use cer_proto::{FieldError, FieldErrors, Fingerprint};

use crate::config::Config;
use crate::mesh::PeerBoard;
use crate::playbook::{Playbook, Registry, CURSOR};
use crate::sign::{Identity, TrustStore, TrustedCert};
use crate::store::{Store, StoreError};
use crate::trust::{Trust, TrustError};

pub use ingest::IngestError;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("{0}")]
    Invalid(FieldErrors),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing: {0}")]
    Sign(String),
}

impl From<FieldError> for NodeError {
    fn from(e: FieldError) -> Self {
        NodeError::Invalid(e.into())
    }
}

impl From<FieldErrors> for NodeError {
    fn from(e: FieldErrors) -> Self {
        NodeError::Invalid(e)
    }
}

impl From<TrustError> for NodeError {
    fn from(e: TrustError) -> Self {
        match e {
            TrustError::Invalid(reason) => FieldError::new("certificate", reason).into(),
            TrustError::Conflict(m) => NodeError::Conflict(m),
            TrustError::NotFound(m) => NodeError::NotFound(m),
            TrustError::Forbidden(m) => NodeError::Forbidden(m),
            files @ TrustError::Files { .. } => NodeError::Sign(files.to_string()),
        }
    }
}

/// What happened on this node that is not in the store's event log: the
/// trust store and mesh links. (Stored envelopes and equivocations are
/// durable events of the store, read with a cursor.)
#[derive(Debug, Clone, PartialEq)]
pub enum NodeEvent {
    /// The trust store was reloaded.
    TrustChanged,
    /// A mesh link to a peer came up or went down.
    PeerUp {
        peer: Fingerprint,
    },
    PeerDown {
        peer: Fingerprint,
        reason: String,
    },
    /// The operator resumed a playbook a limit had paused; its held events
    /// run now.
    PlaybookResumed {
        playbook: String,
    },
}

pub struct Node {
    identity: Arc<Identity>,
    listen: std::sync::OnceLock<std::net::SocketAddr>,
    events: tokio::sync::broadcast::Sender<NodeEvent>,
    board: PeerBoard,
    trust: Trust,
    playbooks: Registry,
    warninglists: std::sync::RwLock<Arc<crate::warninglist::Warninglists>>,
    store: Store,
    config: Config,
    started: Instant,
    metrics: Arc<crate::metrics::Metrics>,
}

impl Node {
    pub fn new(config: Config, identity: Identity, store: Store) -> Arc<Node> {
        let node = Node {
            trust: Trust::load(&config.certs_dir, identity.public_cert()),
            playbooks: Registry::default(),
            warninglists: Default::default(),
            events: tokio::sync::broadcast::channel(4096).0,
            board: PeerBoard::default(),
            identity: Arc::new(identity),
            listen: std::sync::OnceLock::new(),
            store,
            config,
            started: Instant::now(),
            metrics: Arc::default(),
        };
        node.reload_playbooks();
        node.reload_warninglists();
        Arc::new(node)
    }

    pub fn identity(&self) -> &Arc<Identity> {
        &self.identity
    }

    /// Records the address the mesh listens on, once bound.
    pub fn set_listen(&self, addr: std::net::SocketAddr) {
        let _ = self.listen.set(addr);
    }

    pub fn listen(&self) -> Option<std::net::SocketAddr> {
        self.listen.get().copied()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The node's counters, for the parts that count (API, playbooks,
    /// publishing, TAXII) and for the scrape.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// When indicators expire on this node, as of now.
    pub fn expiry(&self) -> cer_proto::incident::Expiry {
        cer_proto::incident::Expiry {
            now: crate::audit::now(),
            lifetimes: self.config.expiry.clone(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        self.identity.fingerprint()
    }

    /// Events from now on. A receiver that falls behind by more than the
    /// channel's capacity sees `Lagged` and must resynchronise.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    /// Announces an event; nobody listening is fine.
    pub fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event);
    }

    /// The board the mesh keeps about its peers.
    pub fn peer_board(&self) -> &PeerBoard {
        &self.board
    }

    pub fn peers(&self) -> cer_proto::api::PeerList {
        self.board.list()
    }

    /// Reloads `certs/` and tells the mesh.
    pub fn reload_certs(&self) {
        // Told only when the keys changed: the watcher also reloads after
        // `certs add`/`remove` wrote the folder, and the mesh starts again
        // on each change (redials, and logs refusals afresh).
        if self.trust.reload() {
            self.emit(NodeEvent::TrustChanged);
        }
    }

    /// A snapshot of the trust store.
    pub fn trust_store(&self) -> TrustStore {
        self.trust.snapshot()
    }

    pub(crate) fn with_trust<T>(&self, f: impl FnOnce(&TrustStore) -> T) -> T {
        self.trust.with(f)
    }

    /// The name a fingerprint is known by, if any.
    /// Whether this certificate is in the trust store in force.
    pub fn trusts(&self, fpr: &Fingerprint) -> bool {
        self.with_trust(|t| t.get(fpr).is_some())
    }

    pub fn name_of(&self, fpr: &Fingerprint) -> Option<String> {
        self.trust.name_of(fpr)
    }

    /// Resolves a CERT given by name or fingerprint.
    pub fn resolve_cert(&self, who: &str) -> Option<TrustedCert> {
        self.trust.resolve(who)
    }

    /// Adds a certificate to the trust store folder and reloads it.
    pub fn add_cert(&self, armored: &str) -> Result<cer_proto::api::CertInfo, NodeError> {
        let info = self.trust.add(armored)?;
        self.emit(NodeEvent::TrustChanged);
        Ok(info)
    }

    /// Removes every file in the trust store folder holding this
    /// certificate and reloads it. Connected peers using it are dropped.
    pub fn remove_cert(
        &self,
        fingerprint: &Fingerprint,
    ) -> Result<cer_proto::api::CertInfo, NodeError> {
        let info = self.trust.remove(fingerprint)?;
        self.emit(NodeEvent::TrustChanged);
        Ok(info)
    }

    pub fn certs(&self) -> cer_proto::api::CertList {
        self.trust.list()
    }

    /// Reloads `playbooks/`.
    pub fn reload_playbooks(&self) {
        self.playbooks.reload(&self.config.playbooks_dir);
    }

    /// Reads the warninglists folder again; a file refused is logged and
    /// left out, the others take effect.
    pub fn reload_warninglists(&self) {
        let (lists, errors) =
            crate::warninglist::Warninglists::load_dir(&self.config.warninglists_dir);
        for error in &errors {
            tracing::warn!(target: crate::audit::AUDIT, event = "warninglist_refused", file = %cer_proto::text::escape(&error.file), reason = %cer_proto::text::escape(&error.reason), "warninglist refused");
        }
        tracing::info!(lists = lists.len(), dir = %self.config.warninglists_dir.display(), "warninglists loaded");
        *self.warninglists.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(lists);
    }

    /// The warninglists in force.
    pub fn warninglists(&self) -> Arc<crate::warninglist::Warninglists> {
        self.warninglists
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The playbooks in force.
    pub fn playbooks(&self) -> Arc<[Playbook]> {
        self.playbooks.active()
    }

    pub fn status(&self) -> Status {
        let counts = self.store.counts();
        Status {
            name: self.identity.name().to_owned(),
            fingerprint: self.fingerprint().clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            data_dir: self.config.data_dir.display().to_string(),
            api_socket: self.config.api_socket.display().to_string(),
            listen: self.listen().map(|a| a.to_string()),
            uptime_seconds: self.started.elapsed().as_secs(),
            envelopes: counts.envelopes,
            tombstones: counts.tombstones,
            incidents: counts.incidents,
            indicators: counts.indicators,
            authors: counts.authors,
            store_bytes: self.store.size_on_disk(),
            trusted_certs: self.with_trust(|t| t.len() as u64),
            peers_connected: self.board.connected() as u64,
            peers_configured: self.config.peers.len() as u64,
            equivocations: counts.equivocations,
            events: *self.store.durable_events().borrow(),
            playbook_cursor: self.store.cursor(CURSOR).unwrap_or(0),
        }
    }
}
