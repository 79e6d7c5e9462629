//! The webhook client: one JSON POST per try over HTTP/1.1 (hyper), on
//! TLS when the URL is https, with bounded retries and back-off.
//!
//! Before the first try the run reads what it needs (the secrets its
//! headers and HMAC key name, its `ca_file`), so a rotated secret is used
//! at once and a missing one fails the run with a reason that names the
//! variable or file. Each request carries the run key (`X-Cer-Run-Key`,
//! the same on every try, so the receiver can drop a retry it already
//! handled) and, with `hmac`, `sha256=<hex>` of HMAC-SHA256 over the exact
//! body bytes. The signature covers the body only: the body already names
//! the event and the incident version, and a receiver recomputes it from
//! the bytes it got without knowing anything of cerd. Every try is
//! recorded with its status or error; secret values are never recorded
//! (the playbook's templates are, e.g. `Bearer ${env:TICKET_TOKEN}`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cer_proto::model::Timestamp;
use hmac::Mac as _;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use tokio::io::{AsyncRead, AsyncWrite};

use super::secret::Secrets;
use super::tls::Trust;
use super::{elapsed_ms, Attempt, Outcome, MAX_BACKOFF, OUTPUT_LIMIT};
use crate::playbook::spec::{Scheme, SecretText, WebhookHmac, WebhookUrl};

/// One planned webhook, as the runner hands it over.
pub(super) struct Request<'a> {
    pub(super) url: &'a WebhookUrl,
    pub(super) headers: &'a [(String, SecretText)],
    pub(super) timeout: Duration,
    pub(super) retries: u32,
    pub(super) body: &'a Arc<[u8]>,
    pub(super) ca_file: Option<&'a Path>,
    pub(super) hmac: Option<&'a WebhookHmac>,
    /// The run key, sent as `X-Cer-Run-Key`.
    pub(super) key: &'a str,
}

/// What the tries came to.
pub(super) struct WebhookRun {
    pub(super) outcome: Outcome,
    pub(super) attempts: u32,
    /// The last answer's body (its first [`OUTPUT_LIMIT`] bytes).
    pub(super) stdout: String,
    /// What went wrong, one line per failed try.
    pub(super) stderr: String,
    pub(super) tries: Vec<Attempt>,
}

/// A request ready to send on every try: secrets read, body signed.
struct Prepared {
    headers: Vec<(HeaderName, HeaderValue)>,
    trust: Option<Trust>,
    secrets: Secrets,
}

/// Why a try got no answer, and whether another could help.
struct Failure {
    reason: String,
    retry: bool,
}

/// Sends the request, trying again (after `backoff`, doubled each time
/// up to [`MAX_BACKOFF`]) while the answer is a 5xx, 408 or 429, or no
/// answer came, at most `retries` more times.
pub(super) async fn deliver(request: &Request<'_>, backoff: Duration) -> WebhookRun {
    let prepared = match prepare(request).await {
        Ok(prepared) => prepared,
        Err(reason) => {
            return WebhookRun {
                outcome: Outcome::Failed {
                    exit_code: None,
                    http_status: None,
                    reason: reason.clone(),
                },
                attempts: 0,
                stdout: String::new(),
                stderr: reason,
                tries: Vec::new(),
            }
        }
    };
    let body = Bytes::copy_from_slice(request.body);
    let mut run = WebhookRun {
        outcome: Outcome::TimedOut,
        attempts: 0,
        stdout: String::new(),
        stderr: String::new(),
        tries: Vec::new(),
    };
    let mut log = Vec::new();
    for attempt in 1..=request.retries.saturating_add(1) {
        if attempt > 1 {
            let pause = backoff
                .saturating_mul(1 << (attempt - 2).min(16))
                .min(MAX_BACKOFF);
            tokio::time::sleep(pause).await;
        }
        run.attempts = attempt;
        let started = Timestamp::from(time::OffsetDateTime::now_utc());
        let clock = Instant::now();
        let answer =
            tokio::time::timeout(request.timeout, post(request.url, &prepared, body.clone())).await;
        let mut tried = Attempt {
            attempt,
            started,
            duration_ms: elapsed_ms(clock),
            exit_code: None,
            http_status: None,
            error: None,
        };
        let retry = match answer {
            Ok(Ok((status, response))) => {
                tried.http_status = Some(status);
                run.stdout = prepared.secrets.redact(&response);
                if (200..300).contains(&status) {
                    run.outcome = Outcome::Ok {
                        exit_code: None,
                        http_status: Some(status),
                    };
                    run.tries.push(tried);
                    break;
                }
                log.push(format!("try {attempt}: HTTP {status}"));
                run.outcome = Outcome::Failed {
                    exit_code: None,
                    http_status: Some(status),
                    reason: format!("HTTP {status}"),
                };
                // Other client errors will not go away by asking again.
                status >= 500 || status == 408 || status == 429
            }
            Ok(Err(failure)) => {
                let reason = prepared.secrets.redact(&failure.reason);
                log.push(format!("try {attempt}: {reason}"));
                tried.error = Some(reason.clone());
                run.outcome = Outcome::Failed {
                    exit_code: None,
                    http_status: None,
                    reason,
                };
                failure.retry
            }
            Err(_) => {
                let reason = format!(
                    "no answer within {}",
                    humantime::format_duration(request.timeout)
                );
                log.push(format!("try {attempt}: {reason}"));
                tried.error = Some(reason);
                run.outcome = Outcome::TimedOut;
                true
            }
        };
        run.tries.push(tried);
        if !retry {
            break;
        }
    }
    run.stderr = log.join("\n");
    run
}

