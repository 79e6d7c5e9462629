//! An https webhook from a real node: a filed incident is posted to a
//! ticketing server in this process, over TLS with the playbook's own CA,
//! with a bearer token from cerd's environment, an API key from a file
//! and an HMAC-SHA256 signature the server checks; a 503 is retried, and
//! `cerctl playbook runs` shows each try. No secret value reaches the run
//! history, cerctl's output or the node's log.

use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use hmac::Mac as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;

use crate::harness::{eventually, write_file, TestNode};

const SOON: Duration = Duration::from_secs(30);
const TOKEN: &str = "tkn-3e9a41c07b5d2f68";
const HOOK_SECRET: &str = "hmac-6d0f2b8e95c14a73";
const API_KEY: &str = "apikey-71c5e0a9d4b3";

/// What the ticketing server saw in one request.
#[derive(Debug)]
struct Seen {
    run_key: String,
    authorized: bool,
    signed: bool,
    body: Vec<u8>,
}

/// A CA made for the test, and a server certificate for 127.0.0.1 it
/// signed.
fn test_pki() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ticketing test CA");
    let ca = params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![rustls::pki_types::CertificateDer::from(leaf.der().to_vec())],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem(), Arc::new(config))
}

/// The ticketing server: 503 to the first request, then 201 to every
/// request whose bearer token and signature check out (401 otherwise).
fn ticketing_server(
    runtime: &tokio::runtime::Runtime,
    tls: Arc<rustls::ServerConfig>,
) -> (SocketAddr, mpsc::Receiver<Seen>) {
    let (tx, rx) = mpsc::channel();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    runtime.spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (tx, tls, served) = (tx.clone(), tls.clone(), served.clone());
            tokio::spawn(async move {
                let Ok(stream) = tokio_rustls::TlsAcceptor::from(tls).accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(move |request| {
                    let (tx, served) = (tx.clone(), served.clone());
                    async move { ticket(request, tx, served).await }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, rx)
}

async fn ticket(
    request: hyper::Request<hyper::body::Incoming>,
    tx: mpsc::Sender<Seen>,
    served: Arc<std::sync::atomic::AtomicUsize>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    // The receiver's side of the signature: recompute it over the bytes
    // received and compare in constant time.
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let signature = header("x-cer-signature-256");
    let signed = signature
        .strip_prefix("sha256=")
        .and_then(|hex| hex::decode(hex).ok())
        .is_some_and(|sig| mac.verify_slice(&sig).is_ok());
    let authorized =
        header("authorization") == format!("Bearer {TOKEN}") && header("x-api-key") == API_KEY;
    let _ = tx.send(Seen {
        run_key: header("x-cer-run-key"),
        authorized,
        signed,
        body,
    });
    let first = served.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
    let (status, text) = match (authorized && signed, first) {
        (false, _) => (401, "refused".to_owned()),
        (true, true) => (503, "busy, try again".to_owned()),
        // Echoes the token, as a careless receiver might.
        (true, false) => (201, format!("ticket CERT-42 opened for Bearer {TOKEN}")),
    };
    Ok(hyper::Response::builder()
        .status(status)
        .body(Full::new(Bytes::from(text)))
        .unwrap())
}

#[test]
fn https_webhook_with_secrets_and_a_signature_records_each_try() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (ca_pem, tls) = test_pki();
    let (addr, requests) = ticketing_server(&runtime, tls);

    let mut node = TestNode::new("KE-CIRT");
    let playbooks = node.dir.path().join("playbooks");
    write_file(&playbooks.join("ticketing-ca.pem"), ca_pem.as_bytes());
    std::fs::create_dir(playbooks.join("secrets")).unwrap();
    write_file(
        &playbooks.join("secrets/api.key"),
        format!("{API_KEY}\n").as_bytes(),
    );
    let playbook = playbooks.join("ticket.yaml");
    write_file(
        &playbook,
        format!(
            r#"name: ticket
on: [incident.filed]
actions:
  - webhook:
      url: "https://{addr}/api/tickets"
      ca_file: ticketing-ca.pem
      timeout: 5s
      retries: 2
      headers:
        Authorization: "Bearer ${{env:TICKET_TOKEN}}"
        X-Api-Key: "${{file:secrets/api.key}}"
      hmac:
        secret: "${{env:HOOK_SECRET}}"
  - tag: ticketed
"#
        )
        .as_bytes(),
    );
    node.spawn_with(&[("TICKET_TOKEN", TOKEN), ("HOOK_SECRET", HOOK_SECRET)]);
    eventually(SOON, "the playbook to load", || {
        let list = node.json(&["playbook", "list"]);
        (list["playbooks"][0]["name"] == "ticket").then_some(())
    });

    let id = node.file_test("phishing kit on a ministry site");
    let runs = eventually(SOON, "the webhook and the tag to be recorded", || {
        let runs = node.json(&["playbook", "runs", "--incident", &id]);
        (runs["runs"].as_array()?.len() == 2).then_some(runs)
    });
    let runs = runs["runs"].as_array().unwrap();
    let hook = runs
        .iter()
        .find(|r| r["action"].as_str().unwrap().starts_with("webhook "))
        .unwrap_or_else(|| panic!("no webhook run in {runs:?}"));
    assert_eq!(
        hook["outcome"],
        serde_json::json!({"status": "ok", "http_status": 201}),
        "{hook}"
    );
    assert_eq!(hook["attempts"], 2, "{hook}");
    let tries: Vec<(u64, u64)> = hook["tries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["attempt"].as_u64().unwrap(),
                t["http_status"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(tries, [(1, 503), (2, 201)], "{hook}");
    let tag = runs.iter().find(|r| r["action"] == "tag ticketed").unwrap();
    assert_eq!(
        tag["outcome"]["status"], "ok",
        "the tag follows a delivered webhook"
    );

    // The server saw both tries: authorized, signed, the same body and the
    // same run key, the one the history shows.
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(requests.recv_timeout(SOON).expect("a request"));
    }
    for request in &seen {
        assert!(request.authorized && request.signed, "{request:?}");
        assert_eq!(request.run_key, hook["key"].as_str().unwrap());
        assert_eq!(request.body, seen[0].body);
    }
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["event"], "incident.filed");
    assert_eq!(body["incident"]["id"], id.as_str());

    // What cerctl shows: each try's status, and the answer without the
    // token it echoed.
    let table = node.cerctl(&["playbook", "runs", "--wide", "--incident", &id]);
    assert!(
        table.ok().contains("ok (HTTP 503, HTTP 201)"),
        "{}",
        table.stdout
    );
    let verbose = node.cerctl(&["playbook", "runs", "-v", "--incident", &id]);
    let verbose = verbose.ok();
    assert!(
        verbose.contains("HTTP 503") && verbose.contains("try 2"),
        "{verbose}"
    );
    assert!(
        verbose.contains("ticket CERT-42 opened for Bearer [secret]"),
        "{verbose}"
    );
    let test = node.cerctl(&[
        "playbook",
        "test",
        playbook.to_str().unwrap(),
        "--incident",
        &id,
    ]);
    let test = test.ok();
    assert!(
        test.contains("Authorization: Bearer ${env:TICKET_TOKEN}")
            && test.contains("X-Cer-Signature-256: HMAC-SHA256 with ${env:HOOK_SECRET}"),
        "{test}"
    );
    let json = node.cerctl(&["--json", "playbook", "runs", "--incident", &id]);
    let log = node.log();
    for secret in [TOKEN, HOOK_SECRET, API_KEY] {
        for (what, text) in [
            ("runs --json", json.ok()),
            ("runs", table.stdout.as_str()),
            ("runs -v", verbose),
            ("playbook test", test),
            ("the log", log.as_str()),
        ] {
            assert!(!text.contains(secret), "{secret} in {what}:\n{text}");
        }
    }
}
