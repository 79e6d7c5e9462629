//! A client for cerd's local API: HTTP/1.1 and JSON over the node's Unix
//! socket (routes in [`cer_proto::api`]).
//!
//! This module owns hyper and the socket; nothing else in cerctl knows
//! HTTP. It holds one kept-alive connection and re-dials only when the
//! daemon closed it before a request was sent, so a request is never
//! sent twice.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cer_proto::api::{
    ApiError, CertList, ExportQuery, ExportedEnvelope, FileIncident, Filed, IncidentDetail,
    IncidentList, IncidentQuery, IocQuery, IocSearch, PeerList, RetractIncident, Status,
    UpdateIncident,
};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::UnixStream;
use uuid::Uuid;

/// Largest response body accepted. An export of a large store is the
/// biggest legitimate answer; anything beyond this is a broken daemon.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// How long error bodies that are not API errors are quoted in messages.
const QUOTED_BODY_CHARS: usize = 200;

/// How long cerctl waits for cerd by default: to connect, and for each
/// request's answer.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to one cerd node's API.
pub struct Client {
    socket: PathBuf,
    sender: SendRequest<Full<Bytes>>,
    /// Limit for connecting and for each request (for an export, for each
    /// piece of the answer).
    timeout: Duration,
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket (or it cannot be opened).
    #[error(
        "cannot connect to cerd at {} (is cerd running? start it with `cerd run`, or set --socket / CERD_SOCKET)",
        socket.display()
    )]
    NotRunning { socket: PathBuf, source: io::Error },
    /// The daemon answered with an error; the message is the daemon's.
    #[error("{error}")]
    Api { status: u16, error: ApiError },
    /// The daemon's answer was not what the API promises.
    #[error("{0}")]
    Protocol(String),
    /// The connection broke after the request was sent: the daemon may or
    /// may not have acted on it.
    #[error("{0}")]
    Lost(String),
    /// cerd did not answer in time: it is stuck, or busier than the
    /// timeout allows. A request may or may not have been acted on.
    #[error(
        "cerd at {} did not answer {doing} within {} (is it stuck or overloaded? --timeout sets how long to wait)",
        socket.display(),
        humantime::format_duration(*timeout)
    )]
    TimedOut {
        socket: PathBuf,
        doing: String,
        timeout: Duration,
    },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How often a filing is sent when its answer is lost (the same request id
/// each time).
const FILE_TRIES: u32 = 4;

impl ClientError {
    /// The API error code (`not_found`, `invalid_field`, ...), when the
    /// daemon sent one.
    pub fn api_code(&self) -> Option<&str> {
        match self {
            ClientError::Api { error, .. } => Some(&error.error.code),
            _ => None,
        }
    }
}

impl Client {
    /// Connects to the API socket. Fails with [`ClientError::NotRunning`]
    /// when nothing listens there.
    pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
        Client::connect_with_timeout(socket, DEFAULT_TIMEOUT).await
    }

    /// Like [`Client::connect`], waiting at most `timeout` to connect and
    /// for each answer afterwards ([`ClientError::TimedOut`]).
    pub async fn connect_with_timeout(
        socket: &Path,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let sender = within(timeout, socket, "the connection", dial(socket)).await?;
        Ok(Client {
            socket: socket.to_owned(),
            sender,
            timeout,
        })
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `GET /v1/status`
    pub async fn status(&mut self) -> Result<Status, ClientError> {
        self.get_json("/v1/status").await
    }

    /// `POST /v1/incidents`, safe to repeat: the request carries an id
    /// (a new one unless the caller set it), and when the answer is lost
    /// (the connection broke, the daemon restarted) the same request is
    /// sent again. cerd answers a repeated id with the first filing, so a
    /// retry never files a second incident.
    pub async fn file_incident(&mut self, incident: &FileIncident) -> Result<Filed, ClientError> {
        let mut incident = incident.clone();
        incident.request_id.get_or_insert_with(Uuid::new_v4);
        let mut wait = std::time::Duration::from_millis(100);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.post_json("/v1/incidents", &incident).await {
                Err(ClientError::Lost(_) | ClientError::NotRunning { .. })
                    if tries < FILE_TRIES =>
                {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                    let redial = dial(&self.socket);
                    if let Ok(sender) =
                        within(self.timeout, &self.socket, "the connection", redial).await
                    {
                        self.sender = sender;
                    }
                }
                other => return other,
            }
        }
    }

    /// `GET /v1/incidents?...`
    pub async fn list_incidents(
        &mut self,
        query: &IncidentQuery,
    ) -> Result<IncidentList, ClientError> {
        self.get_json(&with_query("/v1/incidents", query)?).await
    }

    /// `GET /v1/incidents/{id}`
    pub async fn incident(&mut self, id: Uuid) -> Result<IncidentDetail, ClientError> {
        self.get_json(&format!("/v1/incidents/{id}")).await
    }

    /// `POST /v1/incidents/{id}/updates`
    pub async fn update_incident(
        &mut self,
        id: Uuid,
        update: &UpdateIncident,
    ) -> Result<Filed, ClientError> {
        self.post_json(&format!("/v1/incidents/{id}/updates"), update)
            .await
    }

    /// `POST /v1/incidents/{id}/retraction`
    pub async fn retract_incident(
        &mut self,
        id: Uuid,
        retraction: &RetractIncident,
    ) -> Result<Filed, ClientError> {
        self.post_json(&format!("/v1/incidents/{id}/retraction"), retraction)
            .await
    }

    /// `POST /v1/incidents/{id}/sightings`
    pub async fn sight(
        &mut self,
        id: Uuid,
        sighting: &cer_proto::api::SightIndicator,
    ) -> Result<Filed, ClientError> {
        self.post_json(&format!("/v1/incidents/{id}/sightings"), sighting)
            .await
    }

    /// `POST /v1/sign`: an armored detached signature over `bytes` by the
    /// node's key.
    pub async fn sign(&mut self, bytes: &[u8]) -> Result<Bytes, ClientError> {
        self.request(
            Method::POST,
            "/v1/sign",
            Some(Bytes::copy_from_slice(bytes)),
        )
        .await
    }

    /// `GET /v1/indicators?...`
    pub async fn search_ioc(&mut self, query: &IocQuery) -> Result<IocSearch, ClientError> {
        self.get_json(&with_query("/v1/indicators", query)?).await
    }

    /// `GET /v1/peers`
    pub async fn peers(&mut self) -> Result<PeerList, ClientError> {
        self.get_json("/v1/peers").await
    }

    /// `GET /v1/health`
    pub async fn health(&mut self) -> Result<cer_proto::api::Health, ClientError> {
        self.get_json("/v1/health").await
    }

    /// `GET /v1/certs`
    pub async fn certs(&mut self) -> Result<CertList, ClientError> {
        self.get_json("/v1/certs").await
    }

    /// `GET /v1/backup?...`: writes the backup to `out` as it arrives.
    /// Returns its size in bytes.
    pub async fn backup(
        &mut self,
        query: &cer_proto::api::BackupQuery,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, ClientError> {
        let path = with_query("/v1/backup", query)?;
        let mut size = 0;
        self.stream(&path, |data: &[u8]| {
            size += data.len() as u64;
            out.write_all(data)
                .map_err(|e| ClientError::Protocol(format!("writing the backup: {e}")))
        })
        .await?;
        Ok(size)
    }

    /// GETs `path` and hands each piece of the body to `each` as it
    /// arrives. Each piece may take the timeout, not the whole.
    async fn stream<E: From<ClientError>>(
        &mut self,
        path: &str,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let (timeout, socket) = (self.timeout, self.socket.clone());
        let doing = format!("GET {path}");
        let response = within(timeout, &socket, &doing, self.send(Method::GET, path, None)).await?;
        if !response.status().is_success() {
            return Err(self.failure(&Method::GET, path, response).await.into());
        }
        let mut body = response.into_body();
        loop {
            let piece = async { Ok::<_, ClientError>(body.frame().await) };
            let Some(frame) = within(timeout, &socket, &doing, piece).await? else {
                return Ok(());
            };
            let frame = frame.map_err(|e| broken(&Method::GET, path, &e))?;
            if let Ok(data) = frame.into_data() {
                each(&data)?;
            }
        }
    }

    /// `GET /v1/export?...`: hands each envelope to `each` as it arrives,
    /// so an export larger than memory (or than any answer limit) goes
    /// through. Returns how many there were.
    pub async fn export<E: From<ClientError>>(
        &mut self,
        query: &ExportQuery,
        mut each: impl FnMut(ExportedEnvelope) -> Result<(), E>,
    ) -> Result<u64, E> {
        let path = with_query("/v1/export", query)?;
        let mut pending: Vec<u8> = Vec::new();
        let mut count = 0;
        self.stream(&path, |data: &[u8]| -> Result<(), E> {
            pending.extend_from_slice(data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let envelope: ExportedEnvelope = serde_json::from_slice(&line).map_err(|e| {
                    ClientError::Protocol(format!(
                        "GET {path}: envelope {} is not valid: {e}",
                        count + 1
                    ))
                })?;
                count += 1;
                each(envelope)?;
            }
            if pending.len() > MAX_EXPORT_LINE {
                return Err(ClientError::Protocol(format!(
                    "GET {path}: an exported envelope is longer than {} MiB",
                    MAX_EXPORT_LINE / (1024 * 1024)
                ))
                .into());
            }
            Ok(())
        })
        .await?;
        if !pending.is_empty() {
            return Err(ClientError::Lost(format!(
                "GET {path}: the export ended in the middle of an envelope"
            ))
            .into());
        }
        Ok(count)
    }

    /// `GET` a path (with its query string) and decode the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(
        &mut self,
        path_and_query: &str,
    ) -> Result<T, ClientError> {
        let body = self.request(Method::GET, path_and_query, None).await?;
        decode(&Method::GET, path_and_query, &body)
    }

    /// `POST` a JSON body to a path and decode the JSON answer.
    pub async fn post_json<B, T>(&mut self, path: &str, body: &B) -> Result<T, ClientError>
    where
        B: Serialize + ?Sized,
        T: DeserializeOwned,
    {
        let json = serde_json::to_vec(body).map_err(|e| {
            ClientError::Protocol(format!("cannot encode the request to POST {path}: {e}"))
        })?;
        let answer = self
            .request(Method::POST, path, Some(Bytes::from(json)))
            .await?;
        decode(&Method::POST, path, &answer)
    }

    /// `DELETE` a path and decode the JSON answer.
    pub async fn delete_json<T: DeserializeOwned>(&mut self, path: &str) -> Result<T, ClientError> {
        let body = self.request(Method::DELETE, path, None).await?;
        decode(&Method::DELETE, path, &body)
    }

    /// `GET` a path and return the raw body (e.g. `/metrics`).
    pub async fn get_bytes(&mut self, path_and_query: &str) -> Result<Bytes, ClientError> {
        self.request(Method::GET, path_and_query, None).await
    }

    /// Sends one request and returns the body of a 2xx answer; any other
    /// status becomes [`ClientError::Api`] (or `Protocol` if the body is
    /// not an API error).
    async fn request(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<Bytes, ClientError> {
        let (timeout, socket) = (self.timeout, self.socket.clone());
        let doing = format!("{method} {path}");
        let exchange = async {
            let response = self.send(method.clone(), path, body).await?;
            if !response.status().is_success() {
                return Err(self.failure(&method, path, response).await);
            }
            read_limited(&method, path, response).await
        };
        within(timeout, &socket, &doing, exchange).await
    }

    /// Sends one request and returns the answer's head, its body unread.
    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        if self.sender.ready().await.is_err() {
            // The daemon closed the idle connection (restart, idle
            // timeout). Nothing was sent yet, so dialling again is safe.
            self.sender = dial(&self.socket).await?;
            self.sender
                .ready()
                .await
                .map_err(|e| broken(&method, path, &e))?;
        }
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            // Required by HTTP/1.1; the socket, not the name, picks the node.
            .header(HOST, "localhost")
            .header(ACCEPT, "application/json");
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| {
                ClientError::Protocol(format!("cannot build the request {method} {path}: {e}"))
            })?;
        self.sender
            .send_request(request)
            .await
            .map_err(|e| broken(&method, path, &e))
    }

    /// The error an answer other than 2xx stands for.
    async fn failure(
        &mut self,
        method: &Method,
        path: &str,
        response: hyper::Response<hyper::body::Incoming>,
    ) -> ClientError {
        let status = response.status();
        let bytes = match read_limited(method, path, response).await {
            Ok(bytes) => bytes,
            Err(e) => return e,
        };
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => ClientError::Api {
                status: status.as_u16(),
                error,
            },
            Err(_) => ClientError::Protocol(format!(
                "cerd answered {status} to {method} {path}: {}",
                quote(&bytes)
            )),
        }
    }
}

