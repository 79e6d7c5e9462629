//! Planning: from an event and the loaded playbooks to the exact actions
//! to run, with argv, environment and stdin filled in.
//!
//! Pure: no processes, no I/O, no clock, so every gate and every
//! substitution is unit-tested here without running anything. The gates
//! live here, in one place: an incident above a playbook's `max_tlp`, an
//! incident this node cannot read, or a retracted incident (for anything
//! but `retraction.received`) never runs the playbook at all.
//!
//! What a playbook sees is also cut at its `max_tlp` inside the incident:
//! an envelope may carry a stricter label than its incident (an AMBER
//! note on a GREEN incident), and the fold records each timeline entry's
//! and each indicator's label. [`payload`] leaves out every timeline
//! entry above `max_tlp`, and every indicator no envelope at or below it
//! names ([`visible_indicators`], which `for_each_indicator` and
//! `has_indicator` use too); an indicator shared at or below `max_tlp`
//! but also named above it shows only its type and value.
//!
//! Substitution inserts typed, validated values (ids, labels,
//! fingerprints, normalized indicators) into the argv element that names
//! them and never scans the result again. Free text (titles,
//! descriptions, notes, comments) reaches actions only inside the JSON on
//! stdin or in the webhook body.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cer_proto::api::{Acted, Paused, RunRecord};
use cer_proto::incident::{Expiry, IncidentState, IndicatorEntry, TimelineEntry};
use cer_proto::model::{IndicatorType, Severity, Tlp};
use cer_proto::Fingerprint;
use uuid::Uuid;

pub use crate::EventKind;
pub use crate::When;
use crate::{
    Action, CertRef, From, Only, Placeholder, Playbook, SecretText, WebhookHmac, WebhookUrl,
    EXEC_PATH,
};

/// One event, as the planner sees it.
pub struct Trigger<'a> {
    pub event: EventKind,
    /// The incident's state after the event, for incident.*, sighting.*,
    /// retraction.* and receipt.* events.
    pub incident: Option<&'a IncidentState>,
    /// The peer the event is about, for peer.up, peer.down and
    /// mesh.equivocation (the CERT that equivocated).
    pub peer: Option<&'a Fingerprint>,
    /// This node's fingerprint, for `from: own` and `from: peers`.
    pub own: &'a Fingerprint,
    /// Resolves a fingerprint to the CERT's name in the trust store.
    pub names: &'a dyn Fn(&Fingerprint) -> Option<String>,
    /// What makes this trigger unique, e.g. the envelope id that caused
    /// it: runs are keyed by (playbook, event, incident, version).
    pub version: String,
    /// What the playbook being planned did for this incident and has not
    /// taken back (see [`Acted`]): `only: added` skips these, and undo
    /// events run for those no longer in the incident. Empty when planning
    /// without a store.
    pub acted: &'a [Acted],
    /// The run records of the runs in `acted`, given to undo actions on
    /// stdin as `"acted_runs"`.
    pub acted_runs: &'a [RunRecord],
    /// For `playbook.paused`: which playbook, and why.
    pub paused: Option<&'a Paused>,
    /// When indicators expire here: expired ones get no runs on incident
    /// events, and are what `indicator.expired` takes back. None: nothing
    /// is treated as expired.
    pub expiry: Option<&'a Expiry>,
    /// Whether a value is on one of this node's warninglists: such
    /// indicators get no runs unless the playbook's `match` says
    /// `include_warninglisted: true`. None: none is.
    pub warninglisted: Option<&'a Listed<'a>>,
}

/// Whether a value (of a type) is on one of the node's warninglists.
pub type Listed<'a> = dyn Fn(IndicatorType, &str) -> bool + 'a;

/// One action to run, fully expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedAction {
    pub playbook: String,
    pub event: EventKind,
    pub incident: Option<Uuid>,
    /// Index into the playbook's `actions`.
    pub action_index: usize,
    pub kind: PlannedKind,
    /// Unique and stable per (playbook, event, incident, version, action,
    /// indicator): record it before or after running, and skip keys
    /// already recorded, so a restart does not run anything twice.
    pub key: String,
    /// What a success changes in the playbook's record of what it did.
    pub effect: Effect,
}

