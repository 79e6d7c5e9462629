//! The node: this CERT's identity, trust store and store, and the
//! operations the API and the mesh perform on them.
//!
//! Publishing (filing, updating, retracting) is serialized per node so
//! each envelope extends the author's chain by exactly one; the wait for
//! durability happens outside that critical section so concurrent
//! publishers share flushes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use cer_proto::api::{
    AcknowledgeIncident, CertInfo, CertList, CertRef, EnvelopeExport, EnvelopeInfo, ExportQuery,
    ExportedEnvelope, FileIncident, Filed, IncidentDetail, IncidentList, IncidentQuery,
    IncidentSummary, IocMatch, IocQuery, IocSearch, RefusedCert, RetractIncident, SearchedAs,
    SignatureState, Status, UpdateIncident, DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
use cer_proto::envelope::{
    Body, DraftBody, Envelope, EnvelopeError, Kind, RetractionBody, Withdrawal,
};
use cer_proto::incident::IncidentState;
use cer_proto::model::{IndicatorType, Timestamp, Tlp};
use cer_proto::wire::Item;
use cer_proto::{EnvelopeId, FieldError, FieldErrors, Fingerprint};
use uuid::Uuid;

use crate::config::Config;
use crate::sign::{self, Identity, TrustStore, TrustedCert};
use crate::store::{
    Incoming, Inserted, NewEnvelope, Publish, Store, StoreError, StoredEnvelope, SummaryFilter,
};
use crate::verify::{self, Rejected};

/// Target of the audit trail: one structured event per state change.
pub const AUDIT: &str = "cerd::audit";

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

/// Why a received envelope was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// A chain that does not follow is the peer's problem; anything else
    /// from the store is this node's.
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Chain(chain) => IngestError::Rejected(Rejected::Chain(chain)),
            other => IngestError::Store(other),
        }
    }
}

