//! Fixtures: incidents described in a file, to test a playbook against
//! without a node (`cerctl playbook test FILE --fixture FIXTURE`).
//!
//! A fixture is an incident file — the fields `incident file --from`
//! reads, checked the same way — plus who filed it and, optionally, the
//! updates that followed, each under its own TLP and checked as a node
//! checks an update before publishing it. [`Fixture::state`] folds it with
//! cer-proto's own fold, so a playbook is planned against what a node
//! holding those envelopes would hold.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use cer_proto::api::UpdateIncident;
use cer_proto::envelope::{Body, Header, IncidentBody, UpdateBody};
use cer_proto::incident::{FoldInput, IncidentState};
use cer_proto::model::{normalize_tag, Timestamp, Tlp};
use cer_proto::{EnvelopeId, FieldError, FieldErrors, Fingerprint};
use uuid::Uuid;

use super::{
    entries, fields, located, normalize, read_text, scalar_as_text, take, InputError, FIELDS,
};

/// The stand-in fingerprint of this node (`reporter: own`, `from: own`).
pub const OWN: &str = "0000000000000000000000000000000000000001";
/// The stand-in fingerprint of another CERT (`reporter: peer`, the default).
pub const PEER: &str = "0000000000000000000000000000000000000002";

/// The fields a fixture adds to an incident file's.
const FIXTURE_FIELDS: [&str; 5] = ["id", "reporter", "reporter_name", "filed", "updates"];

/// What an update in a fixture may say.
const UPDATE_FIELDS: [&str; 12] = [
    "note",
    "indicators",
    "tlp",
    "from",
    "at",
    "status",
    "severity",
    "title",
    "description",
    "classification",
    "tags",
    "to",
];

/// An incident file's fields that mean nothing without a node.
const NODE_ONLY: [&str; 2] = ["to", "request_id"];

/// A checked fixture, ready to fold.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// `id` in the file, or one derived from the file's text, so that the
    /// same fixture always gives the same run keys.
    pub id: Uuid,
    pub tlp: Tlp,
    pub reporter: Fingerprint,
    /// The name the trust store would give the reporter, if any.
    pub reporter_name: Option<String>,
    /// When it was filed; None: when it is folded.
    pub filed: Option<Timestamp>,
    body: IncidentBody,
    updates: Vec<Update>,
}

/// One update after the filing, as its envelope would say.
#[derive(Debug, Clone)]
struct Update {
    author: Fingerprint,
    tlp: Tlp,
    /// None: a second after the one before.
    at: Option<Timestamp>,
    body: UpdateBody,
}

/// Reads a fixture from `path` (`-`: stdin) and checks it.
pub fn read_fixture(path: &Path, stdin: &mut (dyn Read + Send)) -> Result<Fixture, InputError> {
    let (name, text) = read_text(path, stdin)?;
    parse_fixture(&text, &name)
}

/// Parses a fixture (YAML, or JSON when it starts with `{`) and checks
/// every field, reporting every refusal at once, each with its field and
/// (in YAML) its line.
pub fn parse_fixture(text: &str, name: &str) -> Result<Fixture, InputError> {
    let mut errors = FieldErrors::default();
    let mut incident_entries = Vec::new();
    let mut id = None;
    let mut reporter = None;
    let mut reporter_name = None;
    let mut filed = None;
    let mut raw_updates = None;
    for entry in entries(text, name)? {
        let at = entry.at;
        let mut refuse = |field: &str, reason: String| {
            errors.push(FieldError::new(field.to_owned(), located(reason, at)))
        };
        match entry.key.as_str() {
            "id" => match take::<Uuid>(entry.value, true) {
                Ok(v) => id = Some(v),
                Err(reason) => refuse("id", reason),
            },
            "reporter" => match who(entry.value) {
                Ok(v) => reporter = Some(v),
                Err(reason) => refuse("reporter", reason),
            },
            "reporter_name" => match take::<String>(entry.value, true).and_then(cert_name) {
                Ok(v) => reporter_name = Some(v),
                Err(reason) => refuse("reporter_name", reason),
            },
            "filed" => match take::<Timestamp>(entry.value, true) {
                Ok(v) => filed = Some(v),
                Err(reason) => refuse("filed", reason),
            },
            "updates" => raw_updates = Some((entry.value, at)),
            key if NODE_ONLY.contains(&key) => refuse(
                key,
                "not used in a fixture: the incident is planned as this node would read it".into(),
            ),
            _ => incident_entries.push(entry),
        }
    }
    let known: Vec<&str> = FIELDS
        .iter()
        .filter(|f| !NODE_ONLY.contains(f))
        .chain(FIXTURE_FIELDS.iter())
        .copied()
        .collect();
    let incident = match fields(incident_entries, &known) {
        Ok(mut incident) => {
            normalize(&mut incident);
            match incident.to_body() {
                Ok(body) => Some((incident.tlp, body)),
                Err(e) => {
                    errors.0.extend(e.0);
                    None
                }
            }
        }
        Err(e) => {
            errors.0.extend(e.0);
            None
        }
    };
    let reporter = reporter.unwrap_or_else(peer);
    let updates = match (raw_updates, &incident) {
        (Some((value, at)), Some((tlp, _))) => updates(value, at, *tlp, &reporter, &mut errors),
        _ => Vec::new(),
    };
    match incident {
        Some((tlp, body)) if errors.is_empty() => Ok(Fixture {
            id: id.unwrap_or_else(|| derived_id(text)),
            tlp,
            reporter,
            reporter_name,
            filed,
            body,
            updates,
        }),
        _ => Err(InputError::Invalid {
            name: name.to_owned(),
            what: "fixture",
            errors,
        }),
    }
}

