//! The sync protocol (DESIGN §5) as a deterministic state machine.
//!
//! [`Sync`] owns what a node knows about its peers' chains and decides what
//! to say to them: the summary sent on connect and every
//! [`Config::anti_entropy`], the [`Frame::Want`]s for what the node lacks,
//! which envelopes to push live, and in what order received items go to the
//! store. It does no I/O and reads no clock: the driver feeds it events
//! (`handle_*`, with `now` passed in), drains [`Action`]s with
//! [`Sync::poll_action`], and calls [`Sync::handle_timeout`] at
//! [`Sync::poll_timeout`]. Reading the store, framing batches, verifying
//! signatures and storing are the driver's.
//!
//! How it keeps the cost proportional to what is missing:
//! - a summary lists one tip per trusted author, whatever the store's size;
//! - a node asks only for the seqs above what it holds or has handed out
//!   for ingest, only for authors it trusts, and never asks twice for a
//!   range already outstanding (until [`Config::want_timeout`] passes
//!   without progress);
//! - a live push sends only the newly stored envelope, to peers not known
//!   to hold it, and never back to the peer it came from. A peer that then
//!   lacks predecessors asks for the gap itself.
//!
//! Lazy push (in the spirit of Plumtree). Every link starts *eager*: a
//! newly stored envelope is pushed in full ([`Action::Push`], sent as
//! [`Frame::Push`] ahead of catch-up traffic). A node that receives a
//! pushed envelope it already holds knows the link closes a loop: it makes
//! the link *lazy* both ways and tells the peer ([`Frame::Prune`]). Over a
//! lazy link a node only announces what it stored ([`Frame::Have`]: per
//! author the highest seq, gathered for [`Config::announce_delay`]). A node
//! that hears of an envelope it lacks gives its eager links
//! [`Config::graft_timeout`] to deliver it; then it asks the announcer with
//! a [`Frame::Want`] and, when only the newest envelopes are missing (the
//! eager links broke rather than the node fell behind), makes that link
//! eager again ([`Frame::Graft`]). The eager links settle into a spanning
//! tree: each node receives about one copy of each envelope, and the
//! announcements and the periodic summary repair what the tree misses.
//!
//! Maps are ordered (`BTreeMap`), so the same events give the same actions:
//! simulations replay exactly from a seed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::envelope::{ChainTip, Envelope};
use crate::id::{EnvelopeId, Fingerprint};
use crate::wire::{self, Frame, Item, Tip};

/// A peer node, known by its certificate's fingerprint.
pub type PeerId = Fingerprint;

/// Tunables. [`Config::default`] gives the design's values.
#[derive(Debug, Clone)]
pub struct Config {
    /// How often each connected peer gets a fresh summary.
    pub anti_entropy: Duration,
    /// How long a Want may go without progress before it is asked again,
    /// preferably of another peer.
    pub want_timeout: Duration,
    /// Envelopes per [`Frame::Envelopes`] when the driver fulfils
    /// [`Action::SendRange`] (it must also keep frames under
    /// [`wire::MAX_FRAME_BYTES`]).
    pub max_batch: usize,
    /// Largest range one Want asks for.
    pub max_want_span: u64,
    /// Out-of-order items buffered per peer; more are dropped and asked
    /// again later.
    pub max_buffered: usize,
    /// Wants outstanding per author at once (a window of
    /// `max_wants_per_author × max_want_span` seqs); more are asked as
    /// these complete.
    pub max_wants_per_author: usize,
    /// How long announcements to a lazy peer are gathered before one
    /// [`Frame::Have`] carries them.
    pub announce_delay: Duration,
    /// How long a node that heard of an envelope it lacks waits for an
    /// eager link to deliver it before asking the announcer.
    pub graft_timeout: Duration,
    /// Push every envelope to every peer (no lazy links): the flooding of
    /// earlier versions, kept for comparison.
    pub flood: bool,
}

/// A graft asks for at most this many missing envelopes: more means the
/// node fell behind (catch-up), not that the eager links broke.
const GRAFT_SPAN: u64 = 64;

impl Default for Config {
    fn default() -> Self {
        Config {
            anti_entropy: Duration::from_secs(30),
            want_timeout: Duration::from_secs(10),
            max_batch: wire::MAX_BATCH,
            max_want_span: 4096,
            max_buffered: 4096,
            max_wants_per_author: 16,
            announce_delay: Duration::from_millis(50),
            graft_timeout: Duration::from_millis(500),
            flood: false,
        }
    }
}

/// The sync state of one node. See the module docs.
#[derive(Debug)]
pub struct Sync {
    config: Config,
    trusted: BTreeSet<Fingerprint>,
    authors: BTreeMap<Fingerprint, Author>,
    peers: BTreeMap<PeerId, Peer>,
    actions: VecDeque<Action>,
    stats: Stats,
    /// The latest `now` passed in, for work that events without a `now`
    /// (trust changes, disconnects) leave for [`Sync::handle_timeout`].
    last_now: Option<Instant>,
    /// Authors to ask for again at the next `now`.
    pending: BTreeSet<Fingerprint>,
}

