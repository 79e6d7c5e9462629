//! Checking a store against its envelopes, and rebuilding it from them.
//!
//! `check` re-reads every author's chain (contiguous from 1, ids, `prev`
//! links, signatures or tombstone proofs through the caller's verifier),
//! refolds every incident from its envelopes and compares the result and
//! the indicator index (every family, both ways) with what is stored. It
//! reports every problem.
//!
//! `rebuild` writes a new store beside the old one from what verifies:
//! each chain up to its first unreadable or badly signed envelope (peers
//! send the rest again), plus the local records (requests, runs,
//! annotations, equivocation evidence, the event log and its cursors). The
//! old folder is kept beside it, renamed.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use cer_proto::envelope::{Body, Envelope};
use cer_proto::incident::{FoldInput, IncidentState};
use cer_proto::{EnvelopeId, Fingerprint};

use super::{
    decode_head, decode_record, index, keys, Incoming, NewEnvelope, Options, Store, StoreError,
    StoredEnvelope, Tombstone,
};

/// What a verifier says of one envelope or tombstone.
pub enum Verdict {
    Good,
    /// Signed by a key no longer in the trust store: kept, reported.
    Unknown(String),
    Bad(String),
}

/// Checks signatures and tombstone proofs for [`check`] and [`rebuild`]
/// (the store itself knows no OpenPGP).
pub trait Verifier {
    fn envelope(&self, bytes: &[u8], sig: &[u8]) -> Verdict;
    fn tombstone(&self, id: &EnvelopeId, tomb: &Tombstone) -> Verdict;
    /// The body of an encrypted envelope, when addressed to this node.
    fn decrypt(&self, envelope: &Envelope) -> Option<Body> {
        let _ = envelope;
        None
    }
}

#[derive(Debug, Default)]
pub struct CheckReport {
    pub envelopes: u64,
    pub tombstones: u64,
    pub authors: u64,
    pub incidents: u64,
    pub indicators: u64,
    /// Every problem found, one line each.
    pub problems: Vec<String>,
    /// Things worth knowing that are not damage.
    pub notes: Vec<String>,
}

/// One author's chain as far as it verifies.
struct Chain {
    author: Fingerprint,
    /// (id, record, parsed envelope for live ones) for seq 1, 2, …
    good: Vec<(EnvelopeId, StoredEnvelope)>,
}

