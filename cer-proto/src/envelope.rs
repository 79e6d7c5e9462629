//! Envelopes: the unit a CERT signs, every node stores, and the mesh syncs.
//!
//! An envelope is a JSON document produced once by its author. Nodes keep
//! and forward the exact bytes with a detached OpenPGP signature; nothing
//! here ever re-serializes a received envelope. [`Draft::to_bytes`] is the
//! only place envelope bytes are produced, and it runs at the author only.
//!
//! This module parses and checks envelopes as data (size, shape, chain);
//! signature verification belongs to the daemon's `sign` module.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::FieldError;
use crate::id::{EnvelopeId, Fingerprint};
use crate::model::{Affected, Classification, Indicator, Severity, Status, Timestamp, Tlp};

/// The envelope format version this crate writes and accepts.
pub const VERSION: u32 = 1;

/// Largest envelope document accepted, in bytes. Bounded so one peer or
/// one API call cannot make a node hold or forward arbitrarily large data.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// Largest detached signature accepted, in bytes.
pub const MAX_SIGNATURE_BYTES: usize = 4096;

/// What an envelope says about its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Incident,
    Update,
    Sighting,
    Retraction,
    Receipt,
    /// The author moves to a new signing key: signed by the old key and
    /// the new (see [`KeyTransitionBody`]). About no incident.
    #[serde(rename = "key_transition")]
    KeyTransition,
    /// A revocation certificate of some CERT's key, sent to every node
    /// (see [`KeyRevocationBody`]). About no incident.
    #[serde(rename = "key_revocation")]
    KeyRevocation,
}

impl Kind {
    /// Whether envelopes of this kind are about an incident (`subject`)
    /// and folded into it; key transitions and revocations are not.
    pub fn is_about_incident(&self) -> bool {
        !matches!(self, Kind::KeyTransition | Kind::KeyRevocation)
    }
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Incident => "incident",
            Kind::Update => "update",
            Kind::Sighting => "sighting",
            Kind::Retraction => "retraction",
            Kind::Receipt => "receipt",
            Kind::KeyTransition => "key_transition",
            Kind::KeyRevocation => "key_revocation",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed envelope document. Fields in the order authors write them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub v: u32,
    pub author: Fingerprint,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<EnvelopeId>,
    pub created: Timestamp,
    pub kind: Kind,
    pub subject: Uuid,
    pub tlp: Tlp,
    #[serde(default)]
    pub recipients: Vec<Fingerprint>,
    /// Plaintext body (TLP CLEAR and GREEN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// ASCII-armored OpenPGP message holding the JSON body, encrypted to
    /// `recipients` and the author (TLP AMBER and above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_enc: Option<String>,
    /// Retractions only: the author's own envelopes this one withdraws,
    /// each named by seq and id. In the signed header (never in an
    /// encrypted body) so that any node, recipient or relay, can check a
    /// tombstone against it: a withdrawn envelope's place in its author's
    /// chain is proven by this list and nothing else.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub withdraws: Vec<Withdrawal>,
}

/// What every copy of an envelope says about itself, withdrawn or not: the
/// signed header fields that the fold, the store's tombstones and the
/// API's listings share. ([`Envelope`] is the whole document as signed.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub author: Fingerprint,
    pub seq: u64,
    pub subject: Uuid,
    pub kind: Kind,
    pub created: Timestamp,
    pub tlp: Tlp,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<Fingerprint>,
}

/// One envelope a retraction withdraws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawal {
    pub seq: u64,
    pub id: EnvelopeId,
    pub kind: Kind,
    pub created: Timestamp,
}

/// Most envelopes one retraction may withdraw (keeps it far below
/// [`MAX_ENVELOPE_BYTES`]).
pub const MAX_WITHDRAWALS: usize = 4096;

/// Why bytes are not an acceptable envelope document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is {size} bytes, more than the maximum of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("envelope is not valid JSON of the expected shape: {0}")]
    Malformed(String),
    #[error("unsupported envelope version {0} (this node reads version {VERSION})")]
    Version(u32),
    #[error("invalid envelope: {0}")]
    Invalid(FieldError),
}

