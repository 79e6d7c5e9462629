//! Offline store maintenance for `cerd check --store`, `cerd repair` and
//! `cerd restore`: the store's own checker and rebuild, given a trust
//! store to verify signatures and tombstone proofs with. All need the node
//! stopped (sled holds a lock on the folder while cerd runs); a restore
//! needs a data dir with no store.

use std::path::PathBuf;

use cer_proto::envelope::{Body, Envelope};
use cer_proto::wire::WireTombstone;
use cer_proto::EnvelopeId;

use crate::config::{Config, STORE_DIR};
use crate::key::IDENTITY_FILE;
use crate::sign::{Identity, TrustStore};
use crate::store::{self, CheckReport, Rebuilt, Tombstone, Verdict};
use crate::verify::{self, Rejected};

/// Verifies against `certs/` plus this node's own certificate.
pub struct TrustVerifier {
    trust: TrustStore,
    /// Decrypts what was addressed to this node (a carved store has lost
    /// the bodies it had decrypted).
    identity: Option<Identity>,
}

impl TrustVerifier {
    pub fn for_node(config: &Config) -> TrustVerifier {
        let (mut trust, _) = TrustStore::load_dir(&config.certs_dir);
        let identity = crate::key::load(config).ok();
        if let Some(identity) = &identity {
            trust.insert(identity.public_cert());
        }
        crate::trust::apply_adopted(
            &mut trust,
            &config.certs_dir.join(crate::trust::ADOPTED_DIR),
        );
        TrustVerifier { trust, identity }
    }
}

impl store::Verifier for TrustVerifier {
    fn envelope(&self, bytes: &[u8], sig: &[u8]) -> Verdict {
        verdict(verify::verify_signed(&self.trust, bytes, sig).map(|_| ()))
    }

    fn tombstone(&self, id: &EnvelopeId, tomb: &Tombstone) -> Verdict {
        let wire = WireTombstone {
            author: tomb.header.author.clone(),
            seq: tomb.header.seq,
            id: *id,
            proof: tomb.proof.clone(),
            proof_sig: tomb.proof_sig.clone(),
        };
        match verify::verify_tombstone(&self.trust, wire) {
            Ok(proven) if proven == *tomb => Verdict::Good,
            Ok(_) => Verdict::Bad("tombstone says other than its proof".into()),
            Err(e) => verdict(Err(e)),
        }
    }

    fn decrypt(&self, envelope: &Envelope) -> Option<Body> {
        let identity = self.identity.as_ref()?;
        let armored = envelope.body_enc.as_ref()?;
        let addressed = envelope.recipients.contains(identity.fingerprint())
            || envelope.author == *identity.fingerprint();
        if !addressed {
            return None;
        }
        let plain = identity.decrypt_armored(armored).ok()?;
        Body::from_slice(envelope.kind, &plain).ok()
    }
}

fn verdict(result: Result<(), Rejected>) -> Verdict {
    match result {
        Ok(()) => Verdict::Good,
        Err(Rejected::UnknownSigner { issuer }) => Verdict::Unknown(format!(
            "signed by {issuer}, whose certificate is no longer in the trust store"
        )),
        Err(e) => Verdict::Bad(e.to_string()),
    }
}

pub fn store_path(config: &Config) -> PathBuf {
    config.data_dir.join(STORE_DIR)
}

/// Checks the node's store against its envelopes.
pub fn check(config: &Config) -> Result<CheckReport, store::StoreError> {
    store::check(&store_path(config), &TrustVerifier::for_node(config))
}

/// Rebuilds the node's store from the envelopes that verify.
pub fn repair(config: &Config) -> Result<Rebuilt, store::StoreError> {
    store::rebuild(&store_path(config), &TrustVerifier::for_node(config))
}

/// What `cerd restore` did.
pub struct Restored {
    pub header: store::backup::Header,
    pub rebuilt: Rebuilt,
    pub records: u64,
    /// Certificates written into the certs folder, and those left as
    /// they were because a file of that name was there.
    pub certs_written: Vec<PathBuf>,
    pub certs_kept: Vec<PathBuf>,
    pub secret_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("{0} already holds a store: restore into a new data dir, or move it aside")]
    StoreExists(PathBuf),
    #[error("{0} already holds a secret key: restore into a new data dir, or move it aside")]
    KeyExists(PathBuf),
    #[error(transparent)]
    Read(#[from] store::backup::ReadError),
    #[error("the backup's {name}: {reason}")]
    File { name: String, reason: String },
    #[error("{what} {}: {source}", path.display())]
    Files {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// Rebuilds a node in `config`'s data dir from a backup: checks the whole
/// file first, then writes the certificates it holds into the certs folder
/// (never over a file already there), the secret key if it holds one, and
/// a store of every envelope that verifies against those certificates,
/// with the local records and event log.
pub fn restore(config: &Config, input: &mut dyn std::io::Read) -> Result<Restored, RestoreError> {
    let files = |what: &'static str, path: &std::path::Path| {
        let path = path.to_owned();
        move |source| RestoreError::Files { what, path, source }
    };
    let target = store_path(config);
    if target.exists()
        && std::fs::read_dir(&target)
            .map_err(files("reading", &target))?
            .next()
            .is_some()
    {
        return Err(RestoreError::StoreExists(target));
    }
    let key_path = config.data_dir.join(IDENTITY_FILE);
    if key_path.exists() {
        return Err(RestoreError::KeyExists(key_path));
    }
    create_private_dir(&config.data_dir).map_err(files("creating", &config.data_dir))?;
    let scratch = config.data_dir.join("store.restoring");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(files("removing", &scratch))?;
    }
    let result = restore_from(config, input, &scratch, &target, &key_path);
    let _ = std::fs::remove_dir_all(&scratch);
    if result.is_err() {
        // Nothing half-restored stays (restore_from takes back the files).
        let _ = std::fs::remove_dir_all(&target);
    }
    result
}

