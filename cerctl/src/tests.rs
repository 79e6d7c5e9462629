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
        stderr.starts_with("cerctl: stdin: invalid incident:\n"),
        "{stderr}"
    );
    // Each field once.
    assert_eq!(stderr.matches("title").count(), 1, "{stderr}");
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
        "TLP:RED needs at least one recipient besides this node",
    ));
    let err = anyhow::Error::new(crate::ClientError::Api {
        status: 422,
        error: api::ApiError::invalid(&errors),
    });
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    crate::report(&err, false, &mut stdout, &mut stderr);
    let text = String::from_utf8(stderr).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Each field once: not the joined message and then the list again.
    assert_eq!(
        lines,
        [
            "cerctl: cerd refused the request:",
            "  title: must not be empty",
            "  recipients: TLP:RED needs at least one recipient besides this node",
        ]
    );
    assert!(stdout.is_empty());

    // One field: one line.
    let one = FieldErrors::from(cer_proto::FieldError::new("title", "must not be empty"));
    let err = anyhow::Error::new(one).context("invalid incident");
    let mut stderr = Vec::new();
    crate::report(&err, false, &mut Vec::new(), &mut stderr);
    assert_eq!(
        String::from_utf8(stderr).unwrap(),
        "cerctl: invalid incident: title: must not be empty\n"
    );
}

#[test]
fn with_json_errors_are_the_api_error_body_on_stdout() {
    let mut errors = FieldErrors::default();
    errors.push(cer_proto::FieldError::new("title", "must not be empty"));
    errors.push(cer_proto::FieldError::new("tags[0]", "bad tag"));
    let err = anyhow::Error::new(crate::ClientError::Api {
        status: 422,
        error: api::ApiError::invalid(&errors),
    });
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    crate::report(&err, true, &mut stdout, &mut stderr);
    assert!(stderr.is_empty());
    let json: api::ApiError = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(json.error.code, "invalid_field");
    assert_eq!(json.error.message, "cerd refused the request");
    assert_eq!(json.error.fields.len(), 2);
    assert_eq!(json.error.fields[1].field, "tags[0]");
}

#[tokio::test]
async fn with_json_every_failure_prints_a_json_error() {
    let socket = missing_socket();
    // Not reachable.
    let (code, stdout, stderr) = run_cli(&["--json", "--socket", &socket, "status"], "").await;
    assert_eq!(code, exit::ERROR);
    assert!(stderr.is_empty(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["error"]["code"], "unreachable");
    assert!(json["error"]["message"].as_str().unwrap().contains(&socket));

    // Refused before sending, every field listed.
    let bad = YAML.replace("title: C2 server", "title: ' '") + "tags: ['no spaces allowed']\n";
    let (code, stdout, _) = run_cli(
        &[
            "--socket", &socket, "incident", "file", "--from", "-", "--json",
        ],
        &bad,
    )
    .await;
    assert_eq!(code, exit::ERROR);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["error"]["code"], "invalid_field");
    assert_eq!(
        json["error"]["fields"].as_array().unwrap().len(),
        2,
        "{json}"
    );

    // A usage error.
    let (code, stdout, stderr) = run_cli(&["--json", "incident", "show"], "").await;
    assert_eq!(code, exit::ERROR);
    assert!(stderr.is_empty(), "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["error"]["code"], "usage");

    // A refusal by the daemon keeps its code.
    let not_found = api::ApiError::new(api::ErrorCode::NotFound, "no incident");
    let fake = Fake::start(vec![Reply::json(
        404,
        serde_json::to_string(&not_found).unwrap(),
    )]);
    let socket = fake.socket.display().to_string();
    let id = Uuid::new_v4().to_string();
    let (code, stdout, _) = run_cli(
        &["--json", "--socket", &socket, "incident", "show", &id],
        "",
    )
    .await;
    assert_eq!(code, exit::NOT_FOUND);
    let json: api::ApiError = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json, not_found);
    fake.finish().await;
}

fn summary(id: Uuid) -> serde_json::Value {
    serde_json::json!({
        "id": id, "title": "t", "tlp": "green", "updated": "2026-11-28T12:00:00Z",
        "indicators": 0, "readable": true, "retracted": false
    })
}