/// Why an envelope does not extend its author's chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("seq {got} does not follow {expected_prev_seq}: expected seq {}", expected_prev_seq + 1)]
    SeqMismatch { expected_prev_seq: u64, got: u64 },
    #[error("prev of seq {seq} is {got:?}, but the author's envelope {} has id {expected}", seq - 1)]
    PrevMismatch {
        seq: u64,
        expected: EnvelopeId,
        got: Option<EnvelopeId>,
    },
    #[error("seq 1 must not carry prev")]
    FirstHasPrev,
}

/// The last envelope held of one author: what the next one must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    pub seq: u64,
    pub id: EnvelopeId,
}

impl Envelope {
    /// Parses and checks envelope bytes (size, JSON shape, version, body
    /// presence matching the TLP). Does not check the signature.
    pub fn parse(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge {
                size: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let envelope: Envelope =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if envelope.v != VERSION {
            return Err(EnvelopeError::Version(envelope.v));
        }
        envelope.check_shape().map_err(EnvelopeError::Invalid)?;
        Ok(envelope)
    }

    fn check_shape(&self) -> Result<(), FieldError> {
        if self.seq == 0 {
            return Err(FieldError::new("seq", "must start at 1"));
        }
        if self.seq == 1 && self.prev.is_some() {
            return Err(FieldError::new("prev", "seq 1 must not carry prev"));
        }
        if self.seq > 1 && self.prev.is_none() {
            return Err(FieldError::new("prev", "required when seq is above 1"));
        }
        match (self.tlp.is_encrypted(), &self.body, &self.body_enc) {
            (false, Some(_), None) => {}
            (true, None, Some(_)) => {}
            (false, _, _) => {
                return Err(FieldError::new(
                    "body",
                    format!("TLP:{} requires a plaintext body and no body_enc", self.tlp),
                ))
            }
            (true, _, _) => {
                return Err(FieldError::new(
                    "body_enc",
                    format!(
                        "TLP:{} requires an encrypted body and no plaintext body",
                        self.tlp
                    ),
                ))
            }
        }
        if self.tlp == Tlp::Red && self.recipients.is_empty() {
            return Err(FieldError::new(
                "recipients",
                "TLP:RED requires named recipients",
            ));
        }
        self.check_withdraws()
    }

    fn check_withdraws(&self) -> Result<(), FieldError> {
        if self.withdraws.is_empty() {
            return Ok(());
        }
        if self.kind != Kind::Retraction {
            return Err(FieldError::new(
                "withdraws",
                "only a retraction withdraws envelopes",
            ));
        }
        if self.withdraws.len() > MAX_WITHDRAWALS {
            return Err(FieldError::new(
                "withdraws",
                format!(
                    "at most {MAX_WITHDRAWALS} envelopes, got {}",
                    self.withdraws.len()
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in self.withdraws.iter().enumerate() {
            if w.seq == 0 || w.seq >= self.seq {
                return Err(FieldError::new(
                    format!("withdraws[{i}].seq"),
                    format!(
                        "must name an earlier envelope of the author (1 to {}), got {}",
                        self.seq - 1,
                        w.seq
                    ),
                ));
            }
            if w.kind == Kind::Retraction {
                return Err(FieldError::new(
                    format!("withdraws[{i}].kind"),
                    "a retraction cannot be withdrawn",
                ));
            }
            if !seen.insert(w.seq) {
                return Err(FieldError::new(
                    format!("withdraws[{i}].seq"),
                    format!("seq {} is named twice", w.seq),
                ));
            }
        }
        Ok(())
    }

    /// The withdrawal this retraction makes of the author's envelope at
    /// `seq`, if it names that one.
    pub fn withdrawal(&self, seq: u64) -> Option<&Withdrawal> {
        self.withdraws.iter().find(|w| w.seq == seq)
    }

    pub fn header(&self) -> Header {
        Header {
            author: self.author.clone(),
            seq: self.seq,
            subject: self.subject,
            kind: self.kind,
            created: self.created,
            tlp: self.tlp,
            recipients: self.recipients.clone(),
        }
    }

    /// The author and seq of envelope bytes, read without building the
    /// rest of the document: what the sync state machine orders items by.
    /// The full parse and the signature check happen once, after it.
    pub fn peek_place(bytes: &[u8]) -> Result<(Fingerprint, u64), EnvelopeError> {
        #[derive(Deserialize)]
        struct Place {
            author: Fingerprint,
            seq: u64,
        }
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge {
                size: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        let place: Place =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        Ok((place.author, place.seq))
    }

    /// Checks that this envelope is the next one in its author's chain,
    /// given the last envelope held of that author (None: nothing held).
    pub fn check_follows(&self, tip: Option<&ChainTip>) -> Result<(), ChainError> {
        match tip {
            None if self.seq == 1 => {
                if self.prev.is_some() {
                    return Err(ChainError::FirstHasPrev);
                }
                Ok(())
            }
            None => Err(ChainError::SeqMismatch {
                expected_prev_seq: 0,
                got: self.seq,
            }),
            Some(tip) if self.seq != tip.seq + 1 => Err(ChainError::SeqMismatch {
                expected_prev_seq: tip.seq,
                got: self.seq,
            }),
            Some(tip) if self.prev != Some(tip.id) => Err(ChainError::PrevMismatch {
                seq: self.seq,
                expected: tip.id,
                got: self.prev,
            }),
            Some(_) => Ok(()),
        }
    }

    /// The typed plaintext body, when the envelope carries one.
    pub fn plain_body(&self) -> Option<Result<Body, FieldError>> {
        self.body
            .as_ref()
            .map(|value| Body::from_value(self.kind, value.clone()))
    }

    /// The severity the envelope states in the clear: an incident's, or
    /// the one an update sets. `None` for an encrypted body, which a relay
    /// cannot read, and for the other kinds.
    pub fn stated_severity(&self) -> Option<crate::model::Severity> {
        self.plain_body()?.ok()?.stated_severity()
    }
}

/// What an author fills in; [`Draft::to_bytes`] produces the document.
#[derive(Debug, Clone)]
pub struct Draft {
    pub author: Fingerprint,
    pub seq: u64,
    pub prev: Option<EnvelopeId>,
    pub created: Timestamp,
    pub subject: Uuid,
    pub tlp: Tlp,
    pub recipients: Vec<Fingerprint>,
    pub body: DraftBody,
    /// Retractions: the author's envelopes withdrawn (see [`Envelope::withdraws`]).
    pub withdraws: Vec<Withdrawal>,
}

/// The body of a draft: plaintext, or already encrypted by the caller.
// A draft lives for one publish; boxing the common plaintext case would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum DraftBody {
    Plain(Body),
    Encrypted { kind: Kind, armored: String },
}

impl Draft {
    pub fn kind(&self) -> Kind {
        match &self.body {
            DraftBody::Plain(body) => body.kind(),
            DraftBody::Encrypted { kind, .. } => *kind,
        }
    }

    /// Serializes the envelope document. The result is what gets signed,
    /// stored and forwarded, byte for byte.
    pub fn to_bytes(&self) -> Result<Vec<u8>, EnvelopeError> {
        let (body, body_enc) = match &self.body {
            DraftBody::Plain(body) => (Some(body.to_value()), None),
            DraftBody::Encrypted { armored, .. } => (None, Some(armored.clone())),
        };
        let envelope = Envelope {
            v: VERSION,
            author: self.author.clone(),
            seq: self.seq,
            prev: self.prev,
            created: self.created,
            kind: self.kind(),
            subject: self.subject,
            tlp: self.tlp,
            recipients: self.recipients.clone(),
            body,
            body_enc,
            withdraws: self.withdraws.clone(),
        };
        envelope.check_shape().map_err(EnvelopeError::Invalid)?;
        let bytes =
            serde_json::to_vec(&envelope).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge {
                size: bytes.len(),
                max: MAX_ENVELOPE_BYTES,
            });
        }
        Ok(bytes)
    }
}

/// A typed envelope body, one variant per [`Kind`].
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    Incident(IncidentBody),
    Update(UpdateBody),
    Sighting(SightingBody),
    Retraction(RetractionBody),
    Receipt(ReceiptBody),
    KeyTransition(KeyTransitionBody),
    KeyRevocation(KeyRevocationBody),
}

impl Body {
    /// The severity this body states: an incident's, or the one an update
    /// sets.
    pub fn stated_severity(&self) -> Option<crate::model::Severity> {
        match self {
            Body::Incident(body) => Some(body.severity),
            Body::Update(body) => body.severity,
            _ => None,
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Body::Incident(_) => Kind::Incident,
            Body::Update(_) => Kind::Update,
            Body::Sighting(_) => Kind::Sighting,
            Body::Retraction(_) => Kind::Retraction,
            Body::Receipt(_) => Kind::Receipt,
            Body::KeyTransition(_) => Kind::KeyTransition,
            Body::KeyRevocation(_) => Kind::KeyRevocation,
        }
    }

    pub fn from_value(kind: Kind, value: serde_json::Value) -> Result<Body, FieldError> {
        fn typed<T: serde::de::DeserializeOwned>(
            value: serde_json::Value,
        ) -> Result<T, FieldError> {
            serde_json::from_value(value).map_err(|e| FieldError::new("body", e.to_string()))
        }
        let body = match kind {
            Kind::Incident => Body::Incident(typed(value)?),
            Kind::Update => Body::Update(typed(value)?),
            Kind::Sighting => Body::Sighting(typed(value)?),
            Kind::Retraction => Body::Retraction(typed(value)?),
            Kind::Receipt => Body::Receipt(typed(value)?),
            Kind::KeyTransition => Body::KeyTransition(typed(value)?),
            Kind::KeyRevocation => Body::KeyRevocation(typed(value)?),
        };
        body.validate()?;
        Ok(body)
    }

    /// Parses a decrypted body (JSON bytes).
    pub fn from_slice(kind: Kind, bytes: &[u8]) -> Result<Body, FieldError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| FieldError::new("body", e.to_string()))?;
        Body::from_value(kind, value)
    }

