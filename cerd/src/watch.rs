//! Watches folders whose contents take effect without a restart: the
//! trust store (`certs/`) and the playbooks (`playbooks/`).
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

/// What to call once a watched folder has settled.
type Reload = fn(&Node);

/// Running watches; dropping it stops watching.
pub struct Watcher {
    watches: Vec<Watch>,
}

struct Watch {
    _watcher: notify::RecommendedWatcher,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Starts watching the node's trust store and playbooks. A folder that
    /// cannot be watched is logged; its files then load only at start.
    pub fn start(node: Arc<Node>) -> Option<Watcher> {
        let mut watches = Vec::new();
        let folders: [(_, _, Reload); 2] = [
            (
                node.config().certs_dir.clone(),
                "trust store",
                Node::reload_certs,
            ),
            (
                node.config().playbooks_dir.clone(),
                "playbooks",
                Node::reload_playbooks,
            ),
        ];
        for (dir, what, reload) in folders {
            match watch(&dir, node.clone(), reload) {
                Ok(w) => watches.push(w),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the {what}; changes need a restart");
                }
            }
        }
        Some(Watcher { watches })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        for watch in &self.watches {
            watch.task.abort();
        }
    }
}

fn watch(dir: &Path, node: Arc<Node>, reload: Reload) -> Result<Watch, notify::Error> {
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
            reload(&node);
        }
    });
    Ok(Watch {
        _watcher: watcher,
        task,
    })
}
