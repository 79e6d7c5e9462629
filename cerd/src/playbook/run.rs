//! The runner: the only place in cerd that spawns processes, and the
//! HTTP client for webhooks ([`webhook`], with its TLS in [`tls`] and the
//! secrets it reads in [`secret`]).
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
//! Every run is recorded with its tries (an exec has one; a webhook one
//! per request), so run history shows what really happened.
//!
//! Tag and note actions change the incident and are applied by the
//! caller; [`Runner::run`] returns a `Skipped` record for them and
//! [`local_record`] records the caller's result.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cer_proto::model::Timestamp;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;

pub use cer_proto::api::{Attempt, Outcome, RunRecord, DRY_RUN_EXIT};

use super::plan::{PlannedAction, PlannedKind};
use crate::audit::AUDIT;

mod secret;
mod tls;
mod webhook;

/// Runs planned actions, at most `concurrency` at a time. Cheap to clone;
/// clones share the limit.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
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
        let mut record = record_for(action, started, Outcome::TimedOut);
        match &action.kind {
            PlannedKind::Exec {
                argv,
                env,
                cwd,
                timeout,
                stdin,
            } => {
                let run = exec(argv, env, cwd.as_deref(), *timeout, stdin.clone()).await;
                record.tries = vec![Attempt {
                    attempt: 1,
                    started,
                    duration_ms: elapsed_ms(clock),
                    exit_code: run.outcome.exit_code(),
                    http_status: None,
                    error: match &run.outcome {
                        Outcome::Failed { reason, .. } | Outcome::SpawnError { reason } => {
                            Some(reason.clone())
                        }
                        Outcome::TimedOut => Some(Outcome::TimedOut.to_string()),
                        Outcome::Ok { .. } | Outcome::DryRun | Outcome::Skipped { .. } => None,
                    },
                }];
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
                ca_file,
                hmac,
            } => {
                let request = webhook::Request {
                    url,
                    headers,
                    timeout: *timeout,
                    retries: *retries,
                    body,
                    ca_file: ca_file.as_deref(),
                    hmac: hmac.as_ref(),
                    key: &action.key,
                };
                let run = webhook::deliver(&request, self.inner.backoff).await;
                record.outcome = run.outcome;
                record.attempts = run.attempts;
                record.stdout = run.stdout;
                record.stderr = run.stderr;
                record.tries = run.tries;
            }
            PlannedKind::Tag(..) | PlannedKind::Note(..) => {
                record.outcome = Outcome::Skipped {
                    reason: "tag and note actions are applied by the caller".into(),
                };
                return record;
            }
        }
        record.duration_ms = elapsed_ms(clock);
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
}

impl Default for Runner {
    fn default() -> Self {
        Runner::new(DEFAULT_CONCURRENCY)
    }
}

/// The record of a tag or note the caller applied (`Err` with the reason
/// when it could not), so run history shows every action.
pub fn local_record(
    action: &PlannedAction,
    started: Timestamp,
    result: Result<(), String>,
) -> RunRecord {
    let outcome = match result {
        Ok(()) => Outcome::Ok {
            exit_code: None,
            http_status: None,
        },
        Err(reason) => Outcome::Failed {
            exit_code: None,
            http_status: None,
            reason,
        },
    };
    record_for(action, started, outcome)
}

/// A record of `action` started at `started`, before anything ran.
fn record_for(action: &PlannedAction, started: Timestamp, outcome: Outcome) -> RunRecord {
    RunRecord {
        playbook: action.playbook.clone(),
        event: action.event.as_str().to_owned(),
        incident: action.incident,
        action: action.describe(),
        key: action.key.clone(),
        started,
        duration_ms: 0,
        attempts: 1,
        outcome,
        stdout: String::new(),
        stderr: String::new(),
        test: false,
        tries: Vec::new(),
    }
}

/// Milliseconds since `clock`, for records.
fn elapsed_ms(clock: Instant) -> u64 {
    u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX)
}

struct ExecRun {
    outcome: Outcome,
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
                (Some(DRY_RUN_EXIT), _) => Outcome::DryRun,
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

#[cfg(test)]
mod tests;
