//! The HTTPS listener for constituents: TAXII 2.1 (`http`, `collect`) and
//! plain blocklists (`feed`), with per-client tokens (`client`) and TLS
//! (`tls`). Off unless `cerd.toml` has a `[taxii]` section.
//!
//! It reads incidents through the store's read functions on blocking
//! threads, STIX objects through `cer_interop::stix`. Its one write is the
//! inbox (`inbox`): objects posted by clients allowed to write are filed
//! through the node like any filing. No token reaches a log.

pub mod client;
pub mod collect;
pub mod feed;
pub mod http;
pub mod inbox;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

pub use client::Clients;

use crate::node::Node;

/// Largest request body (the API root's `max_content_length`).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Largest request head hyper buffers.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Connections served at once; more wait in the backlog.
pub const MAX_CONNECTIONS: usize = 512;
/// Time for the TLS handshake, and for each request head (the idle timeout).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound listener, ready to serve.
pub struct Listener {
    tcp: TcpListener,
    tls: Tls,
    expires: Option<std::time::SystemTime>,
}

/// The listener's certificate in force, and how to load it again: new
/// connections take the one in force; those open keep theirs.
#[derive(Clone)]
pub struct Tls {
    acceptor: Arc<RwLock<tokio_rustls::TlsAcceptor>>,
    files: Option<(PathBuf, PathBuf)>,
    data_dir: PathBuf,
    listen: SocketAddr,
}

impl Listener {
    /// Binds the address and loads (or generates) the certificate.
    pub async fn bind(config: &crate::config::Taxii, data_dir: &Path) -> anyhow::Result<Listener> {
        let tcp = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding TAXII on {}", config.listen))?;
        let listen = tcp.local_addr().unwrap_or(config.listen);
        let (files, dir) = (config.tls.clone(), data_dir.to_owned());
        let loaded = tokio::task::spawn_blocking(move || tls::load(files.as_ref(), &dir, listen))
            .await
            .context("loading the TAXII certificate")??;
        tracing::info!(
            %listen,
            certificate = %loaded.cert_path.display(),
            sha256 = %loaded.fingerprint,
            generated = loaded.generated,
            "TAXII listening"
        );
        let tls = Tls {
            acceptor: Arc::new(RwLock::new(tokio_rustls::TlsAcceptor::from(loaded.config))),
            files: config.tls.clone(),
            data_dir: data_dir.to_owned(),
            listen,
        };
        Ok(Listener {
            tcp,
            tls,
            expires: loaded.expires,
        })
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.tcp.local_addr().ok()
    }

    /// The handle a reload (SIGHUP) loads the certificate through.
    pub fn tls(&self) -> Tls {
        self.tls.clone()
    }

    /// When the certificate in force expires.
    pub fn cert_expiry(&self) -> Option<std::time::SystemTime> {
        self.expires
    }
}

impl Tls {
    /// Loads the certificate and key again (renewed by the operator or a
    /// tool such as certbot); on any error the one in force stays. Returns
    /// when the new certificate expires. Blocking.
    pub fn reload(&self) -> anyhow::Result<Option<std::time::SystemTime>> {
        let loaded = tls::load(self.files.as_ref(), &self.data_dir, self.listen)?;
        tracing::info!(
            certificate = %loaded.cert_path.display(),
            sha256 = %loaded.fingerprint,
            "TAXII certificate reloaded"
        );
        *self.acceptor.write().unwrap_or_else(|e| e.into_inner()) =
            tokio_rustls::TlsAcceptor::from(loaded.config);
        Ok(loaded.expires)
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Serves until `shutdown` completes, then lets requests in flight finish.
pub async fn serve(
    listener: Listener,
    node: Arc<Node>,
    clients: Arc<Clients>,
    shutdown: impl Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let app = http::router(Arc::new(http::Shared {
        node,
        clients,
        feeds: feed::Cache::default(),
        objects: collect::Cache::default(),
        statuses: inbox::Statuses::default(),
    }));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
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
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.tcp.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot accept a TAXII connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        let acceptor = listener.tls.acceptor();
        let mut closed = closed.clone();
        connections.spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TAXII TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TAXII TLS handshake timed out");
                        return;
                    }
                };
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES);
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
                tracing::debug!(%peer, error = %e, "TAXII connection ended");
            }
        });
    }
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
}