/// What the driver must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send a frame (Summary or Want) to the peer.
    Send { peer: PeerId, frame: Frame },
    /// Push the newly stored envelope `(author, seq)` to the peer, read
    /// from the local store, ahead of any range (live envelopes go before
    /// catch-up): in a [`Frame::Push`], or when `urgent` (flooded, see
    /// [`Sync::handle_stored_urgent`]) in a [`Frame::Envelopes`], whose
    /// duplicates say nothing about the link.
    Push {
        peer: PeerId,
        author: Fingerprint,
        seq: u64,
        urgent: bool,
    },
    /// Send `author`'s envelopes `from..=to` to the peer, read from the
    /// local store, in seq order, in batches of at most
    /// [`Config::max_batch`] (the driver does the reading and framing).
    /// The store holds the whole range when the action is issued.
    SendRange {
        peer: PeerId,
        author: Fingerprint,
        from: u64,
        to: u64,
    },
    /// Verify and store this item, then answer with [`Sync::handle_stored`]
    /// or [`Sync::handle_rejected`]. Items of one author are handed out in
    /// seq order, each the successor of the one before, except that after a
    /// rejection the next one handed out is the rejected seq again.
    Ingest {
        from: PeerId,
        author: Fingerprint,
        seq: u64,
        item: Item,
    },
    /// Close the connection to this peer (it is no longer trusted). Its
    /// state is already gone; [`Sync::handle_disconnected`] is optional.
    Disconnect { peer: PeerId, reason: String },
}

/// One peer, as `cerctl peers` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerView {
    /// Whether its summary has arrived since it connected.
    pub summarized: bool,
    /// Sum over trusted authors of how far its chains are ahead of ours.
    pub behind: u64,
    /// Sum over trusted authors of how far our chains are ahead of its.
    pub ahead: u64,
    /// Items received from it.
    pub received: u64,
    /// Items announced to it with [`Action::SendRange`] or [`Action::Push`].
    pub sent: u64,
    /// Whether the link is eager (envelopes pushed in full) or lazy
    /// (announced by [`Frame::Have`]).
    pub eager: bool,
    /// Items it pushed that were already held: copies beyond the first.
    pub duplicate_pushes: u64,
    /// Items it sent that were already held, handed out or buffered.
    pub duplicates: u64,
    /// Items it sent whose author this node does not trust.
    pub ignored: u64,
    /// Items it sent that are not envelopes (unparseable header).
    pub junk: u64,
}

/// Totals over all peers since start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Items received in Envelopes frames.
    pub received: u64,
    /// Items already held, handed out for ingest, or buffered.
    pub duplicates: u64,
    /// Items of authors this node does not trust.
    pub ignored: u64,
    /// Items that are not envelopes.
    pub junk: u64,
    /// Out-of-order items buffered now.
    pub buffered: usize,
    /// Out-of-order items dropped because their peer's buffer was full.
    pub overflowed: u64,
    /// Items handed out with [`Action::Ingest`].
    pub ingested: u64,
    /// Want frames sent.
    pub wants_sent: u64,
    /// Items announced with [`Action::SendRange`].
    pub items_announced: u64,
    /// Summary frames sent.
    pub summaries_sent: u64,
    /// Items received in Push frames.
    pub pushes_received: u64,
    /// Pushed items already held, handed out or buffered.
    pub duplicate_pushes: u64,
    /// Have frames sent, and the authors' tips they carried.
    pub haves_sent: u64,
    pub announced: u64,
    /// Links made lazy ([`Frame::Prune`] sent) and eager again
    /// ([`Frame::Graft`] sent).
    pub prunes_sent: u64,
    pub grafts_sent: u64,
}

/// What this node knows of one author's chain.
#[derive(Debug, Default)]
struct Author {
    /// What the local store holds.
    tip: Option<ChainTip>,
    /// The highest seq held or handed out for ingest: the next item to
    /// hand out is `handed + 1`. Never below `tip`.
    handed: u64,
    /// Handed out, not yet stored or rejected: seq → the peer it came from.
    in_flight: BTreeMap<u64, PeerId>,
    /// Received ahead of `handed + 1`.
    buffer: BTreeMap<u64, Buffered>,
    /// Wants outstanding, all above `handed`.
    wants: Vec<Outstanding>,
    /// When a peer announced a seq above `handed`: the eager links have
    /// until then to deliver it (see [`Config::graft_timeout`]).
    graft_at: Option<Instant>,
}

#[derive(Debug)]
struct Buffered {
    peer: PeerId,
    item: Item,
}

#[derive(Debug)]
struct Outstanding {
    peer: PeerId,
    from: u64,
    to: u64,
    deadline: Instant,
    /// The latest its peer's progress may push `deadline` to: a Want
    /// queued behind the window's others may wait for them, not forever.
    limit: Instant,
}

