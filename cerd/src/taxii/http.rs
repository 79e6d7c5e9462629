//! The TAXII 2.1 and feed routes: authentication, the rate limit, media
//! types, the audit of every access, and TAXII error messages. Reads go
//! through `spawn_blocking`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Path as UrlPath, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use base64::Engine as _;
use cer_proto::api::TaxiiClient;
use cer_proto::model::{Timestamp, Tlp};
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::Clients;
use super::collect::{self, Cursor, Query};
use super::feed::{self, Feed};
use super::inbox;
use crate::audit::AUDIT;
use crate::node::{Node, NodeError};

/// The TAXII 2.1 media type, for requests and answers alike.
pub const TAXII: &str = "application/taxii+json;version=2.1";
const STIX: &str = "application/stix+json;version=2.1";
/// The API root's path.
pub const ROOT: &str = "/api/";
/// Largest page a client may ask for; a larger `limit` is cut to it.
pub const MAX_PAGE: usize = 1_000;
const DEFAULT_PAGE: usize = 100;
/// Collections served, by TLP.
pub const COLLECTIONS: [Tlp; 3] = [Tlp::Clear, Tlp::Green, Tlp::Amber];

pub struct Shared {
    pub node: Arc<Node>,
    pub clients: Arc<Clients>,
    pub feeds: feed::Cache,
    pub objects: collect::Cache,
    pub statuses: inbox::Statuses,
}

type Ctx = State<Arc<Shared>>;

/// How many objects or values an answer carried, for the audit.
#[derive(Clone, Copy)]
struct Served(usize);

/// A refusal, answered as a TAXII error message.
pub struct Refusal {
    status: StatusCode,
    title: String,
    description: String,
}

impl Refusal {
    fn new(status: StatusCode, title: &str, description: impl Into<String>) -> Refusal {
        Refusal {
            status,
            title: title.to_owned(),
            description: description.into(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = json!({
            "title": self.title,
            "description": self.description,
            "http_status": self.status.as_u16().to_string(),
        });
        let mut response = taxii_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let headers = response.headers_mut();
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"cerd\""),
            );
            headers.append(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cerd\""),
            );
        }
        if self.status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

impl From<NodeError> for Refusal {
    fn from(e: NodeError) -> Self {
        tracing::error!(error = %e, "TAXII read failed");
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error",
            "the node could not read its store",
        )
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    let taxii = Router::new()
        .route("/taxii2/", get(discovery))
        .route(ROOT, get(api_root))
        .route("/api/collections/", get(collections))
        .route("/api/collections/{id}/", get(collection))
        .route(
            "/api/collections/{id}/objects/",
            get(objects).post(post_objects),
        )
        .route("/api/collections/{id}/objects/{object}/", get(object))
        .route(
            "/api/collections/{id}/objects/{object}/versions/",
            get(versions),
        )
        .route("/api/collections/{id}/manifest/", get(manifest))
        .route("/api/status/{id}/", get(status))
        .layer(middleware::from_fn(media_types));
    Router::new()
        .merge(taxii)
        .route("/feeds/{file}", get(feed))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(super::MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .with_state(shared)
}

/// Who is asking, else 401; over the rate, 429. Then the audit record.
async fn authenticate(State(shared): Ctx, mut request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let Some(client) = credentials(request.headers())
        .and_then(|(name, token)| shared.clients.authenticate(name.as_deref(), &token))
    else {
        tracing::info!(target: AUDIT, event = "taxii_refused", %path, reason = "no valid token", "TAXII access refused");
        return Refusal::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "give a client's token as HTTP Basic (user = client name) or Bearer",
        )
        .into_response();
    };
    if !shared.clients.allow(&client.name, Instant::now()) {
        return Refusal::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests",
            format!("at most {} requests per second", shared.clients.rate()),
        )
        .into_response();
    }
    let name = client.name.clone();
    request.extensions_mut().insert(client);
    let response = next.run(request).await;
    let served = response.extensions().get::<Served>().map_or(0, |s| s.0);
    tracing::info!(
        target: AUDIT,
        event = "taxii_access",
        client = %name,
        %path,
        status = response.status().as_u16(),
        objects = served,
        "TAXII access"
    );
    response
}

