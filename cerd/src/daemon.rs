//! Starting and stopping a node: identity, store, API server, and the
//! tasks that run beside them.
//!
//! `main.rs` is a thin shell over [`Daemon::start`] and
//! [`Daemon::shutdown`]; tests run nodes in-process through the same calls.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::audit::AUDIT;
use crate::config::{check_name, Config};
use crate::mesh::{Endpoint, Mesh, Socket};
use crate::node::Node;
use crate::sign::{Identity, Passphrase};
use crate::store::Store;

pub use crate::config::STORE_DIR;
pub use crate::key::IDENTITY_FILE;
/// Fault injection for tests: when set, the node runs without its
/// playbook driver, so stored events wait in the log as after a crash
/// between the store and the driver.
pub const HOLD_PLAYBOOKS: &str = "CERD_FAULT_HOLD_PLAYBOOKS";

pub struct Daemon {
    node: Arc<Node>,
    mesh: Mesh,
    watcher: Option<crate::watch::Watcher>,
    playbooks: Option<JoinHandle<()>>,
    stop: watch::Sender<bool>,
    api: JoinHandle<std::io::Result<()>>,
    taxii: Option<JoinHandle<()>>,
    taxii_tls: Option<crate::taxii::Tls>,
    clients: Arc<crate::taxii::Clients>,
    metrics: Option<JoinHandle<()>>,
}

/// What a reload (SIGHUP) did, for the log and the tests.
#[derive(Debug, Default)]
pub struct Reloaded {
    /// Problems: a file that did not load (the previous version stays).
    pub errors: Vec<String>,
    /// Configuration keys changed in the file that take effect only at
    /// the next start.
    pub needs_restart: Vec<&'static str>,
    /// Configuration keys changed in the file and applied now.
    pub applied: Vec<&'static str>,
}

