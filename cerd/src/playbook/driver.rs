//! Reacts to what happens on the node: plans each event against the loaded
//! playbooks, hands exec and webhook actions to the [`Runner`] (each
//! playbook's work on a task of its own, so a slow action never holds up
//! sync or the API), applies local tags and notes, and records every run
//! in the store with what it did ([`Acted`] records).
//!
//! At least once, with exactly-once effects: stored envelopes and
//! equivocations are read from the store's durable event log, from a cursor
//! saved in the store. The cursor moves past an event only when every
//! playbook it triggered has finished and recorded its runs, so after a
//! crash the events after it are planned again; a run's key (playbook,
//! event, incident, envelope) already recorded is never run twice. Peer
//! up/down and playbook.paused events are live only.
//!
//! One playbook's work on one incident runs in event order, one trigger
//! after the other, and each is planned only when the one before it has
//! recorded its runs: so `only: added` sees exactly what the playbook
//! already did, and an undo sees every block that succeeded.
//!
//! Limits ([`super::guard`]): a trigger that would pass one pauses the
//! playbook instead of running. Its events are then held in the store and
//! run when the operator resumes it (`cerctl playbook resume`), or dropped
//! with `--discard`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use cer_proto::api::{Acted, Paused, RunRecord};
use cer_proto::envelope::Kind;
use cer_proto::incident::IncidentState;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::apply::run_once;
pub use super::apply::run_test;
use super::guard::{Admit, Guard};
use super::plan::{plan, plan_one, EventKind, PlannedAction, Trigger};
use super::run::Runner;
use super::spec::Playbook;
use super::CURSOR;
use crate::audit::{now, AUDIT};
use crate::node::{Node, NodeEvent};
use crate::store::{Change, EventRecord, PlaybookChange, StoreError};

/// Events read from the log at a time.
const READ_AHEAD: usize = 256;
/// Run records given to an undo action (`acted_runs`), at most.
const MAX_ACTED_RUNS: usize = 100;
/// Acted records one sweep reads per playbook, at most.
const MAX_SWEPT: usize = 1_000_000;

/// Starts reacting to the node's events.
pub fn start(node: Arc<Node>, runner: Runner) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = drive(node, runner).await {
            tracing::error!(error = %e, "playbooks stopped: cannot read the event log");
        }
    })
}

/// What every playbook task shares.
struct Driver {
    node: Arc<Node>,
    runner: Runner,
    guard: Guard,
    /// Per (playbook, incident): the latest task's liveness, which the
    /// next one waits on (the sender drops when the task ends).
    chains: Mutex<HashMap<(String, Uuid), watch::Receiver<()>>>,
}

/// One event for one playbook.
struct Work {
    playbook: Playbook,
    events: Vec<EventKind>,
    state: Arc<IncidentState>,
    version: String,
    /// The event's seq in the log, reported done (for the cursor) unless
    /// this is a replay of a held event. None for what is not in the log
    /// (an expiry sweep): never held, never reported.
    seq: Option<u64>,
    replay: bool,
}

