//! Playbooks: YAML automation that runs local tools when incidents and
//! mesh events arrive (DESIGN §7).
//!
//! Three parts, kept apart so each can be tested alone:
//!
//! - [`spec`] reads and validates playbook files (the only YAML parser in
//!   cerd) into typed [`Playbook`]s, reporting every error with file,
//!   line, column and field.
//! - [`plan`] (in cer-playbook, so cerctl can plan offline) is pure: an event plus the loaded playbooks give the list of
//!   [`PlannedAction`]s, fully expanded. Every gate (max_tlp, unreadable,
//!   retracted) is applied here.
//! - [`run`] executes planned exec and webhook actions. It is the only
//!   place in the daemon that spawns processes.
//!
//! Architecture invariant: incident data reaches a program only as whole
//! argv elements holding typed values, as `CER_*` environment variables
//! and as JSON on stdin — never through a shell and never as a template.
//!
//! Around them, for the daemon:
//!
//! - [`registry`] holds the playbooks in force and reloads `playbooks/`
//!   with the same loader as `cerd check` ([`spec::load_files`]).
//! - [`driver`] reads the store's durable event log from a saved cursor
//!   ([`CURSOR`]), plans each event and starts its actions: at least once,
//!   and exactly once in effect because a recorded run key never runs
//!   again.

mod apply;
pub mod driver;
pub mod guard;
pub mod registry;
pub mod run;
/// The playbook file format lives in its own crate, shared with cerctl's
/// linter.
pub use cer_playbook as spec;
pub use cer_playbook::plan;

/// The driver's cursor in the store's event log.
pub const CURSOR: &str = "playbooks";

pub use plan::{plan, EventKind, PlannedAction, PlannedKind, Skip, Trigger};
pub use registry::Registry;
pub use run::{Outcome, RunRecord, Runner};
pub use spec::{load, load_dir, parse, Action, Playbook, PlaybookError, PlaybookWarning};
