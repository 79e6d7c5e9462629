//! `cerctl playbook list | check | test | runs`; `test --fixture` plans
//! here, with no node.

use std::path::Path;

use anyhow::Context as _;
use cer_playbook::plan::{self, EventKind, PlannedAction, PlannedKind};
use cer_playbook::Playbook;
use cer_proto::api::{PlaybookCheck, PlaybookList, PlaybookTest, RunList, RunQuery, TestPlaybook};
use cer_proto::model::Timestamp;
use cer_proto::{FieldError, FieldErrors, Fingerprint};
use uuid::Uuid;

use super::{connect, print_json, Ctx, Io};
use crate::client::query_string;
use crate::exit;
use crate::input::fixture;
use crate::render;

pub(super) async fn list(ctx: &Ctx<'_>, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let list: PlaybookList = connect(ctx).await?.get_json("/v1/playbooks").await?;
    if ctx.json {
        return print_json(io, &list);
    }
    if list.playbooks.is_empty() {
        writeln!(io.stdout, "no playbooks loaded")?;
    } else {
        let mut table = render::table(["NAME", "ON", "MAX TLP", "ACTIONS", "FILE"]);
        for p in &list.playbooks {
            table.add_row([
                render::one_line(&p.name) + if p.enabled { "" } else { " (disabled)" },
                p.on.join(", "),
                p.max_tlp.to_string(),
                p.actions.to_string(),
                render::one_line(&p.file),
            ]);
        }
        render::write_table(io.stdout, &table)?;
    }
    if !list.errors.is_empty() {
        writeln!(
            io.stdout,
            "\nRefused files (the previous version, if any, stays active):"
        )?;
        for e in &list.errors {
            for line in e.message.lines() {
                writeln!(io.stdout, "  {}", render::one_line(line))?;
            }
        }
    }
    Ok(exit::OK)
}

fn read(file: &Path) -> anyhow::Result<(String, String)> {
    let yaml = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read playbook {}", file.display()))?;
    Ok((file.display().to_string(), yaml))
}

/// Checks a playbook file here, with the daemon's own rules (the
/// cer-playbook crate): a linter that needs no running node.
pub(super) async fn check(ctx: &Ctx<'_>, io: &mut Io<'_>, file: &Path) -> anyhow::Result<i32> {
    let (file, yaml) = read(file)?;
    let check: PlaybookCheck = cer_playbook::check(&yaml, &file);
    if ctx.json {
        print_json(io, &check)?;
    } else if let Some(name) = &check.name {
        // Warnings do not make the playbook invalid: stderr, exit 0.
        for warning in &check.warnings {
            writeln!(io.stderr, "warning: {}", render::one_line(warning))?;
        }
        writeln!(
            io.stdout,
            "ok: playbook {} is valid",
            render::one_line(name)
        )?;
    } else {
        for error in &check.errors {
            writeln!(io.stderr, "{}", render::one_line(error))?;
        }
    }
    Ok(if check.errors.is_empty() {
        exit::OK
    } else {
        exit::NOT_FOUND
    })
}

pub(super) async fn test(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    file: &Path,
    incident: Uuid,
    event: Option<String>,
) -> anyhow::Result<i32> {
    let (file, yaml) = read(file)?;
    let request = TestPlaybook {
        file,
        yaml,
        incident,
        event,
    };
    let test: PlaybookTest = connect(ctx)
        .await?
        .post_json("/v1/playbooks/test", &request)
        .await?;
    if ctx.json {
        return print_json(io, &test);
    }
    match &test.skipped {
        Some(reason) => writeln!(
            io.stdout,
            "{} on {}: nothing would run: {}",
            render::one_line(&test.playbook),
            test.event,
            render::one_line(reason)
        )?,
        None => {
            writeln!(
                io.stdout,
                "{} on {} would run:",
                render::one_line(&test.playbook),
                test.event
            )?;
            for action in &test.would_run {
                writeln!(io.stdout, "  {}", render::one_line(action))?;
            }
        }
    }
    Ok(exit::OK)
}

