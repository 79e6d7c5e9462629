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
//! a set of invalid fields, each one is printed once (on its own line when
//! there are several). With `--json`, an error is instead printed to
//! stdout as the API's error body, `{"error": {"code", "message",
//! "fields"}}`: the daemon's code when it refused the request, otherwise
//! one of cerctl's own (`usage`, `unreachable`, `timed_out`, `lost`,
//! `protocol`, `invalid_field`, `invalid_input`, `not_found`, `ambiguous`,
//! `error`). The exit code is the same either way.

mod cli;
pub mod client;
mod cmd;
#[cfg(test)]
mod fake;
mod input;
mod render;
mod resolve;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::io::{self, Read, Write};

use cer_proto::api::{ApiError, ErrorBody, FieldProblem};
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
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = e.render().to_string();
            if e.use_stderr() && wants_json(&args) {
                let error = ApiError {
                    error: ErrorBody {
                        code: "usage".to_owned(),
                        message: text.trim_end().to_owned(),
                        fields: Vec::new(),
                    },
                };
                let _ = write_json_error(stdout, &error);
                return exit::ERROR;
            }
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
    let json = cli.json;
    let result = cmd::execute(cli, &mut io).await;
    let flushed = io.stdout.flush();
    let code = match result.and_then(|code| flushed.map(|()| code).map_err(anyhow::Error::from)) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => exit::OK,
        Err(err) => {
            report(&err, json, io.stdout, io.stderr);
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
    if let Some(resolve::ResolveError::NoMatch { .. }) = err
        .chain()
        .find_map(|e| e.downcast_ref::<resolve::ResolveError>())
    {
        return exit::NOT_FOUND;
    }
    match find_client_error(err) {
        Some(ClientError::Api {
            status: 403 | 404 | 409 | 413 | 422,
            ..
        }) => exit::NOT_FOUND,
        _ => exit::ERROR,
    }
}

/// An error as the API's error body: a stable code, the message, and
/// every refused field. What `--json` prints, and what the text report is
/// made from, so both say the same.
fn describe(err: &anyhow::Error) -> ApiError {
    let mut fields: Vec<FieldProblem> = Vec::new();
    // The messages before the link that carries the field problems: that
    // link's own message is only the fields joined, printed below instead.
    let mut head: Vec<String> = Vec::new();
    let mut code = None;
    for link in err.chain() {
        if let Some(client) = link.downcast_ref::<ClientError>() {
            code = Some(client_code(client));
            if let ClientError::Api { error, .. } = client {
                if !error.error.fields.is_empty() {
                    fields.clone_from(&error.error.fields);
                    if head.is_empty() {
                        head.push("cerd refused the request".to_owned());
                    }
                    break;
                }
            }
        } else if let Some(errors) = link.downcast_ref::<cer_proto::FieldErrors>() {
            code = Some("invalid_field".to_owned());
            fields = errors
                .0
                .iter()
                .map(|e| FieldProblem {
                    field: e.field.to_string(),
                    reason: e.reason.clone(),
                })
                .collect();
            break;
        } else if let Some(input) = link.downcast_ref::<input::InputError>() {
            code = Some(input.code().to_owned());
        } else if let Some(resolve) = link.downcast_ref::<resolve::ResolveError>() {
            code = Some(resolve.code().to_owned());
        }
        head.push(link.to_string());
    }
    let message = if fields.is_empty() {
        format!("{err:#}")
    } else if head.is_empty() {
        "invalid input".to_owned()
    } else {
        head.join(": ")
    };
    ApiError {
        error: ErrorBody {
            code: code.unwrap_or_else(|| "error".to_owned()),
            message,
            fields,
        },
    }
}

fn client_code(err: &ClientError) -> String {
    match err {
        ClientError::Api { error, .. } => error.error.code.clone(),
        ClientError::NotRunning { .. } => "unreachable".into(),
        ClientError::TimedOut { .. } => "timed_out".into(),
        ClientError::Lost(_) => "lost".into(),
        ClientError::Protocol(_) => "protocol".into(),
        ClientError::Io(_) => "io".into(),
    }
}

/// Prints a failed command: as text on stderr (`cerctl: message`, and
/// every refused field once, on its own line when there are several), or
/// with `--json` as the API's error body on stdout.
fn report(err: &anyhow::Error, json: bool, out: &mut dyn Write, stderr: &mut dyn Write) {
    let error = describe(err);
    if json {
        let _ = write_json_error(out, &error);
        return;
    }
    let body = &error.error;
    let text = match body.fields.as_slice() {
        [] => format!("cerctl: {}\n", body.message),
        [one] => format!(
            "cerctl: {}: {}: {}\n",
            body.message,
            render::one_line(&one.field),
            render::one_line(&one.reason)
        ),
        many => {
            let mut text = format!("cerctl: {}:\n", body.message);
            for field in many {
                text.push_str(&format!(
                    "  {}: {}\n",
                    render::one_line(&field.field),
                    render::one_line(&field.reason)
                ));
            }
            text
        }
    };
    let _ = stderr.write_all(text.as_bytes());
}

fn write_json_error(out: &mut dyn Write, error: &ApiError) -> io::Result<()> {
    let mut text = serde_json::to_string_pretty(error).map_err(io::Error::other)?;
    text.push('\n');
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// Whether `--json` is among the arguments, for reporting a usage error
/// the way the command would have reported any other.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .take_while(|a| a.as_os_str() != "--")
        .any(|a| a.as_os_str() == "--json")
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
