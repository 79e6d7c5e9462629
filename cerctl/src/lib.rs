//! `cerctl`, the CERT analyst's command line for the `cerd` daemon.
//!
//! The crate owns the command line (parsing, output, exit codes) and a
//! small HTTP client for cerd's local API. It speaks only the vocabulary of
//! `cer-proto` and never links the daemon (`cerd`), so it can be built and
//! shipped alone.
//!
//! Entry points: [`run`] (async, for callers that already have a tokio
//! runtime, such as integration tests) and [`main_with`] (sync, what the
//! binary calls). Both take the arguments, including argv[0], and the
//! three standard streams, and return the process exit code:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success (also: stdout was closed early, e.g. by `head`) |
//! | 1 | not found, or refused by the daemon (HTTP 403, 404, 409, 413, 422); `ioc search` with no match |
//! | 2 | usage error, input refused before sending, daemon not reachable, or any other error |
//!
//! Errors are printed to stderr as `cerctl: {err:#}`; when the problem is
//! a set of invalid fields, each one follows on its own line.

mod cli;
pub mod client;
mod cmd;
#[cfg(test)]
mod fake;
mod input;
mod render;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::{self, Read, Write};

use clap::Parser;

pub use client::{Client, ClientError};

/// Process exit codes (see the crate documentation).
pub mod exit {
    pub const OK: i32 = 0;
    /// Not found, or refused by the daemon.
    pub const NOT_FOUND: i32 = 1;
    /// Usage error, daemon unreachable, or anything else.
    pub const ERROR: i32 = 2;
}

/// Parses `args` (argv[0] first), runs the command and returns the exit
/// code. Help and version go to `stdout`; usage errors and failures go to
/// `stderr`. Runs on the caller's tokio runtime.
pub async fn run<I, T>(
    args: I,
    stdin: &mut (dyn Read + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match cli::Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            // Nothing useful to do if the terminal is gone.
            return if e.use_stderr() {
                let _ = stderr
                    .write_all(text.as_bytes())
                    .and_then(|()| stderr.flush());
                exit::ERROR
            } else {
                let _ = stdout
                    .write_all(text.as_bytes())
                    .and_then(|()| stdout.flush());
                exit::OK
            };
        }
    };
    let mut io = cmd::Io {
        stdin,
        stdout,
        stderr,
    };
    let result = cmd::execute(cli, &mut io).await;
    let flushed = io.stdout.flush();
    let code = match result.and_then(|code| flushed.map(|()| code).map_err(anyhow::Error::from)) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => exit::OK,
        Err(err) => {
            report(&err, io.stderr);
            exit_code(&err)
        }
    };
    let _ = io.stderr.flush();
    code
}

/// [`run`] on a fresh current-thread runtime, for `main`. Must not be
/// called from inside a tokio runtime; use [`run`] there.
pub fn main_with<I, T>(
    args: I,
    stdin: &mut (dyn Read + Send),
    stdout: &mut (dyn Write + Send),
    stderr: &mut (dyn Write + Send),
) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(stderr, "cerctl: cannot start the async runtime: {e}");
            return exit::ERROR;
        }
    };
    runtime.block_on(run(args, stdin, stdout, stderr))
}

/// The exit code for a failed command: 1 when the daemon refused or did
/// not find something, 2 for everything else.
fn exit_code(err: &anyhow::Error) -> i32 {
    match find_client_error(err) {
        Some(ClientError::Api {
            status: 403 | 404 | 409 | 413 | 422,
            ..
        }) => exit::NOT_FOUND,
        _ => exit::ERROR,
    }
}

fn report(err: &anyhow::Error, stderr: &mut (dyn Write + Send)) {
    let mut text = format!("cerctl: {err:#}\n");
    let mut fields: Vec<(String, String)> = Vec::new();
    if let Some(ClientError::Api { error, .. }) = find_client_error(err) {
        fields.extend(
            error
                .error
                .fields
                .iter()
                .map(|f| (f.field.clone(), f.reason.clone())),
        );
    }
    if let Some(errors) = err
        .chain()
        .find_map(|e| e.downcast_ref::<cer_proto::FieldErrors>())
    {
        fields.extend(
            errors
                .0
                .iter()
                .map(|e| (e.field.to_string(), e.reason.clone())),
        );
    }
    for (field, reason) in fields {
        text.push_str(&format!("  {field}: {reason}\n"));
    }
    let _ = stderr.write_all(text.as_bytes());
}

fn find_client_error(err: &anyhow::Error) -> Option<&ClientError> {
    err.chain().find_map(|e| e.downcast_ref::<ClientError>())
}

/// A reader that went away (`cerctl incident list | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
