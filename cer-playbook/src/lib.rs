//! Playbook files: the YAML format, its validation and the typed
//! [`Playbook`] cerd's planner works from. Its own crate so that cerctl
//! can check a playbook without a running daemon (`cerctl playbook
//! check`), with exactly the daemon's rules.
//!
//! This crate owns serde-saphyr for playbooks; nothing in cerd parses YAML. A file
//! is parsed once into a tree of values that remember their line and
//! column, then checked field by field, so every problem in a file is
//! reported at once and each error names its file, line, column and field
//! (`playbooks/block-c2.yaml:12:7: actions[0].exec.argv[1]: unknown
//! placeholder {incident.title}`).
//!
//! Argument templates are parsed here, at load time, into literal text and
//! typed placeholders. Nothing from an incident is ever parsed as a
//! template: expansion only concatenates, so data can't inject placeholders.
//! This module must not read anything but playbook files.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cer_proto::model::{IndicatorType, Severity, Tlp};
use cer_proto::Fingerprint;
use serde_saphyr::MessageFormatter as _;

mod check;
pub mod plan;
mod webhook;

pub use webhook::{
    webhook_details, Scheme, SecretPart, SecretText, WebhookHmac, WebhookUrl,
    DEFAULT_SIGNATURE_HEADER, RUN_KEY_HEADER,
};

use check::{first, line_column, name_position, position, read_limited, shown, Checker, Node};

/// One loaded playbook.
#[derive(Debug, Clone, PartialEq)]
pub struct Playbook {
    /// `[a-z0-9-]{1,64}`, unique among loaded playbooks.
    pub name: String,
    pub description: String,
    /// The file it was loaded from, as given to [`load`] or [`parse`].
    pub file: PathBuf,
    /// The events that trigger it, in file order, no duplicates.
    pub on: Vec<EventKind>,
    pub matcher: Match,
    /// Actions never see data labelled above this (default green).
    pub max_tlp: Tlp,
    pub actions: Vec<Action>,
    /// Per action (same length as `actions`): the events it runs on, when
    /// its own `on:` narrows the playbook's; None: every event of the
    /// playbook.
    pub action_on: Vec<Option<Vec<EventKind>>>,
    /// Blast-radius limits; past one the playbook pauses.
    pub limits: Limits,
    /// `enabled: false` loads and checks the playbook but never runs it:
    /// the shipped examples are off until the operator turns them on.
    pub enabled: bool,
    /// What is allowed but probably not meant, by position (see
    /// [`PlaybookWarning`]). A playbook with warnings still loads.
    pub warnings: Vec<PlaybookWarning>,
}

/// What a playbook reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventKind {
    /// An incident filed on this node.
    IncidentFiled,
    /// An incident filed by a peer CERT, received over the mesh.
    IncidentReceived,
    /// An update (status, severity, note, indicators, tags) to an incident.
    IncidentUpdated,
    SightingReceived,
    RetractionReceived,
    ReceiptReceived,
    /// Indicators this playbook acted on are no longer part of the
    /// incident (their envelope was withdrawn).
    IndicatorRemoved,
    /// Indicators this playbook acted on have expired.
    IndicatorExpired,
    /// Another playbook reached one of its limits and was paused.
    PlaybookPaused,
    /// A peer signed two different envelopes with the same sequence number.
    MeshEquivocation,
    PeerDown,
    PeerUp,
}

/// The `match:` section; every condition given must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Match {
    pub severity_at_least: Option<Severity>,
    /// `class/type`, `class/*` or `*`, checked with
    /// [`Classification::check_pattern`]; any one must match.
    pub classification: Vec<String>,
    /// The incident's TLP must be one of these (empty: any up to max_tlp).
    pub tlp: Vec<Tlp>,
    pub from: From,
    /// At least one indicator of one of these types.
    pub has_indicator: Vec<IndicatorType>,
    /// Every one of these tags (normalized).
    pub tags: Vec<String>,
    /// Run for indicators on a warninglist too (default: skip them).
    pub include_warninglisted: bool,
}

