//! `cerctl playbook list | check | test | runs | resume | acted | forget`.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use cer_proto::api::{
    ActedList, ActedQuery, Attempt, ForgetPlaybook, Forgotten, Outcome, PlaybookCheck,
    PlaybookList, PlaybookTest, ResumePlaybook, Resumed, RunList, RunQuery, RunRecord,
    TestPlaybook,
};
use uuid::Uuid;

use super::{connect, print_json, Ctx, Io};
use crate::client::query_string;
use crate::exit;
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
