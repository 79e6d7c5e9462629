//! The webhook client against servers started here: plain HTTP, and
//! HTTPS with certificates from a CA made for the test (rcgen), served by
//! hyper over tokio-rustls.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Once;
use std::time::{Duration, Instant};

use cer_playbook::plan::testing::{fpr, incident};
use cer_proto::Fingerprint;
use hmac::Mac as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::playbook::plan::{plan, EventKind, PlannedAction, PlannedKind, Trigger};
use crate::playbook::run::{Outcome, RunRecord, Runner};
use crate::playbook::spec::parse;

const TOKEN: &str = "tkn-5f1d0c93e2b84a7d";
const HOOK_KEY: &str = "hook-key-9b27e4c1d6a0";
const TOKEN_VAR: &str = "CERD_UNIT_TEST_TICKET_TOKEN";

/// The token in this process's environment, set once for every test.
fn token_in_env() {
    static SET: Once = Once::new();
    // Nothing else in the tests writes the environment; std serializes
    // its own reads and writes.
    SET.call_once(|| std::env::set_var(TOKEN_VAR, TOKEN));
}

/// A request as a test server saw it.
#[derive(Debug)]
struct Seen {
    target: String,
    headers: hyper::HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} in {:?}", self.headers))
    }
}

/// A certificate authority made for one test, and server configurations
/// it signs.
struct TestCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        TestCa { key, cert }
    }

    /// Writes the CA's certificate as PEM to `path`.
    fn write_pem(&self, path: &Path) {
        std::fs::write(path, self.cert.pem()).unwrap();
    }

    /// A server configuration with a certificate for `names` (DNS names
    /// or IP addresses) signed by this CA.
    fn server(&self, names: &[&str]) -> std::sync::Arc<rustls::ServerConfig> {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = rcgen::CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &self.cert, &self.key)
            .unwrap();
        let chain = vec![CertificateDer::from(leaf.der().to_vec())];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        std::sync::Arc::new(config)
    }
}

/// An HTTP(S) server on 127.0.0.1: answers the n-th request with
/// `statuses[n]` (repeating the last; 0 never answers) and the body
/// `ticket 42 for <Authorization>`, or 401 when the body's HMAC (under
/// [`HOOK_KEY`], if `X-Cer-Signature-256` is sent) does not verify.
/// Every request it reads goes to the receiver.
async fn server(
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    statuses: Vec<u16>,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let statuses = statuses.clone();
            let count = count.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let tx = tx.clone();
                    let n = count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let status = statuses[n.min(statuses.len() - 1)];
                    async move { answer(request, status, tx).await }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                match tls {
                    Some(config) => {
                        // A refused handshake is what some tests want.
                        let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
                        let io = hyper_util::rt::TokioIo::new(stream);
                        let _ = builder.serve_connection(io, service).await;
                    }
                    None => {
                        let io = hyper_util::rt::TokioIo::new(tcp);
                        let _ = builder.serve_connection(io, service).await;
                    }
                }
            });
        }
    });
    (addr, rx)
}

async fn answer(
    request: hyper::Request<hyper::body::Incoming>,
    status: u16,
    tx: mpsc::UnboundedSender<Seen>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let seen = Seen {
        target: parts.uri.to_string(),
        headers: parts.headers.clone(),
        body,
    };
    let verified = match seen.headers.get("x-cer-signature-256") {
        None => true,
        Some(signature) => {
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_KEY.as_bytes()).unwrap();
            mac.update(&seen.body);
            let hex = signature
                .to_str()
                .ok()
                .and_then(|s| s.strip_prefix("sha256="))
                .and_then(|s| hex::decode(s).ok())
                .unwrap_or_default();
            mac.verify_slice(&hex).is_ok()
        }
    };
    let authorization = seen
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("nobody")
        .to_owned();
    let _ = tx.send(seen);
    if status == 0 {
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
    let (status, body) = if verified {
        (status, format!("ticket 42 for {authorization}"))
    } else {
        (401, "bad signature".to_owned())
    };
    let response = hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    Ok(response)
}

fn no_names(_: &Fingerprint) -> Option<String> {
    None
}

