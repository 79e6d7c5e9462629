//! Tests of the library entry points ([`crate::run`], [`crate::main_with`]):
//! parsing, checking before connecting, exit codes and error reports.

use cer_proto::api;
use cer_proto::{EnvelopeId, FieldErrors};
use std::io::Write;
use uuid::Uuid;

use crate::exit;
use crate::fake::{Fake, Reply};

/// Runs the CLI through the library entry point, capturing its output.
async fn run_cli(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut stdin = stdin.as_bytes();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let argv = ["cerctl"].iter().chain(args.iter()).copied();
    let code = crate::run(argv, &mut stdin, &mut stdout, &mut stderr).await;
    (
        code,
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn missing_socket() -> String {
    std::env::temp_dir()
        .join(format!("cerctl-missing-{}.sock", Uuid::new_v4()))
        .display()
        .to_string()
}

const YAML: &str =
    "title: C2 server\nseverity: high\ntlp: green\nclassification: malicious-code/c2-server\n";

#[tokio::test]
async fn a_valid_file_from_stdin_gets_as_far_as_connecting() {
    let socket = missing_socket();
    for input in [
        YAML,
        r#"{"title": "C2", "severity": "high", "tlp": "green", "classification": "test/test"}"#,
    ] {
        let (code, stdout, stderr) = run_cli(
            &["--socket", &socket, "incident", "file", "--from", "-"],
            input,
        )
        .await;
        assert_eq!(code, exit::ERROR, "{stderr}");
        assert!(stdout.is_empty());
        assert!(
            stderr.starts_with("cerctl: cannot connect to cerd at "),
            "{stderr}"
        );
        assert!(stderr.contains(&socket), "{stderr}");
        assert!(stderr.contains("cerd run"), "{stderr}");
    }
}

#[tokio::test]
async fn bad_yaml_is_refused_with_its_location_before_connecting() {
    let socket = missing_socket();
    let bad = "title: C2 server\nseverity: high\ntlp: [green\n";
    let (code, _, stderr) = run_cli(
        &["--socket", &socket, "incident", "file", "--from", "-"],
        bad,
    )
    .await;
    assert_eq!(code, exit::ERROR);
    assert!(
        stderr.starts_with("cerctl: stdin: invalid YAML at line "),
        "{stderr}"
    );
    assert!(stderr.contains("column"), "{stderr}");
    assert!(!stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test]
async fn invalid_fields_are_listed_one_per_line_before_connecting() {
    let socket = missing_socket();
    let bad = YAML.replace("title: C2 server", "title: ' '") + "tags: ['no spaces allowed']\n";
    let (code, _, stderr) = run_cli(
        &["--socket", &socket, "incident", "file", "--from", "-"],
        &bad,
    )
    .await;
    assert_eq!(code, exit::ERROR);
    assert!(
        stderr.starts_with("cerctl: stdin: invalid incident: "),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("  title: ")),
        "{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("  tags[0]: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot connect"), "{stderr}");
}

#[tokio::test]
async fn flag_values_are_checked_before_connecting() {
    let socket = missing_socket();
    let (code, _, stderr) = run_cli(
        &[
            "--socket",
            &socket,
            "incident",
            "file",
            "--title",
            "x",
            "--severity",
            "hgih",
            "--tlp",
            "green",
            "--class",
            "test/test",
        ],
        "",
    )
    .await;
    assert_eq!(code, exit::ERROR);
    assert!(
        stderr.contains("hgih") && stderr.contains("critical"),
        "{stderr}"
    );
    let (code, _, stderr) = run_cli(
        &[
            "--socket",
            &socket,
            "incident",
            "file",
            "--title",
            "  ",
            "--severity",
            "high",
            "--tlp",
            "green",
            "--class",
            "test/test",
        ],
        "",
    )
    .await;
    assert_eq!(code, exit::ERROR);
    assert!(
        stderr.starts_with("cerctl: invalid incident: title: "),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_socket_is_exit_2_and_names_the_socket() {
    let socket = missing_socket();
    let (code, stdout, stderr) = run_cli(&["--socket", &socket, "status"], "").await;
    assert_eq!(code, exit::ERROR);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains(&socket) && stderr.contains("CERD_SOCKET"),
        "{stderr}"
    );
}

#[tokio::test]
async fn help_goes_to_stdout_and_usage_errors_to_stderr() {
    let (code, stdout, _) = run_cli(&["--help"], "").await;
    assert_eq!(code, exit::OK);
    assert!(stdout.contains("incident"), "{stdout}");
    let (code, stdout, stderr) = run_cli(&["incident", "frobnicate"], "").await;
    assert_eq!(code, exit::ERROR);
    assert!(stdout.is_empty());
    assert!(stderr.contains("frobnicate"), "{stderr}");
}

#[tokio::test]
async fn commands_against_a_scripted_daemon() {
    let incident = Uuid::new_v4();
    let envelope = EnvelopeId::of(b"x");
    let filed = serde_json::json!({"incident": incident, "envelope": envelope, "seq": 1, "kind": "incident"});
    let not_found = api::ApiError::new(api::ErrorCode::NotFound, format!("no incident {incident}"));
    let nothing =
        serde_json::json!({"searched": [{"type": "ipv4", "value": "198.51.100.1"}], "matches": []});
    let fake = Fake::start(vec![
        Reply::json(201, filed.to_string()),
        Reply::json(404, serde_json::to_string(&not_found).unwrap()),
        Reply::json(200, nothing.to_string()),
    ]);
    let socket = fake.socket.display().to_string();

    let (code, stdout, stderr) = run_cli(
        &[
            "--socket",
            &socket,
            "incident",
            "file",
            "--title",
            "C2",
            "--severity",
            "high",
            "--tlp",
            "green",
            "--class",
            "malicious-code/c2-server",
            "--ioc",
            "ipv4:203.0.113.7",
        ],
        "",
    )
    .await;
    assert_eq!((code, stderr.as_str()), (exit::OK, ""));
    assert_eq!(stdout, format!("{incident}\n"));

    let (code, _, stderr) = run_cli(
        &[
            "--socket",
            &socket,
            "incident",
            "show",
            &incident.to_string(),
        ],
        "",
    )
    .await;
    assert_eq!(code, exit::NOT_FOUND);
    assert_eq!(stderr, format!("cerctl: no incident {incident}\n"));

    let (code, stdout, _) =
        run_cli(&["--socket", &socket, "ioc", "search", "198.51.100.1"], "").await;
    assert_eq!(code, exit::NOT_FOUND);
    assert!(
        stdout.starts_with("no incident names 198.51.100.1"),
        "{stdout}"
    );

    let seen = fake.finish().await;
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body["indicators"][0]["value"], "203.0.113.7");
    assert_eq!(seen[2].request, "GET /v1/indicators?value=198.51.100.1");
}

#[test]
fn main_with_runs_its_own_runtime() {
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let code = crate::main_with(
        ["cerctl", "--version"],
        &mut std::io::empty(),
        &mut stdout,
        &mut stderr,
    );
    assert_eq!(code, exit::OK);
    assert!(String::from_utf8(stdout).unwrap().starts_with("cerctl "));
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    struct Closed;
    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Err(std::io::ErrorKind::BrokenPipe.into())
        }
    }
    let mut stderr = Vec::new();
    let code = crate::main_with(
        ["cerctl", "--version"],
        &mut std::io::empty(),
        &mut Closed,
        &mut stderr,
    );
    assert_eq!(code, exit::OK);
    let err = anyhow::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
        .context("printing");
    assert!(crate::is_broken_pipe(&err));
}

#[test]
fn api_refusals_are_exit_1_and_other_failures_exit_2() {
    let api = |status: u16, code: api::ErrorCode| {
        anyhow::Error::new(crate::ClientError::Api {
            status,
            error: api::ApiError::new(code, "nope"),
        })
    };
    assert_eq!(
        crate::exit_code(&api(404, api::ErrorCode::NotFound)),
        exit::NOT_FOUND
    );
    assert_eq!(
        crate::exit_code(&api(422, api::ErrorCode::InvalidField)),
        exit::NOT_FOUND
    );
    assert_eq!(
        crate::exit_code(&api(409, api::ErrorCode::Conflict)),
        exit::NOT_FOUND
    );
    assert_eq!(
        crate::exit_code(&api(500, api::ErrorCode::Internal)),
        exit::ERROR
    );
    assert_eq!(
        crate::exit_code(&api(400, api::ErrorCode::BadRequest)),
        exit::ERROR
    );
    assert_eq!(crate::exit_code(&anyhow::anyhow!("other")), exit::ERROR);
}

#[test]
fn field_problems_from_the_daemon_are_listed() {
    let mut errors = FieldErrors::default();
    errors.push(cer_proto::FieldError::new("title", "must not be empty"));
    errors.push(cer_proto::FieldError::new(
        "recipients",
        "TLP:RED requires named recipients",
    ));
    let err = anyhow::Error::new(crate::ClientError::Api {
        status: 422,
        error: api::ApiError::invalid(&errors),
    });
    let mut stderr = Vec::new();
    crate::report(&err, &mut stderr);
    let text = String::from_utf8(stderr).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "cerctl: title: must not be empty; recipients: TLP:RED requires named recipients",
            "  title: must not be empty",
            "  recipients: TLP:RED requires named recipients",
        ]
    );
}

