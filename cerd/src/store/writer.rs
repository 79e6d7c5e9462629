//! The store's one writer: a thread (never a runtime worker) that takes
//! commands from a bounded inbox, applies everything queued to one sled
//! batch, flushes once (group commit), and only then answers each caller
//! and announces the batch's events.
//!
//! A batch is atomic in sled, so a crash leaves it whole or absent: there
//! is nothing to repair at open. Per batch, each touched incident's record,
//! each changed author tip and the counts are written once, whatever the
//! number of envelopes. A refusal of one item (a chain that does not
//! follow, a duplicate) writes nothing for it; any other error abandons the
//! whole batch and every caller in it gets the error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cer_proto::api::{Annotation, Filed, RunRecord};
use cer_proto::envelope::{Body, ChainTip, Draft, Envelope, Kind};
use cer_proto::incident::{Event, FoldInput, IncidentState};
use cer_proto::model::Timestamp;
use cer_proto::{EnvelopeId, Fingerprint};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use uuid::Uuid;

use super::local::{PlaybookChange, RunEffect};
use super::table::Table;
use super::{
    corrupt, decode_head, decode_json, decode_record, encode_head, json_err, keys, Change, Counts,
    EventRecord, Head, Incoming, Inserted, NewEnvelope, Publish, Published, StoreError,
    StoredEnvelope, Tombstone,
};

/// Items applied in one batch at most (envelopes; other commands count 1).
/// sled holds one process-wide lock while it applies a batch, which every
/// reader waits for: smaller batches keep queries answering during a
/// catch-up, at some cost in throughput.
const MAX_BATCH_ITEMS: usize = 512;

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

pub(super) enum Command {
    Ingest {
        items: Vec<Incoming>,
        from: Option<Fingerprint>,
        /// False when rebuilding a store: its event log is copied instead.
        log: bool,
        reply: Reply<Vec<Result<Inserted, StoreError>>>,
    },
    Publish {
        publish: Box<Publish>,
        reply: Reply<Published>,
    },
    Annotate {
        incident: Uuid,
        annotation: Annotation,
        reply: Reply<()>,
    },
    RecordRun {
        run: Box<RunRecord>,
        effect: RunEffect,
        reply: Reply<()>,
    },
    Playbook {
        change: PlaybookChange,
        reply: Reply<u64>,
    },
    Cursor {
        name: &'static str,
        seq: u64,
        reply: Reply<()>,
    },
}

impl Command {
    /// The answer of a command left out of a failed batch.
    fn unapplied(self) -> Answer {
        match self {
            Command::Ingest { reply, .. } => Answer::Ingest(reply, Vec::new()),
            Command::Publish { reply, .. } => Answer::Publish(reply, Err(StoreError::WriterGone)),
            Command::Annotate { reply, .. }
            | Command::RecordRun { reply, .. }
            | Command::Cursor { reply, .. } => Answer::Done(reply),
            Command::Playbook { reply, .. } => Answer::Count(reply, 0),
        }
    }

    fn weight(&self) -> usize {
        match self {
            Command::Ingest { items, .. } => items.len().max(1),
            _ => 1,
        }
    }
}

/// A command's answer, held until its batch is durable.
enum Answer {
    Ingest(
        Reply<Vec<Result<Inserted, StoreError>>>,
        Vec<Result<Inserted, StoreError>>,
    ),
    Publish(Reply<Published>, Result<Published, StoreError>),
    Done(Reply<()>),
    Count(Reply<u64>, u64),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Ingest(reply, results) => {
                let _ = reply.send(Ok(results));
            }
            Answer::Publish(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Done(reply) => {
                let _ = reply.send(Ok(()));
            }
            Answer::Count(reply, n) => {
                let _ = reply.send(Ok(n));
            }
        }
    }

    fn fail(self, error: &str) {
        let error = || StoreError::Corrupt {
            what: "batch".into(),
            reason: error.to_owned(),
        };
        match self {
            Answer::Ingest(reply, _) => {
                let _ = reply.send(Err(error()));
            }
            Answer::Publish(reply, _) => {
                let _ = reply.send(Err(error()));
            }
            Answer::Done(reply) => {
                let _ = reply.send(Err(error()));
            }
            Answer::Count(reply, _) => {
                let _ = reply.send(Err(error()));
            }
        }
    }
}

