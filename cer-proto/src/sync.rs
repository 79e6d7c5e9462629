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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            anti_entropy: Duration::from_secs(30),
            want_timeout: Duration::from_secs(10),
            max_batch: wire::MAX_BATCH,
            max_want_span: 4096,
            max_buffered: 4096,
            max_wants_per_author: 16,
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
    /// Items announced to it with [`Action::SendRange`].
    pub sent: u64,
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
    view: PeerView,
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
        self.peers.insert(
            peer.clone(),
            Peer {
                summarized: false,
                summary_stale: false,
                tips: BTreeMap::new(),
                next_summary: now + self.config.anti_entropy,
                buffered: 0,
                cooldown: BTreeMap::new(),
                view: PeerView::default(),
            },
        );
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
            Frame::Envelopes { items } => self.on_envelopes(peer, items, now),
            Frame::Auth { .. } | Frame::Goodbye { .. } => {}
        }
    }

    /// The local store now holds `(author, seq, id)`: filed locally
    /// (`from = None`) or ingested from `from`. Pushes it to the connected
    /// peers not known to hold it and releases buffered successors.
    pub fn handle_stored(
        &mut self,
        author: &Fingerprint,
        seq: u64,
        id: EnvelopeId,
        from: Option<&PeerId>,
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
            let known = peer.tips.entry(author.clone()).or_default();
            if *known >= seq {
                continue;
            }
            // Only the new envelope: a peer further behind is catching up
            // by its own Wants (perhaps from another peer), or does not
            // trust the author; either way a range would be duplicates.
            *known = seq;
            peer.view.sent += 1;
            self.stats.items_announced += 1;
            self.actions.push_back(Action::SendRange {
                peer: peer_id.clone(),
                author: author.clone(),
                from: seq,
                to: seq,
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
        for (author, state) in &mut self.authors {
            state.wants.retain(|want| {
                let live = want.deadline > now;
                if !live {
                    expired.push((author.clone(), want.peer.clone()));
                }
                live
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
        pending
            .into_iter()
            .chain(summaries)
            .chain(cooldowns)
            .chain(wants)
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

    fn on_envelopes(&mut self, peer: &PeerId, items: Vec<Item>, now: Instant) {
        let mut touched = BTreeSet::new();
        for item in items {
            let Some(p) = self.peers.get_mut(peer) else {
                return;
            };
            p.view.received += 1;
            self.stats.received += 1;
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
            self.accept(peer, &author, seq, item, now);
            touched.insert(author);
        }
        for author in touched {
            self.request_missing(&author, now, None);
        }
    }

    /// One item of a trusted author from a connected peer.
    fn accept(&mut self, peer: &PeerId, author: &Fingerprint, seq: u64, item: Item, now: Instant) {
        let state = self.authors.entry(author.clone()).or_default();
        let duplicate = seq <= state.handed || state.buffer.contains_key(&seq);
        if duplicate {
            if let Some(p) = self.peers.get_mut(peer) {
                p.view.duplicates += 1;
            }
            self.stats.duplicates += 1;
            return;
        }
        for want in &mut state.wants {
            if want.peer == *peer && (want.from..=want.to).contains(&seq) {
                want.deadline = now + self.config.want_timeout;
            }
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
            return;
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
                state.wants.push(Outstanding {
                    peer: peer.clone(),
                    from,
                    to,
                    deadline: now + self.config.want_timeout,
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
mod tests {
    use super::*;
    use crate::envelope::{Body, Draft, DraftBody, IncidentBody};
    use crate::model::{Affected, Classification, Severity, Status, Timestamp, Tlp};
    use crate::wire::WireTombstone;
    use uuid::Uuid;

    fn fp(n: u8) -> Fingerprint {
        Fingerprint::parse(&format!("{n:02X}").repeat(20)).unwrap()
    }

    fn id(author: &Fingerprint, seq: u64) -> EnvelopeId {
        EnvelopeId::of(format!("{author}/{seq}").as_bytes())
    }

    fn tip(author: &Fingerprint, seq: u64) -> ChainTip {
        ChainTip {
            seq,
            id: id(author, seq),
        }
    }

    /// Unit tests use tombstones: their author and seq need no JSON.
    fn item(author: &Fingerprint, seq: u64) -> Item {
        Item::Tombstone(WireTombstone {
            author: author.clone(),
            seq,
            id: id(author, seq),
            proof: vec![],
            proof_sig: vec![],
        })
    }

    fn live(author: &Fingerprint, seq: u64) -> Item {
        let draft = Draft {
            author: author.clone(),
            seq,
            prev: (seq > 1).then(|| id(author, seq - 1)),
            created: Timestamp::from_unix_nanos(0),
            subject: Uuid::nil(),
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(Body::Incident(IncidentBody {
                title: "t".into(),
                description: String::new(),
                severity: Severity::Low,
                classification: Classification::parse("test/test").unwrap(),
                status: Status::New,
                indicators: vec![],
                affected: Affected::default(),
                occurred: None,
                detected: None,
                tags: vec![],
                source: None,
            })),
            withdraws: vec![],
        };
        Item::Live {
            bytes: draft.to_bytes().unwrap(),
            sig: vec![0; 64],
        }
    }

    fn batch(author: &Fingerprint, seqs: impl IntoIterator<Item = u64>) -> Frame {
        Frame::Envelopes {
            items: seqs.into_iter().map(|seq| item(author, seq)).collect(),
        }
    }

    fn summary(tips: &[(&Fingerprint, u64)]) -> Frame {
        Frame::Summary {
            tips: tips
                .iter()
                .map(|(author, seq)| Tip {
                    author: (*author).clone(),
                    seq: *seq,
                    id: id(author, *seq),
                })
                .collect(),
        }
    }

    fn want(author: &Fingerprint, from: u64, to: u64) -> Frame {
        Frame::Want {
            author: author.clone(),
            from,
            to,
        }
    }

    fn drain(sync: &mut Sync) -> Vec<Action> {
        std::iter::from_fn(|| sync.poll_action()).collect()
    }

    fn sends(actions: &[Action]) -> Vec<(PeerId, Frame)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Send { peer, frame } => Some((peer.clone(), frame.clone())),
                _ => None,
            })
            .collect()
    }

    fn ingests(actions: &[Action]) -> Vec<(PeerId, u64)> {
        actions
            .iter()
            .filter_map(|action| match action {
                Action::Ingest { from, seq, .. } => Some((from.clone(), *seq)),
                _ => None,
            })
            .collect()
    }

    /// A node `me` trusting `me`, A, B, C and author X, with peers A and B
    /// connected and summarized as holding nothing.
    struct Fixture {
        sync: Sync,
        now: Instant,
        me: Fingerprint,
        a: PeerId,
        b: PeerId,
        x: Fingerprint,
    }

    fn fixture(config: Config, our_x: u64) -> Fixture {
        let (me, a, b, c, x) = (fp(0xEE), fp(0xA1), fp(0xB2), fp(0xC3), fp(0x99));
        let tips = (our_x > 0).then(|| (x.clone(), tip(&x, our_x)));
        let trusted = [me.clone(), a.clone(), b.clone(), c, x.clone()];
        let mut sync = Sync::new(config, tips, trusted);
        let now = Instant::now();
        for peer in [&a, &b] {
            sync.handle_connected(peer.clone(), now);
            sync.handle_frame(peer, summary(&[]), now);
        }
        drain(&mut sync);
        Fixture {
            sync,
            now,
            me,
            a,
            b,
            x,
        }
    }

    #[test]
    fn connect_sends_summary_of_trusted_authors_only() {
        let (me, peer, untrusted) = (fp(1), fp(2), fp(3));
        let tips = [
            (me.clone(), tip(&me, 5)),
            (untrusted.clone(), tip(&untrusted, 9)),
        ];
        let mut sync = Sync::new(Config::default(), tips, [me.clone(), peer.clone()]);
        let now = Instant::now();
        sync.handle_connected(peer.clone(), now);
        assert_eq!(
            drain(&mut sync),
            vec![Action::Send {
                peer: peer.clone(),
                frame: summary(&[(&me, 5)])
            }]
        );
        assert_eq!(
            sync.poll_timeout(),
            Some(now + Config::default().anti_entropy)
        );
        let view = sync.peer(&peer).unwrap();
        assert!(!view.summarized);
        assert_eq!(view.ahead, 5);
    }

    #[test]
    fn untrusted_peer_is_refused_on_connect() {
        let mut sync = Sync::new(Config::default(), [], [fp(1)]);
        sync.handle_connected(fp(2), Instant::now());
        assert!(matches!(
            drain(&mut sync).as_slice(),
            [Action::Disconnect { peer, .. }] if *peer == fp(2)
        ));
        assert!(sync.peer(&fp(2)).is_none());
    }

    #[test]
    fn summary_asks_for_what_is_missing_in_spans_once() {
        let config = Config {
            max_want_span: 100,
            ..Config::default()
        };
        let mut f = fixture(config, 10);
        let untrusted = fp(0x55);
        f.sync.handle_frame(
            &f.a,
            summary(&[(&f.x, 250), (&untrusted, 7), (&f.me, 0)]),
            f.now,
        );
        let asked = sends(&drain(&mut f.sync));
        assert_eq!(
            asked,
            vec![
                (f.a.clone(), want(&f.x, 11, 110)),
                (f.a.clone(), want(&f.x, 111, 210)),
                (f.a.clone(), want(&f.x, 211, 250)),
            ]
        );
        let view = f.sync.peer(&f.a).unwrap();
        assert!(view.summarized);
        assert_eq!(view.behind, 240);
        // B holds more: only the part not already asked of A.
        f.sync.handle_frame(&f.b, summary(&[(&f.x, 260)]), f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.b.clone(), want(&f.x, 251, 260))]
        );
        // A repeats itself: nothing new.
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 250)]), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
    }

    #[test]
    fn stalled_want_is_asked_again_of_another_peer() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
        f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), want(&f.x, 1, 5))]
        );
        let timeout = Config::default().want_timeout;
        // Progress pushes the deadline back.
        let later = f.now + timeout / 2;
        f.sync.handle_frame(&f.a, batch(&f.x, [1, 2]), later);
        assert_eq!(
            ingests(&drain(&mut f.sync)),
            vec![(f.a.clone(), 1), (f.a.clone(), 2)]
        );
        assert_eq!(f.sync.poll_timeout(), Some(later + timeout));
        f.sync.handle_timeout(f.now + timeout);
        assert_eq!(drain(&mut f.sync), vec![]);
        f.sync.handle_timeout(later + timeout);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.b.clone(), want(&f.x, 3, 5))]
        );
    }

    #[test]
    fn want_is_answered_up_to_the_local_tip() {
        let mut f = fixture(Config::default(), 10);
        f.sync.handle_frame(&f.a, want(&f.x, 4, 20), f.now);
        assert_eq!(
            drain(&mut f.sync),
            vec![Action::SendRange {
                peer: f.a.clone(),
                author: f.x.clone(),
                from: 4,
                to: 10
            }]
        );
        assert_eq!(f.sync.peer(&f.a).unwrap().sent, 7);
        // Beyond the tip, an author we lack, an untrusted author: nothing.
        f.sync.handle_frame(&f.a, want(&f.x, 11, 20), f.now);
        f.sync.handle_frame(&f.a, want(&f.me, 1, 20), f.now);
        f.sync.handle_frame(&f.a, want(&fp(0x55), 1, 20), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        // What was sent in answer is not pushed again.
        f.sync.handle_stored(&f.x, 11, id(&f.x, 11), None, f.now);
        assert_eq!(
            drain(&mut f.sync),
            vec![
                Action::SendRange {
                    peer: f.a.clone(),
                    author: f.x.clone(),
                    from: 11,
                    to: 11
                },
                Action::SendRange {
                    peer: f.b.clone(),
                    author: f.x.clone(),
                    from: 11,
                    to: 11
                },
            ]
        );
    }

    #[test]
    fn items_in_order_are_ingested_and_duplicates_counted() {
        let mut f = fixture(Config::default(), 2);
        f.sync
            .handle_frame(&f.a, batch(&f.x, [1, 2, 3, 4, 3]), f.now);
        assert_eq!(
            ingests(&drain(&mut f.sync)),
            vec![(f.a.clone(), 3), (f.a.clone(), 4)]
        );
        // Handed out but not stored yet: still a duplicate.
        f.sync.handle_frame(&f.b, batch(&f.x, [4]), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        let a = f.sync.peer(&f.a).unwrap();
        assert_eq!((a.received, a.duplicates), (5, 3));
        let stats = f.sync.stats();
        assert_eq!(
            (stats.received, stats.duplicates, stats.ingested),
            (6, 4, 2)
        );
    }

    #[test]
    fn live_items_are_parsed_and_junk_counted() {
        let mut f = fixture(Config::default(), 0);
        let frame = Frame::Envelopes {
            items: vec![
                live(&f.x, 1),
                Item::Live {
                    bytes: b"{not json".to_vec(),
                    sig: vec![],
                },
                live(&fp(0x55), 1),
            ],
        };
        f.sync.handle_frame(&f.a, frame, f.now);
        assert_eq!(ingests(&drain(&mut f.sync)), vec![(f.a.clone(), 1)]);
        let view = f.sync.peer(&f.a).unwrap();
        assert_eq!((view.received, view.junk, view.ignored), (3, 1, 1));
    }

    #[test]
    fn out_of_order_items_wait_for_the_gap() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.a, batch(&f.x, [3, 4]), f.now);
        f.sync.handle_frame(&f.b, batch(&f.x, [7]), f.now);
        let actions = drain(&mut f.sync);
        assert_eq!(ingests(&actions), vec![]);
        assert_eq!(
            sends(&actions),
            vec![
                (f.a.clone(), want(&f.x, 1, 2)),
                (f.b.clone(), want(&f.x, 5, 6)),
            ]
        );
        assert_eq!(f.sync.stats().buffered, 3);
        f.sync.handle_frame(&f.a, batch(&f.x, [1, 2]), f.now);
        assert_eq!(
            ingests(&drain(&mut f.sync)),
            vec![
                (f.a.clone(), 1),
                (f.a.clone(), 2),
                (f.a.clone(), 3),
                (f.a.clone(), 4)
            ]
        );
        f.sync.handle_frame(&f.b, batch(&f.x, [5, 6]), f.now);
        assert_eq!(
            ingests(&drain(&mut f.sync)),
            vec![(f.b.clone(), 5), (f.b.clone(), 6), (f.b.clone(), 7)]
        );
        assert_eq!(f.sync.stats().buffered, 0);
        assert_eq!(
            f.sync.poll_timeout(),
            Some(f.now + Config::default().anti_entropy)
        );
    }

    #[test]
    fn buffer_is_bounded_per_peer() {
        let config = Config {
            max_buffered: 2,
            ..Config::default()
        };
        let mut f = fixture(config, 0);
        f.sync.handle_frame(&f.a, batch(&f.x, [2, 3, 4, 5]), f.now);
        drain(&mut f.sync);
        let stats = f.sync.stats();
        assert_eq!((stats.buffered, stats.overflowed), (2, 2));
        f.sync.handle_frame(&f.a, batch(&f.x, [1]), f.now);
        // 1..=3 follow on; 4 and 5 were dropped and are asked for again.
        let actions = drain(&mut f.sync);
        assert_eq!(
            ingests(&actions),
            vec![(f.a.clone(), 1), (f.a.clone(), 2), (f.a.clone(), 3)]
        );
        assert_eq!(f.sync.stats().buffered, 0);
        f.sync
            .handle_timeout(f.now + Config::default().want_timeout);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), want(&f.x, 4, 5))]
        );
    }

    #[test]
    fn stored_envelopes_are_pushed_once_and_not_back() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.a, batch(&f.x, [1]), f.now);
        drain(&mut f.sync);
        f.sync
            .handle_stored(&f.x, 1, id(&f.x, 1), Some(&f.a), f.now);
        assert_eq!(
            drain(&mut f.sync),
            vec![Action::SendRange {
                peer: f.b.clone(),
                author: f.x.clone(),
                from: 1,
                to: 1
            }]
        );
        // Stored again (a replay): nothing more.
        f.sync
            .handle_stored(&f.x, 1, id(&f.x, 1), Some(&f.a), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        assert_eq!(f.sync.local_tip(&f.x), Some(tip(&f.x, 1)));
        // A local filing goes to both; an unsummarized peer gets a fresh
        // summary when its own arrives instead.
        let c = fp(0xC3);
        f.sync.handle_connected(c.clone(), f.now);
        drain(&mut f.sync);
        f.sync.handle_stored(&f.me, 1, id(&f.me, 1), None, f.now);
        let actions = drain(&mut f.sync);
        assert_eq!(actions.len(), 2);
        assert!(actions
            .iter()
            .all(|a| matches!(a, Action::SendRange { peer, .. } if *peer != c)));
        f.sync.handle_frame(&c, summary(&[]), f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(c.clone(), summary(&[(&f.x, 1), (&f.me, 1)]))]
        );
    }

    #[test]
    fn push_carries_only_the_new_envelope() {
        let mut f = fixture(Config::default(), 10);
        // B says it holds 3 of X: it is catching up on its own.
        f.sync.handle_frame(&f.b, summary(&[(&f.x, 3)]), f.now);
        drain(&mut f.sync);
        f.sync
            .handle_stored(&f.x, 11, id(&f.x, 11), Some(&f.a), f.now);
        assert_eq!(
            drain(&mut f.sync),
            vec![Action::SendRange {
                peer: f.b.clone(),
                author: f.x.clone(),
                from: 11,
                to: 11
            }]
        );
        let view = f.sync.peer(&f.b).unwrap();
        assert_eq!((view.sent, view.ahead), (1, 0));
    }

    #[test]
    fn rejection_forgets_successors_and_asks_elsewhere() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.b, summary(&[(&f.x, 4)]), f.now);
        drain(&mut f.sync);
        f.sync.handle_frame(&f.a, batch(&f.x, [1, 2, 4]), f.now);
        f.sync.handle_frame(&f.b, batch(&f.x, [1]), f.now);
        drain(&mut f.sync);
        f.sync
            .handle_stored(&f.x, 1, id(&f.x, 1), Some(&f.a), f.now);
        drain(&mut f.sync);
        f.sync.handle_rejected(&f.a, &f.x, 2, f.now);
        // A's buffered 4 is gone; 2 is asked of B (3..=4 still are, from
        // B's summary).
        assert_eq!(f.sync.stats().buffered, 0);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.b.clone(), want(&f.x, 2, 2))]
        );
        f.sync.handle_frame(&f.b, batch(&f.x, [2, 3, 4]), f.now);
        assert_eq!(
            ingests(&drain(&mut f.sync)),
            vec![(f.b.clone(), 2), (f.b.clone(), 3), (f.b.clone(), 4)]
        );
        // The echo of the first rejection (3 failed for want of 2) and a
        // rejection for something never handed out change nothing.
        f.sync.handle_rejected(&f.a, &f.x, 3, f.now);
        f.sync.handle_rejected(&f.a, &f.x, 9, f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
    }

    #[test]
    fn rejected_peer_is_not_asked_again_until_cooldown() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 3)]), f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), want(&f.x, 1, 3))]
        );
        f.sync.handle_frame(&f.a, batch(&f.x, [1, 2, 3]), f.now);
        drain(&mut f.sync);
        f.sync.handle_rejected(&f.a, &f.x, 1, f.now);
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 3)]), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        let cooldown = f.now + Config::default().want_timeout;
        assert_eq!(f.sync.poll_timeout(), Some(cooldown));
        f.sync.handle_timeout(cooldown);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), want(&f.x, 1, 3))]
        );
    }

    #[test]
    fn untrusted_authors_are_neither_asked_nor_ingested() {
        let mut f = fixture(Config::default(), 0);
        let stranger = fp(0x55);
        f.sync
            .handle_frame(&f.a, summary(&[(&stranger, 100)]), f.now);
        f.sync.handle_frame(&f.a, batch(&stranger, [1, 2]), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        assert_eq!(f.sync.peer(&f.a).unwrap().ignored, 2);
        assert_eq!(f.sync.peer(&f.a).unwrap().behind, 0);
        // Trusting it later asks the peer that said it holds it.
        let mut trusted = vec![f.me.clone(), f.a.clone(), f.b.clone(), f.x.clone()];
        trusted.push(stranger.clone());
        f.sync.set_trusted(trusted);
        assert_eq!(f.sync.poll_timeout(), Some(f.now));
        f.sync.handle_timeout(f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), want(&stranger, 1, 100))]
        );
    }

    #[test]
    fn distrusted_peer_is_disconnected_and_its_wants_move() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
        f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
        f.sync.handle_frame(&f.a, batch(&f.x, [3]), f.now);
        drain(&mut f.sync);
        assert_eq!(f.sync.stats().buffered, 1);
        f.sync.set_trusted([f.me.clone(), f.b.clone(), f.x.clone()]);
        assert_eq!(
            drain(&mut f.sync),
            vec![Action::Disconnect {
                peer: f.a.clone(),
                reason: "no longer trusted".into()
            }]
        );
        assert!(f.sync.peer(&f.a).is_none());
        assert_eq!(f.sync.stats().buffered, 0);
        f.sync.handle_timeout(f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.b.clone(), want(&f.x, 1, 5))]
        );
        // Frames from it are ignored now.
        f.sync.handle_frame(&f.a, batch(&f.x, [1]), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        // Distrusting an author drops what was asked or buffered of it.
        f.sync.handle_frame(&f.b, batch(&f.x, [4]), f.now);
        f.sync.set_trusted([f.me.clone(), f.b.clone()]);
        assert_eq!(f.sync.stats().buffered, 0);
        f.sync.handle_frame(&f.b, batch(&f.x, [1]), f.now);
        assert_eq!(drain(&mut f.sync), vec![]);
        assert_eq!(
            f.sync.poll_timeout(),
            Some(f.now + Config::default().anti_entropy)
        );
    }

    #[test]
    fn disconnect_moves_wants_to_another_peer() {
        let mut f = fixture(Config::default(), 0);
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 5)]), f.now);
        f.sync.handle_frame(&f.b, summary(&[(&f.x, 5)]), f.now);
        drain(&mut f.sync);
        f.sync.handle_disconnected(&f.a);
        assert_eq!(f.sync.poll_timeout(), Some(f.now));
        f.sync.handle_timeout(f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.b.clone(), want(&f.x, 1, 5))]
        );
    }

    #[test]
    fn anti_entropy_sends_summaries_periodically() {
        let mut f = fixture(Config::default(), 3);
        let period = Config::default().anti_entropy;
        assert_eq!(f.sync.poll_timeout(), Some(f.now + period));
        f.sync.handle_timeout(f.now + period);
        let expected = summary(&[(&f.x, 3)]);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), expected.clone()), (f.b.clone(), expected)]
        );
        assert_eq!(f.sync.poll_timeout(), Some(f.now + period * 2));
    }

    #[test]
    fn want_window_is_bounded_and_slides() {
        let config = Config {
            max_want_span: 10,
            max_wants_per_author: 2,
            ..Config::default()
        };
        let mut f = fixture(config, 0);
        f.sync.handle_frame(&f.a, summary(&[(&f.x, 100)]), f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![
                (f.a.clone(), want(&f.x, 1, 10)),
                (f.a.clone(), want(&f.x, 11, 20))
            ]
        );
        f.sync.handle_frame(&f.a, batch(&f.x, 1..=10), f.now);
        assert_eq!(
            sends(&drain(&mut f.sync)),
            vec![(f.a.clone(), want(&f.x, 21, 30))]
        );
    }

    #[test]
    fn huge_seqs_do_not_overflow() {
        let mut f = fixture(Config::default(), 0);
        f.sync
            .handle_frame(&f.a, summary(&[(&f.x, u64::MAX)]), f.now);
        f.sync.handle_frame(&f.a, batch(&f.x, [u64::MAX]), f.now);
        f.sync
            .handle_frame(&f.a, want(&f.x, u64::MAX, u64::MAX), f.now);
        let actions = drain(&mut f.sync);
        assert_eq!(
            sends(&actions).len(),
            Config::default().max_wants_per_author
        );
        f.sync
            .handle_stored(&f.x, u64::MAX, id(&f.x, 1), None, f.now);
        f.sync.handle_frame(&f.a, batch(&f.x, [u64::MAX]), f.now);
        f.sync.handle_timeout(f.now + Duration::from_secs(3600));
        drain(&mut f.sync);
    }

    #[test]
    fn uncovered_subtracts_wants_and_buffer() {
        let now = Instant::now();
        let mut state = Author::default();
        for (from, to) in [(5, 9), (20, 30)] {
            state.wants.push(Outstanding {
                peer: fp(1),
                from,
                to,
                deadline: now,
            });
        }
        state.buffer.insert(
            12,
            Buffered {
                peer: fp(1),
                item: item(&fp(9), 12),
            },
        );
        assert_eq!(
            uncovered(&state, 1, 40),
            vec![(1, 4), (10, 11), (13, 19), (31, 40)]
        );
        assert_eq!(uncovered(&state, 5, 9), vec![]);
        assert_eq!(uncovered(&state, 25, 25), vec![]);
        assert_eq!(uncovered(&state, 2, 1), vec![]);
        assert_eq!(uncovered(&state, 31, u64::MAX), vec![(31, u64::MAX)]);
    }
}
