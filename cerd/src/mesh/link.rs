//! One link's tasks around the engine: a reader (frames in from both of
//! the peer's streams, rate-limited), the outbox (frames and envelope
//! ranges out on the frame stream, read from the store in batches) and the
//! live outbox (pushes and announcements out on the live stream, which
//! quinn sends first).
//!
//! Live envelopes never wait behind a catch-up: they have their own
//! stream, their own queue, and a higher priority on the wire. Within that
//! queue, envelopes stating a critical or high severity in the clear go
//! first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cer_proto::envelope::Envelope;
use cer_proto::model::Severity;
use cer_proto::wire::{Frame, Item, WireTombstone, MAX_BATCH, MAX_FRAME_BYTES};
use cer_proto::{EnvelopeId, Fingerprint};
use tokio::sync::mpsc;

use super::transport::{CloseCode, FrameReceiver, FrameSender, LinkHandle, MeshError};
use crate::node::Node;
use crate::store::{StoredEnvelope, Tombstone};

/// Frames a peer may send per second before it is disconnected, and the
/// burst allowed above that rate.
const FRAMES_PER_SECOND: f64 = 2_000.0;
const FRAME_BURST: f64 = 8_000.0;
/// Frame bytes a peer may send per second, and the burst.
const BYTES_PER_SECOND: f64 = 64.0 * 1024.0 * 1024.0;
const BYTE_BURST: f64 = 256.0 * 1024.0 * 1024.0;
/// Messages queued for one peer's outbox, and its live outbox, before new
/// ones are dropped (announcements, summaries and Wants repair what a full
/// queue dropped).
const OUTBOX_CAPACITY: usize = 4096;
/// Largest frame the outboxes build: leave room below the hard maximum.
const BATCH_BYTES: usize = MAX_FRAME_BYTES / 2;

/// What the engine queues on a link's frame stream.
pub(super) enum Out {
    Frame(Frame),
    Range {
        author: Fingerprint,
        from: u64,
        to: u64,
    },
}

/// What the engine queues on a link's live stream.
pub(super) enum Live {
    /// Announcements and link modes (Have, Prune, Graft).
    Frame(Frame),
    /// A newly stored envelope to push; an urgent one (flooded) goes in
    /// an `Envelopes` frame, whose duplicates do not prune the link.
    Push {
        author: Fingerprint,
        seq: u64,
        urgent: bool,
    },
}

/// What a link's reader tells the engine.
pub(super) enum FromLink {
    Frame {
        peer: Fingerprint,
        link: u64,
        frame: Frame,
    },
    /// The peer broke a limit or sent junk: the engine counts it and
    /// closes the link.
    Misbehaved {
        peer: Fingerprint,
        link: u64,
        reason: &'static str,
        detail: String,
    },
    Closed {
        peer: Fingerprint,
        link: u64,
        reason: String,
    },
}

/// A link's two queues.
pub(super) struct Outboxes {
    pub bulk: mpsc::Sender<Out>,
    pub live: mpsc::Sender<Live>,
}

/// Starts a link's reader, outbox and live outbox. `sent` counts the
/// envelopes sent on it.
pub(super) fn spawn<T: From<FromLink> + Send + 'static>(
    node: Arc<Node>,
    peer: Fingerprint,
    link: u64,
    (sender, receiver, handle): (FrameSender, FrameReceiver, LinkHandle),
    inbox: mpsc::Sender<T>,
    sent: Arc<AtomicU64>,
) -> Outboxes {
    let (bulk, bulk_rx) = mpsc::channel(OUTBOX_CAPACITY);
    let (live, live_rx) = mpsc::channel(OUTBOX_CAPACITY);
    // A link whose sending side stopped (a write failed) is closed, so
    // the peer and the engine start afresh instead of a link that only
    // listens.
    let closer = handle.clone();
    let bulk_task = outbox_task(node.clone(), sender, bulk_rx, sent.clone());
    tokio::spawn(async move {
        bulk_task.await;
        closer.close(CloseCode::Normal, "frame stream ended");
    });
    let closer = handle.clone();
    let live_task = live_task(node, handle.clone(), live_rx, sent);
    tokio::spawn(async move {
        live_task.await;
        closer.close(CloseCode::Normal, "live stream ended");
    });
    tokio::spawn(reader_task(peer, link, receiver, handle, inbox));
    Outboxes { bulk, live }
}