    pub fn to_value(&self) -> serde_json::Value {
        let result = match self {
            Body::Incident(b) => serde_json::to_value(b),
            Body::Update(b) => serde_json::to_value(b),
            Body::Sighting(b) => serde_json::to_value(b),
            Body::Retraction(b) => serde_json::to_value(b),
            Body::Receipt(b) => serde_json::to_value(b),
            Body::KeyTransition(b) => serde_json::to_value(b),
            Body::KeyRevocation(b) => serde_json::to_value(b),
        };
        // Serializing plain data structs with string keys cannot fail.
        result.expect("body serializes to JSON")
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        match self {
            Body::Incident(b) => b.validate().map_err(|mut errors| errors.0.remove(0)),
            Body::Update(b) => b.validate(),
            Body::Sighting(b) => b.indicator.validate().map_err(|e| e.within("indicator")),
            Body::Retraction(b) => check_text("reason", b.reason.as_deref(), MAX_NOTE_CHARS),
            Body::Receipt(b) => check_text("comment", b.comment.as_deref(), MAX_NOTE_CHARS),
            Body::KeyTransition(b) => b.validate(),
            Body::KeyRevocation(b) => b.validate(),
        }
    }
}

/// Longest incident title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 64 * 1024;
/// Longest note, reason or comment, in characters.
pub const MAX_NOTE_CHARS: usize = 16 * 1024;
/// Most indicators one envelope may carry.
pub const MAX_INDICATORS: usize = 10_000;
/// Most tags (or sectors, or countries) on one incident.
pub const MAX_TAGS: usize = 64;