#[derive(Debug)]
struct Peer {
    summarized: bool,
    /// A tip advanced after our summary went out and before theirs came:
    /// send a fresh one when theirs arrives, since nothing is pushed to a
    /// peer whose tips are unknown.
    summary_stale: bool,
    /// The highest seq it holds (or has been sent) per author.
    tips: BTreeMap<Fingerprint, u64>,
    next_summary: Instant,
    buffered: usize,
    /// Authors not to ask it for until then: it sent one we rejected.
    cooldown: BTreeMap<Fingerprint, Instant>,
    /// Whether newly stored envelopes are pushed to it in full; otherwise
    /// they are announced.
    eager: bool,
    /// The last link mode this node asked for, and when: a duplicate push
    /// is answered with a Prune unless one went out less than
    /// [`Config::graft_timeout`] ago (a lost one is said again).
    told: Option<(Mode, Instant)>,
    /// What it announced by Have and no summary or delivery has confirmed
    /// yet: relied on only once [`Config::graft_timeout`] has passed.
    heard: BTreeMap<Fingerprint, u64>,
    /// Tips to announce to it, and when.
    announce: BTreeMap<Fingerprint, ChainTip>,
    announce_at: Option<Instant>,
    /// When it last sent a new envelope in answer to Wants: its other Wants
    /// are not timed out while it does (up to each Want's limit).
    progress_at: Option<Instant>,
    view: PeerView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Prune,
    Graft,
}

impl Peer {
    fn new(now: Instant, config: &Config) -> Peer {
        Peer {
            summarized: false,
            summary_stale: false,
            tips: BTreeMap::new(),
            next_summary: now + config.anti_entropy,
            buffered: 0,
            cooldown: BTreeMap::new(),
            eager: true,
            told: None,
            heard: BTreeMap::new(),
            announce: BTreeMap::new(),
            announce_at: None,
            progress_at: None,
            view: PeerView::default(),
        }
    }

    /// The highest seq of `author` it is known to hold, or was told of.
    fn known(&self, author: &Fingerprint) -> u64 {
        let tip = self.tips.get(author).copied().unwrap_or(0);
        tip.max(self.heard.get(author).copied().unwrap_or(0))
    }
}