/// The webhook action of a playbook whose file is in `dir` (so relative
/// `ca_file` and `${file:…}` paths resolve there), for the test incident.
fn planned(dir: &Path, webhook: &str) -> PlannedAction {
    let body: String = webhook.lines().map(|l| format!("      {l}\n")).collect();
    let yaml = format!("name: hook\non: [incident.received]\nactions:\n  - webhook:\n{body}");
    let file = dir.join("hook.yaml");
    let playbook = parse(&yaml, &file.display().to_string()).unwrap_or_else(|e| panic!("{e}"));
    let state = incident();
    let own = fpr('B');
    let mut actions = plan(
        &[playbook],
        &Trigger {
            event: EventKind::IncidentReceived,
            incident: Some(&state),
            peer: None,
            own: &own,
            names: &no_names,
            version: "v1".into(),
            acted: &[],
            acted_runs: &[],
            paused: None,
            expiry: None,
            warninglisted: None,
        },
    );
    assert_eq!(actions.len(), 1);
    actions.remove(0)
}

fn body_of(action: &PlannedAction) -> &[u8] {
    match &action.kind {
        PlannedKind::Webhook { body, .. } => body,
        other => panic!("not a webhook: {other:?}"),
    }
}

fn runner() -> Runner {
    Runner::with_backoff(4, Duration::from_millis(20))
}

/// Everything a record holds that could reach a terminal or the store.
fn recorded_text(record: &RunRecord) -> String {
    serde_json::to_string(record).unwrap()
}

#[test]
fn the_run_key_header_is_the_documented_one() {
    assert_eq!(
        super::run_key_header().as_str(),
        crate::playbook::spec::RUN_KEY_HEADER.to_ascii_lowercase()
    );
    assert_eq!(
        super::header_safe("a:b%3Ac:0").to_str().unwrap(),
        "a:b%3Ac:0"
    );
    assert_eq!(
        super::header_safe("a b\né").to_str().unwrap(),
        "a%20b%0A%C3%A9"
    );
}

#[tokio::test]
async fn http_posts_the_json_and_retries_after_a_500() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, mut requests) = server(None, vec![500, 200]).await;
    let action = planned(
        dir.path(),
        &format!("url: \"http://{addr}/cert/hook?src=cerd\"\nretries: 3\nheaders: {{Authorization: \"Bearer xyz\"}}"),
    );
    let record = runner().run(&action).await;
    assert_eq!(
        record.outcome,
        Outcome::Ok {
            exit_code: None,
            http_status: Some(200)
        },
        "{}",
        record.stderr
    );
    assert_eq!(record.attempts, 2);
    assert_eq!(record.stdout, "ticket 42 for Bearer xyz");
    assert_eq!(record.stderr, "try 1: HTTP 500");
    assert_eq!(
        record.action,
        format!("webhook http://{addr}/cert/hook?src=cerd")
    );
    let statuses: Vec<(u32, Option<u16>)> = record
        .tries
        .iter()
        .map(|t| (t.attempt, t.http_status))
        .collect();
    assert_eq!(statuses, [(1, Some(500)), (2, Some(200))]);
    assert!(record.tries[0].started <= record.tries[1].started);
    for _ in 0..2 {
        let seen = requests.recv().await.unwrap();
        assert_eq!(seen.target, "/cert/hook?src=cerd");
        assert_eq!(seen.header("content-type"), "application/json");
        assert_eq!(seen.header("authorization"), "Bearer xyz");
        assert_eq!(seen.header("host"), addr.to_string());
        // The same run key on every try, so a receiver can spot a retry.
        assert_eq!(seen.header("x-cer-run-key"), action.key);
        assert!(seen.headers.get("x-cer-signature-256").is_none());
        assert_eq!(seen.body, body_of(&action));
    }
    let json: serde_json::Value = serde_json::from_slice(body_of(&action)).unwrap();
    assert_eq!(json["event"], "incident.received");
}