/// Reads frames from one link into the engine, enforcing rate limits: the
/// frame stream, and the peer's live stream once it opens one.
async fn reader_task<T: From<FromLink>>(
    peer: Fingerprint,
    link: u64,
    mut receiver: FrameReceiver,
    handle: LinkHandle,
    inbox: mpsc::Sender<T>,
) {
    let mut frames = TokenBucket::new(FRAMES_PER_SECOND, FRAME_BURST);
    let mut bytes = TokenBucket::new(BYTES_PER_SECOND, BYTE_BURST);
    let mut last_bytes = 0u64;
    let mut live: Option<FrameReceiver> = None;
    // The peer's live stream ended cleanly: nothing more comes on it.
    let mut live_done = false;
    let misbehaved = |reason: &'static str, detail: String| FromLink::Misbehaved {
        peer: peer.clone(),
        link,
        reason,
        detail,
    };
    let reason = loop {
        let next = tokio::select! {
            closed = handle.closed() => break closed.to_string(),
            next = receiver.recv() => match next {
                Ok(None) => break "stream finished".into(),
                other => other,
            },
            accepted = handle.accept_live(), if live.is_none() && !live_done => match accepted {
                Ok(stream) => {
                    live = Some(stream);
                    continue;
                }
                Err(e) => break e.to_string(),
            },
            next = async { live.as_mut().expect("guarded").recv().await }, if live.is_some() => match next {
                Ok(None) => {
                    live = None;
                    live_done = true;
                    continue;
                }
                other => other,
            },
        };
        match next {
            Ok(Some(frame)) => {
                let total = handle.stats().frame_bytes_received;
                let size = total.saturating_sub(last_bytes);
                last_bytes = total;
                if !frames.take(1.0) || !bytes.take(size as f64) {
                    let _ = inbox
                        .send(misbehaved("rate_limit", "rate limit exceeded".into()).into())
                        .await;
                    break "rate limit exceeded".into();
                }
                let frame = FromLink::Frame {
                    peer: peer.clone(),
                    link,
                    frame,
                };
                if inbox.send(frame.into()).await.is_err() {
                    return;
                }
            }
            Ok(None) => unreachable!("handled above"),
            Err(MeshError::Oversized { size }) => {
                let _ = inbox
                    .send(misbehaved("oversized", format!("frame of {size} bytes")).into())
                    .await;
                break format!("oversized frame ({size} bytes)");
            }
            Err(MeshError::Decode(e)) => {
                let _ = inbox
                    .send(misbehaved("malformed", e.to_string()).into())
                    .await;
                break format!("undecodable frame: {e}");
            }
            Err(e) => break e.to_string(),
        }
    };
    let _ = inbox
        .send(FromLink::Closed { peer, link, reason }.into())
        .await;
}

/// Writes one link's live stream, opened at the first thing to send:
/// drains what is queued, reads the envelopes to push from the store, and
/// sends announcements first, then the pushes, critical and high severity
/// before the rest.
async fn live_task(
    node: Arc<Node>,
    handle: LinkHandle,
    mut live: mpsc::Receiver<Live>,
    sent: Arc<AtomicU64>,
) {
    let Some(first) = live.recv().await else {
        return;
    };
    let mut sender = match handle.open_live().await {
        Ok(sender) => sender,
        Err(e) => {
            tracing::debug!(error = %e, "opening the live stream");
            return;
        }
    };
    let mut next = Some(first);
    loop {
        let mut frames = Vec::new();
        let mut pushes = Vec::new();
        while let Some(queued) = next.take().or_else(|| live.try_recv().ok()) {
            match queued {
                Live::Frame(frame) => frames.push(frame),
                Live::Push {
                    author,
                    seq,
                    urgent,
                } => pushes.push((author, seq, urgent)),
            }
            if frames.len() + pushes.len() >= MAX_BATCH {
                break;
            }
        }
        for frame in frames {
            if sender.send(&frame).await.is_err() {
                return;
            }
        }
        if !pushes.is_empty() {
            let store = node.store().clone();
            let read = tokio::task::spawn_blocking(move || read_pushes(&store, pushes)).await;
            let items = match read {
                Ok(items) => items,
                Err(e) => {
                    tracing::error!(error = %e, "reading envelopes to push");
                    Vec::new()
                }
            };
            // In that order, each run of flooded items in Envelopes frames
            // and each run of the others in Push frames.
            let mut batch = Batch::default();
            let mut flooding = false;
            for (flood, item) in items {
                if flood != flooding {
                    if batch.flush(&mut sender, &sent, !flooding).await.is_err() {
                        return;
                    }
                    flooding = flood;
                }
                if batch.add(item) && batch.flush(&mut sender, &sent, !flooding).await.is_err() {
                    return;
                }
            }
            if batch.flush(&mut sender, &sent, !flooding).await.is_err() {
                return;
            }
        }
        match live.try_recv() {
            Ok(queued) => next = Some(queued),
            Err(mpsc::error::TryRecvError::Empty) => match live.recv().await {
                Some(queued) => next = Some(queued),
                None => return,
            },
            Err(mpsc::error::TryRecvError::Disconnected) => return,
        }
    }
}

