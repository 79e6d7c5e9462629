//! OpenPGP: this node's identity, the trust store of peer certificates,
//! detached signatures over envelope bytes, and encryption of restricted
//! bodies.
//!
//! This is the only module of the daemon that imports `sequoia-openpgp`;
//! everything else sees [`Identity`], [`TrustedCert`], [`TrustStore`] and
//! plain bytes. Keys are v4 (RFC 4880 profile) so GnuPG 2.2 can verify what
//! we sign and read what we encrypt.
//!
//! It must not do network I/O, log, or know about envelopes: it signs and
//! verifies bytes. File I/O is limited to reading and writing key files and
//! reading the certificate directory.
//!
//! Every certificate is checked against sequoia's `StandardPolicy` once, when
//! it enters the store; the signing keys found valid then go into an index so
//! that [`TrustStore::verify_detached`] is a hash-map lookup plus one
//! signature check.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cer_proto::Fingerprint;
use openpgp::cert::prelude::*;
use openpgp::crypto::hash::Hash as _;
use openpgp::crypto::{KeyPair, SessionKey};
use openpgp::packet::signature::SignatureBuilder;
use openpgp::packet::{key, Key, Packet, Signature, PKESK, SKESK};
use openpgp::parse::stream::{
    DecryptionHelper, DecryptorBuilder, MessageLayer, MessageStructure, VerificationHelper,
};
use openpgp::parse::{PacketParser, PacketParserResult, Parse};
use openpgp::policy::{HashAlgoSecurity, Policy, StandardPolicy};
use openpgp::serialize::stream::{Encryptor, LiteralWriter, Message, Recipient};
use openpgp::serialize::{Serialize, SerializeInto};
use openpgp::types::{
    Features, HashAlgorithm, KeyFlags, RevocationStatus, SignatureType, SymmetricAlgorithm,
};
use openpgp::{armor, Cert, KeyHandle, KeyID, Profile};
use sequoia_openpgp as openpgp;

mod revoke;
mod secret;

pub use revoke::is_revocation;
pub use secret::Passphrase;

/// Generating, loading, saving or using this node's key failed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("invalid node name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("cannot generate key: {0}")]
    Generate(String),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("{}: not a usable secret key: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    #[error("cannot serialize key: {0}")]
    Serialize(String),
    #[error("certificate {0} has no usable encryption subkey")]
    NoEncryptionKey(Fingerprint),
    #[error("no recipients to encrypt to")]
    NoRecipients,
    #[error("cannot encrypt: {0}")]
    Encrypt(String),
    #[error("{} is protected by a passphrase and none was given", path.display())]
    Locked { path: PathBuf },
    #[error("the passphrase does not unlock {}", path.display())]
    WrongPassphrase { path: PathBuf },
    #[error("cannot make a revocation certificate: {0}")]
    Revocation(String),
}

/// A certificate was refused (or, for [`CertError::NoEncryptionKey`],
/// accepted with a note: it can verify but nobody can encrypt to it).
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
    #[error("larger than {} KiB; not a certificate", MAX_CERT_BYTES / 1024)]
    TooLarge,
    #[error("not an openpgp certificate: {0}")]
    Parse(String),
    #[error("v{version} keys are not supported, only v4")]
    UnsupportedVersion { version: u8 },
    #[error(
        "certificate {fingerprint} has no valid self-signature under the standard policy: {reason}"
    )]
    Policy {
        fingerprint: Fingerprint,
        reason: String,
    },
    #[error("certificate {fingerprint} has been revoked")]
    Revoked { fingerprint: Fingerprint },
    #[error("certificate {fingerprint} has expired")]
    Expired { fingerprint: Fingerprint },
    #[error("certificate {fingerprint} is not live: {reason}")]
    NotLive {
        fingerprint: Fingerprint,
        reason: String,
    },
    #[error("certificate {fingerprint} has no valid user id")]
    NoUserId { fingerprint: Fingerprint },
    #[error("certificate {fingerprint} has no valid signing-capable key")]
    NoSigningKey { fingerprint: Fingerprint },
    #[error("certificate {fingerprint} has no valid encryption-capable subkey")]
    NoEncryptionKey { fingerprint: Fingerprint },
    #[error("certificate {fingerprint} is already loaded from {}", first.display())]
    Duplicate {
        fingerprint: Fingerprint,
        first: PathBuf,
    },
    #[error("a revocation by key {issuer}, which no certificate here has")]
    RevocationForUnknown { issuer: String },
    #[error("a revocation of {fingerprint} that its key did not sign: {reason}")]
    BadRevocation {
        fingerprint: Fingerprint,
        reason: String,
    },
}

/// A detached signature did not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no signature")]
    Unsigned,
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("signed by unknown key {issuer}")]
    UnknownSigner { issuer: String },
    #[error("bad signature by {signer}")]
    BadSignature { signer: Fingerprint },
    #[error("signature rejected by policy: {0}")]
    RejectedByPolicy(String),
    #[error("{signer} revoked its key at {revoked}; this signature is from {signed}")]
    Revoked {
        signer: Fingerprint,
        revoked: String,
        signed: String,
    },
}