#[tokio::test]
async fn http_gives_up_on_client_errors_and_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, _requests) = server(None, vec![404]).await;
    let record = runner()
        .run(&planned(
            dir.path(),
            &format!("url: \"http://{addr}/\"\nretries: 3"),
        ))
        .await;
    assert_eq!(record.attempts, 1, "4xx is not retried");
    assert_eq!(record.tries.len(), 1);
    assert!(matches!(
        record.outcome,
        Outcome::Failed {
            http_status: Some(404),
            ..
        }
    ));

    let (addr, _requests) = server(None, vec![0]).await;
    let started = Instant::now();
    let record = runner()
        .run(&planned(
            dir.path(),
            &format!("url: \"http://{addr}/\"\nretries: 1\ntimeout: 200ms"),
        ))
        .await;
    assert_eq!(record.outcome, Outcome::TimedOut);
    assert_eq!(record.attempts, 2);
    let errors: Vec<Option<&str>> = record.tries.iter().map(|t| t.error.as_deref()).collect();
    assert_eq!(
        errors,
        [
            Some("no answer within 200ms"),
            Some("no answer within 200ms")
        ]
    );
    assert!(record.tries.iter().all(|t| t.duration_ms >= 200));
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nobody listening: connection refused, retried, then failed.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let record = runner()
        .run(&planned(
            dir.path(),
            &format!("url: \"http://{addr}/\"\nretries: 2"),
        ))
        .await;
    assert_eq!(record.attempts, 3);
    assert_eq!(record.tries.len(), 3);
    assert!(
        matches!(&record.outcome, Outcome::Failed { http_status: None, reason, .. } if reason.starts_with("cannot connect")),
        "{:?}",
        record.outcome
    );
    assert!(record.tries.iter().all(|t| t
        .error
        .as_deref()
        .is_some_and(|e| e.starts_with("cannot connect"))));
}

