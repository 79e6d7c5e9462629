//! The node's durable store: envelopes, per-author chains, incident state
//! and indexes, kept in sled.
//!
//! Architecture invariant: this is the only module that imports sled, so
//! the engine can be replaced (an fsync'd log, another embedded database)
//! without touching the rest of the daemon.
//!
//! What is stored, by tree:
//!
//! | tree         | key                          | value                                  |
//! |--------------|------------------------------|----------------------------------------|
//! | `envelopes`  | envelope id (32)             | live record (bytes + sig) or tombstone |
//! | `authors`    | author fingerprint           | chain tip: highest contiguous seq + id |
//! | `by_author`  | author ‖ seq (be u64)        | envelope id                            |
//! | `by_subject` | incident uuid ‖ envelope id  | (empty)                                |
//! | `decrypted`  | envelope id                  | body JSON this node decrypted          |
//! | `incidents`  | incident uuid                | folded [`IncidentState`] without its indicators (JSON) |
//! | `incident_indicators` | uuid ‖ type ‖ value     | the incident's indicator (binary)      |
//! | `summaries`  | incident uuid                | [`IncidentSummary`] (JSON)             |
//! | `by_time`    | updated (be i128 nanos) ‖ uuid | (empty)                              |
//! | `indicators` | type ‖ value ‖ 0 ‖ uuid      | (empty): exact-match index             |
//! | `equivocations` | author ‖ seq ‖ id         | second envelope's record (evidence)    |
//! | `playbook_runs` | run key                   | [`RunRecord`] (JSON)                   |
//! | `playbook_runs_by_time` | started ‖ run key  | (empty)                                |
//! | `annotations` | incident uuid ‖ time ‖ n    | local tag or note (JSON)               |
//! | `meta`       | name                         | schema version, counters, clean flag, pending set |
//!
//! Only `envelopes`, `authors`, `by_author`, `by_subject` and `decrypted`
//! are primary; everything else is derived from them by folding, so a
//! write interrupted by a crash is repaired at open by refolding the
//! subjects recorded as pending before the write began.
//!
//! Durability: writes become durable at the next flush. Callers
//! acknowledge only after [`Store::durable`] returns; concurrent writers
//! share one flush (group commit).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use cer_proto::api::{Annotation, IncidentSummary, RunRecord};
use cer_proto::envelope::{Body, ChainError, ChainTip, Envelope, Kind};
use cer_proto::incident::{Event, FoldInput, IncidentState, IndicatorEntry};
use cer_proto::model::{IndicatorType, Timestamp, Tlp};
use cer_proto::{EnvelopeId, Fingerprint};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The on-disk layout version this code reads and writes.
pub const SCHEMA_VERSION: u64 = 2;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store engine: {0}")]
    Engine(#[from] sled::Error),
    #[error(
        "store at {path} has schema version {found}, this cerd reads version {SCHEMA_VERSION}"
    )]
    Schema { path: PathBuf, found: u64 },
    #[error("store record {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("the store's flusher has stopped")]
    FlusherGone,
}

/// A verified envelope ready to be stored.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    pub id: EnvelopeId,
    pub bytes: Vec<u8>,
    pub sig: Vec<u8>,
    pub envelope: Envelope,
    /// The body as this node can read it: the parsed plaintext body, or
    /// the decrypted one (kept in the `decrypted` tree). None when the
    /// envelope is encrypted for others.
    pub body: Option<Body>,
}

/// What [`Store::insert`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// Stored; the incident's state after folding it in.
    Stored(Box<IncidentState>),
    /// This exact envelope was already held.
    Duplicate,
    /// Another envelope with the same author and seq is held: the new one
    /// is kept as evidence only.
    Equivocation { held: EnvelopeId },
}

/// One stored envelope, as read back.
#[derive(Debug, Clone)]
pub enum StoredEnvelope {
    Live { bytes: Vec<u8>, sig: Vec<u8> },
    Tombstone(Tombstone),
}

/// What remains of a withdrawn envelope: enough to keep the author's chain
/// and the incident's timeline, nothing of the body, and the proof that its
/// author withdrew it: the author's signed retraction (exact bytes and
/// signature) whose `withdraws` list names this seq and id. The proof is
/// what lets peers check the tombstone, so it travels with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tombstone {
    pub author: Fingerprint,
    pub seq: u64,
    pub subject: Uuid,
    pub kind: Kind,
    pub created: Timestamp,
    pub tlp: Tlp,
    #[serde(default)]
    pub recipients: Vec<Fingerprint>,
    pub withdrawn_by: EnvelopeId,
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub proof_sig: Vec<u8>,
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(serde::de::Error::custom)
    }
}

/// One incident naming an indicator, as the indicator index keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorHit {
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub sightings: u32,
    pub reported_by: Vec<Fingerprint>,
}

/// Counts for `cerctl status` and metrics, kept up to date on write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub envelopes: u64,
    pub tombstones: u64,
    pub incidents: u64,
    pub indicators: u64,
    pub authors: u64,
    pub equivocations: u64,
}

/// Filters applied while scanning incidents newest first.
pub trait SummaryFilter {
    /// Summaries updated before this are never wanted: stop scanning.
    fn since(&self) -> Option<Timestamp>;
    fn accept(&self, summary: &IncidentSummary) -> bool;
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    db: sled::Db,
    envelopes: sled::Tree,
    authors: sled::Tree,
    by_author: sled::Tree,
    by_subject: sled::Tree,
    decrypted: sled::Tree,
    incidents: sled::Tree,
    summaries: sled::Tree,
    by_time: sled::Tree,
    indicators: sled::Tree,
    incident_indicators: sled::Tree,
    equivocations: sled::Tree,
    runs: sled::Tree,
    runs_by_time: sled::Tree,
    annotations: sled::Tree,
    meta: sled::Tree,
    /// Serializes read-fold-write cycles so two writers never fold the
    /// same incident from stale state.
    write: Mutex<()>,
    counts: CountCells,
    flush_requests: Mutex<Option<mpsc::Sender<FlushWaiter>>>,
    flusher: Option<std::thread::JoinHandle<()>>,
}

