//! The mesh driver: runs the sync state machine (`cer_proto::sync`) over
//! authenticated QUIC links.
//!
//! One engine task owns the state machine and every link's bookkeeping; it
//! is the only place that changes them, so every transition is visible in
//! one loop. Around it:
//!
//! - an accept task authenticates incoming connections,
//! - one dialer task per configured peer reconnects with exponential
//!   back-off, forever,
//! - per link, a reader task (frames in, rate-limited) and an outbox task
//!   (frames and envelope ranges out, read from the store in batches).
//!
//! Received envelopes go through the ingest pipeline: a task that has each
//! batch verified on blocking threads (signatures on every core), queues it
//! to the store's writer and, without waiting, goes on with the next batch.
//! The writer's answer comes back to the engine as an input once the batch
//! is durable; only then is the state machine told, so an envelope is never
//! announced onwards before it is durable, and the engine loop never waits
//! for a flush.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cer_proto::api::PeerInfo;
use cer_proto::model::Severity;
use cer_proto::sync::{self as proto, Action};
use cer_proto::wire::{Frame, Item, Role};
use cer_proto::{EnvelopeId, Fingerprint};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::link::{self, FromLink, Live, Out};
use super::transport::{CloseCode, Endpoint, Link, LinkHandle, MeshError};
use crate::audit::{self, AUDIT};
use crate::config;
use crate::node::{IngestError, Node, NodeEvent};
use crate::store::{Change, EventRecord, Incoming, Inserted};
use crate::verify::Rejected;

/// Frames queued from all readers to the engine (backpressure to peers).
const INBOX_CAPACITY: usize = 1024;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Two links of opposite roles added within this of each other were dialed
/// at the same moment by both ends (see [`replaces`]): far more than the
/// gap between the two links of a simultaneous dial, which complete within
/// a round trip of each other. A peer that restarts sooner than this after
/// connecting is refused until its old link is this old; its dialer retries
/// every [`BACKOFF_MIN`] meanwhile.
const SIMULTANEOUS: Duration = Duration::from_secs(2);
/// Refused keys remembered so that each is logged once (see `accept_loop`).
const REFUSALS_REMEMBERED: usize = 1024;
/// Refused keys listed in `cerctl peers` at most (the most recent).
const REFUSALS_SHOWN: usize = 64;

