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
//! [`local_record`] records the caller's result.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cer_proto::model::Timestamp;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::Semaphore;

pub use cer_proto::api::{Outcome, RunRecord, DRY_RUN_EXIT};

use super::plan::{PlannedAction, PlannedKind};
use super::spec::WebhookUrl;
use crate::audit::AUDIT;

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
            PlannedKind::Tag(..) | PlannedKind::Note(..) => {
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

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use cer_proto::Fingerprint;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::super::plan::{plan, EventKind, Trigger};
    use super::super::spec::{parse, EXEC_PATH};
    use super::*;
    use cer_playbook::plan::testing::{fpr, hostile_incident, incident, HOSTILE};

    fn exec_action(argv: &[&str], timeout: Duration) -> PlannedAction {
        PlannedAction {
            playbook: "t".into(),
            event: EventKind::IncidentReceived,
            incident: None,
            action_index: 0,
            kind: PlannedKind::Exec {
                argv: argv.iter().map(|a| a.to_string()).collect(),
                env: vec![("PATH".into(), EXEC_PATH.into())],
                cwd: None,
                timeout,
                stdin: Arc::from(&b"{}\n"[..]),
            },
            key: "t:k".into(),
            effect: cer_playbook::plan::Effect::None,
        }
    }

    fn sh(script: &str) -> PlannedAction {
        exec_action(&["/bin/sh", "-c", script], Duration::from_secs(20))
    }

    fn no_names(_: &Fingerprint) -> Option<String> {
        None
    }

    /// Plans `playbook` for the standard test incident.
    fn planned(playbook: &str, state: &cer_proto::incident::IncidentState) -> Vec<PlannedAction> {
        let playbook = parse(playbook, "/tmp/t.yaml").unwrap_or_else(|e| panic!("{e}"));
        let own = fpr('B');
        plan(
            &[playbook],
            &Trigger {
                event: EventKind::IncidentReceived,
                incident: Some(state),
                peer: None,
                own: &own,
                names: &no_names,
                version: "v1".into(),
                acted: &[],
                acted_runs: &[],
                paused: None,
            },
        )
    }

    /// Whether a process is gone (or a zombie nobody reaped yet).
    fn gone(pid: &str) -> bool {
        match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        }
    }

    async fn eventually_gone(pid: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if gone(pid) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn exit_codes_and_spawn_errors() {
        let runner = Runner::default();
        let ok = runner.run(&sh("echo hello; echo oops >&2")).await;
        assert_eq!(
            ok.outcome,
            Outcome::Ok {
                exit_code: Some(0),
                http_status: None
            }
        );
        assert_eq!(
            (ok.stdout.as_str(), ok.stderr.as_str()),
            ("hello\n", "oops\n")
        );
        assert_eq!(ok.action, "exec /bin/sh -c \"echo hello; echo oops >&2\"");
        assert_eq!(ok.key, "t:k");
        assert_eq!(ok.attempts, 1);

        let failed = runner.run(&sh("exit 3")).await;
        assert_eq!(
            failed.outcome,
            Outcome::Failed {
                exit_code: Some(3),
                http_status: None,
                reason: "exit status 3".into()
            }
        );
        assert_eq!(failed.outcome.to_string(), "failed (exit status 3)");

        let killed = runner.run(&sh("kill -TERM $$")).await;
        assert!(
            matches!(&killed.outcome, Outcome::Failed { exit_code: None, reason, .. } if reason == "killed by signal 15"),
            "{:?}",
            killed.outcome
        );

        let missing = runner
            .run(&exec_action(
                &["/nonexistent/block-ip"],
                Duration::from_secs(5),
            ))
            .await;
        assert!(
            matches!(&missing.outcome, Outcome::SpawnError { reason } if reason.starts_with("cannot run /nonexistent/block-ip")),
            "{:?}",
            missing.outcome
        );

        // Bare names are looked up in the fixed PATH, not the daemon's.
        let bare = runner
            .run(&exec_action(&["true"], Duration::from_secs(5)))
            .await;
        assert!(bare.outcome.is_ok(), "{:?}", bare.outcome);

        let mut bad_cwd = sh("true");
        if let PlannedKind::Exec { cwd, .. } = &mut bad_cwd.kind {
            *cwd = Some(PathBuf::from("/nonexistent/folder"));
        }
        let bad_cwd = runner.run(&bad_cwd).await;
        assert!(
            matches!(bad_cwd.outcome, Outcome::SpawnError { .. }),
            "{:?}",
            bad_cwd.outcome
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!(
            "sleep 300 & echo $! > {0}/child; echo $$ > {0}/parent; wait",
            dir.path().display()
        );
        let started = Instant::now();
        let record = Runner::default()
            .run(&exec_action(
                &["/bin/sh", "-c", &script],
                Duration::from_millis(500),
            ))
            .await;
        assert_eq!(record.outcome, Outcome::TimedOut);
        assert_eq!(record.outcome.to_string(), "timed out");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        assert!(record.duration_ms >= 500, "{}", record.duration_ms);
        let parent = std::fs::read_to_string(dir.path().join("parent")).unwrap();
        let child = std::fs::read_to_string(dir.path().join("child")).unwrap();
        assert!(eventually_gone(&parent).await, "parent {parent} survived");
        assert!(eventually_gone(&child).await, "child {child} survived");
    }

    #[tokio::test]
    async fn leftovers_die_with_the_program_and_do_not_hold_the_run() {
        let dir = tempfile::tempdir().unwrap();
        // The background sleep keeps stdout open; the run must not wait
        // for it, and it must not outlive the action.
        let script = format!(
            "sleep 300 & echo $! > {}/child; echo done",
            dir.path().display()
        );
        let started = Instant::now();
        let record = Runner::default().run(&sh(&script)).await;
        assert!(record.outcome.is_ok(), "{:?}", record.outcome);
        assert_eq!(record.stdout, "done\n");
        assert!(started.elapsed() < Duration::from_secs(10));
        let child = std::fs::read_to_string(dir.path().join("child")).unwrap();
        assert!(eventually_gone(&child).await, "child {child} survived");
    }

    #[tokio::test]
    async fn dropping_a_run_kills_its_group() {
        let dir = tempfile::tempdir().unwrap();
        let script = format!("sleep 300 & echo $! > {}/child; wait", dir.path().display());
        let runner = Runner::default();
        let action = sh(&script);
        let pidfile = dir.path().join("child");
        let waiting = async {
            while !pidfile.exists() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        tokio::select! {
            _ = runner.run(&action) => panic!("finished early"),
            _ = waiting => {}
        }
        let child = std::fs::read_to_string(&pidfile).unwrap();
        assert!(eventually_gone(&child).await, "child {child} survived");
    }

    #[tokio::test]
    async fn output_is_bounded_and_the_child_never_blocks() {
        let record = Runner::default()
            .run(&sh(
                "head -c 1000000 /dev/zero | tr '\\0' a; head -c 200000 /dev/zero | tr '\\0' b >&2; echo end >&2",
            ))
            .await;
        assert!(record.outcome.is_ok(), "{:?}", record.outcome);
        let (kept, note) = record.stdout.split_at(OUTPUT_LIMIT);
        assert!(kept.bytes().all(|b| b == b'a'));
        assert_eq!(
            note,
            "\n[output truncated: 1000000 bytes in all, first 65536 kept]"
        );
        assert!(record.stderr.starts_with("bbbb"));
        assert!(record
            .stderr
            .ends_with("[output truncated: 200004 bytes in all, first 65536 kept]"));
    }

    #[tokio::test]
    async fn environment_is_clean_and_stdin_carries_the_json() {
        let state = incident();
        let actions = planned(
            "name: env\non: [incident.received]\nactions:\n  - exec:\n      argv: [/usr/bin/env]\n      env: {EXTRA: \"1\"}\n  - exec:\n      argv: [/bin/cat]\n",
            &state,
        );
        let runner = Runner::default();
        // The test process has plenty of variables (HOME, CARGO_*...).
        assert!(std::env::vars().any(|(k, _)| k == "CARGO_MANIFEST_DIR"));
        let env = runner.run(&actions[0]).await;
        assert!(env.outcome.is_ok(), "{:?}", env.outcome);
        let mut names: Vec<&str> = env
            .stdout
            .lines()
            .map(|l| l.split_once('=').map_or(l, |(k, _)| k))
            .collect();
        names.sort();
        let mut want = vec![
            "CER_AUTHOR",
            "CER_CLASSIFICATION",
            "CER_EVENT",
            "CER_INCIDENT_ID",
            "CER_PLAYBOOK",
            "CER_RUN_KEY",
            "CER_SEVERITY",
            "CER_STATUS",
            "CER_TLP",
            "EXTRA",
            "PATH",
        ];
        want.sort();
        assert_eq!(names, want, "{}", env.stdout);
        assert!(env
            .stdout
            .contains(&format!("CER_INCIDENT_ID={}\n", state.id)));

        let cat = runner.run(&actions[1]).await;
        let PlannedKind::Exec { stdin, .. } = &actions[1].kind else {
            panic!("not exec");
        };
        assert_eq!(cat.stdout.as_bytes(), &stdin[..]);
        let json: serde_json::Value = serde_json::from_str(&cat.stdout).unwrap();
        assert_eq!(json["incident"]["id"], state.id.to_string());
    }

    #[tokio::test]
    async fn concurrency_is_bounded() {
        let runner = Runner::new(1);
        let action = sh("sleep 0.3");
        let started = Instant::now();
        let (a, b) = tokio::join!(runner.run(&action), runner.run(&action));
        assert!(a.outcome.is_ok() && b.outcome.is_ok());
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn injection_corpus_runs_only_the_configured_argv() {
        let dir = tempfile::tempdir().unwrap();
        let dir_path = dir.path();
        // The script writes its arguments NUL-separated, and its stdin.
        let script = dir_path.join("argv.sh");
        std::fs::write(
            &script,
            "printf '%s\\0' \"$@\" > \"$OUT\"\ncat > \"$OUT.json\"\n",
        )
        .unwrap();
        let sentinel = dir_path.join("x");
        std::fs::write(&sentinel, "still here").unwrap();
        let out = dir_path.join("out");

        let mut state = hostile_incident();
        // Commands in the corpus aimed at this test's folder too.
        let aimed = [
            format!("; rm -rf {}", sentinel.display()),
            format!("$(touch {}/pwned)", dir_path.display()),
            format!("`touch {}/pwned`", dir_path.display()),
        ];
        for text in &aimed {
            state.content.as_mut().unwrap().tags.push(text.clone());
        }
        let playbook = format!(
            "name: inject\non: [incident.received]\nactions:\n  - exec:\n      argv: [/bin/sh, \"{}\", \"{{indicator.value}}\", \"--id={{incident.id}}\", \"{{indicator.type}}\"]\n      for_each_indicator: [filename, url]\n      cwd: \"{}\"\n      env: {{OUT: \"{}\"}}\n",
            script.display(),
            dir_path.display(),
            out.display()
        );
        let actions = planned(&playbook, &state);
        assert_eq!(actions.len(), state.indicators.len());
        let runner = Runner::default();
        for (action, indicator) in actions.iter().zip(&state.indicators) {
            let record = runner.run(action).await;
            assert!(
                record.outcome.is_ok(),
                "{:?} {}",
                record.outcome,
                record.stderr
            );
            let written = std::fs::read(&out).unwrap();
            let args: Vec<&[u8]> = written.split(|b| *b == 0).collect();
            assert_eq!(
                args,
                [
                    indicator.value.as_bytes(),
                    format!("--id={}", state.id).as_bytes(),
                    indicator.kind.as_str().as_bytes(),
                    b"",
                ]
            );
            let json: serde_json::Value =
                serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap())
                    .unwrap();
            let back: cer_proto::incident::IncidentState =
                serde_json::from_value(json["incident"].clone()).unwrap();
            assert_eq!(back, state);
        }
        let mut left: Vec<String> = std::fs::read_dir(dir_path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["argv.sh", "out", "out.json", "x"]);
        assert_eq!(std::fs::read_to_string(&sentinel).unwrap(), "still here");
        assert!(!Path::new("/tmp/pwned").exists());
        assert!(HOSTILE.iter().any(|h| h.contains("/tmp/pwned")));
    }

    #[tokio::test]
    async fn example_scripts_refuse_hostile_values() {
        let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks/bin");
        let run = |script: &str, args: &[&str]| {
            let path = bin.join(script).display().to_string();
            let mut argv = vec!["/bin/sh", path.as_str()];
            argv.extend_from_slice(args);
            let action = exec_action(&argv, Duration::from_secs(10));
            async move { Runner::default().run(&action).await }
        };
        // Until configured, the scripts change nothing and say so: exit
        // 99, recorded as a dry run (not a success).
        let ok = run("block-ip", &["203.0.113.7"]).await;
        assert_eq!(ok.outcome, Outcome::DryRun, "{}", ok.stderr);
        assert!(ok.stdout.starts_with("dry run"), "{}", ok.stdout);
        assert!(ok
            .stdout
            .contains("nft add element inet cert_block block_v4 { 203.0.113.7 }"));
        // The example playbooks pass "--" first, the end-of-options marker.
        let dashed = run("block-ip", &["--", "203.0.113.7"]).await;
        assert_eq!(dashed.outcome, Outcome::DryRun, "{}", dashed.stderr);
        assert!(dashed.stdout.contains("block_v4 { 203.0.113.7 }"));
        let v6 = run("block-ip", &["2001:db8::7"]).await;
        assert!(
            v6.stdout.contains("block_v6 { 2001:db8::7 }"),
            "{}",
            v6.stdout
        );
        let domain = run(
            "rpz-add",
            &[
                "--",
                "phish.example",
                "0123abcd-0000-4000-8000-000000000001",
            ],
        )
        .await;
        assert!(
            domain
                .stdout
                .contains("\n*.phish.example CNAME . ; cerd incident"),
            "{}",
            domain.stdout
        );
        assert_eq!(domain.outcome, Outcome::DryRun, "{}", domain.stderr);
        let fp = "A".repeat(40);
        let page = run("page", &["equivocation", &fp]).await;
        assert_eq!(page.outcome, Outcome::DryRun, "{}", page.stderr);
        assert!(page.stdout.starts_with("dry run"), "{}", page.stdout);
        // Configured, it pages (here: to a file) and succeeds.
        let log = tempfile::tempdir().unwrap();
        let page_log = format!("PAGE_LOG={}", log.path().join("pages").display());
        let path = bin.join("page").display().to_string();
        let configured = exec_action(
            &[
                "/usr/bin/env",
                &page_log,
                "/bin/sh",
                &path,
                "equivocation",
                &fp,
            ],
            Duration::from_secs(10),
        );
        let page = Runner::default().run(&configured).await;
        assert!(page.outcome.is_ok(), "{:?} {}", page.outcome, page.stderr);
        let paged = std::fs::read_to_string(log.path().join("pages")).unwrap();
        assert!(paged.contains("signed two different envelopes"), "{paged}");
        // (A NUL cannot be an argument at all: that is a spawn error.)
        let hostile_args = HOSTILE.iter().filter(|h| !h.contains('\0'));
        for hostile in hostile_args.chain(&["1.2.3.4\n5.6.7.8", "1.2.3.4 ; id", "999.1.1.1"]) {
            for script in ["block-ip", "rpz-add"] {
                let record = run(script, &[hostile]).await;
                assert!(
                    matches!(
                        record.outcome,
                        Outcome::Failed {
                            exit_code: Some(65),
                            ..
                        }
                    ),
                    "{script} {hostile:?}: {:?} {}",
                    record.outcome,
                    record.stdout
                );
            }
            let page = run("page", &["equivocation", hostile]).await;
            assert!(!page.outcome.is_ok(), "page {hostile:?}");
        }
    }

    /// A tiny HTTP server: answers each request with the next status in
    /// `statuses` (repeating the last), or never answers when it is 0.
    /// Returns the address and a receiver of (head, body) per request.
    async fn server(
        statuses: Vec<u16>,
    ) -> (
        std::net::SocketAddr,
        tokio::sync::mpsc::UnboundedReceiver<(String, Vec<u8>)>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let status = statuses[n.min(statuses.len() - 1)];
                n += 1;
                let tx = tx.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head, body) = loop {
                        let Ok(read) = stream.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..read]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let length: usize = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        while buf.len() < end + 4 + length {
                            let Ok(read) = stream.read(&mut chunk).await else {
                                return;
                            };
                            if read == 0 {
                                return;
                            }
                            buf.extend_from_slice(&chunk[..read]);
                        }
                        break (head, buf[end + 4..end + 4 + length].to_vec());
                    };
                    let _ = tx.send((head, body));
                    if status == 0 {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        return;
                    }
                    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 9\r\nConnection: close\r\n\r\nticket 42");
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        (addr, rx)
    }

    fn webhook_action(
        addr: std::net::SocketAddr,
        retries: u32,
        timeout: Duration,
    ) -> PlannedAction {
        let state = incident();
        let yaml = format!(
            "name: hook\non: [incident.received]\nactions:\n  - webhook:\n      url: \"http://{addr}/cert/hook?src=cerd\"\n      timeout: {}ms\n      retries: {retries}\n      headers: {{Authorization: \"Bearer xyz\"}}\n",
            timeout.as_millis()
        );
        planned(&yaml, &state).remove(0)
    }

    #[tokio::test]
    async fn webhook_posts_the_json_and_retries_after_a_500() {
        let (addr, mut requests) = server(vec![500, 200]).await;
        let action = webhook_action(addr, 3, Duration::from_secs(5));
        let runner = Runner::with_backoff(4, Duration::from_millis(20));
        let record = runner.run(&action).await;
        assert_eq!(
            record.outcome,
            Outcome::Ok {
                exit_code: None,
                http_status: Some(200)
            },
            "{}",
            record.stderr
        );
        assert_eq!(record.attempts, 2);
        assert_eq!(record.stdout, "ticket 42");
        assert_eq!(record.stderr, "try 1: HTTP 500");
        assert_eq!(
            record.action,
            format!("webhook http://{addr}/cert/hook?src=cerd")
        );
        let PlannedKind::Webhook { body, .. } = &action.kind else {
            panic!("not webhook");
        };
        for _ in 0..2 {
            let (head, got) = requests.recv().await.unwrap();
            let head = head.to_ascii_lowercase();
            assert!(
                head.starts_with("post /cert/hook?src=cerd http/1.1\r\n"),
                "{head}"
            );
            assert!(
                head.contains("\r\ncontent-type: application/json"),
                "{head}"
            );
            assert!(head.contains("\r\nauthorization: bearer xyz"), "{head}");
            assert!(head.contains(&format!("\r\nhost: {addr}")), "{head}");
            assert_eq!(got, &body[..]);
        }
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["event"], "incident.received");
    }

    #[tokio::test]
    async fn webhook_gives_up_on_client_errors_and_times_out() {
        let runner = Runner::with_backoff(4, Duration::from_millis(10));
        let (addr, _requests) = server(vec![404]).await;
        let record = runner
            .run(&webhook_action(addr, 3, Duration::from_secs(5)))
            .await;
        assert_eq!(record.attempts, 1, "4xx is not retried");
        assert!(matches!(
            record.outcome,
            Outcome::Failed {
                http_status: Some(404),
                ..
            }
        ));

        let (addr, _requests) = server(vec![0]).await;
        let started = Instant::now();
        let record = runner
            .run(&webhook_action(addr, 1, Duration::from_millis(200)))
            .await;
        assert_eq!(record.outcome, Outcome::TimedOut);
        assert_eq!(record.attempts, 2);
        assert!(started.elapsed() < Duration::from_secs(10));

        // Nobody listening: connection refused, retried, then failed.
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let record = runner
            .run(&webhook_action(addr, 2, Duration::from_secs(5)))
            .await;
        assert_eq!(record.attempts, 3);
        assert!(
            matches!(&record.outcome, Outcome::Failed { http_status: None, reason, .. } if reason.starts_with("cannot connect")),
            "{:?}",
            record.outcome
        );
    }

    #[tokio::test]
    async fn tags_and_notes_are_left_to_the_caller() {
        let state = incident();
        let actions = planned(
            "name: local\non: [incident.received]\nactions:\n  - tag: seen\n  - note: handled\n",
            &state,
        );
        let record = Runner::default().run(&actions[0]).await;
        assert!(matches!(record.outcome, Outcome::Skipped { .. }));
        let started = Timestamp::from(time::OffsetDateTime::now_utc());
        let applied = local_record(&actions[1], started, Ok(()));
        assert!(applied.outcome.is_ok());
        assert_eq!(applied.action, "note handled");
        assert_eq!(applied.incident, Some(state.id));
    }

    #[test]
    fn records_round_trip_through_json() {
        let record = RunRecord {
            playbook: "p".into(),
            event: "incident.received".into(),
            incident: Some(uuid::Uuid::nil()),
            action: "exec /bin/true".into(),
            key: "k".into(),
            started: "2026-11-28T13:00:00Z".parse().unwrap(),
            duration_ms: 5,
            attempts: 1,
            outcome: Outcome::Failed {
                exit_code: Some(2),
                http_status: None,
                reason: "exit status 2".into(),
            },
            stdout: String::new(),
            stderr: "boom".into(),
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            json.contains(
                r#""outcome":{"status":"failed","exit_code":2,"reason":"exit status 2"}"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<RunRecord>(&json).unwrap(), record);
        for outcome in [
            Outcome::TimedOut,
            Outcome::SpawnError { reason: "x".into() },
            Outcome::Ok {
                exit_code: Some(0),
                http_status: None,
            },
        ] {
            let json = serde_json::to_string(&outcome).unwrap();
            assert_eq!(serde_json::from_str::<Outcome>(&json).unwrap(), outcome);
        }
    }
}