/// Whose incidents (or, for peer events, which peer) a playbook acts on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum From {
    #[default]
    Any,
    /// Only this node's own.
    Own,
    /// Any CERT but this node.
    Peers,
    /// These CERTs, by fingerprint or by name (case-insensitive).
    List(Vec<CertRef>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertRef {
    Fingerprint(Fingerprint),
    Name(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Exec(Exec),
    Webhook(Webhook),
    /// Adds a local tag (normalized) to the incident.
    Tag(String, When),
    /// Adds a local note to the incident's timeline.
    Note(String, When),
}

/// When a tag or note applies (`when:`), so that a playbook records only
/// what happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum When {
    /// Only if every earlier action of the playbook, for the same trigger,
    /// succeeded: a failed, timed-out or dry-run action skips it.
    /// (`previous_succeeded` is accepted as another name for it.)
    #[default]
    Success,
    /// Only if an earlier action did not succeed.
    Failure,
    /// Whatever happened before.
    Always,
}

/// `for_each_indicator`: one run per indicator of these types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForEach {
    pub types: Vec<IndicatorType>,
    pub only: Only,
}

/// Which indicators a `for_each_indicator` action runs for on incident
/// events. On `retraction.received` and `indicator.removed` it always
/// runs for what the playbook acted on and is now gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Only {
    /// Those this action has not yet acted on for the incident (the
    /// default): an update re-runs nothing for indicators already handled.
    #[default]
    Added,
    /// Every indicator of the types, on every trigger.
    All,
}

/// `limits:` — past either, the playbook pauses until the operator
/// resumes it (`cerctl playbook resume NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Triggers (one event handled by the playbook) in any 60 seconds.
    pub max_runs_per_minute: Option<u32>,
    /// Runs of one `for_each_indicator` action for one trigger.
    pub max_indicators_per_run: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exec {
    /// argv[0]: absolute, or relative to the playbook's folder when it
    /// contains a '/', or a bare name looked up in [`EXEC_PATH`]. Never
    /// templated.
    pub program: PathBuf,
    /// argv[1..], each expanded on its own.
    pub args: Vec<Template>,
    /// One run per indicator; None: one run per trigger.
    pub for_each_indicator: Option<ForEach>,
    pub timeout: Duration,
    /// Extra environment, in file order. Never one of [`CER_VARIABLES`].
    pub env: Vec<(String, String)>,
    /// Absolute (relative paths are resolved against the playbook's folder).
    pub cwd: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub url: WebhookUrl,
    /// Per attempt.
    pub timeout: Duration,
    /// Values may reference secrets, read when the webhook runs.
    pub headers: Vec<(String, SecretText)>,
    /// Further attempts after the first fails.
    pub retries: u32,
    /// For https: the only CA trusted (absolute; a relative path is
    /// resolved against the playbook's folder). None: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Sign the body with HMAC-SHA256.
    pub hmac: Option<WebhookHmac>,
}

/// One argv element: literal text and placeholders, parsed at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Placeholder(Placeholder),
}

/// A typed value an argv element may contain. Only validated values:
/// labels, ids, fingerprints and normalized indicators — never free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    IncidentId,
    IncidentSeverity,
    IncidentTlp,
    IncidentClassification,
    IncidentStatus,
    IncidentReporter,
    IndicatorType,
    IndicatorValue,
    Event,
    /// The peer a peer.* or mesh.* event is about (fingerprint).
    Peer,
}

/// Why a playbook file was refused. Each names the file, and all but
/// `Read` the line, column and field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybookError {
    #[error("{file}: {reason}")]
    Read { file: String, reason: String },
    /// Not valid YAML, or YAML the format cannot hold (duplicate keys…).
    #[error("{file}:{line}:{column}: {reason}")]
    Syntax {
        file: String,
        line: u32,
        column: u32,
        reason: String,
    },
    #[error("{file}:{line}:{column}: {field}: {reason}")]
    Invalid {
        file: String,
        line: u32,
        column: u32,
        field: String,
        reason: String,
    },
    #[error("{file}:{line}:{column}: name: playbook '{name}' is already defined in {first}")]
    DuplicateName {
        file: String,
        line: u32,
        column: u32,
        name: String,
        first: String,
    },
}

