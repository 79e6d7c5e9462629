//! Reacts to node events: plans them against the loaded playbooks, hands
//! exec and webhook actions to the [`Runner`] (each run in its own task, so
//! a slow action never holds up sync or the API), applies local tags and
//! notes, and records every run in the store.
//!
//! At most once per incident version: a run's key names the playbook, the
//! event, the incident and the envelope that caused it, and a key already
//! recorded is never run again — across restarts too.

use std::sync::Arc;

use cer_proto::api::Annotation;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::plan::{plan, EventKind, PlannedAction, PlannedKind, Trigger};
use super::run::{local_record, Runner};
use crate::node::{now, Node, NodeEvent, AUDIT};

/// Starts reacting to the node's events.
pub fn start(node: Arc<Node>, runner: Runner) -> JoinHandle<()> {
    let mut events = node.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => handle(&node, &runner, event),
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(target: AUDIT, event = "playbook_events_lost", missed, "playbooks fell behind; some events did not trigger them");
                }
                Err(RecvError::Closed) => return,
            }
        }
    })
}

fn handle(node: &Arc<Node>, runner: &Runner, event: NodeEvent) {
    let playbooks = node.playbooks();
    if playbooks.is_empty() {
        return;
    }
    let own = node.fingerprint().clone();
    let names = |f: &cer_proto::Fingerprint| node.name_of(f);
    let state;
    let peer;
    let trigger = match event {
        NodeEvent::Stored {
            author,
            id,
            subject,
            kind,
            ..
        } => {
            let Some(event) = EventKind::for_envelope(kind, &author, &own) else {
                return;
            };
            state = match node.store().incident(subject) {
                Ok(Some(state)) => state,
                Ok(None) => return,
                Err(e) => {
                    tracing::error!(error = %e, %subject, "cannot read the incident for playbooks");
                    return;
                }
            };
            Trigger {
                event,
                incident: Some(&state),
                peer: None,
                own: &own,
                names: &names,
                version: id.to_hex(),
            }
        }
        NodeEvent::PeerUp { peer: p } => {
            peer = p;
            peer_trigger(EventKind::PeerUp, &peer, &own, &names)
        }
        NodeEvent::PeerDown { peer: p, .. } => {
            peer = p;
            peer_trigger(EventKind::PeerDown, &peer, &own, &names)
        }
        NodeEvent::Equivocation {
            author, seq, other, ..
        } => {
            peer = author;
            Trigger {
                event: EventKind::MeshEquivocation,
                incident: None,
                peer: Some(&peer),
                own: &own,
                names: &names,
                version: format!("{seq}-{other}"),
            }
        }
        NodeEvent::TrustChanged => return,
    };
    for action in plan(&playbooks, &trigger) {
        match node.store().run_recorded(&action.key) {
            Ok(false) => {}
            Ok(true) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read run history; not running {}", action.key);
                continue;
            }
        }
        if action.is_local() {
            apply_local(node, &action);
            continue;
        }
        let node = node.clone();
        let runner = runner.clone();
        tokio::spawn(async move {
            let record = runner.run(&action).await;
            if let Err(e) = node.store().record_run(&record) {
                tracing::error!(error = %e, key = %record.key, "cannot record a playbook run");
            }
        });
    }
}

fn peer_trigger<'a>(
    event: EventKind,
    peer: &'a cer_proto::Fingerprint,
    own: &'a cer_proto::Fingerprint,
    names: &'a dyn Fn(&cer_proto::Fingerprint) -> Option<String>,
) -> Trigger<'a> {
    Trigger {
        event,
        incident: None,
        peer: Some(peer),
        own,
        names,
        version: now().unix_nanos().to_string(),
    }
}

fn apply_local(node: &Node, action: &PlannedAction) {
    let started = now();
    let result = match (&action.kind, action.incident) {
        (PlannedKind::Tag(tag), Some(incident)) => node.store().annotate(
            incident,
            &Annotation {
                at: started,
                playbook: action.playbook.clone(),
                tag: Some(tag.clone()),
                note: None,
            },
        ),
        (PlannedKind::Note(note), Some(incident)) => node.store().annotate(
            incident,
            &Annotation {
                at: started,
                playbook: action.playbook.clone(),
                tag: None,
                note: Some(note.clone()),
            },
        ),
        _ => Ok(()),
    };
    let record = local_record(action, started, result.map_err(|e| e.to_string()));
    tracing::info!(target: AUDIT, event = "playbook_ran", playbook = %record.playbook, action = %record.action, outcome = %record.outcome, "playbook action applied");
    if let Err(e) = node.store().record_run(&record) {
        tracing::error!(error = %e, key = %record.key, "cannot record a playbook run");
    }
}