impl Sync {
    /// `tips`: what the local store holds (highest contiguous seq per
    /// author). `trusted`: authors this node accepts (its trust store,
    /// including itself); peers are accepted from the same set.
    pub fn new(
        config: Config,
        tips: impl IntoIterator<Item = (Fingerprint, ChainTip)>,
        trusted: impl IntoIterator<Item = Fingerprint>,
    ) -> Sync {
        let authors = tips
            .into_iter()
            .map(|(author, tip)| {
                let state = Author {
                    tip: Some(tip),
                    handed: tip.seq,
                    ..Author::default()
                };
                (author, state)
            })
            .collect();
        Sync {
            config,
            trusted: trusted.into_iter().collect(),
            authors,
            peers: BTreeMap::new(),
            actions: VecDeque::new(),
            stats: Stats::default(),
            last_now: None,
            pending: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Replaces the trusted set. Connected peers no longer trusted produce
    /// [`Action::Disconnect`]; their envelopes are no longer requested or
    /// accepted. Newly trusted authors are asked of peers known to hold
    /// them at the next [`Sync::handle_timeout`] (see [`Sync::poll_timeout`]).
    pub fn set_trusted(&mut self, trusted: impl IntoIterator<Item = Fingerprint>) {
        let trusted: BTreeSet<Fingerprint> = trusted.into_iter().collect();
        let gone: Vec<PeerId> = self
            .peers
            .keys()
            .filter(|peer| !trusted.contains(*peer))
            .cloned()
            .collect();
        for peer in gone {
            self.drop_peer(&peer);
            self.actions.push_back(Action::Disconnect {
                peer,
                reason: "no longer trusted".into(),
            });
        }
        for (author, state) in &mut self.authors {
            if trusted.contains(author) {
                continue;
            }
            state.wants.clear();
            for (_, buffered) in std::mem::take(&mut state.buffer) {
                unbuffer(&mut self.peers, &mut self.stats, &buffered.peer);
            }
        }
        let added: Vec<Fingerprint> = trusted.difference(&self.trusted).cloned().collect();
        self.trusted = trusted;
        self.pending.extend(added);
    }

    /// A peer finished authentication: sends it our summary at once.
    pub fn handle_connected(&mut self, peer: PeerId, now: Instant) {
        self.tick(now);
        if !self.trusted.contains(&peer) {
            self.actions.push_back(Action::Disconnect {
                peer,
                reason: "not trusted".into(),
            });
            return;
        }
        // A reconnect without a disconnect in between starts afresh.
        self.drop_peer(&peer);
        self.peers
            .insert(peer.clone(), Peer::new(now, &self.config));
        self.send_summary(&peer);
    }

    /// The connection to a peer closed. What was asked of it is asked of
    /// others at the next [`Sync::handle_timeout`].
    pub fn handle_disconnected(&mut self, peer: &PeerId) {
        self.drop_peer(peer);
    }

    /// A frame from an authenticated peer. Summary, Want and Envelopes are
    /// handled; Auth and Goodbye belong to the driver and are ignored.
    pub fn handle_frame(&mut self, peer: &PeerId, frame: Frame, now: Instant) {
        self.tick(now);
        if !self.peers.contains_key(peer) {
            return;
        }
        match frame {
            Frame::Summary { tips } => self.on_summary(peer, tips, now),
            Frame::Want { author, from, to } => self.on_want(peer, author, from, to),
            Frame::Envelopes { items } => self.on_envelopes(peer, items, false, now),
            Frame::Push { items } => self.on_envelopes(peer, items, true, now),
            Frame::Have { tips } => self.on_have(peer, tips, now),
            Frame::Prune => self.on_mode(peer, false),
            Frame::Graft => self.on_mode(peer, true),
            Frame::Auth { .. } | Frame::Goodbye { .. } => {}
        }
    }

    /// The local store now holds `(author, seq, id)`: filed locally
    /// (`from = None`) or ingested from `from`. Pushes it to the connected
    /// peers not known to hold it over eager links, announces it over lazy
    /// ones, and releases buffered successors.
    pub fn handle_stored(
        &mut self,
        author: &Fingerprint,
        seq: u64,
        id: EnvelopeId,
        from: Option<&PeerId>,
        now: Instant,
    ) {
        self.stored(author, seq, id, from, false, now);
    }

    /// Like [`Sync::handle_stored`], for an envelope that must reach every
    /// node as fast as the mesh allows (the driver calls it for a critical
    /// incident): it is flooded, pushed in full over lazy links too, so it
    /// takes the fastest path whatever the tree, at the cost of a copy per
    /// link instead of about one per node.
    pub fn handle_stored_urgent(
        &mut self,
        author: &Fingerprint,
        seq: u64,
        id: EnvelopeId,
        from: Option<&PeerId>,
        now: Instant,
    ) {
        self.stored(author, seq, id, from, true, now);
    }

    fn stored(
        &mut self,
        author: &Fingerprint,
        seq: u64,
        id: EnvelopeId,
        from: Option<&PeerId>,
        urgent: bool,
        now: Instant,
    ) {
        self.tick(now);
        let state = self.authors.entry(author.clone()).or_default();
        let advanced = state.tip.is_none_or(|tip| seq > tip.seq);
        if advanced {
            state.tip = Some(ChainTip { seq, id });
        }
        state.in_flight = match seq.checked_add(1) {
            Some(next) => state.in_flight.split_off(&next),
            None => BTreeMap::new(),
        };
        if state.handed < seq {
            state.handed = seq;
            trim_wants(state);
        }
        self.release(author);
        if let Some(peer) = from.and_then(|from| self.peers.get_mut(from)) {
            let known = peer.tips.entry(author.clone()).or_default();
            *known = (*known).max(seq);
        }
        if !advanced || !self.trusted.contains(author) {
            return;
        }
        for (peer_id, peer) in &mut self.peers {
            if Some(peer_id) == from {
                continue;
            }
            if !peer.summarized {
                peer.summary_stale = true;
                continue;
            }
            if peer.known(author) >= seq {
                continue;
            }
            if !peer.eager && !self.config.flood && !urgent {
                peer.announce.insert(author.clone(), ChainTip { seq, id });
                peer.announce_at
                    .get_or_insert(now + self.config.announce_delay);
                continue;
            }
            // Only the new envelope: a peer further behind is catching up
            // by its own Wants (perhaps from another peer), or does not
            // trust the author; either way a range would be duplicates.
            peer.tips.insert(author.clone(), seq);
            peer.view.sent += 1;
            self.stats.items_announced += 1;
            self.actions.push_back(Action::Push {
                peer: peer_id.clone(),
                author: author.clone(),
                seq,
                urgent,
            });
        }
    }

    /// An item handed out by [`Action::Ingest`] was refused (bad signature,
    /// chain mismatch...). Forgets it, everything handed out after it, and
    /// what that peer buffered after it; asks for it again from another
    /// peer now, and from this one no sooner than [`Config::want_timeout`].
    pub fn handle_rejected(&mut self, peer: &PeerId, author: &Fingerprint, seq: u64, now: Instant) {
        self.tick(now);
        let Some(state) = self.authors.get_mut(author) else {
            return;
        };
        // A rejection of something no longer in flight is the echo of an
        // earlier one: its successors failed for want of it.
        if state.in_flight.get(&seq) != Some(peer) {
            return;
        }
        state.in_flight.split_off(&seq);
        let held = state.tip.map_or(0, |tip| tip.seq);
        state.handed = held.max(seq - 1);
        state.wants.retain(|want| want.peer != *peer);
        let (dropped, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut state.buffer)
            .into_iter()
            .partition(|(_, buffered)| buffered.peer == *peer);
        state.buffer = kept;
        for _ in dropped {
            unbuffer(&mut self.peers, &mut self.stats, peer);
        }
        if let Some(p) = self.peers.get_mut(peer) {
            p.cooldown
                .insert(author.clone(), now + self.config.want_timeout);
            let known = p.tips.entry(author.clone()).or_default();
            *known = (*known).min(seq - 1);
        }
        self.release(author);
        self.request_missing(author, now, Some(peer));
    }

    /// Sends due summaries, asks again for Wants that timed out, and does
    /// the work left by events that carried no `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.tick(now);
        let due: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, peer)| peer.next_summary <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for peer in due {
            if let Some(p) = self.peers.get_mut(&peer) {
                p.next_summary = now + self.config.anti_entropy;
            }
            self.send_summary(&peer);
        }
        let mut expired = Vec::new();
        let timeout = self.config.want_timeout;
        for (author, state) in &mut self.authors {
            state.wants.retain_mut(|want| {
                if want.deadline > now {
                    return true;
                }
                // A peer still answering Wants (others first: it answers
                // them in order) is not stalled, up to the Want's limit.
                let progress = self.peers.get(&want.peer).and_then(|p| p.progress_at);
                let extended = progress.map(|at| (at + timeout).min(want.limit));
                if let Some(deadline) = extended.filter(|d| *d > now) {
                    want.deadline = deadline;
                    return true;
                }
                expired.push((author.clone(), want.peer.clone()));
                false
            });
        }
        for peer in self.peers.values_mut() {
            peer.cooldown.retain(|author, until| {
                let live = *until > now;
                if !live {
                    self.pending.insert(author.clone());
                }
                live
            });
        }
        for (author, peer) in expired {
            self.request_missing(&author, now, Some(&peer));
        }
        self.send_announcements(now);
        let grafts: Vec<Fingerprint> = self
            .authors
            .iter()
            .filter(|(_, state)| state.graft_at.is_some_and(|at| at <= now))
            .map(|(author, _)| author.clone())
            .collect();
        for author in grafts {
            self.graft(&author, now);
        }
        self.tick(now);
    }