/// Something a valid playbook allows but that is probably a mistake;
/// shown by `cerd check` and `cerctl playbook check`, never refused.
///
/// The one warning so far: an exec argument that begins with a placeholder
/// whose value could begin with '-' ([`Placeholder::may_read_as_option`])
/// with neither `--` nor a fixed option before it. The program would read
/// such a value as an option; indicator validation refuses a leading '-'
/// today, and this keeps a playbook safe if a value ever slips through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {field}: {reason}")]
pub struct PlaybookWarning {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub field: String,
    pub reason: String,
}

/// The only PATH actions get; the daemon's environment never leaks.
pub const EXEC_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The variables cerd sets for exec actions; a playbook's `env` cannot
/// override them (other `CER_` names, e.g. a script's own switch, are fine).
pub const CER_VARIABLES: &[&str] = &[
    "CER_PLAYBOOK",
    "CER_EVENT",
    "CER_RUN_KEY",
    "CER_INCIDENT_ID",
    "CER_TLP",
    "CER_SEVERITY",
    "CER_CLASSIFICATION",
    "CER_STATUS",
    "CER_AUTHOR",
    "CER_AUTHOR_NAME",
    "CER_PEER",
    "CER_PEER_NAME",
    "CER_INDICATOR_TYPE",
    "CER_INDICATOR_VALUE",
    "CER_ACTED_RUN_KEY",
    "CER_PAUSED_PLAYBOOK",
];
pub const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 2;
pub const MAX_WEBHOOK_RETRIES: u32 = 10;
/// Playbooks are small; refuse anything that is clearly not one.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
const NOTE_MAX_CHARS: usize = 1024;

/// Reads and validates one playbook file; the first error (by position)
/// when it is invalid. See [`load_all`] for every error.
pub fn load(path: &Path) -> Result<Playbook, PlaybookError> {
    load_all(path).map_err(first)
}

/// Reads and validates one playbook file, reporting every problem.
pub fn load_all(path: &Path) -> Result<Playbook, Vec<PlaybookError>> {
    let file = path.display().to_string();
    let text = read_limited(path).map_err(|reason| {
        vec![PlaybookError::Read {
            file: file.clone(),
            reason,
        }]
    })?;
    parse_all(&text, &file)
}

/// Validates playbook text; `file` is used in errors and to resolve
/// relative program paths (against its folder).
pub fn parse(text: &str, file: &str) -> Result<Playbook, PlaybookError> {
    parse_all(text, file).map_err(first)
}

/// Like [`parse`], reporting every problem, ordered by position.
pub fn parse_all(text: &str, file: &str) -> Result<Playbook, Vec<PlaybookError>> {
    let options = serde_saphyr::options! {
        // YAML 1.1's yes/no/on/off would silently turn `tag: no` into a
        // boolean.
        strict_booleans: true,
        with_snippet: false,
    };
    let root: Node = serde_saphyr::from_str_with_options(text, options).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), line_column);
        let reason = serde_saphyr::UserMessageFormatter.format_message(e.without_snippet());
        vec![PlaybookError::Syntax {
            file: file.to_owned(),
            line,
            column,
            reason: shown(&reason, 300),
        }]
    })?;
    let base = Path::new(file)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(base).unwrap_or_else(|_| base.to_path_buf());
    let mut checker = Checker {
        file: file.to_owned(),
        base,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let playbook = checker.playbook(&root);
    let mut errors = checker.errors;
    match playbook {
        Some(mut playbook) if errors.is_empty() => {
            playbook.warnings = checker.warnings;
            playbook.warnings.sort_by_key(|w| (w.line, w.column));
            Ok(playbook)
        }
        _ => {
            errors.sort_by_key(position);
            Err(errors)
        }
    }
}

/// One file's playbook, or every error in it.
pub type Loaded = Result<Playbook, Vec<PlaybookError>>;

