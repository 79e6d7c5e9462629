//! What each command does: build the request (checking every input before
//! connecting), call the daemon, and print the answer as a table or, with
//! `--json`, as the API's own JSON.
//!
//! Commands return the exit code for outcomes that are not errors (a
//! search with no match); failures are errors, mapped to codes in lib.rs.

mod backup;
mod export;
mod incident;
mod interop;
mod ioc;
mod node;
mod playbook;
mod taxii;

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::cli::{CertsCommand, Cli, Command, IncidentCommand, IocCommand, PlaybookCommand};
use crate::client::Client;
use crate::{exit, resolve};

/// The standard streams a command reads and writes.
pub(crate) struct Io<'a> {
    pub stdin: &'a mut (dyn Read + Send),
    pub stdout: &'a mut (dyn Write + Send),
    pub stderr: &'a mut (dyn Write + Send),
}

struct Ctx<'c> {
    socket: &'c Path,
    timeout: std::time::Duration,
    json: bool,
    /// Full values in tables (`--wide`).
    wide: bool,
}

pub(crate) async fn execute(cli: Cli, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let ctx = Ctx {
        socket: &cli.socket,
        timeout: cli.timeout,
        json: cli.json,
        wide: cli.wide,
    };
    match cli.command {
        Command::Status => node::status(&ctx, io).await,
        Command::Health => node::health(&ctx, io).await,
        Command::Incident(IncidentCommand::File(args)) => incident::file(&ctx, io, args).await,
        Command::Incident(IncidentCommand::List(args)) => incident::list(&ctx, io, args).await,
        Command::Incident(IncidentCommand::Show(args)) => incident::show(&ctx, io, args).await,
        Command::Incident(IncidentCommand::Update(args)) => incident::update(&ctx, io, args).await,
        Command::Incident(IncidentCommand::Retract(args)) => {
            incident::retract(&ctx, io, args).await
        }
        Command::Incident(IncidentCommand::Ack(args)) => incident::ack(&ctx, io, args).await,
        Command::Ioc(IocCommand::Search(args)) => ioc::search(&ctx, io, args).await,
        Command::Ioc(IocCommand::Sight(args)) => ioc::sight(&ctx, io, args).await,
        Command::Ioc(IocCommand::Import(args)) => interop::import(&ctx, io, args).await,
        Command::Backup(args) => backup::backup(&ctx, io, args).await,
        Command::Export(args) if args.format == crate::cli::ExportFormat::Envelopes => {
            export::export(&ctx, io, args).await
        }
        Command::Export(args) => interop::export(&ctx, io, args).await,
        Command::Import(args) => interop::import(&ctx, io, args).await,
        Command::Peers => node::peers(&ctx, io).await,
        Command::Certs(CertsCommand::List) => node::certs(&ctx, io).await,
        Command::Playbook(PlaybookCommand::List) => playbook::list(&ctx, io).await,
        Command::Playbook(PlaybookCommand::Check { file }) => {
            playbook::check(&ctx, io, &file).await
        }
        Command::Playbook(PlaybookCommand::Test {
            file,
            incident,
            fixture,
            event,
            run,
            show_input,
        }) => match (fixture, incident) {
            (Some(fixture), _) => {
                playbook::test_fixture(&ctx, io, &file, &fixture, event, show_input)
            }
            (None, Some(incident)) => playbook::test(&ctx, io, &file, incident, event, run).await,
            // clap requires one of them.
            (None, None) => Err(anyhow::anyhow!("give --incident ID or --fixture FILE")),
        },
        Command::Playbook(PlaybookCommand::Runs {
            incident,
            playbook,
            limit,
            verbose,
        }) => {
            let query = cer_proto::api::RunQuery {
                incident,
                playbook,
                limit,
            };
            playbook::runs(&ctx, io, &query, verbose).await
        }
        Command::Playbook(PlaybookCommand::Resume { name, discard }) => {
            playbook::resume(&ctx, io, name, discard).await
        }
        Command::Playbook(PlaybookCommand::Acted { name, incident }) => {
            playbook::acted(&ctx, io, name, incident).await
        }
        Command::Playbook(PlaybookCommand::Forget { name, incident }) => {
            playbook::forget(&ctx, io, name, incident).await
        }
        Command::Taxii(crate::cli::TaxiiCommand::Clients(command)) => {
            taxii::clients(&ctx, io, command).await
        }
        Command::Certs(CertsCommand::Add { file }) => node::add_cert(&ctx, io, &file).await,
        Command::Certs(CertsCommand::Remove { cert }) => node::remove_cert(&ctx, io, &cert).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "cerctl", io.stdout);
            Ok(exit::OK)
        }
        Command::Man => {
            let command = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(command).render(io.stdout)?;
            Ok(exit::OK)
        }
    }
}

/// The full id of the incident that `given` names (checked by
/// [`resolve::id_arg`] before connecting): itself when it is a full id,
/// otherwise the one incident whose id starts with it, looked up in the
/// incident list (retracted ones included).
async fn incident_id(
    client: &mut Client,
    given: &str,
    id: resolve::IdArg,
) -> anyhow::Result<uuid::Uuid> {
    let prefix = match id {
        resolve::IdArg::Full(id) => return Ok(id),
        resolve::IdArg::Prefix(prefix) => prefix,
    };
    let query = cer_proto::api::IncidentQuery {
        include_retracted: true,
        limit: Some(cer_proto::api::MAX_LIST_LIMIT),
        ..Default::default()
    };
    let list = client.list_incidents(&query).await?;
    Ok(resolve::incident(given, &prefix, &list)?)
}

async fn connect(ctx: &Ctx<'_>) -> anyhow::Result<Client> {
    Ok(Client::connect_with_timeout(ctx.socket, ctx.timeout).await?)
}

fn print_json<T: Serialize + ?Sized>(io: &mut Io<'_>, value: &T) -> anyhow::Result<i32> {
    let mut text =
        serde_json::to_string_pretty(value).context("cannot encode the answer as JSON")?;
    text.push('\n');
    io.stdout
        .write_all(crate::render::terminal_json(&text).as_bytes())?;
    Ok(exit::OK)
}

/// `key:   value` lines with the values aligned.
fn write_fields(out: &mut dyn Write, rows: &[(&str, String)]) -> std::io::Result<()> {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    for (key, value) in rows {
        writeln!(out, "{:<width$} {value}", format!("{key}:"), width = width)?;
    }
    Ok(())
}