/// A message could not be decrypted.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    #[error("message is not addressed to this node")]
    NotForUs,
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("integrity check failed: {0}")]
    Integrity(String),
}

/// This node's OpenPGP identity: a v4 Ed25519 primary key (certify, sign)
/// with an X25519 encryption subkey and one User ID, the node name.
pub struct Identity {
    /// The TSK, secret material included.
    tsk: Cert,
    /// The primary key, ready to sign.
    signer: KeyPair,
    /// The encryption subkeys, ready to decrypt.
    decryptors: Vec<KeyPair>,
    public: TrustedCert,
}

/// A certificate in the trust store, checked against sequoia's
/// `StandardPolicy` when it was parsed.
#[derive(Clone)]
pub struct TrustedCert {
    inner: Arc<CertInner>,
}

/// The largest certificate file read from `certs/` (and by `cerd check`):
/// a certificate is a few KiB, one with many third-party signatures a few
/// hundred; anything larger is refused without being read whole.
pub const MAX_CERT_BYTES: u64 = 1 << 20;

/// In-memory trust store: certificates trusted as authors and peers.
#[derive(Clone, Default, Debug)]
pub struct TrustStore {
    certs: BTreeMap<Fingerprint, TrustedCert>,
    /// Signing-capable key fingerprint -> the primary fingerprint of its
    /// certificate.
    by_key_fpr: HashMap<openpgp::Fingerprint, Fingerprint>,
    /// Signing-capable key id -> primary fingerprints (ids can collide).
    by_key_id: HashMap<KeyID, Vec<Fingerprint>>,
}

/// [`TrustStore::encrypt`], ASCII-armored (`-----BEGIN PGP MESSAGE-----`):
/// the form that goes into an envelope's JSON `body_enc`.
pub fn encrypt_armored(plaintext: &[u8], to: &[&TrustedCert]) -> Result<String, SignError> {
    let binary = TrustStore::encrypt(plaintext, to)?;
    let armored = armor_bytes(&binary, armor::Kind::Message)
        .map_err(|e| SignError::Encrypt(e.to_string()))?;
    String::from_utf8(armored).map_err(|e| SignError::Encrypt(e.to_string()))
}

impl Identity {
    /// Generates a fresh identity named `name` (the User ID, e.g. "KE-CIRT").
    pub fn generate(name: &str) -> Result<Identity, SignError> {
        check_name(name)?;
        let (tsk, _revocation) = CertBuilder::new()
            .set_profile(Profile::RFC4880)
            .and_then(|b| b.set_features(Features::empty().set_seipdv1()))
            .map_err(|e| SignError::Generate(e.to_string()))?
            .set_cipher_suite(CipherSuite::Cv25519)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .add_subkey(
                KeyFlags::empty()
                    .set_transport_encryption()
                    .set_storage_encryption(),
                None,
                None,
            )
            .set_validity_period(None)
            .add_userid(name)
            .generate()
            .map_err(|e| SignError::Generate(format!("{e:#}")))?;
        Identity::from_tsk(tsk).map_err(SignError::Generate)
    }

    /// Reads a TSK (secret key file, binary or armored) whose secret key
    /// material is not protected by a passphrase.
    pub fn load(path: &Path) -> Result<Identity, SignError> {
        Identity::load_with(path, None)
    }

    /// Reads a TSK, unlocking it with `passphrase` if its secret key
    /// material is protected ([`SignError::Locked`] without one,
    /// [`SignError::WrongPassphrase`] when it does not unlock it).
    pub fn load_with(path: &Path, passphrase: Option<&Passphrase>) -> Result<Identity, SignError> {
        let tsk = read_tsk(path)?;
        let tsk = if secret::is_protected(&tsk) {
            let Some(passphrase) = passphrase else {
                return Err(SignError::Locked {
                    path: path.to_owned(),
                });
            };
            secret::unlock(tsk, passphrase).map_err(|_| SignError::WrongPassphrase {
                path: path.to_owned(),
            })?
        } else {
            tsk
        };
        Identity::from_tsk(tsk).map_err(|reason| SignError::BadKey {
            path: path.to_owned(),
            reason,
        })
    }