/// Reads every `*.yaml` and `*.yml` file in `dir` (not hidden, not in
/// subfolders), in file-name order: each file's playbook or its errors.
/// The one loader behind both `cerd check` ([`load_dir`]) and the
/// daemon's registry. A folder that cannot be read is an error.
pub fn load_files(dir: &Path) -> Result<Vec<(PathBuf, Loaded)>, PlaybookError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PlaybookError::Read {
        file: dir.display().to_string(),
        reason: format!("cannot read the playbook folder: {e}"),
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| is_playbook_file(path) && path.is_file())
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| {
            let loaded = load_all(&path);
            (path, loaded)
        })
        .collect())
}

/// Loads every playbook file in `dir` (see [`load_files`]). A name defined
/// twice is an error for the later file; the earlier one stays loaded.
pub fn load_dir(dir: &Path) -> (Vec<Playbook>, Vec<PlaybookError>) {
    let mut playbooks: Vec<Playbook> = Vec::new();
    let mut errors = Vec::new();
    let files = match load_files(dir) {
        Ok(files) => files,
        Err(e) => return (playbooks, vec![e]),
    };
    for (path, loaded) in files {
        match loaded {
            Ok(playbook) => {
                if let Some(earlier) = playbooks.iter().find(|p| p.name == playbook.name) {
                    let (line, column) = name_position(&path);
                    errors.push(PlaybookError::DuplicateName {
                        file: path.display().to_string(),
                        line,
                        column,
                        name: playbook.name.clone(),
                        first: earlier.file.display().to_string(),
                    });
                } else {
                    playbooks.push(playbook);
                }
            }
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    (playbooks, errors)
}

/// Whether `load_dir` would read this path (if it is a file): a visible
/// `.yaml`/`.yml` name. By name only, so the folder watcher can use it for
/// removed files too.
pub fn is_playbook_file(path: &Path) -> bool {
    let visible = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.'));
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e == "yaml" || e == "yml");
    visible && yaml
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::IncidentFiled,
        EventKind::IncidentReceived,
        EventKind::IncidentUpdated,
        EventKind::SightingReceived,
        EventKind::RetractionReceived,
        EventKind::ReceiptReceived,
        EventKind::IndicatorRemoved,
        EventKind::IndicatorExpired,
        EventKind::PlaybookPaused,
        EventKind::MeshEquivocation,
        EventKind::PeerDown,
        EventKind::PeerUp,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::IncidentFiled => "incident.filed",
            EventKind::IncidentReceived => "incident.received",
            EventKind::IncidentUpdated => "incident.updated",
            EventKind::SightingReceived => "sighting.received",
            EventKind::RetractionReceived => "retraction.received",
            EventKind::ReceiptReceived => "receipt.received",
            EventKind::IndicatorRemoved => "indicator.removed",
            EventKind::IndicatorExpired => "indicator.expired",
            EventKind::PlaybookPaused => "playbook.paused",
            EventKind::MeshEquivocation => "mesh.equivocation",
            EventKind::PeerDown => "peer.down",
            EventKind::PeerUp => "peer.up",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|e| e.as_str() == text.trim())
    }

    /// Whether the event is about an incident (else it is about a peer
    /// or a playbook).
    pub fn is_incident(&self) -> bool {
        !matches!(
            self,
            EventKind::MeshEquivocation
                | EventKind::PeerDown
                | EventKind::PeerUp
                | EventKind::PlaybookPaused
        )
    }

    /// Whether the event names a peer (`{peer}`, `match.from`).
    pub fn is_peer(&self) -> bool {
        matches!(
            self,
            EventKind::MeshEquivocation | EventKind::PeerDown | EventKind::PeerUp
        )
    }

    /// Whether the event takes back what the playbook did: its
    /// `for_each_indicator` actions run for the indicators the playbook
    /// acted on that are gone, not for the incident's current ones.
    pub fn is_undo(&self) -> bool {
        matches!(
            self,
            EventKind::RetractionReceived
                | EventKind::IndicatorRemoved
                | EventKind::IndicatorExpired
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Playbook {
    /// Whether action `index` runs on `event` (its own `on:`, if any,
    /// lists it; the playbook's `on` is checked by the planner).
    pub fn action_runs_on(&self, index: usize, event: EventKind) -> bool {
        match self.action_on.get(index) {
            Some(Some(events)) => events.contains(&event),
            _ => true,
        }
    }

    /// Whether any condition looks at the incident's content, which peer
    /// events do not have.
    fn has_incident_conditions(&self) -> bool {
        let m = &self.matcher;
        m.severity_at_least.is_some()
            || !m.classification.is_empty()
            || !m.tlp.is_empty()
            || !m.has_indicator.is_empty()
            || !m.tags.is_empty()
    }
}

impl Action {
    /// `exec`, `webhook`, `tag` or `note`.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Exec(_) => "exec",
            Action::Webhook(_) => "webhook",
            Action::Tag(..) => "tag",
            Action::Note(..) => "note",
        }
    }
}

