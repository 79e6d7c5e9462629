//! Publishing: filing, updating, retracting and acknowledging incidents.
//! Everything is checked before the store's writer is asked; the writer
//! gives each envelope its place in this node's chain, signs it and
//! answers once it is durable.

use cer_proto::api::{
    AcknowledgeIncident, FileIncident, Filed, RetractIncident, SightIndicator, UpdateIncident,
};
use cer_proto::envelope::{
    Body, DraftBody, EnvelopeError, Kind, RetractionBody, SightingBody, UpdateBody, Withdrawal,
};
use cer_proto::incident::{Content, IncidentState};
use cer_proto::model::Tlp;
use cer_proto::{FieldError, FieldErrors, Fingerprint};
use uuid::Uuid;

use super::{Node, NodeError};
use crate::audit::{now, AUDIT};
use crate::sign::{self, TrustedCert};
use crate::store::{Publish, StoreError};

const RED_NEEDS_RECIPIENT: &str = "TLP:RED needs at least one recipient besides this node (--to NAME or FINGERPRINT); the author always reads its own incident";

impl Node {
    pub async fn file(&self, request: FileIncident) -> Result<Filed, NodeError> {
        let mut errors = FieldErrors::default();
        let body = match request.to_body() {
            Ok(body) => Some(body),
            Err(e) => {
                errors.0.extend(e.0);
                None
            }
        };
        let recipients = match self.recipients_for(request.tlp, &request.to) {
            Ok(r) => Some(r),
            Err(e) => {
                errors.0.extend(e.0);
                None
            }
        };
        let (Some(body), Some(recipients)) = (body, recipients) else {
            return Err(NodeError::Invalid(errors));
        };
        let warnings = self.warninglisted(&body.indicators, request.strict)?;
        let mut filed = self
            .publish_withdrawing(
                Uuid::new_v4(),
                request.tlp,
                recipients,
                Body::Incident(body),
                Vec::new(),
                request.request_id,
            )
            .await?;
        filed.warnings = warnings;
        Ok(filed)
    }

    /// What `indicators` has on this node's warninglists, one line each
    /// (`indicators[2]: ipv4:8.8.8.8 is on warninglist …`); with `strict`,
    /// the same as a refusal.
    fn warninglisted(
        &self,
        indicators: &[cer_proto::model::Indicator],
        strict: bool,
    ) -> Result<Vec<String>, NodeError> {
        let lists = self.warninglists();
        let mut found = FieldErrors::default();
        for (i, indicator) in indicators.iter().enumerate() {
            let names = lists.matches(indicator.kind, &indicator.value);
            if !names.is_empty() {
                found.push(FieldError::new(
                    format!("indicators[{i}]"),
                    format!("{indicator} is on warninglist {}", names.join(", ")),
                ));
            }
        }
        if strict && !found.0.is_empty() {
            return Err(NodeError::Invalid(found));
        }
        Ok(found.0.iter().map(|e| e.to_string()).collect())
    }