/// A new incident, as its author reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentBody {
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub severity: Severity,
    pub classification: Classification,
    #[serde(default = "default_status")]
    pub status: Status,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<Indicator>,
    #[serde(default, skip_serializing_if = "affected_is_empty")]
    pub affected: Affected,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub occurred: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where the incident came from when it was imported (a MISP event, a
    /// STIX bundle, a CSV feed), so a later import of the same source
    /// updates it and readers know its provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::model::Source>,
}

fn affected_is_empty(affected: &Affected) -> bool {
    affected.sectors.is_empty() && affected.countries.is_empty()
}

fn default_status() -> Status {
    Status::New
}

impl IncidentBody {
    /// Checks every field and reports every problem found.
    pub fn validate(&self) -> Result<(), crate::error::FieldErrors> {
        let mut errors = crate::error::FieldErrors::default();
        if let Err(e) = check_title(&self.title) {
            errors.push(e);
        }
        if let Err(e) = check_text(
            "description",
            Some(&self.description),
            MAX_DESCRIPTION_CHARS,
        ) {
            errors.push(e);
        }
        if self.indicators.len() > MAX_INDICATORS {
            errors.push(FieldError::new(
                "indicators",
                format!(
                    "at most {MAX_INDICATORS} per envelope, got {}",
                    self.indicators.len()
                ),
            ));
        }
        for (i, indicator) in self.indicators.iter().enumerate() {
            if let Err(e) = indicator.validate() {
                errors.push(e.within(format_args!("indicators[{i}]")));
            }
        }
        check_list(&mut errors, "tags", &self.tags);
        check_list(&mut errors, "affected.sectors", &self.affected.sectors);
        if let Some(source) = &self.source {
            if let Err(e) = source.validate() {
                errors.push(e);
            }
        }
        if self.affected.countries.len() > MAX_TAGS {
            errors.push(FieldError::new(
                "affected.countries",
                format!("at most {MAX_TAGS}"),
            ));
        }
        if let (Some(occurred), Some(detected)) = (self.occurred, self.detected) {
            if detected < occurred {
                errors.push(FieldError::new(
                    "detected",
                    format!("{detected} is before occurred ({occurred})"),
                ));
            }
        }
        errors.into_result()
    }
}

