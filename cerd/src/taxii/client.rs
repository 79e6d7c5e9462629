//! The TAXII server's clients: names, TLP ceilings and token hashes, kept
//! in `taxii-clients.json` in the data dir (mode 0600, replaced
//! atomically), never in the store. A token is shown once, when the
//! client is added; only its SHA-256 is kept. Also each client's rate
//! limit.
//!
//! File I/O happens in [`Clients::load`], [`Clients::add`] and
//! [`Clients::remove`]: call them from blocking threads. Authentication
//! and the rate limit only read memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use cer_proto::api::{AddTaxiiClient, TaxiiClient, TaxiiClientAdded};
use cer_proto::model::{Timestamp, Tlp};
use cer_proto::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The clients file in the data dir.
pub const FILE: &str = "taxii-clients.json";
/// Requests a client may make per second, on average, unless `[taxii]
/// rate_limit` says otherwise; twice as many at once after a quiet spell.
pub const RATE_PER_SECOND: u32 = crate::config::DEFAULT_TAXII_RATE;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Invalid(FieldError),
    #[error("a client named '{0}' exists; remove it first to give it a new token")]
    Exists(String),
    #[error("no client named '{0}'")]
    NotFound(String),
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

/// The registry: loaded once, changed through the local API.
pub struct Clients {
    path: PathBuf,
    entries: RwLock<Vec<Entry>>,
    /// Serializes changes, so two adds never lose one another.
    changing: Mutex<()>,
    buckets: Mutex<HashMap<String, Bucket>>,
    /// Requests per second per client.
    rate: std::sync::atomic::AtomicU32,
}

/// A client as stored: its token only as a hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    name: String,
    max_tlp: Tlp,
    #[serde(default)]
    write: bool,
    added: Timestamp,
    /// SHA-256 of the token, hex.
    token_sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileBody {
    clients: Vec<Entry>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Clients {
    /// Reads the clients file (none: no clients). Blocking.
    pub fn load(data_dir: &Path) -> Result<Clients, ClientError> {
        let path = data_dir.join(FILE);
        let entries = read_file(&path)?;
        Ok(Clients {
            path,
            entries: RwLock::new(entries),
            changing: Mutex::new(()),
            buckets: Mutex::new(HashMap::new()),
            rate: std::sync::atomic::AtomicU32::new(RATE_PER_SECOND),
        })
    }

    /// Reads the clients file again (SIGHUP: an operator edited or
    /// restored it). A file that does not parse leaves the clients in
    /// force unchanged. Returns how many clients there are now. Blocking.
    pub fn reload(&self) -> Result<usize, ClientError> {
        let _changing = lock(&self.changing);
        let entries = read_file(&self.path)?;
        let count = entries.len();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = entries;
        Ok(count)
    }

    pub fn list(&self) -> Vec<TaxiiClient> {
        read(&self.entries).iter().map(Entry::public).collect()
    }

    /// Adds a client with a new random token, saved before it is returned.
    /// Blocking.
    pub fn add(
        &self,
        request: &AddTaxiiClient,
        now: Timestamp,
    ) -> Result<TaxiiClientAdded, ClientError> {
        check_name(&request.name).map_err(|r| ClientError::Invalid(FieldError::new("name", r)))?;
        if request.max_tlp > Tlp::Amber {
            return Err(ClientError::Invalid(FieldError::new(
                "max_tlp",
                format!(
                    "{} is never served; choose clear, green or amber",
                    request.max_tlp
                ),
            )));
        }
        let _changing = lock(&self.changing);
        let mut entries = read(&self.entries).clone();
        if entries.iter().any(|e| e.name == request.name) {
            return Err(ClientError::Exists(request.name.clone()));
        }
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        use base64::Engine as _;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
        let entry = Entry {
            name: request.name.clone(),
            max_tlp: request.max_tlp,
            write: request.write,
            added: now,
            token_sha256: hex::encode(Sha256::digest(token.as_bytes())),
        };
        let client = entry.public();
        entries.push(entry);
        self.save(&entries)?;
        *write(&self.entries) = entries;
        Ok(TaxiiClientAdded { client, token })
    }

    /// Removes a client; its next request is refused. Blocking.
    pub fn remove(&self, name: &str) -> Result<TaxiiClient, ClientError> {
        let _changing = lock(&self.changing);
        let mut entries = read(&self.entries).clone();
        let Some(at) = entries.iter().position(|e| e.name == name) else {
            return Err(ClientError::NotFound(name.to_owned()));
        };
        let removed = entries.remove(at);
        self.save(&entries)?;
        *write(&self.entries) = entries;
        lock(&self.buckets).remove(name);
        Ok(removed.public())
    }

    /// The client a token belongs to. With a name (HTTP Basic), only that
    /// client's hash is compared; without (Bearer), every client's is.
    /// Comparisons take the same time whatever the bytes.
    pub fn authenticate(&self, name: Option<&str>, token: &str) -> Option<TaxiiClient> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let entries = read(&self.entries);
        let mut found = None;
        for entry in entries.iter() {
            let stored = hash_hex(&entry.token_sha256).unwrap_or([0xff; 32]);
            let same = constant_time_eq(&stored, &presented);
            let named = name.is_none_or(|n| n == entry.name);
            if same && named && found.is_none() {
                found = Some(entry.public());
            }
        }
        found
    }

    /// Sets the requests per second each client may make.
    pub fn set_rate(&self, per_second: u32) {
        self.rate
            .store(per_second.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn rate(&self) -> u32 {
        self.rate.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes one request from the client's bucket; false: over its rate.
    pub fn allow(&self, name: &str, now: Instant) -> bool {
        let rate = f64::from(self.rate());
        let burst = 2.0 * rate;
        let mut buckets = lock(&self.buckets);
        let bucket = buckets.entry(name.to_owned()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Writes the file beside itself, syncs it, and renames it over the
    /// old one, so a crash leaves the old or the new file whole.
    fn save(&self, entries: &[Entry]) -> Result<(), ClientError> {
        let failed = |e: std::io::Error| ClientError::File {
            path: self.path.clone(),
            reason: e.to_string(),
        };
        let body = FileBody {
            clients: entries.to_vec(),
        };
        let mut bytes = serde_json::to_vec_pretty(&body).expect("the clients serialize");
        bytes.push(b'\n');
        let temporary = self.path.with_extension("json.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)
                .map_err(failed)?;
            file.write_all(&bytes).map_err(failed)?;
            file.sync_all().map_err(failed)?;
        }
        std::fs::rename(&temporary, &self.path).map_err(failed)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(failed)?;
        }
        Ok(())
    }
}

impl Entry {
    fn public(&self) -> TaxiiClient {
        TaxiiClient {
            name: self.name.clone(),
            max_tlp: self.max_tlp,
            write: self.write,
            added: self.added,
        }
    }
}

/// The clients in a clients file (none when there is no file). Blocking.
fn read_file(path: &Path) -> Result<Vec<Entry>, ClientError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let body: FileBody = serde_json::from_slice(&bytes).map_err(|e| ClientError::File {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
            for entry in &body.clients {
                if hash_hex(&entry.token_sha256).is_none() {
                    return Err(ClientError::File {
                        path: path.to_owned(),
                        reason: format!(
                            "client '{}': token_sha256 is not 64 hex digits",
                            entry.name
                        ),
                    });
                }
            }
            Ok(body.clients)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(ClientError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        }),
    }
}

/// A client name: what HTTP Basic sends as the user, so no `:`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 {
        return Err("must be 1 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "'{}' may contain only ASCII letters, digits and - _ .",
            cer_proto::text::escape(name)
        ));
    }
    Ok(())
}

