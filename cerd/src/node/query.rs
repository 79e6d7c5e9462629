//! Queries: listings, details, indicator search, export and playbook
//! tests. Each reads the store: call them from blocking threads.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use cer_proto::api::{
    CertRef, EnvelopeInfo, ExportQuery, ExportedEnvelope, IncidentDetail, IncidentList,
    IncidentQuery, IncidentSummary, IocMatch, IocQuery, IocSearch, SignatureState,
    DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT,
};
use cer_proto::envelope::Envelope;
use cer_proto::model::Timestamp;
use cer_proto::{EnvelopeId, FieldError, FieldErrors, Fingerprint};
use uuid::Uuid;

use super::{Node, NodeError};
use crate::store::{Page, StoredEnvelope, SummaryFilter};

impl Node {
    /// What `playbook` would run for an incident, without running it, and
    /// the planned actions (for `--run`). Blocking.
    pub fn test_playbook(
        &self,
        request: &cer_proto::api::TestPlaybook,
    ) -> Result<
        (
            cer_proto::api::PlaybookTest,
            Vec<crate::playbook::PlannedAction>,
        ),
        NodeError,
    > {
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
        let expiry = self.expiry();
        let lists = self.warninglists();
        let listed = |kind, value: &str| !lists.matches(kind, value).is_empty();
        let trigger = plan::Trigger {
            event,
            incident: Some(&state),
            peer: None,
            own: self.fingerprint(),
            names: &names,
            // A test run is keyed apart from real ones, and each run apart.
            version: format!("test-{}", crate::audit::now().unix_nanos()),
            acted: &[],
            acted_runs: &[],
            paused: None,
            expiry: Some(&expiry),
            warninglisted: Some(&listed),
        };
        let (actions, skipped) = match plan::plan_one(&playbook, &trigger) {
            Ok(actions) => (actions, None),
            Err(skip) => (Vec::new(), Some(skip.to_string())),
        };
        let test = cer_proto::api::PlaybookTest {
            playbook: playbook.name,
            event: event.as_str().to_owned(),
            would_run: actions.iter().map(would_run).collect(),
            skipped,
            ran: Vec::new(),
        };
        Ok((test, actions))
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
        if let (Some(since), Some(until)) = (query.since, query.until) {
            if until <= since {
                return Err(FieldError::new("until", "must be later than since").into());
            }
        }
        let words = match &query.text {
            Some(text) => text_words(text)?,
            None => Vec::new(),
        };
        let filter = ListFilter { query, from, words };
        let page = Page {
            offset: query.offset.unwrap_or(0),
            limit,
            oldest_first: query.oldest_first,
        };
        let (mut incidents, truncated) = self.store.list(&filter, page)?;
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
                        header: envelope.header(),
                        signature: SignatureState::Good,
                        bytes: bytes.len(),
                    }
                }
                StoredEnvelope::Tombstone(t) => EnvelopeInfo {
                    id: eid,
                    header: t.header,
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
            names: self.trust.names(),
            local: self.store.annotations(id)?,
        })
    }

    pub fn search_ioc(&self, query: &IocQuery) -> Result<IocSearch, NodeError> {
        let findings = self.find_indicators(query)?;
        let mut summaries = HashMap::new();
        let mut matches = Vec::with_capacity(findings.found.len());
        for found in findings.found {
            let summary = match summaries.entry(found.incident) {
                Entry::Occupied(held) => held.into_mut(),
                Entry::Vacant(slot) => slot.insert(self.store.summary(found.incident)?),
            };
            let Some(summary) = summary else {
                continue;
            };
            let hit = found.hit;
            matches.push(IocMatch {
                kind: found.kind,
                value: found.value,
                incident: found.incident,
                matched: found.matched,
                title: summary.title.clone(),
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
                valid_until: hit.valid_until,
                expired: false,
                warninglists: Vec::new(),
                sighted_by: Vec::new(),
            });
        }
        Ok(IocSearch {
            searched: findings.searched,
            matches,
            truncated: findings.truncated,
        })
    }

    /// Checks an export's query before anything is streamed: an unknown
    /// incident is an error, not an empty export.
    pub fn export_check(&self, query: &ExportQuery) -> Result<(), NodeError> {
        if let Some(incident) = query.incident {
            self.existing(incident)?;
        }
        Ok(())
    }

    /// Hands every envelope an export holds to `emit`, reading the store
    /// as it goes, so an export of any size needs no more memory than one
    /// envelope. Stops early when `emit` returns false (the reader went
    /// away). Withdrawn envelopes are not exported. Returns how many were.
    pub fn export_each(
        &self,
        query: &ExportQuery,
        emit: &mut dyn FnMut(ExportedEnvelope) -> bool,
    ) -> Result<u64, NodeError> {
        let mut count = 0;
        let mut send = |id: EnvelopeId, stored: StoredEnvelope| -> Result<bool, NodeError> {
            let StoredEnvelope::Live { bytes, sig } = stored else {
                return Ok(true);
            };
            let json = String::from_utf8(bytes)
                .map_err(|_| NodeError::Sign(format!("stored envelope {id} is not UTF-8")))?;
            count += 1;
            Ok(emit(ExportedEnvelope {
                id,
                json,
                sig: base64_encode(&sig),
            }))
        };
        match query.incident {
            Some(incident) => {
                for (id, stored) in self.store.envelopes_of(incident)? {
                    if !send(id, stored)? {
                        break;
                    }
                }
            }
            None => {
                for item in self.store.envelopes() {
                    let (id, stored) = item?;
                    if !send(id, stored)? {
                        break;
                    }
                }
            }
        }
        Ok(count)
    }
}

/// An action as `playbook test` shows it: its description, and for a
/// webhook what it would send besides the body (secrets by reference).
fn would_run(action: &crate::playbook::PlannedAction) -> String {
    use crate::playbook::{spec, PlannedKind};
    let described = action.describe();
    let PlannedKind::Webhook {
        headers,
        ca_file,
        hmac,
        ..
    } = &action.kind
    else {
        return described;
    };
    let details = spec::webhook_details(headers, ca_file.as_deref(), hmac.as_ref());
    if details.is_empty() {
        described
    } else {
        format!("{described} ({details})")
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

struct ListFilter<'a> {
    query: &'a IncidentQuery,
    from: Option<Fingerprint>,
    /// The text's words, lower-cased.
    words: Vec<String>,
}

/// Longest `text` of a listing, in characters.
const MAX_TEXT_CHARS: usize = 1024;

/// A listing's `text`: its words, lower-cased, each to be found in the
/// title or the description.
fn text_words(text: &str) -> Result<Vec<String>, FieldError> {
    let chars = text.chars().count();
    if chars > MAX_TEXT_CHARS {
        return Err(FieldError::new(
            "text",
            format!("must be at most {MAX_TEXT_CHARS} characters, got {chars}"),
        ));
    }
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    if words.is_empty() {
        return Err(FieldError::new("text", "must contain at least one word"));
    }
    Ok(words)
}

impl SummaryFilter for ListFilter<'_> {
    fn since(&self) -> Option<Timestamp> {
        self.query.since
    }

    fn until(&self) -> Option<Timestamp> {
        self.query.until
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

    fn words(&self) -> &[String] {
        &self.words
    }
}
