//! Request and response bodies of cerd's local HTTP API (DESIGN §8).
//!
//! Every type here is an interface shared by `cerd` (server) and `cerctl`
//! (client). Routes, all JSON, over the node's Unix socket:
//!
//! | method | path                              | request            | response            |
//! |--------|-----------------------------------|--------------------|---------------------|
//! | GET    | /v1/status                        |                    | [`Status`]          |
//! | GET    | /v1/health                        |                    | [`Health`]          |
//! | GET    | /v1/incidents?[`IncidentQuery`]   |                    | [`IncidentList`]    |
//! | POST   | /v1/incidents                     | [`FileIncident`]   | [`Filed`] (201)     |
//! | GET    | /v1/incidents/{id}                |                    | [`IncidentDetail`]  |
//! | POST   | /v1/incidents/{id}/updates        | [`UpdateIncident`] | [`Filed`] (201)     |
//! | POST   | /v1/incidents/{id}/retraction     | [`RetractIncident`]| [`Filed`] (201)     |
//! | POST   | /v1/incidents/{id}/receipts       | [`AcknowledgeIncident`] | [`Filed`] (201) |
//! | POST   | /v1/incidents/{id}/sightings      | [`SightIndicator`] | [`Filed`] (201)     |
//! | GET    | /v1/indicators?[`IocQuery`]       |                    | [`IocSearch`]       |
//! | GET    | /v1/peers                         |                    | [`PeerList`]        |
//! | GET    | /v1/certs                         |                    | [`CertList`]        |
//! | POST   | /v1/certs                         | [`AddCert`]        | [`CertInfo`] (201)  |
//! | DELETE | /v1/certs/{fingerprint}           |                    | [`CertInfo`]        |
//! | GET    | /v1/export?[`ExportQuery`]        |                    | [`ExportedEnvelope`] per line (NDJSON, streamed) |
//! | GET    | /v1/backup?[`BackupQuery`]        |                    | a backup file (streamed; `cerd restore` reads it) |
//! | GET    | /v1/playbooks                     |                    | [`PlaybookList`]    |
//! | POST   | /v1/playbooks/check               | [`CheckPlaybook`]  | [`PlaybookCheck`]   |
//! | POST   | /v1/playbooks/test                | [`TestPlaybook`]   | [`PlaybookTest`]    |
//! | GET    | /v1/playbooks/runs?[`RunQuery`]   |                    | [`RunList`]         |
//! | GET    | /v1/playbooks/acted?[`ActedQuery`] |                   | [`ActedList`]       |
//! | POST   | /v1/playbooks/resume              | [`ResumePlaybook`] | [`Resumed`]         |
//! | POST   | /v1/playbooks/forget              | [`ForgetPlaybook`] | [`Forgotten`]       |
//! | POST   | /v1/sign                          | the file's bytes   | ASCII-armored detached signature |
//! | GET    | /v1/taxii/clients                 |                    | [`TaxiiClientList`] |
//! | POST   | /v1/taxii/clients                 | [`AddTaxiiClient`] | [`TaxiiClientAdded`] (201) |
//! | DELETE | /v1/taxii/clients/{name}          |                    | [`TaxiiClient`]     |
//! | GET    | /metrics                          |                    | OpenMetrics text    |
//!
//! Errors are [`ApiError`] with a matching HTTP status.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{Header, IncidentBody, Kind, UpdateBody};
use crate::error::{FieldError, FieldErrors};
use crate::id::{EnvelopeId, Fingerprint};
use crate::incident::IncidentState;
use crate::model::{
    Affected, Classification, Indicator, IndicatorType, Severity, Status as IncidentStatus,
    Timestamp, Tlp,
};

/// The body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable: see [`ErrorCode`].
    pub code: String,
    pub message: String,
    /// For `invalid_field`: every refused field with its reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldProblem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldProblem {
    pub field: String,
    pub reason: String,
}

