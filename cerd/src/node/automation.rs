//! The operator's hold on playbooks: what is loaded and paused, resuming a
//! paused playbook, and the local record of what playbooks did (listed,
//! and forgotten on request). Nothing here is ever shared with peers.

use cer_proto::api::{
    ActedList, ActedQuery, ForgetPlaybook, Forgotten, PlaybookList, ResumePlaybook, Resumed,
};
use cer_proto::FieldError;

use super::{Node, NodeError, NodeEvent};
use crate::store::PlaybookChange;

/// Acted records listed at most.
const MAX_ACTED: usize = 10_000;

impl Node {
    /// Loaded playbooks, refused files, and which playbooks a limit holds
    /// paused. Reads the store: call from a blocking thread.
    pub fn playbook_list(&self) -> Result<PlaybookList, NodeError> {
        let mut list = self.playbooks.list();
        for paused in self.store.paused()? {
            if let Some(info) = list
                .playbooks
                .iter_mut()
                .find(|p| p.name == paused.playbook)
            {
                info.paused = Some(paused);
            }
        }
        Ok(list)
    }

    /// Lifts a limit's pause; the held events run next, or are dropped
    /// with `discard`.
    pub async fn resume_playbook(&self, request: &ResumePlaybook) -> Result<Resumed, NodeError> {
        let store = self.store.clone();
        let paused = tokio::task::spawn_blocking(move || store.paused())
            .await
            .map_err(|_| crate::store::StoreError::WriterGone)??;
        if !paused.iter().any(|p| p.playbook == request.playbook) {
            return Err(NodeError::Conflict(format!(
                "playbook '{}' is not paused",
                cer_proto::text::escape(&request.playbook)
            )));
        }
        let held = self
            .store
            .playbook_change(PlaybookChange::Resume {
                playbook: request.playbook.clone(),
                discard: request.discard,
            })
            .await?;
        tracing::info!(target: crate::audit::AUDIT, event = "playbook_resumed", playbook = %request.playbook, held, discard = request.discard, "playbook resumed by the operator");
        self.emit(NodeEvent::PlaybookResumed {
            playbook: request.playbook.clone(),
        });
        Ok(Resumed {
            playbook: request.playbook.clone(),
            replaying: if request.discard { 0 } else { held },
            discarded: if request.discard { held } else { 0 },
        })
    }

    /// Drops what a playbook recorded having acted on.
    pub async fn forget_playbook(&self, request: &ForgetPlaybook) -> Result<Forgotten, NodeError> {
        check_name(&request.playbook)?;
        let records = self
            .store
            .playbook_change(PlaybookChange::Forget {
                playbook: request.playbook.clone(),
                incident: request.incident,
            })
            .await?;
        tracing::info!(target: crate::audit::AUDIT, event = "playbook_forgotten", playbook = %request.playbook, incident = ?request.incident, records, "playbook records dropped by the operator");
        Ok(Forgotten {
            playbook: request.playbook.clone(),
            records,
        })
    }

    /// A detached, armored signature over an export by this node's key.
    /// The key also signs envelopes and mesh handshakes, so what could be
    /// taken for one of those is refused: an export never is one. Blocking.
    pub fn sign_export(&self, data: &[u8]) -> Result<Vec<u8>, NodeError> {
        if data.is_empty() {
            return Err(FieldError::new("body", "nothing to sign").into());
        }
        if data.starts_with(b"cer/1 ") {
            return Err(FieldError::new("body", "looks like a mesh handshake; not signed").into());
        }
        if cer_proto::envelope::Envelope::parse(data).is_ok()
            || serde_json::from_slice::<serde_json::Value>(data).is_ok_and(|v| {
                v.get("author").is_some() && v.get("seq").is_some() && v.get("v").is_some()
            })
        {
            return Err(FieldError::new(
                "body",
                "looks like an envelope; envelopes are signed only when published",
            )
            .into());
        }
        tracing::info!(target: crate::audit::AUDIT, event = "export_signed", bytes = data.len(), "export signed");
        Ok(self.identity.sign_detached_armored(data))
    }

    /// What a playbook did and has not taken back. Blocking.
    pub fn acted_list(&self, query: &ActedQuery) -> Result<ActedList, NodeError> {
        check_name(&query.playbook)?;
        let acted = match query.incident {
            Some(incident) => self
                .store
                .acted(&query.playbook, incident)?
                .into_iter()
                .map(|a| (incident, a))
                .collect(),
            None => self.store.acted_all(&query.playbook, MAX_ACTED)?,
        };
        Ok(ActedList { acted })
    }
}

/// A playbook name as the format allows it, so a key prefix cannot run
/// into another playbook's.
fn check_name(name: &str) -> Result<(), NodeError> {
    let valid = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            "playbook",
            "is not a playbook name (lower-case letters, digits and '-')",
        )
        .into())
    }
}