/// An answer's whole body, up to [`MAX_RESPONSE_BYTES`].
async fn read_limited(
    method: &Method,
    path: &str,
    response: hyper::Response<hyper::body::Incoming>,
) -> Result<Bytes, ClientError> {
    Ok(Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ClientError::Protocol(format!(
                    "the answer to {method} {path} is larger than {} MiB",
                    MAX_RESPONSE_BYTES / (1024 * 1024)
                ))
            } else {
                ClientError::Protocol(format!(
                    "reading the answer to {method} {path}: {}",
                    chain(&*e)
                ))
            }
        })?
        .to_bytes())
}

/// `future`, or [`ClientError::TimedOut`] once `timeout` has passed.
async fn within<T>(
    timeout: Duration,
    socket: &Path,
    doing: &str,
    future: impl std::future::Future<Output = Result<T, ClientError>>,
) -> Result<T, ClientError> {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::TimedOut {
                socket: socket.to_owned(),
                doing: doing.to_owned(),
                timeout,
            })
        })
}

/// Longest line of an export: one envelope and its signature, encoded.
const MAX_EXPORT_LINE: usize = 4 * 1024 * 1024;

/// Encodes a flat query struct as `key=value&...`: `None` fields are left
/// out, strings, numbers and booleans are percent-encoded. Nested values
/// are refused, since the API's queries have none.
pub fn query_string<Q: Serialize + ?Sized>(query: &Q) -> Result<String, ClientError> {
    let value = serde_json::to_value(query)
        .map_err(|e| ClientError::Protocol(format!("cannot encode the query: {e}")))?;
    let serde_json::Value::Object(fields) = value else {
        return Err(ClientError::Protocol(
            "a query must be a struct of named fields".into(),
        ));
    };
    let mut out = String::new();
    for (key, value) in fields {
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                return Err(ClientError::Protocol(format!(
                    "query field '{key}' is not a single value"
                )))
            }
        };
        if !out.is_empty() {
            out.push('&');
        }
        percent_encode(&key, &mut out);
        out.push('=');
        percent_encode(&text, &mut out);
    }
    Ok(out)
}

