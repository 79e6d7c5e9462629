//! `cerctl playbook list | check | test | runs | resume | acted | forget`;
//! `test --fixture` plans here, with no node.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use cer_playbook::plan::{self, EventKind, PlannedAction, PlannedKind};
use cer_playbook::Playbook;
use cer_proto::api::{
    ActedList, ActedQuery, Attempt, ForgetPlaybook, Forgotten, Outcome, PlaybookCheck,
    PlaybookList, PlaybookTest, ResumePlaybook, Resumed, RunList, RunQuery, RunRecord,
    TestPlaybook,
};
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
            let state = match (&p.paused, p.enabled) {
                (Some(paused), _) => format!(" (PAUSED, {} held)", paused.held),
                (None, false) => " (disabled)".to_owned(),
                (None, true) => String::new(),
            };
            table.add_row([
                render::one_line(&p.name) + &state,
                p.on.join(", "),
                p.max_tlp.to_string(),
                p.actions.to_string(),
                render::one_line(&p.file),
            ]);
        }
        render::write_table(io.stdout, &table)?;
    }
    for p in list.playbooks.iter().filter_map(|p| p.paused.as_ref()) {
        writeln!(
            io.stdout,
            "\n{} paused at {}: {}\n  resume with: cerctl playbook resume {} (or --discard the {} held events)",
            render::one_line(&p.playbook),
            render::seconds(&p.at),
            render::one_line(&p.reason),
            render::one_line(&p.playbook),
            p.held
        )?;
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
    run: bool,
) -> anyhow::Result<i32> {
    let (file, yaml) = read(file)?;
    let request = TestPlaybook {
        file,
        yaml,
        incident,
        event,
        run,
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
        None if run => {
            writeln!(
                io.stdout,
                "{} on {} ran once (recorded as a test run):",
                render::one_line(&test.playbook),
                test.event
            )?;
            for record in &test.ran {
                writeln!(
                    io.stdout,
                    "  {}\n    {} in {} ms",
                    render::one_line(&record.action),
                    render::one_line(&record.outcome.to_string()),
                    record.duration_ms
                )?;
                let output = record.stdout.lines().chain(record.stderr.lines());
                for line in output.take(5) {
                    writeln!(io.stdout, "    | {}", render::one_line(line))?;
                }
            }
        }
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
    // A test run whose actions failed says so in its exit status.
    let failed = test.ran.iter().any(|r| {
        !r.outcome.is_ok() && !matches!(r.outcome, cer_proto::api::Outcome::Skipped { .. })
    });
    Ok(if failed { exit::NOT_FOUND } else { exit::OK })
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
        acted: &[],
        acted_runs: &[],
        paused: None,
        expiry: None,
        warninglisted: None,
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
                let when = match (action.applies(true), action.applies(false)) {
                    (true, false) => "only if every action before it succeeded",
                    (false, true) => "only if an action before it did not succeed",
                    _ => "whatever happened before it",
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
            let when = match (action.applies(true), action.applies(false)) {
                (true, false) => "success",
                (false, true) => "failure",
                _ => "always",
            };
            object.insert("when".into(), when.into());
        }
    }
    value
}

pub(super) async fn runs(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    query: &RunQuery,
    verbose: bool,
) -> anyhow::Result<i32> {
    let path = format!("/v1/playbooks/runs?{}", query_string(query)?);
    let list: RunList = connect(ctx).await?.get_json(&path).await?;
    if ctx.json {
        return print_json(io, &list);
    }
    if list.runs.is_empty() {
        writeln!(io.stdout, "no playbook runs recorded")?;
        return Ok(exit::OK);
    }
    if verbose {
        write_runs_in_full(io.stdout, &list, ctx.wide)?;
        return Ok(exit::OK);
    }
    let cwd = std::env::current_dir().ok();
    let table = runs_table(&list, cwd.as_deref(), ctx.wide);
    render::write_table(io.stdout, &table)?;
    Ok(exit::OK)
}

pub(super) async fn resume(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    playbook: String,
    discard: bool,
) -> anyhow::Result<i32> {
    let request = ResumePlaybook { playbook, discard };
    let resumed: Resumed = connect(ctx)
        .await?
        .post_json("/v1/playbooks/resume", &request)
        .await?;
    if ctx.json {
        return print_json(io, &resumed);
    }
    let name = render::one_line(&resumed.playbook);
    if request.discard {
        writeln!(
            io.stdout,
            "{name} resumed; {} held events dropped",
            resumed.discarded
        )?;
    } else {
        writeln!(
            io.stdout,
            "{name} resumed; running the {} events held while it was paused",
            resumed.replaying
        )?;
    }
    Ok(exit::OK)
}

