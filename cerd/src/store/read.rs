//! Reading the store: chains, envelopes, incidents, the indicator index,
//! the event log, local records. Every method reads sled directly and may
//! wait on it: call them from blocking threads, never a runtime worker.

use cer_proto::api::{Annotation, Filed, IncidentSummary, RunRecord};
use cer_proto::envelope::ChainTip;
use cer_proto::incident::IncidentState;
use cer_proto::model::{IndicatorType, Timestamp};
use cer_proto::{EnvelopeId, Fingerprint};
use uuid::Uuid;

use super::{
    corrupt, decode_head, decode_json, decode_record, decode_summary, index, keys, split_head,
    Counts, IndicatorHit, Page, Store, StoreError, StoredEnvelope, SummaryFilter,
};

impl Store {
    /// The highest contiguous envelope held of `author`.
    pub fn chain_tip(&self, author: &Fingerprint) -> Result<Option<ChainTip>, StoreError> {
        match self.shared.db.get(keys::tip(author))? {
            None => Ok(None),
            Some(v) => {
                let (seq, id) = keys::decode_tip(&v)?;
                Ok(Some(ChainTip { seq, id }))
            }
        }
    }

    /// Every author's chain tip, for summaries.
    pub fn chain_tips(&self) -> Result<Vec<(Fingerprint, ChainTip)>, StoreError> {
        let mut out = Vec::new();
        for item in self.shared.db.scan_prefix([keys::TIP]) {
            let (k, v) = item?;
            let (seq, id) = keys::decode_tip(&v)?;
            out.push((keys::fingerprint_from(&k[1..])?, ChainTip { seq, id }));
        }
        Ok(out)
    }