/// The error codes the API uses, with their HTTP statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// 400: the body or query is not of the expected shape.
    BadRequest,
    /// 422: a field's value is refused; see `fields`.
    InvalidField,
    /// 404
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 403: the request is well-formed but not allowed (e.g. updating
    /// another CERT's fields).
    Forbidden,
    /// 409: conflicts with the current state (e.g. already retracted).
    Conflict,
    /// 413
    TooLarge,
    /// 500
    Internal,
    /// 503: the node is shutting down or its store is unavailable.
    Unavailable,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 9] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidField,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Forbidden,
        ErrorCode::Conflict,
        ErrorCode::TooLarge,
        ErrorCode::Internal,
        ErrorCode::Unavailable,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Conflict => "conflict",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
        }
    }

    pub fn http_status(&self) -> u16 {
        match self {
            ErrorCode::BadRequest => 400,
            ErrorCode::InvalidField => 422,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Forbidden => 403,
            ErrorCode::Conflict => 409,
            ErrorCode::TooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
        }
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            error: ErrorBody {
                code: code.as_str().into(),
                message: message.into(),
                fields: vec![],
            },
        }
    }

    pub fn invalid(errors: &FieldErrors) -> Self {
        ApiError {
            error: ErrorBody {
                code: ErrorCode::InvalidField.as_str().into(),
                message: errors.to_string(),
                fields: errors
                    .0
                    .iter()
                    .map(|e| FieldProblem {
                        field: e.field.to_string(),
                        reason: e.reason.clone(),
                    })
                    .collect(),
            },
        }
    }

    pub fn is(&self, code: ErrorCode) -> bool {
        self.error.code == code.as_str()
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error.message)
    }
}

impl std::error::Error for ApiError {}

impl From<FieldError> for ApiError {
    fn from(e: FieldError) -> Self {
        ApiError::invalid(&FieldErrors::from(e))
    }
}

/// `GET /v1/status`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub name: String,
    pub fingerprint: Fingerprint,
    pub version: String,
    pub data_dir: String,
    pub api_socket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    pub uptime_seconds: u64,
    pub envelopes: u64,
    pub tombstones: u64,
    pub incidents: u64,
    pub indicators: u64,
    pub authors: u64,
    /// Bytes the store occupies on disk.
    pub store_bytes: u64,
    pub trusted_certs: u64,
    pub peers_connected: u64,
    pub peers_configured: u64,
    pub equivocations: u64,
    /// The newest event in the store's durable log (stored envelopes and
    /// equivocations, numbered from 1).
    #[serde(default)]
    pub events: u64,
    /// The last event whose playbook actions have all finished; playbooks
    /// are behind by `events - playbook_cursor`.
    #[serde(default)]
    pub playbook_cursor: u64,
}

/// `GET /v1/health`: whether the node is serving, check by check.
/// Answered with 200 either way; `healthy` is the verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    pub healthy: bool,
    pub checks: Vec<HealthCheck>,
}

/// One of [`Health`]'s checks: `store`, `peers` or `playbooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub name: String,
    pub ok: bool,
    /// One line: what was found ("a write was flushed in 3 ms", "no peer
    /// connected: 2 configured").
    pub detail: String,
}

impl Health {
    /// Builds the verdict from the checks: healthy when every one is ok.
    pub fn from_checks(checks: Vec<HealthCheck>) -> Health {
        Health {
            healthy: checks.iter().all(|c| c.ok),
            checks,
        }
    }

    /// The one-line reason a monitor shows: the failed checks, or "ok".
    pub fn reason(&self) -> String {
        let failed: Vec<String> = self
            .checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        if failed.is_empty() {
            "ok".to_owned()
        } else {
            failed.join("; ")
        }
    }
}

/// `POST /v1/incidents`: a new incident, as an analyst files it.
/// The same shape is what `cerctl incident file --from FILE` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileIncident {
    pub title: String,
    #[serde(default)]
    pub description: String,
    pub severity: Severity,
    pub tlp: Tlp,
    pub classification: Classification,
    #[serde(default = "new_status")]
    pub status: IncidentStatus,
    #[serde(default)]
    pub indicators: Vec<Indicator>,
    #[serde(default)]
    pub affected: Affected,
    #[serde(default)]
    pub occurred: Option<Timestamp>,
    #[serde(default)]
    pub detected: Option<Timestamp>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Recipients, by CERT name or fingerprint (TLP AMBER and above).
    #[serde(default)]
    pub to: Vec<String>,
    /// Chosen by the client for this request. Sending it again (after an
    /// answer was lost) returns the first answer instead of filing twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<Uuid>,
    /// For an imported incident: where it came from (see
    /// [`crate::model::Source`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::model::Source>,
    /// Refuse indicators on a warninglist instead of warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

