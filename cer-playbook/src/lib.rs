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

use cer_proto::model::{normalize_tag, Classification, IndicatorType, Severity, Tlp};
use cer_proto::Fingerprint;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Location, MessageFormatter as _, Spanned};

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
    #[default]
    PreviousSucceeded,
    /// Whatever happened before.
    Always,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exec {
    /// argv[0]: absolute, or relative to the playbook's folder when it
    /// contains a '/', or a bare name looked up in [`EXEC_PATH`]. Never
    /// templated.
    pub program: PathBuf,
    /// argv[1..], each expanded on its own.
    pub args: Vec<Template>,
    /// One run per indicator of these types; None: one run per trigger.
    pub for_each_indicator: Option<Vec<IndicatorType>>,
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
    pub headers: Vec<(String, String)>,
    /// Further attempts after the first fails.
    pub retries: u32,
}

/// A validated `http://host[:port]/path?query` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    /// Without brackets for IPv6, ready to connect to.
    pub host: String,
    pub port: u16,
    /// The request target: path and query, at least `/`.
    pub target: String,
    text: String,
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
    pub const ALL: [EventKind; 9] = [
        EventKind::IncidentFiled,
        EventKind::IncidentReceived,
        EventKind::IncidentUpdated,
        EventKind::SightingReceived,
        EventKind::RetractionReceived,
        EventKind::ReceiptReceived,
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
            EventKind::MeshEquivocation => "mesh.equivocation",
            EventKind::PeerDown => "peer.down",
            EventKind::PeerUp => "peer.up",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        Self::ALL.into_iter().find(|e| e.as_str() == text.trim())
    }

    /// Whether the event is about an incident (else it is about a peer).
    pub fn is_incident(&self) -> bool {
        !matches!(
            self,
            EventKind::MeshEquivocation | EventKind::PeerDown | EventKind::PeerUp
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Playbook {
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

impl WebhookUrl {
    /// Parses `http://host[:port][/path][?query]`. https is not supported:
    /// webhooks go to a local relay or ticketing system.
    pub fn parse(text: &str) -> Result<WebhookUrl, String> {
        let rest =
            match text.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case("http://") => &text[7..],
                _ if text.to_ascii_lowercase().starts_with("https://") => return Err(
                    "https is not supported; use http:// (to a local relay for remote endpoints)"
                        .into(),
                ),
                _ => return Err(format!("'{}' is not an http:// URL", shown(text, 80))),
            };
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("URL contains {c:?}"));
        }
        if text.contains('#') {
            return Err("URL must not have a #fragment".into());
        }
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, target) = rest.split_at(split);
        if authority.contains('@') {
            return Err("URL must not carry user:password@; use a header".into());
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let Some((host, after)) = v6.split_once(']') else {
                return Err("unclosed '[' in the URL's host".into());
            };
            host.parse::<std::net::Ipv6Addr>()
                .map_err(|_| format!("'{}' is not an IPv6 address", shown(host, 80)))?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() {
            return Err("URL has no host".into());
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'))
        {
            return Err(format!("'{}' is not a valid host", shown(&host, 80)));
        }
        let port = match port {
            None | Some("") => 80,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("'{}' is not a valid port", shown(port, 20)))?,
        };
        let target = match target {
            "" => "/".to_owned(),
            t if t.starts_with('?') => format!("/{t}"),
            t => t.to_owned(),
        };
        if !target.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("URL path must be ASCII; percent-encode anything else".into());
        }
        Ok(WebhookUrl {
            host,
            port,
            target,
            text: text.to_owned(),
        })
    }

    /// `host:port` as the Host header wants it.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
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

    /// Whether every trigger of this event kind has the value. Content
    /// fields are gone once an incident is retracted.
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

    fn available_on(&self, event: EventKind) -> bool {
        match self {
            Placeholder::Event => true,
            Placeholder::Peer => !event.is_incident(),
            Placeholder::IncidentId | Placeholder::IncidentTlp | Placeholder::IncidentReporter => {
                event.is_incident()
            }
            Placeholder::IncidentSeverity
            | Placeholder::IncidentClassification
            | Placeholder::IncidentStatus
            | Placeholder::IndicatorType
            | Placeholder::IndicatorValue => {
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

// ---------------------------------------------------------------------------
// Private: the located value tree and the checks over it.

type Node = Spanned<Value>;

/// A YAML value whose children remember where they were written.
#[derive(Debug)]
enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float,
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Spanned<String>, Node)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
                Ok(Value::Int(v.into()))
            }
            fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u128<E: serde::de::Error>(self, v: u128) -> Result<Value, E> {
                i128::try_from(v)
                    .map(Value::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
                Ok(Value::Float)
            }
            fn visit_str<E>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Value, E> {
                Ok(Value::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Spanned<String>>()? {
                    let value = map.next_value::<Node>()?;
                    entries.push((key, value));
                }
                Ok(Value::Map(entries))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

impl Value {
    fn describe(&self) -> &'static str {
        match self {
            Value::Null => "nothing",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

struct Checker {
    file: String,
    /// The playbook's folder, for relative program paths.
    base: PathBuf,
    errors: Vec<PlaybookError>,
    warnings: Vec<PlaybookWarning>,
}

/// A mapping's entries, after unknown keys were reported.
struct Fields<'n> {
    at: Location,
    entries: Vec<(&'n str, &'n Node)>,
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "on",
    "match",
    "max_tlp",
    "actions",
];
const MATCH_KEYS: &[&str] = &[
    "severity_at_least",
    "classification",
    "tlp",
    "from",
    "has_indicator",
    "tags",
];
const ACTION_KEYS: &[&str] = &["exec", "webhook", "tag", "note", "when"];
const EXEC_KEYS: &[&str] = &["argv", "for_each_indicator", "timeout", "env", "cwd"];
const WEBHOOK_KEYS: &[&str] = &["url", "timeout", "headers", "retries"];
/// Headers the client sets itself.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
];

impl<'n> Fields<'n> {
    fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }
}

impl Checker {
    fn playbook(&mut self, root: &Node) -> Option<Playbook> {
        let fields = self.mapping(root, "playbook", TOP_KEYS)?;
        let name = self.required(&fields, "name").and_then(|node| {
            let name = self.string(node, "name")?;
            let valid = (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                self.error(
                    node,
                    "name",
                    format!(
                        "'{}' must be 1 to 64 lower-case letters, digits and '-'",
                        shown(&name, 80)
                    ),
                );
                return None;
            }
            Some(name)
        });
        let description = match fields.get("description") {
            Some(node) => self.string(node, "description").unwrap_or_default(),
            None => String::new(),
        };
        let on = self
            .required(&fields, "on")
            .and_then(|node| self.events(node));
        let max_tlp = match fields.get("max_tlp") {
            Some(node) => self.label::<Tlp>(node, "max_tlp"),
            None => Some(Tlp::Green),
        };
        let matcher = match fields.get("match") {
            Some(node) => self.matcher(node, max_tlp),
            None => Some(Match::default()),
        };
        let enabled = match fields.get("enabled") {
            Some(Node {
                value: Value::Bool(enabled),
                ..
            }) => Some(*enabled),
            Some(node) => {
                self.expected(node, "enabled", "true or false");
                None
            }
            None => Some(true),
        };
        let actions = self
            .required(&fields, "actions")
            .and_then(|node| self.actions(node));

        let (name, on, max_tlp, matcher, actions, enabled) =
            (name?, on?, max_tlp?, matcher?, actions?, enabled?);
        let playbook = Playbook {
            name,
            description,
            file: PathBuf::from(&self.file),
            on,
            matcher,
            max_tlp,
            actions,
            enabled,
            warnings: Vec::new(),
        };
        self.cross_checks(&playbook, &fields);
        Some(playbook)
    }

    /// Checks between fields: what each event can offer.
    fn cross_checks(&mut self, playbook: &Playbook, fields: &Fields<'_>) {
        let peer_event = playbook.on.iter().find(|e| !e.is_incident()).copied();
        if let (Some(event), true, Some(node)) = (
            peer_event,
            playbook.has_incident_conditions(),
            fields.get("match"),
        ) {
            self.error(
                node,
                "match",
                format!("conditions on the incident (severity, classification, tlp, indicators, tags) do not apply to {event}, which is not about an incident; put it in its own playbook"),
            );
        }
        let Some(actions) = fields.get("actions") else {
            return;
        };
        let Value::Seq(nodes) = &actions.value else {
            return;
        };
        for (i, (action, node)) in playbook.actions.iter().zip(nodes).enumerate() {
            let Action::Exec(exec) = action else {
                continue;
            };
            if exec.for_each_indicator.is_some() {
                if let Some(event) = playbook
                    .on
                    .iter()
                    .find(|e| !Placeholder::IndicatorValue.available_on(**e))
                {
                    self.error(
                        node,
                        &format!("actions[{i}].exec.for_each_indicator"),
                        format!("{event} has no indicators to run for"),
                    );
                }
            }
            for (j, arg) in exec.args.iter().enumerate() {
                for placeholder in arg.placeholders() {
                    let field = format!("actions[{i}].exec.argv[{}]", j + 1);
                    let missing = playbook.on.iter().find(|e| !placeholder.available_on(**e));
                    if let Some(event) = missing {
                        self.error(
                            node,
                            &field,
                            format!("{placeholder} is not available on {event}"),
                        );
                    } else if matches!(
                        placeholder,
                        Placeholder::IndicatorType | Placeholder::IndicatorValue
                    ) && exec.for_each_indicator.is_none()
                    {
                        self.error(
                            node,
                            &field,
                            format!(
                                "{placeholder} needs for_each_indicator (one run per indicator)"
                            ),
                        );
                    }
                }
            }
        }
    }

    fn events(&mut self, node: &Node) -> Option<Vec<EventKind>> {
        let items = self.string_list(node, "on")?;
        if items.is_empty() {
            self.error(node, "on", "must list at least one event");
            return None;
        }
        let mut events = Vec::new();
        let mut ok = true;
        for (i, (text, item)) in items.into_iter().enumerate() {
            let field = format!("on[{i}]");
            match EventKind::parse(&text) {
                Some(event) if events.contains(&event) => {
                    self.error(item, &field, format!("{event} is listed twice"));
                    ok = false;
                }
                Some(event) => events.push(event),
                None => {
                    self.error(
                        item,
                        &field,
                        format!(
                            "unknown event '{}'; valid events: {}",
                            shown(&text, 80),
                            EventKind::ALL.map(|e| e.as_str()).join(", ")
                        ),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(events)
    }

    fn matcher(&mut self, node: &Node, max_tlp: Option<Tlp>) -> Option<Match> {
        if matches!(node.value, Value::Null) {
            return Some(Match::default());
        }
        let fields = self.mapping(node, "match", MATCH_KEYS)?;
        let mut ok = true;
        let mut matcher = Match::default();
        if let Some(node) = fields.get("severity_at_least") {
            matcher.severity_at_least = self.label(node, "match.severity_at_least");
            ok &= matcher.severity_at_least.is_some();
        }
        if let Some(node) = fields.get("classification") {
            match self.string_list(node, "match.classification") {
                Some(items) => {
                    for (i, (pattern, item)) in items.into_iter().enumerate() {
                        match Classification::check_pattern(&pattern) {
                            Ok(()) => matcher.classification.push(pattern.trim().to_owned()),
                            Err(e) => {
                                self.error(item, &format!("match.classification[{i}]"), e.reason);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("tlp") {
            match self.label_list::<Tlp>(node, "match.tlp") {
                Some(items) => {
                    for (i, (tlp, item)) in items.into_iter().enumerate() {
                        if let Some(max) = max_tlp.filter(|max| tlp > *max) {
                            self.error(
                                item,
                                &format!("match.tlp[{i}]"),
                                format!("{tlp} is above max_tlp {max}{}, so this would never run; set max_tlp: {tlp} to let actions see {tlp} data", if max == Tlp::Green { " (the default)" } else { "" }),
                            );
                            ok = false;
                        }
                        matcher.tlp.push(tlp);
                    }
                }
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("from") {
            match self.from(node) {
                Some(from) => matcher.from = from,
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("has_indicator") {
            match self.label_list::<IndicatorType>(node, "match.has_indicator") {
                Some(items) => matcher.has_indicator = items.into_iter().map(|(t, _)| t).collect(),
                None => ok = false,
            }
        }
        if let Some(node) = fields.get("tags") {
            match self.string_list(node, "match.tags") {
                Some(items) => {
                    for (i, (tag, item)) in items.into_iter().enumerate() {
                        match normalize_tag(&tag) {
                            Ok(tag) => matcher.tags.push(tag),
                            Err(e) => {
                                self.error(item, &format!("match.tags[{i}]"), e.reason);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(matcher)
    }

    fn from(&mut self, node: &Node) -> Option<From> {
        if let Value::Str(text) = &node.value {
            return match text.trim() {
                "any" => Some(From::Any),
                "own" => Some(From::Own),
                "peers" => Some(From::Peers),
                other => {
                    self.error(
                        node,
                        "match.from",
                        format!(
                            "'{}' is not any, own, peers or a list of CERT names or fingerprints",
                            shown(other, 80)
                        ),
                    );
                    None
                }
            };
        }
        let items = self.string_list(node, "match.from")?;
        if items.is_empty() {
            self.error(node, "match.from", "the list must name at least one CERT");
            return None;
        }
        let mut certs = Vec::new();
        let mut ok = true;
        for (i, (text, item)) in items.into_iter().enumerate() {
            let text = text.trim();
            if text.is_empty() {
                self.error(item, &format!("match.from[{i}]"), "must not be empty");
                ok = false;
            } else if let Ok(fpr) = Fingerprint::parse(text) {
                certs.push(CertRef::Fingerprint(fpr));
            } else {
                certs.push(CertRef::Name(text.to_owned()));
            }
        }
        ok.then_some(From::List(certs))
    }

    fn actions(&mut self, node: &Node) -> Option<Vec<Action>> {
        let Value::Seq(items) = &node.value else {
            self.expected(node, "actions", "a list of actions");
            return None;
        };
        if items.is_empty() {
            self.error(node, "actions", "must list at least one action");
            return None;
        }
        let mut actions = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.action(item, i) {
                Some(action) => actions.push(action),
                None => ok = false,
            }
        }
        ok.then_some(actions)
    }

    fn action(&mut self, node: &Node, i: usize) -> Option<Action> {
        let field = format!("actions[{i}]");
        let fields = self.mapping(node, &field, ACTION_KEYS)?;
        let kinds: Vec<(&str, &Node)> = fields
            .entries
            .iter()
            .filter(|(k, _)| *k != "when")
            .copied()
            .collect();
        let [(kind, body)] = kinds[..] else {
            let found = kinds.iter().map(|(k, _)| *k).collect::<Vec<_>>();
            self.error(
                node,
                &field,
                if found.is_empty() {
                    "expected one of exec, webhook, tag, note".to_owned()
                } else {
                    format!(
                        "an action has exactly one of exec, webhook, tag, note; found {}",
                        found.join(" and ")
                    )
                },
            );
            return None;
        };
        let when = match fields.get("when") {
            None => When::default(),
            Some(node) if kind == "exec" || kind == "webhook" => {
                self.error(
                    node,
                    &format!("{field}.when"),
                    format!("applies to tag and note actions only, not to {kind}"),
                );
                return None;
            }
            Some(node) => match self.string(node, &format!("{field}.when"))?.as_str() {
                "previous_succeeded" => When::PreviousSucceeded,
                "always" => When::Always,
                other => {
                    self.error(
                        node,
                        &format!("{field}.when"),
                        format!(
                            "'{}' is not one of previous_succeeded, always",
                            shown(other, 40)
                        ),
                    );
                    return None;
                }
            },
        };
        let field = format!("{field}.{kind}");
        match kind {
            "exec" => self.exec(body, &field).map(Action::Exec),
            "webhook" => self.webhook(body, &field).map(Action::Webhook),
            "tag" => {
                let tag = self.string(body, &field)?;
                match normalize_tag(&tag) {
                    Ok(tag) => Some(Action::Tag(tag, when)),
                    Err(e) => {
                        self.error(body, &field, e.reason);
                        None
                    }
                }
            }
            _ => {
                let note = self.plain_string(body, &field)?;
                if note.trim().is_empty() {
                    self.error(body, &field, "must not be empty");
                    return None;
                }
                if note.chars().count() > NOTE_MAX_CHARS {
                    self.error(
                        body,
                        &field,
                        format!("must be at most {NOTE_MAX_CHARS} characters"),
                    );
                    return None;
                }
                Some(Action::Note(note, when))
            }
        }
    }

    fn exec(&mut self, node: &Node, field: &str) -> Option<Exec> {
        let fields = self.mapping(node, field, EXEC_KEYS)?;
        let mut ok = true;

        let argv_field = format!("{field}.argv");
        let mut program = None;
        let mut args = Vec::new();
        // For the option warning: has a literal `--` been seen, and was
        // the previous element a fixed option (`--address`, `-d`)?
        let mut after_double_dash = false;
        let mut after_option = false;
        match self.required_in(&fields, "argv", field) {
            Some(argv) => match self.string_list(argv, &argv_field) {
                Some(items) if items.is_empty() => {
                    self.error(argv, &argv_field, "must name at least the program");
                    ok = false;
                }
                Some(items) => {
                    for (i, (text, item)) in items.into_iter().enumerate() {
                        let item_field = format!("{argv_field}[{i}]");
                        if text.contains('\0') {
                            self.error(item, &item_field, "must not contain NUL");
                            ok = false;
                            continue;
                        }
                        if i == 0 {
                            program = self.program(&text, item, &item_field);
                            ok &= program.is_some();
                            continue;
                        }
                        match Template::parse(&text) {
                            Ok(template) => {
                                if let Some(Part::Placeholder(placeholder)) =
                                    template.parts().first()
                                {
                                    if placeholder.may_read_as_option()
                                        && !after_double_dash
                                        && !after_option
                                    {
                                        self.warning(
                                            item,
                                            &item_field,
                                            format!("{placeholder} begins this argument and neither \"--\" nor a fixed option comes before it; a value beginning with '-' would be read as an option (put \"--\" before it if the program accepts that)"),
                                        );
                                    }
                                }
                                let fixed = template.placeholders().next().is_none();
                                after_double_dash |= fixed && text == "--";
                                after_option = fixed && text.len() > 1 && text.starts_with('-');
                                args.push(template);
                            }
                            Err(reason) => {
                                self.error(item, &item_field, reason);
                                ok = false;
                            }
                        }
                    }
                }
                None => ok = false,
            },
            None => ok = false,
        }

        let mut for_each_indicator = None;
        if let Some(node) = fields.get("for_each_indicator") {
            let each_field = format!("{field}.for_each_indicator");
            match self.label_list::<IndicatorType>(node, &each_field) {
                Some(items) if items.is_empty() => {
                    self.error(node, &each_field, "must list at least one indicator type");
                    ok = false;
                }
                Some(items) => {
                    for_each_indicator = Some(items.into_iter().map(|(t, _)| t).collect())
                }
                None => ok = false,
            }
        }

        let timeout = self.timeout(
            fields.get("timeout"),
            &format!("{field}.timeout"),
            DEFAULT_EXEC_TIMEOUT,
            MAX_EXEC_TIMEOUT,
        );
        ok &= timeout.is_some();

        let mut env = Vec::new();
        if let Some(node) = fields.get("env") {
            match self.string_map(node, &format!("{field}.env")) {
                Some(entries) => {
                    for (key, value, key_at, value_node) in entries {
                        let entry_field = format!("{field}.env.{}", shown(&key, 40));
                        let valid_name = !key.is_empty()
                            && !key.starts_with(|c: char| c.is_ascii_digit())
                            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
                        if !valid_name {
                            self.error_at(key_at, &entry_field, "a variable name is letters, digits and '_', not starting with a digit");
                            ok = false;
                        } else if CER_VARIABLES.contains(&key.as_str()) {
                            self.error_at(
                                key_at,
                                &entry_field,
                                "this variable is set by cerd and cannot be overridden",
                            );
                            ok = false;
                        } else if value.contains('\0') {
                            self.error(value_node, &entry_field, "must not contain NUL");
                            ok = false;
                        } else {
                            env.push((key, value));
                        }
                    }
                }
                None => ok = false,
            }
        }

        let mut cwd = None;
        if let Some(node) = fields.get("cwd") {
            let cwd_field = format!("{field}.cwd");
            match self.plain_string(node, &cwd_field) {
                Some(text) if text.is_empty() || text.contains('\0') => {
                    self.error(node, &cwd_field, "must be a folder path");
                    ok = false;
                }
                Some(text) => cwd = Some(self.base.join(text)),
                None => ok = false,
            }
        }

        if !ok {
            return None;
        }
        Some(Exec {
            program: program?,
            args,
            for_each_indicator,
            timeout: timeout?,
            env,
            cwd,
        })
    }

    fn program(&mut self, text: &str, node: &Node, field: &str) -> Option<PathBuf> {
        if text.trim().is_empty() {
            self.error(node, field, "the program must not be empty");
            return None;
        }
        if text.contains('{') || text.contains('}') {
            self.error(
                node,
                field,
                "the program is fixed: placeholders and braces are not allowed in argv[0]",
            );
            return None;
        }
        let path = Path::new(text);
        Some(if path.is_absolute() || !text.contains('/') {
            path.to_path_buf()
        } else {
            self.base.join(path)
        })
    }

    fn webhook(&mut self, node: &Node, field: &str) -> Option<Webhook> {
        let fields = self.mapping(node, field, WEBHOOK_KEYS)?;
        let mut ok = true;
        let url_field = format!("{field}.url");
        let url = self.required_in(&fields, "url", field).and_then(|node| {
            let text = self.plain_string(node, &url_field)?;
            WebhookUrl::parse(text.trim())
                .map_err(|reason| self.error(node, &url_field, reason))
                .ok()
        });
        ok &= url.is_some();
        let timeout = self.timeout(
            fields.get("timeout"),
            &format!("{field}.timeout"),
            DEFAULT_WEBHOOK_TIMEOUT,
            MAX_WEBHOOK_TIMEOUT,
        );
        ok &= timeout.is_some();
        let mut headers = Vec::new();
        if let Some(node) = fields.get("headers") {
            match self.string_map(node, &format!("{field}.headers")) {
                Some(entries) => {
                    for (name, value, name_at, value_node) in entries {
                        let entry_field = format!("{field}.headers.{}", shown(&name, 40));
                        let token = !name.is_empty()
                            && name.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
                            });
                        if !token {
                            self.error_at(name_at, &entry_field, "not a valid header name");
                            ok = false;
                        } else if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                            self.error_at(name_at, &entry_field, "this header is set by cerd");
                            ok = false;
                        } else if !value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)) {
                            self.error(
                                value_node,
                                &entry_field,
                                "a header value must be printable ASCII on one line",
                            );
                            ok = false;
                        } else {
                            headers.push((name, value));
                        }
                    }
                }
                None => ok = false,
            }
        }
        let retries = match fields.get("retries") {
            None => Some(DEFAULT_WEBHOOK_RETRIES),
            Some(node) => match node.value {
                Value::Int(n) if (0..=i128::from(MAX_WEBHOOK_RETRIES)).contains(&n) => {
                    u32::try_from(n).ok()
                }
                _ => {
                    self.error(
                        node,
                        &format!("{field}.retries"),
                        format!("must be a whole number from 0 to {MAX_WEBHOOK_RETRIES}"),
                    );
                    None
                }
            },
        };
        ok &= retries.is_some();
        if !ok {
            return None;
        }
        Some(Webhook {
            url: url?,
            timeout: timeout?,
            headers,
            retries: retries?,
        })
    }

    fn timeout(
        &mut self,
        node: Option<&Node>,
        field: &str,
        default: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(node) = node else {
            return Some(default);
        };
        let Value::Str(text) = &node.value else {
            self.expected(node, field, "a duration such as 30s or 2m");
            return None;
        };
        let limit = humantime::format_duration(max);
        match humantime::parse_duration(text.trim()) {
            Ok(d) if d.is_zero() => {
                self.error(node, field, "must be longer than zero");
                None
            }
            Ok(d) if d > max => {
                self.error(node, field, format!("must be at most {limit}"));
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    node,
                    field,
                    format!(
                        "'{}' is not a duration such as 30s or 2m: {e}",
                        shown(text, 40)
                    ),
                );
                None
            }
        }
    }

    // -- generic readers --------------------------------------------------

    fn mapping<'n>(&mut self, node: &'n Node, field: &str, allowed: &[&str]) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, field, "a mapping");
            return None;
        };
        let mut fields = Fields {
            at: node.referenced,
            entries: Vec::new(),
        };
        for (key, value) in entries {
            if allowed.contains(&key.value.as_str()) {
                fields.entries.push((key.value.as_str(), value));
            } else {
                let name = if field == "playbook" {
                    shown(&key.value, 40)
                } else {
                    format!("{field}.{}", shown(&key.value, 40))
                };
                self.error_at(
                    key.referenced,
                    &name,
                    format!("unknown key; valid keys here: {}", allowed.join(", ")),
                );
            }
        }
        Some(fields)
    }

    fn required<'n>(&mut self, fields: &Fields<'n>, key: &str) -> Option<&'n Node> {
        self.required_in(fields, key, "")
    }

    fn required_in<'n>(
        &mut self,
        fields: &Fields<'n>,
        key: &str,
        parent: &str,
    ) -> Option<&'n Node> {
        let node = fields.get(key);
        if node.is_none() {
            let field = if parent.is_empty() {
                key.to_owned()
            } else {
                format!("{parent}.{key}")
            };
            self.error_at(fields.at, &field, "is required");
        }
        node
    }

    /// A string, or an integer written without quotes (`argv: [x, 10]`).
    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            Value::Int(n) => Some(n.to_string()),
            _ => {
                self.expected(node, field, "a string");
                None
            }
        }
    }

    /// A string outside argv: placeholders are not expanded there, so one
    /// written there is a mistake worth reporting.
    fn plain_string(&mut self, node: &Node, field: &str) -> Option<String> {
        let text = self.string(node, field)?;
        if let Some(p) = Placeholder::ALL
            .iter()
            .find(|p| text.contains(&p.to_string()))
        {
            self.error(
                node,
                field,
                format!("{p} is not expanded here; placeholders are only substituted in exec argv"),
            );
            return None;
        }
        Some(text)
    }

    /// A list of strings; a single string counts as a list of one.
    fn string_list<'n>(&mut self, node: &'n Node, field: &str) -> Option<Vec<(String, &'n Node)>> {
        match &node.value {
            Value::Str(s) => Some(vec![(s.clone(), node)]),
            Value::Seq(items) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.string(item, &format!("{field}[{i}]")) {
                        Some(s) => out.push((s, item)),
                        None => ok = false,
                    }
                }
                ok.then_some(out)
            }
            _ => {
                self.expected(node, field, "a list of strings");
                None
            }
        }
    }

    /// A mapping of string to string, as (key, value, key location, value node).
    #[allow(clippy::type_complexity)]
    fn string_map<'n>(
        &mut self,
        node: &'n Node,
        field: &str,
    ) -> Option<Vec<(String, String, Location, &'n Node)>> {
        let Value::Map(entries) = &node.value else {
            self.expected(node, field, "a mapping of names to strings");
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (key, value) in entries {
            match self.plain_string(value, &format!("{field}.{}", shown(&key.value, 40))) {
                Some(text) => out.push((key.value.clone(), text, key.referenced, value)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn label<T>(&mut self, node: &Node, field: &str) -> Option<T>
    where
        T: std::str::FromStr<Err = cer_proto::FieldError>,
    {
        let text = self.string(node, field)?;
        text.parse::<T>()
            .map_err(|e| self.error(node, field, e.reason))
            .ok()
    }

    fn label_list<'n, T>(&mut self, node: &'n Node, field: &str) -> Option<Vec<(T, &'n Node)>>
    where
        T: std::str::FromStr<Err = cer_proto::FieldError> + PartialEq,
    {
        let items = self.string_list(node, field)?;
        let mut out: Vec<(T, &Node)> = Vec::new();
        let mut ok = true;
        for (i, (_, item)) in items.into_iter().enumerate() {
            let item_field = format!("{field}[{i}]");
            match self.label::<T>(item, &item_field) {
                Some(value) if out.iter().any(|(v, _)| *v == value) => {
                    self.error(item, &item_field, "is listed twice");
                    ok = false;
                }
                Some(value) => out.push((value, item)),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn expected(&mut self, node: &Node, field: &str, what: &str) {
        let got = node.value.describe();
        self.error(node, field, format!("expected {what}, got {got}"));
    }

    fn error(&mut self, node: &Node, field: &str, reason: impl Into<String>) {
        self.error_at(node.referenced, field, reason);
    }

    fn warning(&mut self, node: &Node, field: &str, reason: impl Into<String>) {
        let (line, column) = line_column(node.referenced);
        self.warnings.push(PlaybookWarning {
            file: self.file.clone(),
            line,
            column,
            field: escaped(field),
            reason: escaped(&reason.into()),
        });
    }

    fn error_at(&mut self, at: Location, field: &str, reason: impl Into<String>) {
        let (line, column) = line_column(at);
        self.errors.push(PlaybookError::Invalid {
            file: self.file.clone(),
            line,
            column,
            field: escaped(field),
            // Reasons quote values (some through cer-proto's messages);
            // none may put a control character in a log or terminal.
            reason: escaped(&reason.into()),
        });
    }
}

/// Text from a playbook file (and values quoted from cer-proto's
/// messages) made safe for logs and terminals.
fn escaped(text: &str) -> String {
    cer_proto::text::escape(text).into_owned()
}

fn line_column(at: Location) -> (u32, u32) {
    let narrow = |n: u64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    (narrow(at.line()), narrow(at.column()))
}

fn first(mut errors: Vec<PlaybookError>) -> PlaybookError {
    // parse_all never returns an empty list.
    errors.swap_remove(0)
}

fn position(error: &PlaybookError) -> (u32, u32) {
    error.position().unwrap_or((0, 0))
}

fn read_limited(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {e}"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(format!(
            "larger than {} KiB; not a playbook",
            MAX_FILE_BYTES / 1024
        ));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())
}

/// Where `name:` is in a file already known to be valid, for the
/// duplicate-name error.
fn name_position(path: &Path) -> (u32, u32) {
    let text = read_limited(path).unwrap_or_default();
    text.lines()
        .position(|line| line.starts_with("name:"))
        .map_or((1, 1), |i| (u32::try_from(i + 1).unwrap_or(u32::MAX), 1))
}

/// Text echoed in an error: cut short and with control characters
/// escaped, since it may come from anywhere and lands in logs.
fn shown(text: &str, max_chars: usize) -> String {
    let cut: String = text.chars().take(max_chars).collect();
    let mut out = escaped(&cut);
    if text.chars().nth(max_chars).is_some() {
        out.push_str("...");
    }
    out
}

impl EventKind {
    /// The event a newly stored envelope causes, if any: incidents are
    /// `incident.filed` when this node wrote them and `incident.received`
    /// otherwise; every update is `incident.updated`; sightings,
    /// retractions and receipts are events only when a peer wrote them.
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
            cer_proto::envelope::Kind::Retraction if from_peer => {
                Some(EventKind::RetractionReceived)
            }
            cer_proto::envelope::Kind::Receipt if from_peer => Some(EventKind::ReceiptReceived),
            cer_proto::envelope::Kind::Sighting
            | cer_proto::envelope::Kind::Retraction
            | cer_proto::envelope::Kind::Receipt => None,
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
mod tests {
    use super::*;

    const DESIGN_EXAMPLE: &str = r#"name: block-c2-addresses
description: Block C2 IPs reported by trusted peers
on: [incident.received, incident.filed, incident.updated]   # also: sighting.received, retraction.received, mesh.equivocation
match:
  severity_at_least: high
  classification: [malicious-code/c2-server, malicious-code/malware-distribution]
  tlp: [clear, green, amber]
  from: any            # or: own, or a list of fingerprints / names
  has_indicator: [ipv4, ipv6]
max_tlp: amber         # actions never see data above this label
actions:
  - exec:
      argv: ["/usr/local/sbin/block-ip", "{indicator.value}"]
      for_each_indicator: [ipv4, ipv6]
      timeout: 30s
  - webhook:
      url: "http://127.0.0.1:9000/cert-hook"
      timeout: 5s
  - tag: blocked
"#;

    #[test]
    fn accepts_the_design_example() {
        let playbook = parse(DESIGN_EXAMPLE, "playbooks/block-c2.yaml").unwrap();
        assert_eq!(playbook.name, "block-c2-addresses");
        assert_eq!(
            playbook.on,
            [
                EventKind::IncidentReceived,
                EventKind::IncidentFiled,
                EventKind::IncidentUpdated
            ]
        );
        assert_eq!(playbook.max_tlp, Tlp::Amber);
        assert_eq!(playbook.matcher.severity_at_least, Some(Severity::High));
        assert_eq!(playbook.matcher.tlp, [Tlp::Clear, Tlp::Green, Tlp::Amber]);
        assert_eq!(playbook.matcher.from, From::Any);
        assert_eq!(
            playbook.matcher.has_indicator,
            [IndicatorType::Ipv4, IndicatorType::Ipv6]
        );
        assert_eq!(playbook.actions.len(), 3);
        let Action::Exec(exec) = &playbook.actions[0] else {
            panic!("not exec");
        };
        assert_eq!(exec.program, Path::new("/usr/local/sbin/block-ip"));
        assert_eq!(
            exec.args[0].parts(),
            [Part::Placeholder(Placeholder::IndicatorValue)]
        );
        assert_eq!(exec.timeout, Duration::from_secs(30));
        assert!(exec.env.is_empty());
        let Action::Webhook(hook) = &playbook.actions[1] else {
            panic!("not webhook");
        };
        assert_eq!(hook.url.host, "127.0.0.1");
        assert_eq!(hook.url.port, 9000);
        assert_eq!(hook.url.target, "/cert-hook");
        assert_eq!(hook.timeout, Duration::from_secs(5));
        assert_eq!(hook.retries, DEFAULT_WEBHOOK_RETRIES);
        assert_eq!(
            playbook.actions[2],
            Action::Tag("blocked".into(), When::PreviousSucceeded)
        );
    }

    #[test]
    fn every_example_playbook_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
        let (playbooks, errors) = load_dir(&dir);
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        let mut names: Vec<&str> = playbooks.iter().map(|p| p.name.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "block-c2-addresses",
                "equivocation-alert",
                "open-ticket",
                "page-critical",
                "phishing-rpz"
            ]
        );
        // The examples are what people copy: no warnings either.
        for playbook in &playbooks {
            assert_eq!(playbook.warnings, [], "{}", playbook.file.display());
        }
        // And none runs until the operator turns it on.
        for playbook in &playbooks {
            assert!(!playbook.enabled, "{} is enabled", playbook.file.display());
        }
        // Scripts next to the playbooks are found wherever the folder is.
        for playbook in &playbooks {
            for action in &playbook.actions {
                if let Action::Exec(exec) = action {
                    assert!(exec.program.is_absolute(), "{}", exec.program.display());
                    assert!(exec.program.is_file(), "{}", exec.program.display());
                }
            }
        }
    }

    fn error_of(text: &str) -> String {
        match parse(text, "t.yaml") {
            Ok(p) => panic!("accepted: {p:?}\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    /// A valid playbook with one line swapped in, at line 4.
    fn with_line(line: &str) -> String {
        format!("name: t\non: [incident.received]\nactions: [{{tag: x}}]\n{line}\n")
    }

    /// A valid playbook whose only action is an exec with these lines
    /// (indented under `exec:`, starting at line 5).
    fn with_exec(lines: &str) -> String {
        let body: String = lines.lines().map(|l| format!("      {l}\n")).collect();
        format!("name: t\non: [incident.received]\nactions:\n  - exec:\n{body}")
    }

    #[test]
    fn errors_name_file_line_column_and_field() {
        let cases: &[(String, &str)] = &[
            (with_line("bogus: 1"), "t.yaml:4:1: bogus: unknown key; valid keys here: name, description, enabled, on, match, max_tlp, actions"),
            (with_line("match: {severity: high}"), "t.yaml:4:9: match.severity: unknown key"),
            (with_line("match: {severity_at_least: urgent}"), "t.yaml:4:28: match.severity_at_least: unknown value 'urgent'; valid values: low, medium, high, critical"),
            (with_line("match: {classification: [fraud/phising]}"), "t.yaml:4:26: match.classification[0]: unknown value 'fraud/phising'"),
            (with_line("match: {classification: [\"nonsense/*\"]}"), "t.yaml:4:26: match.classification[0]: unknown class 'nonsense'"),
            (with_line("match: {tlp: [red]}"), "t.yaml:4:15: match.tlp[0]: red is above max_tlp green (the default), so this would never run; set max_tlp: red"),
            (with_line("max_tlp: amber\nmatch: {tlp: [green, amber+strict]}"), "t.yaml:5:22: match.tlp[1]: amber+strict is above max_tlp amber"),
            (with_line("max_tlp: purple"), "t.yaml:4:10: max_tlp: unknown value 'purple'"),
            (with_line("match: {has_indicator: [ip]}"), "t.yaml:4:25: match.has_indicator[0]: unknown value 'ip'"),
            (with_line("match: {tags: [two words]}"), "t.yaml:4:16: match.tags[0]: 'two words' contains ' '"),
            (with_line("match: {from: everyone}"), "t.yaml:4:15: match.from: 'everyone' is not any, own, peers or a list"),
            (with_line("match: {tlp: [green, green]}"), "t.yaml:4:22: match.tlp[1]: is listed twice"),
            ("name: t\non: [incident.recieved]\nactions: [{tag: x}]\n".into(), "t.yaml:2:6: on[0]: unknown event 'incident.recieved'; valid events: incident.filed, incident.received"),
            ("name: t\non: []\nactions: [{tag: x}]\n".into(), "t.yaml:2:5: on: must list at least one event"),
            ("name: Block C2\non: [peer.up]\nactions: [{tag: x}]\n".into(), "t.yaml:1:7: name: 'Block C2' must be 1 to 64 lower-case letters"),
            ("on: [peer.up]\nactions: [{tag: x}]\n".into(), "t.yaml:1:1: name: is required"),
            ("name: t\non: [peer.up]\n".into(), "t.yaml:1:1: actions: is required"),
            ("name: t\non: [peer.up]\nactions: []\n".into(), "t.yaml:3:10: actions: must list at least one action"),
            ("name: t\non: [peer.up]\nactions:\n  - shell: rm -rf /\n".into(), "t.yaml:4:5: actions[0].shell: unknown key; valid keys here: exec, webhook, tag, note"),
            ("name: t\non: [peer.up]\nactions:\n  - {tag: a, note: b}\n".into(), "t.yaml:4:5: actions[0]: an action has exactly one of exec, webhook, tag, note; found tag and note"),
            ("name: t\non: [peer.up]\nactions:\n  - note: \"about {incident.id}\"\n".into(), "t.yaml:4:11: actions[0].note: {incident.id} is not expanded here; placeholders are only substituted in exec argv"),
            ("name: t\non: [peer.up]\nactions:\n  - tag: Two Words\n".into(), "t.yaml:4:10: actions[0].tag: 'two words' contains ' '"),
            (with_exec("argv: [/bin/x, \"{incident.title}\"]"), "t.yaml:5:22: actions[0].exec.argv[1]: unknown placeholder {incident.title}; valid placeholders: {incident.id}, {incident.severity}"),
            (with_exec("argv: [/bin/x, \"{indicator.value}\"]"), "t.yaml:4:5: actions[0].exec.argv[1]: {indicator.value} needs for_each_indicator"),
            (with_exec("argv: [/bin/x, \"{peer}\"]"), "t.yaml:4:5: actions[0].exec.argv[1]: {peer} is not available on incident.received"),
            (with_exec("argv: [/bin/x, \"a{b\"]"), "t.yaml:5:22: actions[0].exec.argv[1]: unclosed '{'; write {{ for a literal brace"),
            (with_exec("argv: [/bin/x, \"a}b\"]"), "t.yaml:5:22: actions[0].exec.argv[1]: unmatched '}'; write }} for a literal brace"),
            (with_exec("argv: [\"/bin/{incident.id}\"]"), "t.yaml:5:14: actions[0].exec.argv[0]: the program is fixed"),
            (with_exec("argv: []"), "t.yaml:5:13: actions[0].exec.argv: must name at least the program"),
            (with_exec("argv: [/bin/x]\nbogus: 1"), "t.yaml:6:7: actions[0].exec.bogus: unknown key; valid keys here: argv, for_each_indicator, timeout, env, cwd"),
            (with_exec("argv: [/bin/x]\ntimeout: 2h"), "t.yaml:6:16: actions[0].exec.timeout: must be at most 1h"),
            (with_exec("argv: [/bin/x]\ntimeout: 30"), "t.yaml:6:16: actions[0].exec.timeout: expected a duration such as 30s or 2m, got an integer"),
            (with_exec("argv: [/bin/x]\ntimeout: 0s"), "t.yaml:6:16: actions[0].exec.timeout: must be longer than zero"),
            (with_exec("argv: [/bin/x]\ntimeout: soon"), "t.yaml:6:16: actions[0].exec.timeout: 'soon' is not a duration"),
            (with_exec("argv: [/bin/x]\nenv: {CER_INCIDENT_ID: x}"), "t.yaml:6:13: actions[0].exec.env.CER_INCIDENT_ID: this variable is set by cerd"),
            (with_exec("argv: [/bin/x]\nenv: {\"A B\": x}"), "t.yaml:6:13: actions[0].exec.env.A B: a variable name is letters"),
            (with_exec("argv: [/bin/x]\nenv: {A: \"{incident.id}\"}"), "t.yaml:6:16: actions[0].exec.env.A: {incident.id} is not expanded here"),
            (with_exec("argv: [/bin/x]\nfor_each_indicator: [ipv4, ipv4]"), "t.yaml:6:34: actions[0].exec.for_each_indicator[1]: is listed twice"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"https://x.example/\"}\n".into(), "t.yaml:4:20: actions[0].webhook.url: https is not supported"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x.example:99999/\"}\n".into(), "t.yaml:4:20: actions[0].webhook.url: '99999' is not a valid port"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/{incident.id}\"}\n".into(), "t.yaml:4:20: actions[0].webhook.url: {incident.id} is not expanded here"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {timeout: 5s}\n".into(), "t.yaml:4:14: actions[0].webhook.url: is required"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/\", retries: 99}\n".into(), "t.yaml:4:42: actions[0].webhook.retries: must be a whole number from 0 to 10"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/\", headers: {Host: evil}}\n".into(), "t.yaml:4:43: actions[0].webhook.headers.Host: this header is set by cerd"),
            ("name: t\non: [peer.up]\nactions:\n  - webhook: {url: \"http://x/\", headers: {X-A: \"a\\r\\nB: c\"}}\n".into(), "t.yaml:4:48: actions[0].webhook.headers.X-A: a header value must be printable ASCII on one line"),
            ("name: t\non: [peer.down]\nmatch: {severity_at_least: high}\nactions: [{tag: x}]\n".into(), "t.yaml:3:8: match: conditions on the incident (severity, classification, tlp, indicators, tags) do not apply to peer.down"),
            ("name: t\non: [mesh.equivocation]\nactions:\n  - exec: {argv: [/bin/x], for_each_indicator: [ipv4]}\n".into(), "t.yaml:4:5: actions[0].exec.for_each_indicator: mesh.equivocation has no indicators to run for"),
            ("name: t\non: [retraction.received]\nactions:\n  - exec: {argv: [/bin/x, \"{incident.severity}\"]}\n".into(), "t.yaml:4:5: actions[0].exec.argv[1]: {incident.severity} is not available on retraction.received"),
            ("name: t\nname: u\non: [peer.up]\nactions: [{tag: x}]\n".into(), "t.yaml:2:1: duplicate mapping key `name` is not allowed here"),
            ("name: [t\n".into(), "t.yaml:1:7: unclosed bracket '['"),
            ("".into(), "t.yaml:1:1: playbook: expected a mapping, got nothing"),
            ("- a\n- b\n".into(), "t.yaml:1:1: playbook: expected a mapping, got a list"),
        ];
        let mut failures = Vec::new();
        for (text, want) in cases {
            let got = error_of(text);
            if !got.starts_with(want) {
                failures.push(format!("want: {want}\n got: {got}\n---\n{text}"));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    }

    #[test]
    fn every_error_is_reported_in_file_order() {
        let text = "name: Bad Name\non: [incident.received, nonsense]\nmatch:\n  severity_at_least: urgent\n  colour: red\nactions:\n  - exec: {argv: [/bin/x, \"{incident.title}\"], timeout: forever}\n";
        let errors = parse_all(text, "t.yaml").unwrap_err();
        let fields: Vec<String> = errors
            .iter()
            .map(|e| match e {
                PlaybookError::Invalid { field, line, .. } => format!("{line} {field}"),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            fields,
            [
                "1 name",
                "2 on[1]",
                "4 match.severity_at_least",
                "5 match.colour",
                "7 actions[0].exec.argv[1]",
                "7 actions[0].exec.timeout",
            ]
        );
        // parse gives the first.
        assert!(parse(text, "t.yaml")
            .unwrap_err()
            .to_string()
            .starts_with("t.yaml:1:7: name:"));
    }

    #[test]
    fn enabled_and_when_are_checked() {
        let base = "name: t\non: [incident.received]\n";
        let ok = |text: &str| parse(&format!("{base}{text}"), "t.yaml").unwrap();
        assert!(ok("actions:\n  - tag: x\n").enabled);
        assert!(!ok("enabled: false\nactions:\n  - tag: x\n").enabled);
        assert_eq!(
            ok("actions:\n  - note: n\n    when: always\n").actions[0],
            Action::Note("n".into(), When::Always)
        );
        let error = |text: &str| {
            parse(&format!("{base}{text}"), "t.yaml")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("enabled: no\nactions:\n  - tag: x\n"),
            "t.yaml:3:10: enabled: expected true or false, got a string"
        );
        assert_eq!(
            error("actions:\n  - tag: x\n    when: sometimes\n"),
            "t.yaml:5:11: actions[0].when: 'sometimes' is not one of previous_succeeded, always"
        );
        assert_eq!(
            error("actions:\n  - exec:\n      argv: [/bin/true]\n    when: always\n"),
            "t.yaml:6:11: actions[0].when: applies to tag and note actions only, not to exec"
        );
    }

    #[test]
    fn yaml_one_one_booleans_stay_strings() {
        let playbook = parse(
            "name: t\non: [peer.up]\nactions:\n  - tag: no\n  - exec: {argv: [/bin/echo, yes, off, 10]}\n",
            "t.yaml",
        )
        .unwrap();
        assert_eq!(
            playbook.actions[0],
            Action::Tag("no".into(), When::PreviousSucceeded)
        );
        let Action::Exec(exec) = &playbook.actions[1] else {
            panic!("not exec");
        };
        let args: Vec<String> = exec.args.iter().map(|a| a.to_string()).collect();
        assert_eq!(args, ["yes", "off", "10"]);
    }

    #[test]
    fn templates_expand_once_and_never_rescan() {
        let template = Template::parse("--ip={indicator.value}/{{32}}").unwrap();
        assert_eq!(
            template.parts(),
            [
                Part::Text("--ip=".into()),
                Part::Placeholder(Placeholder::IndicatorValue),
                Part::Text("/{32}".into()),
            ]
        );
        assert_eq!(template.to_string(), "--ip={indicator.value}/{{32}}");
        let value = |p: Placeholder| match p {
            Placeholder::IndicatorValue => Some("{incident.id}$(x)".to_owned()),
            Placeholder::IncidentId => Some("SHOULD-NOT-APPEAR".to_owned()),
            _ => None,
        };
        assert_eq!(
            template.expand(value).as_deref(),
            Some("--ip={incident.id}$(x)/{32}")
        );
        assert_eq!(Template::parse("{event}").unwrap().expand(|_| None), None);
        assert_eq!(
            Template::parse("").unwrap().expand(|_| None).as_deref(),
            Some("")
        );
        for p in Placeholder::ALL {
            assert_eq!(Placeholder::parse(p.as_str()), Some(p));
        }
        for e in EventKind::ALL {
            assert_eq!(EventKind::parse(e.as_str()), Some(e));
        }
    }

    #[test]
    fn relative_programs_and_folders_are_resolved_against_the_playbook() {
        let playbook = parse(
            "name: t\non: [peer.up]\nactions:\n  - exec: {argv: [./bin/x], cwd: work}\n  - exec: {argv: [logger]}\n  - exec: {argv: [/usr/bin/x]}\n",
            "/etc/cerd/playbooks/t.yaml",
        )
        .unwrap();
        let programs: Vec<(&Path, Option<&Path>)> = playbook
            .actions
            .iter()
            .map(|a| match a {
                Action::Exec(e) => (e.program.as_path(), e.cwd.as_deref()),
                _ => panic!("not exec"),
            })
            .collect();
        assert_eq!(
            programs,
            [
                (
                    Path::new("/etc/cerd/playbooks/./bin/x"),
                    Some(Path::new("/etc/cerd/playbooks/work"))
                ),
                (Path::new("logger"), None),
                (Path::new("/usr/bin/x"), None),
            ]
        );
    }

    #[test]
    fn webhook_urls() {
        let ok = |text: &str| WebhookUrl::parse(text).unwrap();
        let url = ok("http://127.0.0.1:9000/cert-hook?x=1");
        assert_eq!(
            (url.host.as_str(), url.port, url.target.as_str()),
            ("127.0.0.1", 9000, "/cert-hook?x=1")
        );
        assert_eq!(url.authority(), "127.0.0.1:9000");
        assert_eq!(url.to_string(), "http://127.0.0.1:9000/cert-hook?x=1");
        let url = ok("HTTP://tickets.example");
        assert_eq!((url.port, url.target.as_str()), (80, "/"));
        let url = ok("http://[::1]:8080?q");
        assert_eq!((url.host.as_str(), url.target.as_str()), ("::1", "/?q"));
        assert_eq!(url.authority(), "[::1]:8080");
        for bad in [
            "ftp://x/",
            "http://",
            "http://user:pw@x/",
            "http://x/#frag",
            "http://x y/",
            "http://x/\n",
            "http://x:0/",
            "http://[::1/",
            "http://x/ü",
            "http://a;b/",
        ] {
            assert!(WebhookUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn load_dir_reports_duplicates_and_bad_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("a.yaml", "name: same\non: [peer.up]\nactions: [{tag: a}]\n");
        write(
            "b.yml",
            "# comment\nname: same\non: [peer.up]\nactions: [{tag: b}]\n",
        );
        write(
            "c.yaml",
            "name: c\non: [peer.up]\nactions: [{tag: c}]\nextra: 1\n",
        );
        write("d.yaml", "name: d\non: [peer.up]\nactions: [{tag: d}]\n");
        write(".hidden.yaml", "not: valid\n");
        write("notes.txt", "not: valid\n");
        std::fs::create_dir(dir.path().join("sub.yaml")).unwrap();
        let (playbooks, errors) = load_dir(dir.path());
        let names: Vec<&str> = playbooks.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["same", "d"]);
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yml");
        let c = dir.path().join("c.yaml");
        assert_eq!(
            errors,
            [
                format!(
                    "{}:2:1: name: playbook 'same' is already defined in {}",
                    b.display(),
                    a.display()
                ),
                format!(
                    "{}:4:1: extra: unknown key; valid keys here: name, description, enabled, on, match, max_tlp, actions",
                    c.display()
                ),
            ]
        );
        assert_eq!(
            load(&dir.path().join("d.yaml")).unwrap().file,
            dir.path().join("d.yaml")
        );
        let missing = load(&dir.path().join("nope.yaml")).unwrap_err();
        assert!(matches!(missing, PlaybookError::Read { .. }), "{missing}");
        assert!(
            missing.to_string().contains("nope.yaml: cannot read"),
            "{missing}"
        );
        let (none, errors) = load_dir(&dir.path().join("absent"));
        assert!(none.is_empty());
        assert!(errors[0]
            .to_string()
            .contains("cannot read the playbook folder"));
    }

    #[test]
    fn huge_and_binary_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.yaml");
        std::fs::write(&big, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        assert!(load(&big)
            .unwrap_err()
            .to_string()
            .contains("not a playbook"));
        let binary = dir.path().join("bin.yaml");
        std::fs::write(&binary, [0xff, 0xfe, 0x00]).unwrap();
        assert!(load(&binary).unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn error_text_escapes_control_characters() {
        for text in [
            "name: t\non: [\"peer.up\\u001b[31m\"]\nactions: [{tag: x}]\n",
            "name: t\non: [peer.up]\nactions: [{tag: \"a\\u001bb\"}]\n",
            "name: t\non: [peer.up]\nactions: [{exec: {argv: [x], env: {\"A\\u001b\": b}}}]\n",
        ] {
            let err = error_of(text);
            assert!(!err.contains('\u{1b}'), "{err}");
            assert!(err.contains("\\u{1b}"), "{err}");
        }
    }

    fn warnings_of(argv: &str) -> Vec<String> {
        let text = format!(
            "name: t\non: [incident.received]\nactions:\n  - exec:\n      argv: {argv}\n      for_each_indicator: [filename, email]\n"
        );
        match parse(&text, "t.yaml") {
            Ok(playbook) => playbook.warnings.iter().map(|w| w.to_string()).collect(),
            Err(e) => panic!("refused: {e}\n{text}"),
        }
    }

    #[test]
    fn an_unguarded_indicator_value_argument_is_a_warning() {
        let warnings = warnings_of(r#"["/bin/x", "{indicator.value}"]"#);
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with("t.yaml:5:24: actions[0].exec.argv[1]: {indicator.value} begins this argument and neither \"--\" nor a fixed option comes before it"),
            "{}",
            warnings[0]
        );
        assert!(warnings[0].contains("would be read as an option"));
        // Beginning the argument is enough: `-x.txt` is an option too.
        assert_eq!(
            warnings_of(r#"["/bin/x", "-v", "{incident.id}", "{indicator.value}.txt"]"#).len(),
            1
        );
        // Each unguarded argument is named.
        let both = warnings_of(r#"["/bin/x", "{indicator.value}", "{indicator.value}"]"#);
        assert_eq!(both.len(), 2, "{both:?}");
        assert!(both[1].contains("argv[2]"), "{both:?}");
    }

    #[test]
    fn a_guarded_or_typed_argument_is_not_a_warning() {
        for argv in [
            r#"["/bin/x", "--", "{indicator.value}"]"#,
            r#"["/bin/x", "--", "{incident.id}", "{indicator.value}"]"#,
            r#"["/bin/x", "--address", "{indicator.value}"]"#,
            r#"["/bin/x", "-a", "{indicator.value}"]"#,
            r#"["/bin/x", "--address={indicator.value}"]"#,
            r#"["/bin/x", "ioc:{indicator.value}"]"#,
            r#"["/bin/x", "{incident.id}", "{indicator.type}", "{incident.reporter}"]"#,
        ] {
            assert_eq!(warnings_of(argv), Vec::<String>::new(), "{argv}");
        }
        // An option only guards the argument right after it.
        assert_eq!(
            warnings_of(r#"["/bin/x", "-a", "{indicator.value}", "{indicator.value}"]"#).len(),
            1
        );
        // A placeholder is not a fixed option, nor a `--` made of one.
        assert_eq!(
            warnings_of(r#"["/bin/x", "-{indicator.type}", "{indicator.value}"]"#).len(),
            1
        );
    }
}
