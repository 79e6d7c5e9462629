//! The node's durable store: envelopes, per-author chains, incident state,
//! indexes, the event log and local records, kept in one sled tree (see
//! [`keys`] for the layout).
//!
//! Architecture invariant: this is the only module that imports sled, so
//! the engine can be replaced without touching the rest of the daemon.
//!
//! **One writer.** Every write goes through the [`writer`] thread: publish,
//! ingest, annotations, run records and cursors reach it through a bounded
//! inbox, and each caller gets an answer only once its write is durable.
//! The writer drains what is queued into one sled batch and one flush
//! (group commit), so a crash leaves every batch whole or absent, and it
//! alone appends to the event log (`v` records, numbered in the batch that
//! stores them). Readers use the methods here from blocking threads.
//!
//! sled's flush is `sync_file_range`, not `fsync`: a batch survives a crash
//! of the process, not necessarily a power cut on a disk with a volatile
//! write cache.

pub mod backup;
mod carve;
mod check;
mod index;
pub mod keys;
mod local;
mod read;
mod search;
mod table;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cer_proto::api::{Annotation, Filed, IncidentSummary, RunRecord};
use cer_proto::envelope::{
    Body, ChainError, DraftBody, Envelope, EnvelopeError, Header, Kind, Withdrawal,
};
use cer_proto::incident::IncidentState;
use cer_proto::model::{Severity, Timestamp, Tlp};
use cer_proto::{EnvelopeId, Fingerprint};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use uuid::Uuid;

pub use check::{check, rebuild, rebuild_from, CheckReport, Rebuilt, Verdict, Verifier};
pub use local::{PlaybookChange, RunEffect};
pub use search::RangeHits;
use writer::Command;

/// The on-disk format this code reads and writes. Version 3 keeps the
/// index keys of addresses, networks and domains in ordered families (`y`,
/// `z`) instead of `x`; version 4 adds the order of arrival (`l`). A store
/// of version 2 or 3 gets what it lacks at open: everything else is the
/// same.
pub const FORMAT_VERSION: u64 = 4;

/// The oldest format upgraded at open by deriving what it lacks.
const UPGRADABLE_FORMAT: u64 = 2;

/// Commands queued for the writer before callers wait for room.
const INBOX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store engine: {0}")]
    Engine(#[from] sled::Error),
    #[error(
        "the store at {path} is format version {found}; this cerd reads version {FORMAT_VERSION}. \
         Move the folder aside and start again: peers send every envelope again"
    )]
    Format { path: PathBuf, found: u64 },
    #[error(
        "the store at {path} is damaged ({detail}). `cerd check --store` lists what is readable; \
         `cerd repair` rebuilds what the envelopes allow; or restore a backup"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error(
        "the store at {path} is in use by another process (is another cerd running with this data_dir?)"
    )]
    Locked { path: PathBuf },
    #[error("store record {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the store's writer has stopped")]
    WriterGone,
    #[error("{what} {}: {source}", path.display())]
    Files {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A verified envelope ready to be stored.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    pub id: EnvelopeId,
    pub bytes: Vec<u8>,
    pub sig: Vec<u8>,
    pub envelope: Envelope,
    /// The body as this node can read it: the plaintext body, or the
    /// decrypted one (kept as a `d` record). None when encrypted for others.
    pub body: Option<Body>,
}

/// Something received to store, verified by the caller.
#[derive(Debug, Clone)]
pub enum Incoming {
    Live(Box<NewEnvelope>),
    /// A withdrawn envelope's place, its proof checked by `verify`.
    Tombstone(EnvelopeId, Tombstone),
}

/// What storing one envelope did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    /// Stored, in incident `subject`, stating `severity` where this node
    /// can read it (see [`Change::Stored`]).
    Stored {
        subject: Uuid,
        kind: Kind,
        severity: Option<Severity>,
    },
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
    /// The withdrawn envelope's header, as its author's retraction names it.
    #[serde(flatten)]
    pub header: Header,
    pub withdrawn_by: EnvelopeId,
    #[serde(with = "hex_bytes")]
    pub proof: Vec<u8>,
    #[serde(with = "hex_bytes")]
    pub proof_sig: Vec<u8>,
}