/// What a successful per-indicator run means for [`Acted`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    None,
    /// The action acted on this indicator (an incident event).
    Acted {
        kind: IndicatorType,
        value: String,
    },
    /// The playbook took back what it did for it (an undo event): every
    /// record of it for the incident goes.
    Undone {
        kind: IndicatorType,
        value: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlannedKind {
    Exec {
        /// argv[0] is the program.
        argv: Vec<String>,
        /// The complete environment (starts empty, PATH included).
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
        timeout: Duration,
        /// The trigger as JSON (see [`payload`]); shared between runs.
        stdin: Arc<[u8]>,
    },
    Webhook {
        url: WebhookUrl,
        /// Values as written: secrets are read by the runner, never here.
        headers: Vec<(String, SecretText)>,
        /// Per attempt.
        timeout: Duration,
        retries: u32,
        body: Arc<[u8]>,
        /// For https: the only CA trusted; None: the system's roots.
        ca_file: Option<PathBuf>,
        hmac: Option<WebhookHmac>,
    },
    /// Add this local tag to the incident (applied by the caller).
    Tag(String, When),
    /// Add this local note to the incident (applied by the caller).
    Note(String, When),
}

/// Why a playbook does not run for a trigger, for `cerctl playbook test`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    NotOn(EventKind),
    NoIncident,
    NoPeer,
    Retracted,
    Unreadable,
    AboveMaxTlp {
        tlp: Tlp,
        max: Tlp,
    },
    TlpNotListed(Tlp),
    NoContent,
    SeverityBelow {
        severity: Severity,
        wanted: Severity,
    },
    Classification(String),
    From,
    NoIndicator,
    MissingTag(String),
}

/// Every action the trigger causes, across all playbooks, in playbook
/// then action order.
pub fn plan(playbooks: &[Playbook], trigger: &Trigger<'_>) -> Vec<PlannedAction> {
    // Built once per label: playbooks with the same max_tlp share it.
    let mut payloads: Vec<(Tlp, Arc<[u8]>)> = Vec::new();
    let mut actions = Vec::new();
    // A disabled playbook is loaded and checked, and `playbook test`
    // still shows what it would do, but nothing triggers it.
    for playbook in playbooks.iter().filter(|p| p.enabled) {
        if evaluate(playbook, trigger).is_ok() {
            let payload = match payloads.iter().find(|(tlp, _)| *tlp == playbook.max_tlp) {
                Some((_, payload)) => payload.clone(),
                None => {
                    let payload = payload(trigger, playbook.max_tlp);
                    payloads.push((playbook.max_tlp, payload.clone()));
                    payload
                }
            };
            expand(playbook, trigger, &payload, &mut actions);
        }
    }
    actions
}

/// What one playbook would do for the trigger, or why it does nothing.
pub fn plan_one(playbook: &Playbook, trigger: &Trigger<'_>) -> Result<Vec<PlannedAction>, Skip> {
    evaluate(playbook, trigger)?;
    let mut actions = Vec::new();
    expand(
        playbook,
        trigger,
        &payload(trigger, playbook.max_tlp),
        &mut actions,
    );
    Ok(actions)
}

/// The incident's indicators a playbook whose `max_tlp` is `max_tlp` may
/// act on: those that at least one envelope at or below that label names.
/// (The incident's own label is [`evaluate`]'s gate.)
pub fn visible_indicators(
    incident: &IncidentState,
    max_tlp: Tlp,
) -> impl Iterator<Item = &IndicatorEntry> {
    incident
        .indicators
        .iter()
        .filter(move |i| i.tlp_range(incident.tlp).0 <= max_tlp)
}

