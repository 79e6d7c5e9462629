//! `cerctl playbook list | check | test | runs | resume | acted | forget`.

use std::path::Path;

use anyhow::Context as _;
use cer_proto::api::{
    ActedList, ActedQuery, ForgetPlaybook, Forgotten, PlaybookCheck, PlaybookList, PlaybookTest,
    ResumePlaybook, Resumed, RunList, RunQuery, TestPlaybook,
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