impl Tombstone {
    /// The tombstone a verified retraction proves for one of the envelopes
    /// it withdraws: everything in it comes from the retraction's signed
    /// header, so every node keeps the same tombstone, whether it held the
    /// envelope or not.
    pub fn proven(
        retraction: &Envelope,
        withdrawal: &Withdrawal,
        proof: Vec<u8>,
        proof_sig: Vec<u8>,
    ) -> Tombstone {
        Tombstone {
            header: Header {
                author: retraction.author.clone(),
                seq: withdrawal.seq,
                subject: retraction.subject,
                kind: withdrawal.kind,
                created: withdrawal.created,
                tlp: retraction.tlp,
                recipients: retraction.recipients.clone(),
            },
            withdrawn_by: EnvelopeId::of(&proof),
            proof,
            proof_sig,
        }
    }
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

/// One incident naming an indicator, as the index finds it.
#[derive(Debug, Clone, PartialEq)]
pub struct IndicatorHit {
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub sightings: u32,
    pub reported_by: Vec<Fingerprint>,
    /// The author's `valid_until`, if it gave one.
    pub valid_until: Option<Timestamp>,
}

/// Counts for `cerctl status` and metrics, written with every batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub envelopes: u64,
    pub tombstones: u64,
    pub incidents: u64,
    pub indicators: u64,
    pub authors: u64,
    pub equivocations: u64,
}

/// A change the writer made durable, numbered in the log (`v` records).
/// Consumers keep a cursor and read on from it: at-least-once delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// The event's number in the log (the envelope's own seq is in
    /// [`Change::Stored`]).
    #[serde(rename = "event")]
    pub seq: u64,
    #[serde(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// An envelope (or a proven tombstone) extended its author's chain.
    Stored {
        author: Fingerprint,
        seq: u64,
        id: EnvelopeId,
        subject: Uuid,
        kind: Kind,
        /// The peer it came from; None when published here.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Fingerprint>,
        /// The severity the envelope states (an incident's, or the one an
        /// update sets), where this node can read the body: the mesh
        /// floods critical ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        severity: Option<Severity>,
    },
    /// Two different envelopes with the same author and seq were seen.
    Equivocation {
        author: Fingerprint,
        seq: u64,
        held: EnvelopeId,
        other: EnvelopeId,
    },
}

/// The writer's answer to an ingest: one result per item, or the batch's
/// failure.
pub type BatchResult = Result<Vec<Result<Inserted, StoreError>>, StoreError>;

/// Makes a detached signature over finished envelope bytes.
pub type Signer = Box<dyn FnOnce(&[u8]) -> Vec<u8> + Send>;

/// What an author publishes; the writer gives it its place in the chain.
pub struct Publish {
    pub author: Fingerprint,
    pub subject: Uuid,
    pub created: Timestamp,
    pub tlp: Tlp,
    pub recipients: Vec<Fingerprint>,
    pub body: DraftBody,
    /// The plaintext body, for the fold (also of an encrypted envelope).
    pub readable: Option<Body>,
    pub withdraws: Vec<Withdrawal>,
    /// A client's request id: a repeat gets the first answer back.
    pub request: Option<Uuid>,
    /// Signs the finished envelope bytes (the caller's key).
    pub sign: Signer,
}

/// The answer to a publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub filed: Filed,
    /// True when this answers a repeated request: nothing new was signed.
    pub repeated: bool,
}

/// Filters applied while scanning incidents newest first.
pub trait SummaryFilter {
    /// Summaries updated before this are never wanted.
    fn since(&self) -> Option<Timestamp>;
    /// Summaries updated at or after this are never wanted.
    fn until(&self) -> Option<Timestamp>;
    fn accept(&self, summary: &IncidentSummary) -> bool;
    /// Lower-cased words that must all appear in the title or description.
    fn words(&self) -> &[String] {
        &[]
    }
}

