//! The `cerd` command line: flags, logging set-up, and the subcommands
//! `run` (the default), `init` and `check`.
//!
//! Output follows cerctl's model: what `init` and `check` print goes
//! through a writer, so a reader that goes away (`cerd check | head -1`)
//! ends the command with exit 0 instead of a panic; errors print as
//! `cerd: {err:#}`. Everything printed that came from files or
//! certificates (User IDs, file names, error text quoting them) is escaped
//! by [`cer_proto::text::escape`] first.

use std::io::{self, Write};
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
enum KeyCommand {
    /// Move to a new signing key, with the node stopped: stores a key
    /// transition signed by the old key and the new, which peers verify
    /// and adopt; the node's identity (fingerprint) stays.
    Rotate,
    /// Write a revocation certificate of the node's first key, dated now
    /// (mode 0600). Added to a node's trust store (`cerctl certs add`),
    /// it refuses that key's signatures from now on. Before a rotation
    /// that cuts the node off; after one, only the old key is cut off.
    Revoke {
        /// Where to write it.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node (the default).
    Run,
    /// Create the node's OpenPGP identity in its data dir.
    Init {
        /// The CERT's name, shown to peers and used as the key's User ID
        /// (default: `name` in the configuration file).
        #[arg(long)]
        name: Option<String>,
        /// Create the identity even though the data dir holds a store (its
        /// key was lost): the node gets a new fingerprint that peers must
        /// trust anew.
        #[arg(long)]
        force: bool,
        /// Protect the secret key with the passphrase in this file (its
        /// first line). cerd then needs the passphrase at every start:
        /// `passphrase_file` in cerd.toml, the environment variable
        /// CERD_PASSPHRASE, or the systemd credential cerd-passphrase.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<std::path::PathBuf>,
    },
    /// The node's key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Validate the configuration, identity, trust store and playbooks;
    /// print every problem found.
    Check {
        /// Also check the store (the node must be stopped): every chain,
        /// signature and tombstone proof, and every incident and index
        /// entry against the envelopes.
        #[arg(long)]
        store: bool,
    },
    /// Rebuild the store from its envelopes (the node must be stopped):
    /// keeps each author's chain up to its first unreadable or badly signed
    /// envelope (peers send the rest again), rebuilds incidents and
    /// indexes, and keeps the old folder beside it.
    Repair,
    /// Rebuild a node from a backup (`cerctl backup`) into a data dir that
    /// holds no store: checks the whole file, verifies every envelope's
    /// signature and chain against the certificates the backup holds, and
    /// writes those into the certs folder (never over an existing file).
    Restore {
        /// The backup file.
        file: PathBuf,
        /// The data dir to restore into (default: the configuration's).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Print a shell completion script, e.g.
    /// `cerd completions bash > /etc/bash_completion.d/cerd`.
    Completions {
        /// The shell to complete in.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print cerd's man page (roff), e.g. `cerd man | man -l -`.
    Man,
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
    ExitCode::from(main_with(
        std::env::args_os(),
        &mut io::stdout(),
        &mut io::stderr(),
    ))
}

/// Parses `args` (argv[0] first), runs the command and returns the exit
/// status: 0 success (also when stdout was closed early, e.g. by `head`),
/// 1 a failure or a problem found by `check`, 2 a usage error. Help and
/// version go to `stdout`, usage errors and failures to `stderr`.
pub fn main_with<I, T>(args: I, stdout: &mut dyn Write, stderr: &mut dyn Write) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            // Nothing useful to do if the terminal is gone.
            return if e.use_stderr() {
                let _ = stderr.write_all(text.as_bytes());
                2
            } else {
                let _ = stdout.write_all(text.as_bytes());
                0
            };
        }
    };
    // The demo narrates on stdout; its three nodes' logs would drown it.
    // A test stand-in for a machine whose clock is wrong (see `audit`).
    let skewed = match crate::audit::set_offset_from_env() {
        Ok(skewed) => skewed,
        Err(e) => {
            let _ = writeln!(stderr, "cerd: {}", cer_proto::text::escape(&e));
            return 2;
        }
    };
    let quiet = matches!(cli.command, Some(Command::Demo { .. }));
    init_tracing(
        cli.log_format,
        if quiet { "warn" } else { "info,sled=warn" },
    );
    if let Some(offset) = skewed {
        tracing::warn!(target: crate::audit::AUDIT, event = "clock_offset", %offset, "this node's clock is offset by {offset} ({} is set: for testing only)", crate::audit::CLOCK_OFFSET_VAR);
    }
    let result = match &cli.command {
        None | Some(Command::Run) => run(&cli),
        Some(Command::Init {
            name,
            force,
            passphrase_file,
        }) => init(
            &cli,
            name.as_deref(),
            *force,
            passphrase_file.as_deref(),
            stdout,
        ),
        Some(Command::Check { store }) => check(&cli, *store, stdout),
        Some(Command::Repair) => repair(&cli, stdout),
        Some(Command::Restore { file, data_dir }) => {
            restore(&cli, file, data_dir.as_deref(), stdout)
        }
        Some(Command::Key {
            command: KeyCommand::Rotate,
        }) => rotate(&cli, stdout),
        Some(Command::Key {
            command: KeyCommand::Revoke { out },
        }) => revoke(&cli, out, stdout),
        Some(Command::Completions { shell }) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "cerd", stdout);
            Ok(0)
        }
        Some(Command::Man) => clap_mangen::Man::new(<Cli as clap::CommandFactory>::command())
            .render(stdout)
            .map(|()| 0)
            .context("writing the man page"),
        Some(Command::Demo { .. }) if cli.config.is_some() => Err(anyhow::anyhow!(
            "cerd demo runs its own three nodes in a scratch folder and takes no configuration; \
             drop --config (or unset CERD_CONFIG), or use --dir to keep the demo's folders"
        )),
        Some(Command::Demo { dir }) => demo(dir.clone()),
    };
    let result = result.and_then(|code| {
        stdout.flush().context("writing to standard output")?;
        Ok(code)
    });
    match result {
        Ok(code) => code,
        // A reader that went away (`cerd check | head -1`) is not an error.
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            let text = format!("cerd: {e:#}");
            for line in text.lines() {
                // Nothing useful to do if stderr is gone too.
                let _ = writeln!(stderr, "{}", cer_proto::text::escape(line));
            }
            1
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Writes one line of output with anything from outside escaped. The
/// fixed text around it has no control characters, so escaping the whole
/// line changes only what came from files and certificates.
fn say(out: &mut dyn Write, line: &str) -> io::Result<()> {
    writeln!(out, "{}", cer_proto::text::escape(line))
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
    // Only the first call in a process installs it (tests call main_with
    // more than once).
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
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

fn run(cli: &Cli) -> anyhow::Result<u8> {
    let config = load_config(cli)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        // Installed before the node starts: a SIGHUP that comes early is
        // a reload, not the end of the process.
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let mut hup = signal(SignalKind::hangup()).context("installing SIGHUP handler")?;
        let daemon = Daemon::start(config).await?;
        crate::service::ready(&serving_line(&daemon));
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading");
                    crate::service::reloading();
                    daemon.reload().await;
                    crate::service::ready(&serving_line(&daemon));
                }
            }
        }
        tracing::info!("shutting down");
        crate::service::stopping();
        daemon.shutdown().await
    })?;
    Ok(0)
}