/// (client name for Basic, token) from the Authorization header.
fn credentials(headers: &HeaderMap) -> Option<(Option<String>, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some((None, rest.trim().to_owned()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (name, token) = text.split_once(':')?;
    Some((Some(name.to_owned()), token.to_owned()))
}

/// TAXII's media types: an Accept naming TAXII 2.1 (406 otherwise) and,
/// on a request with a body, that Content-Type (415 otherwise).
async fn media_types(request: Request, next: Next) -> Response {
    let accept = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !accept.split(',').any(is_taxii) {
        return Refusal::new(
            StatusCode::NOT_ACCEPTABLE,
            "not acceptable",
            format!("Accept must name {TAXII}"),
        )
        .into_response();
    }
    if request.method() == Method::POST {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !is_taxii(content_type) {
            return Refusal::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported media type",
                format!("Content-Type must be {TAXII}"),
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// `application/taxii+json` with `version=2.1` or no version.
fn is_taxii(range: &str) -> bool {
    let mut parts = range.split(';').map(str::trim);
    if !parts
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/taxii+json"))
    {
        return false;
    }
    parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("version") => v.trim() == "2.1",
        _ => true,
    })
}

fn taxii_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).expect("JSON values serialize");
    (status, [(header::CONTENT_TYPE, TAXII)], bytes).into_response()
}

fn answer(body: &Value, served: usize) -> Response {
    let mut response = taxii_json(StatusCode::OK, body);
    response.extensions_mut().insert(Served(served));
    response
}

async fn discovery(headers: HeaderMap) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let root = format!("https://{host}{ROOT}");
    answer(
        &json!({
            "title": "cerd",
            "description": "Indicators and incidents shared with this CERT, by TLP",
            "default": root,
            "api_roots": [root],
        }),
        0,
    )
}

async fn api_root() -> Response {
    answer(
        &json!({
            "title": "cerd",
            "versions": [TAXII],
            "max_content_length": super::MAX_BODY_BYTES,
        }),
        0,
    )
}

fn collection_id(tlp: Tlp) -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("cerd:taxii:{tlp}").as_bytes())
}

fn inbox_id() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"cerd:taxii:inbox")
}

/// Where clients allowed to write post objects; nothing is read from it.
fn describe_inbox() -> Value {
    json!({
        "id": inbox_id(),
        "title": "inbox",
        "description": "Post STIX 2.1 objects here: this CERT files them as incidents, with the client recorded as their source",
        "alias": "inbox",
        "can_read": false,
        "can_write": true,
        "media_types": [STIX],
    })
}

fn is_inbox(raw: &str) -> bool {
    raw == "inbox" || raw == inbox_id().to_string()
}

fn describe(tlp: Tlp) -> Value {
    json!({
        "id": collection_id(tlp),
        "title": tlp.as_str(),
        "description": format!("Objects marked TLP:{} or lower", tlp.as_str().to_uppercase()),
        "alias": tlp.as_str(),
        "can_read": true,
        "can_write": false,
        "media_types": [STIX],
    })
}

/// The collection `raw` names (its id or its TLP), if the client may read it.
fn find(raw: &str, client: &TaxiiClient) -> Result<Tlp, Refusal> {
    if is_inbox(raw) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the inbox collection is written, never read",
        ));
    }
    let tlp = COLLECTIONS
        .into_iter()
        .find(|t| raw == t.as_str() || raw == collection_id(*t).to_string())
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not found", "no such collection"))?;
    if tlp > client.max_tlp {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this client may read up to TLP:{}",
                client.max_tlp.as_str().to_uppercase()
            ),
        ));
    }
    Ok(tlp)
}

async fn collections(Extension(client): Extension<TaxiiClient>) -> Response {
    let mut listed: Vec<Value> = COLLECTIONS
        .into_iter()
        .filter(|t| *t <= client.max_tlp)
        .map(describe)
        .collect();
    if client.write {
        listed.push(describe_inbox());
    }
    answer(&json!({ "collections": listed }), 0)
}