pub(super) async fn acted(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    playbook: String,
    incident: Option<Uuid>,
) -> anyhow::Result<i32> {
    let query = ActedQuery { playbook, incident };
    let path = format!("/v1/playbooks/acted?{}", query_string(&query)?);
    let list: ActedList = connect(ctx).await?.get_json(&path).await?;
    if ctx.json {
        return print_json(io, &list);
    }
    if list.acted.is_empty() {
        writeln!(io.stdout, "nothing recorded")?;
        return Ok(exit::OK);
    }
    let rows = list
        .acted
        .iter()
        .map(|(incident, a)| {
            [
                render::incident_id(incident, ctx.wide),
                (a.action + 1).to_string(),
                a.kind.to_string(),
                render::one_line(&a.value),
                render::seconds(&a.at),
            ]
        })
        .collect();
    let table = render::fitted_table(
        ["INCIDENT", "ACTION", "TYPE", "VALUE", "AT"],
        rows,
        &[3],
        render::table_width(ctx.wide),
    );
    render::write_table(io.stdout, &table)?;
    Ok(exit::OK)
}

pub(super) async fn forget(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    playbook: String,
    incident: Option<Uuid>,
) -> anyhow::Result<i32> {
    let request = ForgetPlaybook { playbook, incident };
    let forgotten: Forgotten = connect(ctx)
        .await?
        .post_json("/v1/playbooks/forget", &request)
        .await?;
    if ctx.json {
        return print_json(io, &forgotten);
    }
    writeln!(
        io.stdout,
        "{}: {} records dropped",
        render::one_line(&forgotten.playbook),
        forgotten.records
    )?;
    Ok(exit::OK)
}

/// Lines of each output stream `--verbose` shows.
const OUTPUT_LINES: usize = 10;

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
            render::one_line(&outcome_cell(run)),
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

/// The outcome with the status of each try: `ok (exit 0)`, `dry run
/// (exit 99)`, `ok (HTTP 201)`, `ok (HTTP 503 ×2, HTTP 200)`, `failed
/// (HTTP 503 ×3)`. Without a status to show (no answer, no exit), or for
/// records kept before tries were, the outcome and how many tries it
/// took: `failed (cannot connect to …) after 3 tries`.
fn outcome_cell(run: &RunRecord) -> String {
    let word = match &run.outcome {
        Outcome::Ok { .. } => "ok",
        Outcome::Failed { .. } => "failed",
        Outcome::TimedOut => "timed out",
        Outcome::DryRun => "dry run",
        Outcome::SpawnError { .. } | Outcome::Skipped { .. } => return run.outcome.to_string(),
    };
    match tries_summary(&run.tries) {
        Some(summary) => format!("{word} ({summary})"),
        None if run.attempts > 1 => format!("{} after {} tries", run.outcome, run.attempts),
        None => run.outcome.to_string(),
    }
}

/// Each try's status, repeats counted: `HTTP 503 ×2, HTTP 200`; a try
/// without one is an `error`. None when no try has a status.
fn tries_summary(tries: &[Attempt]) -> Option<String> {
    if !tries
        .iter()
        .any(|t| t.http_status.is_some() || t.exit_code.is_some())
    {
        return None;
    }
    let mut runs: Vec<(String, usize)> = Vec::new();
    for label in tries.iter().map(try_status) {
        match runs.last_mut() {
            Some((last, count)) if *last == label => *count += 1,
            _ => runs.push((label, 1)),
        }
    }
    let parts: Vec<String> = runs
        .into_iter()
        .map(|(label, count)| match count {
            1 => label,
            n => format!("{label} ×{n}"),
        })
        .collect();
    Some(parts.join(", "))
}

/// `HTTP 503`, `exit 0`, or `error`.
fn try_status(attempt: &Attempt) -> String {
    match (attempt.http_status, attempt.exit_code) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(code)) => format!("exit {code}"),
        (None, None) => "error".to_owned(),
    }
}

