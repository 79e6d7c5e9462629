//! The local HTTP/JSON API on a Unix socket (DESIGN §8).
//!
//! Architecture invariant: this is the only module that knows HTTP. It
//! turns requests into [`Node`] calls and [`NodeError`]s into JSON errors
//! with the right status; it holds no state of its own. A refused request
//! changes nothing: every check happens before the node publishes.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cer_proto::api::{
    AcknowledgeIncident, AddCert, ApiError, ErrorCode, ExportQuery, FileIncident, IncidentQuery,
    IocQuery, PeerList, RetractIncident, UpdateIncident,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

use crate::node::{Node, NodeError};

mod backup;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest export `POST /v1/sign` signs.
pub const MAX_SIGN_BYTES: usize = 1024 * 1024 * 1024;

/// Binds the API socket with mode 0660, replacing a stale socket file left
/// by a node that is no longer running.
///
/// Only a socket is ever removed: `api_socket` may be misconfigured to point
/// at the node's key, a directory or a symlink, and none of those is ours to
/// delete. Anything but a socket at the path is refused and left alone.
pub async fn bind(path: &Path) -> anyhow::Result<UnixListener> {
    use anyhow::Context;
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(metadata) => {
            let file_type = metadata.file_type();
            if !file_type.is_socket() {
                anyhow::bail!(
                    "api_socket {} is {}, not a socket; refusing to replace it (choose another api_socket)",
                    path.display(),
                    describe_file_type(&file_type)
                );
            }
            if tokio::net::UnixStream::connect(path).await.is_ok() {
                anyhow::bail!(
                    "another cerd is already serving {}; stop it first or choose another data_dir",
                    path.display()
                );
            }
            std::fs::remove_file(path)
                .with_context(|| format!("removing stale socket {}", path.display()))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("inspecting api_socket {}", path.display()))
        }
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("binding API socket {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("setting mode 0660 on {}", path.display()))?;
    Ok(listener)
}

/// How long a client has to send a request's head: from connecting, and
/// between requests on a kept-alive connection (hyper counts that wait as
/// reading the next head), so it is also the idle timeout. Then the
/// connection is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. Further clients wait in the socket's
/// backlog, holding none of the daemon's file descriptors.
pub const MAX_CONNECTIONS: usize = 256;

/// What the API server allows each client: [`HEADER_READ_TIMEOUT`] and
/// [`MAX_CONNECTIONS`] unless a test needs them shorter.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serves the API until `shutdown` completes, then lets requests in
/// flight finish.
pub async fn serve(
    listener: UnixListener,
    node: Arc<Node>,
    clients: Arc<crate::taxii::Clients>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(node).layer(axum::Extension(clients));
    serve_router(listener, app, Limits::default(), shutdown).await;
    Ok(())
}

/// The accept loop: one task per connection, at most
/// `limits.max_connections` of them, each closed if its client is silent
/// for `limits.header_read_timeout` before a request.
async fn serve_router<L: Accept>(
    listener: L,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.next_stream() => match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: let connections end
                    // rather than spin.
                    tracing::warn!(error = %e, "cannot accept an API connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let peer = L::peer(&stream);
        let service = TowerToHyperService::new(app.clone().layer(axum::Extension(peer)));
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let finished = tokio::select! {
                result = connection.as_mut() => Some(result),
                _ = closed.wait_for(|c| *c) => None,
            };
            let result = match finished {
                Some(result) => result,
                None => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "API connection ended");
            }
        });
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}

/// Connections the metrics listener serves at once: a scraper or two and
/// a health probe.
pub const MAX_METRICS_CONNECTIONS: usize = 16;

/// Binds the Prometheus listener (`[metrics] listen`).
pub async fn bind_metrics(addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    use anyhow::Context;
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics listener on {addr}"))
}

/// Serves `GET /metrics` (OpenMetrics text) and `GET /health` (200 "ok",
/// or 503 with the reason) on plain HTTP until `shutdown` completes. It
/// answers nothing else: no incident data is reachable from it.
pub async fn serve_metrics(
    listener: TcpListener,
    node: Arc<Node>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health_text))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(node);
    let limits = Limits {
        header_read_timeout: HEADER_READ_TIMEOUT,
        max_connections: MAX_METRICS_CONNECTIONS,
    };
    serve_router(listener, app, limits, shutdown).await;
}