fn check_list(errors: &mut crate::error::FieldErrors, field: &'static str, items: &[String]) {
    if items.len() > MAX_TAGS {
        errors.push(FieldError::new(
            field,
            format!("at most {MAX_TAGS}, got {}", items.len()),
        ));
    }
    for (i, item) in items.iter().enumerate() {
        match crate::model::normalize_tag(item) {
            Ok(normal) if normal == *item => {}
            Ok(normal) => errors.push(FieldError::new(
                format!("{field}[{i}]"),
                format!("'{item}' is not in normal form (expected '{normal}')"),
            )),
            Err(e) => errors.push(FieldError::new(format!("{field}[{i}]"), e.reason)),
        }
    }
}

/// Checks a title: present, one line, bounded.
pub fn check_title(title: &str) -> Result<(), FieldError> {
    if title.trim().is_empty() {
        return Err(FieldError::new("title", "must not be empty"));
    }
    if title.chars().any(char::is_control) {
        return Err(FieldError::new(
            "title",
            "must be one line without control characters",
        ));
    }
    crate::text::check_no_bidi("title", title)?;
    let chars = title.chars().count();
    if chars > MAX_TITLE_CHARS {
        return Err(FieldError::new(
            "title",
            format!("at most {MAX_TITLE_CHARS} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// Checks free text: bounded, no NUL or other control characters except
/// newlines and tabs.
pub fn check_text(field: &'static str, text: Option<&str>, max: usize) -> Result<(), FieldError> {
    let Some(text) = text else { return Ok(()) };
    crate::text::check_no_bidi(field, text)?;
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    let chars = text.chars().count();
    if chars > max {
        return Err(FieldError::new(
            field,
            format!("at most {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// A change to an incident. Field changes (status, severity, title,
/// description, classification) count only from the incident's author;
/// notes, indicators and tags may come from any CERT.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicators: Vec<Indicator>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

impl UpdateBody {
    pub fn is_empty(&self) -> bool {
        !self.changes_fields()
            && self.note.is_none()
            && self.indicators.is_empty()
            && self.tags.is_empty()
    }

    /// Whether the update changes fields only the incident's author may change.
    pub fn changes_fields(&self) -> bool {
        self.status.is_some()
            || self.severity.is_some()
            || self.title.is_some()
            || self.description.is_some()
            || self.classification.is_some()
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        if self.is_empty() {
            return Err(FieldError::new("update", "changes nothing"));
        }
        if let Some(title) = &self.title {
            check_title(title)?;
        }
        check_text(
            "description",
            self.description.as_deref(),
            MAX_DESCRIPTION_CHARS,
        )?;
        check_text("note", self.note.as_deref(), MAX_NOTE_CHARS)?;
        if self.indicators.len() > MAX_INDICATORS {
            return Err(FieldError::new(
                "indicators",
                format!("at most {MAX_INDICATORS}"),
            ));
        }
        for (i, indicator) in self.indicators.iter().enumerate() {
            indicator
                .validate()
                .map_err(|e| e.within(format_args!("indicators[{i}]")))?;
        }
        let mut errors = crate::error::FieldErrors::default();
        check_list(&mut errors, "tags", &self.tags);
        match errors.0.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// An indicator seen by a CERT (not necessarily the incident's author).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SightingBody {
    pub indicator: Indicator,
    pub seen: Timestamp,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The reporter found the indicator harmless here: a report against
    /// it, not a sighting of it (not counted in its sightings).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub false_positive: bool,
}

fn one() -> u32 {
    1
}

/// The author withdraws one of its envelopes, or (no target) the whole
/// incident. Holders drop the withdrawn bodies and keep a tombstone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetractionBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<EnvelopeId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How far a recipient has got with a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReceiptState {
    Received,
    Actioned,
    Resolved,
}

impl std::fmt::Display for ReceiptState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReceiptState::Received => "received",
            ReceiptState::Actioned => "actioned",
            ReceiptState::Resolved => "resolved",
        })
    }
}

impl std::str::FromStr for ReceiptState {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "received" => Ok(ReceiptState::Received),
            "actioned" => Ok(ReceiptState::Actioned),
            "resolved" => Ok(ReceiptState::Resolved),
            other => Err(FieldError::new(
                "receipt",
                format!("unknown value '{other}'; valid values: received, actioned, resolved"),
            )),
        }
    }
}

/// A recipient's acknowledgement of an envelope, travelling back to its author.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptBody {
    pub target: EnvelopeId,
    pub state: ReceiptState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// The author's move to a new signing key. The envelope is authored, as
/// ever, by the author's identity (the fingerprint of its first key), and
/// its detached signature holds two signature packets over the same
/// bytes: the first by `old`, the key that signs for the author until now,
/// the second by `new`, the primary key of `cert`. A node that verifies
/// both accepts the author's envelopes signed by `new` from then on, and
/// those signed by `old` only up to the time of this envelope's first
/// signature. The author's chain (`seq`, `prev`) goes on unchanged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyTransitionBody {
    /// The fingerprint of the key that signed for the author until now.
    pub old: Fingerprint,
    /// The fingerprint of the new key: `cert`'s primary key.
    pub new: Fingerprint,
    /// The new key's ASCII-armored OpenPGP certificate.
    pub cert: String,
}

/// A revocation certificate of a CERT's key, published by any trusted
/// CERT (often not the one revoked: its key may be gone). It proves
/// itself: every node applies it only if it verifies against the
/// certificate it revokes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRevocationBody {
    /// The ASCII-armored revocation certificate.
    pub revocation: String,
}

impl KeyRevocationBody {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.revocation.len() > MAX_TRANSITION_CERT_BYTES {
            return Err(FieldError::new(
                "revocation",
                format!("is longer than {MAX_TRANSITION_CERT_BYTES} bytes"),
            ));
        }
        if !self.revocation.starts_with("-----BEGIN PGP ") {
            return Err(FieldError::new(
                "revocation",
                "must be an ASCII-armored OpenPGP revocation certificate",
            ));
        }
        Ok(())
    }
}

/// Largest certificate a key transition may carry, in bytes.
pub const MAX_TRANSITION_CERT_BYTES: usize = 64 * 1024;

impl KeyTransitionBody {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.old == self.new {
            return Err(FieldError::new("new", "is the old key"));
        }
        if self.cert.len() > MAX_TRANSITION_CERT_BYTES {
            return Err(FieldError::new(
                "cert",
                format!("is longer than {MAX_TRANSITION_CERT_BYTES} bytes"),
            ));
        }
        if !self
            .cert
            .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
        {
            return Err(FieldError::new(
                "cert",
                "must be an ASCII-armored OpenPGP certificate",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn author() -> Fingerprint {
        Fingerprint::parse(&"AB".repeat(20)).unwrap()
    }

    fn incident_body() -> IncidentBody {
        IncidentBody {
            title: "Phishing wave".into(),
            description: String::new(),
            severity: Severity::High,
            classification: Classification::parse("fraud/phishing").unwrap(),
            status: Status::New,
            indicators: vec![Indicator::parse_spec("domain:Login.Example.").unwrap()],
            affected: Affected::default(),
            occurred: None,
            detected: None,
            tags: vec![],
            source: None,
        }
    }

    fn draft(seq: u64, prev: Option<EnvelopeId>) -> Draft {
        Draft {
            author: author(),
            seq,
            prev,
            created: "2026-11-28T13:00:00Z".parse().unwrap(),
            subject: Uuid::nil(),
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(Body::Incident(incident_body())),
            withdraws: vec![],
        }
    }

    #[test]
    fn draft_bytes_parse_back() {
        let bytes = draft(1, None).to_bytes().unwrap();
        let envelope = Envelope::parse(&bytes).unwrap();
        assert_eq!(envelope.seq, 1);
        assert_eq!(envelope.kind, Kind::Incident);
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("{\"v\":1,\"author\":\"ABAB"), "{text}");
        match envelope.plain_body().unwrap().unwrap() {
            Body::Incident(body) => assert_eq!(body.indicators[0].value, "login.example"),
            other => panic!("unexpected body {other:?}"),
        }
    }

    #[test]
    fn chain_checks() {
        let first = draft(1, None).to_bytes().unwrap();
        let first_id = EnvelopeId::of(&first);
        let tip = ChainTip {
            seq: 1,
            id: first_id,
        };
        let second = Envelope::parse(&draft(2, Some(first_id)).to_bytes().unwrap()).unwrap();
        assert_eq!(second.check_follows(Some(&tip)), Ok(()));
        assert!(matches!(
            second.check_follows(None),
            Err(ChainError::SeqMismatch {
                expected_prev_seq: 0,
                got: 2
            })
        ));
        let wrong =
            Envelope::parse(&draft(2, Some(EnvelopeId::of(b"x"))).to_bytes().unwrap()).unwrap();
        assert!(matches!(
            wrong.check_follows(Some(&tip)),
            Err(ChainError::PrevMismatch { .. })
        ));
        let third = Envelope::parse(&draft(3, Some(first_id)).to_bytes().unwrap()).unwrap();
        assert!(matches!(
            third.check_follows(Some(&tip)),
            Err(ChainError::SeqMismatch { .. })
        ));
    }

    #[test]
    fn parse_refuses_bad_documents() {
        assert!(matches!(
            Envelope::parse(&vec![b' '; MAX_ENVELOPE_BYTES + 1]),
            Err(EnvelopeError::TooLarge { .. })
        ));
        assert!(matches!(
            Envelope::parse(b"{not json"),
            Err(EnvelopeError::Malformed(_))
        ));
        let mut value: serde_json::Value =
            serde_json::from_slice(&draft(1, None).to_bytes().unwrap()).unwrap();
        value["v"] = 2.into();
        assert!(matches!(
            Envelope::parse(&serde_json::to_vec(&value).unwrap()),
            Err(EnvelopeError::Version(2))
        ));
        value["v"] = 1.into();
        value["tlp"] = "red".into();
        assert!(matches!(
            Envelope::parse(&serde_json::to_vec(&value).unwrap()),
            Err(EnvelopeError::Invalid(_))
        ));
        value["tlp"] = "green".into();
        value["extra"] = 1.into();
        assert!(matches!(
            Envelope::parse(&serde_json::to_vec(&value).unwrap()),
            Err(EnvelopeError::Malformed(_))
        ));
    }

    #[test]
    fn incident_body_reports_every_problem() {
        let mut body = incident_body();
        body.title = "  ".into();
        body.tags = vec!["Not Normal!".into()];
        let errors = body.validate().unwrap_err();
        assert_eq!(errors.0.len(), 2, "{errors}");
        assert_eq!(errors.0[0].field, "title");
        assert_eq!(errors.0[1].field, "tags[0]");
    }

    #[test]
    fn update_must_change_something() {
        assert_eq!(
            UpdateBody::default().validate().unwrap_err().to_string(),
            "update: changes nothing"
        );
    }

    #[test]
    fn bidi_controls_are_refused_in_text_analysts_read() {
        let err = check_title("invoice \u{202E}fdp.exe").unwrap_err();
        assert_eq!(err.field, "title");
        assert!(err.reason.contains("U+202E"), "{}", err.reason);
        let err = check_text("note", Some("a\u{2066}b"), 100).unwrap_err();
        assert_eq!(err.field, "note");
        // Marks used by right-to-left scripts stay allowed.
        check_title("\u{0645}\u{0631}\u{062D}\u{0628}\u{0627} \u{200F}(2)").unwrap();
    }

    #[test]
    fn peek_place_reads_author_and_seq_only() {
        let bytes = draft(3, Some(EnvelopeId::of(b"2"))).to_bytes().unwrap();
        assert_eq!(Envelope::peek_place(&bytes).unwrap(), (author(), 3));
        assert!(Envelope::peek_place(b"{\"seq\":1}").is_err());
        assert!(Envelope::peek_place(&vec![b' '; MAX_ENVELOPE_BYTES + 1]).is_err());
    }
}
