//! The `cerd` command line: flags, logging set-up, and the subcommands
//! `run` (the default), `init` and `check`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::daemon::{self, Daemon, IDENTITY_FILE};
use crate::sign::{Identity, TrustStore};

#[derive(Debug, Parser)]
#[command(
    name = "cerd",
    version,
    about = "Incident-response coordination daemon for national CERTs"
)]
struct Cli {
    /// Configuration file (TOML). Without it, embedded defaults apply:
    /// data in ./cerd-data, QUIC on 127.0.0.1:7443, ./certs, ./playbooks.
    #[arg(long, short, global = true, env = "CERD_CONFIG")]
    config: Option<PathBuf>,

    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node (the default).
    Run,
    /// Create the node's OpenPGP identity in its data dir.
    Init {
        /// The CERT's name, shown to peers and used as the key's User ID.
        #[arg(long)]
        name: String,
    },
    /// Validate the configuration, identity and trust store; print every
    /// problem found.
    Check,
    /// Run three federating CERT nodes on this machine and narrate what
    /// they do (under a minute).
    Demo {
        /// Keep the nodes' folders here (must be new or empty) instead of
        /// a temporary folder that is removed afterwards.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// Runs the command line; the binary's `main` is only this.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo narrates on stdout; its three nodes' logs would drown it.
    let quiet = matches!(cli.command, Some(Command::Demo { .. }));
    init_tracing(
        cli.log_format,
        if quiet { "warn" } else { "info,sled=warn" },
    );
    let result = match &cli.command {
        None | Some(Command::Run) => run(&cli),
        Some(Command::Init { name }) => init(&cli, name),
        Some(Command::Check) => check(&cli),
        Some(Command::Demo { dir }) => demo(dir.clone()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cerd: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing(format: LogFormat, default_filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CERD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    match &cli.config {
        Some(path) => Config::load(path).map_err(config_errors),
        None => Ok(Config::defaults(Path::new("."))),
    }
}

fn config_errors(errors: Vec<ConfigError>) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    anyhow::anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    let config = load_config(cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let daemon = Daemon::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("shutting down");
        daemon.shutdown().await
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn demo(dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::demo::run(dir))?;
    Ok(ExitCode::SUCCESS)
}

fn init(cli: &Cli, name: &str) -> anyhow::Result<ExitCode> {
    let config = load_config(cli)?;
    let identity = daemon::init(&config, name)?;
    let cert = daemon::public_cert_path(&config.data_dir, identity.name());
    println!(
        "initialised {} in {}",
        identity.name(),
        config.data_dir.display()
    );
    println!("fingerprint {}", identity.fingerprint());
    println!(
        "public certificate {} (share it with peer CERTs)",
        cert.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn check(cli: &Cli) -> anyhow::Result<ExitCode> {
    let mut problems: Vec<String> = Vec::new();
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => {
                println!("ok    configuration {}", path.display());
                Some(c)
            }
            Err(errors) => {
                problems.extend(errors.iter().map(|e| e.to_string()));
                None
            }
        },
        None => {
            println!("ok    configuration (embedded defaults)");
            Some(Config::defaults(Path::new(".")))
        }
    };
    if let Some(config) = &config {
        let key = config.data_dir.join(IDENTITY_FILE);
        if key.exists() {
            match Identity::load(&key) {
                Ok(id) => println!("ok    identity {} ({})", id.name(), id.fingerprint()),
                Err(e) => problems.push(format!("{}: {e}", key.display())),
            }
        } else {
            println!(
                "note  no identity yet in {}: it is created on first start",
                config.data_dir.display()
            );
        }
        if config.certs_dir.is_dir() {
            let (trust, refused) = TrustStore::load_dir(&config.certs_dir);
            println!(
                "ok    trust store {}: {} certificate(s)",
                config.certs_dir.display(),
                trust.len()
            );
            for cert in trust.iter() {
                println!("        {} {}", cert.fingerprint(), cert.name());
            }
            for (path, error) in refused {
                problems.push(format!("{}: {error}", path.display()));
            }
        } else {
            println!(
                "note  trust store {} does not exist: only this node is trusted",
                config.certs_dir.display()
            );
        }

        if config.playbooks_dir.is_dir() {
            let (playbooks, errors) = crate::playbook::load_dir(&config.playbooks_dir);
            println!(
                "ok    playbooks {}: {} valid",
                config.playbooks_dir.display(),
                playbooks.len()
            );
            for playbook in &playbooks {
                println!("        {} ({})", playbook.name, playbook.file.display());
            }
            problems.extend(errors.iter().map(|e| e.to_string()));
        } else {
            println!(
                "note  playbooks folder {} does not exist: no automation",
                config.playbooks_dir.display()
            );
        }
    }
    if problems.is_empty() {
        println!("all checks passed");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            println!("error {p}");
        }
        println!("{} problem(s) found", problems.len());
        Ok(ExitCode::from(1))
    }
}
