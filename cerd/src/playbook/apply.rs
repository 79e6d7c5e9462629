//! Running one planned action and recording what happened: the run
//! record, and in the same write what it changes in the playbook's acted
//! records; local tags and notes; and `playbook test --run`.

use cer_proto::api::{Acted, Annotation, RunRecord};

use super::plan::{Effect, PlannedAction, PlannedKind};
use super::run::{local_record, Outcome, Runner};
use super::spec::When;
use crate::audit::{now, AUDIT};
use crate::node::Node;
use crate::store::RunEffect;

/// Runs a playbook's planned actions once for `cerctl playbook test
/// --run`: exec and webhook actions for real, in file order; tags and
/// notes not applied. Each record is marked a test run and kept in the
/// run history; nothing is recorded as acted on.
pub async fn run_test(node: &Node, actions: Vec<PlannedAction>) -> Vec<RunRecord> {
    let runner = Runner::default();
    let mut records = Vec::new();
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
            let runner = runner.clone();
            runs.spawn(async move {
                let mut record = if action.is_local() {
                    let mut record = local_record(&action, now(), Ok(()));
                    let reason = if action.applies(succeeded) {
                        "tags and notes are not applied in a test run"
                    } else {
                        "would be skipped: its when: does not hold"
                    };
                    record.outcome = Outcome::Skipped {
                        reason: reason.into(),
                    };
                    record
                } else {
                    runner.run(&action).await
                };
                record.test = true;
                (action.action_index, record)
            });
        }
        let mut stage_records = Vec::new();
        while let Some(Ok(done)) = runs.join_next().await {
            stage_records.push(done);
        }
        stage_records.sort_by(|a, b| a.1.key.cmp(&b.1.key));
        for (_, record) in stage_records {
            if !matches!(record.outcome, Outcome::Skipped { .. }) {
                succeeded &= record.outcome.is_ok();
            }
            if let Err(e) = node
                .store()
                .record_run(record.clone(), RunEffect::None)
                .await
            {
                tracing::error!(error = %e, key = %record.key, "cannot record a test run");
            }
            records.push(record);
        }
    }
    records
}

/// Runs one action unless its key was recorded, and records it with what
/// it did. Returns whether it succeeded (now, or when it was recorded
/// before a restart). A tag or note whose `when` does not hold is
/// recorded as skipped.
pub(super) async fn run_once(
    node: &Node,
    runner: &Runner,
    action: &PlannedAction,
    before_ok: bool,
) -> bool {
    let store = node.store().clone();
    let key = action.key.clone();
    let recorded = tokio::task::spawn_blocking(move || store.run_record(&key)).await;
    match recorded {
        Ok(Ok(None)) => {
            let record = if action.is_local() && !action.applies(before_ok) {
                skipped_record(action)
            } else if action.is_local() {
                apply_local(node, action).await
            } else {
                runner.run(action).await
            };
            let ok = record.outcome.is_ok();
            node.metrics().playbook_run(
                &record.playbook,
                &record.outcome,
                std::time::Duration::from_millis(record.duration_ms),
            );
            let effect = if ok {
                run_effect(action, &record)
            } else {
                RunEffect::None
            };
            if let Err(e) = node.store().record_run(record, effect).await {
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

fn run_effect(action: &PlannedAction, record: &RunRecord) -> RunEffect {
    let Some(incident) = action.incident else {
        return RunEffect::None;
    };
    match &action.effect {
        Effect::None => RunEffect::None,
        Effect::Acted { kind, value } => RunEffect::Acted {
            playbook: action.playbook.clone(),
            incident,
            acted: Acted {
                action: action.action_index,
                kind: *kind,
                value: value.clone(),
                run_key: action.key.clone(),
                at: record.started,
            },
        },
        Effect::Undone { kind, value } => RunEffect::Undone {
            playbook: action.playbook.clone(),
            incident,
            kind: *kind,
            value: value.clone(),
        },
    }
}

fn skipped_record(action: &PlannedAction) -> RunRecord {
    let mut record = local_record(action, now(), Ok(()));
    let reason = match &action.kind {
        PlannedKind::Tag(_, When::Failure) | PlannedKind::Note(_, When::Failure) => {
            "every earlier action of the playbook succeeded (when: failure)"
        }
        _ => "an earlier action of the playbook did not succeed (when: success)",
    };
    record.outcome = Outcome::Skipped {
        reason: reason.into(),
    };
    tracing::info!(target: AUDIT, event = "playbook_ran", playbook = %record.playbook, action = %record.action, outcome = %record.outcome, "playbook action skipped");
    record
}

async fn apply_local(node: &Node, action: &PlannedAction) -> RunRecord {
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