/// Where the accept loop takes connections from: the API's Unix socket
/// or the metrics listener's TCP port.
trait Accept {
    type Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static;
    fn next_stream(&self) -> impl Future<Output = std::io::Result<Self::Stream>> + Send;
    /// Who is at the other end, as far as the kernel says.
    fn peer(stream: &Self::Stream) -> Peer;
}

/// The user a request's connection comes from: known on the Unix socket
/// (`SO_PEERCRED`), not over TCP.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: Option<u32>,
}

impl Peer {
    /// Root, or the user cerd runs as: who may take what only cerd's own
    /// files hold (the secret key in a backup). Members of the socket's
    /// group are analysts, not that.
    pub fn is_owner(&self) -> bool {
        match self.uid {
            Some(0) => true,
            Some(uid) => uid == own_uid(),
            None => false,
        }
    }
}

/// The user this process runs as.
fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn next_stream(&self) -> std::io::Result<Self::Stream> {
        UnixListener::accept(self).await.map(|(stream, _)| stream)
    }
    fn peer(stream: &Self::Stream) -> Peer {
        Peer {
            uid: stream.peer_cred().ok().map(|c| c.uid()),
        }
    }
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;
    async fn next_stream(&self) -> std::io::Result<Self::Stream> {
        TcpListener::accept(self).await.map(|(stream, _)| stream)
    }
    fn peer(_: &Self::Stream) -> Peer {
        Peer { uid: None }
    }
}

pub fn router(node: Arc<Node>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/health", get(health))
        .route("/v1/incidents", get(list_incidents).post(file_incident))
        .route("/v1/incidents/{id}", get(show_incident))
        .route("/v1/incidents/{id}/updates", post(update_incident))
        .route("/v1/incidents/{id}/retraction", post(retract_incident))
        .route("/v1/incidents/{id}/receipts", post(acknowledge_incident))
        .route("/v1/incidents/{id}/sightings", post(sight_indicator))
        .route("/v1/indicators", get(search_indicators))
        .route("/v1/peers", get(peers))
        .route("/v1/certs", get(certs).post(add_cert))
        .route(
            "/v1/certs/{fingerprint}",
            axum::routing::delete(remove_cert),
        )
        .route("/v1/export", get(export))
        .route("/v1/backup", get(backup::backup))
        .route("/v1/playbooks", get(playbooks))
        .route("/v1/playbooks/check", post(check_playbook))
        .route("/v1/playbooks/test", post(test_playbook))
        .route("/v1/playbooks/runs", get(playbook_runs))
        .route("/v1/playbooks/acted", get(playbook_acted))
        .route(
            "/v1/sign",
            post(sign_export).layer(DefaultBodyLimit::max(MAX_SIGN_BYTES)),
        )
        .route("/v1/playbooks/resume", post(resume_playbook))
        .route("/v1/playbooks/forget", post(forget_playbook))
        .route(
            "/v1/taxii/clients",
            get(taxii_clients).post(add_taxii_client),
        )
        .route(
            "/v1/taxii/clients/{name}",
            axum::routing::delete(remove_taxii_client),
        )
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(node.clone(), trace_request))
        .with_state(node)
}

type Node_ = State<Arc<Node>>;
type ApiResult<T> = Result<T, Failure>;

/// An error response: status plus the JSON body clients parse.
pub struct Failure(ApiError);

impl Failure {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure(ApiError::new(code, message))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = ErrorCode::ALL
            .iter()
            .find(|c| self.0.is(**c))
            .map(|c| c.http_status())
            .unwrap_or(500);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(self.0)).into_response()
    }
}

impl From<NodeError> for Failure {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Invalid(errors) => Failure(ApiError::invalid(&errors)),
            NodeError::NotFound(m) => Failure::new(ErrorCode::NotFound, m),
            NodeError::Forbidden(m) => Failure::new(ErrorCode::Forbidden, m),
            NodeError::Conflict(m) => Failure::new(ErrorCode::Conflict, m),
            NodeError::TooLarge(m) => Failure::new(ErrorCode::TooLarge, m),
            other => {
                tracing::error!(error = %other, "request failed");
                Failure::new(ErrorCode::Internal, other.to_string())
            }
        }
    }
}