/// The status line the service manager shows while the node serves.
fn serving_line(daemon: &Daemon) -> String {
    let node = daemon.node();
    format!(
        "serving as {} on {}; {} peer(s) connected",
        node.identity().name(),
        node.listen()
            .map_or_else(|| "-".to_owned(), |a| a.to_string()),
        node.peer_board().connected()
    )
}

fn demo(dir: Option<PathBuf>) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(crate::demo::run(dir))?;
    Ok(0)
}

fn init(
    cli: &Cli,
    name: Option<&str>,
    force: bool,
    passphrase_file: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let config = load_config(cli)?;
    let Some(name) = name.or(config.name.as_deref()) else {
        anyhow::bail!(
            "no name for the new identity: give --name NAME, or set name in the configuration file"
        );
    };
    let passphrase = passphrase_file
        .map(crate::key::read_passphrase_file)
        .transpose()?;
    let identity = daemon::init(&config, name, force, passphrase.as_ref())?;
    let cert = daemon::public_cert_path(&config.data_dir, identity.name());
    say(
        out,
        &format!(
            "initialised {} in {}",
            identity.name(),
            config.data_dir.display()
        ),
    )?;
    say(out, &format!("fingerprint {}", identity.fingerprint()))?;
    say(
        out,
        &format!(
            "public certificate {} (share it with peer CERTs)",
            cert.display()
        ),
    )?;
    let revocation = crate::key::revocation_path(&config.data_dir, identity.name());
    say(
        out,
        &format!(
            "revocation certificate {}: copy it to offline storage (a USB stick in a safe, or paper) and delete it here; \
             if the key is ever stolen or lost, drop it into every peer's certs/ (or `cerctl certs add` it) \
             and they refuse everything this key signs from the moment it was made",
            revocation.display()
        ),
    )?;
    if passphrase.is_some() {
        say(
            out,
            "the secret key is protected by the passphrase: give it at every start with passphrase_file in cerd.toml, \
             the environment variable CERD_PASSPHRASE, or the systemd credential cerd-passphrase",
        )?;
    }
    Ok(0)
}