impl Daemon {
    /// Opens the node's state (initialising a new identity on first start)
    /// and starts serving the API.
    ///
    /// A new identity is saved only once the API socket and the QUIC port
    /// are bound, so a start that fails on either leaves no key behind; and
    /// it is never created for a store that already holds data (see
    /// [`open_or_generate_identity`]).
    pub async fn start(config: Config) -> anyhow::Result<Daemon> {
        let identity = open_or_generate_identity(&config)?;
        create_data_dir(&config.data_dir)?;
        let listener = api::bind(&config.api_socket).await?;
        let taxii_listener = match &config.taxii {
            Some(taxii) => Some(crate::taxii::Listener::bind(taxii, &config.data_dir).await?),
            None => None,
        };
        let metrics_listener = match config.metrics_listen {
            Some(addr) => Some(api::bind_metrics(addr).await?),
            None => None,
        };
        let data_dir = config.data_dir.clone();
        let clients = tokio::task::spawn_blocking(move || crate::taxii::Clients::load(&data_dir))
            .await
            .context("reading the TAXII clients")??;
        if let Some(taxii) = &config.taxii {
            clients.set_rate(taxii.rate_limit);
        }
        let clients = Arc::new(clients);
        let listen = config.listen;
        let socket = Socket::bind(listen).with_context(|| format!("binding QUIC on {listen}"))?;
        let identity = match identity {
            Pending::Loaded(identity) => identity,
            Pending::New(identity) => {
                let given = crate::key::given(&config)?;
                save_identity(&config, &identity, given.as_ref().map(|g| &g.passphrase))?;
                identity
            }
        };
        let store_path = config.data_dir.join(STORE_DIR);
        let options = crate::store::Options {
            cache_bytes: config.store_cache_mib * 1024 * 1024,
        };
        let store = tokio::task::spawn_blocking(move || Store::open(&store_path, options))
            .await
            .context("opening the store")??;
        let peers = config.peers.clone();
        let anti_entropy = config.anti_entropy_interval;
        let node = Node::new(config, identity, store);
        let endpoint = Endpoint::on_socket(socket, node.identity().clone())
            .with_context(|| format!("binding QUIC on {listen}"))?;
        let mesh = Mesh::start(node.clone(), endpoint, peers, anti_entropy).await?;
        node.set_listen(mesh.local_addr());
        let watcher = crate::watch::Watcher::start(node.clone());
        let playbooks = if std::env::var_os(HOLD_PLAYBOOKS).is_some() {
            tracing::warn!(
                "{HOLD_PLAYBOOKS} is set: playbooks do not run; their events wait in the store's log"
            );
            None
        } else {
            Some(crate::playbook::driver::start(
                node.clone(),
                crate::playbook::Runner::default(),
            ))
        };
        let (stop, stopped) = watch::channel(false);
        let taxii_tls = taxii_listener.as_ref().map(|listener| {
            node.metrics().set_taxii_cert_expiry(listener.cert_expiry());
            listener.tls()
        });
        let metrics_addr = metrics_listener
            .as_ref()
            .and_then(|listener| listener.local_addr().ok());
        let metrics = metrics_listener.map(|listener| {
            tokio::spawn(api::serve_metrics(
                listener,
                node.clone(),
                wait_for(stopped.clone()),
            ))
        });
        let taxii = taxii_listener.map(|listener| {
            tokio::spawn(crate::taxii::serve(
                listener,
                node.clone(),
                clients.clone(),
                wait_for(stopped.clone()),
            ))
        });
        let api = tokio::spawn(api::serve(
            listener,
            node.clone(),
            clients.clone(),
            wait_for(stopped),
        ));
        let status = node.status();
        tracing::info!(
            name = %status.name,
            fingerprint = %status.fingerprint,
            api_socket = %status.api_socket,
            listen = %mesh.local_addr(),
            metrics = ?metrics_addr,
            envelopes = status.envelopes,
            incidents = status.incidents,
            "cerd ready"
        );
        Ok(Daemon {
            node,
            mesh,
            watcher,
            playbooks,
            stop,
            api,
            taxii,
            taxii_tls,
            clients,
            metrics,
        })
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Reloads what can change without a restart (SIGHUP): the trust
    /// store, playbooks and warninglists (as their watcher does), the
    /// TAXII certificate and clients file; and reads the configuration
    /// file again to name the keys that changed, which need a restart.
    /// A file that does not load leaves its previous version in force.
    pub async fn reload(&self) -> Reloaded {
        let node = self.node.clone();
        let tls = self.taxii_tls.clone();
        let clients = self.clients.clone();
        let done = tokio::task::spawn_blocking(move || {
            let mut reloaded = Reloaded::default();
            node.reload_certs();
            node.reload_playbooks();
            node.reload_warninglists();
            if let Some(tls) = tls {
                match tls.reload() {
                    Ok(expires) => node.metrics().set_taxii_cert_expiry(expires),
                    Err(e) => reloaded
                        .errors
                        .push(format!("TAXII certificate (the previous one stays): {e:#}")),
                }
                if let Err(e) = clients.reload() {
                    reloaded
                        .errors
                        .push(format!("TAXII clients (the previous ones stay): {e}"));
                }
            }
            if let Some(path) = node.config().source.clone() {
                match Config::load(&path) {
                    Ok(config) => {
                        reloaded.needs_restart = node.config().changed_keys(&config);
                        // A client's rate limit applies from its next request.
                        if let (Some(old), Some(new)) = (&node.config().taxii, &config.taxii) {
                            if old.rate_limit != new.rate_limit {
                                clients.set_rate(new.rate_limit);
                                reloaded.applied.push("taxii.rate_limit");
                            }
                        }
                    }
                    Err(errors) => reloaded.errors.extend(errors.iter().map(|e| e.to_string())),
                }
            }
            node.metrics().reloaded();
            reloaded
        })
        .await;
        let reloaded = done.unwrap_or_else(|e| Reloaded {
            errors: vec![format!("reload task failed: {e}")],
            ..Reloaded::default()
        });
        for error in &reloaded.errors {
            tracing::warn!(error = %cer_proto::text::escape(error), "reload");
        }
        if !reloaded.applied.is_empty() {
            tracing::info!(
                keys = %reloaded.applied.join(", "),
                "configuration changed; applied"
            );
        }
        if !reloaded.needs_restart.is_empty() {
            tracing::warn!(
                keys = %reloaded.needs_restart.join(", "),
                "configuration changed; these keys take effect at the next restart"
            );
        }
        tracing::info!(target: AUDIT, event = "reloaded", problems = reloaded.errors.len(), "reloaded certificates, playbooks, warninglists and TAXII files");
        reloaded
    }

    /// Stops accepting requests, lets in-flight ones finish, and flushes.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        drop(self.watcher);
        if let Some(playbooks) = &self.playbooks {
            playbooks.abort();
        }
        self.mesh.shutdown().await;
        let _ = self.stop.send(true);
        if let Some(metrics) = self.metrics {
            if let Err(e) = metrics.await {
                tracing::warn!(error = %e, "metrics task failed");
            }
        }
        if let Some(taxii) = self.taxii {
            if let Err(e) = taxii.await {
                tracing::warn!(error = %e, "TAXII task failed");
            }
        }
        match self.api.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "API server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "API task failed"),
        }
        let store = self.node.store().clone();
        tokio::task::spawn_blocking(move || store.close())
            .await
            .context("closing the store")?
            .context("closing the store")?;
        let _ = std::fs::remove_file(&self.node.config().api_socket);
        tracing::info!("cerd stopped");
        Ok(())
    }
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Creates the node's identity in its data dir, its secret key protected
/// by `passphrase` when one is given. Fails if one exists, and
/// for a store that already holds data unless `force` (the store's
/// envelopes stay signed by the old key; new ones are signed by the new).
pub fn init(
    config: &Config,
    name: &str,
    force: bool,
    passphrase: Option<&Passphrase>,
) -> anyhow::Result<Identity> {
    check_name(name).map_err(|reason| anyhow::anyhow!("name: {reason}"))?;
    let key_path = config.data_dir.join(IDENTITY_FILE);
    if key_path.exists() {
        let (existing, _) =
            Identity::peek(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
        bail!(
            "{} is already initialised as {} ({}); remove {} to start over",
            config.data_dir.display(),
            existing.name(),
            existing.fingerprint(),
            key_path.display()
        );
    }
    if !force {
        refuse_populated_store(
            config,
            "run `cerd init --force` to create a new identity for it",
        )?;
    }
    create_data_dir(&config.data_dir)?;
    let identity = Identity::generate(name.trim()).context("generating the node's key")?;
    save_identity(config, &identity, passphrase)?;
    Ok(identity)
}

/// The identity a start runs with: loaded, or generated and not yet saved.
enum Pending {
    Loaded(Identity),
    New(Identity),
}

/// Loads the identity, or generates one for a first start (embedded
/// defaults) without saving it. A data dir whose store holds data but whose
/// key is missing is refused: a new key would silently make this a
/// different node, whose peers do not trust it.
fn open_or_generate_identity(config: &Config) -> anyhow::Result<Pending> {
    let key_path = config.data_dir.join(IDENTITY_FILE);
    if key_path.exists() {
        let pending = crate::key::pending_path(config);
        if pending.exists() {
            bail!(
                "a key rotation was interrupted ({} exists): run `cerd key rotate` again to finish it",
                pending.display()
            );
        }
        let identity = crate::key::load(config)?;
        if let Some(name) = &config.name {
            if name.trim() != identity.name() {
                tracing::warn!(
                    configured = %name,
                    identity = identity.name(),
                    "configured name differs from the identity's; the identity's name is used"
                );
            }
        }
        return Ok(Pending::Loaded(identity));
    }
    refuse_populated_store(
        config,
        "restore the key from a backup, or run `cerd init --force --name NAME` to give this store a new identity",
    )?;
    let name = config.name.clone().unwrap_or_else(default_name);
    check_name(&name).map_err(|reason| anyhow::anyhow!("name: {reason}"))?;
    let identity = Identity::generate(name.trim()).context("generating the node's key")?;
    Ok(Pending::New(identity))
}

/// Fails when the key file is missing but `<data_dir>/store` exists and is
/// not empty. The store is not opened for this.
fn refuse_populated_store(config: &Config, remedy: &str) -> anyhow::Result<()> {
    let store = config.data_dir.join(STORE_DIR);
    let populated = match std::fs::read_dir(&store) {
        Ok(mut entries) => entries.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e).with_context(|| format!("reading {}", store.display())),
    };
    if populated {
        bail!(
            "the node's key {} is missing but its store {} holds data; {remedy}",
            config.data_dir.join(IDENTITY_FILE).display(),
            store.display()
        );
    }
    Ok(())
}