fn new_status() -> IncidentStatus {
    IncidentStatus::New
}

impl FileIncident {
    /// A request with the required fields; everything else at its default
    /// (status new, no indicators, no recipients).
    pub fn new(
        title: impl Into<String>,
        severity: Severity,
        tlp: Tlp,
        classification: Classification,
    ) -> Self {
        FileIncident {
            title: title.into(),
            description: String::new(),
            severity,
            tlp,
            classification,
            status: IncidentStatus::New,
            indicators: vec![],
            affected: Affected::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            to: vec![],
            request_id: None,
            source: None,
            strict: false,
        }
    }

    /// The incident body this request describes, checked field by field.
    pub fn to_body(&self) -> Result<IncidentBody, FieldErrors> {
        let body = IncidentBody {
            title: self.title.trim().to_owned(),
            description: self.description.clone(),
            severity: self.severity,
            classification: self.classification.clone(),
            status: self.status,
            indicators: dedup_indicators(&self.indicators),
            affected: self.affected.clone(),
            occurred: self.occurred,
            detected: self.detected,
            tags: self.tags.clone(),
            source: self.source.clone(),
        };
        body.validate()?;
        Ok(body)
    }
}

fn dedup_indicators(indicators: &[Indicator]) -> Vec<Indicator> {
    let mut seen = std::collections::HashSet::new();
    indicators
        .iter()
        .filter(|i| seen.insert((i.kind, i.value.clone())))
        .cloned()
        .collect()
}

/// `POST /v1/incidents/{id}/updates`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateIncident {
    #[serde(default)]
    pub status: Option<IncidentStatus>,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub classification: Option<Classification>,
    #[serde(default)]
    pub note: Option<String>,
    #[serde(default)]
    pub indicators: Vec<Indicator>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// A stricter label than the incident's, for a note and indicators
    /// meant for fewer readers (an AMBER note on a GREEN incident);
    /// default: the incident's label. See [`UpdateIncident::label`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
    /// Who may read an update above the incident's label (CERT names or
    /// fingerprints); for AMBER the default is every trusted CERT. The
    /// incident's author always may.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// Refuse indicators on a warninglist instead of warning.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
}

impl UpdateIncident {
    /// The label this update goes under, on an incident labelled
    /// `incident`. Never below the incident's (an update is never shared
    /// more widely than its incident); above it, only a note and
    /// indicators, since the incident's fields and tags are read by
    /// everyone who reads the incident; `to` only above it (at the
    /// incident's label the update goes to the incident's readers).
    pub fn label(&self, incident: Tlp) -> Result<Tlp, FieldErrors> {
        let tlp = self.tlp.unwrap_or(incident);
        let upper = |t: Tlp| t.as_str().to_ascii_uppercase();
        let mut errors = FieldErrors::default();
        if tlp < incident {
            errors.push(FieldError::new(
                "tlp",
                format!(
                    "TLP:{} is below the incident's TLP:{}; an update is never shared more widely than its incident",
                    upper(tlp),
                    upper(incident)
                ),
            ));
        } else if tlp > incident {
            let fields = self.status.is_some()
                || self.severity.is_some()
                || self.title.is_some()
                || self.description.is_some()
                || self.classification.is_some()
                || !self.tags.is_empty();
            if fields {
                errors.push(FieldError::new(
                    "tlp",
                    format!(
                        "an update above the incident's TLP:{} carries only a note and indicators; status, severity, title, description, classification and tags go under the incident's own label",
                        upper(incident)
                    ),
                ));
            }
        } else if !self.to.is_empty() {
            errors.push(FieldError::new(
                "to",
                format!(
                    "recipients apply only to an update above the incident's TLP:{}; at its label an update goes to the incident's readers",
                    upper(incident)
                ),
            ));
        }
        errors.into_result().map(|()| tlp)
    }

    pub fn to_body(&self) -> Result<UpdateBody, FieldError> {
        let body = UpdateBody {
            status: self.status,
            severity: self.severity,
            title: self.title.as_ref().map(|t| t.trim().to_owned()),
            description: self.description.clone(),
            classification: self.classification.clone(),
            note: self.note.clone(),
            indicators: dedup_indicators(&self.indicators),
            tags: self.tags.clone(),
        };
        body.validate()?;
        Ok(body)
    }
}