/// https with the webhook's own CA; the bearer token from the environment,
/// a second header from a file, the body signed with a key from a file;
/// the server checks the signature by recomputing it. No secret value
/// reaches the record, even though the server echoes the token.
#[tokio::test]
async fn https_with_a_ca_file_signed_and_with_secrets_from_env_and_file() {
    token_in_env();
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cerd test CA");
    ca.write_pem(&dir.path().join("ca.pem"));
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/hook.key"), format!("{HOOK_KEY}\n")).unwrap();
    std::fs::write(dir.path().join("secrets/api.key"), "api-key-0c8d7e5f\r\n").unwrap();
    let (addr, mut requests) =
        server(Some(ca.server(&["localhost", "127.0.0.1"])), vec![201]).await;
    for host in ["127.0.0.1", "localhost"] {
        let action = planned(
            dir.path(),
            &format!(
                r#"url: "https://{host}:{port}/api/tickets"
ca_file: ca.pem
headers:
  Authorization: "Bearer ${{env:{TOKEN_VAR}}}"
  X-Api-Key: "${{file:secrets/api.key}}"
hmac: {{secret: "${{file:secrets/hook.key}}"}}"#,
                port = addr.port()
            ),
        );
        let record = runner().run(&action).await;
        assert_eq!(
            record.outcome,
            Outcome::Ok {
                exit_code: None,
                http_status: Some(201)
            },
            "{host}: {}",
            record.stderr
        );
        assert_eq!(record.attempts, 1);
        assert_eq!(record.tries[0].http_status, Some(201));
        let seen = requests.recv().await.unwrap();
        assert_eq!(seen.header("authorization"), format!("Bearer {TOKEN}"));
        assert_eq!(seen.header("x-api-key"), "api-key-0c8d7e5f");
        let signature = seen.header("x-cer-signature-256");
        assert!(
            signature.starts_with("sha256=")
                && signature.len() == 7 + 64
                && signature[7..]
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{signature}"
        );
        assert_eq!(seen.body, body_of(&action));
        // The server echoed the token; the record does not keep it.
        assert_eq!(record.stdout, "ticket 42 for Bearer [secret]");
        let text = recorded_text(&record);
        for secret in [TOKEN, HOOK_KEY, "api-key-0c8d7e5f"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

#[tokio::test]
async fn https_retries_a_503_and_records_each_try() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cerd test CA");
    ca.write_pem(&dir.path().join("ca.pem"));
    let (addr, mut requests) = server(Some(ca.server(&["127.0.0.1"])), vec![503, 503, 200]).await;
    let action = planned(
        dir.path(),
        &format!("url: \"https://{addr}/\"\nca_file: ca.pem\nretries: 4"),
    );
    let record = runner().run(&action).await;
    assert!(
        record.outcome.is_ok(),
        "{:?} {}",
        record.outcome,
        record.stderr
    );
    let tries: Vec<(u32, Option<u16>, Option<&str>)> = record
        .tries
        .iter()
        .map(|t| (t.attempt, t.http_status, t.error.as_deref()))
        .collect();
    assert_eq!(
        tries,
        [
            (1, Some(503), None),
            (2, Some(503), None),
            (3, Some(200), None)
        ]
    );
    assert_eq!(record.attempts, 3);
    assert_eq!(record.stderr, "try 1: HTTP 503\ntry 2: HTTP 503");
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(
            requests
                .recv()
                .await
                .unwrap()
                .header("x-cer-run-key")
                .to_owned(),
        );
    }
    assert_eq!(keys, [action.key.clone(), action.key.clone(), action.key]);
}

/// The server's certificate must lead to the trusted roots and name the
/// host; a refused certificate is not retried.
#[tokio::test]
async fn https_refuses_servers_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("cerd test CA");
    let other = TestCa::new("another CA");
    other.write_pem(&dir.path().join("other.pem"));
    ca.write_pem(&dir.path().join("ca.pem"));
    let (addr, _requests) = server(Some(ca.server(&["127.0.0.1"])), vec![200]).await;

    let cases = [
        // The system's roots do not hold the test CA.
        (
            "".to_owned(),
            "is not signed by a CA this system trusts; set the webhook's ca_file".to_owned(),
        ),
        (
            "ca_file: other.pem".to_owned(),
            format!(
                "is not signed by the CA in ca_file {}",
                dir.path().join("other.pem").display()
            ),
        ),
    ];
    for (ca_line, want) in cases {
        let action = planned(
            dir.path(),
            &format!("url: \"https://{addr}/\"\nretries: 3\n{ca_line}"),
        );
        let record = runner().run(&action).await;
        let Outcome::Failed { reason, .. } = &record.outcome else {
            panic!("{:?}", record.outcome);
        };
        // A machine without any CA certificate refuses before connecting.
        if ca_line.is_empty() && reason.starts_with("no CA certificates found on this system") {
            assert_eq!(record.attempts, 0);
            continue;
        }
        assert!(
            reason.starts_with("TLS: 127.0.0.1 is not trusted: its certificate")
                && reason.contains(&want),
            "{reason}"
        );
        assert_eq!(record.attempts, 1, "a refused certificate is not retried");
        assert_eq!(record.tries[0].error.as_deref(), Some(reason.as_str()));
    }

    // Signed by the right CA, but for another name.
    let (addr, _requests) = server(Some(ca.server(&["localhost"])), vec![200]).await;
    let action = planned(
        dir.path(),
        &format!("url: \"https://{addr}/\"\nca_file: ca.pem\nretries: 2"),
    );
    let record = runner().run(&action).await;
    assert!(
        matches!(&record.outcome, Outcome::Failed { reason, .. } if reason == "TLS: 127.0.0.1 is not trusted: its certificate is not valid for the name 127.0.0.1"),
        "{:?}",
        record.outcome
    );
    assert_eq!(record.attempts, 1);
}

