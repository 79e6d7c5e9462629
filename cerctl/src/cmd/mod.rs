//! What each command does: build the request (checking every input before
//! connecting), call the daemon, and print the answer as a table or, with
//! `--json`, as the API's own JSON.
//!
//! Commands return the exit code for outcomes that are not errors (a
//! search with no match); failures are errors, mapped to codes in lib.rs.


mod export;
mod incident;
mod ioc;
mod node;

USES

/// The standard streams a command reads and writes.
pub(crate) struct Io<'a> {
    pub stdin: &'a mut (dyn Read + Send),
    pub stdout: &'a mut (dyn Write + Send),
    pub stderr: &'a mut (dyn Write + Send),
}

struct Ctx<'c> {
    socket: &'c Path,
    json: bool,
}

pub(crate) async fn execute(cli: Cli, io: &mut Io<'_>) -> anyhow::Result<i32> {
    let ctx = Ctx {
        socket: &cli.socket,
        json: cli.json,
    };
    match cli.command {
        Command::Status => status(&ctx, io).await,
        Command::Incident(IncidentCommand::File(args)) => file(&ctx, io, args).await,
        Command::Incident(IncidentCommand::List(args)) => list(&ctx, io, args).await,
        Command::Incident(IncidentCommand::Show(args)) => show(&ctx, io, args).await,
        Command::Incident(IncidentCommand::Update(args)) => update(&ctx, io, args).await,
        Command::Incident(IncidentCommand::Retract(args)) => retract(&ctx, io, args).await,
        Command::Ioc(IocCommand::Search(args)) => search(&ctx, io, args).await,
        Command::Export(args) => export(&ctx, io, args).await,
        Command::Peers => peers(&ctx, io).await,
        Command::Certs(CertsCommand::List) => certs(&ctx, io).await,
    }
}

async fn connect(ctx: &Ctx<'_>) -> anyhow::Result<Client> {
    Ok(Client::connect(ctx.socket).await?)
}

fn print_json<T: Serialize + ?Sized>(io: &mut Io<'_>, value: &T) -> anyhow::Result<i32> {
    let mut text =
        serde_json::to_string_pretty(value).context("cannot encode the answer as JSON")?;
    text.push('\n');
    io.stdout.write_all(text.as_bytes())?;
    Ok(exit::OK)
}

fn print_fields(io: &mut Io<'_>, rows: &[(&str, String)]) -> std::io::Result<()> {
    write_fields(io.stdout, rows)
}

/// `key:   value` lines with the values aligned.
fn write_fields(out: &mut dyn Write, rows: &[(&str, String)]) -> std::io::Result<()> {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0) + 1;
    for (key, value) in rows {
        writeln!(out, "{:<width$} {value}", format!("{key}:"), width = width)?;
    }
    Ok(())
}

fn short_id(id: &EnvelopeId) -> String {
    id.to_hex()[..16].to_owned()
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    match n {
        n if n < KIB => format!("{n} B"),
        n if n < KIB * KIB => format!("{:.1} KiB", n as f64 / KIB as f64),
        n if n < KIB * KIB * KIB => format!("{:.1} MiB", n as f64 / (KIB * KIB) as f64),
        n => format!("{:.1} GiB", n as f64 / (KIB * KIB * KIB) as f64),
    }
}