    pub async fn update(&self, id: Uuid, request: UpdateIncident) -> Result<Filed, NodeError> {
        let body = request.to_body()?;
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} was retracted by its author; it can no longer be updated"
            )));
        }
        if !state.readable {
            return Err(NodeError::Forbidden(format!(
                "incident {id} is encrypted for other CERTs; this node cannot read or update it"
            )));
        }
        let reporter = state
            .reporter
            .clone()
            .expect("a readable incident has a reporter");
        if body.changes_fields() && reporter != *self.fingerprint() {
            let name = self
                .name_of(&reporter)
                .unwrap_or_else(|| reporter.to_string());
            return Err(NodeError::Forbidden(format!(
                "only the incident's author, {name}, can change its status, severity, title, description or classification; notes, indicators and tags are open to every CERT"
            )));
        }
        if let Some(content) = &state.content {
            unchanged(&body, content)?;
        }
        if reporter != *self.fingerprint() {
            if let Some((i, _)) = body
                .indicators
                .iter()
                .enumerate()
                .find(|(_, i)| i.valid_until.is_some())
            {
                let name = self
                    .name_of(&reporter)
                    .unwrap_or_else(|| reporter.to_string());
                return Err(FieldError::new(
                    format!("indicators[{i}].valid_until"),
                    format!(
                        "only the incident's author, {name}, decides when its indicators expire"
                    ),
                )
                .into());
            }
        }
        let tlp = request.label(state.tlp)?;
        // At the incident's label, the incident's readers; above it, the
        // update's own (`to`, or every trusted CERT for AMBER).
        let mut recipients = if tlp == state.tlp {
            state.recipients.clone()
        } else {
            self.recipients_for(tlp, &request.to)?
        };
        if tlp.is_encrypted() && !recipients.contains(&reporter) && reporter != *self.fingerprint()
        {
            recipients.push(reporter);
        }
        let warnings = self.warninglisted(&body.indicators, request.strict)?;
        let mut filed = self
            .publish(id, tlp, recipients, Body::Update(body))
            .await?;
        filed.warnings = warnings;
        Ok(filed)
    }

    pub async fn retract(&self, id: Uuid, request: RetractIncident) -> Result<Filed, NodeError> {
        let body = RetractionBody {
            target: request.envelope,
            reason: request
                .reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty()),
        };
        Body::Retraction(body.clone()).validate()?;
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} is already retracted"
            )));
        }
        if state.reporter.as_ref() != Some(self.fingerprint()) {
            return Err(NodeError::Forbidden(format!(
                "only the incident's author can retract incident {id}"
            )));
        }
        if let Some(target) = request.envelope {
            let entry = state.timeline.iter().find(|e| e.envelope == target);
            let reason = match entry {
                None => Some("is not an envelope of this incident"),
                Some(e) if e.author != *self.fingerprint() => {
                    Some("was written by another CERT; only its author can withdraw it")
                }
                Some(e) if e.kind == Kind::Incident => {
                    Some("is the filing itself; retract the whole incident instead")
                }
                Some(e) if e.kind == Kind::Retraction => Some("is a retraction"),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                return Err(FieldError::new("envelope", format!("{target} {reason}")).into());
            }
        }
        // The retraction names each of this node's envelopes it withdraws,
        // so every holder can prove the tombstones it keeps in their place.
        let withdraws: Vec<Withdrawal> = state
            .timeline
            .iter()
            .filter(|e| request.envelope.is_none_or(|target| e.envelope == target))
            .filter(|e| e.author == *self.fingerprint() && e.kind != Kind::Retraction)
            .map(|e| Withdrawal {
                seq: e.seq,
                id: e.envelope,
                kind: e.kind,
                created: e.at,
            })
            .collect();
        self.publish_withdrawing(
            id,
            state.tlp,
            state.recipients.clone(),
            Body::Retraction(body),
            withdraws,
            None,
        )
        .await
    }

    /// Files a signed sighting (or false-positive report) of one of the
    /// incident's indicators.
    pub async fn sight(&self, id: Uuid, request: SightIndicator) -> Result<Filed, NodeError> {
        let indicator = cer_proto::model::Indicator::new(request.kind, &request.value)?;
        if request.count == 0 || request.count > 1_000_000 {
            return Err(FieldError::new("count", "must be between 1 and 1000000").into());
        }
        let now = now();
        let seen = request.seen.unwrap_or(now);
        if seen > now.plus(std::time::Duration::from_secs(300)) {
            return Err(FieldError::new("seen", format!("{seen} is in the future")).into());
        }
        let comment = request
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        let body = Body::Sighting(SightingBody {
            indicator: indicator.clone(),
            seen,
            count: request.count,
            comment,
            false_positive: request.false_positive,
        });
        body.validate()?;
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} was retracted by its author"
            )));
        }
        if !state.readable {
            return Err(NodeError::Forbidden(format!(
                "incident {id} is encrypted for other CERTs; only its recipients can report sightings on it"
            )));
        }
        let store = self.store.clone();
        let (kind, value) = (indicator.kind, indicator.value.clone());
        let named = tokio::task::spawn_blocking(move || store.indicator_hits(kind, &value))
            .await
            .map_err(|e| NodeError::Sign(format!("reading incident {id}: {e}")))??
            .iter()
            .any(|(incident, _)| *incident == id);
        if !named {
            return Err(FieldError::new(
                "value",
                format!("incident {id} does not name {indicator}; add it with an update first"),
            )
            .into());
        }
        let mut recipients = state.recipients.clone();
        if let Some(reporter) = state.reporter.clone() {
            if state.tlp.is_encrypted()
                && reporter != *self.fingerprint()
                && !recipients.contains(&reporter)
            {
                recipients.push(reporter);
            }
        }
        self.publish(id, state.tlp, recipients, body).await
    }

    /// Publishes a revocation certificate (already checked and applied
    /// here) as a `key_revocation` envelope, so every node applies it.
    pub async fn publish_revocation(&self, armored: &str) -> Result<Filed, NodeError> {
        let body = Body::KeyRevocation(cer_proto::envelope::KeyRevocationBody {
            revocation: armored.to_owned(),
        });
        body.validate()?;
        self.publish(Uuid::nil(), Tlp::Clear, Vec::new(), body)
            .await
    }

    /// Sends the incident's author a signed receipt.
    pub async fn acknowledge(
        &self,
        id: Uuid,
        request: AcknowledgeIncident,
    ) -> Result<Filed, NodeError> {
        let state = self.existing_now(id).await?;
        if state.retracted.is_some() {
            return Err(NodeError::Conflict(format!(
                "incident {id} was retracted by its author"
            )));
        }
        if !state.readable {
            return Err(NodeError::Forbidden(format!(
                "incident {id} is encrypted for other CERTs; only its recipients acknowledge it"
            )));
        }
        let reporter = state
            .reporter
            .clone()
            .expect("a readable incident has a reporter");
        if reporter == *self.fingerprint() {
            return Err(NodeError::Conflict(format!(
                "this node filed incident {id}; receipts are for its recipients"
            )));
        }
        let target = state
            .timeline
            .iter()
            .find(|e| e.kind == cer_proto::envelope::Kind::Incident)
            .map(|e| e.envelope)
            .ok_or_else(|| {
                NodeError::NotFound(format!("incident {id} has no filing envelope here"))
            })?;
        // Receipts only move forward: the fold keeps each recipient's
        // highest state, so an older one would be signed and sent for
        // nothing, and read as going back by anyone looking at the timeline.
        let comment = request
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if let Some((_, current, _)) = state
            .receipts()
            .into_iter()
            .find(|(who, _, _)| *who == self.fingerprint())
        {
            if request.state < current {
                return Err(NodeError::Conflict(format!(
                    "this node already acknowledged incident {id} as {current}; a receipt cannot go back to {}",
                    request.state
                )));
            }
            if request.state == current && comment.is_none() {
                return Err(NodeError::Conflict(format!(
                    "this node already acknowledged incident {id} as {current}; the receipt changes nothing"
                )));
            }
        }
        let body = Body::Receipt(cer_proto::envelope::ReceiptBody {
            target,
            state: request.state,
            comment,
        });
        body.validate()?;
        let mut recipients = state.recipients.clone();
        recipients.retain(|r| r != self.fingerprint());
        if state.tlp.is_encrypted() && !recipients.contains(&reporter) {
            recipients.push(reporter);
        }
        self.publish(id, state.tlp, recipients, body).await
    }

    /// The incident's state without its indicators (what publishing
    /// needs: a note costs the same on any incident), read on a blocking
    /// thread.
    async fn existing_now(&self, id: Uuid) -> Result<IncidentState, NodeError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.incident_head(id))
            .await
            .map_err(|e| NodeError::Sign(format!("reading incident {id}: {e}")))??
            .ok_or_else(|| NodeError::NotFound(format!("no incident {id}")))
    }

    pub(super) fn existing(&self, id: Uuid) -> Result<IncidentState, NodeError> {
        self.store
            .incident(id)?
            .ok_or_else(|| NodeError::NotFound(format!("no incident {id}")))
    }

    /// Who may read an envelope of this TLP: named recipients, or for AMBER
    /// without names every CERT in the trust store. Never includes self
    /// (the author always can read its own envelopes).
    fn recipients_for(&self, tlp: Tlp, to: &[String]) -> Result<Vec<Fingerprint>, FieldErrors> {
        let mut errors = FieldErrors::default();
        if !tlp.is_encrypted() {
            if !to.is_empty() {
                errors.push(FieldError::new(
                    "to",
                    format!("recipients apply to TLP:AMBER and above; TLP:{tlp} is shared with every peer"),
                ));
            }
            return errors.into_result().map(|()| vec![]);
        }
        if tlp == Tlp::Red && to.is_empty() {
            errors.push(FieldError::new("to", RED_NEEDS_RECIPIENT));
            return Err(errors);
        }
        let mut recipients = Vec::new();
        if to.is_empty() {
            self.with_trust(|t| {
                for cert in t.iter() {
                    if cert.fingerprint() != self.fingerprint() && cert.can_encrypt() {
                        recipients.push(cert.fingerprint().clone());
                    }
                }
            });
        }
        for (i, who) in to.iter().enumerate() {
            match self.resolve_cert(who.trim()) {
                None => errors.push(FieldError::new(
                    format!("to[{i}]"),
                    format!("no trusted CERT named or with fingerprint '{who}' (see `cerctl certs list`)"),
                )),
                Some(cert) if !cert.can_encrypt() => errors.push(FieldError::new(
                    format!("to[{i}]"),
                    format!("{}'s certificate has no encryption key", cert.name()),
                )),
                Some(cert) if cert.fingerprint() == self.fingerprint() => {}
                Some(cert) => {
                    if !recipients.contains(cert.fingerprint()) {
                        recipients.push(cert.fingerprint().clone());
                    }
                }
            }
        }
        if tlp == Tlp::Red && errors.is_empty() && recipients.is_empty() {
            // Only this node was named: it reads its own envelopes anyway.
            errors.push(FieldError::new("to", RED_NEEDS_RECIPIENT));
        }
        errors.into_result().map(|()| recipients)
    }

    async fn publish(
        &self,
        subject: Uuid,
        tlp: Tlp,
        recipients: Vec<Fingerprint>,
        body: Body,
    ) -> Result<Filed, NodeError> {
        self.publish_withdrawing(subject, tlp, recipients, body, Vec::new(), None)
            .await
    }

    async fn publish_withdrawing(
        &self,
        subject: Uuid,
        tlp: Tlp,
        recipients: Vec<Fingerprint>,
        body: Body,
        withdraws: Vec<Withdrawal>,
        request: Option<Uuid>,
    ) -> Result<Filed, NodeError> {
        let kind = body.kind();
        let (draft_body, readable) = if tlp.is_encrypted() {
            let plain =
                serde_json::to_vec(&body.to_value()).map_err(|e| NodeError::Sign(e.to_string()))?;
            let certs: Vec<TrustedCert> = self.with_trust(|t| {
                recipients
                    .iter()
                    .filter_map(|f| t.get(f).cloned())
                    .collect()
            });
            if certs.len() != recipients.len() {
                return Err(NodeError::Conflict(
                    "a recipient's certificate is no longer in the trust store".into(),
                ));
            }
            // After a key rotation, this node's own entry encrypts to its
            // new key.
            let own = self
                .with_trust(|t| t.get(self.fingerprint()).cloned())
                .unwrap_or_else(|| self.identity.public_cert());
            // OpenPGP encryption is CPU work: keep it off the runtime.
            let armored = tokio::task::spawn_blocking(move || {
                let mut to: Vec<&TrustedCert> = certs.iter().collect();
                to.push(&own);
                sign::encrypt_armored(&plain, &to)
            })
            .await
            .map_err(|e| NodeError::Sign(e.to_string()))?
            .map_err(|e| NodeError::Sign(e.to_string()))?;
            (DraftBody::Encrypted { kind, armored }, Some(body))
        } else {
            (DraftBody::Plain(body.clone()), Some(body))
        };

        let identity = self.identity.clone();
        let published = self
            .store
            .publish(Publish {
                author: self.fingerprint().clone(),
                subject,
                created: now(),
                tlp,
                recipients,
                body: draft_body,
                readable,
                withdraws,
                request,
                sign: Box::new(move |bytes| identity.sign_detached(bytes)),
            })
            .await
            .map_err(|e| match e {
                StoreError::Envelope(EnvelopeError::TooLarge { .. }) => {
                    NodeError::TooLarge(e.to_string())
                }
                StoreError::Envelope(EnvelopeError::Invalid(field)) => {
                    NodeError::Invalid(field.into())
                }
                other => NodeError::Store(other),
            })?;
        let mut filed = published.filed;
        filed.repeated = published.repeated;
        if published.repeated {
            tracing::info!(target: AUDIT, event = "repeated_request", incident = %filed.incident, envelope = %filed.envelope, "request already answered; nothing new published");
        } else {
            self.metrics.filed();
            tracing::info!(target: AUDIT, event = filed.kind.as_str(), incident = %filed.incident, envelope = %filed.envelope, seq = filed.seq, tlp = %tlp, "published");
        }
        Ok(filed)
    }
}

/// Refuses an update that sets a field to the value it already has: it
/// would be signed, sent to every peer and shown as `new -> new`.
fn unchanged(body: &UpdateBody, content: &Content) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut same = |field: String, value: String| {
        errors.push(FieldError::new(
            field,
            format!("is already {value}; leave it out of the update"),
        ))
    };
    if body.status == Some(content.status) {
        same("status".into(), content.status.to_string());
    }
    if body.severity == Some(content.severity) {
        same("severity".into(), content.severity.to_string());
    }
    if body.classification.as_ref() == Some(&content.classification) {
        same("classification".into(), content.classification.to_string());
    }
    if body.title.as_deref() == Some(content.title.as_str()) {
        same("title".into(), "the incident's title".to_owned());
    }
    if body.description.as_deref() == Some(content.description.as_str()) {
        same(
            "description".into(),
            "the incident's description".to_owned(),
        );
    }
    for (i, tag) in body.tags.iter().enumerate() {
        if content.tags.contains(tag) {
            same(format!("tags[{i}]"), format!("on the incident ({tag})"));
        }
    }
    errors.into_result()
}