/// Whether the playbook runs for this trigger: its events, the gates and
/// its `match` conditions.
pub fn evaluate(playbook: &Playbook, trigger: &Trigger<'_>) -> Result<(), Skip> {
    let event = trigger.event;
    if !playbook.on.contains(&event) {
        return Err(Skip::NotOn(event));
    }
    let matcher = &playbook.matcher;
    if event == EventKind::PlaybookPaused {
        return Ok(());
    }
    if !event.is_incident() {
        let peer = trigger.peer.ok_or(Skip::NoPeer)?;
        return from_matches(&matcher.from, Some(peer), trigger)
            .then_some(())
            .ok_or(Skip::From);
    }

    let incident = trigger.incident.ok_or(Skip::NoIncident)?;
    let retracted = incident.retracted.is_some();
    if retracted && event != EventKind::RetractionReceived {
        return Err(Skip::Retracted);
    }
    // A retracted incident's body is gone, not secret: its header (id,
    // TLP, reporter) may still go to retraction playbooks.
    let header_only = retracted && event == EventKind::RetractionReceived;
    if !(incident.readable || header_only) {
        return Err(Skip::Unreadable);
    }
    if incident.tlp > playbook.max_tlp {
        return Err(Skip::AboveMaxTlp {
            tlp: incident.tlp,
            max: playbook.max_tlp,
        });
    }
    if !matcher.tlp.is_empty() && !matcher.tlp.contains(&incident.tlp) {
        return Err(Skip::TlpNotListed(incident.tlp));
    }
    if !from_matches(&matcher.from, incident.reporter.as_ref(), trigger) {
        return Err(Skip::From);
    }
    let needs_content = matcher.severity_at_least.is_some()
        || !matcher.classification.is_empty()
        || !matcher.tags.is_empty();
    // A retracted incident's content is gone; an undo follows what the
    // playbook did, which matched when it did it.
    let undoing = event.is_undo() && !trigger.acted.is_empty();
    if needs_content && !(incident.content.is_none() && undoing) {
        let content = incident.content.as_ref().ok_or(Skip::NoContent)?;
        if let Some(wanted) = matcher.severity_at_least {
            if content.severity < wanted {
                return Err(Skip::SeverityBelow {
                    severity: content.severity,
                    wanted,
                });
            }
        }
        if !matcher.classification.is_empty()
            && !matcher
                .classification
                .iter()
                .any(|pattern| content.classification.matches(pattern))
        {
            return Err(Skip::Classification(
                content.classification.as_str().to_owned(),
            ));
        }
        if let Some(tag) = matcher
            .tags
            .iter()
            .find(|tag| !content.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)))
        {
            return Err(Skip::MissingTag(tag.clone()));
        }
    }
    // An undo event is also about what is gone: the indicators the
    // playbook acted on that the incident (retracted: empty) no longer
    // names.
    let has = visible_indicators(incident, playbook.max_tlp)
        .any(|i| matcher.has_indicator.contains(&i.kind))
        || (event.is_undo()
            && taken_back(trigger, incident)
                .iter()
                .any(|a| matcher.has_indicator.contains(&a.kind)));
    if !matcher.has_indicator.is_empty() && !has {
        return Err(Skip::NoIndicator);
    }
    Ok(())
}

/// What an undo event takes back, each value once, in record order: the
/// acted records whose indicator the incident no longer names, or, for
/// `indicator.expired`, whose indicator has expired.
pub fn taken_back<'a>(trigger: &Trigger<'a>, incident: &'a IncidentState) -> Vec<&'a Acted> {
    let expiring = (trigger.event == EventKind::IndicatorExpired).then_some(trigger.expiry);
    let mut seen = BTreeSet::new();
    trigger
        .acted
        .iter()
        .filter(|a| {
            let named = incident
                .indicators
                .iter()
                .find(|i| i.kind == a.kind && i.value == a.value);
            match (expiring, named) {
                (None, named) => named.is_none(),
                (Some(Some(expiry)), Some(entry)) => expiry.expired(entry),
                (Some(_), _) => false,
            }
        })
        .filter(|a| seen.insert((a.kind, a.value.as_str())))
        .collect()
}

/// Whether an indicator counts on incident events: not expired, and not
/// on a warninglist unless the playbook asks for those too.
fn active(playbook: &Playbook, trigger: &Trigger<'_>, entry: &IndicatorEntry) -> bool {
    trigger.expiry.is_none_or(|expiry| !expiry.expired(entry))
        && (playbook.matcher.include_warninglisted
            || trigger
                .warninglisted
                .is_none_or(|listed| !listed(entry.kind, &entry.value)))
}

