//! What playbooks keep on this node and never share: what each
//! `for_each_indicator` action did and has not taken back ([`Acted`]),
//! playbooks paused by a limit ([`Paused`]) and the events held for them
//! while paused. Reads are here; writes go through the writer
//! ([`PlaybookChange`], and `RunEffect` with a run record, so a run and
//! what it did are durable together).

use cer_proto::api::{Acted, Paused};
use cer_proto::model::IndicatorType;
use uuid::Uuid;

use super::{decode_json, keys, Store, StoreError};

/// What a recorded run changes in the [`Acted`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEffect {
    None,
    Acted {
        playbook: String,
        incident: Uuid,
        acted: Acted,
    },
    /// Every record of this indicator for the playbook and incident goes.
    Undone {
        playbook: String,
        incident: Uuid,
        kind: IndicatorType,
        value: String,
    },
}

/// A change to a playbook's local state; answered with a count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaybookChange {
    /// Pauses the playbook (the record says why).
    Pause(Paused),
    /// Keeps an event for a paused playbook, to run on resume.
    Hold { playbook: String, event: u64 },
    /// Drops a held event once it ran.
    Release { playbook: String, event: u64 },
    /// Unpauses; with `discard`, drops the held events. Answers how many
    /// were held.
    Resume { playbook: String, discard: bool },
    /// Drops the playbook's acted records (for one incident or all).
    /// Answers how many.
    Forget {
        playbook: String,
        incident: Option<Uuid>,
    },
}

impl Store {
    /// What `playbook` did for `incident` and has not taken back, in key
    /// order (by indicator, then action).
    pub fn acted(&self, playbook: &str, incident: Uuid) -> Result<Vec<Acted>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .shared
            .db
            .scan_prefix(keys::acted_prefix(playbook, Some(incident)))
        {
            let (_, v) = item?;
            out.push(decode_json(&v, "playbook record")?);
        }
        Ok(out)
    }

    /// Every acted record of `playbook`, with its incident; at most `limit`.
    pub fn acted_all(
        &self,
        playbook: &str,
        limit: usize,
    ) -> Result<Vec<(Uuid, Acted)>, StoreError> {
        let prefix = keys::acted_prefix(playbook, None);
        let mut out = Vec::new();
        for item in self.shared.db.scan_prefix(&prefix).take(limit) {
            let (k, v) = item?;
            let incident = k
                .get(prefix.len()..prefix.len() + 16)
                .and_then(|b| Uuid::from_slice(b).ok())
                .ok_or_else(|| super::corrupt("playbook record", "short key"))?;
            out.push((incident, decode_json(&v, "playbook record")?));
        }
        Ok(out)
    }

    /// Every paused playbook, with how many events it holds.
    pub fn paused(&self) -> Result<Vec<Paused>, StoreError> {
        let mut out: Vec<Paused> = Vec::new();
        for item in self.shared.db.scan_prefix(keys::paused_prefix()) {
            let (_, v) = item?;
            out.push(decode_json(&v, "paused playbook")?);
        }
        for paused in &mut out {
            paused.held = self.held(&paused.playbook)?.len() as u64;
        }
        Ok(out)
    }

    /// The events held for `playbook`, oldest first.
    pub fn held(&self, playbook: &str) -> Result<Vec<u64>, StoreError> {
        let prefix = keys::held_prefix(playbook);
        let mut out = Vec::new();
        for item in self.shared.db.scan_prefix(&prefix) {
            let (k, _) = item?;
            let seq = k
                .get(prefix.len()..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or_else(|| super::corrupt("held event", "bad key"))?;
            out.push(seq);
        }
        Ok(out)
    }

    /// Playbooks that hold events, paused or not (a resume whose replay
    /// was cut short by a restart).
    pub fn playbooks_holding(&self) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        for item in self.shared.db.scan_prefix(keys::held_prefix("")) {
            let (k, _) = item?;
            let name = k
                .get(2..)
                .and_then(|rest| rest.split(|b| *b == 0).next())
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            if out.last() != Some(&name) {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Applies a change to a playbook's local state, durably.
    pub async fn playbook_change(&self, change: PlaybookChange) -> Result<u64, StoreError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.send(super::writer::Command::Playbook { change, reply })
            .await?;
        answer.await.map_err(|_| StoreError::WriterGone)?
    }
}