impl Template {
    /// Parses an argv element: `{name}` is a placeholder, `{{` and `}}`
    /// are literal braces, anything else is literal text.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(i) = rest.find(['{', '}']) {
            literal.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if rest[i..].starts_with("{{") {
                literal.push('{');
                rest = &rest[i + 2..];
            } else if rest[i..].starts_with("}}") {
                literal.push('}');
                rest = &rest[i + 2..];
            } else if rest[i..].starts_with('}') {
                return Err("unmatched '}'; write }} for a literal brace".into());
            } else {
                let end = after
                    .find(['{', '}'])
                    .filter(|j| after[*j..].starts_with('}'));
                let Some(end) = end else {
                    return Err("unclosed '{'; write {{ for a literal brace".into());
                };
                let name = &after[..end];
                let Some(placeholder) = Placeholder::parse(name) else {
                    return Err(format!(
                        "unknown placeholder {{{}}}; valid placeholders: {}; write {{{{ and }}}} for literal braces",
                        shown(name, 40),
                        Placeholder::ALL
                            .iter()
                            .map(|p| format!("{{{}}}", p.as_str()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                };
                if !literal.is_empty() {
                    parts.push(Part::Text(std::mem::take(&mut literal)));
                }
                parts.push(Part::Placeholder(placeholder));
                rest = &after[end + 1..];
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template { parts })
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub fn placeholders(&self) -> impl Iterator<Item = Placeholder> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Placeholder(p) => Some(*p),
            Part::Text(_) => None,
        })
    }

    /// Concatenates the literal text and the values `value` gives for the
    /// placeholders. The values are inserted as they are and never scanned
    /// again. None when a value is unavailable.
    pub fn expand(&self, mut value: impl FnMut(Placeholder) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Placeholder(p) => out.push_str(&value(*p)?),
            }
        }
        Some(out)
    }
}

/// The template as written (braces escaped again).
impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(text) => f.write_str(&text.replace('{', "{{").replace('}', "}}"))?,
                Part::Placeholder(p) => write!(f, "{{{}}}", p.as_str())?,
            }
        }
        Ok(())
    }
}