/// Reads the run's secrets and CA, signs the body and builds the headers
/// every try sends. The reason names what could not be read.
async fn prepare(request: &Request<'_>) -> Result<Prepared, String> {
    let mut secrets = Secrets::default();
    let mut headers = vec![
        (
            hyper::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (
            hyper::header::USER_AGENT,
            HeaderValue::from_static(concat!("cerd/", env!("CARGO_PKG_VERSION"))),
        ),
        (run_key_header(), header_safe(request.key)),
    ];
    for (name, template) in request.headers {
        let value = secrets.header(name, template).await?;
        let name =
            HeaderName::from_bytes(name.as_bytes()).map_err(|e| format!("header {name}: {e}"))?;
        let mut value = HeaderValue::from_str(&value)
            .map_err(|_| format!("header {name}: not a valid header value"))?;
        if !template.is_literal() {
            // Keeps it out of HPACK tables and debug output of hyper.
            value.set_sensitive(true);
        }
        headers.push((name, value));
    }
    if let Some(hmac) = request.hmac {
        let key = secrets.expand(&hmac.secret, "hmac.secret").await?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key)
            .map_err(|e| format!("hmac.secret: {e}"))?;
        mac.update(request.body);
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let name = HeaderName::from_bytes(hmac.header.as_bytes())
            .map_err(|e| format!("hmac.header {}: {e}", hmac.header))?;
        let value = HeaderValue::from_str(&signature)
            .map_err(|e| format!("hmac.header {}: {e}", hmac.header))?;
        headers.push((name, value));
    }
    let trust = match request.url.scheme {
        Scheme::Https => Some(Trust::new(request.ca_file).await?),
        Scheme::Http => None,
    };
    Ok(Prepared {
        headers,
        trust,
        secrets,
    })
}

/// One HTTP/1.1 POST on a fresh connection: the status and the first
/// [`OUTPUT_LIMIT`] bytes of the answer.
async fn post(
    url: &WebhookUrl,
    prepared: &Prepared,
    body: Bytes,
) -> Result<(u16, String), Failure> {
    let authority = url.authority();
    let tcp = tokio::net::TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| Failure {
            reason: format!("cannot connect to {authority}: {e}"),
            retry: true,
        })?;
    match &prepared.trust {
        Some(trust) => {
            let tls = trust.connect(&url.host, tcp).await.map_err(|f| Failure {
                reason: f.reason,
                retry: f.retry,
            })?;
            exchange(tls, url, prepared, body).await
        }
        None => exchange(tcp, url, prepared, body).await,
    }
}

async fn exchange<S>(
    stream: S,
    url: &WebhookUrl,
    prepared: &Prepared,
    body: Bytes,
) -> Result<(u16, String), Failure>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let authority = url.authority();
    let failed = |reason: String| Failure {
        reason,
        retry: true,
    };
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| failed(format!("HTTP handshake with {authority}: {e}")))?;
    let connection = tokio::spawn(connection);
    let _close = AbortOnDrop(connection);

    let mut request = hyper::Request::post(url.target.as_str())
        .header(hyper::header::HOST, authority.as_str())
        .body(Full::new(body))
        .map_err(|e| failed(format!("cannot build the request: {e}")))?;
    for (name, value) in &prepared.headers {
        request.headers_mut().insert(name.clone(), value.clone());
    }
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| failed(format!("request to {authority} failed: {e}")))?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut captured = Vec::new();
    while captured.len() < OUTPUT_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    let room = OUTPUT_LIMIT - captured.len();
                    captured.extend_from_slice(&data[..data.len().min(room)]);
                }
            }
            // The status is what counts; a broken body after it is not
            // worth failing (or retrying) the delivery.
            Some(Err(_)) | None => break,
        }
    }
    Ok((status, String::from_utf8_lossy(&captured).into_owned()))
}

/// [`crate::playbook::spec::RUN_KEY_HEADER`], as hyper wants it (lower
/// case).
fn run_key_header() -> HeaderName {
    HeaderName::from_static("x-cer-run-key")
}

/// The run key as a header value. A key is made of names, ids and
/// escaped text; anything a header could not carry (a space, a control
/// or non-ASCII character) is percent-encoded all the same.
fn header_safe(key: &str) -> HeaderValue {
    let mut text = String::with_capacity(key.len());
    for b in key.bytes() {
        if (b'!'..=b'~').contains(&b) {
            text.push(char::from(b));
        } else {
            text.push_str(&format!("%{b:02X}"));
        }
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("-"))
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests;