fn restore_from(
    config: &Config,
    input: &mut dyn std::io::Read,
    scratch: &std::path::Path,
    target: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<Restored, RestoreError> {
    use crate::node::{CERTS, OWN_CERT, RETIRED_KEYS, SECRET_KEY};
    use crate::sign::TrustedCert;
    let loaded = store::backup::load(input, scratch)?;
    let adopted_dir = config.certs_dir.join(crate::trust::ADOPTED_DIR);
    let mut own = None;
    let mut to_write = Vec::new();
    let (mut secret, mut retired) = (None, None);
    for (name, bytes) in &loaded.files {
        let bad = |reason: String| RestoreError::File {
            name: name.clone(),
            reason,
        };
        if name == SECRET_KEY {
            secret = Some(bytes.clone());
        } else if name == RETIRED_KEYS {
            retired = Some(bytes.clone());
        } else if name == OWN_CERT {
            let cert = TrustedCert::parse(bytes).map_err(|e| bad(e.to_string()))?;
            if cert.fingerprint().to_string() != loaded.header.fingerprint {
                return Err(bad(
                    "it is not the certificate of the node the backup names".into(),
                ));
            }
            if let Err(reason) = crate::config::check_name(&loaded.header.node) {
                return Err(RestoreError::File {
                    name: "header".into(),
                    reason: format!("the node's name: {reason}"),
                });
            }
            let path = crate::daemon::public_cert_path(&config.data_dir, &loaded.header.node);
            to_write.push((path, bytes.clone()));
            own = Some(cert);
        } else if let Some(file) = name
            .strip_prefix(CERTS)
            .and_then(|f| f.strip_prefix(crate::trust::ADOPTED_DIR))
            .and_then(|f| f.strip_prefix('/'))
        {
            // A key transition: verified again when the trust store loads.
            if !plain_file_name(file) {
                return Err(bad("not a plain file name".into()));
            }
            to_write.push((adopted_dir.join(file), bytes.clone()));
        } else if let Some(file) = name.strip_prefix(CERTS) {
            TrustedCert::parse(bytes).map_err(|e| bad(e.to_string()))?;
            if !plain_file_name(file) {
                return Err(bad("not a plain file name".into()));
            }
            to_write.push((config.certs_dir.join(file), bytes.clone()));
        } else {
            return Err(bad("not a file a backup holds".into()));
        }
    }
    let own = own.ok_or_else(|| RestoreError::File {
        name: OWN_CERT.into(),
        reason: "missing: a backup names its node's certificate".into(),
    })?;
    // The certificates and keys first, so the trust store is loaded as the
    // node will load it (key transitions applied); taken back if the
    // restore fails.
    let mut written = Written::default();
    let result = (|| {
        for dir in [&config.certs_dir, &adopted_dir] {
            std::fs::create_dir_all(dir).map_err(|source| RestoreError::Files {
                what: "creating",
                path: dir.to_path_buf(),
                source,
            })?;
        }
        for (path, bytes) in &to_write {
            if path.exists() {
                written.kept.push(path.clone());
                continue;
            }
            std::fs::write(path, bytes).map_err(|source| RestoreError::Files {
                what: "writing",
                path: path.clone(),
                source,
            })?;
            written.certs.push(path.clone());
        }
        let secrets = [
            (key_path.to_path_buf(), &secret),
            (crate::sign::retired_path(key_path), &retired),
        ];
        for (path, bytes) in secrets {
            let Some(bytes) = bytes else { continue };
            crate::sign::write_private_file(&path, bytes).map_err(|source| {
                RestoreError::Files {
                    what: "writing",
                    path: path.clone(),
                    source,
                }
            })?;
            written.keys.push(path);
        }
        let (mut trust, _) = TrustStore::load_dir(&config.certs_dir);
        trust.insert(own.clone());
        crate::trust::apply_adopted(&mut trust, &adopted_dir);
        let identity = crate::key::load(config).ok();
        let verifier = TrustVerifier { trust, identity };
        store::rebuild_from(&loaded.db, target, &verifier).map_err(RestoreError::from)
    })();
    let rebuilt = match result {
        Ok(rebuilt) => rebuilt,
        Err(e) => {
            for path in written.certs.iter().chain(&written.keys) {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    Ok(Restored {
        header: loaded.header,
        rebuilt,
        records: loaded.records,
        certs_written: written.certs,
        certs_kept: written.kept,
        secret_key: secret.map(|_| key_path.to_owned()),
    })
}

/// Files a restore wrote, to take back if it fails.
#[derive(Default)]
struct Written {
    certs: Vec<PathBuf>,
    kept: Vec<PathBuf>,
    keys: Vec<PathBuf>,
}

/// A name that stays inside its folder: letters, digits, `.`, `-`, `_`,
/// not starting with a dot.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}
