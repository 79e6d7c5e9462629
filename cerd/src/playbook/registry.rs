//! The playbooks in force: loaded from `playbooks/` with the same loader
//! as `cerd check` ([`spec::load_files`]), reloaded when the folder
//! changes. A changed or new valid file replaces its previous version; an
//! invalid one is reported and its previous version stays active; a
//! removed file's playbook is dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use cer_proto::api::{PlaybookInfo, PlaybookList, PlaybookProblem};

use super::spec::{self, Playbook};
use crate::audit::AUDIT;

#[derive(Default)]
pub struct Registry {
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    by_file: BTreeMap<PathBuf, Playbook>,
    /// Refused files: why, and the file's size and modification time then,
    /// so an unchanged refused file is not reported again at each reload.
    errors: BTreeMap<PathBuf, (String, Option<Stamp>)>,
    /// The playbooks in force, rebuilt at each reload so every event can
    /// take them without copying.
    active: Arc<[Playbook]>,
}

impl Registry {
    /// Reloads `dir`, logging what was loaded, refused or removed. A
    /// refused file is logged once per change, not on every reload.
    pub fn reload(&self, dir: &Path) {
        let files = spec::load_files(dir).unwrap_or_default();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let previous = std::mem::take(&mut state.errors);
        let is_new =
            |file: &Path, refusal: &(String, Option<Stamp>)| previous.get(file) != Some(refusal);
        state.by_file.retain(|file, playbook| {
            let keep = files.iter().any(|(f, _)| f == file);
            if !keep {
                tracing::info!(target: AUDIT, event = "playbook_removed", playbook = %playbook.name, file = %file.display(), "playbook unloaded");
            }
            keep
        });
        for (file, loaded) in files {
            match loaded {
                Ok(playbook) => {
                    let duplicate = state
                        .by_file
                        .iter()
                        .find(|(other, p)| **other != file && p.name == playbook.name)
                        .map(|(other, _)| other.clone());
                    if let Some(other) = duplicate {
                        let message = format!(
                            "{}: name '{}' is already used by {}",
                            file.display(),
                            playbook.name,
                            other.display()
                        );
                        let refusal = (message, stamp(&file));
                        if is_new(&file, &refusal) {
                            tracing::warn!(target: AUDIT, event = "playbook_refused", file = %file.display(), error = %refusal.0, "playbook refused");
                        }
                        state.errors.insert(file, refusal);
                        continue;
                    }
                    if state.by_file.get(&file) != Some(&playbook) {
                        tracing::info!(target: AUDIT, event = "playbook_loaded", playbook = %playbook.name, file = %file.display(), on = ?playbook.on.iter().map(|e| e.as_str()).collect::<Vec<_>>(), "playbook loaded");
                        for warning in &playbook.warnings {
                            tracing::warn!(target: AUDIT, event = "playbook_warning", playbook = %playbook.name, %warning, "playbook loaded with a warning");
                        }
                    }
                    state.by_file.insert(file, playbook);
                }
                Err(errors) => {
                    let message = errors
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                    let kept = state.by_file.contains_key(&file);
                    let refusal = (message, stamp(&file));
                    if is_new(&file, &refusal) {
                        tracing::warn!(target: AUDIT, event = "playbook_refused", file = %file.display(), error = %refusal.0, previous_version_active = kept, "playbook refused");
                    }
                    state.errors.insert(file, refusal);
                }
            }
        }
        state.active = state.by_file.values().cloned().collect();
    }

    /// The playbooks in force.
    pub fn active(&self) -> Arc<[Playbook]> {
        self.state
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .active
            .clone()
    }

    pub fn list(&self) -> PlaybookList {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        PlaybookList {
            playbooks: state
                .by_file
                .iter()
                .map(|(file, p)| PlaybookInfo {
                    name: p.name.clone(),
                    file: file.display().to_string(),
                    description: p.description.clone(),
                    on: p.on.iter().map(|e| e.as_str().to_owned()).collect(),
                    max_tlp: p.max_tlp,
                    actions: p.actions.len(),
                    enabled: p.enabled,
                    paused: None,
                })
                .collect(),
            errors: state
                .errors
                .iter()
                .map(|(file, (message, _))| PlaybookProblem {
                    file: file.display().to_string(),
                    message: message.clone(),
                })
                .collect(),
        }
    }
}

/// A file's size and modification time.
type Stamp = (u64, SystemTime);

fn stamp(path: &Path) -> Option<Stamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}