/// `POST /v1/incidents/{id}/retraction`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetractIncident {
    #[serde(default)]
    pub reason: Option<String>,
    /// Withdraw only this envelope of the author's (an update, a note, a
    /// sighting): what it added leaves the incident everywhere. None: the
    /// whole incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope: Option<EnvelopeId>,
}

/// `POST /v1/incidents/{id}/receipts`: a recipient tells the author how
/// far it got with the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeIncident {
    pub state: crate::envelope::ReceiptState,
    #[serde(default)]
    pub comment: Option<String>,
}

/// `POST /v1/incidents/{id}/sightings`: this CERT saw one of the
/// incident's indicators (or found it a false positive). A signed
/// sighting envelope, shared with the incident's readers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SightIndicator {
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    pub value: String,
    /// When (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<Timestamp>,
    #[serde(default = "one_sighting")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub false_positive: bool,
}

fn one_sighting() -> u32 {
    1
}

/// `POST /v1/certs`: trust a CERT's certificate (ASCII-armored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddCert {
    pub armored: String,
}

/// The answer to a filing, update or retraction: the envelope now durable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filed {
    pub incident: Uuid,
    pub envelope: EnvelopeId,
    pub seq: u64,
    pub kind: Kind,
    /// What was filed but is probably a mistake, e.g. an indicator on a
    /// warninglist (`indicators[2]: 8.8.8.8 is on warninglist …`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The request id was answered before: this is that answer, and
    /// nothing new was filed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repeated: bool,
}

/// Query of `GET /v1/incidents`. All filters combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    /// Only incidents changed at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity_at_least: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tlp: Option<Tlp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IncidentStatus>,
    /// `class/type` or `class/*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    /// The reporting CERT, by name or fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Include retracted incidents (tombstones).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_retracted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Only incidents changed before this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<Timestamp>,
    /// Skip this many matching incidents first (the next page starts at
    /// the previous page's offset plus its length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<usize>,
    /// Oldest change first instead of newest first.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oldest_first: bool,
    /// Words that must all appear, case-insensitively, in the title or the
    /// description (of incidents this node can read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// Default and largest page of `GET /v1/incidents`.
pub const DEFAULT_LIST_LIMIT: usize = 100;
pub const MAX_LIST_LIMIT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentList {
    pub incidents: Vec<IncidentSummary>,
    /// True when more incidents matched than `limit` allowed.
    pub truncated: bool,
}

/// One row of an incident listing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    pub id: Uuid,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub tlp: Tlp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<IncidentStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter: Option<Fingerprint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporter_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed: Option<Timestamp>,
    pub updated: Timestamp,
    pub indicators: usize,
    pub readable: bool,
    pub retracted: bool,
}

impl IncidentSummary {
    pub fn of(state: &IncidentState, reporter_name: Option<String>) -> Self {
        let content = state.content.as_ref().filter(|_| state.retracted.is_none());
        IncidentSummary {
            id: state.id,
            title: state.display_title().to_owned(),
            severity: content.map(|c| c.severity),
            tlp: state.tlp,
            classification: content.map(|c| c.classification.clone()),
            status: content.map(|c| c.status),
            reporter: state.reporter.clone(),
            reporter_name,
            filed: state.filed,
            updated: state.updated,
            indicators: state.indicators.len(),
            readable: state.readable,
            retracted: state.retracted.is_some(),
        }
    }
}

/// `GET /v1/incidents/{id}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentDetail {
    pub incident: IncidentState,
    /// Every envelope about the incident this node holds, in fold order.
    pub envelopes: Vec<EnvelopeInfo>,
    /// Names of the CERTs that appear, by fingerprint.
    pub names: BTreeMap<Fingerprint, String>,
    /// This node's own tags and notes (from playbooks); never shared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local: Vec<Annotation>,
}

/// A local tag or note on an incident, added by a playbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    pub at: Timestamp,
    pub playbook: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeInfo {
    pub id: EnvelopeId,
    #[serde(flatten)]
    pub header: Header,
    pub signature: SignatureState,
    /// Size of the stored document; 0 for a tombstone.
    pub bytes: usize,
}

/// What this node knows of an envelope's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureState {
    /// Verified against the author's certificate when stored, and the
    /// signed bytes are held.
    Good,
    /// Withdrawn by its author: only a tombstone is held.
    Withdrawn,
}