/// What the writer keeps between batches.
pub(super) struct State {
    path: PathBuf,
    tips: HashMap<Fingerprint, ChainTip>,
    counts: Counts,
    next_event: u64,
    /// The latest arrival time given (the last `l` key's): each batch's
    /// is later.
    last_added: Timestamp,
}

impl State {
    /// Reads the tips and the end of the event log. Returns the state and
    /// the seq of the newest event.
    pub fn load(db: &sled::Db, counts: Counts, path: &Path) -> Result<(State, u64), StoreError> {
        let mut tips = HashMap::new();
        for item in db.scan_prefix([keys::TIP]) {
            let (k, v) = item?;
            let (seq, id) = keys::decode_tip(&v)?;
            tips.insert(keys::fingerprint_from(&k[1..])?, ChainTip { seq, id });
        }
        let last = match db.scan_prefix([keys::EVENT]).keys().next_back() {
            Some(k) => keys::u64_from(&k?[1..], "event key")?,
            None => 0,
        };
        Ok((
            State {
                path: path.to_owned(),
                tips,
                counts,
                next_event: last + 1,
                last_added: State::last_added(db)?,
            },
            last,
        ))
    }

    fn last_added(db: &sled::Db) -> Result<Timestamp, StoreError> {
        match db.scan_prefix([keys::ADDED]).keys().next_back() {
            Some(k) => keys::time_from(&k?[1..]),
            None => Ok(Timestamp::from_unix_nanos(0)),
        }
    }
}

/// Where the writer reports each durable batch.
pub(super) struct Outlet {
    /// The high-water mark beside sled's files (see [`super::Mark`]).
    pub mark: PathBuf,
    pub counts: Arc<Mutex<Counts>>,
    pub durable: watch::Sender<u64>,
    pub stored: broadcast::Sender<Arc<[EventRecord]>>,
}

/// Starts the writer. With `upgrade`, it first upgrades a store of that
/// earlier format ([`upgrade`]) and reports how that went; it stops at
/// once if that failed.
pub(super) fn spawn(
    db: sled::Db,
    mut state: State,
    commands: mpsc::Receiver<Command>,
    outlet: Outlet,
    upgrade: Option<(u64, std::sync::mpsc::Sender<Result<u64, StoreError>>)>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || {
            if let Some((from, report)) = upgrade {
                let built = self::upgrade(&db, from).and_then(|keys| {
                    state.last_added = State::last_added(&db)?;
                    Ok(keys)
                });
                let failed = built.is_err();
                let _ = report.send(built);
                if failed {
                    return;
                }
            }
            run(db, state, commands, outlet)
        })
}

/// Derives what a store of format `from` lacks, then sets the current
/// format: from 2, the ordered index families (`index::upgrade`); from 2
/// or 3, the order of arrival, where each incident is placed at its last
/// update (no later than now), since when it arrived was not kept.
/// Returns how many keys were written.
fn upgrade(db: &sled::Db, from: u64) -> Result<u64, StoreError> {
    let mut written = 0;
    if from < 3 {
        written += super::index::upgrade(db)?;
    }
    let now = crate::audit::now();
    let mut batch = sled::Batch::default();
    for item in db.scan_prefix([keys::INCIDENT]) {
        let (k, v) = item?;
        let subject = keys::uuid_at(&k, 1)?;
        let mut head = decode_head(&v)?;
        if head.added.is_some() {
            continue;
        }
        let at = head.state.updated.min(now);
        head.added = Some(at);
        batch.insert(keys::added(at, subject), Vec::new());
        batch.insert(k, encode_head(&head)?);
        written += 1;
    }
    batch.insert(
        keys::meta("format"),
        &super::FORMAT_VERSION.to_be_bytes()[..],
    );
    db.apply_batch(batch)?;
    db.flush()?;
    Ok(written)
}

