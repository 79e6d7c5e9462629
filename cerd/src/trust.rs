//! The trust store in force: the certificates in `certs/` (plus this
//! node's own), what the last load refused, and the files themselves —
//! adding and removing a certificate writes or deletes them.
//!
//! It knows nothing of the node around it: reloads return whether anything
//! changed, and the caller announces it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use cer_proto::api::{CertInfo, CertList, RefusedCert};
use cer_proto::Fingerprint;

use crate::audit::AUDIT;
use crate::sign::{self, CertError, TrustStore, TrustedCert, MAX_CERT_BYTES};
use crate::verify::{self, Transition};

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("certificate: {0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{what} {}: {source}", path.display())]
    Files {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The subfolder of `certs/` this node manages: the new keys it adopted,
/// each with the key transition that proves it.
pub const ADOPTED_DIR: &str = "adopted";

pub struct Trust {
    dir: PathBuf,
    own: TrustedCert,
    state: RwLock<State>,
}

/// The trust store plus what the last load refused, for `cerctl certs`.
struct State {
    certs: TrustStore,
    refused: Vec<Refused>,
}

/// A file the last load refused, and why.
#[derive(PartialEq, Eq)]
struct Refused {
    path: PathBuf,
    reason: String,
    /// Size and modification time when refused: a file is reported again
    /// only once it changed.
    stamp: Option<(u64, SystemTime)>,
}

impl Trust {
    /// Loads `dir`. `own` (this node's certificate) is always trusted.
    pub fn load(dir: &Path, own: TrustedCert) -> Trust {
        let trust = Trust {
            dir: dir.to_owned(),
            own,
            state: RwLock::new(State {
                certs: TrustStore::new(),
                refused: Vec::new(),
            }),
        };
        let _ = trust.reload();
        trust
    }

    /// Reloads the folder, logging what was added, removed or refused. A
    /// refused file is logged once per change, not on every reload.
    /// Returns whether the set of trusted keys changed.
    pub fn reload(&self) -> bool {
        let (mut certs, refused) = TrustStore::load_dir(&self.dir);
        let refused: Vec<Refused> = refused
            .into_iter()
            .map(|(path, error)| Refused {
                stamp: stamp(&path),
                reason: error.to_string(),
                path,
            })
            .collect();
        certs.insert(self.own.clone());
        let adopted = apply_adopted(&mut certs, &self.dir.join(ADOPTED_DIR));
        let refused: Vec<Refused> = refused
            .into_iter()
            .chain(adopted.into_iter().map(|(path, reason)| Refused {
                stamp: stamp(&path),
                reason,
                path,
            }))
            .collect();
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        for refusal in refused.iter().filter(|r| !state.refused.contains(r)) {
            tracing::warn!(target: AUDIT, event = "cert_refused", file = %refusal.path.display(), error = %refusal.reason, "certificate refused");
        }
        let mut changed = false;
        for cert in certs.iter() {
            if state.certs.get(cert.fingerprint()).is_none() {
                changed = true;
            }
            let was_revoked = state
                .certs
                .get(cert.fingerprint())
                .and_then(TrustedCert::revoked);
            if let Some(revoked) = cert.revoked().filter(|_| was_revoked.is_none()) {
                changed = true;
                tracing::warn!(target: AUDIT, event = "cert_revoked", name = cert.name(), fingerprint = %cert.fingerprint(), revoked = %sign::rfc3339(revoked), "certificate revoked: its signatures from then on are refused and its node is disconnected");
            }
            if state.certs.get(cert.fingerprint()).is_none()
                && cert.fingerprint() != self.own.fingerprint()
            {
                tracing::info!(target: AUDIT, event = "cert_added", name = cert.name(), fingerprint = %cert.fingerprint(), "certificate trusted");
                if cert.had_secret() {
                    warn_secret(cert);
                }
            }
        }
        for cert in state.certs.iter() {
            if certs.get(cert.fingerprint()).is_none() {
                changed = true;
                tracing::info!(target: AUDIT, event = "cert_removed", name = cert.name(), fingerprint = %cert.fingerprint(), "certificate no longer trusted");
            }
        }
        *state = State { certs, refused };
        changed
    }

    /// A snapshot of the trust store.
    pub fn snapshot(&self) -> TrustStore {
        self.with(|t| t.clone())
    }

    pub fn with<T>(&self, f: impl FnOnce(&TrustStore) -> T) -> T {
        f(&self.state.read().unwrap_or_else(|e| e.into_inner()).certs)
    }

    /// The name a fingerprint is known by, if any.
    pub fn name_of(&self, fpr: &Fingerprint) -> Option<String> {
        self.with(|t| t.get(fpr).map(|c| c.name().to_owned()))
    }

    pub fn names(&self) -> BTreeMap<Fingerprint, String> {
        self.with(|t| {
            t.iter()
                .map(|c| (c.fingerprint().clone(), c.name().to_owned()))
                .collect()
        })
    }

    /// Resolves a CERT given by name, fingerprint, or the short form of
    /// its fingerprint that `cerctl peers` shows (its last 16 hex digits;
    /// only when exactly one certificate ends so).
    pub fn resolve(&self, who: &str) -> Option<TrustedCert> {
        self.with(|t| match Fingerprint::parse(who) {
            Ok(fpr) => t.get(&fpr).cloned(),
            Err(_) => t.find_by_name(who).cloned().or_else(|| {
                let short = who.trim().to_ascii_uppercase();
                if short.len() != 16 || !short.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                let mut found = t.iter().filter(|c| c.fingerprint().short() == short);
                match (found.next(), found.next()) {
                    (Some(only), None) => Some(only.clone()),
                    _ => None,
                }
            }),
        })
    }

    pub fn len(&self) -> usize {
        self.with(|t| t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn list(&self) -> CertList {
        let state = self.state.read().unwrap_or_else(|e| e.into_inner());
        let mut certs: Vec<CertInfo> = state.certs.iter().map(|c| self.info(c)).collect();
        certs.sort_by(|a, b| (!a.own, &a.name).cmp(&(!b.own, &b.name)));
        CertList {
            certs,
            refused: state
                .refused
                .iter()
                .map(|refused| RefusedCert {
                    file: refused.path.display().to_string(),
                    reason: refused.reason.clone(),
                })
                .collect(),
        }
    }

    /// Adopts the new key of a verified key transition (`bytes` and `sig`
    /// are the transition envelope): writes it and the new certificate
    /// into `certs/adopted/`, where every reload verifies it again, and
    /// reloads. False when the key was adopted already.
    pub fn adopt(
        &self,
        bytes: &[u8],
        sig: &[u8],
        transition: &Transition,
    ) -> Result<bool, TrustError> {
        let new = transition.successor.fingerprint();
        let current = self.with(|t| t.get(&transition.author).map(|c| c.current_key().clone()));
        if current.as_ref() == Some(new) {
            return Ok(false);
        }
        let dir = self.dir.join(ADOPTED_DIR);
        let files = |what, path: &Path, source| TrustError::Files {
            what,
            path: path.to_owned(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| files("creating", &dir, e))?;
        let name = self
            .name_of(&transition.author)
            .unwrap_or_else(|| transition.author.short().to_owned());
        let stem = format!("{}-{}", file_safe(&name), new.short());
        let proof_sig = dir.join(format!("{stem}.transition.sig"));
        let proof = dir.join(format!("{stem}.transition"));
        let cert = dir.join(format!("{stem}.asc"));
        // The signature first: a proof is read only once its envelope is there.
        std::fs::write(&proof_sig, sig).map_err(|e| files("writing", &proof_sig, e))?;
        std::fs::write(&proof, bytes).map_err(|e| files("writing", &proof, e))?;
        std::fs::write(&cert, transition.successor.armored())
            .map_err(|e| files("writing", &cert, e))?;
        let _ = self.reload();
        let adopted = self.with(|t| {
            t.get(&transition.author)
                .is_some_and(|c| c.current_key() == new)
        });
        if !adopted {
            return Err(TrustError::Invalid(format!(
                "the key transition of {name} to {new} did not take effect"
            )));
        }
        tracing::info!(target: AUDIT, event = "key_adopted", name = %name, fingerprint = %transition.author, key = %new, retired_after = %sign::rfc3339(transition.retire_after), file = %cert.display(), "a trusted CERT moved to a new key: adopted");
        Ok(true)
    }

    /// Writes a certificate into the folder and reloads it. A revocation
    /// certificate is written beside the certificate it revokes, once it
    /// verifies against it (a conflict if it is there already).
    pub fn add(&self, armored: &str) -> Result<CertInfo, TrustError> {
        if armored.len() as u64 > MAX_CERT_BYTES {
            return Err(TrustError::Invalid(CertError::TooLarge.to_string()));
        }
        if sign::is_revocation(armored.as_bytes()) {
            return self.add_revocation(armored);
        }
        let cert = TrustedCert::parse(armored.as_bytes())
            .map_err(|e| TrustError::Invalid(e.to_string()))?;
        if cert.had_secret() {
            // Only the public part is written below.
            warn_secret(&cert);
        }
        if self.with(|t| t.get(cert.fingerprint()).is_some()) {
            return Err(TrustError::Conflict(format!(
                "{} ({}) is already trusted",
                cert.name(),
                cert.fingerprint()
            )));
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| TrustError::Files {
            what: "creating",
            path: self.dir.clone(),
            source,
        })?;
        let file = self.dir.join(format!(
            "{}-{}.asc",
            file_safe(cert.name()),
            cert.fingerprint().short()
        ));
        std::fs::write(&file, cert.armored()).map_err(|source| TrustError::Files {
            what: "writing",
            path: file.clone(),
            source,
        })?;
        let _ = self.reload();
        Ok(self.info(&cert))
    }

    fn add_revocation(&self, armored: &str) -> Result<CertInfo, TrustError> {
        let fingerprint = self
            .with(|t| t.check_revocation(armored.as_bytes()))
            .map_err(|e| TrustError::Invalid(e.to_string()))?;
        if fingerprint == *self.own.fingerprint() {
            let own = self.with(|t| t.get(&fingerprint).cloned());
            let rotated = own
                .as_ref()
                .is_some_and(|c| c.current_key() != c.fingerprint());
            // After a rotation it revokes a key this node no longer signs
            // with: nothing to keep here, and the envelope that carries it
            // to every node is signed by the new key. Before one, that
            // envelope would itself be refused as revoked.
            return match (own, rotated) {
                (Some(own), true) => Ok(self.info(&own)),
                _ => Err(TrustError::Forbidden(
                    "this is a revocation of the key this node signs with: add it on a peer's node, which sends it to every node".into(),
                )),
            };
        }
        let Some(cert) = self.with(|t| t.get(&fingerprint).cloned()) else {
            return Err(TrustError::NotFound(format!(
                "no trusted certificate {fingerprint}"
            )));
        };
        if cert.revoked().is_some() {
            return Err(TrustError::Conflict(format!(
                "{} ({}) is already revoked",
                cert.name(),
                fingerprint
            )));
        }
        // Named by its content too: a CERT may have more than one (the one
        // made at `cerd init`, a later one of a rotated-away key).
        let digest = cer_proto::EnvelopeId::of(armored.as_bytes()).to_string();
        let file = self.dir.join(format!(
            "{}-{}-revocation-{}.asc",
            file_safe(cert.name()),
            fingerprint.short(),
            &digest[..8]
        ));
        if file.exists() {
            return Err(TrustError::Conflict(format!(
                "this revocation of {} ({}) is already in {}",
                cert.name(),
                fingerprint,
                file.display()
            )));
        }
        std::fs::write(&file, armored).map_err(|source| TrustError::Files {
            what: "writing",
            path: file.clone(),
            source,
        })?;
        let _ = self.reload();
        let revoked = self.with(|t| t.get(&fingerprint).cloned()).unwrap_or(cert);
        Ok(self.info(&revoked))
    }

    /// Removes every file in the folder holding this certificate and
    /// reloads it.
    pub fn remove(&self, fingerprint: &Fingerprint) -> Result<CertInfo, TrustError> {
        if fingerprint == self.own.fingerprint() {
            return Err(TrustError::Forbidden(
                "this node's own certificate cannot be removed".into(),
            ));
        }
        let Some(cert) = self.with(|t| t.get(fingerprint).cloned()) else {
            return Err(TrustError::NotFound(format!(
                "no trusted certificate {fingerprint}"
            )));
        };
        let entries = std::fs::read_dir(&self.dir).map_err(|source| TrustError::Files {
            what: "reading",
            path: self.dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let holds = TrustedCert::read_file(&path).is_ok_and(|c| c.fingerprint() == fingerprint);
            if holds {
                std::fs::remove_file(&path).map_err(|source| TrustError::Files {
                    what: "removing",
                    path: path.clone(),
                    source,
                })?;
            }
        }
        let _ = self.reload();
        Ok(self.info(&cert))
    }

    fn info(&self, cert: &TrustedCert) -> CertInfo {
        CertInfo {
            name: cert.name().to_owned(),
            fingerprint: cert.fingerprint().clone(),
            own: cert.fingerprint() == self.own.fingerprint(),
            can_encrypt: cert.can_encrypt(),
            expires: cert.expires().map(timestamp),
            revoked: cert.revoked().map(timestamp),
            key: (cert.current_key() != cert.fingerprint()).then(|| cert.current_key().clone()),
        }
    }
}

/// Applies the key transitions kept in `dir` (`certs/adopted/`) to
/// `certs`, each verified again against what is trusted before it, in
/// each author's chain order. Returns the files refused and why.
pub fn apply_adopted(certs: &mut TrustStore, dir: &Path) -> Vec<(PathBuf, String)> {
    let mut refused = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return refused;
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("transition") {
            continue;
        }
        let sig_path = path.with_extension("transition.sig");
        let read = |p: &Path| -> Result<Vec<u8>, String> {
            let len = std::fs::metadata(p).map_err(|e| e.to_string())?.len();
            if len > cer_proto::envelope::MAX_ENVELOPE_BYTES as u64 {
                return Err("too large".into());
            }
            std::fs::read(p).map_err(|e| e.to_string())
        };
        match (read(&path), read(&sig_path)) {
            (Ok(bytes), Ok(sig)) => match cer_proto::envelope::Envelope::parse(&bytes) {
                Ok(envelope) => found.push((envelope.author, envelope.seq, path, bytes, sig)),
                Err(e) => refused.push((path, e.to_string())),
            },
            (Err(e), _) => refused.push((path, e)),
            (_, Err(e)) => refused.push((sig_path, e)),
        }
    }
    found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for (_, _, path, bytes, sig) in found {
        let adopted = verify::verify_signed(certs, &bytes, &sig)
            .map_err(|e| e.to_string())
            .and_then(|envelope| {
                verify::transition_of(&envelope, &sig)
                    .ok_or_else(|| "not a key transition".to_owned())
            })
            .and_then(|t| {
                certs
                    .adopt(&t.author, &t.successor, t.retire_after)
                    .map_err(|e| e.to_string())
            });
        if let Err(reason) = adopted {
            refused.push((path, format!("key transition refused: {reason}")));
        }
    }
    refused
}

/// A CERT name as a file name: anything but letters, digits, `-`, `_`
/// and `.` becomes `-`.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// A secret key given as a certificate: trusted by its public part only,
/// but whoever exported it leaked a private key.
fn warn_secret(cert: &TrustedCert) {
    tracing::warn!(target: AUDIT, event = "cert_secret_key", name = cert.name(), fingerprint = %cert.fingerprint(), "a certificate file holds a secret key; only its public part is used and kept: delete the file, and treat the key as exposed");
}

fn timestamp(time: SystemTime) -> cer_proto::model::Timestamp {
    let nanos = time
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or_default();
    cer_proto::model::Timestamp::from_unix_nanos(nanos)
}

/// A file's size and modification time, if it can be read.
fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.len(), metadata.modified().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Identity;

    #[test]
    fn a_cert_is_found_by_name_fingerprint_or_its_short_form() {
        let dir = tempfile::tempdir().unwrap();
        let own = Identity::generate("KE-CIRT").unwrap();
        let peer = Identity::generate("NG-CERT").unwrap();
        std::fs::write(dir.path().join("ng.asc"), peer.public_armored()).unwrap();
        let trust = Trust::load(dir.path(), own.public_cert());
        let fpr = peer.fingerprint();
        for who in [
            "NG-CERT".to_owned(),
            fpr.to_string(),
            fpr.short().to_owned(),
            fpr.short().to_ascii_lowercase(),
        ] {
            let found = trust.resolve(&who).map(|c| c.fingerprint().clone());
            assert_eq!(found.as_ref(), Some(fpr), "{who}");
        }
        assert!(trust.resolve(&fpr.to_string()[..16]).is_none());
        assert!(trust.resolve("EG-CERT").is_none());
    }
}
