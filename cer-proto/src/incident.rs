//! An incident's current state, folded from the envelopes about it.
//!
//! The fold is a pure function of the set of envelopes, independent of the
//! order they arrived in: every node holding the same envelopes shows the
//! same incident. Retractions are honoured even when they arrive before
//! what they retract.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{Body, Envelope, Header, IncidentBody, Kind, ReceiptState};
use crate::id::{EnvelopeId, Fingerprint};
use crate::model::{
    Affected, Classification, Indicator, IndicatorType, Severity, Status, Timestamp, Tlp,
};

/// One envelope as input to the fold.
#[derive(Debug, Clone)]
pub struct FoldInput {
    pub id: EnvelopeId,
    pub header: Header,
    /// None when this node cannot read the body (encrypted for others)
    /// or no longer holds it (retracted).
    pub body: Option<Body>,
}

impl FoldInput {
    pub fn new(id: EnvelopeId, envelope: &Envelope, body: Option<Body>) -> Self {
        FoldInput {
            id,
            header: envelope.header(),
            body,
        }
    }
}

/// The materialized state of one incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentState {
    pub id: Uuid,
    /// The incident's author; None while only later envelopes are held.
    pub reporter: Option<Fingerprint>,
    pub tlp: Tlp,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Fingerprint>,
    /// When the incident envelope was created.
    pub filed: Option<Timestamp>,
    /// The newest envelope's creation time.
    pub updated: Timestamp,
    /// Whether this node can read the incident's body.
    pub readable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<IndicatorEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retracted: Option<Retracted>,
    pub timeline: Vec<TimelineEntry>,
}

/// What the incident says, after all permitted updates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub severity: Severity,
    pub classification: Classification,
    pub status: Status,
    #[serde(default)]
    pub affected: Affected,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// An indicator named by the incident, with who reported or sighted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorEntry {
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    pub value: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// CERTs that reported or sighted it, in first-seen order.
    pub reported_by: Vec<Fingerprint>,
    pub sightings: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retracted {
    pub by: EnvelopeId,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One line of the incident's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub envelope: EnvelopeId,
    pub author: Fingerprint,
    pub seq: u64,
    pub at: Timestamp,
    pub kind: Kind,
    #[serde(flatten)]
    pub event: Event,
}