/// Which page of a listing, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
    pub oldest_first: bool,
}

/// A handle on the store: reads, and the writer's inbox. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    db: sled::Db,
    inbox: Mutex<Option<mpsc::Sender<Command>>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    counts: Arc<Mutex<Counts>>,
    stored: broadcast::Sender<Arc<[EventRecord]>>,
    durable: watch::Receiver<u64>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing the inbox ends the writer, which holds a handle on the
        // database; join it so the files are released with the store.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = writer.join();
        }
    }
}

/// How the store is opened.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Store {
    /// Opens (or creates) the store in `path` and starts its writer.
    /// A store sled cannot read, or of another format, is refused with a
    /// message that names the folder and what to do.
    pub fn open(path: &Path, options: Options) -> Result<Store, StoreError> {
        let db = open_db(path, options)?;
        let format = keys::meta("format");
        let mut upgrade = None;
        match db.get(&format)? {
            None if db.is_empty() => {
                db.insert(&format, &FORMAT_VERSION.to_be_bytes())?;
                db.flush()?;
            }
            None => {
                return Err(StoreError::Damaged {
                    path: path.to_owned(),
                    detail: "it has records but no format version".into(),
                })
            }
            Some(v) => {
                let found = keys::u64_from(&v, "meta/format")?;
                if (UPGRADABLE_FORMAT..FORMAT_VERSION).contains(&found) {
                    upgrade = Some(found);
                } else if found != FORMAT_VERSION {
                    return Err(StoreError::Format {
                        path: path.to_owned(),
                        found,
                    });
                }
            }
        }
        let counts = match db.get(keys::meta("counts"))? {
            Some(v) => decode_json(&v, "meta/counts")?,
            None => Counts::default(),
        };
        let (state, last_event) = writer::State::load(&db, counts, path)?;
        let mark_path = path.join(Mark::FILE);
        if let Some(mark) = Mark::read(&mark_path) {
            if last_event < mark.event || counts.envelopes < mark.envelopes {
                return Err(StoreError::Damaged {
                    path: path.to_owned(),
                    detail: format!(
                        "it ends at event {last_event} with {} envelope(s), but {} event(s) and {} envelope(s) had been written: part of it was cut off",
                        counts.envelopes, mark.event, mark.envelopes
                    ),
                });
            }
        }
        let (inbox, commands) = mpsc::channel(INBOX);
        let (stored, _) = broadcast::channel(1024);
        let (durable_tx, durable) = watch::channel(last_event);
        let counts = Arc::new(Mutex::new(counts));
        let outlet = writer::Outlet {
            mark: mark_path,
            counts: counts.clone(),
            durable: durable_tx,
            stored: stored.clone(),
        };
        // A store of a previous format is upgraded by the writer before it
        // takes any command; open waits for it.
        let (built_tx, built) = std::sync::mpsc::channel();
        let handle = writer::spawn(
            db.clone(),
            state,
            commands,
            outlet,
            upgrade.map(|from| (from, built_tx)),
        )
        .map_err(|e| corrupt("writer thread", &e.to_string()))?;
        if let Some(from) = upgrade {
            let outcome = built.recv().unwrap_or(Err(StoreError::WriterGone));
            match outcome {
                Ok(keys) => tracing::info!(
                    store = %path.display(),
                    keys,
                    "store upgraded from format {from} to {FORMAT_VERSION}: index keys in their ordered families, incidents in their order of arrival"
                ),
                Err(e) => {
                    drop(inbox);
                    let _ = handle.join();
                    return Err(e);
                }
            }
        }
        Ok(Store {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                db,
                inbox: Mutex::new(Some(inbox)),
                writer: Mutex::new(Some(handle)),
                counts,
                stored,
                durable,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    // ---- writes (through the writer) ----------------------------------

    async fn send(&self, command: Command) -> Result<(), StoreError> {
        let inbox = self
            .shared
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::WriterGone)?;
        inbox
            .send(command)
            .await
            .map_err(|_| StoreError::WriterGone)
    }

    /// Queues received envelopes and returns at once with the receiver of
    /// the answer, so the caller can queue the next batch meanwhile. Batches
    /// are stored in the order they are queued.
    pub async fn queue_ingest(
        &self,
        items: Vec<Incoming>,
        from: Option<Fingerprint>,
    ) -> Result<oneshot::Receiver<BatchResult>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Ingest {
            items,
            from,
            log: true,
            reply,
        })
        .await?;
        Ok(answer)
    }

    /// Stores received envelopes in order and answers once they are
    /// durable, the result for each item in its position. For threads that
    /// are not runtime workers (tools, tests).
    pub fn ingest_blocking(
        &self,
        items: Vec<Incoming>,
        from: Option<Fingerprint>,
    ) -> Result<Vec<Result<Inserted, StoreError>>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send_blocking(Command::Ingest {
            items,
            from,
            log: true,
            reply,
        })?;
        answer.blocking_recv().map_err(|_| StoreError::WriterGone)?
    }

    /// Stores envelopes without adding to the event log (rebuilds).
    fn restore_blocking(&self, items: Vec<Incoming>) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        self.send_blocking(Command::Ingest {
            items,
            from: None,
            log: false,
            reply,
        })?;
        for result in answer
            .blocking_recv()
            .map_err(|_| StoreError::WriterGone)??
        {
            result?;
        }
        Ok(())
    }

    /// Publishes: the writer takes the author's next seq, builds and signs
    /// the envelope and stores it; answers once it is durable.
    pub async fn publish(&self, publish: Publish) -> Result<Published, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Publish {
            publish: Box::new(publish),
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Adds a local annotation (a playbook's tag or note). Never published.
    pub async fn annotate(&self, incident: Uuid, annotation: Annotation) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Annotate {
            incident,
            annotation,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Records a playbook run (history for `cerctl playbook runs`) and,
    /// in the same batch, what it changes in the playbook's acted records.
    pub async fn record_run(&self, run: RunRecord, effect: RunEffect) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::RecordRun {
            run: Box::new(run),
            effect,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Saves a consumer's position in the event log.
    pub async fn set_cursor(&self, name: &'static str, seq: u64) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Cursor { name, seq, reply }).await?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }

    fn send_blocking(&self, command: Command) -> Result<(), StoreError> {
        let inbox = self
            .shared
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(StoreError::WriterGone)?;
        inbox
            .blocking_send(command)
            .map_err(|_| StoreError::WriterGone)
    }

    /// Stops the writer after what is queued, and flushes. Blocking.
    pub fn close(&self) -> Result<(), StoreError> {
        self.shared
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(writer) = self
            .shared
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = writer.join();
        }
        self.shared.db.flush()?;
        Ok(())
    }

    // ---- events -------------------------------------------------------

    /// Every batch of events from now on, once durable. Lossy for a
    /// receiver that falls behind (it sees `Lagged` and must resynchronise
    /// from the log).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[EventRecord]>> {
        self.shared.stored.subscribe()
    }

    /// The seq of the newest durable event, updated after each batch.
    pub fn durable_events(&self) -> watch::Receiver<u64> {
        self.shared.durable.clone()
    }

    /// Events after `after`, oldest first, at most `limit`.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<EventRecord>, StoreError> {
        let start = keys::event(after.saturating_add(1));
        let end = keys::prefixed(keys::EVENT + 1, &[]);
        let mut out = Vec::new();
        for item in self.shared.db.range(start..end).take(limit) {
            let (_, v) = item?;
            out.push(decode_json(&v, "event")?);
        }
        Ok(out)
    }

    /// A consumer's saved position in the event log (0: from the start).
    pub fn cursor(&self, name: &str) -> Result<u64, StoreError> {
        match self.shared.db.get(keys::meta(&format!("cursor:{name}")))? {
            Some(v) => keys::u64_from(&v, "cursor"),
            None => Ok(0),
        }
    }
}

/// What the writer had made durable, kept in a small file beside sled's:
/// sled takes a log cut short for a torn write and opens what is left, so
/// without this a truncated store would serve silently with less than it
/// acknowledged. Written after each batch's flush (never ahead of sled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mark {
    event: u64,
    envelopes: u64,
}