fn rotate(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<u8> {
    let config = load_config(cli)?;
    let rotated = crate::rotate::rotate(&config)?;
    say(
        out,
        &format!(
            "{} ({}) now signs with key {}",
            rotated.name, rotated.identity, rotated.new
        ),
    )?;
    say(
        out,
        &format!(
            "key transition stored at seq {}, signed by the old key {} and the new; \
             start the node: peers adopt the new key when it reaches them",
            rotated.seq, rotated.old
        ),
    )?;
    say(
        out,
        "the old key stays in identity.retired.key to read what was encrypted to it; \
         peers refuse what it signs from now on",
    )?;
    Ok(0)
}

fn revoke(cli: &Cli, file: &Path, out: &mut dyn Write) -> anyhow::Result<u8> {
    let config = load_config(cli)?;
    let identity = crate::key::load(&config)?;
    identity
        .save_first_key_revocation(file)
        .with_context(|| format!("writing {}", file.display()))?;
    say(
        out,
        &format!(
            "revocation certificate of {} ({}) written to {}, dated now: \
             `cerctl certs add` it on a node and it reaches every node",
            identity.name(),
            identity.fingerprint(),
            file.display()
        ),
    )?;
    Ok(0)
}

fn repair(cli: &Cli, out: &mut dyn Write) -> anyhow::Result<u8> {
    let config = load_config(cli)?;
    let path = crate::maintain::store_path(&config);
    say(
        out,
        &format!("rebuilding {} from its envelopes", path.display()),
    )?;
    let rebuilt = crate::maintain::repair(&config)
        .with_context(|| format!("repairing {}", path.display()))?;
    for problem in &rebuilt.report.problems {
        say(out, &format!("dropped {problem}"))?;
    }
    for note in &rebuilt.report.notes {
        say(out, &format!("note  {note}"))?;
    }
    say(
        out,
        &format!(
            "kept {} envelope(s) of {} author(s); the old store is now {}",
            rebuilt.kept_envelopes,
            rebuilt.report.authors,
            rebuilt.old.display()
        ),
    )?;
    if !rebuilt.report.problems.is_empty() {
        say(
            out,
            "what was dropped is sent again by peers when the node reconnects",
        )?;
    }
    Ok(0)
}

fn restore(
    cli: &Cli,
    file: &Path,
    data_dir: Option<&Path>,
    out: &mut dyn Write,
) -> anyhow::Result<u8> {
    let mut config = load_config(cli)?;
    if let Some(dir) = data_dir {
        config.data_dir = dir.to_owned();
    }
    let mut input = std::io::BufReader::new(
        std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?,
    );
    let restored = crate::maintain::restore(&config, &mut input)
        .with_context(|| format!("restoring {}", file.display()))?;
    let header = &restored.header;
    say(
        out,
        &format!(
            "restored {} ({}), backed up {}: {} record(s)",
            header.node, header.fingerprint, header.created, restored.records
        ),
    )?;
    for problem in &restored.rebuilt.report.problems {
        say(out, &format!("dropped {problem}"))?;
    }
    for path in &restored.certs_written {
        say(out, &format!("wrote   {}", path.display()))?;
    }
    for path in &restored.certs_kept {
        say(
            out,
            &format!("kept    {} (a file of that name was there)", path.display()),
        )?;
    }
    say(
        out,
        &format!(
            "kept {} envelope(s) of {} author(s) in {}",
            restored.rebuilt.kept_envelopes,
            restored.rebuilt.report.authors,
            crate::maintain::store_path(&config).display()
        ),
    )?;
    match &restored.secret_key {
        Some(path) => say(out, &format!("wrote   {} (the secret key)", path.display()))?,
        None => say(
            out,
            &format!(
                "the backup holds no secret key: put this node's {IDENTITY_FILE} into {} before starting it, or it starts as a new CERT",
                config.data_dir.display()
            ),
        )?,
    }
    Ok(if restored.rebuilt.report.problems.is_empty() {
        0
    } else {
        1
    })
}

fn check(cli: &Cli, with_store: bool, out: &mut dyn Write) -> anyhow::Result<u8> {
    let mut problems: Vec<String> = Vec::new();
    let config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => {
                say(out, &format!("ok    configuration {}", path.display()))?;
                Some(c)
            }
            Err(errors) => {
                problems.extend(errors.iter().map(|e| e.to_string()));
                None
            }
        },
        None => {
            say(out, "ok    configuration (embedded defaults)")?;
            Some(Config::defaults(Path::new(".")))
        }
    };
    if let Some(config) = &config {
        let key = config.data_dir.join(IDENTITY_FILE);
        if key.exists() {
            match Identity::peek(&key) {
                Ok((id, protected)) => {
                    let protected = if protected {
                        ", protected by a passphrase"
                    } else {
                        ""
                    };
                    say(
                        out,
                        &format!(
                            "ok    identity {} ({}){protected}",
                            id.name(),
                            id.fingerprint()
                        ),
                    )?;
                    // As `cerd run` does: a warning, the identity's name wins.
                    if let Some(name) = config.name.as_deref() {
                        if name.trim() != id.name() {
                            say(
                                out,
                                &format!(
                                    "warn  name \"{}\" in the configuration differs from the identity's \"{}\": cerd uses the identity's name, which peers know",
                                    name.trim(),
                                    id.name()
                                ),
                            )?;
                        }
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", key.display())),
            }
        } else {
            say(
                out,
                &format!(
                    "note  no identity yet in {}: it is created on first start",
                    config.data_dir.display()
                ),
            )?;
        }
        if config.certs_dir.is_dir() {
            let (trust, refused) = TrustStore::load_dir(&config.certs_dir);
            say(
                out,
                &format!(
                    "ok    trust store {}: {} certificate(s)",
                    config.certs_dir.display(),
                    trust.len()
                ),
            )?;
            for cert in trust.iter() {
                say(
                    out,
                    &format!("        {} {}", cert.fingerprint(), cert.name()),
                )?;
            }
            for cert in trust.iter().filter(|c| c.had_secret()) {
                say(
                    out,
                    &format!(
                        "warn  certificate {} ({}) in {} holds a secret key: only its public part is used; delete the file, and treat the key as exposed",
                        cert.fingerprint(),
                        cert.name(),
                        config.certs_dir.display()
                    ),
                )?;
            }
            for (path, error) in refused {
                problems.push(format!("{}: {error}", path.display()));
            }
        } else {
            say(
                out,
                &format!(
                    "note  trust store {} does not exist: only this node is trusted",
                    config.certs_dir.display()
                ),
            )?;
        }

        if config.playbooks_dir.is_dir() {
            let (playbooks, errors) = crate::playbook::load_dir(&config.playbooks_dir);
            say(
                out,
                &format!(
                    "ok    playbooks {}: {} valid",
                    config.playbooks_dir.display(),
                    playbooks.len()
                ),
            )?;
            for playbook in &playbooks {
                say(
                    out,
                    &format!(
                        "        {} ({}){}",
                        playbook.name,
                        playbook.file.display(),
                        if playbook.enabled {
                            ""
                        } else {
                            " disabled (enabled: false): never runs"
                        }
                    ),
                )?;
            }
            // Warnings do not count as problems: the playbooks load.
            for warning in playbooks.iter().flat_map(|p| &p.warnings) {
                say(out, &format!("warn  {warning}"))?;
            }
            problems.extend(errors.iter().map(|e| e.to_string()));
        } else {
            say(
                out,
                &format!(
                    "note  playbooks folder {} does not exist: no automation",
                    config.playbooks_dir.display()
                ),
            )?;
        }
        let (lists, errors) = crate::warninglist::Warninglists::load_dir(&config.warninglists_dir);
        say(
            out,
            &format!(
                "ok    warninglists {}: {} list(s)",
                config.warninglists_dir.display(),
                lists.len()
            ),
        )?;
        problems.extend(
            errors
                .iter()
                .map(|e| cer_proto::text::escape(&e.to_string()).into_owned()),
        );
    }
    if let (true, Some(config)) = (with_store, &config) {
        let path = crate::maintain::store_path(config);
        match crate::maintain::check(config) {
            Ok(report) => {
                say(
                    out,
                    &format!(
                        "{}store {}: {} envelope(s) ({} withdrawn) of {} author(s), {} incident(s), {} indicator(s)",
                        if report.problems.is_empty() { "ok    " } else { "" },
                        path.display(),
                        report.envelopes,
                        report.tombstones,
                        report.authors,
                        report.incidents,
                        report.indicators
                    ),
                )?;
                for note in &report.notes {
                    say(out, &format!("note  {note}"))?;
                }
                if !report.problems.is_empty() {
                    problems.extend(report.problems.iter().map(|p| format!("store: {p}")));
                    problems.push(format!(
                        "store: run `cerd repair` to rebuild {} from what verifies",
                        path.display()
                    ));
                }
            }
            Err(e) => problems.push(format!("store: {e}")),
        }
    }
    if problems.is_empty() {
        say(out, "all checks passed")?;
        Ok(0)
    } else {
        for p in &problems {
            say(out, &format!("error {p}"))?;
        }
        say(out, &format!("{} problem(s) found", problems.len()))?;
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader went away, like stdout piped into `head`.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    /// A node folder with a configuration, certs/ and playbooks/.
    fn node_dir() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["certs", "playbooks"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let config = dir.path().join("cerd.toml");
        std::fs::write(
            &config,
            "name = \"T\"\ndata_dir = \"data\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\n",
        )
        .unwrap();
        let config = config.display().to_string();
        (dir, config)
    }

    fn cerd(args: &[&str], stdout: &mut dyn Write) -> (u8, String) {
        let mut stderr = Vec::new();
        let argv = ["cerd"].iter().chain(args).copied();
        let code = main_with(argv, stdout, &mut stderr);
        (code, String::from_utf8_lossy(&stderr).into_owned())
    }

    #[test]
    fn a_closed_stdout_ends_check_with_success() {
        let (_dir, config) = node_dir();
        let (code, stderr) = cerd(&["--config", &config, "check"], &mut ClosedPipe);
        assert_eq!((code, stderr.as_str()), (0, ""));
        let (code, stderr) = cerd(&["--help"], &mut ClosedPipe);
        assert_eq!((code, stderr.as_str()), (0, ""));
    }

    #[test]
    fn check_escapes_user_ids_and_file_names() {
        let (dir, config) = node_dir();
        // OSC 52 (write the clipboard), clear the screen, and a bidi override.
        let hostile = "Evil CERT\u{1b}]52;c;Y3VybCBldmlsLmV4YW1wbGV8c2g=\u{7}\u{1b}[2J\u{202E}";
        let certs = dir.path().join("certs");
        std::fs::write(
            certs.join("peer.asc"),
            crate::sign::test_cert_with_user_id(hostile),
        )
        .unwrap();
        std::fs::write(certs.join("bad\u{1b}[2J\u{2067}.asc"), b"not a cert").unwrap();
        std::fs::write(
            dir.path().join("playbooks/bad\u{1b}]0;title\u{7}.yaml"),
            b"name: [",
        )
        .unwrap();

        let mut out = Vec::new();
        let (code, stderr) = cerd(&["--config", &config, "check"], &mut out);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 1, "{out}{stderr}");
        for c in ['\u{1b}', '\u{7}', '\u{202E}', '\u{2067}'] {
            assert!(!out.contains(c), "{c:?} reached the terminal: {out:?}");
        }
        assert!(
            out.contains(
                "Evil CERT\\u{1b}]52;c;Y3VybCBldmlsLmV4YW1wbGV8c2g=\\u{7}\\u{1b}[2J\\u{202e}"
            ),
            "{out}"
        );
        assert!(out.contains("bad\\u{1b}[2J\\u{2067}.asc"), "{out}");
        assert!(out.contains("bad\\u{1b}]0;title\\u{7}.yaml"), "{out}");
    }

    #[test]
    fn init_takes_the_name_from_the_configuration_and_check_warns_when_it_differs() {
        let (dir, config) = node_dir();
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["--config", &config, "init"], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{text}{stderr}");
        assert!(text.starts_with("initialised T in "), "{text}");

        // Renamed in the file afterwards: check says so, and still passes.
        std::fs::write(
            &config,
            "name = \"Renamed\"\ndata_dir = \"data\"\ncerts_dir = \"certs\"\nplaybooks_dir = \"playbooks\"\n",
        )
        .unwrap();
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["--config", &config, "check"], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{text}{stderr}");
        assert!(
            text.contains(
                "warn  name \"Renamed\" in the configuration differs from the identity's \"T\""
            ),
            "{text}"
        );

        // Without a name anywhere, init says where to give one.
        let bare = dir.path().join("bare.toml");
        std::fs::write(&bare, "data_dir = \"other\"\n").unwrap();
        let bare = bare.display().to_string();
        let (code, stderr) = cerd(&["--config", &bare, "init"], &mut Vec::new());
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("give --name NAME"), "{stderr}");
    }

    #[test]
    fn check_warns_about_a_secret_key_in_certs() {
        let (dir, config) = node_dir();
        std::fs::write(
            dir.path().join("certs/peer.asc"),
            crate::sign::test_secret_key("Peer CERT"),
        )
        .unwrap();
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["--config", &config, "check"], &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{text}{stderr}");
        assert!(text.contains("(Peer CERT) in "), "{text}");
        assert!(text.contains("holds a secret key"), "{text}");
    }

    #[test]
    fn check_shows_disabled_playbooks() {
        let (dir, config) = node_dir();
        std::fs::write(
            dir.path().join("playbooks/off.yaml"),
            "name: off\nenabled: false\non: [incident.filed]\nactions:\n  - tag: x\n",
        )
        .unwrap();
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["--config", &config, "check"], &mut out);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{out}{stderr}");
        assert!(
            out.contains("off.yaml) disabled (enabled: false): never runs"),
            "{out}"
        );
    }

    #[test]
    fn check_prints_playbook_warnings_without_failing() {
        let (dir, config) = node_dir();
        std::fs::write(
            dir.path().join("playbooks/block.yaml"),
            "name: block\non: [incident.received]\nactions:\n  - exec:\n      argv: [/bin/true, \"{indicator.value}\"]\n      for_each_indicator: [ipv4]\n",
        )
        .unwrap();
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["--config", &config, "check"], &mut out);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(code, 0, "{out}{stderr}");
        assert!(out.contains("warn  "), "{out}");
        assert!(
            out.contains(
                "block.yaml:5:25: actions[0].exec.argv[1]: {indicator.value} begins this argument"
            ),
            "{out}"
        );
        assert!(out.ends_with("all checks passed\n"), "{out}");
    }

    #[test]
    fn demo_refuses_a_configuration_instead_of_ignoring_it() {
        let (_dir, config) = node_dir();
        let (code, stderr) = cerd(&["--config", &config, "demo"], &mut Vec::new());
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains("takes no configuration"), "{stderr}");
    }

    #[test]
    fn completions_and_man_page_come_from_the_command_line_definition() {
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["completions", "bash"], &mut out);
        assert_eq!(code, 0, "{stderr}");
        let script = String::from_utf8(out).unwrap();
        assert!(
            script.contains("repair") && script.contains("--config"),
            "{script}"
        );
        let mut out = Vec::new();
        let (code, stderr) = cerd(&["man"], &mut out);
        assert_eq!(code, 0, "{stderr}");
        let page = String::from_utf8(out).unwrap();
        assert!(
            page.starts_with(".ie") || page.contains(".TH cerd"),
            "{page}"
        );
    }
}