fn with_query<Q: Serialize + ?Sized>(path: &str, query: &Q) -> Result<String, ClientError> {
    let query = query_string(query)?;
    Ok(if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    })
}

/// Everything but RFC 3986 unreserved characters is escaped; in
/// particular `+` (timestamps' offsets), which form decoding reads as a
/// space.
fn percent_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

async fn dial(socket: &Path) -> Result<SendRequest<Full<Bytes>>, ClientError> {
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| ClientError::NotRunning {
            socket: socket.to_owned(),
            source,
        })?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| {
            ClientError::Protocol(format!(
                "HTTP handshake with cerd at {}: {}",
                socket.display(),
                chain(&e)
            ))
        })?;
    // The connection task ends by itself once every sender is dropped.
    tokio::spawn(async move {
        // Errors surface to the caller through the pending request.
        let _ = connection.await;
    });
    Ok(sender)
}

fn decode<T: DeserializeOwned>(method: &Method, path: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| {
        ClientError::Protocol(format!(
            "cerd's answer to {method} {path} is not what this cerctl expects (version mismatch?): {e}"
        ))
    })
}

fn broken(method: &Method, path: &str, e: &hyper::Error) -> ClientError {
    ClientError::Lost(format!("{method} {path}: {}", chain(e)))
}

/// An error and its causes on one line: hyper's own messages are terse
/// ("connection closed") and the reason is in the source.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    match text.char_indices().nth(QUOTED_BODY_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cer_proto::api::ExportFormat;
    use cer_proto::model::{Severity, Timestamp};

    use crate::fake::{Fake, Reply};

    #[test]
    fn query_skips_absent_fields_and_escapes_values() {
        let query = IncidentQuery {
            since: Some("2026-11-28T13:00:00+01:00".parse::<Timestamp>().unwrap()),
            severity_at_least: Some(Severity::High),
            from: Some("KE CIRT&co".into()),
            classification: Some("fraud/*".into()),
            limit: Some(20),
            include_retracted: true,
            ..IncidentQuery::default()
        };
        let encoded = query_string(&query).unwrap();
        // Field order is serde_json's map order, which the server ignores.
        let mut pairs: Vec<&str> = encoded.split('&').collect();
        pairs.sort_unstable();
        assert_eq!(
            pairs,
            [
                "classification=fraud%2F%2A",
                "from=KE%20CIRT%26co",
                "include_retracted=true",
                "limit=20",
                "severity_at_least=high",
                "since=2026-11-28T12%3A00%3A00Z",
            ]
        );
    }

    #[test]
    fn empty_query_leaves_the_path_alone() {
        assert_eq!(
            with_query("/v1/incidents", &IncidentQuery::default()).unwrap(),
            "/v1/incidents"
        );
        let export = ExportQuery {
            format: ExportFormat::Envelopes,
            incident: None,
        };
        assert_eq!(
            with_query("/v1/export", &export).unwrap(),
            "/v1/export?format=envelopes"
        );
    }

    #[test]
    fn plus_and_non_ascii_are_percent_encoded() {
        let mut out = String::new();
        percent_encode("a+b é", &mut out);
        assert_eq!(out, "a%2Bb%20%C3%A9");
    }

    #[test]
    fn nested_query_values_are_refused() {
        #[derive(Serialize)]
        struct Nested {
            list: Vec<u8>,
        }
        assert!(query_string(&Nested { list: vec![1] }).is_err());
    }

    fn status_json() -> String {
        serde_json::json!({
            "name": "KE-CIRT", "fingerprint": "A".repeat(40), "version": "0.1.0",
            "data_dir": "cerd-data", "api_socket": "cerd-data/cerd.sock", "uptime_seconds": 5,
            "envelopes": 1, "tombstones": 0, "incidents": 1, "indicators": 1, "authors": 1,
            "store_bytes": 4096, "trusted_certs": 2, "peers_connected": 0, "peers_configured": 1,
            "equivocations": 0
        })
        .to_string()
    }

    /// The first answer is lost after cerd took the request: the filing is
    /// sent again with the same request id, which cerd answers with the
    /// first filing instead of a second incident.
    #[tokio::test]
    async fn a_filing_whose_answer_is_lost_is_sent_again_with_the_same_id() {
        let filed = r#"{"incident":"00000000-0000-0000-0000-000000000001","envelope":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"kind":"incident"}"#;
        let fake = Fake::start(vec![Reply::hang_up(), Reply::json(201, filed)]);
        let mut client = Client::connect(&fake.socket).await.unwrap();
        let incident = FileIncident::new(
            "lost answer",
            cer_proto::model::Severity::Low,
            cer_proto::model::Tlp::Green,
            cer_proto::model::Classification::parse("test/test").unwrap(),
        );
        let answer = client.file_incident(&incident).await.unwrap();
        assert_eq!(answer.seq, 1);
        let seen = fake.finish().await;
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!((seen[0].connection, seen[1].connection), (0, 1));
        let ids: Vec<serde_json::Value> = seen
            .iter()
            .map(|s| {
                serde_json::from_str::<serde_json::Value>(&s.body).unwrap()["request_id"].clone()
            })
            .collect();
        assert!(ids[0].is_string(), "{ids:?}");
        assert_eq!(ids[0], ids[1]);
    }

    /// An export arrives line by line, beyond the limit on whole answers.
    #[tokio::test]
    async fn an_export_larger_than_any_answer_limit_streams_through() {
        let line = serde_json::to_string(&ExportedEnvelope {
            id: cer_proto::EnvelopeId::of(b"x"),
            json: "x".repeat(1500),
            sig: "c2ln".into(),
        })
        .unwrap();
        let count = MAX_RESPONSE_BYTES / line.len() + 1000;
        let mut body = String::with_capacity(count * (line.len() + 1));
        for _ in 0..count {
            body.push_str(&line);
            body.push('\n');
        }
        let fake = Fake::start(vec![Reply {
            content_type: "application/x-ndjson",
            ..Reply::json(200, body)
        }]);
        let mut client = Client::connect(&fake.socket).await.unwrap();
        let query = ExportQuery {
            format: cer_proto::api::ExportFormat::Envelopes,
            incident: None,
        };
        let mut seen = 0usize;
        let total = client
            .export(&query, |envelope| -> Result<(), ClientError> {
                assert_eq!(envelope.json.len(), 1500);
                seen += 1;
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!((total as usize, seen), (count, count));
        fake.finish().await;
    }

    #[tokio::test]
    async fn requests_share_one_connection_and_errors_are_typed() {
        let invalid = ApiError::invalid(&cer_proto::FieldErrors::from(cer_proto::FieldError::new(
            "title",
            "must not be empty",
        )));
        let fake = Fake::start(vec![
            Reply::json(200, status_json()),
            Reply::json(422, serde_json::to_string(&invalid).unwrap()),
            Reply {
                status: 502,
                content_type: "text/plain",
                body: "upstream went away".into(),
                ..Reply::json(502, "")
            },
            Reply::json(200, "{\"peers\": \"not a list\"}"),
        ]);
        let mut client = Client::connect(&fake.socket).await.unwrap();

        let status = client.status().await.unwrap();
        assert_eq!(status.name, "KE-CIRT");

        let retraction = RetractIncident {
            reason: Some("dup".into()),
            envelope: None,
        };
        let err = client
            .retract_incident(Uuid::nil(), &retraction)
            .await
            .unwrap_err();
        match &err {
            ClientError::Api { status, error } => {
                assert_eq!(*status, 422);
                assert_eq!(error.error.fields.len(), 1);
            }
            other => panic!("expected an API error, got {other:?}"),
        }
        assert_eq!(err.to_string(), "title: must not be empty");
        assert_eq!(err.api_code(), Some("invalid_field"));

        let err = client.certs().await.unwrap_err();
        assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
        assert!(
            err.to_string().contains("502") && err.to_string().contains("upstream went away"),
            "{err}"
        );

        let err = client.peers().await.unwrap_err();
        assert!(err.to_string().contains("GET /v1/peers"), "{err}");

        let seen = fake.finish().await;
        let requests: Vec<(usize, &str)> = seen
            .iter()
            .map(|s| (s.connection, s.request.as_str()))
            .collect();
        assert_eq!(
            requests,
            [
                (0, "GET /v1/status"),
                (
                    0,
                    &*format!("POST /v1/incidents/{}/retraction", Uuid::nil())
                ),
                (0, "GET /v1/certs"),
                (0, "GET /v1/peers"),
            ]
        );
        assert_eq!(seen[1].body, "{\"reason\":\"dup\"}");
    }

    #[tokio::test]
    async fn a_connection_closed_by_the_daemon_is_dialled_again() {
        let mut first = Reply::json(200, status_json());
        first.close = true;
        let fake = Fake::start(vec![first, Reply::json(200, status_json())]);
        let mut client = Client::connect(&fake.socket).await.unwrap();
        client.status().await.unwrap();
        client.status().await.unwrap();
        let seen = fake.finish().await;
        assert_eq!(
            seen.iter().map(|s| s.connection).collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[tokio::test]
    async fn missing_socket_is_not_running_and_names_the_socket() {
        let socket = std::env::temp_dir().join(format!("cerctl-test-{}.sock", Uuid::new_v4()));
        let err = match Client::connect(&socket).await {
            Err(err) => err,
            Ok(_) => panic!("connected to a socket that does not exist"),
        };
        assert!(matches!(err, ClientError::NotRunning { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(&socket.display().to_string()), "{message}");
        assert!(message.contains("cerd run"), "{message}");
        assert!(message.contains("CERD_SOCKET"), "{message}");
    }
}