/// What one envelope did to the incident.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Filed,
    Updated {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        #[serde(default, skip_serializing_if = "is_zero")]
        indicators_added: usize,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ignored: Vec<String>,
    },
    Sighting {
        #[serde(rename = "type")]
        kind: IndicatorType,
        value: String,
        seen: Timestamp,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    Retracted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<EnvelopeId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    Receipt {
        target: EnvelopeId,
        state: ReceiptState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// The envelope's body is encrypted for other CERTs.
    Encrypted,
    /// The envelope was withdrawn by its author; its body is gone.
    Withdrawn,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl IncidentState {
    /// Folds the envelopes about one incident into its state.
    /// Returns None for an empty input.
    pub fn fold(id: Uuid, inputs: &[FoldInput]) -> Option<IncidentState> {
        let mut inputs: Vec<&FoldInput> = inputs.iter().collect();
        // Incident envelopes first, then by creation time; ties broken by
        // author and seq so every node folds in the same order.
        inputs.sort_by(|a, b| {
            fold_key(
                a.header.kind,
                a.header.created,
                &a.header.author,
                a.header.seq,
                a.id,
            )
            .cmp(&fold_key(
                b.header.kind,
                b.header.created,
                &b.header.author,
                b.header.seq,
                b.id,
            ))
        });
        let first = inputs.first()?;
        let origin = inputs
            .iter()
            .find(|i| i.header.kind == Kind::Incident)
            .copied();
        let reporter = origin.map(|o| o.header.author.clone());

        // Which envelopes are withdrawn, and is the whole incident?
        let by_id: BTreeMap<EnvelopeId, &FoldInput> = inputs.iter().map(|i| (i.id, *i)).collect();
        let mut withdrawn: HashSet<EnvelopeId> = HashSet::new();
        let mut retracted = None;
        for input in inputs.iter().filter(|i| i.header.kind == Kind::Retraction) {
            let Some(Body::Retraction(body)) = &input.body else {
                continue;
            };
            match body.target {
                // Authors withdraw only their own envelopes.
                Some(target)
                    if by_id
                        .get(&target)
                        .is_none_or(|t| t.header.author == input.header.author) =>
                {
                    withdrawn.insert(target);
                }
                None if retracted.is_none()
                    && reporter.as_ref().is_none_or(|r| *r == input.header.author) =>
                {
                    retracted = Some(Retracted {
                        by: input.id,
                        at: input.header.created,
                        reason: body.reason.clone(),
                    });
                }
                _ => {}
            }
        }

        let (tlp, recipients) = match origin {
            Some(o) => (o.header.tlp, o.header.recipients.clone()),
            None => (first.header.tlp, first.header.recipients.clone()),
        };
        let mut state = IncidentState {
            id,
            reporter: reporter.clone(),
            tlp,
            recipients,
            filed: origin.map(|o| o.header.created),
            updated: inputs
                .iter()
                .map(|i| i.header.created)
                .max()
                .unwrap_or(first.header.created),
            readable: false,
            content: None,
            indicators: Vec::new(),
            retracted: retracted.clone(),
            timeline: Vec::new(),
        };
        let mut indicators = Indicators::default();

        for input in &inputs {
            let event = if withdrawn.contains(&input.id)
                || (retracted.is_some() && input.header.kind != Kind::Retraction)
            {
                Event::Withdrawn
            } else {
                match &input.body {
                    None => Event::Encrypted,
                    Some(body) => state.apply(
                        input,
                        body,
                        reporter.as_ref(),
                        origin.map(|o| o.id),
                        &mut indicators,
                    ),
                }
            };
            state.timeline.push(TimelineEntry {
                envelope: input.id,
                author: input.header.author.clone(),
                seq: input.header.seq,
                at: input.header.created,
                kind: input.header.kind,
                event,
            });
        }
        state.readable = state.content.is_some();
        state.indicators = indicators.entries;
        Some(state)
    }

    /// Applies one more envelope to this state, as [`IncidentState::fold`]
    /// of every envelope would, touching only what it changes: the
    /// indicators it names go through `table`. Only for what cannot change
    /// the past: an update, sighting or receipt that sorts after every
    /// envelope folded so far, on a filed incident with no retraction.
    /// Returns false, changing nothing, when a whole fold is needed.
    pub fn apply_next(&mut self, input: &FoldInput, table: &mut dyn IndicatorTable) -> bool {
        let later = self.timeline.last().is_some_and(|last| {
            fold_key(last.kind, last.at, &last.author, last.seq, last.envelope)
                < fold_key(
                    input.header.kind,
                    input.header.created,
                    &input.header.author,
                    input.header.seq,
                    input.id,
                )
        });
        let simple = matches!(
            input.header.kind,
            Kind::Update | Kind::Sighting | Kind::Receipt
        );
        let settled = self.reporter.is_some()
            && self.retracted.is_none()
            && !self.timeline.iter().any(|e| e.kind == Kind::Retraction);
        if !(later && simple && settled) {
            return false;
        }
        let reporter = self.reporter.clone();
        let event = match &input.body {
            None => Event::Encrypted,
            Some(body) => self.apply(input, body, reporter.as_ref(), None, table),
        };
        self.updated = self.updated.max(input.header.created);
        self.timeline.push(TimelineEntry {
            envelope: input.id,
            author: input.header.author.clone(),
            seq: input.header.seq,
            at: input.header.created,
            kind: input.header.kind,
            event,
        });
        true
    }

    fn apply(
        &mut self,
        input: &FoldInput,
        body: &Body,
        reporter: Option<&Fingerprint>,
        origin: Option<EnvelopeId>,
        indicators: &mut dyn IndicatorTable,
    ) -> Event {
        match body {
            Body::Incident(incident) => {
                if Some(input.id) != origin {
                    // A second incident envelope for the same subject: only
                    // the first (in fold order) defines it.
                    return Event::Updated {
                        changes: vec![],
                        note: None,
                        indicators_added: 0,
                        ignored: vec!["duplicate incident envelope for this subject".into()],
                    };
                }
                self.content = Some(Content::from_body(incident));
                for indicator in &incident.indicators {
                    add(
                        indicators,
                        indicator,
                        &input.header.author,
                        input.header.created,
                    );
                }
                Event::Filed
            }
            Body::Update(update) => {
                let mut changes = Vec::new();
                let mut ignored = Vec::new();
                let by_reporter = reporter == Some(&input.header.author);
                if update.changes_fields() && !by_reporter {
                    ignored
                        .push("field changes from a CERT other than the incident's author".into());
                }
                if let (Some(content), true) = (self.content.as_mut(), by_reporter) {
                    if let Some(status) = update.status {
                        changes.push(format!("status: {} -> {}", content.status, status));
                        content.status = status;
                    }
                    if let Some(severity) = update.severity {
                        changes.push(format!("severity: {} -> {}", content.severity, severity));
                        content.severity = severity;
                    }
                    if let Some(classification) = &update.classification {
                        changes.push(format!(
                            "classification: {} -> {}",
                            content.classification, classification
                        ));
                        content.classification = classification.clone();
                    }
                    if let Some(title) = &update.title {
                        changes.push("title changed".into());
                        content.title = title.clone();
                    }
                    if let Some(description) = &update.description {
                        changes.push("description changed".into());
                        content.description = description.clone();
                    }
                }
                if let Some(content) = self.content.as_mut() {
                    for tag in &update.tags {
                        if !content.tags.contains(tag) {
                            content.tags.push(tag.clone());
                            changes.push(format!("tag added: {tag}"));
                        }
                    }
                }
                let before = indicators.count();
                for indicator in &update.indicators {
                    add(
                        indicators,
                        indicator,
                        &input.header.author,
                        input.header.created,
                    );
                }
                Event::Updated {
                    changes,
                    note: update.note.clone(),
                    indicators_added: indicators.count() - before,
                    ignored,
                }
            }
            Body::Sighting(sighting) => {
                sight(
                    indicators,
                    &sighting.indicator,
                    &input.header.author,
                    sighting.seen,
                    sighting.count,
                );
                Event::Sighting {
                    kind: sighting.indicator.kind,
                    value: sighting.indicator.value.clone(),
                    seen: sighting.seen,
                    count: sighting.count,
                    comment: sighting.comment.clone(),
                }
            }
            Body::Retraction(retraction) => Event::Retracted {
                target: retraction.target,
                reason: retraction.reason.clone(),
            },
            Body::Receipt(receipt) => Event::Receipt {
                target: receipt.target,
                state: receipt.state,
                comment: receipt.comment.clone(),
            },
        }
    }

    /// The title, or a placeholder saying why it cannot be shown.
    pub fn display_title(&self) -> &str {
        match (&self.content, &self.retracted) {
            (_, Some(_)) => "(retracted)",
            (Some(content), None) => &content.title,
            (None, None) if self.reporter.is_none() => "(incident not yet received)",
            (None, None) => "(encrypted)",
        }
    }

    /// Receipts sent about this incident's envelopes, newest state per CERT.
    pub fn receipts(&self) -> Vec<(&Fingerprint, ReceiptState, Timestamp)> {
        let mut latest: BTreeMap<&Fingerprint, (ReceiptState, Timestamp)> = BTreeMap::new();
        for entry in &self.timeline {
            if let Event::Receipt { state, .. } = &entry.event {
                let slot = latest.entry(&entry.author).or_insert((*state, entry.at));
                if *state >= slot.0 {
                    *slot = (*state, entry.at);
                }
            }
        }
        latest.into_iter().map(|(f, (s, t))| (f, s, t)).collect()
    }
}

/// The order of the fold: incident envelopes first, then by creation time,
/// ties broken by author, seq and id.
fn fold_key(
    kind: Kind,
    created: Timestamp,
    author: &Fingerprint,
    seq: u64,
    id: EnvelopeId,
) -> (bool, Timestamp, &Fingerprint, u64, EnvelopeId) {
    (kind != Kind::Incident, created, author, seq, id)
}

impl Content {
    fn from_body(body: &IncidentBody) -> Self {
        Content {
            title: body.title.clone(),
            description: body.description.clone(),
            severity: body.severity,
            classification: body.classification.clone(),
            status: body.status,
            affected: body.affected.clone(),
            occurred: body.occurred,
            detected: body.detected,
            tags: body.tags.clone(),
        }
    }
}

/// Where a fold keeps an incident's indicators: in memory while folding
/// every envelope ([`IncidentState::fold`]), or the store's own table when
/// one envelope is applied to a stored state ([`IncidentState::apply_next`]),
/// so that applying it touches only the indicators it names.
pub trait IndicatorTable {
    /// The incident's entry for `kind:value`; `new` makes it when the
    /// incident does not name that indicator yet.
    fn entry(
        &mut self,
        kind: IndicatorType,
        value: &str,
        new: &dyn Fn() -> IndicatorEntry,
    ) -> &mut IndicatorEntry;
    /// How many indicators the incident names.
    fn count(&self) -> usize;
}

/// The in-memory table of a whole fold: entries in first-seen order.
#[derive(Default)]
struct Indicators {
    entries: Vec<IndicatorEntry>,
    index: BTreeMap<(IndicatorType, String), usize>,
}

impl IndicatorTable for Indicators {
    fn entry(
        &mut self,
        kind: IndicatorType,
        value: &str,
        new: &dyn Fn() -> IndicatorEntry,
    ) -> &mut IndicatorEntry {
        let index = match self.index.get(&(kind, value.to_owned())) {
            Some(index) => *index,
            None => {
                self.entries.push(new());
                self.index
                    .insert((kind, value.to_owned()), self.entries.len() - 1);
                self.entries.len() - 1
            }
        };
        &mut self.entries[index]
    }

    fn count(&self) -> usize {
        self.entries.len()
    }
}

fn entry<'t>(
    table: &'t mut dyn IndicatorTable,
    indicator: &Indicator,
    author: &Fingerprint,
    at: Timestamp,
) -> &'t mut IndicatorEntry {
    let new = || IndicatorEntry {
        kind: indicator.kind,
        value: indicator.value.clone(),
        first_seen: at,
        last_seen: at,
        confidence: indicator.confidence,
        comment: indicator.comment.clone(),
        reported_by: vec![],
        sightings: 0,
    };
    let entry = table.entry(indicator.kind, &indicator.value, &new);
    if !entry.reported_by.contains(author) {
        entry.reported_by.push(author.clone());
    }
    entry
}