/// The JSON actions get on stdin and webhooks as their body:
/// `{"event": "incident.received", "incident": {…IncidentState…}}` for
/// incident events (plus `reporter_name` when known), and
/// `{"event": "peer.down", "peer": "FPR", "peer_name": "…"}` for peer
/// events. Only built for triggers that passed the TLP gate; the incident
/// is cut at `max_tlp`, as `incident_json` says.
pub fn payload(trigger: &Trigger<'_>, max_tlp: Tlp) -> Arc<[u8]> {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), trigger.event.as_str().into());
    if let Some(incident) = trigger.incident {
        object.insert("incident".into(), incident_json(incident, max_tlp));
        if let Some(name) = incident.reporter.as_ref().and_then(|r| (trigger.names)(r)) {
            object.insert("reporter_name".into(), name.into());
        }
    }
    if let Some(peer) = trigger.peer {
        object.insert("peer".into(), peer.as_str().into());
        if let Some(name) = (trigger.names)(peer) {
            object.insert("peer_name".into(), name.into());
        }
    }
    if let (true, Some(incident)) = (trigger.event.is_undo(), trigger.incident) {
        let gone = taken_back(trigger, incident);
        object.insert(
            "acted_on".into(),
            serde_json::to_value(gone).unwrap_or_default(),
        );
        object.insert(
            "acted_runs".into(),
            serde_json::to_value(trigger.acted_runs).unwrap_or_default(),
        );
    }
    if let Some(paused) = trigger.paused {
        object.insert(
            "paused".into(),
            serde_json::to_value(paused).unwrap_or_default(),
        );
    }
    let mut bytes = serde_json::to_vec(&object).unwrap_or_default();
    bytes.push(b'\n');
    bytes.into()
}

/// The incident as a playbook with this `max_tlp` may see it: the folded
/// state without the timeline entries whose envelopes are labelled above
/// `max_tlp` (nor the time of the newest of them, nor a retraction's
/// reason given above it), and with only [`visible_indicators`], each
/// reduced to its type and value (and label) when an envelope above
/// `max_tlp` also names it, since its other fields gather what those said.
fn incident_json(incident: &IncidentState, max_tlp: Tlp) -> serde_json::Value {
    let above = |tlp: Tlp| tlp > max_tlp;
    let whole = !incident
        .timeline
        .iter()
        .any(|e| above(e.label(incident.tlp)))
        && !incident
            .indicators
            .iter()
            .any(|i| above(i.tlp_range(incident.tlp).1));
    // Serializing a folded state cannot fail for parsed data; keep the
    // event rather than drop the run if it ever does.
    if whole {
        return serde_json::to_value(incident).unwrap_or(serde_json::Value::Null);
    }
    let timeline: Vec<TimelineEntry> = incident
        .timeline
        .iter()
        .filter(|e| !above(e.label(incident.tlp)))
        .cloned()
        .collect();
    let retracted = incident.retracted.clone().map(|mut retracted| {
        let by = incident
            .timeline
            .iter()
            .find(|e| e.envelope == retracted.by);
        if by.is_none_or(|e| above(e.label(incident.tlp))) {
            retracted.reason = None;
        }
        retracted
    });
    let view = IncidentState {
        id: incident.id,
        reporter: incident.reporter.clone(),
        tlp: incident.tlp,
        recipients: incident.recipients.clone(),
        filed: incident.filed,
        updated: timeline
            .iter()
            .map(|e| e.at)
            .max()
            .or(incident.filed)
            .unwrap_or(incident.updated),
        readable: incident.readable,
        content: incident.content.clone(),
        indicators: Vec::new(),
        retracted,
        timeline,
    };
    let mut value = serde_json::to_value(&view).unwrap_or(serde_json::Value::Null);
    let indicators: Vec<serde_json::Value> = visible_indicators(incident, max_tlp)
        .map(|i| {
            if above(i.tlp_range(incident.tlp).1) {
                let mut only = serde_json::json!({"type": i.kind.as_str(), "value": i.value});
                if let Some(tlp) = i.tlp {
                    only["tlp"] = tlp.as_str().into();
                }
                only
            } else {
                serde_json::to_value(i).unwrap_or(serde_json::Value::Null)
            }
        })
        .collect();
    if let (false, Some(object)) = (indicators.is_empty(), value.as_object_mut()) {
        object.insert("indicators".into(), indicators.into());
    }
    value
}

