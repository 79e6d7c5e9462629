//! The runner: the only place in cerd that spawns processes, and the
//! HTTP client for webhooks.
//!
//! An exec runs its argv directly (never a shell) in a process group of
//! its own, with an environment that starts empty, the incident JSON on
//! stdin and its output captured up to [`OUTPUT_LIMIT`] per stream (the
//! rest is read and discarded so the child never blocks on a full pipe).
//! When the timeout passes, the whole group is killed; when the program
//! exits, whatever it left running in its group is killed too, so an
//! action's processes never outlive it. Concurrency is bounded by a
//! semaphore; callers spawn runs on their own tasks, so a slow action
//! delays nothing but itself.
//!
//! Tag and note actions change the incident and are applied by the
//! caller; [`Runner::run`] returns a `Skipped` record for them and
//! [`RunRecord::local`] records the caller's result.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cer_proto::model::Timestamp;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::plan::{PlannedAction, PlannedKind};
use super::spec::WebhookUrl;
use crate::node::AUDIT;

/// Runs planned actions, at most `concurrency` at a time. Cheap to clone;
/// clones share the limit.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

/// What happened when an action ran: stored in the run history and
/// served by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub playbook: String,
    /// `incident.received`, …
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<Uuid>,
    /// `exec /usr/local/sbin/block-ip 203.0.113.7`, `webhook http://…`.
    pub action: String,
    /// The planned action's key, for restart-safe deduplication.
    pub key: String,
    pub started: Timestamp,
    pub duration_ms: u64,
    /// Webhook tries made; 1 for everything else.
    pub attempts: u32,
    pub outcome: Outcome,
    /// The first [`OUTPUT_LIMIT`] bytes (lossy UTF-8); for webhooks the
    /// response body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stdout: String,
    /// Likewise; for webhooks, what went wrong on each failed try.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Exit status 0, a 2xx answer, or a tag or note applied.
    Ok {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
    },
    /// A non-zero exit, death by a signal, or a webhook that failed
    /// every try (last answer or error).
    Failed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http_status: Option<u16>,
        reason: String,
    },
    /// The timeout passed (for webhooks: on the last try).
    TimedOut,
    /// The program could not be started (missing, not executable, bad cwd).
    SpawnError { reason: String },
    /// Not run by the runner (tag and note are applied by the caller).
    Skipped { reason: String },
}

/// Captured bytes per stream and per webhook response.
pub const OUTPUT_LIMIT: usize = 64 * 1024;
pub const DEFAULT_CONCURRENCY: usize = 4;
/// First pause between webhook tries; doubled each time up to
/// [`MAX_BACKOFF`].
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long to wait for output still buffered after the process group
/// is gone (only a process that left the group can hold it longer).
const DRAIN_GRACE: Duration = Duration::from_secs(2);

struct Inner {
    permits: Semaphore,
    backoff: Duration,
}

impl Runner {
    pub fn new(concurrency: usize) -> Runner {
        Runner::with_backoff(concurrency, DEFAULT_BACKOFF)
    }

    /// Like [`Runner::new`], with another first pause between webhook
    /// tries (tests use a short one).
    pub fn with_backoff(concurrency: usize, backoff: Duration) -> Runner {
        Runner {
            inner: Arc::new(Inner {
                permits: Semaphore::new(concurrency.max(1)),
                backoff,
            }),
        }
    }

