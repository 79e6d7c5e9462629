//! `cerctl ioc search`: who reported an indicator, and when.

use std::io::Write;

use cer_proto::api::{IocQuery, IocSearch};

use super::{connect, print_json, Ctx, Io};
use crate::cli::SearchArgs;
use crate::exit;
use crate::render::{self, one_line, or_dash, seconds, truncate};

pub(super) async fn search(
    ctx: &Ctx<'_>,
    io: &mut Io<'_>,
    args: SearchArgs,
) -> anyhow::Result<i32> {
    let query = IocQuery {
        value: args.value,
        kind: args.kind,
    };
    let found = connect(ctx).await?.search_ioc(&query).await?;
    // Like grep: no match is exit 1, with or without --json.
    let code = if found.matches.is_empty() {
        exit::NOT_FOUND
    } else {
        exit::OK
    };
    if ctx.json {
        print_json(io, &found)?;
    } else {
        write_search(io.stdout, &query.value, &found)?;
    }
    Ok(code)
}

fn write_search(out: &mut dyn Write, value: &str, found: &IocSearch) -> std::io::Result<()> {
    if found.matches.is_empty() {
        let searched: Vec<String> = found
            .searched
            .iter()
            .map(|s| format!("{}:{}", s.kind, s.value))
            .collect();
        return match searched.as_slice() {
            [] => writeln!(out, "no incident names {}", one_line(value)),
            _ => writeln!(
                out,
                "no incident names {} (searched {})",
                one_line(value),
                searched.join(", ")
            ),
        };
    }
    let mut table = render::table([
        "TYPE",
        "VALUE",
        "INCIDENT",
        "TITLE",
        "SEVERITY",
        "TLP",
        "REPORTED BY",
        "FIRST SEEN",
        "LAST SEEN",
        "SIGHTINGS",
    ]);
    for found in &found.matches {
        let reporters: Vec<String> = found
            .reported_by
            .iter()
            .map(|r| match &r.name {
                Some(name) => one_line(name),
                None => r.fingerprint.short().to_owned(),
            })
            .collect();
        table.add_row([
            found.kind.to_string(),
            one_line(&found.value),
            found.incident.to_string(),
            truncate(&found.title, 32),
            or_dash(found.severity),
            found.tlp.to_string(),
            reporters.join(", "),
            seconds(&found.first_seen),
            seconds(&found.last_seen),
            found.sightings.to_string(),
        ]);
    }
    render::write_table(out, &table)
}