async fn drive(node: Arc<Node>, runner: Runner) -> Result<(), StoreError> {
    let store = node.store().clone();
    let reader = store.clone();
    let (mut read, paused) =
        blocking(move || Ok((reader.cursor(CURSOR)?, reader.paused()?))).await?;
    let driver = Arc::new(Driver {
        guard: Guard::new(paused),
        node: node.clone(),
        runner,
        chains: Mutex::new(HashMap::new()),
    });
    let reader = store.clone();
    for name in blocking(move || reader.playbooks_holding()).await? {
        if !driver.guard.is_paused(&name) {
            driver.clone().replay(name);
        }
    }
    let mut saved = read;
    let mut durable = store.durable_events();
    let mut live = node.subscribe();
    let (done_tx, mut done) = mpsc::unbounded_channel::<u64>();
    // Unfinished playbook tasks per event seq; the cursor stays below the
    // first.
    let mut pending: BTreeMap<u64, usize> = BTreeMap::new();
    let mut sweep = tokio::time::interval(node.config().expiry_check_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let newest = *durable.borrow_and_update();
        if read < newest {
            let reader = store.clone();
            let events = blocking(move || reader.events_after(read, READ_AHEAD)).await?;
            if events.is_empty() {
                read = newest;
            }
            for event in events {
                read = event.seq;
                let started = driver.handle(&event, None, Some(&done_tx)).await;
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
                _ = sweep.tick() => driver.clone().sweep(),
                event = live.recv() => match event {
                    Ok(NodeEvent::PlaybookResumed { playbook }) => {
                        driver.guard.resume(&playbook);
                        driver.clone().replay(playbook);
                    }
                    Ok(event) => driver.handle_live(event),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(target: AUDIT, event = "playbook_events_lost", missed, "playbooks fell behind on peer events; some did not trigger them");
                        // A resume may have been among them.
                        let reader = store.clone();
                        if let Ok(paused) = blocking(move || reader.paused()).await {
                            for name in driver.guard.reload(paused) {
                                driver.clone().replay(name);
                            }
                        }
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

async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|_| StoreError::WriterGone)?
}

impl Driver {
    /// Starts, for one durable event, a task per playbook it may trigger
    /// (only `only`'s, for a replay). Returns how many; each reports the
    /// event's seq on `done` when finished.
    async fn handle(
        self: &Arc<Self>,
        event: &EventRecord,
        only: Option<&str>,
        done: Option<&mpsc::UnboundedSender<u64>>,
    ) -> usize {
        self.start(event, only, done).await.len()
    }

    async fn start(
        self: &Arc<Self>,
        event: &EventRecord,
        only: Option<&str>,
        done: Option<&mpsc::UnboundedSender<u64>>,
    ) -> Vec<JoinHandle<()>> {
        let playbooks: Vec<Playbook> = self
            .node
            .playbooks()
            .iter()
            .filter(|p| p.enabled && only.is_none_or(|name| p.name == name))
            .cloned()
            .collect();
        if playbooks.is_empty() {
            return Vec::new();
        }
        let own = self.node.fingerprint().clone();
        let (author, id, subject, kind) = match &event.change {
            Change::Stored {
                author,
                id,
                subject,
                kind,
                ..
            } => (author, id, *subject, *kind),
            Change::Equivocation {
                author, seq, other, ..
            } => {
                let names = |f: &cer_proto::Fingerprint| self.node.name_of(f);
                let trigger = Trigger {
                    event: EventKind::MeshEquivocation,
                    incident: None,
                    peer: Some(author),
                    own: &own,
                    names: &names,
                    version: format!("{seq}-{other}"),
                    acted: &[],
                    acted_runs: &[],
                    paused: None,
                    expiry: None,
                    warninglisted: None,
                };
                let mut tasks = Vec::new();
                for playbook in playbooks {
                    let Ok(actions) = plan_one(&playbook, &trigger) else {
                        continue;
                    };
                    tasks.push(self.clone().spawn_unchained(
                        playbook,
                        actions,
                        done.map(|d| (event.seq, d.clone())),
                        only.is_some(),
                    ));
                }
                return tasks;
            }
        };
        let Some(primary) = EventKind::for_envelope(kind, author, &own) else {
            return Vec::new();
        };
        let store = self.node.store().clone();
        let state = match blocking(move || store.incident(subject)).await {
            Ok(Some(state)) => Arc::new(state),
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, %subject, "cannot read the incident for playbooks");
                return Vec::new();
            }
        };
        // Indicators leave a live incident only with a withdrawn envelope:
        // playbooks that acted on them hear of it first, as
        // indicator.removed, and what that undid is no longer there to
        // undo when the same withdrawal comes as retraction.received.
        let mut candidates = vec![primary];
        if kind == Kind::Retraction && state.retracted.is_none() {
            candidates.insert(0, EventKind::IndicatorRemoved);
        }
        let names = |f: &cer_proto::Fingerprint| self.node.name_of(f);
        let mut tasks = Vec::new();
        for playbook in playbooks {
            let events: Vec<EventKind> = candidates
                .iter()
                .copied()
                .filter(|event| {
                    // Undo events depend on what the playbook acted on,
                    // which the task reads; the rest is decided here.
                    event.is_undo()
                        || super::plan::evaluate(
                            &playbook,
                            &Trigger {
                                event: *event,
                                incident: Some(&state),
                                peer: None,
                                own: &own,
                                names: &names,
                                version: String::new(),
                                acted: &[],
                                acted_runs: &[],
                                paused: None,
                                expiry: None,
                                warninglisted: None,
                            },
                        )
                        .is_ok()
                })
                .filter(|event| playbook.on.contains(event))
                .collect();
            if events.is_empty() {
                continue;
            }
            let work = Work {
                playbook,
                events,
                state: state.clone(),
                version: id.to_hex(),
                seq: Some(event.seq),
                replay: only.is_some(),
            };
            tasks.push(self.clone().spawn_chained(work, done.cloned()));
        }
        tasks
    }

    /// Runs one playbook's work for one incident after the previous work of
    /// the same playbook on the same incident has finished.
    fn spawn_chained(
        self: Arc<Self>,
        work: Work,
        done: Option<mpsc::UnboundedSender<u64>>,
    ) -> JoinHandle<()> {
        let key = (work.playbook.name.clone(), work.state.id);
        let (alive, mine) = watch::channel(());
        let before = self
            .chains
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), mine.clone());
        tokio::spawn(async move {
            if let Some(mut before) = before {
                // Resolves when the earlier task's sender drops.
                let _ = before.changed().await;
            }
            let seq = work.seq;
            let replay = work.replay;
            self.work(work).await;
            {
                let mut chains = self.chains.lock().unwrap_or_else(|e| e.into_inner());
                if chains
                    .get(&key)
                    .is_some_and(|last| last.same_channel(&mine))
                {
                    chains.remove(&key);
                }
            }
            drop(alive);
            if let (Some(done), Some(seq), false) = (done, seq, replay) {
                let _ = done.send(seq);
            }
        })
    }

    async fn work(&self, work: Work) {
        let name = work.playbook.name.clone();
        if !work.replay && self.guard.is_paused(&name) {
            if let Some(seq) = work.seq {
                self.hold(&name, seq).await;
            }
            return;
        }
        let own = self.node.fingerprint().clone();
        let expiry = self.node.expiry();
        for event in work.events {
            let (acted, acted_runs) = match self.acted(&name, &work.state, event).await {
                Ok(found) => found,
                Err(e) => {
                    tracing::error!(error = %e, playbook = %name, "cannot read what the playbook did; not running it");
                    return;
                }
            };
            // The trigger borrows a closure that is not Send: plan before
            // any await.
            let planned = {
                let names = |f: &cer_proto::Fingerprint| self.node.name_of(f);
                let lists = self.node.warninglists();
                let listed = |kind, value: &str| !lists.matches(kind, value).is_empty();
                let trigger = Trigger {
                    event,
                    incident: Some(&work.state),
                    peer: None,
                    own: &own,
                    names: &names,
                    version: work.version.clone(),
                    acted: &acted,
                    acted_runs: &acted_runs,
                    paused: None,
                    expiry: Some(&expiry),
                    warninglisted: Some(&listed),
                };
                plan_one(&work.playbook, &trigger)
            };
            let Ok(actions) = planned else {
                continue;
            };
            if actions.is_empty() {
                continue;
            }
            if !work.replay {
                match self
                    .guard
                    .admit(&work.playbook, &actions, Instant::now(), now())
                {
                    Admit::Run => {}
                    Admit::Hold => {
                        if let Some(seq) = work.seq {
                            self.hold(&name, seq).await;
                        }
                        return;
                    }
                    Admit::Pause(paused) => return self.pause(paused, work.seq).await,
                }
            }
            self.run_stages(actions).await;
        }
    }

    /// What the playbook did for the incident, and for an undo event the
    /// records of those runs.
    async fn acted(
        &self,
        playbook: &str,
        state: &IncidentState,
        event: EventKind,
    ) -> Result<(Vec<Acted>, Vec<RunRecord>), StoreError> {
        let store = self.node.store().clone();
        let (name, incident) = (playbook.to_owned(), state.id);
        let undo = event.is_undo();
        blocking(move || {
            let acted = store.acted(&name, incident)?;
            let mut runs = Vec::new();
            if undo {
                let mut keys: Vec<&str> = acted.iter().map(|a| a.run_key.as_str()).collect();
                keys.sort_unstable();
                keys.dedup();
                for key in keys.into_iter().take(MAX_ACTED_RUNS) {
                    if let Some(run) = store.run_record(key)? {
                        runs.push(run);
                    }
                }
            }
            Ok((acted, runs))
        })
        .await
    }

    async fn hold(&self, playbook: &str, seq: u64) {
        let change = PlaybookChange::Hold {
            playbook: playbook.to_owned(),
            event: seq,
        };
        if let Err(e) = self.node.store().playbook_change(change).await {
            tracing::error!(error = %e, %playbook, seq, "cannot hold an event for a paused playbook");
        }
    }

    /// Records a pause; `seq` is the log event to hold (None for a live
    /// event, which is not held).
    async fn pause(&self, paused: Paused, seq: Option<u64>) {
        tracing::warn!(target: AUDIT, event = "playbook_paused", playbook = %paused.playbook, reason = %paused.reason, "playbook paused by a limit; resume it with cerctl playbook resume {}", paused.playbook);
        let store = self.node.store();
        if let Err(e) = store
            .playbook_change(PlaybookChange::Pause(paused.clone()))
            .await
        {
            tracing::error!(error = %e, playbook = %paused.playbook, "cannot record the pause; it holds until restart");
        }
        if let Some(seq) = seq {
            self.hold(&paused.playbook, seq).await;
        }
        self.handle_paused(&paused);
    }

    /// Runs the playbooks that listen to `playbook.paused`.
    fn handle_paused(&self, paused: &Paused) {
        let playbooks = self.node.playbooks();
        let own = self.node.fingerprint().clone();
        let names = |f: &cer_proto::Fingerprint| self.node.name_of(f);
        let trigger = Trigger {
            event: EventKind::PlaybookPaused,
            incident: None,
            peer: None,
            own: &own,
            names: &names,
            version: format!("{}-{}", paused.playbook, paused.at.unix_nanos()),
            acted: &[],
            acted_runs: &[],
            paused: Some(paused),
            expiry: None,
            warninglisted: None,
        };
        let actions: Vec<PlannedAction> = plan(&playbooks, &trigger)
            .into_iter()
            .filter(|a| a.playbook != paused.playbook)
            .collect();
        self.spawn_live(actions);
    }

    fn handle_live(&self, event: NodeEvent) {
        let playbooks = self.node.playbooks();
        if playbooks.is_empty() {
            return;
        }
        let own = self.node.fingerprint().clone();
        let names = |f: &cer_proto::Fingerprint| self.node.name_of(f);
        let (kind, peer) = match event {
            NodeEvent::PeerUp { peer } => (EventKind::PeerUp, peer),
            NodeEvent::PeerDown { peer, .. } => (EventKind::PeerDown, peer),
            NodeEvent::TrustChanged | NodeEvent::PlaybookResumed { .. } => return,
        };
        let trigger = Trigger {
            event: kind,
            incident: None,
            peer: Some(&peer),
            own: &own,
            names: &names,
            version: now().unix_nanos().to_string(),
            acted: &[],
            acted_runs: &[],
            paused: None,
            expiry: None,
            warninglisted: None,
        };
        self.spawn_live(plan(&playbooks, &trigger));
    }

    /// Live events (no incident, not in the log): each playbook's actions
    /// on a task, paused playbooks left out.
    fn spawn_live(&self, actions: Vec<PlannedAction>) {
        let driver = Driver {
            node: self.node.clone(),
            runner: self.runner.clone(),
            guard: self.guard.clone(),
            chains: Mutex::new(HashMap::new()),
        };
        let driver = Arc::new(driver);
        let playbooks = self.node.playbooks();
        for actions in by_playbook(actions) {
            let Some(playbook) = playbooks.iter().find(|p| p.name == actions[0].playbook) else {
                continue;
            };
            // Live events are not in the log: a paused playbook misses
            // them, as it would while the daemon was down.
            let admit = self.guard.admit(playbook, &actions, Instant::now(), now());
            let driver = driver.clone();
            tokio::spawn(async move {
                match admit {
                    Admit::Run => driver.run_stages(actions).await,
                    Admit::Hold => {}
                    Admit::Pause(paused) => driver.pause(paused, None).await,
                }
            });
        }
    }

    fn spawn_unchained(
        self: Arc<Self>,
        playbook: Playbook,
        actions: Vec<PlannedAction>,
        done: Option<(u64, mpsc::UnboundedSender<u64>)>,
        replay: bool,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let seq = done.as_ref().map(|(seq, _)| *seq).unwrap_or(0);
            let admit = if replay {
                Admit::Run
            } else {
                self.guard.admit(&playbook, &actions, Instant::now(), now())
            };
            match admit {
                Admit::Run => self.run_stages(actions).await,
                Admit::Hold => self.hold(&playbook.name, seq).await,
                Admit::Pause(paused) => self.pause(paused, Some(seq)).await,
            }
            if let (Some((seq, done)), false) = (done, replay) {
                let _ = done.send(seq);
            }
        })
    }

    /// Starts `indicator.expired` work for every incident on which a
    /// playbook listening to it acted on an indicator that has expired
    /// since. Not in the event log: a run key per hour, so a failed undo
    /// is tried again the next hour, and a successful one removes the
    /// record.
    fn sweep(self: Arc<Self>) {
        let playbooks: Vec<Playbook> = self
            .node
            .playbooks()
            .iter()
            .filter(|p| p.enabled && p.on.contains(&EventKind::IndicatorExpired))
            .cloned()
            .collect();
        if playbooks.is_empty() {
            return;
        }
        tokio::spawn(async move {
            let expiry = self.node.expiry();
            let version = format!("expired-{}", expiry.now.unix_seconds() / 3600);
            for playbook in playbooks {
                let store = self.node.store().clone();
                let name = playbook.name.clone();
                let acted = match blocking(move || store.acted_all(&name, MAX_SWEPT)).await {
                    Ok(acted) => acted,
                    Err(e) => {
                        tracing::error!(error = %e, playbook = %playbook.name, "cannot read what the playbook did for the expiry check");
                        continue;
                    }
                };
                let mut incidents: Vec<uuid::Uuid> = acted.iter().map(|(i, _)| *i).collect();
                incidents.dedup();
                for incident in incidents {
                    let store = self.node.store().clone();
                    let Ok(Some(state)) = blocking(move || store.incident(incident)).await else {
                        continue;
                    };
                    let expired = acted.iter().filter(|(i, _)| *i == incident).any(|(_, a)| {
                        state
                            .indicators
                            .iter()
                            .find(|e| e.kind == a.kind && e.value == a.value)
                            .is_some_and(|e| expiry.expired(e))
                    });
                    if !expired {
                        continue;
                    }
                    let work = Work {
                        playbook: playbook.clone(),
                        events: vec![EventKind::IndicatorExpired],
                        state: Arc::new(state),
                        version: version.clone(),
                        seq: None,
                        replay: false,
                    };
                    self.clone().spawn_chained(work, None);
                }
            }
        });
    }

    /// Runs the held events of a resumed playbook, oldest first, each once
    /// its runs are recorded released from the store.
    fn replay(self: Arc<Self>, playbook: String) {
        tokio::spawn(async move {
            let store = self.node.store().clone();
            let name = playbook.clone();
            let held = match blocking(move || store.held(&name)).await {
                Ok(held) => held,
                Err(e) => {
                    tracing::error!(error = %e, %playbook, "cannot read the events held for a playbook");
                    return;
                }
            };
            if !held.is_empty() {
                tracing::info!(target: AUDIT, event = "playbook_resumed", %playbook, held = held.len(), "running the events held while the playbook was paused");
            }
            for seq in held {
                let store = self.node.store().clone();
                let event = blocking(move || store.events_after(seq.saturating_sub(1), 1)).await;
                if let Ok(Some(event)) = event.map(|e| e.into_iter().next()) {
                    if event.seq == seq {
                        for task in self.start(&event, Some(&playbook), None).await {
                            let _ = task.await;
                        }
                    }
                }
                let change = PlaybookChange::Release {
                    playbook: playbook.clone(),
                    event: seq,
                };
                if let Err(e) = self.node.store().playbook_change(change).await {
                    tracing::error!(error = %e, %playbook, seq, "cannot release a held event");
                    return;
                }
            }
        });
    }

    /// Runs one playbook's planned actions in file order: the runs of one
    /// action (one per indicator) side by side, the next action once they
    /// are done, so a tag or note knows whether everything before it
    /// succeeded.
    async fn run_stages(&self, actions: Vec<PlannedAction>) {
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
                let node = self.node.clone();
                let runner = self.runner.clone();
                runs.spawn(async move { run_once(&node, &runner, &action, succeeded).await });
            }
            let mut stage_ok = true;
            while let Some(ok) = runs.join_next().await {
                stage_ok &= ok.unwrap_or(false);
            }
            succeeded &= stage_ok;
        }
    }
}

/// `plan` lists actions by playbook, then by action.
fn by_playbook(actions: Vec<PlannedAction>) -> Vec<Vec<PlannedAction>> {
    let mut playbooks: Vec<Vec<PlannedAction>> = Vec::new();
    for action in actions {
        match playbooks.last_mut() {
            Some(group) if group[0].playbook == action.playbook => group.push(action),
            _ => playbooks.push(vec![action]),
        }
    }
    playbooks
}