/// The request body, or a JSON error for one that is too large or unreadable.
type Body = Result<Bytes, BytesRejection>;

fn json_body<T: DeserializeOwned>(body: Body) -> ApiResult<T> {
    let body = body.map_err(|rejection| {
        let code = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::TooLarge
        } else {
            ErrorCode::BadRequest
        };
        Failure::new(code, format!("request body: {}", rejection.body_text()))
    })?;
    if body.is_empty() {
        return Err(Failure::new(
            ErrorCode::BadRequest,
            "request body is empty; expected JSON",
        ));
    }
    serde_json::from_slice(&body).map_err(|e| {
        let code = match e.classify() {
            serde_json::error::Category::Data => ErrorCode::InvalidField,
            _ => ErrorCode::BadRequest,
        };
        Failure::new(code, format!("request body: {e}"))
    })
}

fn query<T: DeserializeOwned + Default>(raw: Option<String>) -> ApiResult<T> {
    match raw {
        None => Ok(T::default()),
        Some(raw) => serde_urlencoded::from_str(&raw)
            .map_err(|e| Failure::new(ErrorCode::InvalidField, format!("query: {e}"))),
    }
}

fn incident_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| {
        Failure::new(
            ErrorCode::InvalidField,
            format!("incident id: '{raw}' is not a UUID"),
        )
    })
}

/// Runs a node call that reads the store or files on a blocking thread, so
/// no runtime worker waits on the disk.
async fn blocking<T: Send + 'static>(
    node: Arc<Node>,
    call: impl FnOnce(&Node) -> Result<T, NodeError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || call(&node))
        .await
        .map_err(|e| Failure::new(ErrorCode::Internal, format!("request failed: {e}")))?
        .map_err(Failure::from)
}

fn created<T: Serialize>(value: T) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

async fn status(State(node): Node_) -> ApiResult<Json<cer_proto::api::Status>> {
    Ok(Json(blocking(node, |n| Ok(n.status())).await?))
}

async fn health(State(node): Node_) -> Json<cer_proto::api::Health> {
    Json(node.health().await)
}

async fn health_text(State(node): Node_) -> Response {
    let health = node.health().await;
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, format!("{}\n", health.reason())).into_response()
}

async fn file_incident(State(node): Node_, body: Body) -> ApiResult<Response> {
    let request: FileIncident = json_body(body)?;
    Ok(created(node.file(request).await?))
}

async fn list_incidents(State(node): Node_, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q: IncidentQuery = query(raw)?;
    Ok(Json(blocking(node, move |n| n.list(&q)).await?).into_response())
}

async fn show_incident(State(node): Node_, UrlPath(id): UrlPath<String>) -> ApiResult<Response> {
    let id = incident_id(&id)?;
    Ok(Json(blocking(node, move |n| n.detail(id)).await?).into_response())
}

async fn update_incident(
    State(node): Node_,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = incident_id(&id)?;
    let request: UpdateIncident = json_body(body)?;
    Ok(created(node.update(id, request).await?))
}

async fn retract_incident(
    State(node): Node_,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = incident_id(&id)?;
    let request: RetractIncident = match &body {
        Ok(bytes) if bytes.is_empty() => RetractIncident::default(),
        _ => json_body(body)?,
    };
    Ok(created(node.retract(id, request).await?))
}

async fn sight_indicator(
    State(node): Node_,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = incident_id(&id)?;
    let request: cer_proto::api::SightIndicator = json_body(body)?;
    Ok(created(node.sight(id, request).await?))
}

async fn acknowledge_incident(
    State(node): Node_,
    UrlPath(id): UrlPath<String>,
    body: Body,
) -> ApiResult<Response> {
    let id = incident_id(&id)?;
    let request: AcknowledgeIncident = json_body(body)?;
    Ok(created(node.acknowledge(id, request).await?))
}

async fn add_cert(State(node): Node_, body: Body) -> ApiResult<Response> {
    let request: AddCert = json_body(body)?;
    let armored = request.armored.clone();
    let info = blocking(node.clone(), move |n| n.add_cert(&request.armored)).await?;
    // A revocation applied here goes to every node, as an envelope.
    if crate::sign::is_revocation(armored.as_bytes()) {
        node.publish_revocation(&armored).await?;
    }
    Ok(created(info))
}