    /// The public certificate in a secret key file, and whether its secret
    /// key material is protected by a passphrase; no passphrase needed.
    pub fn peek(path: &Path) -> Result<(TrustedCert, bool), SignError> {
        let tsk = read_tsk(path)?;
        let protected = secret::is_protected(&tsk);
        let public = TrustedCert::from_cert(tsk).map_err(|e| SignError::BadKey {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Ok((public, protected))
    }

    /// Writes the TSK armored, atomically, with mode 0600 from the start.
    pub fn save(&self, path: &Path) -> Result<(), SignError> {
        self.save_with(path, None)
    }

    /// [`Identity::save`], the secret key material encrypted with
    /// `passphrase` when one is given (OpenPGP's own S2K protection, so
    /// `gpg --import` asks for it).
    pub fn save_with(&self, path: &Path, passphrase: Option<&Passphrase>) -> Result<(), SignError> {
        let tsk = match passphrase {
            Some(passphrase) => secret::protect(self.tsk.clone(), passphrase)
                .map_err(|e| SignError::Serialize(format!("protecting the key: {e:#}")))?,
            None => self.tsk.clone(),
        };
        let armored = tsk
            .as_tsk()
            .armored()
            .to_vec()
            .map_err(|e| SignError::Serialize(format!("{e:#}")))?;
        write_private_atomically(path, &armored).map_err(|source| SignError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// A revocation certificate for this key, dated now, ASCII-armored as
    /// GnuPG writes one: dropped into a node's `certs/`, it makes that node
    /// refuse every signature this key makes from now on.
    pub fn revocation_certificate(&self) -> Result<Vec<u8>, SignError> {
        secret::revocation_certificate(&self.tsk, &self.signer)
    }

    /// Writes [`Identity::revocation_certificate`] to `path`, mode 0600.
    pub fn save_revocation(&self, path: &Path) -> Result<(), SignError> {
        let armored = self.revocation_certificate()?;
        write_private_atomically(path, &armored).map_err(|source| SignError::Write {
            path: path.to_owned(),
            source,
        })
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        self.public.fingerprint()
    }

    /// The first User ID's value.
    pub fn name(&self) -> &str {
        self.public.name()
    }

    /// The public certificate, ASCII-armored (what `gpg --import` takes).
    pub fn public_armored(&self) -> Vec<u8> {
        self.public.armored()
    }

    pub fn public_cert(&self) -> TrustedCert {
        self.public.clone()
    }

    /// A detached binary OpenPGP signature (one signature packet, type
    /// binary, SHA-512) over `data`, made with the primary key.
    pub fn sign_detached(&self, data: &[u8]) -> Vec<u8> {
        let sig = self.sign(data);
        let mut out = Vec::with_capacity(128);
        Packet::from(sig)
            .serialize(&mut out)
            .expect("serializing a signature into memory cannot fail");
        out
    }

    /// The same, ASCII-armored (`-----BEGIN PGP SIGNATURE-----`), for
    /// exports that `gpg --verify` checks.
    pub fn sign_detached_armored(&self, data: &[u8]) -> Vec<u8> {
        armor_bytes(&self.sign_detached(data), armor::Kind::Signature)
            .expect("armoring into memory cannot fail")
    }

    /// Decrypts an OpenPGP message (binary or armored) addressed to this
    /// node's encryption subkey.
    pub fn decrypt(&self, message: &[u8]) -> Result<Vec<u8>, DecryptError> {
        let helper = DecryptHelper {
            keys: &self.decryptors,
        };
        let mut decryptor = DecryptorBuilder::from_bytes(message)
            .map_err(|e| DecryptError::Malformed(format!("{e:#}")))?
            .with_policy(&POLICY, None, helper)
            .map_err(classify_decrypt_error)?;
        let mut plaintext = Vec::new();
        decryptor
            .read_to_end(&mut plaintext)
            .map_err(|e| classify_decrypt_error(e.into()))?;
        Ok(plaintext)
    }

    /// [`Identity::decrypt`] for the armored text of an envelope's
    /// `body_enc` (binary is accepted too).
    pub fn decrypt_armored(&self, armored: &str) -> Result<Vec<u8>, DecryptError> {
        self.decrypt(armored.as_bytes())
    }

    fn from_tsk(tsk: Cert) -> Result<Identity, String> {
        let public = TrustedCert::from_cert(tsk.clone()).map_err(|e| e.to_string())?;
        let primary = tsk.primary_key().key().clone();
        if !primary.has_secret() {
            return Err("the file holds no secret key material".into());
        }
        let signer = primary
            .parts_into_secret()
            .and_then(|k| k.role_into_unspecified().into_keypair())
            .map_err(|e| format!("primary key: {e:#}"))?;
        let valid = tsk
            .with_policy(&POLICY, None)
            .map_err(|e| format!("{e:#}"))?;
        if !valid.primary_key().for_signing() {
            return Err("the primary key is not signing-capable".into());
        }
        let decryptors = valid
            .keys()
            .subkeys()
            .supported()
            .alive()
            .revoked(false)
            .key_flags(encryption_flags())
            .secret()
            .map(|ka| ka.key().clone().role_into_unspecified().into_keypair())
            .collect::<openpgp::Result<Vec<_>>>()
            .map_err(|e| format!("encryption subkey: {e:#}"))?;
        if decryptors.is_empty() {
            return Err("no encryption subkey with secret key material".into());
        }
        Ok(Identity {
            tsk,
            signer,
            decryptors,
            public,
        })
    }

    fn sign(&self, data: &[u8]) -> Signature {
        // Signer::sign takes &mut self; a KeyPair is cheap to clone.
        let mut signer = self.signer.clone();
        SignatureBuilder::new(SignatureType::Binary)
            .set_hash_algo(HashAlgorithm::SHA512)
            .sign_message(&mut signer, data)
            .expect("signing with a validated ed25519 key cannot fail")
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name())
            .field("fingerprint", self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl TrustedCert {
    /// Parses one certificate, armored or binary, and checks it against
    /// the standard policy. Secret key material, if any, is dropped.
    pub fn parse(bytes: &[u8]) -> Result<TrustedCert, CertError> {
        let cert = Cert::from_bytes(bytes).map_err(|e| CertError::Parse(format!("{e:#}")))?;
        TrustedCert::from_cert(cert)
    }

    /// Reads and parses one certificate file, refusing one larger than
    /// [`MAX_CERT_BYTES`] before reading it whole.
    pub fn read_file(path: &Path) -> Result<TrustedCert, CertError> {
        TrustedCert::parse(&read_bounded(path)?)
    }

    /// Whether the file it was parsed from held secret key material (now
    /// dropped): someone exported a private key instead of a certificate.
    pub fn had_secret(&self) -> bool {
        self.inner.had_secret
    }

    pub fn fingerprint(&self) -> &Fingerprint {
        &self.inner.fingerprint
    }

    /// The primary User ID's value.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The public certificate, ASCII-armored.
    pub fn armored(&self) -> Vec<u8> {
        self.inner.armored.clone()
    }

    pub fn can_encrypt(&self) -> bool {
        !self.inner.encryption_keys.is_empty()
    }

    /// `Err(CertError::NoEncryptionKey)` when nobody can encrypt to this
    /// certificate: a note for `cerd check` and the certificate loader.
    pub fn check_encryption(&self) -> Result<(), CertError> {
        if self.can_encrypt() {
            Ok(())
        } else {
            Err(CertError::NoEncryptionKey {
                fingerprint: self.fingerprint().clone(),
            })
        }
    }

    fn from_cert(cert: Cert) -> Result<TrustedCert, CertError> {
        let had_secret = cert.is_tsk();
        let cert = cert.strip_secret_key_material();
        let version = cert.primary_key().key().version();
        if version != 4 {
            return Err(CertError::UnsupportedVersion { version });
        }
        let fingerprint = to_fingerprint(&cert.fingerprint())
            .map_err(|e| CertError::Parse(format!("fingerprint: {e}")))?;
        let policy_error = |e: openpgp::anyhow::Error| CertError::Policy {
            fingerprint: fingerprint.clone(),
            reason: format!("{e:#}"),
        };
        let now = cert.with_policy(&POLICY, None).map_err(policy_error)?;
        // A revoked certificate stays, to verify what its key signed before
        // the revocation: its keys are those valid just before it, and
        // every signature from the revocation on is refused.
        let revoked = match now.revocation_status() {
            RevocationStatus::Revoked(sigs) => Some(
                sigs.iter()
                    .filter_map(|sig| sig.signature_creation_time())
                    .min()
                    .unwrap_or(UNIX_EPOCH),
            ),
            _ => None,
        };
        let valid = match revoked {
            None => now,
            Some(revoked) => {
                let created = cert.primary_key().key().creation_time();
                let before = revoked
                    .checked_sub(std::time::Duration::from_secs(1))
                    .unwrap_or(UNIX_EPOCH)
                    .max(created);
                cert.with_policy(&POLICY, Some(before))
                    .map_err(|_| CertError::Revoked {
                        fingerprint: fingerprint.clone(),
                    })?
            }
        };
        if let Err(e) = cert.with_policy(&POLICY, None).and_then(|now| now.alive()) {
            return Err(match e.downcast_ref::<openpgp::Error>() {
                Some(openpgp::Error::Expired(_)) => CertError::Expired { fingerprint },
                _ => CertError::NotLive {
                    fingerprint,
                    reason: format!("{e:#}"),
                },
            });
        }
        let name = match valid.primary_userid() {
            Ok(uid) => String::from_utf8_lossy(uid.userid().value()).into_owned(),
            Err(_) => return Err(CertError::NoUserId { fingerprint }),
        };
        let primary_expiry = valid.primary_key().key_expiration_time();
        // The primary key of a revoked certificate is kept whatever the
        // revocation's reason (a "compromised" one counts from its date
        // too); revoked subkeys are dropped.
        let signing_keys: Vec<SigningKey> = valid
            .keys()
            .supported()
            .alive()
            .for_signing()
            .filter(|ka| {
                (revoked.is_some() && ka.primary())
                    || !matches!(ka.revocation_status(), RevocationStatus::Revoked(_))
            })
            .map(|ka| SigningKey {
                expires: earliest(primary_expiry, ka.key_expiration_time()),
                revoked,
                key: ka.key().clone(),
            })
            .collect();
        if signing_keys.is_empty() {
            return Err(CertError::NoSigningKey { fingerprint });
        }
        // Nobody encrypts to a revoked certificate.
        let encryption_keys: Vec<Key<key::PublicParts, key::UnspecifiedRole>> = valid
            .keys()
            .supported()
            .alive()
            .revoked(false)
            .key_flags(encryption_flags())
            .filter(|_| revoked.is_none())
            .map(|ka| ka.key().clone())
            .collect();
        let armored = cert
            .armored()
            .to_vec()
            .map_err(|e| CertError::Parse(format!("cannot serialize: {e:#}")))?;
        Ok(TrustedCert {
            inner: Arc::new(CertInner {
                fingerprint,
                name,
                armored,
                signing_keys,
                encryption_keys,
                had_secret,
                expires: primary_expiry,
                revoked,
            }),
        })
    }

    /// When the certificate expires, if it does.
    pub fn expires(&self) -> Option<SystemTime> {
        self.inner.expires
    }

    /// When the certificate was revoked, if it was: signatures made from
    /// then on are refused.
    pub fn revoked(&self) -> Option<SystemTime> {
        self.inner.revoked
    }
}

impl fmt::Debug for TrustedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TrustedCert")
            .field("name", &self.name())
            .field("fingerprint", self.fingerprint())
            .field("can_encrypt", &self.can_encrypt())
            .finish()
    }
}

impl TrustStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads every `*.asc` / `*.pgp` file in `dir`, in name order. Returns
    /// the store and one error per refused file. A missing dir is an empty
    /// store.
    pub fn load_dir(dir: &Path) -> (TrustStore, Vec<(PathBuf, CertError)>) {
        let mut store = TrustStore::new();
        let mut errors = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return (store, errors),
            Err(e) => {
                errors.push((dir.to_owned(), CertError::Io(e)));
                return (store, errors);
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            match entry {
                Ok(entry) => {
                    let path = entry.path();
                    if !is_cert_file(&path) {
                        continue;
                    }
                    // Followed: a certificate may be a symbolic link. One
                    // that leads nowhere (dangling, or a loop) is reported.
                    match fs::metadata(&path) {
                        Ok(metadata) if metadata.is_file() => paths.push(path),
                        Ok(_) => {}
                        Err(e) => errors.push((path, CertError::Io(e))),
                    }
                }
                Err(e) => errors.push((dir.to_owned(), CertError::Io(e))),
            }
        }
        paths.sort();
        let mut origin: HashMap<Fingerprint, PathBuf> = HashMap::new();
        let mut revocations = Vec::new();
        for path in paths {
            let parsed = match read_bounded(&path) {
                Ok(bytes) => match revoke::parse_revocation(&bytes) {
                    Some(revocation) => {
                        revocations.push((path, revocation));
                        continue;
                    }
                    None => TrustedCert::parse(&bytes),
                },
                Err(e) => Err(e),
            };
            match parsed {
                Ok(cert) => {
                    if let Some(first) = origin.get(cert.fingerprint()) {
                        let error = CertError::Duplicate {
                            fingerprint: cert.fingerprint().clone(),
                            first: first.clone(),
                        };
                        errors.push((path, error));
                        continue;
                    }
                    origin.insert(cert.fingerprint().clone(), path);
                    store.insert(cert);
                }
                Err(e) => errors.push((path, e)),
            }
        }
        for (path, revocation) in revocations {
            if let Err(e) = store.apply_revocation(revocation) {
                errors.push((path, e));
            }
        }
        errors.sort_by(|a, b| a.0.cmp(&b.0));
        (store, errors)
    }

    /// Adds `cert`, replacing any certificate with the same fingerprint.
    pub fn insert(&mut self, cert: TrustedCert) {
        let fingerprint = cert.fingerprint().clone();
        self.remove(&fingerprint);
        for signing_key in &cert.inner.signing_keys {
            self.by_key_fpr
                .insert(signing_key.key.fingerprint(), fingerprint.clone());
            let ids = self.by_key_id.entry(signing_key.key.keyid()).or_default();
            if !ids.contains(&fingerprint) {
                ids.push(fingerprint.clone());
            }
        }
        self.certs.insert(fingerprint, cert);
    }

    pub fn remove(&mut self, fpr: &Fingerprint) -> Option<TrustedCert> {
        let cert = self.certs.remove(fpr)?;
        for signing_key in &cert.inner.signing_keys {
            let key_fpr = signing_key.key.fingerprint();
            if self.by_key_fpr.get(&key_fpr) == Some(fpr) {
                self.by_key_fpr.remove(&key_fpr);
            }
            let key_id = signing_key.key.keyid();
            if let Some(ids) = self.by_key_id.get_mut(&key_id) {
                ids.retain(|f| f != fpr);
                if ids.is_empty() {
                    self.by_key_id.remove(&key_id);
                }
            }
        }
        Some(cert)
    }

    pub fn get(&self, fpr: &Fingerprint) -> Option<&TrustedCert> {
        self.certs.get(fpr)
    }

    /// The certificate whose name matches `name`, ignoring case; the one
    /// with the lowest fingerprint if several do.
    pub fn find_by_name(&self, name: &str) -> Option<&TrustedCert> {
        let wanted = name.to_lowercase();
        self.certs
            .values()
            .find(|cert| cert.name().to_lowercase() == wanted)
    }

    /// Certificates in fingerprint order.
    pub fn iter(&self) -> impl Iterator<Item = &TrustedCert> {
        self.certs.values()
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Verifies one detached signature (binary or armored) over `data` and
    /// returns the signer's primary fingerprint.
    ///
    /// Refused under the policy: a signature type other than binary, a weak
    /// hash, an expired signature, one dated more than sequoia's clock-skew
    /// tolerance (30 minutes) in the future, or one made after its key
    /// expired.
    ///
    /// The fast path: parse the packet, look the issuer up in the index of
    /// signing keys built at insert time, check the signature against the
    /// policy, verify over `data`. No streaming verifier, no certificate
    /// re-validation per call.
    pub fn verify_detached(&self, data: &[u8], sig: &[u8]) -> Result<Fingerprint, VerifyError> {
        let sig = parse_one_signature(sig)?;
        if sig.version() != 4 {
            return Err(VerifyError::RejectedByPolicy(format!(
                "v{} signatures are not accepted, only v4",
                sig.version()
            )));
        }
        if sig.typ() != SignatureType::Binary {
            return Err(VerifyError::RejectedByPolicy(format!(
                "signature type {} is not binary",
                sig.typ()
            )));
        }
        let issuers = sig.get_issuers();
        let Some((signer, signing_key)) = self.find_signing_key(&issuers) else {
            let issuer = issuers
                .first()
                .map(|handle| handle.to_hex())
                .unwrap_or_else(|| "(no issuer)".to_owned());
            return Err(VerifyError::UnknownSigner { issuer });
        };
        POLICY
            .signature(&sig, HashAlgoSecurity::CollisionResistance)
            .map_err(|e| VerifyError::RejectedByPolicy(format!("{e:#}")))?;
        sig.signature_alive(None, None)
            .map_err(|e| VerifyError::RejectedByPolicy(format!("{e:#}")))?;
        let created = sig
            .signature_creation_time()
            .ok_or_else(|| VerifyError::Malformed("no signature creation time".into()))?;
        if let Some(expires) = signing_key.expires {
            if created >= expires {
                return Err(VerifyError::RejectedByPolicy(format!(
                    "signing key {} had expired when the signature was made",
                    signing_key.key.fingerprint()
                )));
            }
        }
        if let Some(revoked) = signing_key.revoked {
            if created >= revoked {
                return Err(VerifyError::Revoked {
                    signer: signer.clone(),
                    revoked: rfc3339(revoked),
                    signed: rfc3339(created),
                });
            }
        }
        if created < signing_key.key.creation_time() {
            return Err(VerifyError::RejectedByPolicy(
                "signature predates its key".into(),
            ));
        }
        match verify_over(&sig, &signing_key.key, data) {
            Ok(()) => Ok(signer.clone()),
            Err(_) => Err(VerifyError::BadSignature {
                signer: signer.clone(),
            }),
        }
    }

    /// Encrypts `plaintext` to the encryption subkeys of `to` (and nothing
    /// else): a binary OpenPGP message, SEIPD v1 (GnuPG 2.2 reads it),
    /// AES-256, no compression.
    pub fn encrypt(plaintext: &[u8], to: &[&TrustedCert]) -> Result<Vec<u8>, SignError> {
        if to.is_empty() {
            return Err(SignError::NoRecipients);
        }
        let mut recipients = Vec::new();
        for cert in to {
            if !cert.can_encrypt() {
                return Err(SignError::NoEncryptionKey(cert.fingerprint().clone()));
            }
            for key in &cert.inner.encryption_keys {
                // Advertising only SEIPDv1 for the recipient keeps the
                // encryptor from choosing SEIPDv2, which GnuPG 2.2 lacks.
                recipients.push(Recipient::new(
                    Features::empty().set_seipdv1(),
                    KeyHandle::from(key.keyid()),
                    key,
                ));
            }
        }
        let mut sink = Vec::with_capacity(plaintext.len() + 512);
        let encrypt_err = |e: openpgp::anyhow::Error| SignError::Encrypt(format!("{e:#}"));
        let message = Message::new(&mut sink);
        let message = Encryptor::for_recipients(message, recipients)
            .symmetric_algo(SymmetricAlgorithm::AES256)
            .build()
            .map_err(encrypt_err)?;
        let mut literal = LiteralWriter::new(message).build().map_err(encrypt_err)?;
        literal
            .write_all(plaintext)
            .map_err(|e| SignError::Encrypt(e.to_string()))?;
        literal.finalize().map_err(encrypt_err)?;
        Ok(sink)
    }

    fn find_signing_key(&self, issuers: &[KeyHandle]) -> Option<(&Fingerprint, &SigningKey)> {
        // Issuer fingerprints sort before key ids; the first hit wins.
        for handle in issuers {
            let primaries: &[Fingerprint] = match handle {
                KeyHandle::Fingerprint(fpr) => match self.by_key_fpr.get(fpr) {
                    Some(primary) => std::slice::from_ref(primary),
                    None => continue,
                },
                KeyHandle::KeyID(id) => match self.by_key_id.get(id) {
                    Some(primaries) => primaries,
                    None => continue,
                },
            };
            for primary in primaries {
                let Some(cert) = self.certs.get(primary) else {
                    continue;
                };
                let found = cert
                    .inner
                    .signing_keys
                    .iter()
                    .find(|signing_key| handle.aliases(signing_key.key.key_handle()));
                if let Some(signing_key) = found {
                    return Some((cert.fingerprint(), signing_key));
                }
            }
        }
        None
    }
}

/// Sequoia's standard policy evaluated at the current time.
static POLICY: StandardPolicy<'static> = StandardPolicy::new();

struct CertInner {
    fingerprint: Fingerprint,
    name: String,
    armored: Vec<u8>,
    signing_keys: Vec<SigningKey>,
    encryption_keys: Vec<Key<key::PublicParts, key::UnspecifiedRole>>,
    had_secret: bool,
    expires: Option<SystemTime>,
    revoked: Option<SystemTime>,
}

/// A key found valid and signing-capable when its certificate was loaded.
struct SigningKey {
    key: Key<key::PublicParts, key::UnspecifiedRole>,
    /// When the key (or its primary key) expires; signatures made at or
    /// after this time are refused.
    expires: Option<SystemTime>,
    /// When its certificate was revoked; signatures made at or after this
    /// time are refused.
    revoked: Option<SystemTime>,
}

struct DecryptHelper<'a> {
    keys: &'a [KeyPair],
}

impl VerificationHelper for DecryptHelper<'_> {
    fn get_certs(&mut self, _ids: &[KeyHandle]) -> openpgp::Result<Vec<Cert>> {
        // Encrypted bodies are not signed inside; the envelope is.
        Ok(Vec::new())
    }

    fn check(&mut self, structure: MessageStructure<'_>) -> openpgp::Result<()> {
        match structure.iter().next() {
            Some(MessageLayer::Encryption { .. }) => Ok(()),
            _ => Err(openpgp::Error::MalformedMessage("message is not encrypted".into()).into()),
        }
    }
}

impl DecryptionHelper for DecryptHelper<'_> {
    fn decrypt(
        &mut self,
        pkesks: &[PKESK],
        _skesks: &[SKESK],
        sym_algo: Option<SymmetricAlgorithm>,
        decrypt: &mut dyn FnMut(Option<SymmetricAlgorithm>, &SessionKey) -> bool,
    ) -> openpgp::Result<Option<Cert>> {
        let mut addressed_to_us = false;
        for pkesk in pkesks {
            for keypair in self.keys {
                let public = keypair.public();
                let for_key = match pkesk.recipient() {
                    Some(handle) => handle.aliases(public.key_handle()),
                    // An anonymous recipient: try every key.
                    None => true,
                };
                if !for_key {
                    continue;
                }
                addressed_to_us |= pkesk.recipient().is_some();
                let mut keypair = keypair.clone();
                if let Some((algo, session_key)) = pkesk.decrypt(&mut keypair, sym_algo) {
                    if decrypt(algo, &session_key) {
                        return Ok(None);
                    }
                }
            }
        }
        if addressed_to_us {
            Err(openpgp::Error::InvalidSessionKey(
                "the session key addressed to us does not decrypt".into(),
            )
            .into())
        } else {
            Err(openpgp::Error::MissingSessionKey("not addressed to this node".into()).into())
        }
    }
}

/// A certificate or revocation file's bytes, refused when larger than
/// [`MAX_CERT_BYTES`] before being read whole.
fn read_bounded(path: &Path) -> Result<Vec<u8>, CertError> {
    let file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CERT_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CERT_BYTES {
        return Err(CertError::TooLarge);
    }
    Ok(bytes)
}

fn read_tsk(path: &Path) -> Result<Cert, SignError> {
    let bytes = fs::read(path).map_err(|source| SignError::Read {
        path: path.to_owned(),
        source,
    })?;
    Cert::from_bytes(&bytes).map_err(|e| SignError::BadKey {
        path: path.to_owned(),
        reason: format!("{e:#}"),
    })
}

/// A time as RFC 3339 UTC, seconds precision.
pub fn rfc3339(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    cer_proto::model::Timestamp::from_unix_nanos(i128::from(secs) * 1_000_000_000).to_string()
}

fn armor_bytes(binary: &[u8], kind: armor::Kind) -> io::Result<Vec<u8>> {
    let mut writer = armor::Writer::new(Vec::with_capacity(binary.len() * 4 / 3 + 128), kind)?;
    writer.write_all(binary)?;
    writer.finalize()
}

fn check_name(name: &str) -> Result<(), SignError> {
    let invalid = |reason| SignError::InvalidName {
        name: name.to_owned(),
        reason,
    };
    if name.trim().is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.trim() != name {
        return Err(invalid("must not start or end with whitespace"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

fn encryption_flags() -> KeyFlags {
    KeyFlags::empty()
        .set_transport_encryption()
        .set_storage_encryption()
}

fn to_fingerprint(fpr: &openpgp::Fingerprint) -> Result<Fingerprint, cer_proto::FieldError> {
    Fingerprint::parse(&fpr.to_hex())
}

fn earliest(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<SystemTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn is_cert_file(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    !hidden && matches!(ext.as_deref(), Some("asc" | "pgp"))
}

/// Parses exactly one signature packet, binary or armored.
fn parse_one_signature(bytes: &[u8]) -> Result<Signature, VerifyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(VerifyError::Unsigned);
    }
    let malformed = |e: openpgp::anyhow::Error| VerifyError::Malformed(format!("{e:#}"));
    let PacketParserResult::Some(parser) = PacketParser::from_bytes(bytes).map_err(malformed)?
    else {
        return Err(VerifyError::Malformed("no packets".into()));
    };
    let (packet, rest) = parser.next().map_err(malformed)?;
    if let PacketParserResult::Some(_) = rest {
        return Err(VerifyError::Malformed(
            "expected exactly one signature packet, found more packets".into(),
        ));
    }
    match packet {
        Packet::Signature(sig) => Ok(sig),
        Packet::Unknown(unknown) => Err(VerifyError::Malformed(format!(
            "unsupported {} packet: {}",
            unknown.tag(),
            unknown.error()
        ))),
        other => Err(VerifyError::Malformed(format!(
            "expected a signature packet, found {}",
            other.tag()
        ))),
    }
}

/// Checks a v4 signature over `data` with `key`: what
/// `Signature::verify_message` does, minus sequoia's process-wide
/// verification cache, which keeps every verified signature for the life of
/// the process (unbounded growth in a daemon) and costs an extra SHA-512.
/// The caller has checked the version, type, policy and times.
fn verify_over(
    sig: &Signature,
    key: &Key<key::PublicParts, key::UnspecifiedRole>,
    data: &[u8],
) -> openpgp::Result<()> {
    let mut hash = sig.hash_algo().context()?.for_signature(sig.version());
    hash.update(data);
    sig.hash(&mut hash)?;
    let digest = hash.into_digest()?;
    key.verify(sig.mpis(), sig.hash_algo(), &digest)
}

/// Maps a sequoia decryption failure to a [`DecryptError`], looking through
/// `io::Error` wrappers and context layers for the sequoia error kind.
fn classify_decrypt_error(err: openpgp::anyhow::Error) -> DecryptError {
    let mut kind = None;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<openpgp::Error>() {
            kind = Some(e.clone());
            break;
        }
        if let Some(e) = cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<openpgp::Error>())
        {
            kind = Some(e.clone());
            break;
        }
    }
    match kind {
        Some(openpgp::Error::MissingSessionKey(_)) => DecryptError::NotForUs,
        Some(openpgp::Error::ManipulatedMessage) => {
            DecryptError::Integrity("the message has been modified".into())
        }
        Some(openpgp::Error::InvalidSessionKey(reason)) => DecryptError::Integrity(reason),
        _ => DecryptError::Malformed(format!("{err:#}")),
    }
}

/// Writes `bytes` to `path` so that the file is never visible with other
/// permissions than 0600 nor half-written: a 0600 temporary file in the same
/// directory, fsync, rename, fsync of the directory.
fn write_private_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file path"))?;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}-{nanos}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        // The umask may have removed bits; never added any. Make it exact.
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// An armored certificate whose User ID is `user_id`, exactly as given:
/// what another tool (or a hostile peer) may hand an operator. For tests
/// of code that prints names from certificates.
#[cfg(test)]
pub(crate) fn test_cert_with_user_id(user_id: &str) -> Vec<u8> {
    let (cert, _) = CertBuilder::new()
        .add_userid(openpgp::packet::UserID::from(user_id.as_bytes()))
        .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
        .generate()
        .expect("generating a test certificate");
    let armored = cert.armored().to_vec();
    armored.expect("armoring a test certificate")
}

/// A transferable secret key (what `gpg --export-secret-keys --armor`
/// gives), for tests of a secret key dropped where a certificate belongs.
#[cfg(test)]
pub(crate) fn test_secret_key(user_id: &str) -> Vec<u8> {
    let (cert, _) = CertBuilder::general_purpose(Some(user_id))
        .generate()
        .expect("generating a test key");
    let armored = cert.as_tsk().armored().to_vec();
    armored.expect("armoring a test key")
}

#[cfg(test)]
mod tests;
