//! Planning: from an event and the loaded playbooks to the exact actions
//! to run, with argv, environment and stdin filled in.
//!
//! Pure: no processes, no I/O, no clock, so every gate and every
//! substitution is unit-tested here without running anything. The gates
//! live here, in one place: an incident above a playbook's `max_tlp`, an
//! incident this node cannot read, or a retracted incident (for anything
//! but `retraction.received`) never runs the playbook at all.
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

use cer_proto::incident::{IncidentState, IndicatorEntry};
use cer_proto::model::{Severity, Tlp};
use cer_proto::Fingerprint;
use uuid::Uuid;

pub use super::spec::EventKind;
pub use super::spec::When;
use super::spec::{Action, CertRef, From, Placeholder, Playbook, WebhookUrl, EXEC_PATH};

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
}

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
        headers: Vec<(String, String)>,
        /// Per attempt.
        timeout: Duration,
        retries: u32,
        body: Arc<[u8]>,
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
    let mut payload_cache: Option<Arc<[u8]>> = None;
    let mut actions = Vec::new();
    // A disabled playbook is loaded and checked, and `playbook test`
    // still shows what it would do, but nothing triggers it.
    for playbook in playbooks.iter().filter(|p| p.enabled) {
        if evaluate(playbook, trigger).is_ok() {
            let payload = payload_cache
                .get_or_insert_with(|| payload(trigger))
                .clone();
            expand(playbook, trigger, &payload, &mut actions);
        }
    }
    actions
}

/// What one playbook would do for the trigger, or why it does nothing.
pub fn plan_one(playbook: &Playbook, trigger: &Trigger<'_>) -> Result<Vec<PlannedAction>, Skip> {
    evaluate(playbook, trigger)?;
    let mut actions = Vec::new();
    expand(playbook, trigger, &payload(trigger), &mut actions);
    Ok(actions)
}

