//! Watches folders whose contents take effect without a restart: the
//! trust store (`certs/`).
//!
//! Architecture invariant: this is the only module that imports notify.
//! Changes are debounced — an editor's save or `cp` of a certificate is
//! several events — and then handed to the node, which reloads and logs
//! what changed.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::node::Node;

/// Quiet time after the last change before reloading.
pub const DEBOUNCE: Duration = Duration::from_millis(250);

/// A running watch; dropping it stops watching.
pub struct Watcher {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Starts watching the node's trust store. Returns None (with a log
    /// line) when the folder cannot be watched; the node then still runs,
    /// with certificates reloaded only at start.
    pub fn start(node: Arc<Node>) -> Option<Watcher> {
        let dir = node.config().certs_dir.clone();
        match watch(&dir, node) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the trust store; changes need a restart");
                None
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn watch(dir: &Path, node: Arc<Node>) -> Result<Watcher, notify::Error> {
    std::fs::create_dir_all(dir).map_err(notify::Error::io)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let _ = tx.send(event);
    })?;
    watcher.watch(dir, RecursiveMode::NonRecursive)?;
    let task = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if let Err(e) = event {
                tracing::warn!(error = %e, "trust store watch error");
            }
            // Wait for a quiet moment so a half-written file is not read.
            while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            node.reload_certs();
        }
    });
    Ok(Watcher {
        _watcher: watcher,
        task,
    })
}