impl Placeholder {
    pub const ALL: [Placeholder; 10] = [
        Placeholder::IncidentId,
        Placeholder::IncidentSeverity,
        Placeholder::IncidentTlp,
        Placeholder::IncidentClassification,
        Placeholder::IncidentStatus,
        Placeholder::IncidentReporter,
        Placeholder::IndicatorType,
        Placeholder::IndicatorValue,
        Placeholder::Event,
        Placeholder::Peer,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Placeholder::IncidentId => "incident.id",
            Placeholder::IncidentSeverity => "incident.severity",
            Placeholder::IncidentTlp => "incident.tlp",
            Placeholder::IncidentClassification => "incident.classification",
            Placeholder::IncidentStatus => "incident.status",
            Placeholder::IncidentReporter => "incident.reporter",
            Placeholder::IndicatorType => "indicator.type",
            Placeholder::IndicatorValue => "indicator.value",
            Placeholder::Event => "event",
            Placeholder::Peer => "peer",
        }
    }

    pub fn parse(name: &str) -> Option<Placeholder> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// Whether the value could begin with '-' and so read as an option
    /// when it begins an argument. Ids, labels and fingerprints cannot;
    /// an indicator value is validated not to, but it is the one value
    /// whose text a peer chooses. No wildcard: a new placeholder must be
    /// decided here.
    pub fn may_read_as_option(&self) -> bool {
        match self {
            Placeholder::IndicatorValue => true,
            Placeholder::IncidentId
            | Placeholder::IncidentSeverity
            | Placeholder::IncidentTlp
            | Placeholder::IncidentClassification
            | Placeholder::IncidentStatus
            | Placeholder::IncidentReporter
            | Placeholder::IndicatorType
            | Placeholder::Event
            | Placeholder::Peer => false,
        }
    }

    /// Whether every trigger of this event kind has the value. Content
    /// fields are gone once an incident is retracted; indicator values
    /// come from `for_each_indicator`.
    fn available_on(&self, event: EventKind) -> bool {
        match self {
            Placeholder::Event => true,
            Placeholder::Peer => event.is_peer(),
            Placeholder::IncidentId
            | Placeholder::IncidentTlp
            | Placeholder::IncidentReporter
            | Placeholder::IndicatorType
            | Placeholder::IndicatorValue => event.is_incident(),
            // A retracted incident's content is gone.
            Placeholder::IncidentSeverity
            | Placeholder::IncidentClassification
            | Placeholder::IncidentStatus => {
                event.is_incident() && event != EventKind::RetractionReceived
            }
        }
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.as_str())
    }
}

impl PlaybookError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            PlaybookError::Read { file, .. }
            | PlaybookError::Syntax { file, .. }
            | PlaybookError::Invalid { file, .. }
            | PlaybookError::DuplicateName { file, .. } => file,
        }
    }

    /// Line and column, when the error has them.
    pub fn position(&self) -> Option<(u32, u32)> {
        match self {
            PlaybookError::Read { .. } => None,
            PlaybookError::Syntax { line, column, .. }
            | PlaybookError::Invalid { line, column, .. }
            | PlaybookError::DuplicateName { line, column, .. } => Some((*line, *column)),
        }
    }
}

impl EventKind {
    /// The event a newly stored envelope causes, if any: incidents are
    /// `incident.filed` when this node wrote them and `incident.received`
    /// otherwise; every update is `incident.updated`; every retraction is
    /// `retraction.received`; sightings and receipts are events only when
    /// a peer wrote them.
    pub fn for_envelope(
        kind: cer_proto::envelope::Kind,
        author: &Fingerprint,
        own: &Fingerprint,
    ) -> Option<EventKind> {
        let from_peer = author != own;
        match kind {
            cer_proto::envelope::Kind::Incident if from_peer => Some(EventKind::IncidentReceived),
            cer_proto::envelope::Kind::Incident => Some(EventKind::IncidentFiled),
            cer_proto::envelope::Kind::Update => Some(EventKind::IncidentUpdated),
            cer_proto::envelope::Kind::Sighting if from_peer => Some(EventKind::SightingReceived),
            // Own retractions too: a playbook undoes what it did whoever
            // withdrew the incident.
            cer_proto::envelope::Kind::Retraction => Some(EventKind::RetractionReceived),
            cer_proto::envelope::Kind::Receipt if from_peer => Some(EventKind::ReceiptReceived),
            cer_proto::envelope::Kind::Sighting
            | cer_proto::envelope::Kind::Receipt
            | cer_proto::envelope::Kind::KeyTransition
            | cer_proto::envelope::Kind::KeyRevocation => None,
        }
    }
}

/// Checks a playbook's text as the daemon would load it: its name, or
/// every error; and its warnings. What `cerctl playbook check` and the
/// API's check both answer.
pub fn check(yaml: &str, file: &str) -> cer_proto::api::PlaybookCheck {
    match parse_all(yaml, file) {
        Ok(playbook) => cer_proto::api::PlaybookCheck {
            name: Some(playbook.name),
            errors: vec![],
            warnings: playbook.warnings.iter().map(|w| w.to_string()).collect(),
        },
        Err(errors) => cer_proto::api::PlaybookCheck {
            name: None,
            errors: errors.iter().map(|e| e.to_string()).collect(),
            warnings: vec![],
        },
    }
}

#[cfg(test)]
mod tests;
