//! Reacts to what happens on the node: plans each event against the loaded
//! playbooks, hands exec and webhook actions to the [`Runner`] (each in its
//! own task, so a slow action never holds up sync or the API), applies
//! local tags and notes, and records every run in the store.
//!
//! At least once, with exactly-once effects: stored envelopes and
//! equivocations are read from the store's durable event log, from a cursor
//! saved in the store. The cursor moves past an event only when every
//! action it caused has finished and been recorded, so after a crash the
//! events after it are planned again; a run's key (playbook, event,
//! incident, envelope) already recorded is never run twice. Peer up/down
//! events are live only.

use std::collections::BTreeMap;
use std::sync::Arc;

use cer_proto::api::Annotation;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::plan::{plan, EventKind, PlannedAction, PlannedKind, Trigger};
use super::run::{local_record, Outcome, Runner};
use super::CURSOR;
use crate::audit::{now, AUDIT};
use crate::node::{Node, NodeEvent};
use crate::store::{Change, EventRecord};

/// Events read from the log at a time.
const READ_AHEAD: usize = 256;

/// Starts reacting to the node's events.
pub fn start(node: Arc<Node>, runner: Runner) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = drive(node, runner).await {
            tracing::error!(error = %e, "playbooks stopped: cannot read the event log");
        }
    })
}

async fn drive(node: Arc<Node>, runner: Runner) -> Result<(), crate::store::StoreError> {
    let store = node.store().clone();
    let reader = store.clone();
    let mut read = tokio::task::spawn_blocking(move || reader.cursor(CURSOR))
        .await
        .map_err(|_| crate::store::StoreError::WriterGone)??;
    let mut saved = read;
    let mut durable = store.durable_events();
    let mut live = node.subscribe();
    let (done_tx, mut done) = mpsc::unbounded_channel::<u64>();
    // Unfinished actions per event seq; the cursor stays below the first.
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    loop {
        let newest = *durable.borrow_and_update();
        if read < newest {
            let reader = store.clone();
            let events = tokio::task::spawn_blocking(move || reader.events_after(read, READ_AHEAD))
                .await
                .map_err(|_| crate::store::StoreError::WriterGone)??;
            if events.is_empty() {
                read = newest;
            }
            for event in events {
                read = event.seq;
                let started = handle(&node, &runner, &event, &done_tx).await;
                if started > 0 {
                    pending.insert(event.seq, started);
                }
            }
        } else {
            save(&store, &pending, read, &mut saved).await;
            tokio::select! {
                changed = durable.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                Some(seq) = done.recv() => finish(&mut pending, seq),
                event = live.recv() => match event {
                    Ok(event) => handle_live(&node, &runner, event),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(target: AUDIT, event = "playbook_events_lost", missed, "playbooks fell behind on peer events; some did not trigger them");
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
            }
        }
        while let Ok(seq) = done.try_recv() {
            finish(&mut pending, seq);
        }
        if read.saturating_sub(saved) >= READ_AHEAD as u64 {
            save(&store, &pending, read, &mut saved).await;
        }
    }
}

fn finish(pending: &mut BTreeMap<u64, usize>, seq: u64) {
    if let Some(left) = pending.get_mut(&seq) {
        *left -= 1;
        if *left == 0 {
            pending.remove(&seq);
        }
    }
}

/// Saves the cursor: everything up to it is finished.
async fn save(
    store: &crate::store::Store,
    pending: &BTreeMap<u64, usize>,
    read: u64,
    saved: &mut u64,
) {
    let upto = match pending.keys().next() {
        Some(first) => first - 1,
        None => read,
    };
    if upto > *saved {
        match store.set_cursor(CURSOR, upto).await {
            Ok(()) => *saved = upto,
            Err(e) => {
                tracing::error!(error = %e, "cannot save the playbooks' place in the event log")
            }
        }
    }
}

/// Plans one durable event and starts its actions. Returns how many.
async fn handle(
    node: &Arc<Node>,
    runner: &Runner,
    event: &EventRecord,
    done: &mpsc::UnboundedSender<u64>,
) -> usize {
    let playbooks = node.playbooks();
    if playbooks.is_empty() {
        return 0;
    }
    let state = match &event.change {
        Change::Stored { subject, .. } => {
            let store = node.store().clone();
            let subject = *subject;
            match tokio::task::spawn_blocking(move || store.incident(subject)).await {
                Ok(Ok(Some(state))) => Some(state),
                Ok(Ok(None)) => return 0,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, %subject, "cannot read the incident for playbooks");
                    return 0;
                }
                Err(_) => return 0,
            }
        }
        Change::Equivocation { .. } => None,
    };
    let own = node.fingerprint().clone();
    let names = |f: &cer_proto::Fingerprint| node.name_of(f);
    let trigger = match &event.change {
        Change::Stored {
            author,
            id,
            subject,
            kind,
            ..
        } => {
            let Some(kind) = EventKind::for_envelope(*kind, author, &own) else {
                return 0;
            };
            let _ = subject;
            Trigger {
                event: kind,
                incident: state.as_ref(),
                peer: None,
                own: &own,
                names: &names,
                version: id.to_hex(),
            }
        }
        Change::Equivocation {
            author, seq, other, ..
        } => Trigger {
            event: EventKind::MeshEquivocation,
            incident: None,
            peer: Some(author),
            own: &own,
            names: &names,
            version: format!("{seq}-{other}"),
        },
    };
    let actions = plan(&playbooks, &trigger);
    let count = actions.len();
    spawn_playbooks(node, runner, actions, Some((event.seq, done.clone())));
    count
}