/// `playbook runs --verbose`: each run as a block, every try on a line
/// of its own, and the first lines of each output stream, all escaped.
fn write_runs_in_full(out: &mut dyn Write, list: &RunList, wide: bool) -> std::io::Result<()> {
    let cut = |text: &str| {
        if wide {
            render::one_line(text)
        } else {
            render::truncate(text, 200)
        }
    };
    for (i, run) in list.runs.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(
            out,
            "{}  {}  {}  {}",
            render::seconds(&run.started),
            render::one_line(&run.playbook),
            render::one_line(&run.event),
            run.incident
                .map(|i| render::incident_id(&i, true))
                .unwrap_or_else(|| "-".into()),
        )?;
        writeln!(out, "  action   {}", cut(&run.action))?;
        writeln!(out, "  key      {}", render::one_line(&run.key))?;
        let tries = match run.attempts {
            1 => String::new(),
            n => format!(", {n} tries"),
        };
        writeln!(
            out,
            "  outcome  {}{tries}, {} ms",
            cut(&outcome_cell(run)),
            run.duration_ms
        )?;
        for attempt in &run.tries {
            let mut status = match (attempt.http_status, attempt.exit_code) {
                (None, None) => String::new(),
                _ => try_status(attempt),
            };
            if let Some(error) = &attempt.error {
                if !status.is_empty() {
                    status.push_str(": ");
                }
                status.push_str(error);
            }
            writeln!(
                out,
                "  try {:<4} {}  {} ms  {}",
                attempt.attempt,
                render::seconds(&attempt.started),
                attempt.duration_ms,
                cut(&status),
            )?;
        }
        for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            let (lines, more) = render::first_lines(text, OUTPUT_LINES);
            for (j, line) in lines.iter().enumerate() {
                let label = if j == 0 { name } else { "" };
                writeln!(out, "  {label:<8} {}", cut(line))?;
            }
            if more > 0 {
                writeln!(
                    out,
                    "  {:<8} … {more} more line{} (--json has them all)",
                    "",
                    if more == 1 { "" } else { "s" }
                )?;
            }
        }
    }
    Ok(())
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
            acted: &[],
            acted_runs: &[],
            paused: None,
            expiry: None,
            warninglisted: None,
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
        assert_eq!(report["would_run"][3]["when"], "success");
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

    fn webhook_run(outcome: serde_json::Value, tries: &[serde_json::Value]) -> RunRecord {
        serde_json::from_value(serde_json::json!({
            "playbook": "ticket", "event": "incident.filed",
            "incident": "0192ab3c-1f00-7000-8000-000000000001",
            "action": "webhook https://tickets.example/api",
            "key": "ticket:incident.filed:0192ab3c-1f00-7000-8000-000000000001:v1:0",
            "started": "2026-11-28T12:00:00Z", "duration_ms": 2310,
            "attempts": tries.len(), "outcome": outcome, "tries": tries,
        }))
        .unwrap()
    }

    fn attempt(
        n: u32,
        status: Option<u16>,
        exit: Option<i32>,
        error: Option<&str>,
    ) -> serde_json::Value {
        let mut value = serde_json::json!({
            "attempt": n, "started": format!("2026-11-28T12:00:0{n}Z"), "duration_ms": 40 + n,
        });
        if let Some(status) = status {
            value["http_status"] = status.into();
        }
        if let Some(code) = exit {
            value["exit_code"] = code.into();
        }
        if let Some(error) = error {
            value["error"] = error.into();
        }
        value
    }

    #[test]
    fn the_outcome_shows_the_status_of_every_try() {
        let ok_200 = serde_json::json!({"status": "ok", "http_status": 200});
        let failed_503 =
            serde_json::json!({"status": "failed", "http_status": 503, "reason": "HTTP 503"});
        let refused = serde_json::json!({"status": "failed", "reason": "cannot connect to 127.0.0.1:9: refused"});
        let cases = [
            (
                webhook_run(
                    ok_200.clone(),
                    &[
                        attempt(1, Some(503), None, None),
                        attempt(2, Some(503), None, None),
                        attempt(3, Some(200), None, None),
                    ],
                ),
                "ok (HTTP 503 ×2, HTTP 200)",
            ),
            (
                webhook_run(
                    serde_json::json!({"status": "ok", "http_status": 201}),
                    &[attempt(1, Some(201), None, None)],
                ),
                "ok (HTTP 201)",
            ),
            (
                webhook_run(
                    failed_503,
                    &[
                        attempt(1, Some(503), None, None),
                        attempt(2, Some(503), None, None),
                        attempt(3, Some(503), None, None),
                    ],
                ),
                "failed (HTTP 503 ×3)",
            ),
            (
                webhook_run(
                    serde_json::json!({"status": "timed_out"}),
                    &[
                        attempt(1, Some(502), None, None),
                        attempt(2, None, None, Some("no answer within 5s")),
                    ],
                ),
                "timed out (HTTP 502, error)",
            ),
            (
                webhook_run(
                    refused.clone(),
                    &[
                        attempt(1, None, None, Some("cannot connect")),
                        attempt(2, None, None, Some("cannot connect")),
                    ],
                ),
                "failed (cannot connect to 127.0.0.1:9: refused) after 2 tries",
            ),
            (
                webhook_run(refused, &[]),
                "failed (cannot connect to 127.0.0.1:9: refused)",
            ),
            (
                webhook_run(
                    serde_json::json!({"status": "ok", "exit_code": 0}),
                    &[attempt(1, None, Some(0), None)],
                ),
                "ok (exit 0)",
            ),
            (
                webhook_run(
                    serde_json::json!({"status": "dry_run"}),
                    &[attempt(1, None, Some(99), None)],
                ),
                "dry run (exit 99)",
            ),
            (
                webhook_run(
                    serde_json::json!({"status": "failed", "exit_code": 3, "reason": "exit status 3"}),
                    &[attempt(1, None, Some(3), Some("exit status 3"))],
                ),
                "failed (exit 3)",
            ),
            (
                webhook_run(
                    serde_json::json!({"status": "skipped", "reason": "an earlier action failed"}),
                    &[],
                ),
                "skipped: an earlier action failed",
            ),
        ];
        for (run, want) in cases {
            assert_eq!(outcome_cell(&run), want);
        }
    }

    #[test]
    fn verbose_shows_every_try_and_the_first_lines_escaped() {
        let mut run = webhook_run(
            serde_json::json!({"status": "ok", "http_status": 200}),
            &[
                attempt(1, Some(503), None, None),
                attempt(2, None, None, Some("no answer within 5s")),
                attempt(3, Some(200), None, None),
            ],
        );
        run.stdout =
            (1..=12).map(|i| format!("line {i}\n")).collect::<String>() + "\u{1b}[31mred\n";
        run.stderr = "try 1: HTTP 503\ntry 2: no answer within 5s".into();
        let mut out = Vec::new();
        write_runs_in_full(
            &mut out,
            &RunList {
                runs: vec![run.clone(), run],
            },
            false,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let first: Vec<&str> = text.split("\n\n").next().unwrap().lines().collect();
        assert_eq!(
            first,
            [
                "2026-11-28T12:00:00Z  ticket  incident.filed  0192ab3c-1f00-7000-8000-000000000001",
                "  action   webhook https://tickets.example/api",
                "  key      ticket:incident.filed:0192ab3c-1f00-7000-8000-000000000001:v1:0",
                "  outcome  ok (HTTP 503, error, HTTP 200), 3 tries, 2310 ms",
                "  try 1    2026-11-28T12:00:01Z  41 ms  HTTP 503",
                "  try 2    2026-11-28T12:00:02Z  42 ms  no answer within 5s",
                "  try 3    2026-11-28T12:00:03Z  43 ms  HTTP 200",
                "  stdout   line 1",
                "           line 2",
                "           line 3",
                "           line 4",
                "           line 5",
                "           line 6",
                "           line 7",
                "           line 8",
                "           line 9",
                "           line 10",
                "           … 3 more lines (--json has them all)",
                "  stderr   try 1: HTTP 503",
                "           try 2: no answer within 5s",
            ]
        );
        assert_eq!(text.matches("  action   ").count(), 2, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn verbose_escapes_what_came_from_outside() {
        let mut run = webhook_run(
            serde_json::json!({"status": "failed", "http_status": 500, "reason": "HTTP 500"}),
            &[attempt(1, Some(500), None, None)],
        );
        run.stdout = "\u{1b}]0;pwned\u{7}\u{202e}txt.exe\n".into();
        let mut out = Vec::new();
        write_runs_in_full(&mut out, &RunList { runs: vec![run] }, true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            !text
                .chars()
                .any(|c| c == '\u{1b}' || c == '\u{7}' || c == '\u{202e}'),
            "{text:?}"
        );
        assert!(text.contains("\\u{1b}]0;pwned"), "{text}");
    }
}