/// A running mesh: endpoint, engine, dialers.
pub struct Mesh {
    endpoint: Endpoint,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Mesh {
    /// Starts the engine, the accept loop and one dialer per configured
    /// peer on a bound endpoint.
    pub async fn start(
        node: Arc<Node>,
        endpoint: Endpoint,
        peers: Vec<config::Peer>,
        anti_entropy: Duration,
    ) -> Result<Mesh, MeshError> {
        let local_addr = endpoint.local_addr()?;
        let (stop, stopped) = watch::channel(false);
        let (inbox_tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let connected: Arc<RwLock<HashSet<Fingerprint>>> = Arc::default();

        let tips = node
            .store()
            .chain_tips()
            .map_err(|e| MeshError::Protocol(e.to_string()))?;
        let sync = proto::Sync::new(
            proto::Config {
                anti_entropy,
                ..proto::Config::default()
            },
            tips,
            trusted_authors(&node),
        );
        let (ingest, batches) = mpsc::unbounded_channel();
        let mut tasks = vec![tokio::spawn(ingest_pipeline(
            node.clone(),
            batches,
            inbox_tx.clone(),
        ))];
        let engine = Engine {
            events: node.subscribe(),
            stored: node.store().subscribe(),
            ingest,
            node: node.clone(),
            sync,
            links: HashMap::new(),
            board: BTreeMap::new(),
            configured: peers.clone(),
            inbox,
            inbox_tx: inbox_tx.clone(),
            connected: connected.clone(),
            next_link: 0,
            stopped: stopped.clone(),
            refused: BTreeMap::new(),
        };
        tasks.push(tokio::spawn(engine.run()));
        tasks.push(tokio::spawn(accept_loop(
            endpoint.clone(),
            node.clone(),
            inbox_tx.clone(),
            stopped.clone(),
        )));
        for peer in peers {
            tasks.push(tokio::spawn(dial_loop(
                endpoint.clone(),
                node.clone(),
                peer,
                inbox_tx.clone(),
                connected.clone(),
                stopped.clone(),
            )));
        }
        tracing::info!(listen = %local_addr, "mesh listening (QUIC, ALPN cer/1)");
        Ok(Mesh {
            endpoint,
            local_addr,
            stop,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Closes every link and stops the tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        self.endpoint.close();
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

fn trusted_authors(node: &Node) -> Vec<Fingerprint> {
    node.trust_store()
        .iter()
        .map(|c| c.fingerprint().clone())
        .collect()
}

enum Input {
    Link(Box<Link>),
    Frame {
        peer: Fingerprint,
        link: u64,
        frame: Frame,
    },
    Closed {
        peer: Fingerprint,
        link: u64,
        reason: String,
    },
    Misbehaved {
        peer: Fingerprint,
        link: u64,
        reason: &'static str,
        detail: String,
    },
    /// A connection from a key not in the trust store was refused.
    Refused {
        fingerprint: Fingerprint,
        remote: SocketAddr,
    },
    /// The store's answer for a batch the pipeline queued: durable now.
    Ingested {
        from: Fingerprint,
        results: Vec<(Fingerprint, u64, EnvelopeId, Result<Inserted, IngestError>)>,
    },
}

impl From<FromLink> for Input {
    fn from(event: FromLink) -> Input {
        match event {
            FromLink::Frame { peer, link, frame } => Input::Frame { peer, link, frame },
            FromLink::Misbehaved {
                peer,
                link,
                reason,
                detail,
            } => Input::Misbehaved {
                peer,
                link,
                reason,
                detail,
            },
            FromLink::Closed { peer, link, reason } => Input::Closed { peer, link, reason },
        }
    }
}

/// Items the state machine handed out from one peer, in order.
struct IngestBatch {
    from: Fingerprint,
    items: Vec<(Fingerprint, u64, Item)>,
}

struct LinkEntry {
    id: u64,
    handle: LinkHandle,
    outbox: mpsc::Sender<Out>,
    live: mpsc::Sender<Live>,
    role: Role,
    remote: SocketAddr,
    /// When the link was authenticated and added.
    since: Instant,
}

/// What `cerctl peers` shows about one peer.
#[derive(Default)]
struct PeerStats {
    address: Option<SocketAddr>,
    last_seen: Option<cer_proto::model::Timestamp>,
    sent: Arc<AtomicU64>,
    received: u64,
    rejections: BTreeMap<String, u64>,
    /// Traffic of the current link (zero while there is none).
    link: super::transport::LinkStats,
    /// UDP bytes of the links closed before it, so the totals, like the
    /// envelope counts, cover every link since start.
    earlier_bytes_sent: u64,
    earlier_bytes_received: u64,
}

impl PeerStats {
    /// Moves a closing link's final traffic into the totals.
    fn retire(&mut self, last: super::transport::LinkStats) {
        self.earlier_bytes_sent += last.udp_bytes_sent;
        self.earlier_bytes_received += last.udp_bytes_received;
        self.link = Default::default();
    }
}

struct Engine {
    node: Arc<Node>,
    events: tokio::sync::broadcast::Receiver<NodeEvent>,
    stored: tokio::sync::broadcast::Receiver<Arc<[EventRecord]>>,
    ingest: mpsc::UnboundedSender<IngestBatch>,
    sync: proto::Sync,
    links: HashMap<Fingerprint, LinkEntry>,
    board: BTreeMap<Fingerprint, PeerStats>,
    configured: Vec<config::Peer>,
    inbox: mpsc::Receiver<Input>,
    inbox_tx: mpsc::Sender<Input>,
    connected: Arc<RwLock<HashSet<Fingerprint>>>,
    next_link: u64,
    stopped: watch::Receiver<bool>,
    /// Keys refused since the trust store last changed, for `cerctl peers`.
    refused: BTreeMap<Fingerprint, Refusal>,
}

/// Connections refused from one unknown key.
struct Refusal {
    address: SocketAddr,
    last: cer_proto::model::Timestamp,
    count: u64,
}

impl Engine {
    async fn run(mut self) {
        let mut board_tick = tokio::time::interval(Duration::from_secs(1));
        board_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopped = self.stopped.clone();
        loop {
            let deadline = self.sync.poll_timeout().map(tokio::time::Instant::from_std);
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                _ = stopped.wait_for(|s| *s) => break,
                // Timers before frames: a busy inbox must not starve the
                // announcements, grafts and Want timeouts.
                _ = sleep => self.sync.handle_timeout(Instant::now()),
                Some(input) = self.inbox.recv() => self.handle_input(input),
                event = self.events.recv() => self.handle_event(event),
                stored = self.stored.recv() => self.handle_stored(stored),
                _ = board_tick.tick() => self.publish_board(),
            }
            self.drive();
        }
        for (_, link) in self.links.drain() {
            link.handle.close(CloseCode::Normal, "shutdown");
        }
        self.node.peer_board().set(Vec::new());
    }

    fn handle_event(&mut self, event: Result<NodeEvent, tokio::sync::broadcast::error::RecvError>) {
        if let Ok(NodeEvent::TrustChanged) = event {
            self.refused.clear();
            let trusted = trusted_authors(&self.node);
            tracing::debug!(certificates = trusted.len(), "trust store changed");
            self.sync.set_trusted(trusted);
            // A revoked certificate still verifies what it signed before,
            // so its author stays in the sync; its node is cut off (and
            // cannot authenticate again: that signature would be newer).
            let trust = self.node.trust_store();
            for (peer, link) in &self.links {
                if let Some(revoked) = trust.get(peer).and_then(|cert| cert.revoked()) {
                    tracing::warn!(target: AUDIT, event = "peer_revoked", peer = %self.name(peer), revoked = %crate::sign::rfc3339(revoked), "disconnecting peer: its certificate is revoked");
                    link.handle
                        .close(CloseCode::UnknownPeer, "certificate revoked");
                }
            }
        }
    }

    /// Envelopes published on this node are pushed once durable. (Received
    /// ones are announced from the writer's answer to the pipeline.)
    fn handle_stored(
        &mut self,
        batch: Result<Arc<[EventRecord]>, tokio::sync::broadcast::error::RecvError>,
    ) {
        use tokio::sync::broadcast::error::RecvError;
        let now = Instant::now();
        match batch {
            Ok(events) => {
                for event in events.iter() {
                    if let Change::Stored {
                        author,
                        seq,
                        id,
                        from: None,
                        severity,
                        ..
                    } = &event.change
                    {
                        if urgent(*severity) {
                            self.sync.handle_stored_urgent(author, *seq, *id, None, now);
                        } else {
                            self.sync.handle_stored(author, *seq, *id, None, now);
                        }
                    }
                }
            }
            Err(RecvError::Lagged(missed)) => {
                // Live pushes were missed: take this node's own tip (one
                // small read, on a path that only a stalled engine takes),
                // and fresh summaries let peers ask for the rest.
                tracing::warn!(missed, "mesh fell behind local events; resynchronising");
                let own = self.node.fingerprint().clone();
                if let Ok(Some(tip)) = self.node.store().chain_tip(&own) {
                    self.sync.handle_stored(&own, tip.seq, tip.id, None, now);
                }
                let peers: Vec<Fingerprint> = self.links.keys().cloned().collect();
                for peer in peers {
                    self.sync.handle_disconnected(&peer);
                    self.sync.handle_connected(peer, now);
                }
            }
            Err(RecvError::Closed) => {}
        }
    }

    fn handle_input(&mut self, input: Input) {
        let now = Instant::now();
        match input {
            Input::Link(link) => self.add_link(*link, now),
            Input::Frame { peer, link, frame } => {
                if self.links.get(&peer).is_some_and(|l| l.id == link) {
                    self.board.entry(peer.clone()).or_default().last_seen = Some(audit::now());
                    if let Frame::Goodbye { reason } = &frame {
                        tracing::info!(peer = %self.name(&peer), %reason, "peer said goodbye");
                        return;
                    }
                    self.sync.handle_frame(&peer, frame, now);
                }
            }
            Input::Closed { peer, link, reason } => {
                if self.links.get(&peer).is_some_and(|l| l.id == link) {
                    if let Some(entry) = self.links.remove(&peer) {
                        self.board
                            .entry(peer.clone())
                            .or_default()
                            .retire(entry.handle.stats());
                    }
                    self.set_connected(&peer, false);
                    self.sync.handle_disconnected(&peer);
                    tracing::info!(target: AUDIT, event = "peer_down", peer = %self.name(&peer), fingerprint = %peer, %reason, "peer disconnected");
                    self.node.emit(NodeEvent::PeerDown {
                        peer: peer.clone(),
                        reason,
                    });
                    self.publish_board();
                }
            }
            Input::Refused {
                fingerprint,
                remote,
            } => {
                if self.refused.len() >= REFUSALS_SHOWN && !self.refused.contains_key(&fingerprint)
                {
                    // Strangers can make keys faster than anyone reads the
                    // board: keep the most recent ones.
                    let oldest = self
                        .refused
                        .iter()
                        .min_by_key(|(_, r)| r.last)
                        .map(|(f, _)| f.clone());
                    if let Some(oldest) = oldest {
                        self.refused.remove(&oldest);
                    }
                }
                let refusal = self.refused.entry(fingerprint).or_insert(Refusal {
                    address: remote,
                    last: audit::now(),
                    count: 0,
                });
                refusal.address = remote;
                refusal.last = audit::now();
                refusal.count += 1;
            }
            Input::Ingested { from, results } => {
                for (author, seq, id, result) in results {
                    self.ingested(&from, &author, seq, id, result);
                }
                self.publish_board();
            }
            Input::Misbehaved {
                peer,
                link,
                reason,
                detail,
            } => {
                *self
                    .board
                    .entry(peer.clone())
                    .or_default()
                    .rejections
                    .entry(reason.to_owned())
                    .or_default() += 1;
                if let Some(entry) = self.links.get(&peer).filter(|l| l.id == link) {
                    tracing::warn!(target: AUDIT, event = "peer_misbehaved", peer = %self.name(&peer), reason, %detail, "disconnecting peer");
                    entry.handle.close(CloseCode::Protocol, &detail);
                }
            }
        }
    }

    fn add_link(&mut self, link: Link, now: Instant) {
        let peer = link.peer.clone();
        let me = self.node.fingerprint().clone();
        if peer == me {
            link.handle()
                .close(CloseCode::Duplicate, "connected to itself");
            return;
        }
        if let Some(existing) = self.links.get(&peer) {
            let held = (existing.role, now.duration_since(existing.since));
            if !replaces(held, link.role, &me, &peer) {
                link.handle()
                    .close(CloseCode::Duplicate, "already connected");
                return;
            }
            tracing::info!(peer = %self.name(&peer), old = existing.id, age = ?now.duration_since(existing.since), "a new link from the peer replaces the old one");
            existing
                .handle
                .close(CloseCode::Duplicate, "replaced by a newer link");
            let last = existing.handle.stats();
            self.board.entry(peer.clone()).or_default().retire(last);
            self.links.remove(&peer);
            self.sync.handle_disconnected(&peer);
        }
        self.next_link += 1;
        let id = self.next_link;
        let role = link.role;
        let remote = link.remote;
        let (sender, receiver, handle) = link.split();
        let stats = self.board.entry(peer.clone()).or_default();
        stats.address = Some(remote);
        stats.last_seen = Some(audit::now());
        let outboxes = link::spawn(
            self.node.clone(),
            peer.clone(),
            id,
            (sender, receiver, handle.clone()),
            self.inbox_tx.clone(),
            stats.sent.clone(),
        );
        self.links.insert(
            peer.clone(),
            LinkEntry {
                id,
                handle,
                outbox: outboxes.bulk,
                live: outboxes.live,
                role,
                remote,
                since: now,
            },
        );
        self.set_connected(&peer, true);
        tracing::info!(target: AUDIT, event = "peer_up", peer = %self.name(&peer), fingerprint = %peer, %remote, ?role, "peer connected");
        self.node.emit(NodeEvent::PeerUp { peer: peer.clone() });
        self.sync.handle_connected(peer, now);
        self.publish_board();
    }

    fn set_connected(&self, peer: &Fingerprint, up: bool) {
        let mut set = self.connected.write().unwrap_or_else(|e| e.into_inner());
        if up {
            set.insert(peer.clone());
        } else {
            set.remove(peer);
        }
    }

    fn name(&self, peer: &Fingerprint) -> String {
        self.node
            .name_of(peer)
            .unwrap_or_else(|| peer.short().to_owned())
    }

    /// Runs the state machine's actions until it has none left: sends and
    /// ranges go to the links' outboxes, ingests to the pipeline in the
    /// order they were handed out.
    fn drive(&mut self) {
        let mut batch: Option<IngestBatch> = None;
        while let Some(action) = self.sync.poll_action() {
            match action {
                Action::Ingest {
                    from,
                    author,
                    seq,
                    item,
                } => {
                    if batch.as_ref().is_some_and(|b| b.from != from) {
                        self.queue_ingest(batch.take());
                    }
                    batch
                        .get_or_insert_with(|| IngestBatch {
                            from,
                            items: Vec::new(),
                        })
                        .items
                        .push((author, seq, item));
                }
                Action::Send { peer, frame } => match frame {
                    Frame::Have { .. } | Frame::Prune | Frame::Graft => {
                        self.enqueue_live(&peer, Live::Frame(frame))
                    }
                    frame => self.enqueue(&peer, Out::Frame(frame)),
                },
                Action::Push {
                    peer,
                    author,
                    seq,
                    urgent,
                } => self.enqueue_live(
                    &peer,
                    Live::Push {
                        author,
                        seq,
                        urgent,
                    },
                ),
                Action::SendRange {
                    peer,
                    author,
                    from,
                    to,
                } => self.enqueue(&peer, Out::Range { author, from, to }),
                Action::Disconnect { peer, reason } => {
                    if let Some(link) = self.links.get(&peer) {
                        tracing::info!(target: AUDIT, event = "peer_untrusted", peer = %self.name(&peer), %reason, "disconnecting peer");
                        link.handle.close(CloseCode::UnknownPeer, &reason);
                    }
                }
            }
        }
        self.queue_ingest(batch);
    }

    fn queue_ingest(&mut self, batch: Option<IngestBatch>) {
        if let Some(batch) = batch {
            if self.ingest.send(batch).is_err() {
                tracing::error!("the ingest pipeline has stopped");
            }
        }
    }

    fn enqueue(&self, peer: &Fingerprint, out: Out) {
        if let Some(link) = self.links.get(peer) {
            if link.outbox.try_send(out).is_err() {
                tracing::debug!(peer = %peer.short(), "outbox full; anti-entropy will repair");
            }
        }
    }

    fn enqueue_live(&self, peer: &Fingerprint, live: Live) {
        if let Some(link) = self.links.get(peer) {
            if link.live.try_send(live).is_err() {
                tracing::debug!(peer = %peer.short(), "live outbox full; anti-entropy will repair");
            }
        }
    }

    fn ingested(
        &mut self,
        from: &Fingerprint,
        author: &Fingerprint,
        seq: u64,
        id: EnvelopeId,
        result: Result<Inserted, IngestError>,
    ) {
        let now = Instant::now();
        match result {
            Ok(Inserted::Stored {
                subject, severity, ..
            }) => {
                self.board.entry(from.clone()).or_default().received += 1;
                tracing::info!(target: AUDIT, event = "received", author = %self.name(author), seq, envelope = %id, incident = %subject, via = %self.name(from), "envelope received");
                if urgent(severity) {
                    self.sync
                        .handle_stored_urgent(author, seq, id, Some(from), now);
                } else {
                    self.sync.handle_stored(author, seq, id, Some(from), now);
                }
            }
            Ok(Inserted::Duplicate) => {
                self.sync.handle_stored(author, seq, id, Some(from), now);
            }
            Ok(Inserted::Equivocation { held }) => {
                tracing::warn!(target: AUDIT, event = "equivocation", author = %self.name(author), seq, held = %held, other = %id, via = %self.name(from), "two different envelopes with the same author and seq: both kept as evidence");
                *self
                    .board
                    .entry(from.clone())
                    .or_default()
                    .rejections
                    .entry("equivocation".into())
                    .or_default() += 1;
                self.sync.handle_rejected(from, author, seq, now);
            }
            Err(IngestError::Rejected(rejected)) => {
                let code = rejected.reason_code();
                *self
                    .board
                    .entry(from.clone())
                    .or_default()
                    .rejections
                    .entry(code.into())
                    .or_default() += 1;
                tracing::warn!(target: AUDIT, event = "rejected", author = %author.short(), seq, via = %self.name(from), reason = code, detail = %rejected, "envelope rejected");
                self.sync.handle_rejected(from, author, seq, now);
                if disconnects(&rejected) {
                    if let Some(link) = self.links.get(from) {
                        link.handle
                            .close(CloseCode::Misbehaving, &rejected.to_string());
                    }
                }
            }
            Err(IngestError::Store(e)) => {
                tracing::error!(error = %e, "store refused a received envelope");
                self.sync.handle_rejected(from, author, seq, now);
            }
        }
    }

    fn publish_board(&mut self) {
        for (fpr, link) in &self.links {
            if let Some(stats) = self.board.get_mut(fpr) {
                stats.link = link.handle.stats();
            }
        }
        let mut peers: Vec<PeerInfo> = Vec::new();
        let mut seen_addresses = HashSet::new();
        for (fpr, stats) in &self.board {
            let link = self.links.get(fpr);
            let view = self.sync.peer(fpr);
            if let Some(addr) = stats.address {
                seen_addresses.insert(addr.to_string());
            }
            peers.push(PeerInfo {
                name: self.node.name_of(fpr),
                fingerprint: Some(fpr.clone()),
                address: link
                    .map(|l| l.remote)
                    .or(stats.address)
                    .map(|a| a.to_string()),
                connected: link.is_some(),
                last_seen: stats.last_seen,
                envelopes_sent: stats.sent.load(Ordering::Relaxed),
                envelopes_received: stats.received,
                behind: view.as_ref().map_or(0, |v| v.behind),
                duplicates: view.as_ref().map_or(0, |v| v.duplicates),
                eager: view.as_ref().map(|v| v.eager),
                bytes_sent: stats.earlier_bytes_sent + stats.link.udp_bytes_sent,
                bytes_received: stats.earlier_bytes_received + stats.link.udp_bytes_received,
                rejections: stats.rejections.clone(),
            });
        }
        for (fingerprint, refusal) in &self.refused {
            if self.board.contains_key(fingerprint) {
                continue;
            }
            peers.push(PeerInfo {
                name: None,
                fingerprint: Some(fingerprint.clone()),
                address: Some(refusal.address.to_string()),
                connected: false,
                last_seen: Some(refusal.last),
                envelopes_sent: 0,
                envelopes_received: 0,
                behind: 0,
                duplicates: 0,
                eager: None,
                bytes_sent: 0,
                bytes_received: 0,
                rejections: BTreeMap::from([("not_trusted".to_owned(), refusal.count)]),
            });
        }
        for peer in &self.configured {
            let known = peer
                .fingerprint
                .as_ref()
                .is_some_and(|f| self.board.contains_key(f));
            if !known && !seen_addresses.contains(&peer.addr) {
                peers.push(PeerInfo {
                    name: peer.fingerprint.as_ref().and_then(|f| self.node.name_of(f)),
                    fingerprint: peer.fingerprint.clone(),
                    address: Some(peer.addr.clone()),
                    connected: false,
                    last_seen: None,
                    envelopes_sent: 0,
                    envelopes_received: 0,
                    behind: 0,
                    duplicates: 0,
                    eager: None,
                    bytes_sent: 0,
                    bytes_received: 0,
                    rejections: BTreeMap::new(),
                });
            }
        }
        self.node.peer_board().set(peers);
    }
}

/// Whether an envelope is flooded rather than sent along the mesh's tree
/// (see `cer_proto::sync`): a critical incident, or an update raising one
/// to critical, where this node can read it.
fn urgent(severity: Option<Severity>) -> bool {
    severity == Some(Severity::Critical)
}

/// Whether a new authenticated link from a peer replaces the one held.
///
/// A node dials a peer only while it holds no link to it, so a new link
/// means the peer lost the old one — it crashed and restarted, or its end
/// timed out — even when this end has not noticed yet: the newer link wins
/// at once. The exception is two nodes dialing each other at the same
/// moment: each then holds two young links of opposite roles, and both keep
/// the link dialed by the smaller fingerprint, so they agree without
/// talking instead of each closing the link the other kept. A link seen at
/// both ends within [`SIMULTANEOUS`] of the other counts as simultaneous.
/// `held` is the held link's role and age, `new` the new link's role.
fn replaces(held: (Role, Duration), new: Role, me: &Fingerprint, peer: &Fingerprint) -> bool {
    let (held_role, held_age) = held;
    if held_role == new || held_age >= SIMULTANEOUS {
        return true;
    }
    let smaller = if me < peer { me } else { peer };
    let dialer = if new == Role::Dialer { me } else { peer };
    dialer == smaller
}

/// Refusals that mean the peer is broken or hostile, not merely behind.
fn disconnects(rejected: &Rejected) -> bool {
    matches!(
        rejected,
        Rejected::BadSignature { .. }
            | Rejected::AuthorMismatch { .. }
            | Rejected::Malformed(_)
            | Rejected::MalformedSignature(_)
            | Rejected::TooLarge { .. }
            | Rejected::SignatureTooLarge { .. }
            | Rejected::UnprovenTombstone { .. }
            | Rejected::TransitionWithoutOldKey(_)
            | Rejected::TransitionWithoutNewKey(_)
    )
}

/// Verifies each batch on blocking threads, queues it to the store's
/// writer, and goes on with the next batch while the writer works; the
/// writer's answer reaches the engine as [`Input::Ingested`].
async fn ingest_pipeline(
    node: Arc<Node>,
    mut batches: mpsc::UnboundedReceiver<IngestBatch>,
    inbox: mpsc::Sender<Input>,
) {
    while let Some(batch) = batches.recv().await {
        let IngestBatch { from, items } = batch;
        let mut places = Vec::with_capacity(items.len());
        let mut wire = Vec::with_capacity(items.len());
        for (author, seq, item) in items {
            places.push((author, seq));
            wire.push(item);
        }
        let verifier = node.clone();
        let verified = match tokio::task::spawn_blocking(move || verifier.verify_items(wire)).await
        {
            Ok(verified) => verified,
            Err(e) => {
                tracing::error!(error = %e, "verification task failed");
                continue;
            }
        };
        let mut results: Vec<(EnvelopeId, Option<Result<Inserted, IngestError>>)> = Vec::new();
        let mut good: Vec<Incoming> = Vec::new();
        for (id, v) in verified {
            match v {
                Ok(incoming) => {
                    good.push(incoming);
                    results.push((id, None));
                }
                Err(rejected) => results.push((id, Some(Err(rejected.into())))),
            }
        }
        let answer = if good.is_empty() {
            None
        } else {
            match node.store().queue_ingest(good, Some(from.clone())).await {
                Ok(answer) => Some(answer),
                Err(e) => {
                    tracing::error!(error = %e, "cannot queue received envelopes");
                    return;
                }
            }
        };
        let inbox = inbox.clone();
        tokio::spawn(async move {
            let mut stored = match answer {
                None => Vec::new().into_iter(),
                Some(answer) => match answer.await {
                    Ok(Ok(stored)) => stored.into_iter(),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "store batch failed; received envelopes not acknowledged");
                        Vec::new().into_iter()
                    }
                    Err(_) => return,
                },
            };
            let results = places
                .into_iter()
                .zip(results)
                .map(|((author, seq), (id, result))| {
                    let result = result.unwrap_or_else(|| match stored.next() {
                        Some(r) => r.map_err(IngestError::from_store),
                        None => Err(IngestError::Store(crate::store::StoreError::WriterGone)),
                    });
                    (author, seq, id, result)
                })
                .collect();
            let _ = inbox.send(Input::Ingested { from, results }).await;
        });
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    node: Arc<Node>,
    inbox: mpsc::Sender<Input>,
    mut stopped: watch::Receiver<bool>,
) {
    // Keys refused since the trust store last changed: a refused peer
    // redials at every back-off, and each refusal is logged once.
    let refused: Arc<std::sync::Mutex<HashSet<Fingerprint>>> = Arc::default();
    let mut events = node.subscribe();
    loop {
        let accepting = tokio::select! {
            biased;
            _ = stopped.wait_for(|s| *s) => return,
            () = trust_changed(&mut events) => {
                refused.lock().unwrap_or_else(|e| e.into_inner()).clear();
                continue;
            }
            a = endpoint.accept() => match a { Some(a) => a, None => return },
        };
        let node = node.clone();
        let inbox = inbox.clone();
        let refused = refused.clone();
        tokio::spawn(async move {
            let remote = accepting.remote_address();
            let trust = node.trust_store();
            match accepting.authenticate(&trust).await {
                Ok(link) => {
                    let _ = inbox.send(Input::Link(Box::new(link))).await;
                }
                Err(MeshError::UnknownPeer { fingerprint }) => {
                    let _ = inbox.try_send(Input::Refused {
                        fingerprint: fingerprint.clone(),
                        remote,
                    });
                    let first = {
                        let mut refused = refused.lock().unwrap_or_else(|e| e.into_inner());
                        // Bounded: strangers can make keys faster than
                        // operators change the trust store.
                        if refused.len() >= REFUSALS_REMEMBERED {
                            refused.clear();
                        }
                        refused.insert(fingerprint.clone())
                    };
                    if first {
                        tracing::warn!(target: AUDIT, event = "peer_refused", %remote, %fingerprint, "refused: not trusted (its certificate is not in certs/)");
                    } else {
                        tracing::debug!(%remote, %fingerprint, "refused again: not trusted");
                    }
                }
                Err(e @ (MeshError::Unreachable | MeshError::Closed(_))) if !matches!(&e, MeshError::Closed(c) if c.peer_code().is_some_and(|code| code != CloseCode::Normal)) =>
                {
                    // A dialer's spare handshake, dropped once another
                    // completed (or one that went silent): not a refusal.
                    tracing::debug!(%remote, reason = %e, "incoming connection abandoned before authentication");
                }
                Err(e) => {
                    tracing::warn!(target: AUDIT, event = "peer_refused", %remote, reason = %e, "incoming connection refused");
                }
            }
        });
    }
}

/// Resolves when the trust store changed (or events were missed, which
/// may include such a change); never if the node is gone.
async fn trust_changed(events: &mut tokio::sync::broadcast::Receiver<NodeEvent>) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match events.recv().await {
            Ok(NodeEvent::TrustChanged) | Err(RecvError::Lagged(_)) => return,
            Ok(_) => {}
            Err(RecvError::Closed) => std::future::pending().await,
        }
    }
}

async fn dial_loop(
    endpoint: Endpoint,
    node: Arc<Node>,
    peer: config::Peer,
    inbox: mpsc::Sender<Input>,
    connected: Arc<RwLock<HashSet<Fingerprint>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = BACKOFF_MIN;
    // The peer's fingerprint: configured, or learned from its answer.
    let mut known = peer.fingerprint.clone();
    let mut failures = 0u32;
    // The last refusal logged: one repeated at every back-off is logged
    // once per change of the trust store.
    let mut logged: Option<String> = None;
    let mut events = node.subscribe();
    loop {
        if *stopped.borrow() {
            return;
        }
        let already = known.as_ref().is_some_and(|f| {
            connected
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(f)
        });
        let untrusted = known.clone().filter(|f| !node.trusts(f));
        let wait = if let Some(fingerprint) = untrusted {
            // Dialing would only make the peer log a link that this end
            // closes at once; wait for the trust store to change.
            let line = format!("not trusted: {fingerprint}");
            if logged.as_deref() != Some(line.as_str()) {
                tracing::info!(target: AUDIT, event = "peer_not_dialed", peer = %peer.addr, %fingerprint, "refused: not trusted (its certificate is not in certs/); not dialing it");
                logged = Some(line);
            }
            BACKOFF_MAX
        } else if already {
            // The peer dialed us; check again later in case that link drops.
            Duration::from_secs(1)
        } else {
            match dial_once(&endpoint, &node, &peer).await {
                Ok(link) => {
                    failures = 0;
                    backoff = BACKOFF_MIN;
                    logged = None;
                    known = Some(link.peer.clone());
                    let handle = link.handle();
                    if inbox.send(Input::Link(Box::new(link))).await.is_err() {
                        return;
                    }
                    tokio::select! {
                        _ = stopped.wait_for(|s| *s) => return,
                        _ = handle.closed() => {}
                    }
                    BACKOFF_MIN
                }
                Err(MeshError::UnknownPeer { fingerprint }) => {
                    // The node at that address is not trusted: logged, and
                    // not dialed again, on the next turn.
                    known = Some(fingerprint);
                    Duration::ZERO
                }
                Err(e) => {
                    failures += 1;
                    let refusal = matches!(&e, MeshError::Closed(closed) if closed.peer_code().is_some_and(|c| c != CloseCode::Normal));
                    let line = e.to_string();
                    if refusal {
                        if logged.as_deref() != Some(line.as_str()) {
                            tracing::warn!(target: AUDIT, event = "refused_by_peer", peer = %peer.addr, reason = %line, "the peer refused this node");
                            logged = Some(line);
                        } else {
                            tracing::debug!(peer = %peer.addr, attempt = failures, reason = %line, "refused again by the peer");
                        }
                    } else if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!(peer = %peer.addr, attempt = failures, retry_in = ?backoff, error = %e, "cannot reach peer");
                    }
                    if matches!(e, MeshError::Unreachable | MeshError::Timeout { .. }) {
                        // Nothing answered: the dial itself probed for
                        // seconds, so dial again soon, whatever the
                        // history, and a link that comes back is found
                        // within seconds (a probe costs one datagram).
                        BACKOFF_MIN + jitter(BACKOFF_MIN)
                    } else {
                        let wait = backoff + jitter(backoff / 4);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        wait
                    }
                }
            }
        };
        tokio::select! {
            _ = stopped.wait_for(|s| *s) => return,
            _ = tokio::time::sleep(wait) => {}
            () = trust_changed(&mut events) => {
                // This node or the peer may be trusted now: try at once.
                backoff = BACKOFF_MIN;
                logged = None;
                if peer.fingerprint.is_none() && known.as_ref().is_some_and(|f| !node.trusts(f)) {
                    // Learned, and maybe stale (the peer may have a new
                    // key): ask the address again.
                    known = None;
                }
            }
        }
    }
}

async fn dial_once(
    endpoint: &Endpoint,
    node: &Node,
    peer: &config::Peer,
) -> Result<Link, MeshError> {
    let addr = tokio::net::lookup_host(&peer.addr)
        .await
        .map_err(|e| MeshError::Connect(format!("resolving {}: {e}", peer.addr)))?
        .next()
        .ok_or_else(|| MeshError::Connect(format!("{} resolves to no address", peer.addr)))?;
    let trust = node.trust_store();
    endpoint
        .connect(addr, &trust, peer.fingerprint.as_ref())
        .await
}

/// A pseudo-random share of `max`, so restarted peers do not redial in
/// lockstep.
fn jitter(max: Duration) -> Duration {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64)
        ^ std::process::id() as u64;
    Duration::from_nanos(seed % (max.as_nanos() as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const YOUNG: Duration = Duration::from_millis(30);
    const OLD: Duration = Duration::from_secs(60);

    fn fingerprints() -> (Fingerprint, Fingerprint) {
        let a = Fingerprint::parse(&"A".repeat(40)).unwrap();
        let b = Fingerprint::parse(&"B".repeat(40)).unwrap();
        (a, b)
    }

    /// Which link an end keeps when `first` arrives, then `second`, each
    /// named by its dialer.
    fn kept<'f>(
        me: &'f Fingerprint,
        peer: &'f Fingerprint,
        first: &'f Fingerprint,
        second: &'f Fingerprint,
        gap: Duration,
    ) -> &'f Fingerprint {
        let role = |dialer: &Fingerprint| {
            if dialer == me {
                Role::Dialer
            } else {
                Role::Listener
            }
        };
        if replaces((role(first), gap), role(second), me, peer) {
            second
        } else {
            first
        }
    }

    #[test]
    fn simultaneous_dials_keep_the_same_link_at_both_ends() {
        let (a, b) = fingerprints();
        // Each end may see the two links in either order.
        for (a_first, a_second) in [(&a, &b), (&b, &a)] {
            for (b_first, b_second) in [(&a, &b), (&b, &a)] {
                let at_a = kept(&a, &b, a_first, a_second, YOUNG);
                let at_b = kept(&b, &a, b_first, b_second, YOUNG);
                assert_eq!(at_a, at_b, "A saw {a_first} first, B saw {b_first} first");
                assert_eq!(at_a, &a, "the smaller fingerprint's link is kept");
            }
        }
    }

    #[test]
    fn a_new_link_replaces_an_old_or_same_role_one() {
        let (a, b) = fingerprints();
        for (me, peer) in [(&a, &b), (&b, &a)] {
            for held in [Role::Dialer, Role::Listener] {
                for new in [Role::Dialer, Role::Listener] {
                    assert!(
                        replaces((held, OLD), new, me, peer),
                        "{held:?} then {new:?}"
                    );
                }
                // A peer that dials again lost its link (a restart).
                assert!(replaces((held, YOUNG), held, me, peer), "{held:?} twice");
            }
        }
    }
}