    /// Runs one action, waiting for a free slot first, and reports what
    /// happened. Never fails: every problem is an [`Outcome`]. Dropping
    /// the future kills the action's process group.
    pub async fn run(&self, action: &PlannedAction) -> RunRecord {
        let _permit = self.inner.permits.acquire().await.ok();
        let started = Timestamp::from(time::OffsetDateTime::now_utc());
        let clock = Instant::now();
        let mut record = RunRecord {
            playbook: action.playbook.clone(),
            event: action.event.as_str().to_owned(),
            incident: action.incident,
            action: action.describe(),
            key: action.key.clone(),
            started,
            duration_ms: 0,
            attempts: 1,
            outcome: Outcome::TimedOut,
            stdout: String::new(),
            stderr: String::new(),
        };
        match &action.kind {
            PlannedKind::Exec {
                argv,
                env,
                cwd,
                timeout,
                stdin,
            } => {
                let run = exec(argv, env, cwd.as_deref(), *timeout, stdin.clone()).await;
                record.outcome = run.outcome;
                record.stdout = run.stdout;
                record.stderr = run.stderr;
            }
            PlannedKind::Webhook {
                url,
                headers,
                timeout,
                retries,
                body,
            } => {
                let run = self
                    .webhook(url, headers, *timeout, *retries, body.clone())
                    .await;
                record.outcome = run.outcome;
                record.attempts = run.attempts;
                record.stdout = run.stdout;
                record.stderr = run.stderr;
            }
            PlannedKind::Tag(_) | PlannedKind::Note(_) => {
                record.outcome = Outcome::Skipped {
                    reason: "tag and note actions are applied by the caller".into(),
                };
                return record;
            }
        }
        record.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            target: AUDIT,
            event = "playbook_ran",
            playbook = %record.playbook,
            incident = ?record.incident,
            action = %record.action,
            outcome = %record.outcome,
            duration_ms = record.duration_ms,
            "playbook action ran"
        );
        record
    }

    async fn webhook(
        &self,
        url: &WebhookUrl,
        headers: &[(String, String)],
        timeout: Duration,
        retries: u32,
        body: Arc<[u8]>,
    ) -> WebhookRun {
        let body = Bytes::copy_from_slice(&body);
        let mut log = Vec::new();
        let mut attempts = 0;
        let mut outcome = Outcome::TimedOut;
        let mut stdout = String::new();
        for attempt in 0..=retries {
            if attempt > 0 {
                let pause = self
                    .inner
                    .backoff
                    .saturating_mul(1 << (attempt - 1).min(16))
                    .min(MAX_BACKOFF);
                tokio::time::sleep(pause).await;
            }
            attempts += 1;
            let retry = match tokio::time::timeout(timeout, post(url, headers, body.clone())).await
            {
                Ok(Ok((status, response))) if (200..300).contains(&status) => {
                    return WebhookRun {
                        outcome: Outcome::Ok {
                            exit_code: None,
                            http_status: Some(status),
                        },
                        attempts,
                        stdout: response,
                        stderr: log.join("\n"),
                    };
                }
                Ok(Ok((status, response))) => {
                    log.push(format!("try {attempts}: HTTP {status}"));
                    stdout = response;
                    outcome = Outcome::Failed {
                        exit_code: None,
                        http_status: Some(status),
                        reason: format!("HTTP {status}"),
                    };
                    // Other client errors will not go away by asking again.
                    status >= 500 || status == 408 || status == 429
                }
                Ok(Err(reason)) => {
                    log.push(format!("try {attempts}: {reason}"));
                    outcome = Outcome::Failed {
                        exit_code: None,
                        http_status: None,
                        reason,
                    };
                    true
                }
                Err(_) => {
                    log.push(format!(
                        "try {attempts}: no answer within {}",
                        humantime::format_duration(timeout)
                    ));
                    outcome = Outcome::TimedOut;
                    true
                }
            };
            if !retry {
                break;
            }
        }
        WebhookRun {
            outcome,
            attempts,
            stdout,
            stderr: log.join("\n"),
        }
    }
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new(DEFAULT_CONCURRENCY)
    }
}

impl RunRecord {
    /// The record of a tag or note the caller applied (`Err` with the
    /// reason when it could not), so run history shows every action.
    pub fn local(
        action: &PlannedAction,
        started: Timestamp,
        result: Result<(), String>,
    ) -> RunRecord {
        RunRecord {
            playbook: action.playbook.clone(),
            event: action.event.as_str().to_owned(),
            incident: action.incident,
            action: action.describe(),
            key: action.key.clone(),
            started,
            duration_ms: 0,
            attempts: 1,
            outcome: match result {
                Ok(()) => Outcome::Ok {
                    exit_code: None,
                    http_status: None,
                },
                Err(reason) => Outcome::Failed {
                    exit_code: None,
                    http_status: None,
                    reason,
                },
            },
            stdout: String::new(),
            stderr: String::new(),
        }
    }
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok { .. })
    }
}

/// `ok`, `ok (exit 0)`, `failed (exit 3)`, `failed (HTTP 500)`,
/// `timed out`, `spawn error: …`, `skipped: …`.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Ok {
                exit_code: Some(code),
                ..
            } => write!(f, "ok (exit {code})"),
            Outcome::Ok {
                http_status: Some(status),
                ..
            } => write!(f, "ok (HTTP {status})"),
            Outcome::Ok { .. } => f.write_str("ok"),
            Outcome::Failed { reason, .. } => write!(f, "failed ({reason})"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::SpawnError { reason } => write!(f, "spawn error: {reason}"),
            Outcome::Skipped { reason } => write!(f, "skipped: {reason}"),
        }
    }
}

struct ExecRun {
    outcome: Outcome,
    stdout: String,
    stderr: String,
}

struct WebhookRun {
    outcome: Outcome,
    attempts: u32,
    stdout: String,
    stderr: String,
}

/// Output captured from one stream: the first bytes, and how many there
/// were in all.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    total: u64,
}

/// Kills the process group when dropped, unless it already was: a run
/// whose future is dropped (daemon shutdown) leaves nothing behind.
struct Group {
    pgid: Option<libc::pid_t>,
}