async fn remove_cert(State(node): Node_, UrlPath(fpr): UrlPath<String>) -> ApiResult<Response> {
    let fingerprint =
        cer_proto::Fingerprint::parse(&fpr).map_err(|e| Failure(ApiError::from(e)))?;
    Ok(Json(blocking(node, move |n| n.remove_cert(&fingerprint)).await?).into_response())
}

async fn search_indicators(State(node): Node_, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let Some(raw) = raw else {
        return Err(Failure::new(
            ErrorCode::InvalidField,
            "query: value is required",
        ));
    };
    let q: IocQuery = serde_urlencoded::from_str(&raw)
        .map_err(|e| Failure::new(ErrorCode::InvalidField, format!("query: {e}")))?;
    let found = blocking(node, move |n| {
        let mut found = n.search_ioc(&q)?;
        n.describe_matches(&mut found)?;
        Ok(found)
    })
    .await?;
    Ok(Json(found).into_response())
}

async fn peers(State(node): Node_) -> Json<PeerList> {
    Json(node.peers())
}

async fn certs(State(node): Node_) -> Json<cer_proto::api::CertList> {
    Json(node.certs())
}

/// `GET /v1/export`: one envelope per line (NDJSON), streamed as the store
/// is read, so an export has no size limit and holds no more than a few
/// envelopes in memory. A failure half-way ends the body with an error.
async fn export(State(node): Node_, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let Some(raw) = raw else {
        return Err(Failure::new(
            ErrorCode::InvalidField,
            "query: format is required",
        ));
    };
    let q: ExportQuery = serde_urlencoded::from_str(&raw)
        .map_err(|e| Failure::new(ErrorCode::InvalidField, format!("query: {e}")))?;
    let check = q.clone();
    blocking(node.clone(), move |n| n.export_check(&check)).await?;
    let (mut lines, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut chunk = Vec::with_capacity(EXPORT_CHUNK + 4096);
        let mut open = true;
        let result = node.export_each(&q, &mut |envelope| {
            if serde_json::to_writer(&mut chunk, &envelope).is_err() {
                return false;
            }
            chunk.push(b'\n');
            if chunk.len() >= EXPORT_CHUNK {
                let data = Bytes::from(std::mem::take(&mut chunk));
                open = runtime.block_on(lines.send_data(data)).is_ok();
            }
            open
        });
        match result {
            Ok(_) if open && !chunk.is_empty() => {
                let _ = runtime.block_on(lines.send_data(Bytes::from(chunk)));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "export stopped");
                lines.abort(std::io::Error::other(e.to_string()));
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::new(body),
    )
        .into_response())
}

/// Bytes of NDJSON gathered before they are sent as one piece.
const EXPORT_CHUNK: usize = 64 * 1024;

async fn playbooks(State(node): Node_) -> ApiResult<Response> {
    Ok(Json(blocking(node, |n| n.playbook_list()).await?).into_response())
}

async fn resume_playbook(State(node): Node_, body: Body) -> ApiResult<Response> {
    let request: cer_proto::api::ResumePlaybook = json_body(body)?;
    Ok(Json(node.resume_playbook(&request).await?).into_response())
}

async fn forget_playbook(State(node): Node_, body: Body) -> ApiResult<Response> {
    let request: cer_proto::api::ForgetPlaybook = json_body(body)?;
    Ok(Json(node.forget_playbook(&request).await?).into_response())
}

/// Signs an export (STIX bundle, MISP event or feed, CSV) with the node's
/// key: an ASCII-armored detached signature `gpg --verify` accepts.
async fn sign_export(State(node): Node_, body: Body) -> ApiResult<Response> {
    let body = body.map_err(|rejection| {
        Failure::new(
            ErrorCode::TooLarge,
            format!("request body: {}", rejection.body_text()),
        )
    })?;
    let signature = blocking(node, move |n| n.sign_export(&body)).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/pgp-signature")],
        signature,
    )
        .into_response())
}

async fn playbook_acted(State(node): Node_, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q: cer_proto::api::ActedQuery = query(raw)?;
    Ok(Json(blocking(node, move |n| n.acted_list(&q)).await?).into_response())
}