    /// `author`'s envelopes `from..=to` held in its chain, in seq order.
    pub fn chain_range(
        &self,
        author: &Fingerprint,
        from: u64,
        to: u64,
    ) -> Result<Vec<(EnvelopeId, StoredEnvelope)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .shared
            .db
            .range(keys::chain(author, from)..=keys::chain(author, to))
        {
            let (_, v) = item?;
            let id = keys::id_from(&v)?;
            if let Some(stored) = self.envelope(&id)? {
                out.push((id, stored));
            }
        }
        Ok(out)
    }

    pub fn envelope(&self, id: &EnvelopeId) -> Result<Option<StoredEnvelope>, StoreError> {
        match self.shared.db.get(keys::envelope(id))? {
            None => Ok(None),
            Some(v) => decode_record(&v).map(Some),
        }
    }

    /// Every envelope held, with its id, in no particular order, read as
    /// the iterator goes.
    pub fn envelopes(
        &self,
    ) -> impl Iterator<Item = Result<(EnvelopeId, StoredEnvelope), StoreError>> + '_ {
        self.shared.db.scan_prefix([keys::ENVELOPE]).map(|item| {
            let (k, v) = item?;
            Ok((keys::id_from(&k[1..])?, decode_record(&v)?))
        })
    }

    /// Every envelope id held, in no particular order.
    pub fn envelope_ids(&self) -> impl Iterator<Item = Result<EnvelopeId, StoreError>> + '_ {
        self.shared
            .db
            .scan_prefix([keys::ENVELOPE])
            .keys()
            .map(|k| keys::id_from(&k?[1..]))
    }

    /// An incident's folded state without its indicators: one record,
    /// whatever the incident's size.
    pub fn incident_head(&self, id: Uuid) -> Result<Option<IncidentState>, StoreError> {
        match self.shared.db.get(keys::incident(id))? {
            None => Ok(None),
            Some(v) => Ok(Some(decode_head(&v)?.state)),
        }
    }

    /// An incident's folded state, with its indicators.
    pub fn incident(&self, id: Uuid) -> Result<Option<IncidentState>, StoreError> {
        let Some(v) = self.shared.db.get(keys::incident(id))? else {
            return Ok(None);
        };
        let mut state = decode_head(&v)?.state;
        let mut indicators = Vec::new();
        for item in self.shared.db.scan_prefix(&keys::chunk(id, 0)[..17]) {
            let (_, v) = item?;
            indicators.extend(keys::decode_chunk(&v)?);
        }
        state.indicators = indicators;
        Ok(Some(state))
    }

    pub fn summary(&self, id: Uuid) -> Result<Option<IncidentSummary>, StoreError> {
        match self.shared.db.get(keys::incident(id))? {
            None => Ok(None),
            Some(v) => decode_summary(&v).map(Some),
        }
    }

    /// Every envelope held about an incident, with its id, in fold order.
    pub fn envelopes_of(
        &self,
        subject: Uuid,
    ) -> Result<Vec<(EnvelopeId, StoredEnvelope)>, StoreError> {
        let Some(v) = self.shared.db.get(keys::incident(subject))? else {
            return Ok(Vec::new());
        };
        let head = decode_head(&v)?;
        let mut out = Vec::new();
        for entry in &head.state.timeline {
            if let Some(stored) = self.envelope(&entry.envelope)? {
                out.push((entry.envelope, stored));
            }
        }
        Ok(out)
    }

    /// Incidents in their order of arrival here (each placed by the last
    /// envelope this node stored about it), strictly after `after` (an
    /// arrival time and incident), with their arrival times; at most
    /// `limit`. Returns whether more follow. New arrivals always go to
    /// the end, so a reader paging with the last place it saw misses
    /// nothing and sees nothing twice unless it changed.
    pub fn arrivals(
        &self,
        after: Option<(Timestamp, Uuid)>,
        limit: usize,
    ) -> Result<(Vec<(Timestamp, IncidentSummary)>, bool), StoreError> {
        let start = match after {
            // The byte after the key itself: strictly after it.
            Some((at, id)) => {
                let mut key = keys::added(at, id);
                key.push(0);
                key
            }
            None => vec![keys::ADDED],
        };
        let mut out = Vec::new();
        for item in self.shared.db.range(start..vec![keys::ADDED + 1]) {
            let (k, _) = item?;
            let at = keys::time_from(&k[1..])?;
            let Some(record) = self.shared.db.get(keys::incident(keys::uuid_at(&k, 17)?))? else {
                continue;
            };
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push((at, decode_summary(&record)?));
        }
        Ok((out, false))
    }

    /// The incident's summary if it is still at that place in the order
    /// of arrival (no envelope about it was stored since).
    pub fn arrived_at(
        &self,
        at: Timestamp,
        id: Uuid,
    ) -> Result<Option<IncidentSummary>, StoreError> {
        if !self.shared.db.contains_key(keys::added(at, id))? {
            return Ok(None);
        }
        match self.shared.db.get(keys::incident(id))? {
            Some(record) => Ok(Some(decode_summary(&record)?)),
            None => Ok(None),
        }
    }

    /// Incident summaries, most recently updated first, that pass
    /// `filter` (and whose title or description holds every one of its
    /// words); at most `limit`. Returns whether more matched.
    pub fn list(
        &self,
        filter: &dyn SummaryFilter,
        page: Page,
    ) -> Result<(Vec<IncidentSummary>, bool), StoreError> {
        // The time order's keys bound the scan: only [since, until).
        let start = match filter.since() {
            Some(since) => {
                let mut key = vec![keys::ORDER];
                key.extend_from_slice(&keys::time_bytes(since));
                key
            }
            None => vec![keys::ORDER],
        };
        let end = match filter.until() {
            Some(until) => {
                let mut key = vec![keys::ORDER];
                key.extend_from_slice(&keys::time_bytes(until));
                key
            }
            None => vec![keys::ORDER + 1],
        };
        if start >= end {
            return Ok((Vec::new(), false));
        }
        let range = self.shared.db.range(start..end);
        let ordered: Box<dyn Iterator<Item = sled::Result<(sled::IVec, sled::IVec)>>> =
            if page.oldest_first {
                Box::new(range)
            } else {
                Box::new(range.rev())
            };
        let mut out = Vec::new();
        let mut skipped = 0;
        let words = filter.words();
        for item in ordered {
            let (k, _) = item?;
            let Some(record) = self.shared.db.get(keys::incident(keys::uuid_at(&k, 17)?))? else {
                continue;
            };
            // The words first: most incidents fail them, and then their
            // summary is never decoded.
            if !words.is_empty() && !has_words(&record, words)? {
                continue;
            }
            let summary = decode_summary(&record)?;
            if !filter.accept(&summary) {
                continue;
            }
            if skipped < page.offset {
                skipped += 1;
                continue;
            }
            if out.len() == page.limit {
                return Ok((out, true));
            }
            out.push(summary);
        }
        Ok((out, false))
    }

    /// Incidents naming exactly this (normalized) indicator.
    pub fn indicator_hits(
        &self,
        kind: IndicatorType,
        value: &str,
    ) -> Result<Vec<(Uuid, IndicatorHit)>, StoreError> {
        let prefix = index::prefix(kind, value);
        let mut out = Vec::new();
        for item in self.shared.db.scan_prefix(&prefix) {
            let (k, v) = item?;
            let id = keys::uuid_at(&k, prefix.len())?;
            let pos = keys::u32_from(&v, "index position")? as usize;
            let Some(chunk) = self
                .shared
                .db
                .get(keys::chunk(id, (pos / keys::CHUNK) as u32))?
            else {
                return Err(corrupt("indicator index", "names a missing chunk"));
            };
            let entry = keys::chunk_entry(&chunk, pos % keys::CHUNK)?;
            out.push((
                id,
                IndicatorHit {
                    first_seen: entry.first_seen,
                    last_seen: entry.last_seen,
                    sightings: entry.sightings,
                    reported_by: entry.reported_by,
                    valid_until: entry.valid_until,
                },
            ));
        }
        Ok(out)
    }

    /// The answer given to a client's earlier request, if any.
    pub fn request(&self, id: Uuid) -> Result<Option<Filed>, StoreError> {
        match self.shared.db.get(keys::request(id))? {
            None => Ok(None),
            Some(v) => Ok(Some(decode_json(&v, "request")?)),
        }
    }

    /// Whether a playbook run with this key was recorded.
    pub fn run_recorded(&self, key: &str) -> Result<bool, StoreError> {
        Ok(self.shared.db.contains_key(keys::run(key))?)
    }

    /// The run recorded with this key, if any (its outcome decides whether
    /// the playbook's later tags and notes apply after a restart).
    pub fn run_record(&self, key: &str) -> Result<Option<RunRecord>, StoreError> {
        match self.shared.db.get(keys::run(key))? {
            None => Ok(None),
            Some(json) => Ok(Some(decode_json(&json, "playbook run")?)),
        }
    }

    /// Recorded runs, newest first, that pass `keep`; at most `limit`.
    pub fn runs(
        &self,
        keep: &dyn Fn(&RunRecord) -> bool,
        limit: usize,
    ) -> Result<Vec<RunRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.shared.db.scan_prefix([keys::RUN_BY_TIME]).rev() {
            let (key, _) = item?;
            let Some(json) = self.shared.db.get(keys::prefixed(keys::RUN, &key[17..]))? else {
                continue;
            };
            let run: RunRecord = decode_json(&json, "playbook run")?;
            if keep(&run) {
                out.push(run);
                if out.len() == limit {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub fn annotations(&self, incident: Uuid) -> Result<Vec<Annotation>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .shared
            .db
            .scan_prefix(keys::prefixed(keys::ANNOTATION, incident.as_bytes()))
        {
            let (_, v) = item?;
            out.push(decode_json(&v, "annotation")?);
        }
        Ok(out)
    }

    pub fn counts(&self) -> Counts {
        *self.shared.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.shared.db.size_on_disk().unwrap_or(0)
    }
}

/// Whether an incident's title or description holds every word (already
/// lower-cased), compared in lower case. Reads only those two fields of
/// the stored state; an incident this node cannot read, or a retracted
/// one, has neither and never matches.
fn has_words(record: &[u8], words: &[String]) -> Result<bool, StoreError> {
    #[derive(serde::Deserialize)]
    struct Head {
        state: State,
    }
    #[derive(serde::Deserialize)]
    struct State {
        #[serde(default)]
        content: Option<Content>,
    }
    #[derive(serde::Deserialize)]
    struct Content {
        title: String,
        #[serde(default)]
        description: String,
    }
    let head: Head = decode_json(split_head(record)?.1, "incident state")?;
    let Some(content) = head.state.content else {
        return Ok(false);
    };
    let title = content.title.to_lowercase();
    let description = content.description.to_lowercase();
    Ok(words
        .iter()
        .all(|w| title.contains(w.as_str()) || description.contains(w.as_str())))
}