/// Query of `GET /v1/indicators`.
///
/// The value is read as every type it parses as (or as `type` alone), and
/// how it is searched follows: an address also finds the CIDR indicators
/// containing it; a CIDR finds every address and CIDR indicator inside it
/// and every CIDR indicator containing it (for networks, overlapping is
/// nesting, so these are all that overlap it); `*.example.com` finds the
/// domain indicators strictly below `example.com`
/// (not `example.com` itself, as in DNS). Anything else matches exactly.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IocQuery {
    pub value: String,
    /// Read the value as this type only; otherwise every type it parses as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind: Option<IndicatorType>,
    /// At most this many matches ([`DEFAULT_SEARCH_LIMIT`] when absent,
    /// at most [`MAX_SEARCH_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Default and largest number of matches of `GET /v1/indicators`.
pub const DEFAULT_SEARCH_LIMIT: usize = 1_000;
pub const MAX_SEARCH_LIMIT: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IocSearch {
    /// The normalized forms searched, one per candidate type.
    pub searched: Vec<SearchedAs>,
    /// Exact matches first (most recently seen first), then CIDRs
    /// containing the value (most specific first), then what lies inside a
    /// range or below a domain (in address or name order).
    pub matches: Vec<IocMatch>,
    /// True when more matched than the limit allowed: narrow the range.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchedAs {
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    /// The normalized value; for `subdomains`, the domain below which
    /// names were searched (`example.com` for `*.example.com`).
    pub value: String,
    #[serde(default)]
    pub how: SearchMode,
}

/// How a value was searched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Indicators equal to the value.
    #[default]
    Exact,
    /// An address: indicators equal to it, and CIDR indicators containing it.
    Address,
    /// A CIDR: address and CIDR indicators inside it, and CIDR indicators
    /// containing it.
    Range,
    /// `*.domain`: domain indicators strictly below it.
    Subdomains,
}

/// How one match relates to the value searched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Matched {
    /// The indicator is the value searched.
    #[default]
    Exact,
    /// The indicator (an address or CIDR) lies inside the CIDR searched.
    Inside,
    /// The indicator is a CIDR that contains the address or CIDR searched.
    Contains,
    /// The indicator's name lies below the domain searched.
    Subdomain,
}

/// One incident that names the indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IocMatch {
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    pub value: String,
    pub incident: Uuid,
    /// How it matched the value searched.
    #[serde(default)]
    pub matched: Matched,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    pub tlp: Tlp,
    /// The CERTs that reported or sighted it in this incident.
    pub reported_by: Vec<CertRef>,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    pub sightings: u32,
    /// When it expires on this node (its author's `valid_until`, or the
    /// node's lifetime for the type); None: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub expired: bool,
    /// The node's warninglists it is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warninglists: Vec<String>,
    /// Sightings and false-positive reports, per CERT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sighted_by: Vec<SightingSummary>,
}

/// One CERT's sightings of an indicator in an incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SightingSummary {
    pub cert: CertRef,
    pub count: u32,
    pub first: Timestamp,
    pub last: Timestamp,
    /// Reports that it was a false positive.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub false_positives: u32,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRef {
    pub fingerprint: Fingerprint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `GET /v1/peers`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerList {
    pub peers: Vec<PeerInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Fingerprint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub connected: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    pub envelopes_sent: u64,
    pub envelopes_received: u64,
    /// Envelopes this peer holds that we lack, as of its last summary.
    pub behind: u64,
    /// Envelopes received from this peer that were already held.
    #[serde(default)]
    pub duplicates: u64,
    /// While connected: whether new envelopes go to this peer in full
    /// (`true`, an eager link of the mesh's spanning tree) or only their
    /// ids (`false`, a lazy link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eager: Option<bool>,
    /// Bytes on the wire (UDP payload) over the current or last link.
    #[serde(default)]
    pub bytes_sent: u64,
    #[serde(default)]
    pub bytes_received: u64,
    pub rejections: BTreeMap<String, u64>,
}