fn store_error(text: &str) -> StoreError {
    StoreError::Corrupt {
        what: "ingest".into(),
        reason: text.to_owned(),
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
}

pub struct Node {
    playbooks: RwLock<Playbooks>,
    identity: Arc<Identity>,
    listen: std::sync::OnceLock<std::net::SocketAddr>,
    events: tokio::sync::broadcast::Sender<NodeEvent>,
    peers: RwLock<Vec<cer_proto::api::PeerInfo>>,
    trust: RwLock<Trust>,
    store: Store,
    config: Config,
    started: Instant,
}

/// Loaded playbooks by file, and the files refused at the last reload
/// (whose previous version, if any, stays loaded).
#[derive(Default)]
struct Playbooks {
    by_file: std::collections::BTreeMap<PathBuf, crate::playbook::Playbook>,
    errors: std::collections::BTreeMap<PathBuf, String>,
    /// The playbooks in force, rebuilt at each reload so every event can
    /// take them without copying.
    active: Arc<[crate::playbook::Playbook]>,
}

/// The trust store plus what the last load refused, for `cerctl certs`.
struct Trust {
    certs: TrustStore,
    refused: Vec<(PathBuf, String)>,
}

impl Node {
    pub fn new(config: Config, identity: Identity, store: Store) -> Arc<Node> {
        let node = Node {
            playbooks: RwLock::new(Playbooks::default()),
            events: tokio::sync::broadcast::channel(4096).0,
            peers: RwLock::new(Vec::new()),
            trust: RwLock::new(Trust {
                certs: TrustStore::new(),
                refused: Vec::new(),
            }),
            identity: Arc::new(identity),
            listen: std::sync::OnceLock::new(),
            store,
            config,
            started: Instant::now(),
        };
        node.reload_certs();
        node.reload_playbooks();
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

    /// Replaces the mesh's view of its peers (for `cerctl peers`).
    pub fn set_peers(&self, peers: Vec<cer_proto::api::PeerInfo>) {
        *self.peers.write().unwrap_or_else(|e| e.into_inner()) = peers;
    }

    pub fn peers(&self) -> cer_proto::api::PeerList {
        cer_proto::api::PeerList {
            peers: self.peers.read().unwrap_or_else(|e| e.into_inner()).clone(),
        }
    }

    /// Reloads `certs/`. This node's own certificate is always trusted.
    pub fn reload_certs(&self) {
        let (mut certs, refused) = TrustStore::load_dir(&self.config.certs_dir);
        for (path, error) in &refused {
            tracing::warn!(target: AUDIT, event = "cert_refused", file = %path.display(), %error, "certificate refused");
        }
        certs.insert(self.identity.public_cert());
        let mut trust = self.trust.write().unwrap_or_else(|e| e.into_inner());
        for cert in certs.iter() {
            if trust.certs.get(cert.fingerprint()).is_none()
                && cert.fingerprint() != self.fingerprint()
            {
                tracing::info!(target: AUDIT, event = "cert_added", name = cert.name(), fingerprint = %cert.fingerprint(), "certificate trusted");
            }
        }
        for cert in trust.certs.iter() {
            if certs.get(cert.fingerprint()).is_none() {
                tracing::info!(target: AUDIT, event = "cert_removed", name = cert.name(), fingerprint = %cert.fingerprint(), "certificate no longer trusted");
            }
        }
        *trust = Trust {
            certs,
            refused: refused
                .into_iter()
                .map(|(p, e)| (p, e.to_string()))
                .collect(),
        };
        drop(trust);
        self.emit(NodeEvent::TrustChanged);
    }

    /// A snapshot of the trust store.
    pub fn trust_store(&self) -> TrustStore {
        self.trust
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .certs
            .clone()
    }

    fn with_trust<T>(&self, f: impl FnOnce(&TrustStore) -> T) -> T {
        f(&self.trust.read().unwrap_or_else(|e| e.into_inner()).certs)
    }

    /// The name a fingerprint is known by, if any.
    pub fn name_of(&self, fpr: &Fingerprint) -> Option<String> {
        self.with_trust(|t| t.get(fpr).map(|c| c.name().to_owned()))
    }

    fn names(&self) -> BTreeMap<Fingerprint, String> {
        self.with_trust(|t| {
            t.iter()
                .map(|c| (c.fingerprint().clone(), c.name().to_owned()))
                .collect()
        })
    }

    /// Resolves a CERT given by name or fingerprint.
    pub fn resolve_cert(&self, who: &str) -> Option<TrustedCert> {
        self.with_trust(|t| match Fingerprint::parse(who) {
            Ok(fpr) => t.get(&fpr).cloned(),
            Err(_) => t.find_by_name(who).cloned(),
        })
    }

    /// Reloads `playbooks/`: a changed or new valid file replaces its
    /// previous version, an invalid one is reported and its previous
    /// version stays active, a removed file's playbook is dropped.
    pub fn reload_playbooks(&self) {
        use crate::playbook::spec;
        let dir = &self.config.playbooks_dir;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| spec::is_playbook_file(p) && p.is_file())
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        let mut playbooks = self.playbooks.write().unwrap_or_else(|e| e.into_inner());
        playbooks.errors.clear();
        playbooks.by_file.retain(|file, playbook| {
            let keep = files.contains(file);
            if !keep {
                tracing::info!(target: AUDIT, event = "playbook_removed", playbook = %playbook.name, file = %file.display(), "playbook unloaded");
            }
            keep
        });
        for file in files {
            match spec::load_all(&file) {
                Ok(playbook) => {
                    let duplicate = playbooks
                        .by_file
                        .iter()
                        .find(|(other, p)| **other != file && p.name == playbook.name)
                        .map(|(other, _)| other.clone());
                    if let Some(other) = duplicate {
                        let message = format!(
                            "{}: name '{}' is already used by {}",
                            file.display(),
                            playbook.name,
                            other.display()
                        );
                        tracing::warn!(target: AUDIT, event = "playbook_refused", file = %file.display(), error = %message, "playbook refused");
                        playbooks.errors.insert(file, message);
                        continue;
                    }
                    if playbooks.by_file.get(&file) != Some(&playbook) {
                        tracing::info!(target: AUDIT, event = "playbook_loaded", playbook = %playbook.name, file = %file.display(), on = ?playbook.on.iter().map(|e| e.as_str()).collect::<Vec<_>>(), "playbook loaded");
                        for warning in &playbook.warnings {
                            tracing::warn!(target: AUDIT, event = "playbook_warning", playbook = %playbook.name, %warning, "playbook loaded with a warning");
                        }
                    }
                    playbooks.by_file.insert(file, playbook);
                }
                Err(errors) => {
                    let message = errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let kept = playbooks.by_file.contains_key(&file);
                    tracing::warn!(target: AUDIT, event = "playbook_refused", file = %file.display(), error = %message, previous_version_active = kept, "playbook refused");
                    playbooks.errors.insert(file, message);
                }
            }
        }
        playbooks.active = playbooks.by_file.values().cloned().collect();
    }

    /// The playbooks in force.
    pub fn playbooks(&self) -> Arc<[crate::playbook::Playbook]> {
        self.playbooks
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .active
            .clone()
    }

    pub fn playbook_list(&self) -> cer_proto::api::PlaybookList {
        let playbooks = self.playbooks.read().unwrap_or_else(|e| e.into_inner());
        cer_proto::api::PlaybookList {
            playbooks: playbooks
                .by_file
                .iter()
                .map(|(file, p)| cer_proto::api::PlaybookInfo {
                    name: p.name.clone(),
                    file: file.display().to_string(),
                    description: p.description.clone(),
                    on: p.on.iter().map(|e| e.as_str().to_owned()).collect(),
                    max_tlp: p.max_tlp,
                    actions: p.actions.len(),
                })
                .collect(),
            errors: playbooks
                .errors
                .iter()
                .map(|(file, message)| cer_proto::api::PlaybookProblem {
                    file: file.display().to_string(),
                    message: message.clone(),
                })
                .collect(),
        }
    }

    /// What `playbook` would run for an incident, without running it.
    pub fn test_playbook(
        &self,
        request: &cer_proto::api::TestPlaybook,
    ) -> Result<cer_proto::api::PlaybookTest, NodeError> {
        use crate::playbook::{plan, spec, EventKind};
        let playbook = spec::parse_all(&request.yaml, &request.file).map_err(|errors| {
            NodeError::Invalid(FieldErrors(
                errors
                    .iter()
                    .map(|e| FieldError::new("playbook", e.to_string()))
                    .collect(),
            ))
        })?;
        let state = self.existing(request.incident)?;
        let event = match &request.event {
            Some(name) => EventKind::parse(name)
                .ok_or_else(|| FieldError::new("event", format!("unknown event '{name}'")))?,
            None => playbook
                .on
                .iter()
                .copied()
                .find(|e| e.is_incident())
                .ok_or_else(|| {
                    FieldError::new(
                        "event",
                        "the playbook reacts to no incident event; give --event",
                    )
                })?,
        };
        let names = |f: &Fingerprint| self.name_of(f);
        let trigger = plan::Trigger {
            event,
            incident: Some(&state),
            peer: None,
            own: self.fingerprint(),
            names: &names,
            version: "test".into(),
        };
        let (would_run, skipped) = match plan::plan_one(&playbook, &trigger) {
            Ok(actions) => (actions.iter().map(|a| a.describe()).collect(), None),
            Err(skip) => (Vec::new(), Some(skip.to_string())),
        };
        Ok(cer_proto::api::PlaybookTest {
            playbook: playbook.name,
            event: event.as_str().to_owned(),
            would_run,
            skipped,
        })
    }

    // ---- publishing -------------------------------------------------

    pub async fn file(&self, request: FileIncident) -> Result<Filed, NodeError> {
        let mut errors = FieldErrors::default();
        let body = match request.to_body() {
            Ok(body) => Some(body),
            Err(e) => {
                errors.0.extend(e.0);
                None
            }
        };
        let recipients = match self.recipients_for(request.tlp, &request.to) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.0.extend(e.0);
                None
            }
        };
        let (Some(body), Some(recipients)) = (body, recipients) else {
            return Err(NodeError::Invalid(errors));
        };
        self.publish_withdrawing(
            Uuid::new_v4(),
            request.tlp,
            recipients,
            Body::Incident(body),
            Vec::new(),
            request.request_id,
        )
        .await
    }

    pub async fn update(&self, id: Uuid, request: UpdateIncident) -> Result<Filed, NodeError> {
        let body = request.to_body()?;
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} was retracted by its author; it can no longer be updated"
            )));
        }
        if !state.readable {
            return Err(NodeError::Forbidden(format!(
                "incident {id} is encrypted for other CERTs; this node cannot read or update it"
            )));
        }
        let reporter = state
            .reporter
            .clone()
            .expect("a readable incident has a reporter");
        if body.changes_fields() && reporter != *self.fingerprint() {
            let name = self
                .name_of(&reporter)
                .unwrap_or_else(|| reporter.to_string());
            return Err(NodeError::Forbidden(format!(
                "only the incident's author, {name}, can change its status, severity, title, description or classification; notes, indicators and tags are open to every CERT"
            )));
        }
        let mut recipients = state.recipients.clone();
        if state.tlp.is_encrypted()
            && !recipients.contains(&reporter)
            && reporter != *self.fingerprint()
        {
            recipients.push(reporter);
        }
        self.publish(id, state.tlp, recipients, Body::Update(body))
            .await
    }

    pub async fn retract(&self, id: Uuid, request: RetractIncident) -> Result<Filed, NodeError> {
        let body = RetractionBody {
            target: None,
            reason: request
                .reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
        };
        Body::Retraction(body.clone()).validate()?;
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} is already retracted"
            )));
        }
        if state.reporter.as_ref() != Some(self.fingerprint()) {
            return Err(NodeError::Forbidden(format!(
                "only the incident's author can retract incident {id}"
            )));
        }
        // The retraction names each of this node's envelopes it withdraws,
        // so every holder can prove the tombstones it keeps in their place.
        let withdraws: Vec<Withdrawal> = state
            .timeline
            .iter()
            .filter(|e| e.author == *self.fingerprint() && e.kind != Kind::Retraction)
            .map(|e| Withdrawal {
                seq: e.seq,
                id: e.envelope,
                kind: e.kind,
                created: e.at,
            })
            .collect();
        self.publish_withdrawing(
            id,
            state.tlp,
            state.recipients.clone(),
            Body::Retraction(body),
            withdraws,
            None,
        )
        .await
    }

    /// Sends the incident's author a signed receipt.
    pub async fn acknowledge(
        &self,
        id: Uuid,
        request: AcknowledgeIncident,
    ) -> Result<Filed, NodeError> {
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} was retracted by its author"
            )));
        }
        if !state.readable {
            return Err(NodeError::Forbidden(format!(
                "incident {id} is encrypted for other CERTs; only its recipients acknowledge it"
            )));
        }
        let reporter = state
            .reporter
            .clone()
            .expect("a readable incident has a reporter");
        if reporter == *self.fingerprint() {
            return Err(NodeError::Conflict(format!(
                "this node filed incident {id}; receipts are for its recipients"
            )));
        }
        let target = state
            .timeline
            .iter()
            .find(|e| e.kind == cer_proto::envelope::Kind::Incident)
            .map(|e| e.envelope)
            .ok_or_else(|| {
                NodeError::NotFound(format!("incident {id} has no filing envelope here"))
            })?;
        let body = Body::Receipt(cer_proto::envelope::ReceiptBody {
            target,
            state: request.state,
            comment: request
                .comment
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty()),
        });
        body.validate()?;
        let mut recipients = state.recipients.clone();
        recipients.retain(|r| r != self.fingerprint());
        if state.tlp.is_encrypted() && !recipients.contains(&reporter) {
            recipients.push(reporter);
        }
        self.publish(id, state.tlp, recipients, body).await
    }

    /// Adds a certificate to the trust store folder and reloads it.
    pub fn add_cert(&self, armored: &str) -> Result<CertInfo, NodeError> {
        let cert = TrustedCert::parse(armored.as_bytes())
            .map_err(|e| FieldError::new("certificate", e.to_string()))?;
        if self.with_trust(|t| t.get(cert.fingerprint()).is_some()) {
            return Err(NodeError::Conflict(format!(
                "{} ({}) is already trusted",
                cert.name(),
                cert.fingerprint()
            )));
        }
        let dir = &self.config.certs_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| NodeError::Sign(format!("creating {}: {e}", dir.display())))?;
        let file = dir.join(format!(
            "{}-{}.asc",
            crate::daemon::file_safe(cert.name()),
            cert.fingerprint().short()
        ));
        std::fs::write(&file, cert.armored())
            .map_err(|e| NodeError::Sign(format!("writing {}: {e}", file.display())))?;
        self.reload_certs();
        Ok(CertInfo {
            name: cert.name().to_owned(),
            fingerprint: cert.fingerprint().clone(),
            own: false,
            can_encrypt: cert.can_encrypt(),
        })
    }

    /// Removes every file in the trust store folder holding this
    /// certificate and reloads it. Connected peers using it are dropped.
    pub fn remove_cert(&self, fingerprint: &Fingerprint) -> Result<CertInfo, NodeError> {
        if fingerprint == self.fingerprint() {
            return Err(NodeError::Forbidden(
                "this node's own certificate cannot be removed".into(),
            ));
        }
        let Some(cert) = self.with_trust(|t| t.get(fingerprint).cloned()) else {
            return Err(NodeError::NotFound(format!(
                "no trusted certificate {fingerprint}"
            )));
        };
        let dir = &self.config.certs_dir;
        let entries = std::fs::read_dir(dir)
            .map_err(|e| NodeError::Sign(format!("reading {}: {e}", dir.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let holds = std::fs::read(&path)
                .ok()
                .and_then(|bytes| TrustedCert::parse(&bytes).ok())
                .is_some_and(|c| c.fingerprint() == fingerprint);
            if holds {
                std::fs::remove_file(&path)
                    .map_err(|e| NodeError::Sign(format!("removing {}: {e}", path.display())))?;
            }
        }
        self.reload_certs();
        Ok(CertInfo {
            name: cert.name().to_owned(),
            fingerprint: fingerprint.clone(),
            own: false,
            can_encrypt: cert.can_encrypt(),
        })
    }

    /// [`Node::existing`] on a blocking thread, for async paths.
    async fn existing_now(&self, id: Uuid) -> Result<IncidentState, NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.incident(id))
            .await
            .map_err(|e| NodeError::Sign(format!("reading incident {id}: {e}")))??
            .ok_or_else(|| NodeError::NotFound(format!("no incident {id}")))
    }

    fn existing(&self, id: Uuid) -> Result<IncidentState, NodeError> {
        self.store
            .incident(id)?
            .ok_or_else(|| NodeError::NotFound(format!("no incident {id}")))
    }

    /// Who may read an envelope of this TLP: named recipients, or for AMBER
    /// without names every CERT in the trust store. Never includes self
    /// (the author always can read its own envelopes).
    fn recipients_for(&self, tlp: Tlp, to: &[String]) -> Result<Vec<Fingerprint>, FieldErrors> {
        let mut errors = FieldErrors::default();
        if !tlp.is_encrypted() {
            if !to.is_empty() {
                errors.push(FieldError::new(
                    "to",
                    format!("recipients apply to TLP:AMBER and above; TLP:{tlp} is shared with every peer"),
                ));
            }
            return errors.into_result().map(|()| vec![]);
        }
        if tlp == Tlp::Red && to.is_empty() {
            errors.push(FieldError::new(
                "to",
                "TLP:RED requires named recipients (--to NAME or FINGERPRINT)",
            ));
            return Err(errors);
        }
        let mut recipients = Vec::new();
        if to.is_empty() {
            self.with_trust(|t| {
                for cert in t.iter() {
                    if cert.fingerprint() != self.fingerprint() && cert.can_encrypt() {
                        recipients.push(cert.fingerprint().clone());
                    }
                }
            });
        }
        for (i, who) in to.iter().enumerate() {
            match self.resolve_cert(who.trim()) {
                None => errors.push(FieldError::new(
                    format!("to[{i}]"),
                    format!("no trusted CERT named or with fingerprint '{who}' (see `cerctl certs list`)"),
                )),
                Some(cert) if !cert.can_encrypt() => errors.push(FieldError::new(
                    format!("to[{i}]"),
                    format!("{}'s certificate has no encryption key", cert.name()),
                )),
                Some(cert) if cert.fingerprint() == self.fingerprint() => {}
                Some(cert) => {
                    if !recipients.contains(cert.fingerprint()) {
                        recipients.push(cert.fingerprint().clone());
                    }
                }
            }
        }
        errors.into_result().map(|()| recipients)
    }

    async fn publish(
        &self,
        subject: Uuid,
        tlp: Tlp,
        recipients: Vec<Fingerprint>,
        body: Body,
    ) -> Result<Filed, NodeError> {
        self.publish_withdrawing(subject, tlp, recipients, body, Vec::new(), None)
            .await
    }

    async fn publish_withdrawing(
        &self,
        subject: Uuid,
        tlp: Tlp,
        recipients: Vec<Fingerprint>,
        body: Body,
        withdraws: Vec<Withdrawal>,
        request: Option<Uuid>,
    ) -> Result<Filed, NodeError> {
        let kind = body.kind();
        let (draft_body, readable) = if tlp.is_encrypted() {
            let plain =
                serde_json::to_vec(&body.to_value()).map_err(|e| NodeError::Sign(e.to_string()))?;
            let certs: Vec<TrustedCert> = self.with_trust(|t| {
                recipients
                    .iter()
                    .filter_map(|f| t.get(f).cloned())
                    .collect()
            });
            if certs.len() != recipients.len() {
                return Err(NodeError::Conflict(
                    "a recipient's certificate is no longer in the trust store".into(),
                ));
            }
            let own = self.identity.public_cert();
            // OpenPGP encryption is CPU work: keep it off the runtime.
            let armored = tokio::task::spawn_blocking(move || {
                let mut to: Vec<&TrustedCert> = certs.iter().collect();
                to.push(&own);
                sign::encrypt_armored(&plain, &to)
            })
            .await
            .map_err(|e| NodeError::Sign(e.to_string()))?
            .map_err(|e| NodeError::Sign(e.to_string()))?;
            (DraftBody::Encrypted { kind, armored }, Some(body))
        } else {
            (DraftBody::Plain(body.clone()), Some(body))
        };

        let identity = self.identity.clone();
        let published = self
            .store
            .publish(Publish {
                author: self.fingerprint().clone(),
                subject,
                created: now(),
                tlp,
                recipients,
                body: draft_body,
                readable,
                withdraws,
                request,
                sign: Box::new(move |bytes| identity.sign_detached(bytes)),
            })
            .await
            .map_err(|e| match e {
                StoreError::Envelope(EnvelopeError::TooLarge { .. }) => {
                    NodeError::TooLarge(e.to_string())
                }
                StoreError::Envelope(EnvelopeError::Invalid(field)) => {
                    NodeError::Invalid(field.into())
                }
                other => NodeError::Store(other),
            })?;
        let filed = published.filed;
        if published.repeated {
            tracing::info!(target: AUDIT, event = "repeated_request", incident = %filed.incident, envelope = %filed.envelope, "request already answered; nothing new published");
        } else {
            tracing::info!(target: AUDIT, event = filed.kind.as_str(), incident = %filed.incident, envelope = %filed.envelope, seq = filed.seq, tlp = %tlp, "published");
        }
        Ok(filed)
    }

    // ---- receiving --------------------------------------------------

    /// Verifies received items (signatures on every core): each becomes
    /// something the store can take, or the reason it is refused. Blocking:
    /// call from a blocking thread.
    pub fn verify_items(&self, items: Vec<Item>) -> Vec<Result<Incoming, Rejected>> {
        let trust = self.trust_store();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if items.len() < 16 || threads < 2 {
            return items
                .into_iter()
                .map(|item| self.verify_item(&trust, item))
                .collect();
        }
        let chunk = items.len().div_ceil(threads);
        let mut parts: Vec<Vec<Item>> = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            parts.push(items.by_ref().take(chunk).collect());
        }
        let trust = &trust;
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    scope.spawn(move || {
                        part.into_iter()
                            .map(|item| self.verify_item(trust, item))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| {
                    w.join().unwrap_or_else(|_| {
                        vec![Err(Rejected::Malformed("verification failed".into()))]
                    })
                })
                .collect()
        })
    }

    fn verify_item(&self, trust: &TrustStore, item: Item) -> Result<Incoming, Rejected> {
        match item {
            Item::Live { bytes, sig } => {
                let envelope = verify::verify_signed(trust, &bytes, &sig)?;
                let body = self.readable_body(&envelope)?;
                Ok(Incoming::Live(Box::new(NewEnvelope {
                    id: EnvelopeId::of(&bytes),
                    bytes,
                    sig,
                    envelope,
                    body,
                })))
            }
            Item::Tombstone(wire) => {
                let id = wire.id;
                Ok(Incoming::Tombstone(
                    id,
                    verify::verify_tombstone(trust, wire)?,
                ))
            }
        }
    }

    /// Verifies and stores received items, waiting for them to be durable.
    /// Blocking: for tools and benchmarks, not runtime workers.
    pub fn ingest_blocking(
        &self,
        items: Vec<Item>,
        from: Option<Fingerprint>,
    ) -> Vec<Result<Inserted, IngestError>> {
        let verified = self.verify_items(items);
        let mut results: Vec<Option<Result<Inserted, IngestError>>> = Vec::new();
        let mut good = Vec::new();
        for v in verified {
            match v {
                Ok(incoming) => {
                    good.push(incoming);
                    results.push(None);
                }
                Err(rejected) => results.push(Some(Err(rejected.into()))),
            }
        }
        let mut stored = match self.store.ingest_blocking(good, from) {
            Ok(stored) => stored.into_iter(),
            Err(e) => {
                let text = e.to_string();
                return results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(IngestError::Store(store_error(&text)))))
                    .collect();
            }
        };
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| match stored.next() {
                    Some(result) => result.map_err(IngestError::from_store),
                    None => Err(IngestError::Store(store_error("missing result"))),
                })
            })
            .collect()
    }

    /// The body as this node can read it: plaintext, or decrypted when
    /// addressed to this node.
    fn readable_body(&self, envelope: &Envelope) -> Result<Option<Body>, Rejected> {
        Ok(match (&envelope.body, &envelope.body_enc) {
            (Some(_), _) => match envelope.plain_body() {
                Some(Ok(body)) => Some(body),
                Some(Err(e)) => return Err(Rejected::Malformed(format!("body: {e}"))),
                None => None,
            },
            (None, Some(armored))
                if envelope.recipients.contains(self.fingerprint())
                    || envelope.author == *self.fingerprint() =>
            {
                match self.identity.decrypt_armored(armored) {
                    Ok(plain) => Body::from_slice(envelope.kind, &plain).ok(),
                    Err(e) => {
                        tracing::warn!(target: AUDIT, event = "decrypt_failed", author = %envelope.author, seq = envelope.seq, error = %e, "cannot decrypt an envelope addressed to this node");
                        None
                    }
                }
            }
            _ => None,
        })
    }

    // ---- queries ----------------------------------------------------

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
            peers_connected: self
                .peers
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .filter(|p| p.connected)
                .count() as u64,
            peers_configured: self.config.peers.len() as u64,
            equivocations: counts.equivocations,
            events: *self.store.durable_events().borrow(),
            playbook_cursor: self
                .store
                .cursor(crate::playbook::driver::CURSOR)
                .unwrap_or(0),
        }
    }

    pub fn list(&self, query: &IncidentQuery) -> Result<IncidentList, NodeError> {
        let limit = query.limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if limit == 0 || limit > MAX_LIST_LIMIT {
            return Err(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_LIST_LIMIT}"),
            )
            .into());
        }
        let from = match &query.from {
            None => None,
            Some(who) => Some(
                self.resolve_cert(who)
                    .map(|c| c.fingerprint().clone())
                    .ok_or_else(|| {
                        FieldError::new(
                            "from",
                            format!("no trusted CERT named or with fingerprint '{who}'"),
                        )
                    })?,
            ),
        };
        if let Some(pattern) = &query.classification {
            cer_proto::model::Classification::check_pattern(pattern)?;
        }
        let filter = ListFilter { query, from };
        let (mut incidents, truncated) = self.store.list(&filter, limit)?;
        for summary in &mut incidents {
            summary.reporter_name = summary.reporter.as_ref().and_then(|r| self.name_of(r));
        }
        Ok(IncidentList {
            incidents,
            truncated,
        })
    }

    pub fn detail(&self, id: Uuid) -> Result<IncidentDetail, NodeError> {
        let incident = self.existing(id)?;
        let mut envelopes = Vec::new();
        for (eid, stored) in self.store.envelopes_of(id)? {
            let info = match stored {
                StoredEnvelope::Live { bytes, .. } => {
                    let envelope =
                        Envelope::parse(&bytes).map_err(|e| NodeError::Sign(e.to_string()))?;
                    EnvelopeInfo {
                        id: eid,
                        author: envelope.author,
                        seq: envelope.seq,
                        kind: envelope.kind,
                        created: envelope.created,
                        tlp: envelope.tlp,
                        recipients: envelope.recipients,
                        signature: SignatureState::Good,
                        bytes: bytes.len(),
                    }
                }
                StoredEnvelope::Tombstone(t) => EnvelopeInfo {
                    id: eid,
                    author: t.author,
                    seq: t.seq,
                    kind: t.kind,
                    created: t.created,
                    tlp: t.tlp,
                    recipients: t.recipients,
                    signature: SignatureState::Withdrawn,
                    bytes: 0,
                },
            };
            envelopes.push(info);
        }
        let order: BTreeMap<EnvelopeId, usize> = incident
            .timeline
            .iter()
            .enumerate()
            .map(|(i, e)| (e.envelope, i))
            .collect();
        envelopes.sort_by_key(|e| order.get(&e.id).copied().unwrap_or(usize::MAX));
        Ok(IncidentDetail {
            incident,
            envelopes,
            names: self.names(),
            local: self.store.annotations(id)?,
        })
    }

    pub fn search_ioc(&self, query: &IocQuery) -> Result<IocSearch, NodeError> {
        let searched: Vec<(IndicatorType, String)> = match query.kind {
            Some(kind) => vec![(kind, kind.normalize(&query.value)?)],
            None => IndicatorType::candidates(&query.value),
        };
        if searched.is_empty() {
            return Err(FieldError::new(
                "value",
                format!("'{}' is not a valid indicator of any type", query.value),
            )
            .into());
        }
        let mut matches = Vec::new();
        for (kind, value) in &searched {
            for (incident, hit) in self.store.indicator_hits(*kind, value)? {
                let Some(summary) = self.store.summary(incident)? else {
                    continue;
                };
                matches.push(IocMatch {
                    kind: *kind,
                    value: value.clone(),
                    incident,
                    title: summary.title,
                    severity: summary.severity,
                    tlp: summary.tlp,
                    reported_by: hit
                        .reported_by
                        .iter()
                        .map(|f| CertRef {
                            fingerprint: f.clone(),
                            name: self.name_of(f),
                        })
                        .collect(),
                    first_seen: hit.first_seen,
                    last_seen: hit.last_seen,
                    sightings: hit.sightings,
                });
            }
        }
        matches.sort_by_key(|m| std::cmp::Reverse(m.last_seen));
        Ok(IocSearch {
            searched: searched
                .into_iter()
                .map(|(kind, value)| SearchedAs { kind, value })
                .collect(),
            matches,
        })
    }

    pub fn certs(&self) -> CertList {
        let trust = self.trust.read().unwrap_or_else(|e| e.into_inner());
        let mut certs: Vec<CertInfo> = trust
            .certs
            .iter()
            .map(|c| CertInfo {
                name: c.name().to_owned(),
                fingerprint: c.fingerprint().clone(),
                own: c.fingerprint() == self.fingerprint(),
                can_encrypt: c.can_encrypt(),
            })
            .collect();
        certs.sort_by(|a, b| (!a.own, &a.name).cmp(&(!b.own, &b.name)));
        CertList {
            certs,
            refused: trust
                .refused
                .iter()
                .map(|(file, reason)| RefusedCert {
                    file: file.display().to_string(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }

    pub fn export(&self, query: &ExportQuery) -> Result<EnvelopeExport, NodeError> {
        let ids: Vec<EnvelopeId> = match query.incident {
            Some(incident) => {
                self.existing(incident)?;
                self.store
                    .envelopes_of(incident)?
                    .into_iter()
                    .map(|(id, _)| id)
                    .collect()
            }
            None => self.store.envelope_ids().collect::<Result<_, _>>()?,
        };
        let mut envelopes = Vec::new();
        for id in ids {
            if let Some(StoredEnvelope::Live { bytes, sig }) = self.store.envelope(&id)? {
                let json = String::from_utf8(bytes)
                    .map_err(|_| NodeError::Sign(format!("stored envelope {id} is not UTF-8")))?;
                envelopes.push(ExportedEnvelope {
                    id,
                    json,
                    sig: base64_encode(&sig),
                });
            }
        }
        Ok(EnvelopeExport { envelopes })
    }
}

/// The current time, as envelopes record it.
pub fn now() -> Timestamp {
    Timestamp(time::OffsetDateTime::now_utc())
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct ListFilter<'a> {
    query: &'a IncidentQuery,
    from: Option<Fingerprint>,
}

impl SummaryFilter for ListFilter<'_> {
    fn since(&self) -> Option<Timestamp> {
        self.query.since
    }

    fn accept(&self, s: &IncidentSummary) -> bool {
        let q = self.query;
        (q.include_retracted || !s.retracted)
            && q.severity_at_least
                .is_none_or(|min| s.severity.is_some_and(|sev| sev >= min))
            && q.tlp.is_none_or(|tlp| s.tlp == tlp)
            && q.status.is_none_or(|st| s.status == Some(st))
            && q.classification
                .as_ref()
                .is_none_or(|p| s.classification.as_ref().is_some_and(|c| c.matches(p)))
            && self
                .from
                .as_ref()
                .is_none_or(|f| s.reporter.as_ref() == Some(f))
    }
}