/// Whether the playbook runs for this trigger: its events, the gates and
/// its `match` conditions.
pub fn evaluate(playbook: &Playbook, trigger: &Trigger<'_>) -> Result<(), Skip> {
    let event = trigger.event;
    if !playbook.on.contains(&event) {
        return Err(Skip::NotOn(event));
    }
    let matcher = &playbook.matcher;
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
    if needs_content {
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
    if !matcher.has_indicator.is_empty()
        && !incident
            .indicators
            .iter()
            .any(|i| matcher.has_indicator.contains(&i.kind))
    {
        return Err(Skip::NoIndicator);
    }
    Ok(())
}

/// The JSON actions get on stdin and webhooks as their body:
/// `{"event": "incident.received", "incident": {…IncidentState…}}` for
/// incident events (plus `reporter_name` when known), and
/// `{"event": "peer.down", "peer": "FPR", "peer_name": "…"}` for peer
/// events. Only built for triggers that passed the TLP gate.
pub fn payload(trigger: &Trigger<'_>) -> Arc<[u8]> {
    let mut object = serde_json::Map::new();
    object.insert("event".into(), trigger.event.as_str().into());
    if let Some(incident) = trigger.incident {
        // Serializing a folded state cannot fail for parsed data; keep
        // the event rather than drop the run if it ever does.
        let value = serde_json::to_value(incident).unwrap_or(serde_json::Value::Null);
        object.insert("incident".into(), value);
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
    let mut bytes = serde_json::to_vec(&object).unwrap_or_default();
    bytes.push(b'\n');
    bytes.into()
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

    /// Whether it applies only if every earlier action of its playbook,
    /// for the same trigger, succeeded (`when: previous_succeeded`).
    pub fn waits_for_success(&self) -> bool {
        matches!(
            self.kind,
            PlannedKind::Tag(_, When::PreviousSucceeded)
                | PlannedKind::Note(_, When::PreviousSucceeded)
        )
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
    indicator: Option<&'t IndicatorEntry>,
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
            Placeholder::IndicatorType => self.indicator.map(|i| i.kind.as_str().to_owned()),
            Placeholder::IndicatorValue => self.indicator.map(|i| i.value.clone()),
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
        if self.indicator.is_some() {
            set("CER_INDICATOR_TYPE", self.get(Placeholder::IndicatorType));
            set("CER_INDICATOR_VALUE", self.get(Placeholder::IndicatorValue));
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
        let planned = |kind: PlannedKind, key: String| PlannedAction {
            playbook: playbook.name.clone(),
            event: trigger.event,
            incident: incident_id,
            action_index: index,
            kind,
            key,
        };
        match action {
            Action::Exec(exec) => {
                let indicators: Vec<Option<&IndicatorEntry>> = match &exec.for_each_indicator {
                    None => vec![None],
                    Some(kinds) => {
                        let mut seen = BTreeSet::new();
                        trigger
                            .incident
                            .map(|i| i.indicators.as_slice())
                            .unwrap_or_default()
                            .iter()
                            .filter(|i| kinds.contains(&i.kind))
                            .filter(|i| seen.insert((i.kind, i.value.as_str())))
                            .map(Some)
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
                    out.push(planned(
                        PlannedKind::Exec {
                            argv,
                            env,
                            cwd: exec.cwd.clone(),
                            timeout: exec.timeout,
                            stdin: payload.clone(),
                        },
                        key,
                    ));
                }
            }
            Action::Webhook(hook) => out.push(planned(
                PlannedKind::Webhook {
                    url: hook.url.clone(),
                    headers: hook.headers.clone(),
                    timeout: hook.timeout,
                    retries: hook.retries,
                    body: payload.clone(),
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
    indicator: Option<&IndicatorEntry>,
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
    if let Some(indicator) = indicator {
        key.push_str(&format!(":{}:{}", indicator.kind.as_str(), indicator.value));
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

#[cfg(test)]
pub(crate) mod tests {
    use super::super::spec::parse;
    use super::*;
    use cer_proto::envelope::Kind;
    use cer_proto::incident::{Content, Event, Retracted, TimelineEntry};
    use cer_proto::model::{Classification, IndicatorType, Status, Timestamp};
    use cer_proto::EnvelopeId;

    pub(crate) fn fpr(c: char) -> Fingerprint {
        Fingerprint::parse(&c.to_string().repeat(40)).unwrap()
    }

    fn at() -> Timestamp {
        "2026-11-28T13:00:00Z".parse().unwrap()
    }

    fn names(f: &Fingerprint) -> Option<String> {
        match f.as_str().chars().next() {
            Some('A') => Some("KE-CIRT".into()),
            Some('B') => Some("own-cert".into()),
            _ => None,
        }
    }

    pub(crate) fn entry(kind: IndicatorType, raw: &str) -> IndicatorEntry {
        IndicatorEntry {
            kind,
            value: kind.normalize(raw).unwrap(),
            first_seen: at(),
            last_seen: at(),
            confidence: None,
            comment: None,
            reported_by: vec![fpr('A')],
            sightings: 0,
        }
    }

    /// A high-severity green C2 incident from A with two IPs and a domain.
    pub(crate) fn incident() -> IncidentState {
        IncidentState {
            id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            reporter: Some(fpr('A')),
            tlp: Tlp::Green,
            recipients: vec![],
            filed: Some(at()),
            updated: at(),
            readable: true,
            content: Some(Content {
                title: "C2 server".into(),
                description: "seen beaconing".into(),
                severity: Severity::High,
                classification: Classification::parse("malicious-code/c2-server").unwrap(),
                status: Status::New,
                affected: Default::default(),
                occurred: None,
                detected: None,
                tags: vec!["botnet".into(), "c2".into()],
            }),
            indicators: vec![
                entry(IndicatorType::Ipv4, "203.0.113.7"),
                entry(IndicatorType::Domain, "c2.example"),
                entry(IndicatorType::Ipv6, "2001:db8::7"),
            ],
            retracted: None,
            timeline: vec![],
        }
    }

    fn trigger<'a>(
        event: EventKind,
        incident: Option<&'a IncidentState>,
        own: &'a Fingerprint,
    ) -> Trigger<'a> {
        Trigger {
            event,
            incident,
            peer: None,
            own,
            names: &names,
            version: "v1".into(),
        }
    }

    const ALL_INCIDENT_EVENTS: &str = "[incident.filed, incident.received, incident.updated, sighting.received, retraction.received, receipt.received]";

    fn playbook(extra: &str) -> Playbook {
        let text = format!("name: t\non: {ALL_INCIDENT_EVENTS}\n{extra}\nactions:\n  - tag: hit\n");
        parse(&text, "playbooks/t.yaml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn matching_table() {
        type Change = fn(&mut IncidentState);
        let none: Change = |_| {};
        let cases: &[(&str, &str, Change, EventKind, bool)] = &[
            ("no conditions", "", none, EventKind::IncidentReceived, true),
            ("event not listed", "", none, EventKind::PeerUp, false),
            (
                "severity equal",
                "match: {severity_at_least: high}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "severity above",
                "match: {severity_at_least: medium}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "severity below",
                "match: {severity_at_least: critical}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "class exact",
                "match: {classification: [malicious-code/c2-server]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "class wildcard",
                "match: {classification: [\"malicious-code/*\"]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "class other wildcard",
                "match: {classification: [\"fraud/*\"]}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "class any of list",
                "match: {classification: [fraud/phishing, \"malicious-code/*\"]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "class star",
                "match: {classification: [\"*\"]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "tlp listed",
                "match: {tlp: [clear, green]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "tlp not listed",
                "match: {tlp: [clear]}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "tlp listed amber",
                "max_tlp: amber\nmatch: {tlp: [amber]}",
                |i| i.tlp = Tlp::Amber,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "from any",
                "match: {from: any}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "from own, peer's",
                "match: {from: own}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "from own, own",
                "match: {from: own}",
                |i| i.reporter = Some(fpr('B')),
                EventKind::IncidentFiled,
                true,
            ),
            (
                "from peers, peer's",
                "match: {from: peers}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "from peers, own",
                "match: {from: peers}",
                |i| i.reporter = Some(fpr('B')),
                EventKind::IncidentFiled,
                false,
            ),
            (
                "from name, any case",
                "match: {from: [ke-cirt]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "from other name",
                "match: {from: [cn-cert]}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "from fingerprint",
                "match: {from: [\"aaaa aaaa aaaa aaaa aaaa aaaa aaaa aaaa aaaa aaaa\"]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "from other fingerprint",
                "match: {from: [CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC]}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "from list, no reporter",
                "match: {from: [ke-cirt]}",
                |i| i.reporter = None,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "has ipv4",
                "match: {has_indicator: [ipv4]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "has url or md5",
                "match: {has_indicator: [url, md5]}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "tags all present",
                "match: {tags: [botnet, C2]}",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "tag missing",
                "match: {tags: [botnet, ransomware]}",
                none,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "green under default",
                "",
                none,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "amber over default green",
                "",
                |i| i.tlp = Tlp::Amber,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "amber under max amber",
                "max_tlp: amber",
                |i| i.tlp = Tlp::Amber,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "amber+strict over amber",
                "max_tlp: amber",
                |i| i.tlp = Tlp::AmberStrict,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "red over amber+strict",
                "max_tlp: amber+strict",
                |i| i.tlp = Tlp::Red,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "red under red",
                "max_tlp: red",
                |i| i.tlp = Tlp::Red,
                EventKind::IncidentReceived,
                true,
            ),
            (
                "unreadable",
                "max_tlp: red",
                |i| {
                    i.readable = false;
                    i.content = None;
                },
                EventKind::IncidentReceived,
                false,
            ),
            (
                "unreadable, no conditions either",
                "",
                |i| {
                    i.readable = false;
                    i.content = None;
                    i.tlp = Tlp::Clear;
                },
                EventKind::IncidentUpdated,
                false,
            ),
            (
                "retracted, received",
                "",
                retract,
                EventKind::IncidentReceived,
                false,
            ),
            (
                "retracted, updated",
                "",
                retract,
                EventKind::IncidentUpdated,
                false,
            ),
            (
                "retracted, sighting",
                "",
                retract,
                EventKind::SightingReceived,
                false,
            ),
            (
                "retracted, retraction",
                "",
                retract,
                EventKind::RetractionReceived,
                true,
            ),
            (
                "retracted, retraction, over tlp",
                "",
                |i| {
                    retract(i);
                    i.tlp = Tlp::Amber
                },
                EventKind::RetractionReceived,
                false,
            ),
            (
                "retracted, retraction needs content",
                "match: {severity_at_least: low}",
                retract,
                EventKind::RetractionReceived,
                false,
            ),
        ];
        let own = fpr('B');
        let mut failures = Vec::new();
        for (what, extra, change, event, want) in cases {
            let playbook = playbook(extra);
            let mut state = incident();
            change(&mut state);
            let got = evaluate(&playbook, &trigger(*event, Some(&state), &own));
            if got.is_ok() != *want {
                failures.push(format!("{what}: wanted {want}, got {got:?}"));
            }
            assert_eq!(
                plan(
                    std::slice::from_ref(&playbook),
                    &trigger(*event, Some(&state), &own)
                )
                .is_empty(),
                !want,
                "{what}"
            );
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn a_disabled_playbook_plans_nothing_but_can_be_tested() {
        let own = fpr('B');
        let state = incident();
        let on = trigger(EventKind::IncidentReceived, Some(&state), &own);
        let enabled = playbook("enabled: true");
        assert_eq!(plan(std::slice::from_ref(&enabled), &on).len(), 1);
        let disabled = playbook("enabled: false");
        assert!(!disabled.enabled);
        assert!(plan(std::slice::from_ref(&disabled), &on).is_empty());
        assert_eq!(plan_one(&disabled, &on).map(|a| a.len()), Ok(1));
    }

    #[test]
    fn tags_and_notes_wait_for_success_unless_always() {
        let own = fpr('B');
        let state = incident();
        let text = format!("name: t\non: {ALL_INCIDENT_EVENTS}\nactions:\n  - tag: a\n  - note: n\n    when: always\n  - tag: b\n    when: previous_succeeded\n");
        let playbook = parse(&text, "playbooks/t.yaml").unwrap();
        let actions = plan(
            std::slice::from_ref(&playbook),
            &trigger(EventKind::IncidentReceived, Some(&state), &own),
        );
        let waits: Vec<bool> = actions.iter().map(|a| a.waits_for_success()).collect();
        assert_eq!(waits, [true, false, true]);
    }

    fn retract(state: &mut IncidentState) {
        state.retracted = Some(Retracted {
            by: EnvelopeId::of(b"r"),
            at: at(),
            reason: None,
        });
        state.readable = false;
        state.content = None;
        state.indicators.clear();
    }

    #[test]
    fn skip_reasons_read_well() {
        let own = fpr('B');
        let mut state = incident();
        state.tlp = Tlp::Red;
        let skip = evaluate(
            &playbook(""),
            &trigger(EventKind::IncidentReceived, Some(&state), &own),
        )
        .unwrap_err();
        assert_eq!(
            skip.to_string(),
            "the incident is TLP:red, above the playbook's max_tlp green"
        );
        let skip = evaluate(
            &playbook(""),
            &trigger(EventKind::IncidentReceived, None, &own),
        )
        .unwrap_err();
        assert_eq!(skip, Skip::NoIncident);
    }

    #[test]
    fn peer_events_match_on_the_peer() {
        let own = fpr('B');
        let playbook = parse(
            "name: p\non: [peer.down, mesh.equivocation]\nmatch: {from: [ke-cirt]}\nactions:\n  - exec:\n      argv: [/bin/true, \"{event}\", \"{peer}\"]\n",
            "p.yaml",
        )
        .unwrap();
        let ke = fpr('A');
        let other = fpr('C');
        let mut t = trigger(EventKind::PeerDown, None, &own);
        assert_eq!(evaluate(&playbook, &t), Err(Skip::NoPeer));
        t.peer = Some(&other);
        assert_eq!(evaluate(&playbook, &t), Err(Skip::From));
        t.peer = Some(&ke);
        let actions = plan(std::slice::from_ref(&playbook), &t);
        assert_eq!(actions.len(), 1);
        let PlannedKind::Exec {
            argv, env, stdin, ..
        } = &actions[0].kind
        else {
            panic!("not exec");
        };
        assert_eq!(argv, &["/bin/true", "peer.down", ke.as_str()]);
        assert!(env.contains(&("CER_PEER".into(), ke.to_string())));
        assert!(env.contains(&("CER_PEER_NAME".into(), "KE-CIRT".into())));
        assert!(!env.iter().any(|(k, _)| k == "CER_INCIDENT_ID"));
        let json: serde_json::Value = serde_json::from_slice(stdin).unwrap();
        assert_eq!(json["event"], "peer.down");
        assert_eq!(json["peer"], ke.as_str());
        assert_eq!(json["peer_name"], "KE-CIRT");
        assert_eq!(actions[0].incident, None);
    }

    fn block_ip() -> Playbook {
        parse(
            r#"name: block
on: [incident.received, incident.updated]
match:
  has_indicator: [ipv4, ipv6]
max_tlp: amber
actions:
  - exec:
      argv: ["/usr/local/sbin/block-ip", "{indicator.value}", "--type={indicator.type}", "{incident.id}", "{{literal}}"]
      for_each_indicator: [ipv4, ipv6]
      env: { BLOCK_TABLE: cert }
      timeout: 5s
  - webhook:
      url: "http://127.0.0.1:9000/hook"
  - tag: blocked
  - note: pushed to the firewall
"#,
            "/etc/cerd/playbooks/block.yaml",
        )
        .unwrap()
    }

    #[test]
    fn for_each_indicator_fans_out_with_typed_values() {
        let own = fpr('B');
        let state = incident();
        let actions = plan(
            &[block_ip()],
            &trigger(EventKind::IncidentReceived, Some(&state), &own),
        );
        let kinds: Vec<String> = actions.iter().map(|a| a.describe()).collect();
        let id = state.id.to_string();
        assert_eq!(
            kinds,
            [
                format!(
                    "exec /usr/local/sbin/block-ip 203.0.113.7 --type=ipv4 {id} \"{{literal}}\""
                ),
                format!(
                    "exec /usr/local/sbin/block-ip 2001:db8::7 --type=ipv6 {id} \"{{literal}}\""
                ),
                "webhook http://127.0.0.1:9000/hook".to_owned(),
                "tag blocked".to_owned(),
                "note \"pushed to the firewall\"".to_owned(),
            ]
        );
        let PlannedKind::Exec {
            argv,
            env,
            timeout,
            stdin,
            cwd,
        } = &actions[1].kind
        else {
            panic!("not exec");
        };
        assert_eq!(argv[1], "2001:db8::7");
        assert_eq!(argv[4], "{literal}");
        assert_eq!(*timeout, Duration::from_secs(5));
        assert_eq!(*cwd, None);
        let env: std::collections::BTreeMap<_, _> = env.iter().cloned().collect();
        let author = fpr('A');
        let expect = [
            ("PATH", EXEC_PATH),
            ("CER_PLAYBOOK", "block"),
            ("CER_EVENT", "incident.received"),
            ("CER_INCIDENT_ID", id.as_str()),
            ("CER_TLP", "green"),
            ("CER_SEVERITY", "high"),
            ("CER_CLASSIFICATION", "malicious-code/c2-server"),
            ("CER_STATUS", "new"),
            ("CER_AUTHOR", author.as_str()),
            ("CER_AUTHOR_NAME", "KE-CIRT"),
            ("CER_INDICATOR_TYPE", "ipv6"),
            ("CER_INDICATOR_VALUE", "2001:db8::7"),
            ("BLOCK_TABLE", "cert"),
            ("CER_RUN_KEY", actions[1].key.as_str()),
        ];
        assert_eq!(env.len(), expect.len(), "{env:?}");
        for name in env.keys().filter(|k| k.starts_with("CER_")) {
            assert!(
                super::super::spec::CER_VARIABLES.contains(&name.as_str()),
                "{name}"
            );
        }
        for (k, v) in expect {
            assert_eq!(env.get(k).map(String::as_str), Some(v), "{k}");
        }
        let json: serde_json::Value = serde_json::from_slice(stdin).unwrap();
        assert_eq!(json["event"], "incident.received");
        assert_eq!(json["incident"]["content"]["title"], "C2 server");
        assert_eq!(json["reporter_name"], "KE-CIRT");
        assert_eq!(
            serde_json::from_value::<IncidentState>(json["incident"].clone()).unwrap(),
            state
        );
        // One payload shared by every action of the trigger.
        let PlannedKind::Webhook { body, retries, .. } = &actions[2].kind else {
            panic!("not webhook");
        };
        assert!(Arc::ptr_eq(body, stdin));
        assert_eq!(*retries, 2);
    }

    #[test]
    fn keys_are_unique_and_stable() {
        let own = fpr('B');
        let state = incident();
        let playbooks = [block_ip(), playbook("")];
        let t = trigger(EventKind::IncidentReceived, Some(&state), &own);
        let first: Vec<String> = plan(&playbooks, &t).into_iter().map(|a| a.key).collect();
        let again: Vec<String> = plan(&playbooks, &t).into_iter().map(|a| a.key).collect();
        assert_eq!(first, again);
        let unique: BTreeSet<&String> = first.iter().collect();
        assert_eq!(unique.len(), first.len(), "{first:?}");
        assert_eq!(
            first[0],
            format!("block:incident.received:{}:v1:0:ipv4:203.0.113.7", state.id)
        );
        // Another version, event or incident gives other keys.
        let mut t2 = trigger(EventKind::IncidentReceived, Some(&state), &own);
        t2.version = "v2".into();
        let t3 = trigger(EventKind::IncidentUpdated, Some(&state), &own);
        let mut other = state.clone();
        other.id = Uuid::from_u128(7);
        let t4 = trigger(EventKind::IncidentReceived, Some(&other), &own);
        for t in [t2, t3, t4] {
            for action in plan(&playbooks, &t) {
                assert!(!unique.contains(&action.key), "{}", action.key);
            }
        }
        // A version with ':' cannot collide with the fields after it.
        let mut t5 = trigger(EventKind::IncidentReceived, Some(&state), &own);
        t5.version = "v1:0".into();
        assert!(plan(&playbooks, &t5)[0].key.contains(":v1%3A0:0:"));
    }

    #[test]
    fn for_each_with_no_matching_indicator_plans_no_exec() {
        let own = fpr('B');
        let mut state = incident();
        state.indicators.retain(|i| i.kind == IndicatorType::Domain);
        let mut playbook = block_ip();
        playbook.matcher.has_indicator.clear();
        let actions = plan(
            &[playbook],
            &trigger(EventKind::IncidentReceived, Some(&state), &own),
        );
        assert_eq!(
            actions.iter().map(|a| a.action_index).collect::<Vec<_>>(),
            [1, 2, 3]
        );
    }

    #[test]
    fn envelope_kinds_map_to_events() {
        let (me, peer) = (fpr('B'), fpr('A'));
        let cases = [
            (Kind::Incident, &me, Some(EventKind::IncidentFiled)),
            (Kind::Incident, &peer, Some(EventKind::IncidentReceived)),
            (Kind::Update, &me, Some(EventKind::IncidentUpdated)),
            (Kind::Update, &peer, Some(EventKind::IncidentUpdated)),
            (Kind::Sighting, &peer, Some(EventKind::SightingReceived)),
            (Kind::Sighting, &me, None),
            (Kind::Retraction, &peer, Some(EventKind::RetractionReceived)),
            (Kind::Receipt, &peer, Some(EventKind::ReceiptReceived)),
            (Kind::Receipt, &me, None),
        ];
        for (kind, author, want) in cases {
            assert_eq!(
                EventKind::for_envelope(kind, author, &me),
                want,
                "{kind} by {author}"
            );
        }
    }

    /// Every kind of hostile text an incident from another country can
    /// carry, for the injection tests here and in `run`.
    pub(crate) const HOSTILE: &[&str] = &[
        "; rm -rf /tmp/x",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "{{7*7}}",
        "{incident.id}",
        "{indicator.value}",
        "a\nb\r\nc",
        "nul\0byte",
        "' \" \\ | & > < *",
        "-rf",
        "%s%n%x",
    ];

    /// An incident whose every string field is hostile, with filename and
    /// url indicators built from the same corpus (as far as each type's
    /// validation lets them through).
    pub(crate) fn hostile_incident() -> IncidentState {
        let mut state = incident();
        let long = "A".repeat(100_000);
        let all = HOSTILE.join(" ");
        let content = state.content.as_mut().unwrap();
        content.title = format!("{all}{long}");
        content.description = all.clone();
        content.tags = HOSTILE.iter().map(|s| s.to_string()).collect();
        state.timeline.push(TimelineEntry {
            envelope: EnvelopeId::of(b"u"),
            author: fpr('A'),
            seq: 2,
            at: at(),
            kind: Kind::Update,
            event: Event::Updated {
                changes: vec![all.clone()],
                note: Some(all.clone()),
                indicators_added: 0,
                ignored: vec![],
            },
        });
        state.indicators.clear();
        for raw in HOSTILE.iter().copied().chain([long.as_str()]) {
            for kind in [IndicatorType::Filename, IndicatorType::Url] {
                let raw = match kind {
                    IndicatorType::Url => format!("http://evil.example/{raw}"),
                    _ => raw.to_owned(),
                };
                if let Ok(value) = kind.normalize(&raw) {
                    let mut e = entry(IndicatorType::Ipv4, "192.0.2.1");
                    e.kind = kind;
                    e.value = value;
                    e.comment = Some(all.clone());
                    state.indicators.push(e);
                }
            }
        }
        state
    }

    #[test]
    fn injection_corpus_only_fills_typed_values_into_their_own_element() {
        let own = fpr('B');
        let state = hostile_incident();
        assert!(state.indicators.len() >= 12, "{}", state.indicators.len());
        let playbook = parse(
            r#"name: inject
on: [incident.received]
actions:
  - exec:
      argv: ["/bin/echo", "{indicator.value}", "id={incident.id}", "{indicator.type}", "x{{incident.id}}"]
      for_each_indicator: [filename, url]
"#,
            "inject.yaml",
        )
        .unwrap();
        let actions = plan(
            &[playbook],
            &trigger(EventKind::IncidentReceived, Some(&state), &own),
        );
        assert_eq!(actions.len(), state.indicators.len());
        for (action, indicator) in actions.iter().zip(&state.indicators) {
            let PlannedKind::Exec { argv, env, .. } = &action.kind else {
                panic!("not exec");
            };
            assert_eq!(
                argv,
                &[
                    "/bin/echo".to_owned(),
                    indicator.value.clone(),
                    format!("id={}", state.id),
                    indicator.kind.as_str().to_owned(),
                    "x{incident.id}".to_owned(),
                ]
            );
            // Free text is never in argv or the environment.
            for (_, value) in env {
                assert!(!value.contains("rm -rf"), "{value}");
                assert!(!value.contains("C2 server"));
            }
        }
    }
}