async fn exec(
    argv: &[String],
    env: &[(String, String)],
    cwd: Option<&std::path::Path>,
    timeout: Duration,
    stdin: Arc<[u8]>,
) -> ExecRun {
    let spawn_error = |reason: String| ExecRun {
        outcome: Outcome::SpawnError { reason },
        stdout: String::new(),
        stderr: String::new(),
    };
    let Some(program) = argv.first() else {
        return spawn_error("empty argv".into());
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if let Some(cwd) = cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return spawn_error(format!("cannot run {program}: {e}")),
    };
    // The child leads its own group, so its pid is the group id.
    let mut group = Group {
        pgid: child
            .id()
            .and_then(|id| libc::pid_t::try_from(id).ok())
            .filter(|id| *id > 0),
    };

    let feeder = child.stdin.take().map(|mut pipe| {
        tokio::spawn(async move {
            // A program that does not read its stdin closes the pipe;
            // that is its business, not an error.
            let _ = pipe.write_all(&stdin).await;
        })
    });
    let stdout = Arc::new(Mutex::new(Captured::default()));
    let stderr = Arc::new(Mutex::new(Captured::default()));
    let readers = [
        child
            .stdout
            .take()
            .map(|pipe| tokio::spawn(capture(pipe, stdout.clone()))),
        child
            .stderr
            .take()
            .map(|pipe| tokio::spawn(capture(pipe, stderr.clone()))),
    ];

    let outcome = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => {
            use std::os::unix::process::ExitStatusExt as _;
            match (status.code(), status.signal()) {
                (Some(0), _) => Outcome::Ok {
                    exit_code: Some(0),
                    http_status: None,
                },
                (Some(code), _) => Outcome::Failed {
                    exit_code: Some(code),
                    http_status: None,
                    reason: format!("exit status {code}"),
                },
                (None, signal) => Outcome::Failed {
                    exit_code: None,
                    http_status: None,
                    reason: format!("killed by signal {}", signal.unwrap_or(0)),
                },
            }
        }
        Ok(Err(e)) => Outcome::Failed {
            exit_code: None,
            http_status: None,
            reason: format!("cannot wait for the process: {e}"),
        },
        Err(_) => {
            // Kill before reaping, while the leader still holds the id.
            group.kill();
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    };
    // Whatever the program left running in its group goes with it. (The
    // leader is reaped by now; its id could in theory be reused before
    // this signal, but Linux hands out pids in sequence, so a new group
    // with this id within microseconds is not a practical concern.)
    group.kill();
    if let Some(feeder) = feeder {
        feeder.abort();
    }
    let drained = async {
        for reader in readers.into_iter().flatten() {
            let _ = reader.await;
        }
    };
    // Only a process that left the group can keep the pipes open now.
    let _ = tokio::time::timeout(DRAIN_GRACE, drained).await;
    ExecRun {
        outcome,
        stdout: text(&stdout),
        stderr: text(&stderr),
    }
}

async fn capture(mut pipe: impl AsyncRead + Unpin, into: Arc<Mutex<Captured>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let mut captured = into.lock().unwrap_or_else(|e| e.into_inner());
                let room = OUTPUT_LIMIT.saturating_sub(captured.bytes.len());
                captured.bytes.extend_from_slice(&chunk[..n.min(room)]);
                captured.total += n as u64;
            }
        }
    }
}

fn text(captured: &Mutex<Captured>) -> String {
    let captured = captured.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = String::from_utf8_lossy(&captured.bytes).into_owned();
    if captured.total > captured.bytes.len() as u64 {
        text.push_str(&format!(
            "\n[output truncated: {} bytes in all, first {} kept]",
            captured.total,
            captured.bytes.len()
        ));
    }
    text
}

impl Group {
    fn kill(&mut self) {
        if let Some(pgid) = self.pgid.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to every process in the group. `pgid` is always a group this
/// module created (and never 0 or negative, which would mean our own
/// group or every process).
fn kill_group(pgid: libc::pid_t) {
    if pgid <= 0 {
        return;
    }
    // SAFETY: killpg only sends a signal; it takes plain integers and
    // touches no memory of ours. The group was created by spawning with
    // process_group(0), so pgid is the child's pid. ESRCH (the group is
    // already empty) is expected and ignored.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::killpg(pgid, libc::SIGKILL) };
}

/// One HTTP/1.1 POST on a fresh connection: the status and the first
/// [`OUTPUT_LIMIT`] bytes of the answer.
async fn post(
    url: &WebhookUrl,
    headers: &[(String, String)],
    body: Bytes,
) -> Result<(u16, String), String> {
    let authority = url.authority();
    let stream = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| format!("cannot connect to {authority}: {e}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("HTTP handshake with {authority}: {e}"))?;
    let connection = tokio::spawn(connection);
    let _close = AbortOnDrop(connection);

    let mut request = hyper::Request::post(url.target.as_str())
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(
            hyper::header::USER_AGENT,
            concat!("cerd/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request to {authority} failed: {e}"))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut captured = Vec::new();
    while captured.len() < OUTPUT_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = OUTPUT_LIMIT - captured.len();
                    captured.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            // The status is what counts; a broken body after it is not
            // worth failing (or retrying) the delivery.
            Some(Err(_)) | None => break,
        }
    }
    Ok((status, String::from_utf8_lossy(&captured).into_owned()))
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