async fn collection(
    Extension(client): Extension<TaxiiClient>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Refusal> {
    if is_inbox(&id) {
        writer(&client)?;
        return Ok(answer(&describe_inbox(), 0));
    }
    Ok(answer(&describe(find(&id, &client)?), 0))
}

/// The client, if it may post to the inbox.
fn writer(client: &TaxiiClient) -> Result<(), Refusal> {
    if client.write {
        Ok(())
    } else {
        Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this client may not write (cerctl taxii clients add NAME --write)",
        ))
    }
}

async fn post_objects(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Result<Response, Refusal> {
    if !is_inbox(&id) {
        find(&id, &client)?;
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this collection cannot be written; post to the inbox collection",
        ));
    }
    writer(&client)?;
    let status = inbox::post(&shared.node, &shared.statuses, &client, &body)
        .await
        .map_err(|e| match e {
            inbox::PostError::Body(reason) => {
                Refusal::new(StatusCode::BAD_REQUEST, "bad request", reason)
            }
            inbox::PostError::Node(e) => Refusal::from(e),
        })?;
    let count = status["total_count"].as_u64().unwrap_or(0) as usize;
    let mut response = taxii_json(StatusCode::ACCEPTED, &status);
    response.extensions_mut().insert(Served(count));
    Ok(response)
}

async fn status(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Refusal> {
    let status = shared
        .statuses
        .get(&client.name, &id)
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not found", "no such status"))?;
    Ok(answer(&status, 0))
}

/// The query parameters of objects and manifest requests.
fn parse_query(raw: Option<&str>) -> Result<Query, Refusal> {
    let bad = |field: &str, reason: &str| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            "bad request",
            format!("{field}: {reason}"),
        )
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| bad("query", &e.to_string()))?;
    let mut query = Query {
        limit: DEFAULT_PAGE,
        ..Query::default()
    };
    let list = |v: &str| {
        v.split(',')
            .map(|s| s.trim().to_owned())
            .collect::<Vec<_>>()
    };
    let flag = |field: &str, v: &str| match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(field, "must be true or false")),
    };
    for (key, value) in &pairs {
        match key.as_str() {
            "limit" => {
                let limit: usize = value
                    .parse()
                    .map_err(|_| bad("limit", "must be a positive number"))?;
                if limit == 0 {
                    return Err(bad("limit", "must be a positive number"));
                }
                query.limit = limit.min(MAX_PAGE);
            }
            "next" => {
                query.after = Some(
                    Cursor::decode(value)
                        .ok_or_else(|| bad("next", "not a cursor this server gave"))?,
                )
            }
            "added_after" => {
                query.added_after = Some(
                    Timestamp::parse(value).map_err(|_| bad("added_after", "not a timestamp"))?,
                )
            }
            "match[type]" => query.types.extend(list(value)),
            "match[id]" => query.ids.extend(list(value)),
            "match[version]" => query.versions.extend(list(value)),
            "match[spec_version]" => query.spec_versions.extend(list(value)),
            "match[include_expired]" => query.include_expired = flag(key, value)?,
            "match[include_warninglisted]" => query.include_warninglisted = flag(key, value)?,
            other => return Err(bad(other, "unknown parameter")),
        }
    }
    Ok(query)
}

async fn read_page(shared: &Arc<Shared>, tlp: Tlp, query: Query) -> Result<collect::Page, Refusal> {
    let shared = shared.clone();
    tokio::task::spawn_blocking(move || collect::page(&shared.node, &shared.objects, tlp, &query))
        .await
        .map_err(|e| NodeError::Sign(e.to_string()))?
        .map_err(Refusal::from)
}

/// The objects envelope, or a manifest, with the date-added headers.
fn paged(page: collect::Page, manifest: bool) -> Response {
    let first = page.items.first().map(|i| i.added.to_string());
    let last = page.items.last().map(|i| i.added.to_string());
    let count = page.items.len();
    let mut body = json!({ "more": page.next.is_some() });
    if let Some(next) = page.next {
        body["next"] = json!(next.encode());
    }
    let listed: Vec<Value> = page
        .items
        .into_iter()
        .map(|item| {
            if manifest {
                json!({
                    "id": collect::id(&item.object),
                    "date_added": item.added.to_string(),
                    "version": collect::version(&item.object),
                    "media_type": STIX,
                })
            } else {
                item.object
            }
        })
        .collect();
    body["objects"] = Value::Array(listed);
    let mut response = answer(&body, count);
    for (name, value) in [
        ("x-taxii-date-added-first", first),
        ("x-taxii-date-added-last", last),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

async fn objects(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    let tlp = find(&id, &client)?;
    let query = parse_query(raw.as_deref())?;
    Ok(paged(read_page(&shared, tlp, query).await?, false))
}

async fn manifest(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath(id): UrlPath<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    let tlp = find(&id, &client)?;
    let query = parse_query(raw.as_deref())?;
    Ok(paged(read_page(&shared, tlp, query).await?, true))
}

async fn object(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath((id, object)): UrlPath<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    let tlp = find(&id, &client)?;
    let mut query = parse_query(raw.as_deref())?;
    query.ids = vec![object];
    let page = read_page(&shared, tlp, query).await?;
    if page.items.is_empty() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not found",
            "no such object in this collection",
        ));
    }
    Ok(paged(page, false))
}