/// Reads every chain, stopping each at its first problem.
fn read_chains(
    db: &sled::Db,
    verifier: &dyn Verifier,
    report: &mut CheckReport,
) -> Result<Vec<Chain>, StoreError> {
    let mut chains: BTreeMap<Fingerprint, Vec<(u64, EnvelopeId)>> = BTreeMap::new();
    for item in db.scan_prefix([keys::CHAIN]) {
        let (k, v) = match item {
            Ok(kv) => kv,
            Err(e) => {
                report.problems.push(format!("chain index unreadable: {e}"));
                break;
            }
        };
        if k.len() != 29 {
            report.problems.push("chain key of the wrong length".into());
            continue;
        }
        let author = keys::fingerprint_from(&k[1..21])?;
        let seq = keys::u64_from(&k[21..], "chain key")?;
        match keys::id_from(&v) {
            Ok(id) => chains.entry(author).or_default().push((seq, id)),
            Err(e) => report.problems.push(format!("{author} seq {seq}: {e}")),
        }
    }
    let mut out = Vec::new();
    for (author, links) in chains {
        let mut good = Vec::new();
        let mut prev: Option<EnvelopeId> = None;
        for (n, (seq, id)) in links.into_iter().enumerate() {
            let at = format!("{} seq {seq}", author.short());
            if seq != n as u64 + 1 {
                report.problems.push(format!(
                    "{at}: chain has a gap before it (expected seq {})",
                    n + 1
                ));
                break;
            }
            let record = match db.get(keys::envelope(&id)) {
                Ok(Some(v)) => match decode_record(&v) {
                    Ok(record) => record,
                    Err(e) => {
                        report.problems.push(format!("{at}: {e}"));
                        break;
                    }
                },
                Ok(None) => {
                    report
                        .problems
                        .push(format!("{at}: envelope {id} is in the chain but not held"));
                    break;
                }
                Err(e) => {
                    report.problems.push(format!("{at}: unreadable: {e}"));
                    break;
                }
            };
            let problem = match &record {
                StoredEnvelope::Live { bytes, sig } => check_live(
                    &author,
                    seq,
                    &id,
                    prev.as_ref(),
                    bytes,
                    sig,
                    verifier,
                    report,
                ),
                StoredEnvelope::Tombstone(tomb) => {
                    if tomb.header.author != author || tomb.header.seq != seq {
                        Some("tombstone names another place in the chains".into())
                    } else {
                        match verifier.tombstone(&id, tomb) {
                            Verdict::Good => None,
                            Verdict::Unknown(why) => {
                                report.notes.push(format!("{at}: {why}"));
                                None
                            }
                            Verdict::Bad(why) => Some(why),
                        }
                    }
                }
            };
            if let Some(problem) = problem {
                report.problems.push(format!("{at}: {problem}"));
                break;
            }
            match &record {
                StoredEnvelope::Tombstone(_) => report.tombstones += 1,
                StoredEnvelope::Live { .. } => {}
            }
            report.envelopes += 1;
            prev = Some(id);
            good.push((id, record));
        }
        out.push(Chain { author, good });
    }
    report.authors = out.len() as u64;
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn check_live(
    author: &Fingerprint,
    seq: u64,
    id: &EnvelopeId,
    prev: Option<&EnvelopeId>,
    bytes: &[u8],
    sig: &[u8],
    verifier: &dyn Verifier,
    report: &mut CheckReport,
) -> Option<String> {
    if EnvelopeId::of(bytes) != *id {
        return Some(format!("bytes held under {id} hash to another id"));
    }
    let envelope = match Envelope::parse(bytes) {
        Ok(envelope) => envelope,
        Err(e) => return Some(e.to_string()),
    };
    if envelope.author != *author || envelope.seq != seq {
        return Some("envelope says another author or seq than its place".into());
    }
    if seq > 1 && envelope.prev.as_ref() != prev {
        return Some("prev does not name the author's previous envelope".into());
    }
    match verifier.envelope(bytes, sig) {
        Verdict::Good => None,
        Verdict::Unknown(why) => {
            report
                .notes
                .push(format!("{} seq {seq}: {why}", author.short()));
            None
        }
        Verdict::Bad(why) => Some(why),
    }
}

/// Checks a store that no process has open. Every problem is reported.
pub fn check(path: &Path, verifier: &dyn Verifier) -> Result<CheckReport, StoreError> {
    let store = Store::open(path, Options::default())?;
    let db = store.shared.db.clone();
    let mut report = CheckReport::default();
    let chains = read_chains(&db, verifier, &mut report)?;

    // Tips name the end of each chain.
    for chain in &chains {
        let held = store.chain_tip(&chain.author)?;
        let last = chain
            .good
            .last()
            .map(|(id, _)| (chain.good.len() as u64, *id));
        if held.map(|t| (t.seq, t.id)) != last {
            report.problems.push(format!(
                "{}: chain tip record does not match the chain",
                chain.author.short()
            ));
        }
    }

    // Every incident, refolded from its envelopes, matches what is stored.
    let mut by_subject: BTreeMap<uuid::Uuid, Vec<FoldInput>> = BTreeMap::new();
    for chain in &chains {
        for (id, record) in &chain.good {
            let (subject, input) = fold_input(&db, *id, record)?;
            if !input.header.kind.is_about_incident() {
                continue;
            }
            by_subject.entry(subject).or_default().push(input);
        }
    }
    let mut seen = HashSet::new();
    for item in db.scan_prefix([keys::INCIDENT]) {
        let (k, v) = item?;
        let subject = keys::uuid_at(&k, 1)?;
        seen.insert(subject);
        let Ok(head) = decode_head(&v) else {
            report
                .problems
                .push(format!("incident {subject}: record unreadable"));
            continue;
        };
        report.incidents += 1;
        let Some(inputs) = by_subject.get(&subject) else {
            report
                .problems
                .push(format!("incident {subject}: no envelope about it is held"));
            continue;
        };
        let Some(mut expected) = IncidentState::fold(subject, inputs) else {
            continue;
        };
        if expected.retracted.is_some() {
            expected.content = None;
            expected.indicators.clear();
        }
        let stored = store.incident(subject);
        match stored {
            Ok(Some(mut stored)) => {
                report.indicators += stored.indicators.len() as u64;
                check_index_keys(&db, subject, &stored.indicators, &mut report)?;
                let indicators_match = stored.indicators == expected.indicators;
                stored.indicators.clear();
                expected.indicators.clear();
                if stored != expected {
                    report.problems.push(format!(
                        "incident {subject}: stored state differs from its envelopes"
                    ));
                } else if !indicators_match {
                    report.problems.push(format!(
                        "incident {subject}: stored indicators differ from its envelopes"
                    ));
                }
                if head.indicators as usize
                    != store.incident(subject)?.map_or(0, |s| s.indicators.len())
                {
                    report
                        .problems
                        .push(format!("incident {subject}: indicator count is wrong"));
                }
            }
            Ok(None) => {}
            Err(e) => report.problems.push(format!("incident {subject}: {e}")),
        }
        if !db.contains_key(keys::order(head.state.updated, subject))? {
            report
                .problems
                .push(format!("incident {subject}: missing from the time order"));
        }
        if !head
            .added
            .is_some_and(|at| db.contains_key(keys::added(at, subject)).unwrap_or(false))
        {
            report.problems.push(format!(
                "incident {subject}: missing from the order of arrival"
            ));
        }
    }
    for subject in by_subject.keys() {
        if !seen.contains(subject) {
            report.problems.push(format!(
                "incident {subject}: envelopes held, but no incident record"
            ));
        }
    }

    check_index_entries(&db, &mut report)?;
    let counts = store.counts();
    if counts.envelopes != report.envelopes || counts.incidents != report.incidents {
        report.notes.push(format!(
            "saved counts ({} envelopes, {} incidents) differ from what was found",
            counts.envelopes, counts.incidents
        ));
    }
    drop(store);
    Ok(report)
}

/// Every indicator of an incident has its index key, naming its position.
fn check_index_keys(
    db: &sled::Db,
    subject: uuid::Uuid,
    indicators: &[cer_proto::incident::IndicatorEntry],
    report: &mut CheckReport,
) -> Result<(), StoreError> {
    for (pos, entry) in indicators.iter().enumerate() {
        let key = index::key(entry.kind, &entry.value, subject);
        if db.get(&key)?.as_deref() != Some(&(pos as u32).to_be_bytes()[..]) {
            report.problems.push(format!(
                "incident {subject}: {}:{} is missing from the indicator index",
                entry.kind, entry.value
            ));
        }
    }
    Ok(())
}

/// Every index key, in every family, names an entry whose key it is.
fn check_index_entries(db: &sled::Db, report: &mut CheckReport) -> Result<(), StoreError> {
    for family in index::FAMILIES {
        for item in db.scan_prefix([family]) {
            let (k, v) = item?;
            let Ok(subject) = index::incident_of(&k) else {
                report.problems.push("a malformed index key".into());
                continue;
            };
            let entry = keys::u32_from(&v, "index position").ok().and_then(|pos| {
                let chunk = db
                    .get(keys::chunk(subject, pos / keys::CHUNK as u32))
                    .ok()
                    .flatten()?;
                keys::chunk_entry(&chunk, pos as usize % keys::CHUNK).ok()
            });
            if entry.is_none_or(|e| index::key(e.kind, &e.value, subject) != k[..]) {
                report.problems.push(format!(
                    "index entry {} of incident {subject} names no such indicator",
                    index::describe(&k)
                ));
            }
        }
    }
    Ok(())
}

fn fold_input(
    db: &sled::Db,
    id: EnvelopeId,
    record: &StoredEnvelope,
) -> Result<(uuid::Uuid, FoldInput), StoreError> {
    match record {
        StoredEnvelope::Live { bytes, .. } => {
            let envelope =
                Envelope::parse(bytes).map_err(|e| super::corrupt("envelope", &e.to_string()))?;
            let body = match envelope.plain_body() {
                Some(body) => body.ok(),
                None => db
                    .get(keys::decrypted(&id))?
                    .and_then(|plain| Body::from_slice(envelope.kind, &plain).ok()),
            };
            Ok((envelope.subject, FoldInput::new(id, &envelope, body)))
        }
        StoredEnvelope::Tombstone(t) => Ok((
            t.header.subject,
            FoldInput {
                id,
                header: t.header.clone(),
                body: None,
            },
        )),
    }
}

/// What [`rebuild`] did.
#[derive(Debug, Default)]
pub struct Rebuilt {
    pub report: CheckReport,
    /// Where the old store was moved.
    pub old: PathBuf,
    pub kept_envelopes: u64,
}

/// Rebuilds the store at `path` from the envelopes that verify, keeping
/// the old folder beside it as `<path>.damaged-<unix time>`. When sled
/// cannot open the folder at all, the envelopes are carved from its raw
/// files instead (local records are then lost, and said so).
pub fn rebuild(path: &Path, verifier: &dyn Verifier) -> Result<Rebuilt, StoreError> {
    let mut report = CheckReport::default();
    let fresh = path.with_extension("rebuild");
    if fresh.exists() {
        std::fs::remove_dir_all(&fresh).map_err(|source| StoreError::Files {
            what: "removing the unfinished rebuild",
            path: fresh.clone(),
            source,
        })?;
    }
    let (chains, old) = match super::open_db(path, Options::default()) {
        Ok(db) => (read_chains(&db, verifier, &mut report)?, Some(db)),
        Err(StoreError::Damaged { .. }) => {
            report.notes.push(
                "sled cannot read this store: its envelopes were recovered from the raw files; \
                 playbook run history, annotations and the event log could not be"
                    .into(),
            );
            (carved_chains(path, verifier, &mut report), None)
        }
        Err(e) => return Err(e),
    };
    let kept = build(&fresh, &chains, old.as_ref(), verifier)?;
    drop(old);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = PathBuf::from(format!("{}.damaged-{stamp}", path.display()));
    let mut n = 1;
    while aside.exists() {
        n += 1;
        aside = PathBuf::from(format!("{}.damaged-{stamp}-{n}", path.display()));
    }
    std::fs::rename(path, &aside).map_err(|source| StoreError::Files {
        what: "moving the damaged store aside to",
        path: aside.clone(),
        source,
    })?;
    std::fs::rename(&fresh, path).map_err(|source| StoreError::Files {
        what: "putting the rebuilt store in place of",
        path: path.to_owned(),
        source,
    })?;
    Ok(Rebuilt {
        report,
        old: aside,
        kept_envelopes: kept,
    })
}

/// Local records and the event log carry over as they were.
/// Rebuilds a store at `target` (which must not hold one) from a backup
/// read into `old` ([`super::backup::load`]): the envelopes that verify,
/// with the local records and event log the backup holds.
pub fn rebuild_from(
    old: &sled::Db,
    target: &Path,
    verifier: &dyn Verifier,
) -> Result<Rebuilt, StoreError> {
    let mut report = CheckReport::default();
    let chains = read_chains(old, verifier, &mut report)?;
    let kept_envelopes = build(target, &chains, Some(old), verifier)?;
    Ok(Rebuilt {
        report,
        old: PathBuf::new(),
        kept_envelopes,
    })
}

/// Writes `chains` into a new store at `fresh`, with `old`'s local
/// records; returns how many envelopes it holds.
fn build(
    fresh: &Path,
    chains: &[Chain],
    old: Option<&sled::Db>,
    verifier: &dyn Verifier,
) -> Result<u64, StoreError> {
    let kept = chains.iter().map(|c| c.good.len() as u64).sum();
    let new = Store::open(fresh, Options::default())?;
    for chain in chains {
        let mut items = Vec::new();
        for (id, record) in &chain.good {
            items.push(match record {
                StoredEnvelope::Live { bytes, sig } => {
                    let envelope = Envelope::parse(bytes)
                        .map_err(|e| super::corrupt("envelope", &e.to_string()))?;
                    let kept_body = match (old, envelope.plain_body()) {
                        (_, Some(body)) => body.ok(),
                        (Some(old), None) => old
                            .get(keys::decrypted(id))?
                            .and_then(|plain| Body::from_slice(envelope.kind, &plain).ok()),
                        (None, None) => None,
                    };
                    let body = kept_body.or_else(|| verifier.decrypt(&envelope));
                    Incoming::Live(Box::new(NewEnvelope {
                        id: *id,
                        bytes: bytes.clone(),
                        sig: sig.clone(),
                        envelope,
                        body,
                    }))
                }
                StoredEnvelope::Tombstone(t) => Incoming::Tombstone(*id, t.clone()),
            });
            if items.len() == 256 {
                new.restore_blocking(std::mem::take(&mut items))?;
            }
        }
        new.restore_blocking(items)?;
    }
    if let Some(old) = old {
        copy_local_records(old, &new)?;
    }
    new.close()?;
    Ok(kept)
}

fn copy_local_records(old: &sled::Db, new: &Store) -> Result<(), StoreError> {
    let mut batch = sled::Batch::default();
    for prefix in [
        keys::REQUEST,
        keys::RUN,
        keys::RUN_BY_TIME,
        keys::ANNOTATION,
        keys::PLAYBOOK,
        keys::EQUIVOCATION,
        keys::EVENT,
    ] {
        for (k, v) in old.scan_prefix([prefix]).flatten() {
            batch.insert(k, v);
        }
    }
    for (k, v) in old.scan_prefix(keys::meta("cursor:")).flatten() {
        batch.insert(k, v);
    }
    let equivocations = old.scan_prefix([keys::EQUIVOCATION]).count() as u64;
    new.shared.db.apply_batch(batch)?;
    let mut counts = new.counts();
    counts.equivocations = equivocations;
    new.shared.db.insert(
        keys::meta("counts"),
        serde_json::to_vec(&counts).map_err(super::json_err)?,
    )?;
    Ok(())
}

/// Chains from carved envelopes: each contiguous from seq 1.
fn carved_chains(path: &Path, verifier: &dyn Verifier, report: &mut CheckReport) -> Vec<Chain> {
    let mut out = Vec::new();
    for (author, mut found) in super::carve::carve(path, verifier) {
        let mut good = Vec::new();
        let mut seq = 1;
        while let Some(record) = found.remove(&seq) {
            if matches!(record.1, StoredEnvelope::Tombstone(_)) {
                report.tombstones += 1;
            }
            good.push(record);
            seq += 1;
        }
        if let Some(next) = found.keys().next() {
            report.problems.push(format!(
                "{}: seq {seq} was not recovered; seq {next} and after wait for peers",
                author.short()
            ));
        }
        report.envelopes += good.len() as u64;
        out.push(Chain { author, good });
    }
    report.authors = out.len() as u64;
    out
}