/// `playbook test FILE --fixture FIXTURE`: plans the playbook here, with
/// cer-playbook's own planner, against the incident the fixture describes
/// (see [`crate::input::fixture`]). No node, no socket.
pub(super) fn test_fixture(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    file: &Path,
    fixture_path: &Path,
    event: Option<String>,
    show_input: bool,
) -> anyhow::Result<i32> {
    let (file, yaml) = read(file)?;
    let playbook = cer_playbook::parse_all(&yaml, &file).map_err(|errors| {
        let errors = FieldErrors(
            errors
                .iter()
                .map(|e| FieldError::new("playbook", e.to_string()))
                .collect(),
        );
        anyhow::Error::new(errors).context(format!("{file}: invalid playbook"))
    })?;
    let fixture = fixture::read_fixture(fixture_path, io.stdin)?;
    let event = incident_event(&playbook, event)?;
    let state = fixture.state(Timestamp(time::OffsetDateTime::now_utc()));
    let own = fixture::own();
    let names = |f: &Fingerprint| fixture.name_of(f);
    let trigger = plan::Trigger {
        event,
        incident: Some(&state),
        peer: None,
        own: &own,
        names: &names,
        version: "test".into(),
    };
    let planned = plan::plan_one(&playbook, &trigger);
    // What every exec run reads on stdin and every webhook gets as its
    // body: built by the planner's own function, for this max_tlp.
    let input = plan::payload(&trigger, playbook.max_tlp);
    for warning in &playbook.warnings {
        writeln!(
            io.stderr,
            "warning: {}",
            render::one_line(&warning.to_string())
        )?;
    }
    if show_input {
        return match &planned {
            Ok(_) => {
                let text = String::from_utf8_lossy(&input);
                io.stdout
                    .write_all(render::terminal_json(&text).as_bytes())?;
                Ok(exit::OK)
            }
            Err(skip) => {
                writeln!(
                    io.stderr,
                    "cerctl: {} on {event}: nothing would run, so no action would read any input: {}",
                    render::one_line(&playbook.name),
                    render::one_line(&skip.to_string())
                )?;
                Ok(exit::NOT_FOUND)
            }
        };
    }
    let fixture_name = fixture_path.display().to_string();
    if ctx.json {
        let input: serde_json::Value =
            serde_json::from_slice(&input).unwrap_or(serde_json::Value::Null);
        let report = serde_json::json!({
            "playbook": playbook.name,
            "event": event.as_str(),
            "fixture": fixture_name,
            "incident": state.id,
            "would_run": planned.as_ref().map_or_else(|_| Vec::new(), |actions| {
                actions.iter().map(action_json).collect()
            }),
            "skipped": planned.as_ref().err().map(|skip| skip.to_string()),
            "input": planned.is_ok().then_some(input),
        });
        return print_json(io, &report);
    }
    let out = &mut *io.stdout;
    writeln!(
        out,
        "{} on {event}, incident {} from {}:",
        render::one_line(&playbook.name),
        state.id,
        render::one_line(&fixture_name),
    )?;
    let actions = match planned {
        Ok(actions) => actions,
        Err(skip) => {
            writeln!(
                out,
                "nothing would run: {}",
                render::one_line(&skip.to_string())
            )?;
            return Ok(exit::OK);
        }
    };
    let cwd = std::env::current_dir().ok();
    let shown_path = |text: &str| match cwd.as_deref().and_then(|c| c.to_str()) {
        Some(cwd) if !ctx.wide && cwd != "/" => text.replace(&format!("{cwd}/"), ""),
        _ => text.to_owned(),
    };
    if actions.is_empty() {
        writeln!(out, "nothing would run: no action has anything to act on")?;
    }
    for (n, action) in actions.iter().enumerate() {
        writeln!(
            out,
            "{:>3}. {}",
            n + 1,
            render::one_line(&shown_path(&action.describe()))
        )?;
        match &action.kind {
            PlannedKind::Exec {
                env, cwd, timeout, ..
            } => {
                let mut line = format!("timeout {}", humantime::format_duration(*timeout));
                if let Some(cwd) = cwd {
                    line.push_str(&format!(", in {}", shown_path(&cwd.display().to_string())));
                }
                writeln!(out, "     {}", render::one_line(&line))?;
                for (i, (name, value)) in env.iter().enumerate() {
                    let label = if i == 0 { "env:" } else { "" };
                    writeln!(
                        out,
                        "     {label:<4} {}={}",
                        render::one_line(name),
                        render::one_line(value)
                    )?;
                }
            }
            PlannedKind::Webhook {
                headers,
                timeout,
                retries,
                ..
            } => {
                let mut line = format!(
                    "timeout {} per try, {retries} retr{}",
                    humantime::format_duration(*timeout),
                    if *retries == 1 { "y" } else { "ies" }
                );
                if !headers.is_empty() {
                    // Header values may be secrets: names only.
                    let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
                    line.push_str(&format!("; headers {}", names.join(", ")));
                }
                writeln!(out, "     {}", render::one_line(&line))?;
            }
            PlannedKind::Tag(..) | PlannedKind::Note(..) => {
                let when = if action.waits_for_success() {
                    "only if every action before it succeeded"
                } else {
                    "whatever happened before it"
                };
                writeln!(out, "     {when}")?;
            }
        }
    }
    writeln!(
        out,
        "Each run reads the same {} bytes of JSON on stdin (a webhook gets them as its body); \
         --show-input prints them.",
        input.len()
    )?;
    Ok(exit::OK)
}

