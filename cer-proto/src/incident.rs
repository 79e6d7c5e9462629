//! An incident's current state, folded from the envelopes about it.
//!
//! The fold is a pure function of the set of envelopes, independent of the
//! order they arrived in: every node holding the same envelopes shows the
//! same incident. Retractions are honoured even when they arrive before
//! what they retract.
//!
//! Each envelope carries its own TLP, and so may say more restricted
//! things about an incident than the incident's own label (an AMBER note
//! on a GREEN incident). The fold keeps what came from where: every
//! timeline entry records its envelope's label, and every indicator the
//! lowest and highest label of the envelopes that name it. The incident's
//! fields stay at the incident's label: an envelope above it changes no
//! field and adds no tag. Whoever hands the state on (playbooks) filters
//! by those labels; the analyst sees everything this node can read.

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
    /// Where it was imported from, if it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::model::Source>,
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
    /// The lowest TLP of the envelopes that name it, when that is not the
    /// incident's: the label under which the indicator itself was shared
    /// (see [`IndicatorEntry::tlp_range`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
    /// The highest TLP of the envelopes that name it, when that is not the
    /// incident's: its seen times, reporters, sightings, confidence and
    /// comment may come from envelopes up to this label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details_tlp: Option<Tlp>,
    /// Until when the incident's author holds it useful: what the author's
    /// newest envelope naming it said (see [`Indicator::valid_until`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
    /// When the envelope that set `valid_until` was created: a later one
    /// from the author extends or ends it, whatever order they arrive in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until_set: Option<Timestamp>,
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
    /// The envelope's TLP, when it is not the incident's (a note shared
    /// under a stricter label than its incident, say); see
    /// [`TimelineEntry::label`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
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
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        false_positive: bool,
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
    /// The author moved to a new signing key. Stores do not fold key
    /// transitions into incidents; this is for a fold given one anyway.
    KeyTransition,
    /// A CERT's key was revoked; not folded either.
    KeyRevocation,
    /// The envelope's body is encrypted for other CERTs.
    Encrypted,
    /// The envelope was withdrawn by its author; its body is gone.
    Withdrawn,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl TimelineEntry {
    /// The TLP of the envelope behind this entry, on an incident labelled
    /// `incident`.
    pub fn label(&self, incident: Tlp) -> Tlp {
        self.tlp.unwrap_or(incident)
    }
}

/// When indicators expire on this node: the time now, and the local
/// default lifetime per type for indicators whose author gave no
/// `valid_until` (counted from when each was last seen; a type without
/// one never expires by default).
#[derive(Debug, Clone, PartialEq)]
pub struct Expiry {
    pub now: Timestamp,
    pub lifetimes: BTreeMap<IndicatorType, std::time::Duration>,
}

impl Expiry {
    pub fn expired(&self, entry: &IndicatorEntry) -> bool {
        entry.expired(self.now, self.lifetimes.get(&entry.kind).copied())
    }

    /// When `entry` expires (None: never).
    pub fn until(&self, entry: &IndicatorEntry) -> Option<Timestamp> {
        entry.valid_until.or_else(|| {
            self.lifetimes
                .get(&entry.kind)
                .map(|lifetime| entry.last_seen.plus(*lifetime))
        })
    }
}

impl IndicatorEntry {
    /// Whether it has expired by `now`: its own `valid_until`, or else the
    /// local default lifetime for its type counted from when it was last
    /// seen (`None`: never).
    pub fn expired(&self, now: Timestamp, default_lifetime: Option<std::time::Duration>) -> bool {
        match (self.valid_until, default_lifetime) {
            (Some(until), _) => until <= now,
            (None, Some(lifetime)) => self.last_seen.plus(lifetime) <= now,
            (None, None) => false,
        }
    }