fn handle_live(node: &Arc<Node>, runner: &Runner, event: NodeEvent) {
    let playbooks = node.playbooks();
    if playbooks.is_empty() {
        return;
    }
    let own = node.fingerprint().clone();
    let names = |f: &cer_proto::Fingerprint| node.name_of(f);
    let (kind, peer) = match event {
        NodeEvent::PeerUp { peer } => (EventKind::PeerUp, peer),
        NodeEvent::PeerDown { peer, .. } => (EventKind::PeerDown, peer),
        NodeEvent::TrustChanged => return,
    };
    let trigger = Trigger {
        event: kind,
        incident: None,
        peer: Some(&peer),
        own: &own,
        names: &names,
        version: now().unix_nanos().to_string(),
    };
    spawn_playbooks(node, runner, plan(&playbooks, &trigger), None);
}

/// Runs each playbook's actions on a task of its own, in file order: the
/// runs of one action (one per indicator) side by side, the next action
/// once they are done, so a tag or note knows whether everything before it
/// succeeded. Reports the event seq as done once per action.
fn spawn_playbooks(
    node: &Arc<Node>,
    runner: &Runner,
    actions: Vec<PlannedAction>,
    done: Option<(u64, mpsc::UnboundedSender<u64>)>,
) {
    // `plan` lists actions by playbook, then by action.
    let mut playbooks: Vec<Vec<PlannedAction>> = Vec::new();
    for action in actions {
        match playbooks.last_mut() {
            Some(group) if group[0].playbook == action.playbook => group.push(action),
            _ => playbooks.push(vec![action]),
        }
    }
    for actions in playbooks {
        let node = node.clone();
        let runner = runner.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut succeeded = true;
            let mut actions = actions.into_iter().peekable();
            while let Some(first) = actions.next() {
                let index = first.action_index;
                let mut stage = vec![first];
                while let Some(next) = actions.next_if(|a| a.action_index == index) {
                    stage.push(next);
                }
                let mut runs = tokio::task::JoinSet::new();
                for action in stage {
                    let node = node.clone();
                    let runner = runner.clone();
                    runs.spawn(async move { run_once(&node, &runner, &action, succeeded).await });
                }
                while let Some(ok) = runs.join_next().await {
                    succeeded &= ok.unwrap_or(false);
                    if let Some((seq, done)) = &done {
                        let _ = done.send(*seq);
                    }
                }
            }
        });
    }
}

/// Runs one action unless its key was recorded, and records it. Returns
/// whether it succeeded (now, or when it was recorded before a restart).
/// A tag or note that waits for success and comes after an action that did
/// not succeed is recorded as skipped.
async fn run_once(node: &Node, runner: &Runner, action: &PlannedAction, before_ok: bool) -> bool {
    let store = node.store().clone();
    let key = action.key.clone();
    let recorded = tokio::task::spawn_blocking(move || store.run_record(&key)).await;
    match recorded {
        Ok(Ok(None)) => {
            let record = if action.is_local() && action.waits_for_success() && !before_ok {
                skipped_record(action)
            } else if action.is_local() {
                apply_local(node, action).await
            } else {
                runner.run(action).await
            };
            let ok = record.outcome.is_ok();
            if let Err(e) = node.store().record_run(record).await {
                tracing::error!(error = %e, key = %action.key, "cannot record a playbook run");
            }
            ok
        }
        Ok(Ok(Some(record))) => record.outcome.is_ok(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read run history; not running {}", action.key);
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "run history task failed");
            false
        }
    }
}

fn skipped_record(action: &PlannedAction) -> cer_proto::api::RunRecord {
    let mut record = local_record(action, now(), Ok(()));
    record.outcome = Outcome::Skipped {
        reason: "an earlier action of the playbook did not succeed (when: previous_succeeded)"
            .into(),
    };
    tracing::info!(target: AUDIT, event = "playbook_ran", playbook = %record.playbook, action = %record.action, outcome = %record.outcome, "playbook action skipped");
    record
}

async fn apply_local(node: &Node, action: &PlannedAction) -> cer_proto::api::RunRecord {
    let started = now();
    let annotation = match (&action.kind, action.incident) {
        (PlannedKind::Tag(tag, _), Some(incident)) => Some((
            incident,
            Annotation {
                at: started,
                playbook: action.playbook.clone(),
                tag: Some(tag.clone()),
                note: None,
            },
        )),
        (PlannedKind::Note(note, _), Some(incident)) => Some((
            incident,
            Annotation {
                at: started,
                playbook: action.playbook.clone(),
                tag: None,
                note: Some(note.clone()),
            },
        )),
        _ => None,
    };
    let result = match annotation {
        Some((incident, annotation)) => node.store().annotate(incident, annotation).await,
        None => Ok(()),
    };
    let record = local_record(action, started, result.map_err(|e| e.to_string()));
    tracing::info!(target: AUDIT, event = "playbook_ran", playbook = %record.playbook, action = %record.action, outcome = %record.outcome, "playbook action applied");
    record
}