/// `GET /v1/certs`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CertList {
    pub certs: Vec<CertInfo>,
    /// Files in the trust store that were refused, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<RefusedCert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertInfo {
    pub name: String,
    pub fingerprint: Fingerprint,
    /// This node's own certificate.
    pub own: bool,
    pub can_encrypt: bool,
    /// When the certificate expires; absent when it does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<crate::model::Timestamp>,
    /// When it was revoked: signatures made from then on are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<crate::model::Timestamp>,
    /// The key that signs for this CERT now, when it rotated its key
    /// (its fingerprint above stays its identity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<Fingerprint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefusedCert {
    pub file: String,
    pub reason: String,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// The signed envelopes themselves: bytes plus detached signature.
    Envelopes,
}

/// Query of `GET /v1/backup`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupQuery {
    /// Also the node's secret key (it is never in a backup otherwise).
    #[serde(default)]
    pub include_secret_key: bool,
}

/// Query of `GET /v1/export`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub format: ExportFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeExport {
    pub envelopes: Vec<ExportedEnvelope>,
}

/// One envelope as stored: `json` is the exact signed document (it is
/// always UTF-8 JSON), `sig` the detached binary signature in base64.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportedEnvelope {
    pub id: EnvelopeId,
    pub json: String,
    pub sig: String,
}

/// `GET /v1/playbooks`: what is loaded, and files refused (the previous
/// version of a refused file stays active).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlaybookList {
    pub playbooks: Vec<PlaybookInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlaybookProblem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookInfo {
    pub name: String,
    pub file: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub on: Vec<String>,
    pub max_tlp: Tlp,
    pub actions: usize,
    /// `enabled: false` in the file: loaded and checked, never triggered.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// Set while a limit holds the playbook paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<Paused>,
}

fn enabled_default() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookProblem {
    pub file: String,
    pub message: String,
}

/// `POST /v1/playbooks/check`: validate a playbook without loading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckPlaybook {
    /// The file name, for error messages.
    pub file: String,
    pub yaml: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Every problem, each `file:line:column: field: reason`.
    pub errors: Vec<String>,
    /// What a valid playbook should still fix, same form. It loads anyway.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// `POST /v1/playbooks/test`: what a playbook would run for an incident,
/// without running anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestPlaybook {
    pub file: String,
    pub yaml: String,
    pub incident: Uuid,
    /// The event to simulate; default: the first incident event in `on`.
    #[serde(default)]
    pub event: Option<String>,
    /// Really run the exec and webhook actions once (tags and notes are
    /// not applied), recorded in the run history as a test run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaybookTest {
    pub playbook: String,
    pub event: String,
    /// Each action that would run, described (`exec ARGV…`, `webhook URL`, …).
    pub would_run: Vec<String>,
    /// Why nothing would run, when nothing would.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// With `run`: what each action did, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ran: Vec<RunRecord>,
}

/// Query of `GET /v1/playbooks/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunList {
    /// Newest first.
    pub runs: Vec<RunRecord>,
}

/// What happened when an action ran: stored in the run history and
/// served by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub playbook: String,
    /// `incident.received`, …
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
    /// `exec /usr/local/sbin/block-ip 203.0.113.7`, `webhook http://…`.
    pub action: String,
    /// The planned action's key, for restart-safe deduplication.
    pub key: String,
    pub started: Timestamp,
    pub duration_ms: u64,
    /// Webhook tries made (0 when it failed before the first, e.g. a
    /// secret it could not read); 1 for everything else.
    pub attempts: u32,
    pub outcome: Outcome,
    /// The first [`OUTPUT_LIMIT`] bytes (lossy UTF-8); for webhooks the
    /// response body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Likewise; for webhooks, what went wrong on each failed try.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
    /// Run by `cerctl playbook test --run`, not by an event.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// Each try, in order: a webhook's requests, an exec's one run (as
    /// many as `attempts`). Empty for tags and notes, and in records made
    /// before tries were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tries: Vec<Attempt>,
}

/// One try of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// 1 for the first try.
    pub attempt: u32,
    pub started: Timestamp,
    pub duration_ms: u64,
    /// An exec's exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// A webhook's answer, when one came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Why the try failed, when neither status says it all: no answer in
    /// time, no connection, a refused certificate, a failed exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0, a 2xx answer, or a tag or note applied.
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
    },
    /// A non-zero exit, death by a signal, or a webhook that failed
    /// every try (last answer or error).
    Failed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        reason: String,
    },
    /// The timeout passed (for webhooks: on the last try).
    TimedOut,
    /// The program could not be started (missing, not executable, bad cwd).
    SpawnError { reason: String },
    /// Not run by the runner (tag and note are applied by the caller), or
    /// not applied (a tag or note whose earlier actions did not succeed).
    Skipped { reason: String },
    /// The program exited with [`DRY_RUN_EXIT`]: it only showed what it
    /// would do. Not a success: tags and notes that wait for one skip.
    DryRun,
}