/// The envelopes to push, most urgent first: the authors with an envelope
/// stating a critical severity, then high, then the rest, each author's in
/// seq order (its urgent one cannot be stored before its predecessors).
fn read_pushes(
    store: &crate::store::Store,
    pushes: Vec<(Fingerprint, u64, bool)>,
) -> Vec<(bool, Item)> {
    // Consecutive seqs of one author (a relay passing on a catch-up) are
    // read as one range.
    let mut runs: Vec<(Fingerprint, u64, u64, bool)> = Vec::new();
    for (author, seq, flood) in pushes {
        match runs.last_mut() {
            Some((a, _, to, f))
                if *a == author && *f == flood && to.checked_add(1) == Some(seq) =>
            {
                *to = seq;
            }
            _ => runs.push((author, seq, seq, flood)),
        }
    }
    let mut items: Vec<(Fingerprint, u8, (bool, Item))> = Vec::with_capacity(runs.len());
    for (author, from, to, flood) in runs {
        let stored = match store.chain_range(&author, from, to) {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!(error = %e, "reading an envelope to push");
                continue;
            }
        };
        for (id, envelope) in stored {
            let urgency = match &envelope {
                StoredEnvelope::Live { bytes, .. } => urgency(bytes),
                StoredEnvelope::Tombstone(_) => 0,
            };
            items.push((author.clone(), urgency, (flood, to_item(id, envelope))));
        }
    }
    most_urgent_first(items)
}

/// Orders items by their author's most urgent item in the batch, keeping
/// the queue's order otherwise (so each author's stay in seq order).
fn most_urgent_first<T>(mut items: Vec<(Fingerprint, u8, T)>) -> Vec<T> {
    let mut by_author: std::collections::HashMap<Fingerprint, u8> = Default::default();
    for (author, urgency, _) in &items {
        let most = by_author.entry(author.clone()).or_default();
        *most = (*most).max(*urgency);
    }
    // Stable: the queue's order within each urgency.
    items.sort_by_key(|(author, _, _)| std::cmp::Reverse(by_author[author]));
    items.into_iter().map(|(_, _, item)| item).collect()
}

/// 2 for critical, 1 for high, 0 otherwise (or unreadable).
fn urgency(bytes: &[u8]) -> u8 {
    match Envelope::parse(bytes)
        .ok()
        .and_then(|e| e.stated_severity())
    {
        Some(Severity::Critical) => 2,
        Some(Severity::High) => 1,
        _ => 0,
    }
}

fn to_item(id: EnvelopeId, envelope: StoredEnvelope) -> Item {
    match envelope {
        StoredEnvelope::Live { bytes, sig } => Item::Live { bytes, sig },
        StoredEnvelope::Tombstone(t) => Item::Tombstone(tombstone_to_wire(id, t)),
    }
}

fn tombstone_to_wire(id: EnvelopeId, t: Tombstone) -> WireTombstone {
    WireTombstone {
        author: t.header.author,
        seq: t.header.seq,
        id,
        proof: t.proof,
        proof_sig: t.proof_sig,
    }
}

/// Writes one link's frames; reads envelope ranges from the store and
/// packs consecutive ones into batches.
async fn outbox_task(
    node: Arc<Node>,
    mut sender: FrameSender,
    mut outbox: mpsc::Receiver<Out>,
    sent: Arc<AtomicU64>,
) {
    let mut batch = Batch::default();
    while let Some(first) = outbox.recv().await {
        let mut next = Some(first);
        while let Some(out) = next.take().or_else(|| outbox.try_recv().ok()) {
            let ok = match out {
                Out::Frame(frame) => {
                    batch.flush(&mut sender, &sent, false).await.is_ok()
                        && sender.send(&frame).await.is_ok()
                }
                Out::Range { author, from, to } => {
                    batch
                        .add_range(&node, &author, from, to, &mut sender, &sent)
                        .await
                }
            };
            if !ok {
                return;
            }
        }
        if batch.flush(&mut sender, &sent, false).await.is_err() {
            return;
        }
    }
}

