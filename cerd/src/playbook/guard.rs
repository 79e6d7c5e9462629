//! Blast-radius limits: which playbooks are paused, and whether the next
//! trigger of a playbook may run (`limits.max_runs_per_minute`,
//! `limits.max_indicators_per_run`). In memory, behind one lock, so that
//! concurrent triggers of one playbook see a pause at once; the driver
//! makes pauses durable in the store. The rate window restarts with the
//! daemon.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cer_proto::api::Paused;
use cer_proto::model::Timestamp;

use super::plan::{Effect, PlannedAction};
use super::spec::Playbook;

/// Cheap to clone; clones share the state.
#[derive(Clone, Default)]
pub struct Guard {
    inner: Arc<Mutex<State>>,
}

/// Whether a trigger runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    Run,
    /// The playbook is paused already: hold the event.
    Hold,
    /// This trigger passes a limit: the playbook is now paused.
    Pause(Paused),
}

#[derive(Default)]
struct State {
    paused: HashMap<String, Paused>,
    /// Start times of recent triggers, per playbook with a rate limit.
    starts: HashMap<String, VecDeque<Instant>>,
}

const WINDOW: Duration = Duration::from_secs(60);

impl Guard {
    pub fn new(paused: Vec<Paused>) -> Guard {
        let guard = Guard::default();
        guard.reload(paused);
        guard
    }

    pub fn is_paused(&self, playbook: &str) -> bool {
        self.lock().paused.contains_key(playbook)
    }

    /// Lifts a pause (the store's record is already gone); the rate
    /// window starts afresh.
    pub fn resume(&self, playbook: &str) {
        let mut state = self.lock();
        state.paused.remove(playbook);
        state.starts.remove(playbook);
    }

    /// Takes the store's paused set; returns the playbooks it no longer
    /// holds paused (resumed meanwhile).
    pub fn reload(&self, paused: Vec<Paused>) -> Vec<String> {
        let mut state = self.lock();
        let now: HashMap<String, Paused> = paused
            .into_iter()
            .map(|p| (p.playbook.clone(), p))
            .collect();
        let resumed = state
            .paused
            .keys()
            .filter(|name| !now.contains_key(*name))
            .cloned()
            .collect();
        state.paused = now;
        resumed
    }

    /// Decides whether `actions`, one trigger of `playbook`, may run at
    /// `now` (monotonic; `at` is the wall time for the record).
    pub fn admit(
        &self,
        playbook: &Playbook,
        actions: &[PlannedAction],
        now: Instant,
        at: Timestamp,
    ) -> Admit {
        let mut state = self.lock();
        if state.paused.contains_key(&playbook.name) {
            return Admit::Hold;
        }
        let limits = playbook.limits;
        let mut reason = None;
        if let Some(max) = limits.max_indicators_per_run {
            let mut per_action: HashMap<usize, u64> = HashMap::new();
            for action in actions.iter().filter(|a| a.effect != Effect::None) {
                *per_action.entry(action.action_index).or_default() += 1;
            }
            if let Some((index, n)) = per_action
                .into_iter()
                .filter(|(_, n)| *n > u64::from(max))
                .max_by_key(|(_, n)| *n)
            {
                reason = Some(format!(
                    "action {} would run for {n} indicators at once, more than limits.max_indicators_per_run ({max})",
                    index + 1
                ));
            }
        }
        if let (None, Some(max)) = (&reason, limits.max_runs_per_minute) {
            let starts = state.starts.entry(playbook.name.clone()).or_default();
            while starts
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
            {
                starts.pop_front();
            }
            if starts.len() >= max as usize {
                reason = Some(format!(
                    "more than limits.max_runs_per_minute ({max}) triggers within a minute"
                ));
            } else {
                starts.push_back(now);
            }
        }
        match reason {
            None => Admit::Run,
            Some(reason) => {
                let paused = Paused {
                    playbook: playbook.name.clone(),
                    at,
                    reason,
                    held: 0,
                };
                state.paused.insert(playbook.name.clone(), paused.clone());
                Admit::Pause(paused)
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use cer_playbook::plan::testing::incident;
    use cer_playbook::plan::{plan_one, EventKind, Trigger};

    use super::*;

    fn playbook(limits: &str) -> Playbook {
        cer_playbook::parse(
            &format!("name: fw\non: [incident.received]\nlimits: {limits}\nactions:\n  - exec:\n      argv: [/bin/true, \"{{indicator.value}}\"]\n      for_each_indicator: [ipv4, ipv6, domain]\n"),
            "fw.yaml",
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn planned(playbook: &Playbook) -> Vec<PlannedAction> {
        let state = incident();
        let own = cer_playbook::plan::testing::fpr('B');
        let names = |_: &cer_proto::Fingerprint| None;
        let trigger = Trigger {
            event: EventKind::IncidentReceived,
            incident: Some(&state),
            peer: None,
            own: &own,
            names: &names,
            version: "v".into(),
            acted: &[],
            acted_runs: &[],
            paused: None,
            expiry: None,
            warninglisted: None,
        };
        plan_one(playbook, &trigger).unwrap()
    }

    fn at() -> Timestamp {
        "2026-11-30T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn too_many_indicators_pause_and_hold_what_follows() {
        let guard = Guard::default();
        let wide = playbook("{ max_indicators_per_run: 3 }");
        let narrow = playbook("{ max_indicators_per_run: 2 }");
        let start = Instant::now();
        assert_eq!(guard.admit(&wide, &planned(&wide), start, at()), Admit::Run);
        let Admit::Pause(paused) = guard.admit(&narrow, &planned(&narrow), start, at()) else {
            panic!("three indicators pass a limit of two");
        };
        assert_eq!(paused.playbook, "fw");
        assert!(paused.reason.contains("3 indicators"), "{}", paused.reason);
        assert!(guard.is_paused("fw"));
        assert_eq!(guard.admit(&wide, &[], start, at()), Admit::Hold);
        guard.resume("fw");
        assert_eq!(guard.admit(&wide, &planned(&wide), start, at()), Admit::Run);
    }

    #[test]
    fn the_rate_limit_counts_triggers_in_a_sliding_minute() {
        let guard = Guard::default();
        let playbook = playbook("{ max_runs_per_minute: 2 }");
        let actions = planned(&playbook);
        let start = Instant::now();
        assert_eq!(guard.admit(&playbook, &actions, start, at()), Admit::Run);
        let later = start + Duration::from_secs(30);
        assert_eq!(guard.admit(&playbook, &actions, later, at()), Admit::Run);
        let third = start + Duration::from_secs(59);
        assert!(matches!(
            guard.admit(&playbook, &actions, third, at()),
            Admit::Pause(p) if p.reason.contains("max_runs_per_minute (2)")
        ));
        // After a resume the window starts afresh; a minute on, the
        // oldest start no longer counts.
        guard.resume("fw");
        assert_eq!(guard.admit(&playbook, &actions, third, at()), Admit::Run);
        assert_eq!(
            guard.admit(&playbook, &actions, third + Duration::from_secs(30), at()),
            Admit::Run
        );
        assert!(matches!(
            guard.admit(&playbook, &actions, third + Duration::from_secs(59), at()),
            Admit::Pause(_)
        ));
        guard.resume("fw");
        assert_eq!(
            guard.reload(vec![]),
            Vec::<String>::new(),
            "nothing was paused any more"
        );
    }
}