impl Fixture {
    /// The incident as a node holding the fixture's envelopes (and able to
    /// read them all) folds it; `now` stands for a missing `filed`.
    pub fn state(&self, now: Timestamp) -> IncidentState {
        let filed = self.filed.unwrap_or(now);
        let mut seqs: BTreeMap<Fingerprint, u64> = BTreeMap::new();
        let mut envelope = |n: usize, author: &Fingerprint, created, tlp, body: Body| {
            let seq = seqs.entry(author.clone()).or_insert(0);
            *seq += 1;
            // Stand-in ids: unique per envelope, the same for the same
            // fixture.
            let mut seed = self.id.as_bytes().to_vec();
            seed.extend_from_slice(&(n as u64).to_be_bytes());
            FoldInput {
                id: EnvelopeId::of(&seed),
                header: Header {
                    author: author.clone(),
                    seq: *seq,
                    subject: self.id,
                    kind: body.kind(),
                    created,
                    tlp,
                    recipients: vec![],
                },
                body: Some(body),
            }
        };
        let mut inputs = vec![envelope(
            0,
            &self.reporter,
            filed,
            self.tlp,
            Body::Incident(self.body.clone()),
        )];
        let mut last = filed;
        for (n, update) in self.updates.iter().enumerate() {
            let at = update
                .at
                .unwrap_or(Timestamp(last.0 + time::Duration::seconds(1)));
            last = at;
            inputs.push(envelope(
                n + 1,
                &update.author,
                at,
                update.tlp,
                Body::Update(update.body.clone()),
            ));
        }
        IncidentState::fold(self.id, &inputs).expect("a fixture always holds its filing")
    }

    /// What the trust store would call `fingerprint`.
    pub fn name_of(&self, fingerprint: &Fingerprint) -> Option<String> {
        (*fingerprint == self.reporter)
            .then(|| self.reporter_name.clone())
            .flatten()
    }
}

/// This node's stand-in fingerprint.
pub fn own() -> Fingerprint {
    Fingerprint::parse(OWN).expect("a valid fingerprint")
}

fn peer() -> Fingerprint {
    Fingerprint::parse(PEER).expect("a valid fingerprint")
}

/// `own`, `peer` or a fingerprint.
fn who(value: serde_json::Value) -> Result<Fingerprint, String> {
    let text = take::<String>(value, true)?;
    match text.trim() {
        "own" => Ok(own()),
        "peer" => Ok(peer()),
        other => Fingerprint::parse(other)
            .map_err(|e| format!("expected own, peer or a CERT's fingerprint ({})", e.reason)),
    }
}

fn cert_name(name: String) -> Result<String, String> {
    let name = name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 128 {
        return Err("must be a CERT's name, 1 to 128 characters".into());
    }
    if name.chars().any(cer_proto::text::is_unsafe_for_terminal) {
        return Err("must not contain control or bidi characters".into());
    }
    Ok(name)
}