fn run(db: sled::Db, mut state: State, mut commands: mpsc::Receiver<Command>, outlet: Outlet) {
    while let Some(first) = commands.blocking_recv() {
        let mut weight = first.weight();
        let mut queue = vec![first];
        while weight < MAX_BATCH_ITEMS {
            match commands.try_recv() {
                Ok(command) => {
                    weight += command.weight();
                    queue.push(command);
                }
                Err(_) => break,
            }
        }
        let mut work = Work::new(&db, &state);
        let mut answers = Vec::with_capacity(queue.len());
        let mut failed = None;
        let mut queue = queue.into_iter();
        for command in queue.by_ref() {
            match work.apply(command) {
                Ok(answer) => answers.push(answer),
                Err(failure) => {
                    let (answer, e) = *failure;
                    answers.push(answer);
                    failed = Some(e);
                    break;
                }
            }
        }
        // What was queued behind a failure is not applied either; its
        // callers hear why with the rest of the batch.
        answers.extend(queue.map(Command::unapplied));
        let outcome = match failed {
            Some(e) => Err(e),
            None => work.commit(&outlet.counts),
        };
        match outcome {
            Ok(done) => {
                let mark = super::Mark {
                    event: done.next_event - 1,
                    envelopes: done.counts.envelopes,
                };
                if let Err(e) = mark.write(&outlet.mark) {
                    tracing::warn!(file = %outlet.mark.display(), error = %e, "cannot write the store's high-water mark");
                }
                state.tips.extend(done.tips);
                state.counts = done.counts;
                state.next_event = done.next_event;
                state.last_added = done.last_added;
                if let Some(last) = done.events.last() {
                    outlet.durable.send_replace(last.seq);
                    let _ = outlet.stored.send(Arc::from(done.events));
                }
                for answer in answers {
                    answer.send();
                }
            }
            Err(e) => {
                tracing::error!(store = %state.path.display(), error = %e, "store batch failed; its callers were told it was not stored");
                let text = e.to_string();
                for answer in answers {
                    answer.fail(&text);
                }
                // A flush that failed after the batch was applied leaves
                // sled ahead of this thread's view: take it from sled.
                let counts = db
                    .get(keys::meta("counts"))
                    .ok()
                    .flatten()
                    .and_then(|v| decode_json(&v, "meta/counts").ok())
                    .unwrap_or(state.counts);
                match State::load(&db, counts, &state.path.clone()) {
                    Ok((reloaded, _)) => state = reloaded,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot reread the store after a failed batch")
                    }
                }
            }
        }
    }
    let _ = db.flush();
}

/// One batch being built: its writes (read back by later items of the
/// same batch), and the incidents, tips and counts it changes.
struct Work<'a> {
    db: &'a sled::Db,
    base_tips: &'a HashMap<Fingerprint, ChainTip>,
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    tips: HashMap<Fingerprint, ChainTip>,
    counts: Counts,
    next_event: u64,
    events: Vec<EventRecord>,
    incidents: HashMap<Uuid, Open>,
    last_added: Timestamp,
    /// Set while applying a command that adds nothing to the event log.
    quiet: bool,
}

/// An incident touched by the batch.
struct Open {
    /// The stored record's state; None for an incident new in this batch.
    stored: Option<Head>,
    /// The state now; None until the first envelope is folded in.
    head: Option<Head>,
    table: Table,
}

struct Done {
    tips: HashMap<Fingerprint, ChainTip>,
    counts: Counts,
    next_event: u64,
    events: Vec<EventRecord>,
    last_added: Timestamp,
}