impl PlannedAction {
    /// One line for run history: `exec /usr/local/sbin/block-ip 203.0.113.7`,
    /// `webhook http://…`, `tag blocked`, `note …`. Odd arguments are
    /// quoted with escapes, so the line is unambiguous and has no control
    /// characters; cut at 512 characters.
    pub fn describe(&self) -> String {
        let text = match &self.kind {
            PlannedKind::Exec { argv, .. } => {
                let args: Vec<String> = argv.iter().map(|a| quoted(a)).collect();
                format!("exec {}", args.join(" "))
            }
            PlannedKind::Webhook { url, .. } => format!("webhook {url}"),
            PlannedKind::Tag(tag, _) => format!("tag {tag}"),
            PlannedKind::Note(note, _) => format!("note {}", quoted(note)),
        };
        cut(&text, 512)
    }

    /// Whether the caller applies it (tag, note) rather than the runner.
    pub fn is_local(&self) -> bool {
        matches!(self.kind, PlannedKind::Tag(..) | PlannedKind::Note(..))
    }

    /// Whether a tag or note applies, given whether every earlier action
    /// of its playbook, for the same trigger, succeeded (`when:`). Exec
    /// and webhook actions always run.
    pub fn applies(&self, before_ok: bool) -> bool {
        match &self.kind {
            PlannedKind::Tag(_, when) | PlannedKind::Note(_, when) => match when {
                When::Success => before_ok,
                When::Failure => !before_ok,
                When::Always => true,
            },
            PlannedKind::Exec { .. } | PlannedKind::Webhook { .. } => true,
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotOn(event) => write!(f, "the playbook does not run on {event}"),
            Skip::NoIncident => f.write_str("the event has no incident"),
            Skip::NoPeer => f.write_str("the event names no peer"),
            Skip::Retracted => f.write_str("the incident is retracted"),
            Skip::Unreadable => f.write_str("this node cannot read the incident"),
            Skip::AboveMaxTlp { tlp, max } => {
                write!(
                    f,
                    "the incident is TLP:{tlp}, above the playbook's max_tlp {max}"
                )
            }
            Skip::TlpNotListed(tlp) => write!(f, "TLP:{tlp} is not in match.tlp"),
            Skip::NoContent => f.write_str("the incident's content is not available"),
            Skip::SeverityBelow { severity, wanted } => {
                write!(f, "severity {severity} is below {wanted}")
            }
            Skip::Classification(c) => write!(f, "classification {c} matches no pattern"),
            Skip::From => f.write_str("the CERT is not one match.from accepts"),
            Skip::NoIndicator => f.write_str("no indicator of the types in match.has_indicator"),
            Skip::MissingTag(tag) => write!(f, "the incident is not tagged {tag}"),
        }
    }
}

/// The per-trigger values placeholders and CER_ variables draw from.
struct Values<'t, 'a> {
    trigger: &'t Trigger<'a>,
    indicator: Option<(IndicatorType, &'t str)>,
}

impl Values<'_, '_> {
    fn get(&self, placeholder: Placeholder) -> Option<String> {
        let incident = self.trigger.incident;
        let content = incident.and_then(|i| i.content.as_ref());
        match placeholder {
            Placeholder::IncidentId => incident.map(|i| i.id.to_string()),
            Placeholder::IncidentSeverity => content.map(|c| c.severity.as_str().to_owned()),
            Placeholder::IncidentTlp => incident.map(|i| i.tlp.as_str().to_owned()),
            Placeholder::IncidentClassification => {
                content.map(|c| c.classification.as_str().to_owned())
            }
            Placeholder::IncidentStatus => content.map(|c| c.status.as_str().to_owned()),
            Placeholder::IncidentReporter => incident
                .and_then(|i| i.reporter.as_ref())
                .map(|r| r.as_str().to_owned()),
            Placeholder::IndicatorType => self.indicator.map(|(kind, _)| kind.as_str().to_owned()),
            Placeholder::IndicatorValue => self.indicator.map(|(_, value)| value.to_owned()),
            Placeholder::Event => Some(self.trigger.event.as_str().to_owned()),
            Placeholder::Peer => self.trigger.peer.map(|p| p.as_str().to_owned()),
        }
    }