async fn versions(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath((id, object)): UrlPath<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, Refusal> {
    let tlp = find(&id, &client)?;
    let mut query = parse_query(raw.as_deref())?;
    query.ids = vec![object];
    query.limit = MAX_PAGE;
    let page = read_page(&shared, tlp, query).await?;
    if page.items.is_empty() {
        return Err(Refusal::new(
            StatusCode::NOT_FOUND,
            "not found",
            "no such object in this collection",
        ));
    }
    let mut versions: Vec<String> = page
        .items
        .iter()
        .map(|i| collect::version(&i.object).to_owned())
        .collect();
    versions.sort();
    versions.dedup();
    let count = versions.len();
    Ok(answer(
        &json!({ "more": page.next.is_some(), "versions": versions }),
        count,
    ))
}

/// A feed: ETag (the body's SHA-256) and If-None-Match, gzip on request.
async fn feed(
    State(shared): Ctx,
    Extension(client): Extension<TaxiiClient>,
    UrlPath(file): UrlPath<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let feed = Feed::from_file(&file)
        .ok_or_else(|| Refusal::new(StatusCode::NOT_FOUND, "not found", "no such feed"))?;
    let filter: feed::Filter =
        serde_urlencoded::from_str(raw.as_deref().unwrap_or("")).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad request",
                format!("query: {e}"),
            )
        })?;
    if let Some(pattern) = &filter.class {
        cer_proto::model::Classification::check_pattern(pattern).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad request",
                format!("class: {}", e.reason),
            )
        })?;
    }
    let tlp = client.max_tlp;
    let from = shared.clone();
    let built = tokio::task::spawn_blocking(move || from.feeds.get(&from.node, feed, tlp, &filter))
        .await
        .map_err(|e| NodeError::Sign(e.to_string()))??;
    let etag = built.etag.clone();
    let count = built.count;
    let matched = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.split(';').next().is_some_and(|e| e.trim() == "gzip"))
        });
    let mut response = if matched {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let compressed = tokio::task::spawn_blocking(move || built.gzip())
            .await
            .map_err(|e| NodeError::Sign(e.to_string()))?
            .map_err(|e| NodeError::Sign(e.to_string()))?;
        let mut response = Body::from(compressed).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        response
    } else {
        Body::from(built.body.clone()).into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(feed.content_type()),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
        .extensions_mut()
        .insert(Served(if matched { 0 } else { count }));
    Ok(response)
}

async fn not_found(request: Request) -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        "not found",
        format!("no route {}", request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_ranges() {
        assert!(is_taxii("application/taxii+json;version=2.1"));
        assert!(is_taxii("application/taxii+json; version=2.1"));
        assert!(is_taxii("application/taxii+json"));
        assert!(!is_taxii("application/taxii+json;version=2.0"));
        assert!(!is_taxii("application/json"));
        assert!(!is_taxii("*/*"));
    }

    #[test]
    fn credentials_basic_and_bearer() {
        let mut headers = HeaderMap::new();
        let basic = base64::engine::general_purpose::STANDARD.encode("siem:tok:en");
        headers.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(
            credentials(&headers),
            Some((Some("siem".into()), "tok:en".into()))
        );
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(credentials(&headers), Some((None, "abc".into())));
        headers.insert(header::AUTHORIZATION, "Digest abc".parse().unwrap());
        assert_eq!(credentials(&headers), None);
    }
}