impl<'a> Work<'a> {
    fn new(db: &'a sled::Db, state: &'a State) -> Work<'a> {
        Work {
            db,
            base_tips: &state.tips,
            writes: BTreeMap::new(),
            tips: HashMap::new(),
            counts: state.counts,
            next_event: state.next_event,
            events: Vec::new(),
            incidents: HashMap::new(),
            last_added: state.last_added,
            quiet: false,
        }
    }

    /// Applies one command. An error here abandons the batch; the answer
    /// is returned so its caller still hears of it.
    fn apply(&mut self, command: Command) -> Result<Answer, Box<(Answer, StoreError)>> {
        match command {
            Command::Ingest {
                items,
                from,
                log,
                reply,
            } => {
                self.quiet = !log;
                let mut results = Vec::with_capacity(items.len());
                for item in items {
                    let result = match item {
                        Incoming::Live(new) => self.insert_live(*new, from.clone()),
                        Incoming::Tombstone(id, tomb) => {
                            self.insert_tombstone(id, tomb, from.clone())
                        }
                    };
                    match result {
                        Err(e @ StoreError::Chain(_)) => results.push(Err(e)),
                        Err(e) => return Err(Box::new((Answer::Ingest(reply, Vec::new()), e))),
                        Ok(inserted) => results.push(Ok(inserted)),
                    }
                }
                self.quiet = false;
                Ok(Answer::Ingest(reply, results))
            }
            Command::Publish { publish, reply } => match self.publish(*publish) {
                Err(e @ (StoreError::Envelope(_) | StoreError::Chain(_))) => {
                    Ok(Answer::Publish(reply, Err(e)))
                }
                Err(e) => Err(Box::new((
                    Answer::Publish(reply, Err(StoreError::WriterGone)),
                    e,
                ))),
                Ok(published) => Ok(Answer::Publish(reply, Ok(published))),
            },
            Command::Annotate {
                incident,
                annotation,
                reply,
            } => {
                let result = self
                    .db
                    .generate_id()
                    .map_err(StoreError::from)
                    .and_then(|n| {
                        let json = serde_json::to_vec(&annotation).map_err(json_err)?;
                        self.put(keys::annotation(incident, annotation.at, n), json);
                        Ok(())
                    });
                match result {
                    Ok(()) => Ok(Answer::Done(reply)),
                    Err(e) => Err(Box::new((Answer::Done(reply), e))),
                }
            }
            Command::RecordRun { run, effect, reply } => {
                match serde_json::to_vec(&*run)
                    .map_err(json_err)
                    .and_then(|json| {
                        self.put(keys::run(&run.key), json);
                        self.put(keys::run_by_time(run.started, &run.key), Vec::new());
                        self.run_effect(effect)
                    }) {
                    Ok(()) => Ok(Answer::Done(reply)),
                    Err(e) => Err(Box::new((Answer::Done(reply), e))),
                }
            }
            Command::Playbook { change, reply } => match self.playbook_change(change) {
                Ok(n) => Ok(Answer::Count(reply, n)),
                Err(e) => Err(Box::new((Answer::Count(reply, 0), e))),
            },
            Command::Cursor { name, seq, reply } => {
                self.put(
                    keys::meta(&format!("cursor:{name}")),
                    seq.to_be_bytes().to_vec(),
                );
                Ok(Answer::Done(reply))
            }
        }
    }

    fn run_effect(&mut self, effect: RunEffect) -> Result<(), StoreError> {
        match effect {
            RunEffect::None => {}
            RunEffect::Acted {
                playbook,
                incident,
                acted,
            } => {
                let key = keys::acted(&playbook, incident, acted.kind, &acted.value, acted.action);
                self.put(key, serde_json::to_vec(&acted).map_err(json_err)?);
            }
            RunEffect::Undone {
                playbook,
                incident,
                kind,
                value,
            } => {
                for key in self
                    .keys_with_prefix(&keys::acted_indicator(&playbook, incident, kind, &value))?
                {
                    self.remove(key);
                }
            }
        }
        Ok(())
    }

    fn playbook_change(&mut self, change: PlaybookChange) -> Result<u64, StoreError> {
        match change {
            PlaybookChange::Pause(paused) => {
                let key = keys::paused(&paused.playbook);
                self.put(key, serde_json::to_vec(&paused).map_err(json_err)?);
                Ok(1)
            }
            PlaybookChange::Hold { playbook, event } => {
                self.put(keys::held(&playbook, event), Vec::new());
                Ok(1)
            }
            PlaybookChange::Release { playbook, event } => {
                self.remove(keys::held(&playbook, event));
                Ok(1)
            }
            PlaybookChange::Resume { playbook, discard } => {
                self.remove(keys::paused(&playbook));
                let held = self.keys_with_prefix(&keys::held_prefix(&playbook))?;
                let n = held.len() as u64;
                if discard {
                    for key in held {
                        self.remove(key);
                    }
                }
                Ok(n)
            }
            PlaybookChange::Forget { playbook, incident } => {
                let records = self.keys_with_prefix(&keys::acted_prefix(&playbook, incident))?;
                let n = records.len() as u64;
                for key in records {
                    self.remove(key);
                }
                Ok(n)
            }
        }
    }

    /// Keys under `prefix` as this batch leaves them: the store's, with
    /// the batch's own writes and removals applied.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut found = std::collections::BTreeSet::new();
        for item in self.db.scan_prefix(prefix) {
            let (k, _) = item?;
            found.insert(k.to_vec());
        }
        for (k, v) in self.writes.range(prefix.to_vec()..) {
            if !k.starts_with(prefix) {
                break;
            }
            match v {
                Some(_) => found.insert(k.clone()),
                None => found.remove(k),
            };
        }
        Ok(found.into_iter().collect())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.db.get(key)?.map(|v| v.to_vec())),
        }
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.writes.insert(key, Some(value));
    }

    fn remove(&mut self, key: Vec<u8>) {
        self.writes.insert(key, None);
    }

    fn tip(&self, author: &Fingerprint) -> Option<ChainTip> {
        self.tips
            .get(author)
            .or_else(|| self.base_tips.get(author))
            .copied()
    }

    fn set_tip(&mut self, author: &Fingerprint, tip: ChainTip) {
        if self.tip(author).is_none() {
            self.counts.authors += 1;
        }
        self.tips.insert(author.clone(), tip);
    }

    fn event(&mut self, change: Change) -> Result<(), StoreError> {
        if self.quiet {
            return Ok(());
        }
        let record = EventRecord {
            seq: self.next_event,
            change,
        };
        self.next_event += 1;
        let json = serde_json::to_vec(&record).map_err(json_err)?;
        self.put(keys::event(record.seq), json);
        self.events.push(record);
        Ok(())
    }

    /// What is held at an author's seq: nothing, this envelope, or another.
    fn slot(&self, author: &Fingerprint, seq: u64, id: &EnvelopeId) -> Result<Slot, StoreError> {
        Ok(match self.get(&keys::chain(author, seq))? {
            None => Slot::Free,
            Some(held) => {
                let held = keys::id_from(&held)?;
                if held == *id {
                    Slot::Same
                } else {
                    Slot::Other(held)
                }
            }
        })
    }

    fn insert_live(
        &mut self,
        new: NewEnvelope,
        from: Option<Fingerprint>,
    ) -> Result<Inserted, StoreError> {
        let envelope = &new.envelope;
        match self.slot(&envelope.author, envelope.seq, &new.id)? {
            Slot::Same => return Ok(Inserted::Duplicate),
            Slot::Other(held) => {
                let key = keys::equivocation(&envelope.author, envelope.seq, &new.id);
                if self.get(&key)?.is_none() {
                    self.put(key, keys::live_record(&new.bytes, &new.sig));
                    self.counts.equivocations += 1;
                    self.event(Change::Equivocation {
                        author: envelope.author.clone(),
                        seq: envelope.seq,
                        held,
                        other: new.id,
                    })?;
                }
                return Ok(Inserted::Equivocation { held });
            }
            Slot::Free => {}
        }
        envelope.check_follows(self.tip(&envelope.author).as_ref())?;
        let subject = envelope.subject;
        let kind = envelope.kind;
        self.put(
            keys::envelope(&new.id),
            keys::live_record(&new.bytes, &new.sig),
        );
        self.put(
            keys::chain(&envelope.author, envelope.seq),
            new.id.as_bytes().to_vec(),
        );
        if let (Some(body), Some(_)) = (&new.body, &envelope.body_enc) {
            let json = serde_json::to_vec(&body.to_value()).map_err(json_err)?;
            self.put(keys::decrypted(&new.id), json);
        }
        self.set_tip(
            &envelope.author,
            ChainTip {
                seq: envelope.seq,
                id: new.id,
            },
        );
        self.counts.envelopes += 1;
        let severity = new.body.as_ref().and_then(Body::stated_severity);
        let input = FoldInput::new(new.id, envelope, new.body);
        self.event(Change::Stored {
            author: input.header.author.clone(),
            seq: input.header.seq,
            id: new.id,
            subject,
            kind,
            from,
            severity,
        })?;
        // A key transition or revocation is about a key, not an incident.
        if kind.is_about_incident() {
            self.fold_in(subject, input)?;
        }
        Ok(Inserted::Stored {
            subject,
            kind,
            severity,
        })
    }

    fn insert_tombstone(
        &mut self,
        id: EnvelopeId,
        tomb: Tombstone,
        from: Option<Fingerprint>,
    ) -> Result<Inserted, StoreError> {
        let header = &tomb.header;
        match self.slot(&header.author, header.seq, &id)? {
            Slot::Same => return Ok(Inserted::Duplicate),
            Slot::Other(held) => return Ok(Inserted::Equivocation { held }),
            Slot::Free => {}
        }
        // The id is proven by the author's retraction (checked by the
        // caller); the author's next envelope links to it through `prev`.
        let held = self.tip(&header.author).map_or(0, |t| t.seq);
        if header.seq != held + 1 {
            return Err(cer_proto::envelope::ChainError::SeqMismatch {
                expected_prev_seq: held,
                got: header.seq,
            }
            .into());
        }
        let mut record = vec![keys::TOMB];
        record.extend(serde_json::to_vec(&tomb).map_err(json_err)?);
        self.put(keys::envelope(&id), record);
        let (author, seq) = (header.author.clone(), header.seq);
        self.put(keys::chain(&author, seq), id.as_bytes().to_vec());
        self.set_tip(&author, ChainTip { seq, id });
        self.counts.envelopes += 1;
        self.counts.tombstones += 1;
        let (subject, kind) = (tomb.header.subject, tomb.header.kind);
        self.event(Change::Stored {
            author,
            seq,
            id,
            subject,
            kind,
            from,
            severity: None,
        })?;
        if kind.is_about_incident() {
            self.fold_in(subject, tombstone_input(id, tomb))?;
        }
        Ok(Inserted::Stored {
            subject,
            kind,
            severity: None,
        })
    }

    fn publish(&mut self, publish: Publish) -> Result<Published, StoreError> {
        if let Some(request) = publish.request {
            if let Some(v) = self.get(&keys::request(request))? {
                return Ok(Published {
                    filed: decode_json(&v, "request")?,
                    repeated: true,
                });
            }
        }
        let tip = self.tip(&publish.author);
        let draft = Draft {
            author: publish.author,
            seq: tip.map_or(1, |t| t.seq + 1),
            prev: tip.map(|t| t.id),
            created: publish.created,
            subject: publish.subject,
            tlp: publish.tlp,
            recipients: publish.recipients,
            body: publish.body,
            withdraws: publish.withdraws,
        };
        let bytes = draft.to_bytes()?;
        let sig = (publish.sign)(&bytes);
        let id = EnvelopeId::of(&bytes);
        let envelope = Envelope::parse(&bytes)?;
        let (seq, kind, subject) = (envelope.seq, envelope.kind, envelope.subject);
        let inserted = self.insert_live(
            NewEnvelope {
                id,
                bytes,
                sig,
                envelope,
                body: publish.readable,
            },
            None,
        )?;
        if !matches!(inserted, Inserted::Stored { .. }) {
            return Err(corrupt(
                "chain",
                &format!("own envelope seq {seq} was not stored: {inserted:?}"),
            ));
        }
        let filed = Filed {
            incident: subject,
            envelope: id,
            seq,
            kind,
            warnings: Vec::new(),
            repeated: false,
        };
        if let Some(request) = publish.request {
            let json = serde_json::to_vec(&filed).map_err(json_err)?;
            self.put(keys::request(request), json);
        }
        Ok(Published {
            filed,
            repeated: false,
        })
    }

    /// The incident as this batch sees it, taken out of the batch's map
    /// while it is worked on.
    fn take_open(&mut self, subject: Uuid) -> Result<Open, StoreError> {
        if let Some(open) = self.incidents.remove(&subject) {
            return Ok(open);
        }
        let stored = match self.db.get(keys::incident(subject))? {
            Some(v) => Some(decode_head(&v)?),
            None => None,
        };
        let count = stored.as_ref().map_or(0, |h| h.indicators as usize);
        Ok(Open {
            head: stored.clone(),
            stored,
            table: Table::open(self.db, subject, count),
        })
    }

    /// Folds one new envelope into its incident: applied on its own when
    /// it cannot change what came before, otherwise by a whole refold.
    fn fold_in(&mut self, subject: Uuid, input: FoldInput) -> Result<(), StoreError> {
        let mut open = self.take_open(subject)?;
        let applied = match &mut open.head {
            Some(head) => head.state.apply_next(&input, &mut open.table),
            None => false,
        };
        if applied {
            self.incidents.insert(subject, open);
            return Ok(());
        }
        let result = self.refold(subject, &mut open, Some(input));
        self.incidents.insert(subject, open);
        result
    }

    /// Recomputes an incident from every envelope held about it, drops the
    /// bodies its author's retractions withdraw, and replaces its
    /// indicators.
    fn refold(
        &mut self,
        subject: Uuid,
        open: &mut Open,
        new: Option<FoldInput>,
    ) -> Result<(), StoreError> {
        let mut ids: Vec<EnvelopeId> = open
            .head
            .as_ref()
            .map(|h| h.state.timeline.iter().map(|e| e.envelope).collect())
            .unwrap_or_default();
        let mut seen = HashSet::new();
        ids.retain(|id| seen.insert(*id) && new.as_ref().is_none_or(|n| n.id != *id));
        let mut records = Vec::with_capacity(ids.len() + 1);
        for id in &ids {
            let v = self
                .get(&keys::envelope(id))?
                .ok_or_else(|| corrupt("incident record", "names an envelope not held"))?;
            records.push((*id, decode_record(&v)?));
        }
        let mut inputs = Vec::with_capacity(records.len() + 1);
        for (id, record) in &records {
            inputs.push(self.fold_input(*id, record)?);
        }
        let new_id = new.as_ref().map(|n| n.id);
        inputs.extend(new);
        let Some(mut state) = IncidentState::fold(subject, &inputs) else {
            return Ok(());
        };
        if state.timeline.iter().any(|e| e.event == Event::Withdrawn) {
            // Only now is the new envelope's record needed (a retraction's
            // proof, or what it withdraws).
            if let Some(id) = new_id {
                let v = self
                    .get(&keys::envelope(&id))?
                    .ok_or_else(|| corrupt("envelope", "just written, not found"))?;
                records.push((id, decode_record(&v)?));
            }
            self.withdraw(&state, &records)?;
        }
        if state.retracted.is_some() {
            // Nothing of a retracted incident's content stays readable.
            state.content = None;
            state.indicators.clear();
        }
        open.table.replace(std::mem::take(&mut state.indicators))?;
        open.head = Some(Head {
            indicators: open.table.len() as u32,
            state,
            added: open.stored.as_ref().and_then(|s| s.added),
        });
        Ok(())
    }

    /// Turns into tombstones the envelopes the fold says are withdrawn,
    /// where their author's own signed retraction names them: only such a
    /// tombstone can be proven to peers. Other authors' envelopes about a
    /// retracted incident stay whole (the fold hides them).
    fn withdraw(
        &mut self,
        state: &IncidentState,
        records: &[(EnvelopeId, StoredEnvelope)],
    ) -> Result<(), StoreError> {
        let withdrawn: HashSet<EnvelopeId> = state
            .timeline
            .iter()
            .filter(|e| e.event == Event::Withdrawn)
            .map(|e| e.envelope)
            .collect();
        if withdrawn.is_empty() {
            return Ok(());
        }
        let mut retractions = Vec::new();
        for (id, record) in records {
            if let StoredEnvelope::Live { bytes, sig } = record {
                let envelope = parse_stored(bytes)?;
                if envelope.kind == Kind::Retraction && !envelope.withdraws.is_empty() {
                    retractions.push((*id, envelope, bytes, sig));
                }
            }
        }
        for (id, record) in records {
            let StoredEnvelope::Live { bytes, .. } = record else {
                continue;
            };
            if !withdrawn.contains(id) {
                continue;
            }
            let envelope = parse_stored(bytes)?;
            let proof = retractions.iter().find_map(|(_, r, bytes, sig)| {
                let withdrawal = r.withdrawal(envelope.seq)?;
                (r.author == envelope.author && withdrawal.id == *id)
                    .then(|| Tombstone::proven(r, withdrawal, (*bytes).clone(), (*sig).clone()))
            });
            let Some(tomb) = proof else {
                continue;
            };
            let mut record = vec![keys::TOMB];
            record.extend(serde_json::to_vec(&tomb).map_err(json_err)?);
            self.put(keys::envelope(id), record);
            self.remove(keys::decrypted(id));
            self.counts.tombstones += 1;
        }
        Ok(())
    }

    fn fold_input(&self, id: EnvelopeId, record: &StoredEnvelope) -> Result<FoldInput, StoreError> {
        match record {
            StoredEnvelope::Live { bytes, .. } => {
                let envelope = parse_stored(bytes)?;
                let body = match envelope.plain_body() {
                    Some(body) => Some(body.map_err(|e| corrupt("envelope body", &e.to_string()))?),
                    None => match self.get(&keys::decrypted(&id))? {
                        Some(plain) => Some(
                            Body::from_slice(envelope.kind, &plain)
                                .map_err(|e| corrupt("decrypted body", &e.to_string()))?,
                        ),
                        None => None,
                    },
                };
                Ok(FoldInput::new(id, &envelope, body))
            }
            StoredEnvelope::Tombstone(t) => Ok(tombstone_input(id, t.clone())),
        }
    }

    /// Writes what the batch changed, as one sled batch, and flushes.
    /// Applies the batch, then flushes. The counts readers see change
    /// with the data: `counts` is locked while the batch is applied.
    fn commit(mut self, shown: &Mutex<Counts>) -> Result<Done, StoreError> {
        let incidents = std::mem::take(&mut self.incidents);
        // Every incident the batch touched arrives now, after everything
        // before it, even when the clock stepped back.
        let added = if incidents.is_empty() {
            self.last_added
        } else {
            next_arrival(crate::audit::now(), self.last_added)
        };
        self.last_added = added;
        for (subject, open) in incidents {
            let Some(head) = &open.head else { continue };
            match &open.stored {
                None => self.counts.incidents += 1,
                Some(stored) if stored.state.updated == head.state.updated => {}
                Some(stored) => self.remove(keys::order(stored.state.updated, subject)),
            }
            if let Some(at) = open.stored.as_ref().and_then(|s| s.added) {
                self.remove(keys::added(at, subject));
            }
            self.put(keys::order(head.state.updated, subject), Vec::new());
            self.put(keys::added(added, subject), Vec::new());
            let mut head = head.clone();
            head.indicators = open.table.len() as u32;
            head.added = Some(added);
            self.put(keys::incident(subject), encode_head(&head)?);
            let mut writes = Vec::new();
            let delta = open.table.commit(&mut |k, v| writes.push((k, v)))?;
            for (k, v) in writes {
                self.writes.insert(k, v);
            }
            self.counts.indicators = self.counts.indicators.saturating_add_signed(delta);
        }
        for (author, tip) in &self.tips {
            self.writes
                .insert(keys::tip(author), Some(keys::encode_tip(tip.seq, &tip.id)));
        }
        let counts = serde_json::to_vec(&self.counts).map_err(json_err)?;
        self.put(keys::meta("counts"), counts);
        let mut batch = sled::Batch::default();
        for (k, v) in std::mem::take(&mut self.writes) {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        {
            let mut shown = shown.lock().unwrap_or_else(|e| e.into_inner());
            self.db.apply_batch(batch)?;
            *shown = self.counts;
        }
        self.db.flush()?;
        Ok(Done {
            tips: self.tips,
            counts: self.counts,
            next_event: self.next_event,
            events: self.events,
            last_added: self.last_added,
        })
    }
}

/// A batch's arrival time: now to the microsecond, and always at least a
/// microsecond after the last one.
fn next_arrival(now: Timestamp, last: Timestamp) -> Timestamp {
    const MICRO: i128 = 1_000;
    let now = now.unix_nanos() / MICRO * MICRO;
    Timestamp::from_unix_nanos(now.max(last.unix_nanos() + MICRO))
}

enum Slot {
    Free,
    Same,
    Other(EnvelopeId),
}

fn parse_stored(bytes: &[u8]) -> Result<Envelope, StoreError> {
    Envelope::parse(bytes).map_err(|e| corrupt("stored envelope", &e.to_string()))
}

fn tombstone_input(id: EnvelopeId, t: Tombstone) -> FoldInput {
    FoldInput {
        id,
        header: t.header,
        body: None,
    }
}