#[tokio::test]
async fn playbook_check_prints_warnings_and_still_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("block.yaml");
    std::fs::write(&file, "name: block\n").unwrap();
    let file = file.display().to_string();
    let warning = "block.yaml:7:24: actions[0].exec.argv[1]: {indicator.value} begins this argument and neither \"--\" nor a fixed option comes before it\u{1b}[2J";
    let reply = serde_json::json!({"name": "block", "errors": [], "warnings": [warning]});
    let fake = Fake::start(vec![
        Reply::json(200, reply.to_string()),
        Reply::json(200, reply.to_string()),
        // An older cerd sends no warnings at all.
        Reply::json(200, r#"{"name": "block", "errors": []}"#),
    ]);
    let socket = fake.socket.display().to_string();

    let (code, stdout, stderr) =
        run_cli(&["--socket", &socket, "playbook", "check", &file], "").await;
    assert_eq!(code, exit::OK, "{stderr}");
    assert_eq!(stdout, "ok: playbook block is valid\n");
    assert!(
        stderr.starts_with("warning: block.yaml:7:24: actions[0].exec.argv[1]: {indicator.value}"),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");

    let (code, stdout, _) = run_cli(
        &["--socket", &socket, "--json", "playbook", "check", &file],
        "",
    )
    .await;
    assert_eq!(code, exit::OK);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["warnings"][0], warning);

    let (code, stdout, stderr) =
        run_cli(&["--socket", &socket, "playbook", "check", &file], "").await;
    assert_eq!((code, stderr.as_str()), (exit::OK, ""));
    assert_eq!(stdout, "ok: playbook block is valid\n");
    fake.finish().await;
}

#[tokio::test]
async fn a_stuck_daemon_is_given_up_on_after_the_timeout() {
    let fake = Fake::start(vec![Reply::silence()]);
    let socket = fake.socket.display().to_string();
    let started = std::time::Instant::now();
    let (code, stdout, stderr) =
        run_cli(&["--timeout", "300ms", "--socket", &socket, "status"], "").await;
    let took = started.elapsed();
    assert_eq!(code, exit::ERROR, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with(&format!(
            "cerctl: cerd at {socket} did not answer GET /v1/status within 300ms"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--timeout"), "{stderr}");
    assert!(took >= std::time::Duration::from_millis(300), "{took:?}");
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn timeout_must_be_a_positive_duration() {
    for bad in ["0s", "soon"] {
        let (code, _, stderr) = run_cli(&["--timeout", bad, "status"], "").await;
        assert_eq!(code, exit::ERROR, "{bad}: {stderr}");
        assert!(stderr.contains("--timeout"), "{bad}: {stderr}");
    }
}
