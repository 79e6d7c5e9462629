//! Playbooks: YAML automation that runs local tools when incidents and
//! mesh events arrive (DESIGN §7).
//!
//! Three parts, kept apart so each can be tested alone:
//!
//! - [`spec`] reads and validates playbook files (the only YAML parser in
//!   cerd) into typed [`Playbook`]s, reporting every error with file,
//!   line, column and field.
//! - [`plan`] is pure: an event plus the loaded playbooks give the list of
//!   [`PlannedAction`]s, fully expanded. Every gate (max_tlp, unreadable,
//!   retracted) is applied here.
//! - [`run`] executes planned exec and webhook actions. It is the only
//!   place in the daemon that spawns processes.
//!
//! Architecture invariant: incident data reaches a program only as whole
//! argv elements holding typed values, as `CER_*` environment variables
//! and as JSON on stdin — never through a shell and never as a template.
//!
//! # Wiring (for the daemon)
//!
//! - On `NodeEvent::Stored { author, kind, subject, id, .. }`: map it with
//!   [`EventKind::for_envelope`]`(kind, &author, own)`; fold the incident
//!   `subject`; build a [`Trigger`] with `version: id.to_hex()`; call
//!   [`plan()`](plan::plan). Peer and equivocation events build a Trigger
//!   with `incident: None` and `peer: Some(..)`.
//! - For each planned action, skip it if its `key` is already in the run
//!   history (restart safety), else spawn a task: exec and webhook go to
//!   [`Runner::run`]; tag and note ([`PlannedAction::is_local`]) are
//!   applied to the incident by the caller and recorded with
//!   [`run::local_record`]. Store every [`RunRecord`] under its `key`.
//! - `cerctl playbook test FILE --incident ID`: [`spec::load_all`] then
//!   [`plan::plan_one`] (its `Err(Skip)` says why nothing would run).
//! - Hot reload: [`spec::load_dir`] (or [`spec::load_all`] per changed
//!   file, with [`spec::is_playbook_file`] to filter watcher events); keep
//!   the previous version of a file whose new text is invalid.

pub mod driver;
pub mod plan;
pub mod run;
pub mod spec;

pub use plan::{plan, EventKind, PlannedAction, PlannedKind, Skip, Trigger};
pub use run::{Outcome, RunRecord, Runner};
pub use spec::{load, load_dir, parse, Action, Playbook, PlaybookError, PlaybookWarning};