/// What the run reads before its first try fails it at once, naming the
/// variable or file and never a value.
#[tokio::test]
async fn unreadable_secrets_and_ca_files_fail_the_run_by_name() {
    token_in_env();
    let dir = tempfile::tempdir().unwrap();
    let (addr, mut requests) = server(None, vec![200]).await;
    std::fs::write(dir.path().join("two-lines"), "line-one-secret\nline-two\n").unwrap();
    std::fs::write(dir.path().join("empty.key"), "\n").unwrap();
    std::fs::write(dir.path().join("empty.pem"), "").unwrap();
    std::fs::write(
        dir.path().join("junk.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let http = format!("url: \"http://{addr}/\"");
    let https = format!("url: \"https://{addr}/\"");
    let cases = [
        (
            format!(
                "{http}\nheaders: {{Authorization: \"Bearer ${{env:CERD_TEST_UNSET_VARIABLE}}\"}}"
            ),
            "header Authorization: environment variable CERD_TEST_UNSET_VARIABLE is not set"
                .to_owned(),
        ),
        (
            format!("{http}\nheaders: {{X-Key: \"${{file:missing.key}}\"}}"),
            format!(
                "header X-Key: cannot read secret file {}: No such file or directory",
                path("missing.key")
            ),
        ),
        (
            format!("{http}\nheaders: {{X-Key: \"${{file:two-lines}}\"}}"),
            "header X-Key: ${file:two-lines} holds a line break, which a header cannot carry"
                .to_owned(),
        ),
        (
            format!("{http}\nhmac: {{secret: \"${{file:empty.key}}\"}}"),
            "hmac.secret: ${file:empty.key} is empty".to_owned(),
        ),
        (
            format!("{https}\nca_file: missing.pem"),
            format!(
                "cannot read ca_file {}: No such file or directory",
                path("missing.pem")
            ),
        ),
        (
            format!("{https}\nca_file: empty.pem"),
            format!("ca_file {} holds no PEM certificate", path("empty.pem")),
        ),
        (
            format!("{https}\nca_file: junk.pem"),
            format!("ca_file {}: certificate 1:", path("junk.pem")),
        ),
    ];
    for (webhook, want) in cases {
        let record = runner().run(&planned(dir.path(), &webhook)).await;
        let Outcome::Failed {
            reason,
            http_status: None,
            ..
        } = &record.outcome
        else {
            panic!("{webhook}: {:?}", record.outcome);
        };
        assert!(
            reason.starts_with(&want),
            "{webhook}\n got: {reason}\nwant: {want}"
        );
        assert_eq!((record.attempts, record.tries.len()), (0, 0), "{webhook}");
        let text = recorded_text(&record);
        for secret in [TOKEN, "line-one-secret"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    // None of them sent anything; the server's first request is this one.
    let record = runner().run(&planned(dir.path(), &http)).await;
    assert!(record.outcome.is_ok(), "{:?}", record.outcome);
    let seen = requests.recv().await.unwrap();
    assert_eq!(seen.header("x-cer-run-key"), record.key);
    assert!(requests.try_recv().is_err());
}

/// A plain HTTP/1.1 exchange read byte by byte: the request head carries
/// exactly one of each header cerd sets.
#[tokio::test]
async fn the_request_head_on_the_wire() {
    token_in_env();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hook.key"), HOOK_KEY).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let action = planned(
        dir.path(),
        &format!("url: \"http://{addr}/in\"\nretries: 0\nheaders: {{Authorization: \"Bearer ${{env:{TOKEN_VAR}}}\"}}\nhmac: {{secret: \"${{file:hook.key}}\", header: X-Hub-Signature-256}}"),
    );
    let serve = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.unwrap();
            head.push(byte[0]);
        }
        stream
            .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8(head).unwrap()
    });
    let record = runner().run(&action).await;
    assert!(
        record.outcome.is_ok(),
        "{:?} {}",
        record.outcome,
        record.stderr
    );
    let head = serve.await.unwrap().to_ascii_lowercase();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_KEY.as_bytes()).unwrap();
    mac.update(body_of(&action));
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    for line in [
        "post /in http/1.1".to_owned(),
        "content-type: application/json".to_owned(),
        format!("authorization: bearer {}", TOKEN.to_ascii_lowercase()),
        format!("x-hub-signature-256: {expected}"),
        format!("x-cer-run-key: {}", action.key.to_ascii_lowercase()),
        format!("host: {addr}"),
    ] {
        let count = head.split("\r\n").filter(|l| *l == line).count();
        assert_eq!(count, 1, "{line:?} in\n{head}");
    }
    assert!(!head.contains("x-cer-signature-256"), "{head}");
}