type FlushWaiter = oneshot::Sender<Result<(), String>>;

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the flusher, which holds a handle on the
        // database; join it so the files are released when the store is.
        self.flush_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
    }
}

#[derive(Default)]
struct CountCells {
    envelopes: AtomicU64,
    tombstones: AtomicU64,
    incidents: AtomicU64,
    indicators: AtomicU64,
    authors: AtomicU64,
    equivocations: AtomicU64,
}

const LIVE: u8 = 1;
const TOMB: u8 = 0;
const META_SCHEMA: &[u8] = b"schema";
const META_COUNTS: &[u8] = b"counts";
const META_PENDING: &[u8] = b"pending";
const META_CLEAN: &[u8] = b"clean";

impl Store {
    /// Opens (or creates) the store in `path`, repairing derived state left
    /// incomplete by a crash.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let meta = tree("meta")?;
        match meta.get(META_SCHEMA)? {
            None => {
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| corrupt("meta/schema", "not 8 bytes"))?,
                );
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
        }
        let (flush_tx, flush_rx) = mpsc::channel::<FlushWaiter>();
        let flush_db = db.clone();
        let flusher = std::thread::Builder::new()
            .name("store-flush".into())
            .spawn(move || group_commit(flush_db, flush_rx))
            .map_err(|e| corrupt("flusher", &e.to_string()))?;
        let inner = Inner {
            path: path.to_owned(),
            envelopes: tree("envelopes")?,
            authors: tree("authors")?,
            by_author: tree("by_author")?,
            by_subject: tree("by_subject")?,
            decrypted: tree("decrypted")?,
            incidents: tree("incidents")?,
            summaries: tree("summaries")?,
            by_time: tree("by_time")?,
            indicators: tree("indicators")?,
            incident_indicators: tree("incident_indicators")?,
            equivocations: tree("equivocations")?,
            runs: tree("playbook_runs")?,
            runs_by_time: tree("playbook_runs_by_time")?,
            annotations: tree("annotations")?,
            meta,
            db,
            write: Mutex::new(()),
            counts: CountCells::default(),
            flush_requests: Mutex::new(Some(flush_tx)),
            flusher: Some(flusher),
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.recover()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The highest contiguous envelope held of `author`.
    pub fn chain_tip(&self, author: &Fingerprint) -> Result<Option<ChainTip>, StoreError> {
        match self.inner.authors.get(author.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(decode_json(&v, "authors")?)),
        }
    }

    /// Every author's chain tip, for summaries.
    pub fn chain_tips(&self) -> Result<Vec<(Fingerprint, ChainTip)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.authors.iter() {
            let (k, v) = item?;
            let author = Fingerprint::parse(&String::from_utf8_lossy(&k))
                .map_err(|e| corrupt("authors key", &e.to_string()))?;
            out.push((author, decode_json(&v, "authors")?));
        }
        Ok(out)
    }

    /// Stores a verified envelope that extends its author's chain, folds it
    /// into its incident and updates the indexes. The write is not durable
    /// until [`Store::durable`] returns.
    pub fn insert(&self, new: NewEnvelope) -> Result<Inserted, StoreError> {
        let inner = &*self.inner;
        let _guard = inner.write.lock().unwrap_or_else(|e| e.into_inner());
        let envelope = &new.envelope;
        let slot_key = author_seq_key(&envelope.author, envelope.seq);
        if let Some(held) = inner.by_author.get(&slot_key)? {
            let held = EnvelopeId::from_bytes(id_bytes(&held)?);
            if held == new.id {
                return Ok(Inserted::Duplicate);
            }
            let mut key = slot_key.clone();
            key.extend_from_slice(new.id.as_bytes());
            if inner
                .equivocations
                .insert(key, live_record(&new.bytes, &new.sig))?
                .is_none()
            {
                self.bump(&inner.counts.equivocations, 1);
            }
            return Ok(Inserted::Equivocation { held });
        }
        let tip = self.chain_tip(&envelope.author)?;
        envelope.check_follows(tip.as_ref())?;

        let subject = envelope.subject;
        self.mark_pending(subject, true)?;
        inner
            .envelopes
            .insert(new.id.as_bytes(), live_record(&new.bytes, &new.sig))?;
        inner.by_author.insert(slot_key, new.id.as_bytes())?;
        let mut sk = subject.as_bytes().to_vec();
        sk.extend_from_slice(new.id.as_bytes());
        inner.by_subject.insert(sk, &[])?;
        if let (Some(body), Some(_)) = (&new.body, &envelope.body_enc) {
            inner.decrypted.insert(
                new.id.as_bytes(),
                serde_json::to_vec(&body.to_value()).map_err(json_err)?,
            )?;
        }
        let tip = ChainTip {
            seq: envelope.seq,
            id: new.id,
        };
        if inner
            .authors
            .insert(
                envelope.author.as_bytes(),
                serde_json::to_vec(&tip).map_err(json_err)?,
            )?
            .is_none()
        {
            self.bump(&inner.counts.authors, 1);
        }
        self.bump(&inner.counts.envelopes, 1);
        let input = FoldInput::new(new.id, envelope, new.body.clone());
        let state = self.refold(subject, Some(input))?;
        self.mark_pending(subject, false)?;
        Ok(Inserted::Stored(Box::new(
            state.expect("a subject with a new envelope folds to a state"),
        )))
    }

    /// `author`'s envelopes `from..=to` held in its chain, in seq order.
    pub fn chain_range(
        &self,
        author: &Fingerprint,
        from: u64,
        to: u64,
    ) -> Result<Vec<(EnvelopeId, StoredEnvelope)>, StoreError> {
        let mut out = Vec::new();
        let start = author_seq_key(author, from);
        let end = author_seq_key(author, to);
        for item in self.inner.by_author.range(start..=end) {
            let (_, v) = item?;
            let id = EnvelopeId::from_bytes(id_bytes(&v)?);
            if let Some(stored) = self.envelope(&id)? {
                out.push((id, stored));
            }
        }
        Ok(out)
    }

    /// Stores what remains of an envelope its author withdrew, received
    /// from a peer in its place in the chain. The caller has verified the
    /// tombstone's proof (see [`Tombstone`]).
    pub fn insert_tombstone(
        &self,
        id: EnvelopeId,
        tomb: Tombstone,
    ) -> Result<Inserted, StoreError> {
        let inner = &*self.inner;
        let _guard = inner.write.lock().unwrap_or_else(|e| e.into_inner());
        let slot_key = author_seq_key(&tomb.author, tomb.seq);
        if let Some(held) = inner.by_author.get(&slot_key)? {
            let held = EnvelopeId::from_bytes(id_bytes(&held)?);
            return Ok(if held == id {
                Inserted::Duplicate
            } else {
                Inserted::Equivocation { held }
            });
        }
        // The tombstone's id is proven by its author's retraction; the
        // author's next envelope proves the link to it through its `prev`.
        let tip = self.chain_tip(&tomb.author)?;
        let held = tip.map_or(0, |t| t.seq);
        if tomb.seq != held + 1 {
            return Err(ChainError::SeqMismatch {
                expected_prev_seq: held,
                got: tomb.seq,
            }
            .into());
        }
        let subject = tomb.subject;
        self.mark_pending(subject, true)?;
        let mut record = vec![TOMB];
        record.extend(serde_json::to_vec(&tomb).map_err(json_err)?);
        inner.envelopes.insert(id.as_bytes(), record)?;
        inner.by_author.insert(slot_key, id.as_bytes())?;
        let mut sk = subject.as_bytes().to_vec();
        sk.extend_from_slice(id.as_bytes());
        inner.by_subject.insert(sk, &[])?;
        let new_tip = ChainTip { seq: tomb.seq, id };
        if inner
            .authors
            .insert(
                tomb.author.as_bytes(),
                serde_json::to_vec(&new_tip).map_err(json_err)?,
            )?
            .is_none()
        {
            self.bump(&inner.counts.authors, 1);
        }
        self.bump(&inner.counts.envelopes, 1);
        self.bump(&inner.counts.tombstones, 1);
        let state = self.refold(subject, None)?;
        self.mark_pending(subject, false)?;
        Ok(Inserted::Stored(Box::new(
            state.expect("a subject with a new envelope folds to a state"),
        )))
    }

    /// Whether a playbook run with this key was recorded.
    pub fn run_recorded(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.inner.runs.contains_key(key.as_bytes())?)
    }

    /// Records a playbook run (history for `cerctl playbook runs`).
    pub fn record_run(&self, run: &RunRecord) -> Result<(), StoreError> {
        let json = serde_json::to_vec(run).map_err(json_err)?;
        self.inner.runs.insert(run.key.as_bytes(), json)?;
        let mut key = time_key(run.started, Uuid::nil());
        key.truncate(16);
        key.extend_from_slice(run.key.as_bytes());
        self.inner.runs_by_time.insert(key, &[])?;
        Ok(())
    }

    /// Recorded runs, newest first, that pass `keep`; at most `limit`.
    pub fn runs(
        &self,
        keep: &dyn Fn(&RunRecord) -> bool,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.runs_by_time.iter().rev() {
            let (key, _) = item?;
            let Some(json) = self.inner.runs.get(&key[16..])? else {
                continue;
            };
            let run: RunRecord = decode_json(&json, "playbook_runs")?;
            if keep(&run) {
                out.push(run);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Adds a local annotation (a playbook's tag or note) to an incident.
    /// Local: it is never published to peers.
    pub fn annotate(&self, incident: Uuid, annotation: &Annotation) -> Result<(), StoreError> {
        let mut key = incident.as_bytes().to_vec();
        key.extend_from_slice(&time_key(annotation.at, Uuid::nil())[..16]);
        key.extend_from_slice(&self.inner.db.generate_id()?.to_be_bytes());
        self.inner
            .annotations
            .insert(key, serde_json::to_vec(annotation).map_err(json_err)?)?;
        Ok(())
    }

    pub fn annotations(&self, incident: Uuid) -> Result<Vec<Annotation>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.annotations.scan_prefix(incident.as_bytes()) {
            let (_, v) = item?;
            out.push(decode_json(&v, "annotations")?);
        }
        Ok(out)
    }

    /// Waits until every write made before the call is on disk. Concurrent
    /// callers share one flush.
    pub async fn durable(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .flush_requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .ok_or(StoreError::FlusherGone)?
            .send(tx)
            .map_err(|_| StoreError::FlusherGone)?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(corrupt("flush", &reason)),
            Err(_) => Err(StoreError::FlusherGone),
        }
    }

    /// Flushes synchronously (benchmarks, tests).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        Ok(())
    }

    /// Saves the counters, marks the store cleanly closed and flushes. The
    /// next open trusts the saved counters instead of recounting.
    pub fn close(&self) -> Result<(), StoreError> {
        let _guard = self.inner.write.lock().unwrap_or_else(|e| e.into_inner());
        self.save_counts()?;
        self.inner.meta.insert(META_CLEAN, &[])?;
        self.inner.db.flush()?;
        Ok(())
    }

    pub fn incident(&self, id: Uuid) -> Result<Option<IncidentState>, StoreError> {
        let Some(v) = self.inner.incidents.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut state: IncidentState = decode_json(&v, "incidents")?;
        let mut indicators = Vec::new();
        for item in self.inner.incident_indicators.scan_prefix(id.as_bytes()) {
            let (k, v) = item?;
            let (kind, value) = split_indicator_key(&k[16..])?;
            let (pos, entry) = decode_indicator(kind, value, &v)?;
            indicators.push((pos, entry));
        }
        indicators.sort_by_key(|(pos, _)| *pos);
        state.indicators = indicators.into_iter().map(|(_, e)| e).collect();
        Ok(Some(state))
    }

    pub fn summary(&self, id: Uuid) -> Result<Option<IncidentSummary>, StoreError> {
        match self.inner.summaries.get(id.as_bytes())? {
            None => Ok(None),
            Some(v) => Ok(Some(decode_json(&v, "summaries")?)),
        }
    }

    /// Incident summaries, most recently updated first, that pass `filter`;
    /// at most `limit`. Returns whether more matched.
    pub fn list(
        &self,
        filter: &dyn SummaryFilter,
        limit: usize,
    ) -> Result<(Vec<IncidentSummary>, bool), StoreError> {
        let mut out = Vec::new();
        let since = filter.since().map(|t| t.unix_nanos());
        for item in self.inner.by_time.iter().rev() {
            let (k, _) = item?;
            if let Some(since) = since {
                if time_key_nanos(&k)? < since {
                    break;
                }
            }
            let id =
                Uuid::from_slice(&k[16..]).map_err(|e| corrupt("by_time key", &e.to_string()))?;
            let Some(summary) = self.summary(id)? else {
                continue;
            };
            if filter.accept(&summary) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(summary);
            }
        }
        Ok((out, false))
    }

    /// Incidents naming exactly this (normalized) indicator.
    pub fn indicator_hits(
        &self,
        kind: IndicatorType,
        value: &str,
    ) -> Result<Vec<(Uuid, IndicatorHit)>, StoreError> {
        // Keys hold the exact value; the record holds the rest.
        let prefix = indicator_prefix(kind, value);
        let mut out = Vec::new();
        for key in self.inner.indicators.scan_prefix(&prefix).keys() {
            let key = key?;
            let id = Uuid::from_slice(&key[prefix.len()..])
                .map_err(|e| corrupt("indicators key", &e.to_string()))?;
            let mut own_key = id.as_bytes().to_vec();
            own_key.extend_from_slice(&prefix);
            let Some(record) = self.inner.incident_indicators.get(own_key)? else {
                continue;
            };
            let (_, entry) = decode_indicator(kind, value, &record)?;
            out.push((
                id,
                IndicatorHit {
                    first_seen: entry.first_seen,
                    last_seen: entry.last_seen,
                    sightings: entry.sightings,
                    reported_by: entry.reported_by,
                },
            ));
        }
        Ok(out)
    }

    /// Every envelope held about an incident, with its id.
    pub fn envelopes_of(
        &self,
        subject: Uuid,
    ) -> Result<Vec<(EnvelopeId, StoredEnvelope)>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.by_subject.scan_prefix(subject.as_bytes()) {
            let (k, _) = item?;
            let id = EnvelopeId::from_bytes(id_bytes(&k[16..])?);
            if let Some(stored) = self.envelope(&id)? {
                out.push((id, stored));
            }
        }
        Ok(out)
    }

    pub fn envelope(&self, id: &EnvelopeId) -> Result<Option<StoredEnvelope>, StoreError> {
        match self.inner.envelopes.get(id.as_bytes())? {
            None => Ok(None),
            Some(v) => decode_record(&v).map(Some),
        }
    }

    /// Every envelope id held, in no particular order.
    pub fn envelope_ids(&self) -> impl Iterator<Item = Result<EnvelopeId, StoreError>> + '_ {
        self.inner
            .envelopes
            .iter()
            .keys()
            .map(|k| Ok(EnvelopeId::from_bytes(id_bytes(&k?)?)))
    }

    pub fn counts(&self) -> Counts {
        let c = &self.inner.counts;
        Counts {
            envelopes: c.envelopes.load(Ordering::Relaxed),
            tombstones: c.tombstones.load(Ordering::Relaxed),
            incidents: c.incidents.load(Ordering::Relaxed),
            indicators: c.indicators.load(Ordering::Relaxed),
            authors: c.authors.load(Ordering::Relaxed),
            equivocations: c.equivocations.load(Ordering::Relaxed),
        }
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.inner.db.size_on_disk().unwrap_or(0)
    }

    fn bump(&self, cell: &AtomicU64, delta: i64) {
        if delta >= 0 {
            cell.fetch_add(delta as u64, Ordering::Relaxed);
        } else {
            cell.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
        }
    }

    fn save_counts(&self) -> Result<(), StoreError> {
        let counts = serde_json::to_vec(&self.counts()).map_err(json_err)?;
        self.inner.meta.insert(META_COUNTS, counts)?;
        Ok(())
    }

    /// Records (or clears) that `subject`'s derived state is being rewritten.
    fn mark_pending(&self, subject: Uuid, pending: bool) -> Result<(), StoreError> {
        let mut key = META_PENDING.to_vec();
        key.extend_from_slice(subject.as_bytes());
        if pending {
            self.inner.meta.insert(key, &[])?;
        } else {
            self.inner.meta.remove(key)?;
        }
        Ok(())
    }

    /// Refolds subjects a crash left half-written, then loads counters.
    fn recover(&self) -> Result<(), StoreError> {
        let inner = &*self.inner;
        let pending: Vec<Uuid> = inner
            .meta
            .scan_prefix(META_PENDING)
            .keys()
            .map(|k| {
                let k = k?;
                Uuid::from_slice(&k[META_PENDING.len()..])
                    .map_err(|e| corrupt("meta/pending", &e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let saved: Option<Counts> = match inner.meta.get(META_COUNTS)? {
            Some(v) => Some(decode_json(&v, "meta/counts")?),
            None => None,
        };
        // Counters are saved only at a clean close; after anything else
        // they may lag, so recount. The flag is cleared (durably) before
        // any write, so a later crash is never mistaken for a clean close.
        let clean = inner.meta.remove(META_CLEAN)?.is_some();
        inner.db.flush()?;
        if !pending.is_empty() {
            tracing::warn!(
                subjects = pending.len(),
                "repairing incident state left incomplete by an unclean stop"
            );
            let _guard = inner.write.lock().unwrap_or_else(|e| e.into_inner());
            for subject in &pending {
                self.refold(*subject, None)?;
                self.mark_pending(*subject, false)?;
            }
            inner.db.flush()?;
        }
        let counts = match saved {
            Some(counts) if clean && pending.is_empty() => counts,
            _ => self.recount()?,
        };
        let c = &inner.counts;
        c.envelopes.store(counts.envelopes, Ordering::Relaxed);
        c.tombstones.store(counts.tombstones, Ordering::Relaxed);
        c.incidents.store(counts.incidents, Ordering::Relaxed);
        c.indicators.store(counts.indicators, Ordering::Relaxed);
        c.authors.store(counts.authors, Ordering::Relaxed);
        c.equivocations
            .store(counts.equivocations, Ordering::Relaxed);
        Ok(())
    }

    fn recount(&self) -> Result<Counts, StoreError> {
        let inner = &*self.inner;
        let mut counts = Counts::default();
        for item in inner.envelopes.iter() {
            let (_, v) = item?;
            if v.first() == Some(&TOMB) {
                counts.tombstones += 1;
            }
            counts.envelopes += 1;
        }
        counts.incidents = inner.incidents.len() as u64;
        counts.indicators = inner.indicators.len() as u64;
        counts.authors = inner.authors.len() as u64;
        counts.equivocations = inner.equivocations.len() as u64;
        Ok(counts)
    }

    /// Recomputes an incident's state from its envelopes and brings the
    /// derived trees in line. `new` is an envelope just written whose
    /// parsed form the caller already has (saves parsing it again).
    /// Caller holds the write lock.
    fn refold(
        &self,
        subject: Uuid,
        new: Option<FoldInput>,
    ) -> Result<Option<IncidentState>, StoreError> {
        let inner = &*self.inner;
        let mut inputs = Vec::new();
        for (id, stored) in self.envelopes_of(subject)? {
            if new.as_ref().is_some_and(|n| n.id == id) {
                continue;
            }
            inputs.push(self.fold_input(id, stored)?);
        }
        inputs.extend(new);
        let old_summary = self.summary(subject)?;
        let Some(mut state) = IncidentState::fold(subject, &inputs) else {
            return Ok(None);
        };

        // Drop the bodies the fold says are withdrawn, where the author's
        // own signed retraction names them: only such a tombstone can be
        // proven to peers. Other authors' envelopes about a retracted
        // incident stay whole (the fold hides them), since nobody but their
        // author can withdraw them.
        let withdrawn: HashSet<EnvelopeId> = state
            .timeline
            .iter()
            .filter(|e| e.event == Event::Withdrawn)
            .map(|e| e.envelope)
            .collect();
        if !withdrawn.is_empty() {
            let held = self.envelopes_of(subject)?;
            let mut retractions = Vec::new();
            for (id, stored) in &held {
                if let StoredEnvelope::Live { bytes, sig } = stored {
                    let envelope =
                        Envelope::parse(bytes).map_err(|e| corrupt("envelope", &e.to_string()))?;
                    if envelope.kind == Kind::Retraction && !envelope.withdraws.is_empty() {
                        retractions.push((*id, envelope, bytes.clone(), sig.clone()));
                    }
                }
            }
            for (id, stored) in &held {
                let StoredEnvelope::Live { bytes, .. } = stored else {
                    continue;
                };
                if !withdrawn.contains(id) {
                    continue;
                }
                let envelope =
                    Envelope::parse(bytes).map_err(|e| corrupt("envelope", &e.to_string()))?;
                let proof = retractions.iter().find(|(_, r, _, _)| {
                    r.author == envelope.author
                        && r.withdrawal(envelope.seq).is_some_and(|w| w.id == *id)
                });
                let Some((by, retraction, proof, proof_sig)) = proof else {
                    continue;
                };
                let tomb = Tombstone {
                    author: envelope.author,
                    seq: envelope.seq,
                    subject: envelope.subject,
                    kind: envelope.kind,
                    created: envelope.created,
                    tlp: retraction.tlp,
                    recipients: retraction.recipients.clone(),
                    withdrawn_by: *by,
                    proof: proof.clone(),
                    proof_sig: proof_sig.clone(),
                };
                let mut record = vec![TOMB];
                record.extend(serde_json::to_vec(&tomb).map_err(json_err)?);
                inner.envelopes.insert(id.as_bytes(), record)?;
                inner.decrypted.remove(id.as_bytes())?;
                self.bump(&inner.counts.tombstones, 1);
            }
        }
        if state.retracted.is_some() {
            // Nothing of a retracted incident's content stays readable.
            state.content = None;
            state.indicators.clear();
        }

        // Indicator indexes: the incident's own list and the global one.
        let mut old_keys = Vec::new();
        for key in inner
            .incident_indicators
            .scan_prefix(subject.as_bytes())
            .keys()
        {
            old_keys.push(key?);
        }
        let mut global = sled::Batch::default();
        let mut own = sled::Batch::default();
        let mut kept = std::collections::HashSet::new();
        for (pos, entry) in state.indicators.iter().enumerate() {
            let record = encode_indicator(pos as u32, entry);
            let key = indicator_key(entry.kind, &entry.value, subject);
            let mut own_key = subject.as_bytes().to_vec();
            own_key.extend_from_slice(&key[..key.len() - 16]);
            kept.insert(own_key.clone());
            // The global index only names the incident; the record lives
            // once, in the incident's own list.
            global.insert(key, &[]);
            own.insert(own_key, record);
        }
        let delta = state.indicators.len() as i64 - old_keys.len() as i64;
        for old in old_keys {
            if !kept.contains(old.as_ref()) {
                let mut key = old[16..].to_vec();
                key.extend_from_slice(subject.as_bytes());
                global.remove(key);
                own.remove(old);
            }
        }
        inner.indicators.apply_batch(global)?;
        inner.incident_indicators.apply_batch(own)?;
        self.bump(&inner.counts.indicators, delta);

        // Summary and time index.
        match &old_summary {
            Some(old) => {
                inner.by_time.remove(time_key(old.updated, subject))?;
            }
            None => self.bump(&inner.counts.incidents, 1),
        }
        inner
            .by_time
            .insert(time_key(state.updated, subject), &[])?;
        let summary = IncidentSummary::of(&state, None);
        inner.summaries.insert(
            subject.as_bytes(),
            serde_json::to_vec(&summary).map_err(json_err)?,
        )?;
        let indicators = std::mem::take(&mut state.indicators);
        inner.incidents.insert(
            subject.as_bytes(),
            serde_json::to_vec(&state).map_err(json_err)?,
        )?;
        state.indicators = indicators;
        Ok(Some(state))
    }

    fn fold_input(&self, id: EnvelopeId, stored: StoredEnvelope) -> Result<FoldInput, StoreError> {
        match stored {
            StoredEnvelope::Live { bytes, .. } => {
                let envelope =
                    Envelope::parse(&bytes).map_err(|e| corrupt("envelope", &e.to_string()))?;
                let body = match envelope.plain_body() {
                    Some(body) => Some(body.map_err(|e| corrupt("envelope body", &e.to_string()))?),
                    None => match self.inner.decrypted.get(id.as_bytes())? {
                        Some(plain) => Some(
                            Body::from_slice(envelope.kind, &plain)
                                .map_err(|e| corrupt("decrypted body", &e.to_string()))?,
                        ),
                        None => None,
                    },
                };
                Ok(FoldInput::new(id, &envelope, body))
            }
            StoredEnvelope::Tombstone(t) => Ok(FoldInput {
                id,
                author: t.author,
                seq: t.seq,
                kind: t.kind,
                created: t.created,
                tlp: t.tlp,
                recipients: t.recipients,
                body: None,
            }),
        }
    }
}

fn group_commit(db: sled::Db, requests: mpsc::Receiver<FlushWaiter>) {
    while let Ok(first) = requests.recv() {
        // Everyone queued by now wrote before this flush starts, so one
        // flush makes all of them durable.
        let mut waiters = vec![first];
        waiters.extend(requests.try_iter());
        let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
        if let Err(e) = &result {
            tracing::error!(error = %e, "store flush failed");
        }
        for waiter in waiters {
            let _ = waiter.send(result.clone());
        }
    }
}

fn live_record(bytes: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(5 + bytes.len() + sig.len());
    record.push(LIVE);
    record.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    record.extend_from_slice(bytes);
    record.extend_from_slice(sig);
    record
}

fn decode_record(v: &[u8]) -> Result<StoredEnvelope, StoreError> {
    match v.split_first() {
        Some((&LIVE, rest)) if rest.len() >= 4 => {
            let len = u32::from_be_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let rest = &rest[4..];
            if rest.len() < len {
                return Err(corrupt("envelope record", "shorter than its length prefix"));
            }
            Ok(StoredEnvelope::Live {
                bytes: rest[..len].to_vec(),
                sig: rest[len..].to_vec(),
            })
        }
        Some((&TOMB, rest)) => Ok(StoredEnvelope::Tombstone(decode_json(rest, "tombstone")?)),
        _ => Err(corrupt("envelope record", "unknown tag")),
    }
}

fn author_seq_key(author: &Fingerprint, seq: u64) -> Vec<u8> {
    let mut key = author.as_bytes().to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn time_key(t: Timestamp, id: Uuid) -> Vec<u8> {
    let mut key = t.unix_nanos().to_be_bytes().to_vec();
    // Flip the sign bit so big-endian bytes sort like the signed value.
    key[0] ^= 0x80;
    key.extend_from_slice(id.as_bytes());
    key
}

fn time_key_nanos(key: &[u8]) -> Result<i128, StoreError> {
    let mut bytes: [u8; 16] = key
        .get(..16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("by_time key", "shorter than 16 bytes"))?;
    bytes[0] ^= 0x80;
    Ok(i128::from_be_bytes(bytes))
}

fn indicator_prefix(kind: IndicatorType, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 18);
    key.extend_from_slice(kind.as_str().as_bytes());
    key.push(b':');
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

fn indicator_key(kind: IndicatorType, value: &str, id: Uuid) -> Vec<u8> {
    let mut key = indicator_prefix(kind, value);
    key.extend_from_slice(id.as_bytes());
    key
}

fn id_bytes(v: &[u8]) -> Result<[u8; 32], StoreError> {
    v.try_into()
        .map_err(|_| corrupt("envelope id", "not 32 bytes"))
}

fn decode_json<T: serde::de::DeserializeOwned>(v: &[u8], what: &str) -> Result<T, StoreError> {
    serde_json::from_slice(v).map_err(|e| corrupt(what, &e.to_string()))
}

fn json_err(e: serde_json::Error) -> StoreError {
    corrupt("json", &e.to_string())
}

fn corrupt(what: &str, reason: &str) -> StoreError {
    StoreError::Corrupt {
        what: what.to_owned(),
        reason: reason.to_owned(),
    }
}

/// An indicator record, as both indicator trees keep it: its position in
/// the incident, first/last seen, sightings, confidence, comment and
/// reporters. Binary, because there are millions and JSON with formatted
/// timestamps made bulk inserts several times slower.
fn encode_indicator(pos: u32, entry: &IndicatorEntry) -> Vec<u8> {
    let comment = entry.comment.as_deref().unwrap_or("").as_bytes();
    let comment = &comment[..comment.len().min(u16::MAX as usize)];
    let mut out = Vec::with_capacity(48 + comment.len() + 20 * entry.reported_by.len());
    out.extend_from_slice(&pos.to_be_bytes());
    out.extend_from_slice(&entry.first_seen.unix_nanos().to_be_bytes());
    out.extend_from_slice(&entry.last_seen.unix_nanos().to_be_bytes());
    out.extend_from_slice(&entry.sightings.to_be_bytes());
    out.push(entry.confidence.unwrap_or(u8::MAX));
    out.extend_from_slice(&(comment.len() as u16).to_be_bytes());
    out.extend_from_slice(comment);
    for fpr in &entry.reported_by {
        out.extend_from_slice(&fpr.to_raw());
    }
    out
}

fn decode_indicator(
    kind: IndicatorType,
    value: &str,
    v: &[u8],
) -> Result<(u32, IndicatorEntry), StoreError> {
    let bad = || corrupt("indicator record", "truncated");
    let take = |at: usize, n: usize| v.get(at..at + n).ok_or_else(bad);
    let pos = u32::from_be_bytes(take(0, 4)?.try_into().expect("4 bytes"));
    let first = i128::from_be_bytes(take(4, 16)?.try_into().expect("16 bytes"));
    let last = i128::from_be_bytes(take(20, 16)?.try_into().expect("16 bytes"));
    let sightings = u32::from_be_bytes(take(36, 4)?.try_into().expect("4 bytes"));
    let confidence = *take(40, 1)?.first().expect("1 byte");
    let comment_len = u16::from_be_bytes(take(41, 2)?.try_into().expect("2 bytes")) as usize;
    let comment = std::str::from_utf8(take(43, comment_len)?)
        .map_err(|_| corrupt("indicator record", "comment is not UTF-8"))?;
    let rest = &v[43 + comment_len..];
    if rest.len() % 20 != 0 {
        return Err(corrupt(
            "indicator record",
            "reporter list is not whole fingerprints",
        ));
    }
    let reported_by = rest
        .chunks_exact(20)
        .map(|raw| Fingerprint::from_raw(raw.try_into().expect("20 bytes")))
        .collect();
    Ok((
        pos,
        IndicatorEntry {
            kind,
            value: value.to_owned(),
            first_seen: Timestamp::from_unix_nanos(first),
            last_seen: Timestamp::from_unix_nanos(last),
            confidence: (confidence != u8::MAX).then_some(confidence),
            comment: (!comment.is_empty()).then(|| comment.to_owned()),
            reported_by,
            sightings,
        },
    ))
}

/// Splits `type:value\0` (the key of either indicator tree, after its
/// prefix) into its parts.
fn split_indicator_key(key: &[u8]) -> Result<(IndicatorType, &str), StoreError> {
    let colon = key
        .iter()
        .position(|b| *b == b':')
        .ok_or_else(|| corrupt("indicator key", "no type"))?;
    let kind: IndicatorType = std::str::from_utf8(&key[..colon])
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| corrupt("indicator key", "unknown type"))?;
    let rest = &key[colon + 1..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    let value = std::str::from_utf8(&rest[..end])
        .map_err(|_| corrupt("indicator key", "value is not UTF-8"))?;
    Ok((kind, value))
}

#[cfg(test)]
mod tests {
    use cer_proto::envelope::{Draft, DraftBody, IncidentBody, RetractionBody};
    use cer_proto::model::{Classification, Indicator, Severity, Status};

    use super::*;

    fn author() -> Fingerprint {
        Fingerprint::parse(&"AB12".repeat(10)).unwrap()
    }

    fn incident(title: &str, iocs: &[&str]) -> Body {
        Body::Incident(IncidentBody {
            title: title.into(),
            description: String::new(),
            severity: Severity::High,
            classification: Classification::parse("malicious-code/c2-server").unwrap(),
            status: Status::New,
            indicators: iocs
                .iter()
                .map(|s| Indicator::parse_spec(s).unwrap())
                .collect(),
            affected: Default::default(),
            occurred: None,
            detected: None,
            tags: vec![],
        })
    }

    /// The next envelope of `author()` after `tip`.
    fn next(tip: Option<ChainTip>, subject: Uuid, body: Body) -> NewEnvelope {
        let readable = body.clone();
        let bytes = Draft {
            author: author(),
            seq: tip.map_or(1, |t| t.seq + 1),
            prev: tip.map(|t| t.id),
            created: Timestamp(time::OffsetDateTime::now_utc()),
            subject,
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(body),
            withdraws: vec![],
        }
        .to_bytes()
        .unwrap();
        NewEnvelope {
            id: EnvelopeId::of(&bytes),
            envelope: Envelope::parse(&bytes).unwrap(),
            bytes,
            sig: b"sig".to_vec(),
            body: Some(readable),
        }
    }

    /// `new` again, naming the envelopes it withdraws.
    fn withdrawing(
        new: NewEnvelope,
        withdraws: Vec<cer_proto::envelope::Withdrawal>,
    ) -> NewEnvelope {
        let e = &new.envelope;
        let bytes = Draft {
            author: e.author.clone(),
            seq: e.seq,
            prev: e.prev,
            created: e.created,
            subject: e.subject,
            tlp: e.tlp,
            recipients: vec![],
            body: DraftBody::Plain(new.body.clone().unwrap()),
            withdraws,
        }
        .to_bytes()
        .unwrap();
        NewEnvelope {
            id: EnvelopeId::of(&bytes),
            envelope: Envelope::parse(&bytes).unwrap(),
            bytes,
            ..new
        }
    }

    fn tip_of(new: &NewEnvelope) -> Option<ChainTip> {
        Some(ChainTip {
            seq: new.envelope.seq,
            id: new.id,
        })
    }

    #[test]
    fn duplicates_equivocations_and_gaps() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let subject = Uuid::new_v4();
        let first = next(None, subject, incident("one", &["ipv4:203.0.113.7"]));
        assert!(matches!(
            store.insert(first.clone()).unwrap(),
            Inserted::Stored(_)
        ));
        assert_eq!(store.insert(first.clone()).unwrap(), Inserted::Duplicate);

        let rival = next(None, Uuid::new_v4(), incident("rival", &[]));
        assert_eq!(
            store.insert(rival).unwrap(),
            Inserted::Equivocation { held: first.id }
        );
        assert_eq!(store.counts().equivocations, 1);

        let third = next(
            Some(ChainTip {
                seq: 2,
                id: first.id,
            }),
            Uuid::new_v4(),
            incident("gap", &[]),
        );
        assert!(matches!(store.insert(third), Err(StoreError::Chain(_))));
        let counts = store.counts();
        assert_eq!(
            (
                counts.envelopes,
                counts.incidents,
                counts.indicators,
                counts.authors
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(store.chain_tip(&author()).unwrap(), tip_of(&first));
        assert_eq!(
            store
                .indicator_hits(IndicatorType::Ipv4, "203.0.113.7")
                .unwrap()
                .len(),
            1
        );
    }

    #[test]
    fn retraction_leaves_only_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let subject = Uuid::new_v4();
        let first = next(
            None,
            subject,
            incident("secret-ish title", &["domain:evil.example"]),
        );
        store.insert(first.clone()).unwrap();
        let mut retraction = next(
            tip_of(&first),
            subject,
            Body::Retraction(RetractionBody {
                target: None,
                reason: Some("false positive".into()),
            }),
        );
        retraction = withdrawing(
            retraction,
            vec![cer_proto::envelope::Withdrawal {
                seq: 1,
                id: first.id,
                kind: Kind::Incident,
                created: first.envelope.created,
            }],
        );
        let Inserted::Stored(state) = store.insert(retraction.clone()).unwrap() else {
            panic!("not stored")
        };
        assert!(state.retracted.is_some());
        assert!(state.content.is_none());
        assert!(store
            .indicator_hits(IndicatorType::Domain, "evil.example")
            .unwrap()
            .is_empty());
        match store.envelope(&first.id).unwrap().unwrap() {
            StoredEnvelope::Tombstone(t) => assert_eq!(t.withdrawn_by, retraction.id),
            StoredEnvelope::Live { .. } => panic!("retracted body still held"),
        }
        let counts = store.counts();
        assert_eq!((counts.tombstones, counts.indicators), (1, 0));
        assert!(store.summary(subject).unwrap().unwrap().retracted);
    }

    #[test]
    fn reopen_repairs_an_interrupted_write() {
        let dir = tempfile::tempdir().unwrap();
        let subject = Uuid::new_v4();
        let first = next(
            None,
            subject,
            incident("interrupted", &["ipv4:198.51.100.1"]),
        );
        {
            let store = Store::open(dir.path()).unwrap();
            // What a crash between the primary and the derived writes leaves.
            store.mark_pending(subject, true).unwrap();
            let inner = &store.inner;
            inner
                .envelopes
                .insert(first.id.as_bytes(), live_record(&first.bytes, &first.sig))
                .unwrap();
            inner
                .by_author
                .insert(author_seq_key(&author(), 1), first.id.as_bytes())
                .unwrap();
            let mut sk = subject.as_bytes().to_vec();
            sk.extend_from_slice(first.id.as_bytes());
            inner.by_subject.insert(sk, &[]).unwrap();
            inner
                .authors
                .insert(
                    author().as_bytes(),
                    serde_json::to_vec(&tip_of(&first).unwrap()).unwrap(),
                )
                .unwrap();
            store.flush().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let state = store.incident(subject).unwrap().expect("refolded at open");
        assert_eq!(state.content.unwrap().title, "interrupted");
        assert_eq!(
            store
                .indicator_hits(IndicatorType::Ipv4, "198.51.100.1")
                .unwrap()
                .len(),
            1
        );
        let counts = store.counts();
        assert_eq!(
            (counts.envelopes, counts.incidents, counts.indicators),
            (1, 1, 1)
        );
        // And the chain continues from the recovered tip.
        let second = next(tip_of(&first), subject, incident("dup subject", &[]));
        assert!(matches!(store.insert(second).unwrap(), Inserted::Stored(_)));
    }

    #[test]
    fn counts_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let first = next(
            None,
            Uuid::new_v4(),
            incident("a", &["ipv4:192.0.2.1", "ipv4:192.0.2.2"]),
        );
        {
            let store = Store::open(dir.path()).unwrap();
            store.insert(first).unwrap();
            store.close().unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let counts = store.counts();
        assert_eq!(
            (
                counts.envelopes,
                counts.incidents,
                counts.indicators,
                counts.authors
            ),
            (1, 1, 2, 1)
        );
    }
}