    fn env(
        &self,
        playbook: &Playbook,
        key: &str,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), EXEC_PATH.into()),
            ("CER_PLAYBOOK".into(), playbook.name.clone()),
            ("CER_EVENT".into(), self.trigger.event.as_str().into()),
            ("CER_RUN_KEY".into(), key.into()),
        ];
        let mut set = |name: &str, value: Option<String>| {
            // Names come from certificates; a NUL would make the spawn fail.
            if let Some(value) = value.filter(|v| !v.contains('\0')) {
                env.push((name.into(), value));
            }
        };
        let names = self.trigger.names;
        if let Some(incident) = self.trigger.incident {
            set("CER_INCIDENT_ID", self.get(Placeholder::IncidentId));
            set("CER_TLP", self.get(Placeholder::IncidentTlp));
            set("CER_SEVERITY", self.get(Placeholder::IncidentSeverity));
            set(
                "CER_CLASSIFICATION",
                self.get(Placeholder::IncidentClassification),
            );
            set("CER_STATUS", self.get(Placeholder::IncidentStatus));
            set("CER_AUTHOR", self.get(Placeholder::IncidentReporter));
            set(
                "CER_AUTHOR_NAME",
                incident.reporter.as_ref().and_then(names),
            );
        }
        if let Some(peer) = self.trigger.peer {
            set("CER_PEER", Some(peer.as_str().to_owned()));
            set("CER_PEER_NAME", names(peer));
        }
        if let Some((kind, value)) = self.indicator {
            set("CER_INDICATOR_TYPE", self.get(Placeholder::IndicatorType));
            set("CER_INDICATOR_VALUE", self.get(Placeholder::IndicatorValue));
            if self.trigger.event.is_undo() {
                let run = self
                    .trigger
                    .acted
                    .iter()
                    .find(|a| a.kind == kind && a.value == value);
                set("CER_ACTED_RUN_KEY", run.map(|a| a.run_key.clone()));
            }
        }
        if let Some(paused) = self.trigger.paused {
            set("CER_PAUSED_PLAYBOOK", Some(paused.playbook.clone()));
        }
        for (name, value) in extra {
            // The playbook may set PATH; CER_ names are refused at load.
            env.retain(|(n, _)| n != name);
            env.push((name.clone(), value.clone()));
        }
        env
    }
}