#[tokio::test]
async fn incident_commands_take_a_unique_id_prefix() {
    let wanted = Uuid::parse_str("7a00ff00-0000-4000-8000-000000000003").unwrap();
    let other = Uuid::parse_str("7a00ee00-0000-4000-8000-000000000004").unwrap();
    let list =
        serde_json::json!({"incidents": [summary(wanted), summary(other)], "truncated": false});
    let filed = serde_json::json!({"incident": wanted, "envelope": EnvelopeId::of(b"x"), "seq": 2, "kind": "retraction"});
    let fake = Fake::start(vec![
        Reply::json(200, list.to_string()),
        Reply::json(201, filed.to_string()),
        Reply::json(200, list.to_string()),
    ]);
    let socket = fake.socket.display().to_string();

    let (code, stdout, stderr) =
        run_cli(&["--socket", &socket, "incident", "retract", "7a00ff"], "").await;
    assert_eq!((code, stderr.as_str()), (exit::OK, ""));
    assert!(!stdout.is_empty());

    let (code, _, stderr) = run_cli(&["--socket", &socket, "incident", "show", "7a00aa"], "").await;
    assert_eq!(code, exit::NOT_FOUND);
    assert_eq!(stderr, "cerctl: no incident matches '7a00aa'\n");

    // Too short: refused without asking the daemon.
    let (code, _, stderr) = run_cli(&["--socket", &socket, "incident", "ack", "7a0"], "").await;
    assert_eq!(code, exit::ERROR);
    assert!(stderr.contains("at least 6 of its hex digits"), "{stderr}");

    let seen = fake.finish().await;
    assert!(
        seen[0].request.starts_with("GET /v1/incidents?")
            && seen[0].request.contains("include_retracted=true"),
        "{seen:?}"
    );
    assert_eq!(
        seen[1].request,
        format!("POST /v1/incidents/{wanted}/retraction")
    );
}

#[tokio::test]
async fn certs_remove_takes_a_name_or_a_short_fingerprint() {
    let fingerprint = format!("{}{}", "1".repeat(24), "AB".repeat(8));
    let info = serde_json::json!({"name": "KE-CIRT", "fingerprint": fingerprint, "own": false, "can_encrypt": true});
    let certs = serde_json::json!({"certs": [info]});
    let fake = Fake::start(vec![
        Reply::json(200, certs.to_string()),
        Reply::json(200, info.to_string()),
        Reply::json(200, certs.to_string()),
        Reply::json(200, info.to_string()),
        Reply::json(200, certs.to_string()),
    ]);
    let socket = fake.socket.display().to_string();
    for given in ["ke-cirt", &"ab".repeat(8)] {
        let (code, stdout, stderr) =
            run_cli(&["--socket", &socket, "certs", "remove", given], "").await;
        assert_eq!((code, stderr.as_str()), (exit::OK, ""), "{given}");
        assert_eq!(
            stdout,
            format!("no longer trusted: KE-CIRT ({fingerprint})\n")
        );
    }
    let (code, _, stderr) = run_cli(&["--socket", &socket, "certs", "remove", "NG-CERT"], "").await;
    assert_eq!(code, exit::NOT_FOUND);
    assert!(
        stderr.starts_with("cerctl: no trusted certificate matches 'NG-CERT'"),
        "{stderr}"
    );
    let seen = fake.finish().await;
    assert_eq!(seen[1].request, format!("DELETE /v1/certs/{fingerprint}"));
    assert_eq!(seen[3].request, format!("DELETE /v1/certs/{fingerprint}"));
}

/// `playbook check` is a linter: it needs no running node (the socket
/// here does not exist), applies the daemon's rules, and warnings do not
/// fail it.
#[tokio::test]
async fn playbook_check_needs_no_daemon_and_warnings_do_not_fail_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("block.yaml");
    std::fs::write(
        &file,
        "name: block\non: [incident.received]\nmax_tlp: green\nactions:\n  - exec:\n      argv: [\"/usr/local/sbin/block-ip\", \"{indicator.value}\"]\n      for_each_indicator: [ipv4]\n",
    )
    .unwrap();
    let file = file.display().to_string();
    let socket = dir.path().join("no-daemon.sock").display().to_string();

    let (code, stdout, stderr) =
        run_cli(&["--socket", &socket, "playbook", "check", &file], "").await;
    assert_eq!(code, exit::OK, "{stderr}");
    assert_eq!(stdout, "ok: playbook block is valid\n");
    assert!(
        stderr.starts_with("warning: ") && stderr.contains("{indicator.value}"),
        "{stderr}"
    );

    let (code, stdout, _) = run_cli(
        &["--socket", &socket, "--json", "playbook", "check", &file],
        "",
    )
    .await;
    assert_eq!(code, exit::OK);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["name"], "block");
    assert_eq!(json["warnings"].as_array().unwrap().len(), 1, "{json}");

    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "name: broken\non: [incident.nonsense]\nactions: []\n",
    )
    .unwrap();
    let broken = broken.display().to_string();
    let (code, _, stderr) = run_cli(&["--socket", &socket, "playbook", "check", &broken], "").await;
    assert_eq!(code, exit::NOT_FOUND, "{stderr}");
    assert!(stderr.contains("broken.yaml:2:"), "{stderr}");
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

#[tokio::test]
async fn completions_and_man_page_are_generated_from_the_clap_definition() {
    for shell in ["bash", "zsh", "fish"] {
        let (code, stdout, stderr) = run_cli(&["completions", shell], "").await;
        assert_eq!((code, stderr.as_str()), (exit::OK, ""), "{shell}");
        assert!(
            stdout.contains("cerctl") && stdout.contains("incident"),
            "{shell}"
        );
    }
    let (code, stdout, _) = run_cli(&["man"], "").await;
    assert_eq!(code, exit::OK);
    assert!(
        stdout.starts_with(".ie") || stdout.contains(".TH cerctl"),
        "{stdout}"
    );
}