impl Mark {
    const FILE: &'static str = "cerd-mark";

    fn read(path: &Path) -> Option<Mark> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut words = text.split_whitespace();
        let mut field = |name: &str| {
            (words.next()? == name)
                .then(|| words.next()?.parse().ok())
                .flatten()
        };
        Some(Mark {
            event: field("event")?,
            envelopes: field("envelopes")?,
        })
    }

    fn write(&self, path: &Path) -> std::io::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(
            &tmp,
            format!("event {} envelopes {}\n", self.event, self.envelopes),
        )?;
        std::fs::rename(&tmp, path)
    }
}

/// Opens sled, turning its panics and errors on a damaged or locked folder
/// into errors that say what to do.
fn open_db(path: &Path, options: Options) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(options.cache_bytes)
        .mode(sled::Mode::HighThroughput)
        // The writer flushes after every batch; no background flusher.
        .flush_every_ms(None);
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()));
    match opened {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(e)))
            if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock") =>
        {
            Err(StoreError::Locked {
                path: path.to_owned(),
            })
        }
        Ok(Err(sled::Error::Corruption { .. })) | Ok(Err(sled::Error::Unsupported(_))) => {
            Err(StoreError::Damaged {
                path: path.to_owned(),
                detail: "sled found corrupt or unreadable data".into(),
            })
        }
        Ok(Err(e)) => Err(StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("sled: {e}"),
        }),
        Err(panic) => Err(StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("sled failed reading it: {}", panic_text(&panic)),
        }),
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "panic".into())
}