/// Writes the key file (protected by `passphrase` if given), the public
/// certificate beside it, and the key's revocation certificate (0600).
fn save_identity(
    config: &Config,
    identity: &Identity,
    passphrase: Option<&Passphrase>,
) -> anyhow::Result<()> {
    let key_path = config.data_dir.join(IDENTITY_FILE);
    identity
        .save_with(&key_path, passphrase)
        .with_context(|| format!("writing {}", key_path.display()))?;
    let revocation = crate::key::revocation_path(&config.data_dir, identity.name());
    identity
        .save_revocation(&revocation)
        .with_context(|| format!("writing {}", revocation.display()))?;
    let cert_path = public_cert_path(&config.data_dir, identity.name());
    std::fs::write(&cert_path, identity.public_armored())
        .with_context(|| format!("writing {}", cert_path.display()))?;
    tracing::info!(
        target: AUDIT,
        event = "identity_created",
        name = identity.name(),
        fingerprint = %identity.fingerprint(),
        certificate = %cert_path.display(),
        revocation = %revocation.display(),
        protected = passphrase.is_some(),
        "node identity created"
    );
    Ok(())
}

/// Where `cerd init` writes the public certificate for sharing.
pub fn public_cert_path(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join(format!("{}.asc", crate::trust::file_safe(name)))
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating data dir {}", dir.display()))
}

/// A new node without a configured name is named after its host.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| check_name(h).is_ok());
    host.unwrap_or_else(|| "cerd".to_owned())
}