fn hash_hex(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_reads_the_file_again_and_keeps_the_clients_when_it_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let running = Clients::load(dir.path()).unwrap();
        // Another process (a restore, an operator) writes the file.
        let other = Clients::load(dir.path()).unwrap();
        let request = AddTaxiiClient {
            name: "siem".into(),
            max_tlp: Tlp::Green,
            write: false,
        };
        let now = Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
        let added = other.add(&request, now).unwrap();
        assert!(running.authenticate(None, &added.token).is_none());
        assert_eq!(running.reload().unwrap(), 1);
        assert!(running.authenticate(None, &added.token).is_some());

        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        assert!(running.reload().is_err());
        assert!(running.authenticate(None, &added.token).is_some());
    }

    #[test]
    fn a_token_is_kept_only_as_its_hash_and_works_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let clients = Clients::load(dir.path()).unwrap();
        let request = AddTaxiiClient {
            name: "siem".into(),
            max_tlp: Tlp::Green,
            write: false,
        };
        let added = clients.add(&request, Timestamp::parse("2025-01-01T00:00:00Z").unwrap());
        let added = added.unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(!text.contains(&added.token), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);

        let reloaded = Clients::load(dir.path()).unwrap();
        assert_eq!(
            reloaded.authenticate(None, &added.token).unwrap().name,
            "siem"
        );
        assert!(reloaded.authenticate(Some("siem"), &added.token).is_some());
        assert!(reloaded.authenticate(Some("other"), &added.token).is_none());
        assert!(reloaded.authenticate(None, "wrong").is_none());
        assert!(matches!(
            reloaded.add(&request, added.client.added),
            Err(ClientError::Exists(_))
        ));
        reloaded.remove("siem").unwrap();
        assert!(reloaded.authenticate(None, &added.token).is_none());
    }

    #[test]
    fn names_and_labels_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let clients = Clients::load(dir.path()).unwrap();
        let now = Timestamp::parse("2025-01-01T00:00:00Z").unwrap();
        for (name, tlp, field) in [("a:b", Tlp::Green, "name"), ("ok", Tlp::Red, "max_tlp")] {
            let request = AddTaxiiClient {
                name: name.into(),
                max_tlp: tlp,
                write: false,
            };
            match clients.add(&request, now) {
                Err(ClientError::Invalid(e)) => assert_eq!(e.field, field),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn the_rate_limit_refills_over_time() {
        let dir = tempfile::tempdir().unwrap();
        let clients = Clients::load(dir.path()).unwrap();
        let start = Instant::now();
        let allowed = (0..150).filter(|_| clients.allow("siem", start)).count();
        assert_eq!(allowed, 2 * RATE_PER_SECOND as usize);
        let later = start + std::time::Duration::from_millis(100);
        assert!(clients.allow("siem", later));
    }
}