async fn check_playbook(body: Body) -> ApiResult<Response> {
    let request: cer_proto::api::CheckPlaybook = json_body(body)?;
    let check = crate::playbook::spec::check(&request.yaml, &request.file);
    Ok(Json(check).into_response())
}

async fn test_playbook(State(node): Node_, body: Body) -> ApiResult<Response> {
    let request: cer_proto::api::TestPlaybook = json_body(body)?;
    let run = request.run;
    let (mut test, actions) = blocking(node.clone(), move |n| n.test_playbook(&request)).await?;
    if run {
        test.ran = crate::playbook::driver::run_test(&node, actions).await;
    }
    Ok(Json(test).into_response())
}

async fn playbook_runs(State(node): Node_, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q: cer_proto::api::RunQuery = query(raw)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let runs = blocking(node, move |n| {
        let keep = |run: &cer_proto::api::RunRecord| {
            q.incident.is_none_or(|id| run.incident == Some(id))
                && q.playbook.as_ref().is_none_or(|p| run.playbook == *p)
        };
        n.store().runs(&keep, limit).map_err(NodeError::Store)
    })
    .await?;
    Ok(Json(cer_proto::api::RunList { runs }).into_response())
}

type TaxiiClients = axum::Extension<Arc<crate::taxii::Clients>>;

async fn taxii_clients(axum::Extension(clients): TaxiiClients) -> Response {
    let list = cer_proto::api::TaxiiClientList {
        clients: clients.list(),
    };
    Json(list).into_response()
}

async fn add_taxii_client(
    axum::Extension(clients): TaxiiClients,
    body: Body,
) -> ApiResult<Response> {
    let request: cer_proto::api::AddTaxiiClient = json_body(body)?;
    let now = crate::audit::now();
    let added = tokio::task::spawn_blocking(move || clients.add(&request, now))
        .await
        .map_err(|e| Failure::new(ErrorCode::Internal, format!("request failed: {e}")))?
        .map_err(taxii_failure)?;
    tracing::info!(target: crate::audit::AUDIT, event = "taxii_client_added", client = %added.client.name, max_tlp = %added.client.max_tlp, write = added.client.write, "TAXII client added");
    Ok(created(added))
}