    /// The lowest and highest TLP of the envelopes that name this
    /// indicator, on an incident labelled `incident`. The indicator itself
    /// (type and value) was shared under the lowest; its other fields
    /// gather what every naming envelope said, up to the highest.
    pub fn tlp_range(&self, incident: Tlp) -> (Tlp, Tlp) {
        (
            self.tlp.unwrap_or(incident),
            self.details_tlp.unwrap_or(incident),
        )
    }
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
                tlp: entry_label(&event, input.header.tlp, tlp),
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
            tlp: entry_label(&event, input.header.tlp, self.tlp),
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
        let naming = Naming {
            author: &input.header.author,
            tlp: input.header.tlp,
            incident: self.tlp,
            by_reporter: reporter == Some(&input.header.author)
                || matches!(body, Body::Incident(_)),
        };
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
                    add(indicators, indicator, &naming, input.header.created);
                }
                Event::Filed
            }
            Body::Update(update) => {
                let mut changes = Vec::new();
                let mut ignored = Vec::new();
                let by_reporter = reporter == Some(&input.header.author);
                // The incident's fields are shared under the incident's
                // label; an envelope under a stricter one may add notes and
                // indicators, whose entries keep their own label, but
                // changes no field that every reader of the incident sees.
                let above = input.header.tlp > self.tlp;
                if above && (update.changes_fields() || !update.tags.is_empty()) {
                    ignored.push(format!(
                        "field changes and tags in a TLP:{} envelope on a TLP:{} incident",
                        input.header.tlp.as_str().to_ascii_uppercase(),
                        self.tlp.as_str().to_ascii_uppercase()
                    ));
                } else if update.changes_fields() && !by_reporter {
                    ignored
                        .push("field changes from a CERT other than the incident's author".into());
                }
                if let (Some(content), true) = (self.content.as_mut(), by_reporter && !above) {
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
                if let (Some(content), false) = (self.content.as_mut(), above) {
                    for tag in &update.tags {
                        if !content.tags.contains(tag) {
                            content.tags.push(tag.clone());
                            changes.push(format!("tag added: {tag}"));
                        }
                    }
                }
                let before = indicators.count();
                for indicator in &update.indicators {
                    add(indicators, indicator, &naming, input.header.created);
                }
                Event::Updated {
                    changes,
                    note: update.note.clone(),
                    indicators_added: indicators.count() - before,
                    ignored,
                }
            }
            Body::Sighting(sighting) => {
                // A false-positive report names the indicator (its
                // reporter and time) but is no sighting of it.
                let count = if sighting.false_positive {
                    0
                } else {
                    sighting.count
                };
                sight(
                    indicators,
                    &sighting.indicator,
                    &naming,
                    sighting.seen,
                    count,
                );
                Event::Sighting {
                    kind: sighting.indicator.kind,
                    value: sighting.indicator.value.clone(),
                    seen: sighting.seen,
                    count: sighting.count,
                    comment: sighting.comment.clone(),
                    false_positive: sighting.false_positive,
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
            Body::KeyTransition(_) => Event::KeyTransition,
            Body::KeyRevocation(_) => Event::KeyRevocation,
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
            source: body.source.clone(),
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

/// Who named an indicator, under which label, on an incident of which.
struct Naming<'a> {
    author: &'a Fingerprint,
    tlp: Tlp,
    incident: Tlp,
    /// The incident's author: only it sets an indicator's expiry.
    by_reporter: bool,
}

fn entry<'t>(
    table: &'t mut dyn IndicatorTable,
    indicator: &Indicator,
    naming: &Naming<'_>,
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
        tlp: relative(naming.tlp, naming.incident),
        details_tlp: relative(naming.tlp, naming.incident),
        valid_until: None,
        valid_until_set: None,
    };
    let entry = table.entry(indicator.kind, &indicator.value, &new);
    if !entry.reported_by.contains(naming.author) {
        entry.reported_by.push(naming.author.clone());
    }
    let (lowest, highest) = entry.tlp_range(naming.incident);
    entry.tlp = relative(lowest.min(naming.tlp), naming.incident);
    entry.details_tlp = relative(highest.max(naming.tlp), naming.incident);
    entry
}

fn add(table: &mut dyn IndicatorTable, indicator: &Indicator, naming: &Naming<'_>, at: Timestamp) {
    let first = indicator.first_seen.unwrap_or(at);
    let last = indicator.last_seen.unwrap_or(first.max(at));
    let entry = entry(table, indicator, naming, first);
    entry.first_seen = entry.first_seen.min(first);
    entry.last_seen = entry.last_seen.max(last);
    // The author's newest word on expiry wins (on a tie, the later date),
    // so the fold does not depend on the order envelopes arrive in.
    if let (true, Some(until)) = (naming.by_reporter, indicator.valid_until) {
        let newer = match (entry.valid_until_set, entry.valid_until) {
            (Some(set), Some(current)) => (at, until) > (set, current),
            _ => true,
        };
        if newer {
            entry.valid_until = Some(until);
            entry.valid_until_set = Some(at);
        }
    }
}

fn sight(
    table: &mut dyn IndicatorTable,
    indicator: &Indicator,
    naming: &Naming<'_>,
    seen: Timestamp,
    count: u32,
) {
    let entry = entry(table, indicator, naming, seen);
    entry.first_seen = entry.first_seen.min(seen);
    entry.last_seen = entry.last_seen.max(seen);
    entry.sightings = entry.sightings.saturating_add(count);
}

/// A timeline entry's label. A withdrawn envelope's entry has none of its
/// own: its body is gone, and its tombstone knows only what its author's
/// retraction names (seq, id, kind, time), under the retraction's label,
/// so a node holding the tombstone and one still holding the envelope
/// must record the same.
fn entry_label(event: &Event, tlp: Tlp, incident: Tlp) -> Option<Tlp> {
    match event {
        Event::Withdrawn => None,
        _ => relative(tlp, incident),
    }
}

/// An envelope's label as an entry records it: only where it differs
/// from the incident's, so that most entries carry none.
fn relative(tlp: Tlp, incident: Tlp) -> Option<Tlp> {
    (tlp != incident).then_some(tlp)
}

#[cfg(test)]
mod tests;
