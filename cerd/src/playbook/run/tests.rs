//! The runner's exec side and its records; the webhook client has its
//! own tests (`webhook/tests.rs`).

use std::path::{Path, PathBuf};

use cer_proto::Fingerprint;

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
            expiry: None,
            warninglisted: None,
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
    // An exec is one try, with its exit status.
    let [try_ok] = &ok.tries[..] else {
        panic!("{:?}", ok.tries);
    };
    assert_eq!(
        (
            try_ok.attempt,
            try_ok.exit_code,
            try_ok.http_status,
            &try_ok.error
        ),
        (1, Some(0), None, &None)
    );
    assert_eq!(try_ok.started, ok.started);
    assert!(try_ok.duration_ms <= ok.duration_ms);

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
    assert_eq!(failed.tries.len(), 1);
    assert_eq!(failed.tries[0].exit_code, Some(3));
    assert_eq!(failed.tries[0].error.as_deref(), Some("exit status 3"));

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
            serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap()).unwrap();
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

#[tokio::test]
async fn tags_and_notes_are_left_to_the_caller() {
    let state = incident();
    let actions = planned(
        "name: local\non: [incident.received]\nactions:\n  - tag: seen\n  - note: handled\n",
        &state,
    );
    let record = Runner::default().run(&actions[0]).await;
    assert!(matches!(record.outcome, Outcome::Skipped { .. }));
    assert!(record.tries.is_empty());
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
        test: false,
        tries: vec![Attempt {
            attempt: 1,
            started: "2026-11-28T13:00:00Z".parse().unwrap(),
            duration_ms: 5,
            exit_code: Some(2),
            http_status: None,
            error: Some("exit status 2".into()),
        }],
    };
    let json = serde_json::to_string(&record).unwrap();
    assert!(
        json.contains(r#""outcome":{"status":"failed","exit_code":2,"reason":"exit status 2"}"#),
        "{json}"
    );
    assert!(
        json.contains(r#""tries":[{"attempt":1,"started":"2026-11-28T13:00:00Z","duration_ms":5,"exit_code":2,"error":"exit status 2"}]"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<RunRecord>(&json).unwrap(), record);

    // Records stored before tries were recorded still read, with none.
    let old = r#"{"playbook":"p","event":"incident.received","action":"webhook http://127.0.0.1:9/x","key":"k","started":"2026-11-28T13:00:00Z","duration_ms":40,"attempts":3,"outcome":{"status":"failed","http_status":503,"reason":"HTTP 503"}}"#;
    let old: RunRecord = serde_json::from_str(old).unwrap();
    assert_eq!((old.attempts, old.tries.len()), (3, 0));
    // And a record without tries writes none.
    assert!(!serde_json::to_string(&old).unwrap().contains("tries"));
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