/// The updates, each checked as a node checks an update it is asked to
/// publish: its body, its label against the incident's, and who may
/// change the incident's fields.
fn updates(
    value: serde_json::Value,
    at: Option<(u64, u64)>,
    incident_tlp: Tlp,
    reporter: &Fingerprint,
    errors: &mut FieldErrors,
) -> Vec<Update> {
    let mut refuse =
        |field: String, reason: String| errors.push(FieldError::new(field, located(reason, at)));
    let serde_json::Value::Array(items) = value else {
        refuse(
            "updates".into(),
            "expected a list of updates ({note, indicators, tlp, from, at})".into(),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let field = |name: &str| format!("updates[{i}]{name}");
        let serde_json::Value::Object(mut map) = item else {
            refuse(field(""), "expected a mapping such as {note: TEXT}".into());
            continue;
        };
        let author = match map.remove("from").map(who).transpose() {
            Ok(author) => author.unwrap_or_else(|| reporter.clone()),
            Err(reason) => {
                refuse(field(".from"), reason);
                continue;
            }
        };
        let when = match map
            .remove("at")
            .map(|v| take::<Timestamp>(v, true))
            .transpose()
        {
            Ok(when) => when,
            Err(reason) => {
                refuse(field(".at"), reason);
                continue;
            }
        };
        if let Some(unknown) = map.keys().find(|k| !UPDATE_FIELDS.contains(&k.as_str())) {
            refuse(
                field(&format!(".{unknown}")),
                format!(
                    "unknown field; expected one of {}",
                    UPDATE_FIELDS.join(", ")
                ),
            );
            continue;
        }
        for key in ["note", "title", "description"] {
            if let Some(v) = map.get_mut(key) {
                *v = scalar_as_text(v.take());
            }
        }
        // Each indicator on its own, so a refusal names it.
        let mut problems: Vec<FieldError> = Vec::new();
        let mut indicators = Vec::new();
        match map.remove("indicators") {
            None => {}
            Some(serde_json::Value::Array(items)) => {
                for (j, item) in items.into_iter().enumerate() {
                    match take(item, false) {
                        Ok(indicator) => indicators.push(indicator),
                        Err(reason) => {
                            problems.push(FieldError::new(format!("indicators[{j}]"), reason))
                        }
                    }
                }
            }
            Some(_) => problems.push(FieldError::new(
                "indicators",
                "expected a list of indicators ({type, value})",
            )),
        }
        let mut update: UpdateIncident =
            match serde_json::from_value(serde_json::Value::Object(map)) {
                Ok(update) => update,
                Err(e) => {
                    refuse(field(""), e.to_string());
                    continue;
                }
            };
        update.indicators = indicators;
        if !problems.is_empty() {
            // The update's own checks would only complain about what is
            // missing for want of the refused indicators.
            for problem in &problems {
                refuse(
                    field(&format!(".{}", problem.field)),
                    problem.reason.clone(),
                );
            }
            continue;
        }
        if !update.to.is_empty() {
            problems.push(FieldError::new(
                "to",
                "not used in a fixture: this node reads every update",
            ));
            update.to.clear();
        }
        for tag in &mut update.tags {
            match normalize_tag(tag) {
                Ok(normal) => *tag = normal,
                Err(e) => problems.push(e),
            }
        }
        let tlp = update.label(incident_tlp).map_err(|e| problems.extend(e.0));
        let body = update.to_body().map_err(|e| problems.push(e));
        if let Ok(body) = &body {
            if body.changes_fields() && author != *reporter {
                problems.push(FieldError::new(
                    "from",
                    "only the incident's reporter changes its status, severity, title, description or classification",
                ));
            }
        }
        for problem in &problems {
            refuse(
                field(&format!(".{}", problem.field)),
                problem.reason.clone(),
            );
        }
        if let (Ok(tlp), Ok(body), true) = (tlp, body, problems.is_empty()) {
            out.push(Update {
                author,
                tlp,
                at: when,
                body,
            });
        }
    }
    out
}

/// A version 4 UUID made from the SHA-256 of the fixture's text.
fn derived_id(text: &str) -> Uuid {
    let hash = EnvelopeId::of(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.as_bytes()[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::envelope::Kind;
    use cer_proto::incident::Event;
    use cer_proto::model::Status;

    const FIXTURE: &str = "\
title: C2 server
severity: high
tlp: green
classification: malicious-code/c2-server
status: open
tags: [Botnet]
indicators:
  - {type: ipv4, value: 203.0.113.7, comment: beacon target}
reporter: peer
reporter_name: KE-CIRT
filed: 2026-11-28T13:00:00Z
updates:
  - note: takedown requested
    from: own
  - note: attributed to a known group
    tlp: amber
    indicators:
      - {type: ipv4, value: 198.51.100.9}
  - status: contained
";

    fn errors_of(err: &InputError) -> Vec<String> {
        match err {
            InputError::Invalid { errors, what, .. } => {
                assert_eq!(*what, "fixture");
                errors.0.iter().map(|e| e.to_string()).collect()
            }
            other => panic!("expected invalid fields, got {other:?}"),
        }
    }

    #[test]
    fn a_fixture_folds_as_a_node_would() {
        let fixture = parse_fixture(FIXTURE, "c2.yaml").unwrap();
        assert_eq!(fixture.reporter, peer());
        assert_eq!(fixture.name_of(&peer()).as_deref(), Some("KE-CIRT"));
        assert_eq!(fixture.name_of(&own()), None);
        let state = fixture.state(Timestamp(time::OffsetDateTime::UNIX_EPOCH));
        assert_eq!(state.id, fixture.id);
        assert_eq!(state.tlp, Tlp::Green);
        assert_eq!(state.filed, Some("2026-11-28T13:00:00Z".parse().unwrap()));
        assert!(state.readable);
        let content = state.content.as_ref().unwrap();
        assert_eq!(content.status, Status::Contained);
        assert_eq!(content.tags, ["botnet"]);
        let kinds: Vec<Kind> = state.timeline.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Incident, Kind::Update, Kind::Update, Kind::Update]
        );
        assert_eq!(state.timeline[1].author, own());
        assert_eq!(state.timeline[2].tlp, Some(Tlp::Amber));
        assert!(matches!(
            &state.timeline[2].event,
            Event::Updated { note: Some(n), .. } if n == "attributed to a known group"
        ));
        let values: Vec<&str> = state.indicators.iter().map(|i| i.value.as_str()).collect();
        assert_eq!(values, ["203.0.113.7", "198.51.100.9"]);
        assert_eq!(state.indicators[1].tlp, Some(Tlp::Amber));
        // The same text gives the same incident id.
        assert_eq!(parse_fixture(FIXTURE, "again.yaml").unwrap().id, fixture.id);
    }

    #[test]
    fn a_minimal_fixture_needs_only_the_incident() {
        let text = "title: x\nseverity: low\ntlp: clear\nclassification: test/test\n";
        let fixture = parse_fixture(text, "min.yaml").unwrap();
        let now = Timestamp(time::OffsetDateTime::UNIX_EPOCH);
        let state = fixture.state(now);
        assert_eq!(state.filed, Some(now));
        assert_eq!(state.reporter, Some(peer()));
        assert_eq!(state.timeline.len(), 1);
    }

    #[test]
    fn every_bad_field_is_named_with_its_line() {
        let bad = FIXTURE
            .replace("severity: high", "severity: hgih")
            .replace("reporter: peer", "reporter: somebody")
            .replace(
                "filed: 2026-11-28T13:00:00Z",
                "filed: yesterday\nto: [NG-CERT]",
            );
        let fields = errors_of(&parse_fixture(&bad, "bad.yaml").unwrap_err());
        for (field, line) in [
            ("severity: ", "line 2,"),
            (
                "reporter: expected own, peer or a CERT's fingerprint",
                "line 9,",
            ),
            ("filed: ", "line 11,"),
            ("to: not used in a fixture", "line 12,"),
        ] {
            assert!(
                fields
                    .iter()
                    .any(|f| f.starts_with(field) && f.contains(line)),
                "{field} at {line} missing from {fields:?}"
            );
        }
    }

    #[test]
    fn updates_are_checked_as_a_node_checks_them() {
        let bad = FIXTURE
            .replace("tlp: amber", "tlp: clear")
            .replace("  - status: contained\n", "  - status: contained\n    from: own\n  - {note: x, tlp: amber, tags: [apt]}\n  - {colour: red}\n  - {note: x, from: nobody}\n  - {indicators: [{type: sha256, value: abc}]}\n");
        let fields = errors_of(&parse_fixture(&bad, "bad.yaml").unwrap_err());
        let expect = [
            "updates[1].tlp: TLP:CLEAR is below the incident's TLP:GREEN",
            "updates[2].from: only the incident's reporter changes",
            "updates[3].tlp: an update above the incident's TLP:GREEN carries only a note and indicators",
            "updates[4].colour: unknown field; expected one of note, indicators, tlp, from, at",
            "updates[5].from: expected own, peer",
            "updates[6].indicators[0]: sha256: must be 64 hex digits",
        ];
        for prefix in expect {
            assert!(
                fields
                    .iter()
                    .any(|f| f.starts_with(prefix) && f.contains("(line 12,")),
                "{prefix} missing from {fields:?}"
            );
        }
        assert_eq!(fields.len(), expect.len(), "{fields:?}");
    }

    #[test]
    fn shipped_example_is_a_valid_fixture() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/fixtures/c2-incident.yaml");
        let fixture = read_fixture(&path, &mut std::io::empty()).unwrap();
        let state = fixture.state(Timestamp(time::OffsetDateTime::UNIX_EPOCH));
        assert!(state.readable && !state.indicators.is_empty());
        assert!(state.timeline.iter().any(|e| e.tlp.is_some()));
    }
}
