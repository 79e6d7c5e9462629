//! `GET /v1/backup`: an online backup streamed as the store is read, so
//! its size is not limited by memory and the node keeps filing and
//! syncing while it runs.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use cer_proto::api::{BackupQuery, ErrorCode};

use super::{ApiResult, Failure, Peer};
use crate::node::Node;

/// Bytes gathered before they are sent as one piece.
const CHUNK: usize = 256 * 1024;

pub async fn backup(
    State(node): State<Arc<Node>>,
    Extension(peer): Extension<Peer>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query: BackupQuery = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| Failure::new(ErrorCode::InvalidField, format!("query: {e}")))?;
    // Analysts in the socket's group may back the node up, but the key
    // that signs as this CERT goes only to root or cerd's own user.
    if query.include_secret_key && !peer.is_owner() {
        return Err(Failure::new(
            ErrorCode::Forbidden,
            "include_secret_key: only root or the user cerd runs as may take the secret key",
        ));
    }
    let (sender, body) = http_body_util::channel::Channel::<Bytes, std::io::Error>::new(4);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks {
            sender,
            runtime,
            chunk: Vec::with_capacity(CHUNK),
        };
        match node.backup(query.include_secret_key, &mut out) {
            Ok(_) => {}
            Err(e) => {
                tracing::error!(error = %e, "backup stopped");
                out.sender.abort(std::io::Error::other(e.to_string()));
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/octet-stream")],
        axum::body::Body::new(body),
    )
        .into_response())
}

/// A `Write` that sends what it is given down the response body.
struct Chunks {
    sender: http_body_util::channel::Sender<Bytes, std::io::Error>,
    runtime: tokio::runtime::Handle,
    chunk: Vec<u8>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        let data = Bytes::from(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(CHUNK),
        ));
        self.runtime
            .block_on(self.sender.send_data(data))
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })
    }
}

impl std::io::Write for Chunks {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.chunk.extend_from_slice(buf);
        if self.chunk.len() >= CHUNK {
            self.send()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        self.send()
    }
}