/// What a playbook's `for_each_indicator` action did for an indicator of
/// an incident and has not taken back: kept on this node only, so that a
/// retraction or a removal can undo it and an update runs only for what
/// is new. Dropped by `cerctl playbook forget`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acted {
    /// Index of the action in the playbook's `actions`.
    pub action: usize,
    #[serde(rename = "type")]
    pub kind: IndicatorType,
    pub value: String,
    /// The run that acted (its record is in the run history).
    pub run_key: String,
    pub at: Timestamp,
}

/// A playbook stopped by one of its `limits` until the operator resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paused {
    pub playbook: String,
    pub at: Timestamp,
    /// Which limit, and by how much.
    pub reason: String,
    /// Events held while paused, run on resume.
    #[serde(default)]
    pub held: u64,
}

/// `POST /v1/playbooks/resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResumePlaybook {
    pub playbook: String,
    /// Drop the held events instead of running them.
    #[serde(default)]
    pub discard: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resumed {
    pub playbook: String,
    /// Held events that will now run (0 with `discard`).
    pub replaying: u64,
    pub discarded: u64,
}

/// `POST /v1/playbooks/forget`: drop what a playbook recorded having
/// acted on, for one incident or all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForgetPlaybook {
    pub playbook: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forgotten {
    pub playbook: String,
    pub records: u64,
}

/// `GET /v1/playbooks/acted?[ActedQuery]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActedQuery {
    pub playbook: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActedList {
    /// (incident, what was done), by incident.
    pub acted: Vec<(Uuid, Acted)>,
}

/// The exit status with which a playbook program says it made no change
/// on purpose (a dry run), as the scripts in `playbooks/bin` do until they
/// are configured.
pub const DRY_RUN_EXIT: i32 = 99;

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }

    /// The program's exit status, when it exited (a dry run's is
    /// [`DRY_RUN_EXIT`]).
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            Outcome::Ok { exit_code, .. } | Outcome::Failed { exit_code, .. } => *exit_code,
            Outcome::DryRun => Some(DRY_RUN_EXIT),
            Outcome::TimedOut | Outcome::SpawnError { .. } | Outcome::Skipped { .. } => None,
        }
    }

    /// The webhook's last answer, when one came.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Outcome::Ok { http_status, .. } | Outcome::Failed { http_status, .. } => *http_status,
            Outcome::TimedOut
            | Outcome::SpawnError { .. }
            | Outcome::Skipped { .. }
            | Outcome::DryRun => None,
        }
    }
}

/// `ok`, `ok (exit 0)`, `failed (exit 3)`, `failed (HTTP 500)`,
/// `timed out`, `spawn error: …`, `skipped: …`, `dry run (exit 99)`.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok {
                exit_code: Some(code),
                ..
            } => write!(f, "ok (exit {code})"),
            Outcome::Ok {
                http_status: Some(status),
                ..
            } => write!(f, "ok (HTTP {status})"),
            Outcome::Ok { .. } => f.write_str("ok"),
            Outcome::Failed { reason, .. } => write!(f, "failed ({reason})"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::SpawnError { reason } => write!(f, "spawn error: {reason}"),
            Outcome::Skipped { reason } => write!(f, "skipped: {reason}"),
            Outcome::DryRun => write!(f, "dry run (exit {DRY_RUN_EXIT})"),
        }
    }
}

/// A client of the TAXII server and feeds, as listed (never its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxiiClient {
    pub name: String,
    /// The most restrictive TLP it may read.
    pub max_tlp: Tlp,
    /// Whether it may post to the inbox collection.
    pub write: bool,
    pub added: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddTaxiiClient {
    pub name: String,
    pub max_tlp: Tlp,
    #[serde(default)]
    pub write: bool,
}

/// The new client and its token: the only time the token is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxiiClientAdded {
    pub client: TaxiiClient,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaxiiClientList {
    pub clients: Vec<TaxiiClient>,
}