fn add(table: &mut dyn IndicatorTable, indicator: &Indicator, author: &Fingerprint, at: Timestamp) {
    let first = indicator.first_seen.unwrap_or(at);
    let last = indicator.last_seen.unwrap_or(first.max(at));
    let entry = entry(table, indicator, author, first);
    entry.first_seen = entry.first_seen.min(first);
    entry.last_seen = entry.last_seen.max(last);
}

fn sight(
    table: &mut dyn IndicatorTable,
    indicator: &Indicator,
    author: &Fingerprint,
    seen: Timestamp,
    count: u32,
) {
    let entry = entry(table, indicator, author, seen);
    entry.first_seen = entry.first_seen.min(seen);
    entry.last_seen = entry.last_seen.max(seen);
    entry.sightings = entry.sightings.saturating_add(count);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{RetractionBody, SightingBody, UpdateBody};

    fn fpr(c: char) -> Fingerprint {
        Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn input(n: u8, author: char, seq: u64, minute: u8, body: Body) -> FoldInput {
        FoldInput {
            id: EnvelopeId::of(&[n]),
            header: Header {
                author: fpr(author),
                seq,
                subject: Uuid::nil(),
                kind: body.kind(),
                created: format!("2026-11-28T13:{minute:02}:00Z").parse().unwrap(),
                tlp: Tlp::Green,
                recipients: vec![],
            },
            body: Some(body),
        }
    }

    fn filed() -> Body {
        Body::Incident(IncidentBody {
            title: "C2 server".into(),
            description: String::new(),
            severity: Severity::High,
            classification: Classification::parse("malicious-code/c2-server").unwrap(),
            status: Status::New,
            indicators: vec![Indicator::parse_spec("ipv4:203.0.113.7").unwrap()],
            affected: Affected::default(),
            occurred: None,
            detected: None,
            tags: vec![],
        })
    }

    fn update(status: Status, note: &str) -> Body {
        Body::Update(UpdateBody {
            status: Some(status),
            note: Some(note.into()),
            ..UpdateBody::default()
        })
    }

    #[test]
    fn fold_is_independent_of_arrival_order() {
        let a = vec![
            input(1, 'A', 1, 0, filed()),
            input(
                2,
                'A',
                2,
                5,
                update(Status::Contained, "takedown requested"),
            ),
            input(
                3,
                'B',
                1,
                7,
                Body::Sighting(SightingBody {
                    indicator: Indicator::parse_spec("ipv4:203.0.113.7").unwrap(),
                    seen: "2026-11-28T13:06:00Z".parse().unwrap(),
                    count: 3,
                    comment: None,
                }),
            ),
        ];
        let mut b = a.clone();
        b.reverse();
        let sa = IncidentState::fold(Uuid::nil(), &a).unwrap();
        let sb = IncidentState::fold(Uuid::nil(), &b).unwrap();
        assert_eq!(sa, sb);
        let content = sa.content.as_ref().unwrap();
        assert_eq!(content.status, Status::Contained);
        assert_eq!(sa.indicators.len(), 1);
        assert_eq!(sa.indicators[0].sightings, 3);
        assert_eq!(sa.indicators[0].reported_by, vec![fpr('A'), fpr('B')]);
        assert_eq!(sa.timeline.len(), 3);
    }

    #[test]
    fn only_the_author_changes_fields() {
        let inputs = vec![
            input(1, 'A', 1, 0, filed()),
            input(2, 'B', 1, 5, update(Status::Closed, "we think it's done")),
        ];
        let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
        assert_eq!(state.content.unwrap().status, Status::New);
        match &state.timeline[1].event {
            Event::Updated { ignored, note, .. } => {
                assert_eq!(ignored.len(), 1);
                assert_eq!(note.as_deref(), Some("we think it's done"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn retraction_before_the_incident_still_retracts() {
        let retraction = Body::Retraction(RetractionBody {
            target: None,
            reason: Some("false positive".into()),
        });
        let inputs = vec![
            input(9, 'A', 2, 9, retraction),
            input(1, 'A', 1, 0, filed()),
        ];
        let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
        assert!(state.retracted.is_some());
        assert!(state.indicators.is_empty());
        assert_eq!(state.display_title(), "(retracted)");
    }

    #[test]
    fn a_third_party_cannot_retract() {
        let retraction = Body::Retraction(RetractionBody {
            target: None,
            reason: None,
        });
        let inputs = vec![
            input(1, 'A', 1, 0, filed()),
            input(9, 'B', 1, 9, retraction),
        ];
        let state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
        assert!(state.retracted.is_none());
        assert_eq!(state.indicators.len(), 1);
    }

    #[test]
    fn unreadable_body_is_shown_as_encrypted() {
        let mut only = input(1, 'A', 1, 0, filed());
        only.body = None;
        let state = IncidentState::fold(Uuid::nil(), &[only]).unwrap();
        assert!(!state.readable);
        assert_eq!(state.display_title(), "(encrypted)");
        assert_eq!(state.timeline[0].event, Event::Encrypted);
    }

    /// Applying envelopes one at a time, each after the last, gives what
    /// folding them all at once gives.
    #[test]
    fn apply_next_matches_the_whole_fold() {
        let sighting = |n: u8, author: char, minute: u8, spec: &str| {
            input(
                n,
                author,
                n as u64,
                minute,
                Body::Sighting(SightingBody {
                    indicator: Indicator::parse_spec(spec).unwrap(),
                    seen: format!("2026-11-28T13:{minute:02}:30Z").parse().unwrap(),
                    count: 2,
                    comment: None,
                }),
            )
        };
        let with_iocs = |n: u8, minute: u8, specs: &[&str]| {
            input(
                n,
                'A',
                n as u64,
                minute,
                Body::Update(UpdateBody {
                    severity: Some(Severity::Critical),
                    indicators: specs
                        .iter()
                        .map(|s| Indicator::parse_spec(s).unwrap())
                        .collect(),
                    ..UpdateBody::default()
                }),
            )
        };
        let inputs = vec![
            input(1, 'A', 1, 0, filed()),
            with_iocs(2, 2, &["domain:a.example", "ipv4:203.0.113.7"]),
            sighting(3, 'B', 3, "ipv4:203.0.113.7"),
            sighting(4, 'C', 4, "domain:new.example"),
            input(5, 'B', 5, 5, update(Status::Closed, "not the author")),
            with_iocs(6, 6, &["domain:new.example"]),
        ];
        let mut state = IncidentState::fold(Uuid::nil(), &inputs[..1]).unwrap();
        let mut table = Indicators::default();
        for entry in std::mem::take(&mut state.indicators) {
            table
                .index
                .insert((entry.kind, entry.value.clone()), table.entries.len());
            table.entries.push(entry);
        }
        for next in &inputs[1..] {
            assert!(state.apply_next(next, &mut table), "{:?}", next.header.kind);
        }
        state.indicators = table.entries;
        assert_eq!(state, IncidentState::fold(Uuid::nil(), &inputs).unwrap());

        // What could change the past takes a whole fold.
        let mut state = IncidentState::fold(Uuid::nil(), &inputs).unwrap();
        let mut table = Indicators::default();
        let early = sighting(7, 'B', 1, "ipv4:203.0.113.7");
        assert!(!state.apply_next(&early, &mut table));
        let retraction = input(
            8,
            'A',
            8,
            9,
            Body::Retraction(RetractionBody {
                target: None,
                reason: None,
            }),
        );
        assert!(!state.apply_next(&retraction, &mut table));
        assert_eq!(state, IncidentState::fold(Uuid::nil(), &inputs).unwrap());
    }
}