/// The incident event to simulate: the one asked for, or the playbook's
/// first incident event.
fn incident_event(playbook: &Playbook, event: Option<String>) -> anyhow::Result<EventKind> {
    let event = match event {
        Some(name) => EventKind::parse(&name).ok_or_else(|| {
            FieldError::new(
                "event",
                format!("unknown event '{}'", render::one_line(&name)),
            )
        })?,
        None => playbook
            .on
            .iter()
            .copied()
            .find(|e| e.is_incident())
            .ok_or_else(|| {
                FieldError::new(
                    "event",
                    "the playbook reacts to no incident event, and a fixture is an incident",
                )
            })?,
    };
    if !event.is_incident() {
        return Err(FieldError::new(
            "event",
            format!(
                "{event} is about a peer, and a fixture is an incident: give an incident event"
            ),
        )
        .into());
    }
    Ok(event)
}

/// One planned action, for `--json`: what it is and everything it would
/// be given, header values of webhooks excepted (they may be secrets).
fn action_json(action: &PlannedAction) -> serde_json::Value {
    let mut value = serde_json::json!({
        "action": action.action_index,
        "describe": action.describe(),
        "key": action.key,
    });
    let details = match &action.kind {
        PlannedKind::Exec {
            argv,
            env,
            cwd,
            timeout,
            ..
        } => serde_json::json!({
            "kind": "exec",
            "argv": argv,
            "env": env
                .iter()
                .map(|(name, value)| (name.clone(), value.as_str().into()))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "cwd": cwd.as_ref().map(|c| c.display().to_string()),
            "timeout_ms": timeout.as_millis() as u64,
        }),
        PlannedKind::Webhook {
            url,
            headers,
            timeout,
            retries,
            ..
        } => serde_json::json!({
            "kind": "webhook",
            "url": url.to_string(),
            "headers": headers.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(),
            "timeout_ms": timeout.as_millis() as u64,
            "retries": retries,
        }),
        PlannedKind::Tag(tag, _) => serde_json::json!({"kind": "tag", "tag": tag}),
        PlannedKind::Note(note, _) => serde_json::json!({"kind": "note", "note": note}),
    };
    if let (Some(object), serde_json::Value::Object(details)) = (value.as_object_mut(), details) {
        object.extend(details);
        if action.is_local() {
            object.insert(
                "only_after_success".into(),
                action.waits_for_success().into(),
            );
        }
    }
    value
}