fn expand(
    playbook: &Playbook,
    trigger: &Trigger<'_>,
    payload: &Arc<[u8]>,
    out: &mut Vec<PlannedAction>,
) {
    let incident_id = trigger.incident.map(|i| i.id);
    for (index, action) in playbook.actions.iter().enumerate() {
        if !playbook.action_runs_on(index, trigger.event) {
            continue;
        }
        let planned = |kind: PlannedKind, key: String| PlannedAction {
            playbook: playbook.name.clone(),
            event: trigger.event,
            incident: incident_id,
            action_index: index,
            kind,
            key,
            effect: Effect::None,
        };
        match action {
            Action::Exec(exec) => {
                let indicators: Vec<Option<(IndicatorType, &str)>> =
                    match (&exec.for_each_indicator, trigger.incident) {
                        (None, _) => vec![None],
                        (Some(_), None) => vec![],
                        (Some(each), Some(incident)) if trigger.event.is_undo() => {
                            taken_back(trigger, incident)
                                .into_iter()
                                .filter(|a| each.types.contains(&a.kind))
                                .map(|a| Some((a.kind, a.value.as_str())))
                                .collect()
                        }
                        (Some(each), Some(incident)) => {
                            let mut seen = BTreeSet::new();
                            let done = |kind: IndicatorType, value: &str| {
                                each.only == Only::Added
                                    && trigger.acted.iter().any(|a| {
                                        a.action == index && a.kind == kind && a.value == value
                                    })
                            };
                            visible_indicators(incident, playbook.max_tlp)
                                .filter(|i| each.types.contains(&i.kind))
                                .filter(|i| active(playbook, trigger, i))
                                .filter(|i| seen.insert((i.kind, i.value.as_str())))
                                .filter(|i| !done(i.kind, &i.value))
                                .map(|i| Some((i.kind, i.value.as_str())))
                                .collect()
                        }
                    };
                for indicator in indicators {
                    let values = Values { trigger, indicator };
                    let mut argv = vec![exec.program.to_string_lossy().into_owned()];
                    // A value that is missing (an incident not yet
                    // received) drops the run rather than run it with a
                    // blank argument.
                    let Some(args) = exec
                        .args
                        .iter()
                        .map(|arg| arg.expand(|p| values.get(p)))
                        .collect::<Option<Vec<String>>>()
                    else {
                        continue;
                    };
                    argv.extend(args);
                    let key = run_key(playbook, trigger, index, indicator);
                    let env = values.env(playbook, &key, &exec.env);
                    let mut action = planned(
                        PlannedKind::Exec {
                            argv,
                            env,
                            cwd: exec.cwd.clone(),
                            timeout: exec.timeout,
                            stdin: payload.clone(),
                        },
                        key,
                    );
                    action.effect = match indicator {
                        None => Effect::None,
                        Some((kind, value)) if trigger.event.is_undo() => Effect::Undone {
                            kind,
                            value: value.to_owned(),
                        },
                        Some((kind, value)) => Effect::Acted {
                            kind,
                            value: value.to_owned(),
                        },
                    };
                    out.push(action);
                }
            }
            Action::Webhook(hook) => out.push(planned(
                PlannedKind::Webhook {
                    url: hook.url.clone(),
                    headers: hook.headers.clone(),
                    timeout: hook.timeout,
                    retries: hook.retries,
                    body: payload.clone(),
                    ca_file: hook.ca_file.clone(),
                    hmac: hook.hmac.clone(),
                },
                run_key(playbook, trigger, index, None),
            )),
            Action::Tag(tag, when) => out.push(planned(
                PlannedKind::Tag(tag.clone(), *when),
                run_key(playbook, trigger, index, None),
            )),
            Action::Note(note, when) => out.push(planned(
                PlannedKind::Note(note.clone(), *when),
                run_key(playbook, trigger, index, None),
            )),
        }
    }
}

fn from_matches(from: &From, who: Option<&Fingerprint>, trigger: &Trigger<'_>) -> bool {
    match (from, who) {
        (From::Any, _) => true,
        (_, None) => false,
        (From::Own, Some(who)) => who == trigger.own,
        (From::Peers, Some(who)) => who != trigger.own,
        (From::List(certs), Some(who)) => {
            let name = std::cell::OnceCell::new();
            certs.iter().any(|cert| match cert {
                CertRef::Fingerprint(fpr) => fpr == who,
                CertRef::Name(wanted) => name
                    .get_or_init(|| (trigger.names)(who))
                    .as_deref()
                    .is_some_and(|n: &str| n.eq_ignore_ascii_case(wanted)),
            })
        }
    }
}

/// `playbook:event:incident:version:action[:type:value]`, the version
/// escaped so the fields cannot run into each other.
fn run_key(
    playbook: &Playbook,
    trigger: &Trigger<'_>,
    index: usize,
    indicator: Option<(IndicatorType, &str)>,
) -> String {
    let incident = trigger
        .incident
        .map_or_else(|| "-".to_owned(), |i| i.id.to_string());
    let version = trigger.version.replace('%', "%25").replace(':', "%3A");
    let mut key = format!(
        "{}:{}:{incident}:{version}:{index}",
        playbook.name,
        trigger.event.as_str()
    );
    if let Some((kind, value)) = indicator {
        key.push_str(&format!(":{}:{value}", kind.as_str()));
    }
    key
}

/// An argument as shown in run history: bare when plain, else quoted
/// with escapes.
fn quoted(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain {
        arg.to_owned()
    } else {
        format!("{arg:?}")
    }
}

fn cut(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tlp_tests;