    /// When to call [`Sync::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.last_now.filter(|_| !self.pending.is_empty());
        let summaries = self.peers.values().map(|peer| peer.next_summary);
        let cooldowns = self
            .peers
            .values()
            .flat_map(|peer| peer.cooldown.values().copied());
        let wants = self
            .authors
            .values()
            .flat_map(|state| state.wants.iter().map(|want| want.deadline));
        let announcements = self.peers.values().filter_map(|peer| peer.announce_at);
        let grafts = self.authors.values().filter_map(|state| state.graft_at);
        pending
            .into_iter()
            .chain(summaries)
            .chain(cooldowns)
            .chain(wants)
            .chain(announcements)
            .chain(grafts)
            .min()
    }

    /// The next thing for the driver to do.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Per-peer view for `cerctl peers`.
    pub fn peer(&self, peer: &PeerId) -> Option<PeerView> {
        let p = self.peers.get(peer)?;
        let ours = |author: &Fingerprint| {
            self.authors
                .get(author)
                .and_then(|state| state.tip)
                .map_or(0, |tip| tip.seq)
        };
        let behind = p
            .tips
            .iter()
            .filter(|(author, _)| self.trusted.contains(*author))
            .map(|(author, theirs)| theirs.saturating_sub(ours(author)))
            .sum();
        let ahead = self
            .authors
            .iter()
            .filter(|(author, _)| self.trusted.contains(*author))
            .filter_map(|(author, state)| {
                let theirs = p.tips.get(author).copied().unwrap_or(0);
                state.tip.map(|tip| tip.seq.saturating_sub(theirs))
            })
            .sum();
        Some(PeerView {
            summarized: p.summarized,
            behind,
            ahead,
            eager: p.eager,
            ..p.view.clone()
        })
    }

    /// The connected peers, in fingerprint order.
    pub fn peers(&self) -> impl Iterator<Item = &PeerId> {
        self.peers.keys()
    }

    /// What the local store holds of `author`, as last told.
    pub fn local_tip(&self, author: &Fingerprint) -> Option<ChainTip> {
        self.authors.get(author).and_then(|state| state.tip)
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    fn tick(&mut self, now: Instant) {
        self.last_now = Some(now);
        for author in std::mem::take(&mut self.pending) {
            self.request_missing(&author, now, None);
        }
    }

    fn drop_peer(&mut self, peer: &PeerId) {
        if self.peers.remove(peer).is_none() {
            return;
        }
        for (author, state) in &mut self.authors {
            let before = state.wants.len();
            state.wants.retain(|want| want.peer != *peer);
            if state.wants.len() != before {
                self.pending.insert(author.clone());
            }
            let before = state.buffer.len();
            state.buffer.retain(|_, buffered| buffered.peer != *peer);
            self.stats.buffered -= before - state.buffer.len();
        }
    }

    fn summary(&self) -> Frame {
        let tips = self
            .authors
            .iter()
            .filter(|(author, _)| self.trusted.contains(*author))
            .filter_map(|(author, state)| {
                state.tip.map(|tip| Tip {
                    author: author.clone(),
                    seq: tip.seq,
                    id: tip.id,
                })
            })
            .take(wire::MAX_SUMMARY_AUTHORS)
            .collect();
        Frame::Summary { tips }
    }

    fn send_summary(&mut self, peer: &PeerId) {
        let frame = self.summary();
        self.stats.summaries_sent += 1;
        self.actions.push_back(Action::Send {
            peer: peer.clone(),
            frame,
        });
    }

    fn on_summary(&mut self, peer: &PeerId, tips: Vec<Tip>, now: Instant) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let mut known = BTreeMap::new();
        for tip in tips {
            let seq = known.entry(tip.author).or_insert(0);
            *seq = (*seq).max(tip.seq);
        }
        // What it says replaces what we guessed: pushes still in flight are
        // not resent, since a push only ever carries the new envelope.
        p.tips = known;
        let first = !p.summarized;
        p.summarized = true;
        if first && std::mem::take(&mut p.summary_stale) {
            self.send_summary(peer);
        }
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let lacking: Vec<(Fingerprint, u64)> = p
            .tips
            .iter()
            .filter(|(author, theirs)| {
                self.trusted.contains(*author)
                    && **theirs > self.authors.get(*author).map_or(0, |state| state.handed)
            })
            .map(|(author, theirs)| (author.clone(), *theirs))
            .collect();
        for (author, theirs) in lacking {
            let from = self.authors.get(&author).map_or(0, |state| state.handed) + 1;
            self.request(&author, peer, from, theirs, now);
        }
    }

    fn on_want(&mut self, peer: &PeerId, author: Fingerprint, from: u64, to: u64) {
        if from == 0 || from > to || !self.trusted.contains(&author) {
            return;
        }
        let Some(tip) = self.local_tip(&author) else {
            return;
        };
        if from > tip.seq {
            return;
        }
        let to = to.min(tip.seq);
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let count = to - from + 1;
        p.view.sent += count;
        self.stats.items_announced += count;
        // It will hold these: live pushes carry only what comes after.
        let known = p.tips.entry(author.clone()).or_default();
        *known = (*known).max(to);
        self.actions.push_back(Action::SendRange {
            peer: peer.clone(),
            author,
            from,
            to,
        });
    }

    /// Envelopes a peer sent: asked for (`pushed = false`), or pushed to
    /// this node over an eager link.
    fn on_envelopes(&mut self, peer: &PeerId, items: Vec<Item>, pushed: bool, now: Instant) {
        let mut touched = BTreeSet::new();
        let mut duplicate_push = false;
        for item in items {
            let Some(p) = self.peers.get_mut(peer) else {
                return;
            };
            p.view.received += 1;
            self.stats.received += 1;
            if pushed {
                self.stats.pushes_received += 1;
            }
            let (author, seq) = match &item {
                Item::Live { bytes, .. } => match Envelope::peek_place(bytes) {
                    Ok(place) => place,
                    Err(_) => {
                        p.view.junk += 1;
                        self.stats.junk += 1;
                        continue;
                    }
                },
                Item::Tombstone(tombstone) => (tombstone.author.clone(), tombstone.seq),
            };
            if !self.trusted.contains(&author) {
                p.view.ignored += 1;
                self.stats.ignored += 1;
                continue;
            }
            // It holds this one, so nothing up to it is pushed back.
            let known = p.tips.entry(author.clone()).or_default();
            *known = (*known).max(seq);
            let new = self.accept(peer, &author, seq, item, now);
            if new && !pushed {
                // A new envelope answering a Want: the peer is working
                // through its Wants (in order), so those queued behind
                // are not stalled. Pushes and duplicates prove nothing.
                if let Some(p) = self.peers.get_mut(peer) {
                    p.progress_at = Some(now);
                }
            }
            if !new && pushed {
                duplicate_push = true;
                self.stats.duplicate_pushes += 1;
                if let Some(p) = self.peers.get_mut(peer) {
                    p.view.duplicate_pushes += 1;
                }
            }
            touched.insert(author);
        }
        if duplicate_push && !self.config.flood {
            self.prune(peer, now);
        }
        for author in touched {
            self.request_missing(&author, now, None);
        }
    }

    /// A duplicate push: the link closes a loop of eager links. It becomes
    /// lazy both ways, and the peer is told (again if a Prune sent a while
    /// ago has not taken effect).
    fn prune(&mut self, peer: &PeerId, now: Instant) {
        self.set_mode(peer, Mode::Prune, now);
    }

    /// Makes the link to `peer` eager, telling it (again if a Graft sent a
    /// while ago has not taken effect).
    fn make_eager(&mut self, peer: &PeerId, now: Instant) {
        self.set_mode(peer, Mode::Graft, now);
    }

    /// Sets the link's mode and says so, unless the same word went out
    /// less than [`Config::graft_timeout`] ago.
    fn set_mode(&mut self, peer: &PeerId, mode: Mode, now: Instant) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        let eager = mode == Mode::Graft;
        let settled = p.eager == eager && told_lately(p.told, mode, now, self.config.graft_timeout);
        p.eager = eager;
        if settled {
            return;
        }
        p.told = Some((mode, now));
        let (count, frame) = match mode {
            Mode::Prune => (&mut self.stats.prunes_sent, Frame::Prune),
            Mode::Graft => (&mut self.stats.grafts_sent, Frame::Graft),
        };
        *count += 1;
        self.actions.push_back(Action::Send {
            peer: peer.clone(),
            frame,
        });
    }

    /// The peer asked for a link mode: Prune (`eager = false`) or Graft.
    fn on_mode(&mut self, peer: &PeerId, eager: bool) {
        if let Some(p) = self.peers.get_mut(peer) {
            // Its word supersedes this node's last one: after a Graft, a
            // duplicate from it deserves a fresh Prune; after a Prune, its
            // announcements are no sign of a lost Graft.
            p.eager = eager;
            p.told = None;
        }
    }

    /// A lazy peer announced what it holds. What this node lacks gets a
    /// graft timer; nothing is asked for yet.
    fn on_have(&mut self, peer: &PeerId, tips: Vec<Tip>, now: Instant) {
        let regraft = self.peers.get(peer).is_some_and(|p| {
            p.eager
                && matches!(p.told, Some((Mode::Graft, _)))
                && !told_lately(p.told, Mode::Graft, now, self.config.graft_timeout)
        });
        if regraft {
            // It still announces a while after this node grafted the
            // link: the Graft was lost.
            self.make_eager(peer, now);
        }
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        for tip in tips {
            if !self.trusted.contains(&tip.author) {
                continue;
            }
            let heard = p.heard.entry(tip.author.clone()).or_default();
            *heard = (*heard).max(tip.seq);
            let state = self.authors.entry(tip.author).or_default();
            if tip.seq > state.handed && state.graft_at.is_none() {
                state.graft_at = Some(now + self.config.graft_timeout);
            }
        }
    }

    /// Sends the announcements that are due.
    fn send_announcements(&mut self, now: Instant) {
        for (peer_id, peer) in &mut self.peers {
            if peer.announce_at.is_none_or(|at| at > now) {
                continue;
            }
            peer.announce_at = None;
            let announce = std::mem::take(&mut peer.announce);
            let tips: Vec<Tip> = announce
                .into_iter()
                .filter(|(author, tip)| {
                    self.trusted.contains(author) && peer.known(author) < tip.seq
                })
                .map(|(author, tip)| Tip {
                    author,
                    seq: tip.seq,
                    id: tip.id,
                })
                .collect();
            for chunk in tips.chunks(wire::MAX_SUMMARY_AUTHORS) {
                self.stats.haves_sent += 1;
                self.stats.announced += chunk.len() as u64;
                self.actions.push_back(Action::Send {
                    peer: peer_id.clone(),
                    frame: Frame::Have {
                        tips: chunk.to_vec(),
                    },
                });
            }
        }
    }

    /// The eager links had their time to deliver what peers announced of
    /// `author`: asks the announcers for what is still missing, and makes
    /// the link eager again when only the newest envelopes are missing.
    fn graft(&mut self, author: &Fingerprint, now: Instant) {
        let Some(state) = self.authors.get_mut(author) else {
            return;
        };
        state.graft_at = None;
        let handed = state.handed;
        // What they announced is now relied on, like a summary.
        let mut announcers: Vec<(PeerId, u64)> = Vec::new();
        for (peer_id, peer) in &mut self.peers {
            let Some(heard) = peer.heard.remove(author) else {
                continue;
            };
            let tip = peer.tips.entry(author.clone()).or_default();
            *tip = (*tip).max(heard);
            if heard > handed {
                announcers.push((peer_id.clone(), heard));
            }
        }
        let Some(target) = announcers.iter().map(|(_, seq)| *seq).max() else {
            return;
        };
        let missing = uncovered(state, handed + 1, target);
        if missing.is_empty() {
            return;
        }
        // The announcer that holds the most, first in fingerprint order.
        let (peer, _) = announcers
            .iter()
            .find(|(_, seq)| *seq == target)
            .cloned()
            .expect("the target is an announcer's");
        if target - handed <= GRAFT_SPAN && !self.config.flood {
            self.make_eager(&peer, now);
        }
        self.request(author, &peer, handed + 1, target, now);
        self.request_missing(author, now, Some(&peer));
    }

    /// One item of a trusted author from a connected peer. False when it
    /// was a duplicate.
    fn accept(
        &mut self,
        peer: &PeerId,
        author: &Fingerprint,
        seq: u64,
        item: Item,
        now: Instant,
    ) -> bool {
        let state = self.authors.entry(author.clone()).or_default();
        let duplicate = seq <= state.handed || state.buffer.contains_key(&seq);
        if duplicate {
            if let Some(p) = self.peers.get_mut(peer) {
                p.view.duplicates += 1;
            }
            self.stats.duplicates += 1;
            return false;
        }
        if seq == state.handed + 1 {
            hand_out(
                state,
                &mut self.actions,
                &mut self.stats,
                peer,
                author,
                seq,
                item,
            );
            self.release(author);
            return true;
        }
        let below = state
            .buffer
            .range(..seq)
            .next_back()
            .map_or(state.handed, |(below, _)| *below);
        match self.peers.get_mut(peer) {
            Some(p) if p.buffered < self.config.max_buffered => {
                p.buffered += 1;
                self.stats.buffered += 1;
                state.buffer.insert(
                    seq,
                    Buffered {
                        peer: peer.clone(),
                        item,
                    },
                );
            }
            _ => self.stats.overflowed += 1,
        }
        // The gap just below: gaps further down were asked for when the
        // items above them arrived.
        self.request(author, peer, below + 1, seq - 1, now);
        true
    }

    /// Hands out buffered items that now follow on, and drops buffered
    /// items already held.
    fn release(&mut self, author: &Fingerprint) {
        let Some(state) = self.authors.get_mut(author) else {
            return;
        };
        while let Some(entry) = state.buffer.first_entry() {
            let seq = *entry.key();
            let next = state.handed.saturating_add(1);
            if seq > next {
                break;
            }
            let buffered = entry.remove();
            unbuffer(&mut self.peers, &mut self.stats, &buffered.peer);
            if seq == next {
                let Buffered { peer, item } = buffered;
                hand_out(
                    state,
                    &mut self.actions,
                    &mut self.stats,
                    &peer,
                    author,
                    seq,
                    item,
                );
            }
        }
        trim_wants(state);
    }

    /// Asks peers known to hold more of `author` for what is neither held,
    /// handed out, buffered nor already asked for. Prefers peers other than
    /// `avoid` (the one that just failed to deliver).
    fn request_missing(&mut self, author: &Fingerprint, now: Instant, avoid: Option<&PeerId>) {
        if !self.trusted.contains(author) {
            return;
        }
        let handed = self.authors.get(author).map_or(0, |state| state.handed);
        let mut sources: Vec<(PeerId, u64)> = self
            .peers
            .iter()
            .filter(|(_, peer)| !peer.cooldown.contains_key(author))
            .filter_map(|(id, peer)| {
                let theirs = peer.tips.get(author).copied().unwrap_or(0);
                (theirs > handed).then(|| (id.clone(), theirs))
            })
            .collect();
        // Stable: fingerprint order within each group.
        sources.sort_by_key(|(id, _)| Some(id) == avoid);
        let Some(target) = sources.iter().map(|(_, theirs)| *theirs).max() else {
            return;
        };
        let gaps = match self.authors.get(author) {
            Some(state) => uncovered(state, handed + 1, target),
            None => vec![(handed + 1, target)],
        };
        for (lo, hi) in gaps {
            let mut from = lo;
            while from <= hi {
                let Some((peer, theirs)) = sources.iter().find(|(_, theirs)| *theirs >= from)
                else {
                    break;
                };
                let to = hi.min(*theirs);
                let peer = peer.clone();
                if !self.request(author, &peer, from, to, now) {
                    return;
                }
                match to.checked_add(1) {
                    Some(next) => from = next,
                    None => break,
                }
            }
        }
    }

    /// Sends Wants to `peer` for the parts of `lo..=hi` not yet covered,
    /// in spans of at most [`Config::max_want_span`]. Returns false when
    /// the author's window of outstanding Wants is full.
    fn request(
        &mut self,
        author: &Fingerprint,
        peer: &PeerId,
        lo: u64,
        hi: u64,
        now: Instant,
    ) -> bool {
        if lo == 0 || lo > hi || !self.trusted.contains(author) {
            return true;
        }
        match self.peers.get(peer) {
            Some(p) if !p.cooldown.contains_key(author) => {}
            _ => return true,
        }
        let span = self.config.max_want_span.max(1);
        let state = self.authors.entry(author.clone()).or_default();
        for (gap_lo, gap_hi) in uncovered(state, lo, hi) {
            let mut from = gap_lo;
            loop {
                if state.wants.len() >= self.config.max_wants_per_author.max(1) {
                    return false;
                }
                let to = gap_hi.min(from.saturating_add(span - 1));
                let window =
                    u32::try_from(self.config.max_wants_per_author.max(1)).unwrap_or(u32::MAX);
                state.wants.push(Outstanding {
                    peer: peer.clone(),
                    from,
                    to,
                    deadline: now + self.config.want_timeout,
                    limit: now + self.config.want_timeout.saturating_mul(window),
                });
                self.stats.wants_sent += 1;
                self.actions.push_back(Action::Send {
                    peer: peer.clone(),
                    frame: Frame::Want {
                        author: author.clone(),
                        from,
                        to,
                    },
                });
                match to.checked_add(1) {
                    Some(next) if next <= gap_hi => from = next,
                    _ => break,
                }
            }
        }
        true
    }
}