pub(super) async fn runs(ctx: &Ctx<'_>, io: &mut Io<'_>, query: &RunQuery) -> anyhow::Result<i32> {
    let path = format!("/v1/playbooks/runs?{}", query_string(query)?);
    let list: RunList = connect(ctx).await?.get_json(&path).await?;
    if ctx.json {
        return print_json(io, &list);
    }
    if list.runs.is_empty() {
        writeln!(io.stdout, "no playbook runs recorded")?;
        return Ok(exit::OK);
    }
    let cwd = std::env::current_dir().ok();
    let table = runs_table(&list, cwd.as_deref(), ctx.wide);
    render::write_table(io.stdout, &table)?;
    Ok(exit::OK)
}

/// The run history as a table: program paths under the current folder
/// shown relative to it, short incident ids unless `wide`.
fn runs_table(list: &RunList, cwd: Option<&Path>, wide: bool) -> comfy_table::Table {
    let mut rows = Vec::new();
    for run in &list.runs {
        let output = run
            .stdout
            .lines()
            .chain(run.stderr.lines())
            .next()
            .unwrap_or("");
        let action = match cwd.and_then(|cwd| cwd.to_str()) {
            Some(cwd) if !wide && cwd != "/" => run.action.replace(&format!("{cwd}/"), ""),
            _ => run.action.clone(),
        };
        rows.push([
            render::seconds(&run.started),
            render::one_line(&run.playbook),
            run.event.clone(),
            run.incident
                .map(|i| render::incident_id(&i, wide))
                .unwrap_or_else(|| "-".into()),
            render::one_line(&action),
            // Webhooks retry: say how many tries the outcome took.
            match run.attempts {
                0 | 1 => run.outcome.to_string(),
                n => format!("{} after {n} tries", run.outcome),
            },
            run.duration_ms.to_string(),
            render::one_line(output),
        ]);
    }
    render::fitted_table(
        [
            "STARTED", "PLAYBOOK", "EVENT", "INCIDENT", "ACTION", "OUTCOME", "MS", "OUTPUT",
        ],
        rows,
        &[7, 1, 5, 4],
        render::table_width(wide),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::model::Tlp;

    const PLAYBOOK: &str = r#"name: record
on: [incident.received]
match: { has_indicator: [ipv4] }
max_tlp: amber
actions:
  - exec:
      argv: ["/usr/local/bin/record", "--", "{indicator.value}"]
      for_each_indicator: [ipv4]
  - webhook:
      url: "http://127.0.0.1:9/hook"
      headers: { Authorization: "Bearer s3cr3t" }
  - tag: recorded
"#;

    const FIXTURE: &str = "\
title: C2 server
description: \"beacons \\u200e every \\u061c minute\"
severity: high
tlp: green
classification: malicious-code/c2-server
indicators:
  - {type: ipv4, value: 203.0.113.7, comment: \"\\x9b[31m red \\e]52;c;x\"}
reporter_name: KE-CIRT
filed: 2026-11-28T13:00:00Z
updates:
  - {note: seen by the AMBER circle, tlp: amber, indicators: [{type: ipv4, value: 192.0.2.8}]}
  - {note: attributed for RED eyes only, tlp: red, indicators: [{type: ipv4, value: 198.51.100.9}]}
";

    /// Runs cerctl on a playbook and a fixture written to a fresh folder,
    /// with a socket nobody listens on: nothing may need the node.
    fn run_fixture(playbook: &str, fixture: &str, extra: &[&str]) -> (i32, String, String) {
        let dir = tempfile::tempdir().unwrap();
        let playbook_path = dir.path().join("record.yaml");
        let fixture_path = dir.path().join("incident.yaml");
        std::fs::write(&playbook_path, playbook).unwrap();
        std::fs::write(&fixture_path, fixture).unwrap();
        let socket = dir.path().join("nobody.sock");
        let mut args: Vec<String> = vec!["cerctl".into(), "--socket".into()];
        args.push(socket.display().to_string());
        args.extend([
            "playbook".into(),
            "test".into(),
            playbook_path.display().to_string(),
            "--fixture".into(),
            fixture_path.display().to_string(),
        ]);
        args.extend(extra.iter().map(|a| a.to_string()));
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let code = crate::main_with(args, &mut std::io::empty(), &mut stdout, &mut stderr);
        (
            code,
            String::from_utf8(stdout).unwrap(),
            String::from_utf8(stderr).unwrap(),
        )
    }

    fn no_raw_control(text: &str) -> bool {
        !text
            .chars()
            .any(|c| cer_proto::text::is_unsafe_for_terminal(c) && c != '\n')
    }

    #[test]
    fn a_fixture_is_planned_here_with_argv_env_and_input() {
        let (code, stdout, stderr) = run_fixture(PLAYBOOK, FIXTURE, &[]);
        assert_eq!(code, exit::OK, "{stderr}");
        assert!(no_raw_control(&stdout), "{stdout}");
        for needle in [
            "record on incident.received, incident ",
            "1. exec /usr/local/bin/record -- 203.0.113.7",
            "2. exec /usr/local/bin/record -- 192.0.2.8",
            "env: PATH=",
            "CER_INDICATOR_VALUE=192.0.2.8",
            "CER_AUTHOR_NAME=KE-CIRT",
            "3. webhook http://127.0.0.1:9/hook",
            "headers Authorization",
            "4. tag recorded",
            "only if every action before it succeeded",
            "--show-input prints them",
        ] {
            assert!(stdout.contains(needle), "{needle} missing from\n{stdout}");
        }
        // Nothing from above max_tlp; no header value.
        for absent in ["198.51.100.9", "s3cr3t"] {
            assert!(!stdout.contains(absent), "{absent} in\n{stdout}");
        }
    }

    #[test]
    fn show_input_prints_only_the_json_the_actions_read() {
        let (code, stdout, stderr) = run_fixture(PLAYBOOK, FIXTURE, &[]);
        assert_eq!(code, exit::OK, "{stderr}");
        let (code, input, stderr) = run_fixture(PLAYBOOK, FIXTURE, &["--show-input"]);
        assert_eq!(code, exit::OK, "{stderr}");
        assert!(no_raw_control(&input), "{input}");
        let json: serde_json::Value = serde_json::from_str(&input).unwrap();
        // The same value the planner hands the actions: with the hostile
        // comment and marks as they are, only written as escapes.
        let text = fixture::parse_fixture(FIXTURE, "f.yaml").unwrap();
        let state = text.state(Timestamp(time::OffsetDateTime::UNIX_EPOCH));
        let names = |f: &Fingerprint| text.name_of(f);
        let own = fixture::own();
        let trigger = plan::Trigger {
            event: EventKind::IncidentReceived,
            incident: Some(&state),
            peer: None,
            own: &own,
            names: &names,
            version: "test".into(),
        };
        let bytes = plan::payload(&trigger, Tlp::Amber);
        let expected: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json, expected);
        assert_eq!(
            json["incident"]["indicators"][0]["comment"],
            "\u{9b}[31m red \u{1b}]52;c;x"
        );
        assert!(input.contains("seen by the AMBER circle"));
        assert!(!input.contains("RED eyes") && !input.contains("198.51.100.9"));
        assert!(stdout.contains(&format!("the same {} bytes", bytes.len())));

        // --json: the plan and the input, machine-readable.
        let (code, out, _) = run_fixture(PLAYBOOK, FIXTURE, &["--json"]);
        assert_eq!(code, exit::OK);
        assert!(no_raw_control(&out), "{out}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["input"], expected);
        assert_eq!(report["would_run"][1]["argv"][2], "192.0.2.8");
        assert_eq!(
            report["would_run"][1]["env"]["CER_INDICATOR_VALUE"],
            "192.0.2.8"
        );
        assert_eq!(report["would_run"][2]["headers"][0], "Authorization");
        assert_eq!(report["would_run"][3]["only_after_success"], true);
        assert!(report["skipped"].is_null());
    }

    #[test]
    fn a_playbook_that_would_not_run_says_why() {
        let green = PLAYBOOK.replace("max_tlp: amber", "max_tlp: clear");
        let (code, stdout, _) = run_fixture(&green, FIXTURE, &[]);
        assert_eq!(code, exit::OK);
        assert!(
            stdout.contains(
                "nothing would run: the incident is TLP:green, above the playbook's max_tlp clear"
            ),
            "{stdout}"
        );
        let (code, stdout, stderr) = run_fixture(&green, FIXTURE, &["--show-input"]);
        assert_eq!(code, exit::NOT_FOUND);
        assert!(stdout.is_empty());
        assert!(stderr.contains("nothing would run"), "{stderr}");
    }

    #[test]
    fn bad_input_is_refused_naming_the_file_and_field() {
        let bad = FIXTURE.replace("tlp: green", "tlp: grene");
        let (code, _, stderr) = run_fixture(PLAYBOOK, &bad, &[]);
        assert_eq!(code, exit::ERROR);
        assert!(
            stderr.contains("incident.yaml: invalid fixture"),
            "{stderr}"
        );
        assert!(
            stderr.contains("tlp: ") && stderr.contains("(line 4, column 1)"),
            "{stderr}"
        );

        let (code, _, stderr) = run_fixture(PLAYBOOK, FIXTURE, &["--event", "peer.up"]);
        assert_eq!(code, exit::ERROR);
        assert!(
            stderr.contains("event: peer.up is about a peer"),
            "{stderr}"
        );

        let broken = PLAYBOOK.replace("max_tlp: amber", "max_tlp: purple");
        let (code, _, stderr) = run_fixture(&broken, FIXTURE, &[]);
        assert_eq!(code, exit::ERROR);
        assert!(stderr.contains("record.yaml: invalid playbook"), "{stderr}");
        assert!(stderr.contains("max_tlp"), "{stderr}");
    }

    #[test]
    fn runs_show_relative_paths_and_fit_100_columns() {
        let run: cer_proto::api::RunRecord = serde_json::from_value(serde_json::json!({
            "playbook": "block-c2", "event": "incident.received",
            "incident": "0192ab3c-1f00-7000-8000-000000000001",
            "action": "exec /srv/cer/playbooks/bin/block-ip --dry-run 203.0.113.7",
            "key": "k", "started": "2026-11-28T12:00:00.123456789Z", "duration_ms": 12,
            "attempts": 1, "outcome": {"status": "ok", "exit_code": 0},
            "stdout": "dry run: would block 203.0.113.7 on the border routers of every site we run\n"
        }))
        .unwrap();
        let list = RunList { runs: vec![run] };
        let mut out = Vec::new();
        render::write_table(
            &mut out,
            &runs_table(&list, Some(Path::new("/srv/cer")), false),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.chars().count() <= 100), "{text}");
        assert!(
            text.contains("exec playbooks") && !text.contains("/srv/cer"),
            "{text}"
        );
        assert!(text.contains("2026-11-28T12:00:00Z  block-c2"), "{text}");
        let mut out = Vec::new();
        render::write_table(
            &mut out,
            &runs_table(&list, Some(Path::new("/srv/cer")), true),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("/srv/cer/playbooks/bin/block-ip"), "{text}");
    }

    #[test]
    fn runs_say_how_many_tries_a_webhook_took() {
        let run: cer_proto::api::RunRecord = serde_json::from_value(serde_json::json!({
            "playbook": "ticket", "event": "incident.filed",
            "action": "webhook http://127.0.0.1:9/x",
            "key": "k", "started": "2026-11-28T12:00:00Z", "duration_ms": 40,
            "attempts": 3, "outcome": {"status": "failed", "reason": "connection refused"}
        }))
        .unwrap();
        let list = RunList { runs: vec![run] };
        let mut out = Vec::new();
        render::write_table(&mut out, &runs_table(&list, None, true)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("after 3 tries"), "{text}");
    }
}