/// Envelopes gathered for the next `Envelopes` frame.
#[derive(Default)]
struct Batch {
    items: Vec<Item>,
    bytes: usize,
}

impl Batch {
    /// Adds `author`'s envelopes `from..=to`, sending full batches as they
    /// fill. False when the link is gone.
    async fn add_range(
        &mut self,
        node: &Node,
        author: &Fingerprint,
        from: u64,
        to: u64,
        sender: &mut FrameSender,
        sent: &AtomicU64,
    ) -> bool {
        let mut seq = from;
        while seq <= to {
            let chunk_end = to.min(seq.saturating_add(MAX_BATCH as u64 - 1));
            let store = node.store().clone();
            let who = author.clone();
            let read =
                tokio::task::spawn_blocking(move || store.chain_range(&who, seq, chunk_end)).await;
            let stored = match read {
                Ok(Ok(stored)) => stored,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reading envelopes to send");
                    return true;
                }
                Err(e) => {
                    tracing::error!(error = %e, "reading envelopes to send");
                    return true;
                }
            };
            if stored.is_empty() {
                return true;
            }
            for (id, envelope) in stored {
                if self.add(to_item(id, envelope)) && self.flush(sender, sent, false).await.is_err()
                {
                    return false;
                }
            }
            seq = chunk_end + 1;
        }
        true
    }

    /// Adds one item; true when the batch is full and must be flushed.
    fn add(&mut self, item: Item) -> bool {
        self.bytes += item.encoded_len();
        self.items.push(item);
        self.items.len() >= MAX_BATCH || self.bytes >= BATCH_BYTES
    }

    /// Sends what is gathered, as a Push frame (`push`) or an Envelopes
    /// frame (the answer to Wants).
    async fn flush(
        &mut self,
        sender: &mut FrameSender,
        sent: &AtomicU64,
        push: bool,
    ) -> Result<(), MeshError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let n = self.items.len() as u64;
        let items = std::mem::take(&mut self.items);
        let frame = if push {
            Frame::Push { items }
        } else {
            Frame::Envelopes { items }
        };
        self.bytes = 0;
        sender.send(&frame).await?;
        sent.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    fn new(rate: f64, burst: f64) -> Self {
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    fn take(&mut self, n: f64) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::envelope::{Body, Draft, DraftBody, IncidentBody};
    use cer_proto::model::{Affected, Classification, Status, Timestamp, Tlp};

    fn incident(severity: Severity, tlp: Tlp) -> Vec<u8> {
        let author = Fingerprint::from_raw(&[7; 20]);
        let body = Body::Incident(IncidentBody {
            title: "t".into(),
            description: String::new(),
            severity,
            classification: Classification::parse("test/test").unwrap(),
            status: Status::New,
            indicators: vec![],
            affected: Affected::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            source: None,
        });
        let draft = Draft {
            author,
            seq: 1,
            prev: None,
            created: Timestamp::from_unix_nanos(0),
            subject: uuid::Uuid::nil(),
            tlp,
            recipients: vec![],
            body: DraftBody::Plain(body),
            withdraws: vec![],
        };
        draft.to_bytes().unwrap()
    }

    #[test]
    fn urgency_reads_the_severity_stated_in_the_clear() {
        assert_eq!(urgency(&incident(Severity::Critical, Tlp::Clear)), 2);
        assert_eq!(urgency(&incident(Severity::High, Tlp::Green)), 1);
        assert_eq!(urgency(&incident(Severity::Low, Tlp::Green)), 0);
        assert_eq!(urgency(b"not an envelope"), 0);
    }

    #[test]
    fn urgent_authors_go_first_and_each_author_stays_in_order() {
        let (a, b, c) = (
            Fingerprint::from_raw(&[1; 20]),
            Fingerprint::from_raw(&[2; 20]),
            Fingerprint::from_raw(&[3; 20]),
        );
        let queued = vec![
            (a.clone(), 0, "a1"),
            (b.clone(), 0, "b1"),
            (a.clone(), 0, "a2"),
            (b.clone(), 2, "b2"),
            (c.clone(), 1, "c1"),
        ];
        assert_eq!(
            most_urgent_first(queued),
            vec!["b1", "b2", "c1", "a1", "a2"]
        );
    }
}
