//! Watches folders whose contents take effect without a restart: the
//! trust store (`certs/`), the playbooks (`playbooks/`) and the
//! warninglists (`warninglists/`).
//!
//! Architecture invariant: this is the only module that imports notify.
//! Changes are debounced — an editor's save or `cp` of a certificate is
//! several events — and then handed to the node, which reloads and logs
//! what changed.
//!
//! A reload reads every file in the folder, and reading is itself an event
//! on some platforms (inotify's open, access and close-after-read): access
//! events are ignored, and a folder is reloaded only when its listing
//! (names, sizes, modification times) differs from the last one reloaded,
//! so a reload never triggers the next one.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
    _watcher: Box<dyn notify::Watcher + Send>,
    task: JoinHandle<()>,
}

/// How often a folder is read when the kernel's change notification
/// cannot be had (inotify instances used up, an unsupported file system).
pub const POLL: Duration = Duration::from_secs(2);

impl Watcher {
    /// Starts watching the node's trust store and playbooks. A folder that
    /// cannot be watched is logged; its files then load only at start.
    pub fn start(node: Arc<Node>) -> Option<Watcher> {
        let mut watches = Vec::new();
        let folders: [(_, _, Reload); 3] = [
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
            (
                node.config().warninglists_dir.clone(),
                "warninglists",
                Node::reload_warninglists,
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
    let send = move |event: notify::Result<notify::Event>| {
        let _ = tx.send(event);
    };
    let kernel = notify::recommended_watcher(send.clone()).and_then(|mut watcher| {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    let watcher: Box<dyn notify::Watcher + Send> = match kernel {
        Ok(watcher) => Box::new(watcher),
        Err(e) => {
            // Changes are still seen, a little later, rather than only at
            // the next restart.
            tracing::warn!(dir = %dir.display(), error = %e, "no change notification for this folder; reading it every {}s instead", POLL.as_secs());
            let mut watcher =
                notify::PollWatcher::new(send, notify::Config::default().with_poll_interval(POLL))?;
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
            Box::new(watcher)
        }
    };
    let dir = dir.to_owned();
    // The node loaded the folder as it started, before this listing.
    let mut loaded = Listing::of(&dir);
    let task = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if !is_change(&event) {
                continue;
            }
            // Wait for a quiet moment so a half-written file is not read.
            while let Ok(Some(_)) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            // Listed before reading: a change made during the reload
            // differs from this listing, and reloads again. Listing and
            // reloading read files: on a blocking thread.
            let (folder, node) = (dir.clone(), node.clone());
            let reloaded = tokio::task::spawn_blocking(move || {
                let listing = Listing::of(&folder);
                if listing != loaded {
                    tracing::debug!(dir = %folder.display(), "folder changed; reloading");
                    reload(&node);
                }
                listing
            })
            .await;
            match reloaded {
                Ok(listing) => loaded = listing,
                Err(e) => {
                    tracing::error!(error = %e, "reload task failed");
                    return;
                }
            }
        }
    });
    Ok(Watch {
        _watcher: watcher,
        task,
    })
}

/// Whether a notify event may mean the folder's contents changed. Opening
/// and reading (the reload's own included) do not; errors are logged and
/// treated as a change, so the listing decides.
fn is_change(event: &notify::Result<notify::Event>) -> bool {
    match event {
        Ok(event) => {
            use notify::event::{AccessKind, AccessMode};
            match event.kind {
                // A file closed after writing is a change; its writes
                // usually came as events of their own too.
                notify::EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
                notify::EventKind::Access(_) => false,
                _ => true,
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "folder watch error");
            true
        }
    }
}

/// A folder's entries as they stand: name, size and modification time of
/// each (`None` where it cannot be read), sorted. Equal listings mean
/// nothing worth reloading happened.
#[derive(Debug, PartialEq, Eq)]
struct Listing(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

impl Listing {
    fn of(dir: &Path) -> Listing {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| {
                let path = entry.path();
                // Followed: a certificate may be a symbolic link.
                let stamp = std::fs::metadata(&path)
                    .and_then(|m| Ok((m.len(), m.modified()?)))
                    .ok();
                (path, stamp)
            })
            .collect();
        entries.sort();
        Listing(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_changes_with_names_sizes_and_times_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.asc");
        std::fs::write(&a, "one").unwrap();
        let first = Listing::of(dir.path());
        // Reading changes nothing.
        std::fs::read(&a).unwrap();
        assert_eq!(Listing::of(dir.path()), first);
        // A new file, a new size, a new time each do.
        std::fs::write(dir.path().join("b.asc"), "").unwrap();
        let second = Listing::of(dir.path());
        assert_ne!(second, first);
        std::fs::write(&a, "three").unwrap();
        assert_ne!(Listing::of(dir.path()), second);
        let third = Listing::of(dir.path());
        let later = SystemTime::now() + Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_ne!(Listing::of(dir.path()), third);
    }
}