/// Whether `mode` is what this node last told the peer, less than
/// `within` ago.
fn told_lately(told: Option<(Mode, Instant)>, mode: Mode, now: Instant, within: Duration) -> bool {
    told.is_some_and(|(last, at)| last == mode && now.saturating_duration_since(at) < within)
}

fn hand_out(
    state: &mut Author,
    actions: &mut VecDeque<Action>,
    stats: &mut Stats,
    peer: &PeerId,
    author: &Fingerprint,
    seq: u64,
    item: Item,
) {
    state.handed = seq;
    state.in_flight.insert(seq, peer.clone());
    stats.ingested += 1;
    actions.push_back(Action::Ingest {
        from: peer.clone(),
        author: author.clone(),
        seq,
        item,
    });
}

fn unbuffer(peers: &mut BTreeMap<PeerId, Peer>, stats: &mut Stats, peer: &PeerId) {
    stats.buffered = stats.buffered.saturating_sub(1);
    if let Some(p) = peers.get_mut(peer) {
        p.buffered = p.buffered.saturating_sub(1);
    }
}

/// Drops the parts of Wants at or below `handed`: they have arrived.
fn trim_wants(state: &mut Author) {
    let handed = state.handed;
    state.wants.retain(|want| want.to > handed);
    for want in &mut state.wants {
        want.from = want.from.max(handed + 1);
    }
}

/// The parts of `lo..=hi` neither asked for nor buffered, in order.
fn uncovered(state: &Author, lo: u64, hi: u64) -> Vec<(u64, u64)> {
    if lo > hi {
        return Vec::new();
    }
    let mut covered: Vec<(u64, u64)> = state
        .wants
        .iter()
        .map(|want| (want.from, want.to))
        .chain(state.buffer.range(lo..=hi).map(|(seq, _)| (*seq, *seq)))
        .collect();
    covered.sort_unstable();
    let mut gaps = Vec::new();
    let mut next = lo;
    for (from, to) in covered {
        if to < next {
            continue;
        }
        if from > hi {
            break;
        }
        if from > next {
            gaps.push((next, from - 1));
        }
        match to.checked_add(1) {
            Some(after) if after <= hi => next = after,
            _ => return gaps,
        }
    }
    gaps.push((next, hi));
    gaps
}

#[cfg(test)]
mod tests;