/// The `i` record: the summary (read by listings on their own) and the
/// folded state without its indicators, whose count it keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    state: IncidentState,
    indicators: u32,
    /// When this node last stored an envelope about it (its `l` key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    added: Option<Timestamp>,
}

fn encode_head(head: &Head) -> Result<Vec<u8>, StoreError> {
    let mut state = head.state.clone();
    state.indicators.clear();
    let mut summary = IncidentSummary::of(&state, None);
    summary.indicators = head.indicators as usize;
    let summary = serde_json::to_vec(&summary).map_err(json_err)?;
    let mut out = (summary.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&summary);
    serde_json::to_writer(
        &mut out,
        &Head {
            state,
            indicators: head.indicators,
            added: head.added,
        },
    )
    .map_err(json_err)?;
    Ok(out)
}

fn split_head(v: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let len = keys::u32_from(v, "incident record")? as usize;
    let summary = v
        .get(4..4 + len)
        .ok_or_else(|| corrupt("incident record", "shorter than its summary"))?;
    Ok((summary, &v[4 + len..]))
}

fn decode_summary(v: &[u8]) -> Result<IncidentSummary, StoreError> {
    decode_json(split_head(v)?.0, "incident summary")
}

fn decode_head(v: &[u8]) -> Result<Head, StoreError> {
    decode_json(split_head(v)?.1, "incident state")
}

fn decode_record(v: &[u8]) -> Result<StoredEnvelope, StoreError> {
    match v.split_first() {
        Some((&keys::LIVE, rest)) if rest.len() >= 4 => {
            let len = keys::u32_from(rest, "envelope record")? as usize;
            let rest = &rest[4..];
            if rest.len() < len {
                return Err(corrupt("envelope record", "shorter than its length prefix"));
            }
            Ok(StoredEnvelope::Live {
                bytes: rest[..len].to_vec(),
                sig: rest[len..].to_vec(),
            })
        }
        Some((&keys::TOMB, rest)) => Ok(StoredEnvelope::Tombstone(decode_json(rest, "tombstone")?)),
        _ => Err(corrupt("envelope record", "unknown tag")),
    }
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

#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