async fn remove_taxii_client(
    axum::Extension(clients): TaxiiClients,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<Response> {
    let removed = tokio::task::spawn_blocking(move || clients.remove(&name))
        .await
        .map_err(|e| Failure::new(ErrorCode::Internal, format!("request failed: {e}")))?
        .map_err(taxii_failure)?;
    tracing::info!(target: crate::audit::AUDIT, event = "taxii_client_removed", client = %removed.name, "TAXII client removed");
    Ok(Json(removed).into_response())
}

fn taxii_failure(e: crate::taxii::client::ClientError) -> Failure {
    use crate::taxii::client::ClientError as E;
    match e {
        E::Invalid(field) => Failure(ApiError::from(field)),
        E::Exists(_) => Failure::new(ErrorCode::Conflict, e.to_string()),
        E::NotFound(_) => Failure::new(ErrorCode::NotFound, e.to_string()),
        E::File { .. } => Failure::new(ErrorCode::Internal, e.to_string()),
    }
}

async fn metrics(State(node): Node_) -> ApiResult<Response> {
    let text = blocking(node, |n| Ok(n.metrics_text())).await?;
    Ok(([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], text).into_response())
}

async fn not_found(request: Request) -> Failure {
    Failure::new(
        ErrorCode::NotFound,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> Failure {
    Failure::new(
        ErrorCode::MethodNotAllowed,
        format!(
            "method {} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn trace_request(State(node): Node_, request: Request, next: Next) -> Response {
    let span = tracing::info_span!("api", method = %request.method(), path = %request.uri().path());
    // The route's pattern, not the path: label values stay few.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method: &'static str = match request.method().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        _ => "other",
    };
    async move {
        let started = Instant::now();
        let response = next.run(request).await;
        let took = started.elapsed();
        let status = response.status().as_u16();
        tracing::debug!(status, micros = took.as_micros() as u64, "request served");
        node.metrics().api_request(&route, method, status, took);
        response
    }
    .instrument(span)
    .await
}

/// What a non-socket file at the API socket path is, for the refusal message.
fn describe_file_type(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else if file_type.is_fifo() {
        "a named pipe"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "not a socket"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_root_or_cerds_own_user_is_the_owner() {
        let own = own_uid();
        assert!(Peer { uid: Some(own) }.is_owner());
        assert!(Peer { uid: Some(0) }.is_owner());
        let other = if own == 4_000_000 {
            4_000_001
        } else {
            4_000_000
        };
        assert!(!Peer { uid: Some(other) }.is_owner());
        assert!(!Peer { uid: None }.is_owner());
    }

    fn refusal(path: &Path) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        match runtime.block_on(bind(path)) {
            Ok(_) => panic!("bind accepted {}", path.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn bind_refuses_a_regular_file_and_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("identity.key");
        std::fs::write(&key, b"secret key").unwrap();
        let message = refusal(&key);
        assert!(message.contains("identity.key"), "{message}");
        assert!(message.contains("a regular file"), "{message}");
        assert_eq!(std::fs::read(&key).unwrap(), b"secret key");
    }

    #[test]
    fn bind_refuses_a_directory_and_leaves_it() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("store");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("db"), b"data").unwrap();
        let message = refusal(&sub);
        assert!(message.contains("a directory"), "{message}");
        assert!(sub.join("db").exists());
    }

    #[test]
    fn bind_refuses_a_symlink_even_to_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("real.sock");
        drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
        let link = dir.path().join("api.sock");
        std::os::unix::fs::symlink(&socket, &link).unwrap();
        let message = refusal(&link);
        assert!(message.contains("a symbolic link"), "{message}");
        assert!(socket.exists() && link.symlink_metadata().is_ok());

        let dangling = dir.path().join("dangling.sock");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        let message = refusal(&dangling);
        assert!(message.contains("a symbolic link"), "{message}");
        assert!(dangling.symlink_metadata().is_ok());
    }

    #[tokio::test]
    async fn bind_replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let listener = bind(&path).await.expect("a stale socket is replaced");
        let message = format!("{:#}", bind(&path).await.expect_err("live socket refused"));
        assert!(message.contains("already serving"), "{message}");
        drop(listener);
    }

    /// A server on a fresh socket answering `GET /` with "ok", and a way to
    /// stop it.
    fn small_server(
        limits: Limits,
    ) -> (
        tempfile::TempDir,
        std::path::PathBuf,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve_router(listener, app, limits, async {
            let _ = stopped.await;
        }));
        (dir, path, stop)
    }

    /// Reads until the server closes the connection; returns what it sent.
    async fn read_to_close(stream: &mut tokio::net::UnixStream) -> String {
        use tokio::io::AsyncReadExt;
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server closes the connection")
            .unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn a_silent_client_is_disconnected_after_the_header_timeout() {
        use tokio::io::AsyncWriteExt;
        let limits = Limits {
            header_read_timeout: Duration::from_millis(300),
            max_connections: 8,
        };
        let (_dir, path, _stop) = small_server(limits);
        let started = Instant::now();
        // One sends nothing, one half a request head, one a whole request
        // and then stays silent on the kept-alive connection.
        let mut silent = tokio::net::UnixStream::connect(&path).await.unwrap();
        let mut partial = tokio::net::UnixStream::connect(&path).await.unwrap();
        partial.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut idle = tokio::net::UnixStream::connect(&path).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        assert!(!read_to_close(&mut silent).await.contains("200"));
        assert!(!read_to_close(&mut partial).await.contains("200"));
        let answered = read_to_close(&mut idle).await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_for_a_free_place() {
        use tokio::io::AsyncWriteExt;
        let limits = Limits {
            header_read_timeout: Duration::from_millis(500),
            max_connections: 2,
        };
        let (_dir, path, _stop) = small_server(limits);
        let started = Instant::now();
        let mut held: Vec<_> = Vec::new();
        for _ in 0..2 {
            held.push(tokio::net::UnixStream::connect(&path).await.unwrap());
        }
        let mut third = tokio::net::UnixStream::connect(&path).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        // Served only once the server dropped a silent one at its timeout.
        let answered = read_to_close(&mut third).await;
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(
            started.elapsed() >= Duration::from_millis(500),
            "the third connection was served while two were held: {:?}",
            started.elapsed()
        );
    }
}
