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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cer_proto::Fingerprint;
use openpgp::cert::prelude::*;
use openpgp::crypto::hash::Hash as _;
use openpgp::crypto::{KeyPair, SessionKey};
use openpgp::packet::signature::subpacket::CLOCK_SKEW_TOLERANCE;
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
        // Backdated by a minute, as sequoia does by default, so that a
        // peer whose clock is a little behind accepts it at once.
        let created = crate::audit::system_time()
            .checked_sub(Duration::from_secs(60))
            .unwrap_or(std::time::UNIX_EPOCH);
        let (tsk, _revocation) = CertBuilder::new()
            .set_creation_time(created)
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

    /// Reads a TSK (secret key file, binary or armored).
    pub fn load(path: &Path) -> Result<Identity, SignError> {
        let bytes = fs::read(path).map_err(|source| SignError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bad = |reason: String| SignError::BadKey {
            path: path.to_owned(),
            reason,
        };
        let tsk = Cert::from_bytes(&bytes).map_err(|e| bad(format!("{e:#}")))?;
        Identity::from_tsk(tsk).map_err(bad)
    }

    /// Writes the TSK armored, atomically, with mode 0600 from the start.
    pub fn save(&self, path: &Path) -> Result<(), SignError> {
        let armored = self
            .tsk
            .as_tsk()
            .armored()
            .to_vec()
            .map_err(|e| SignError::Serialize(format!("{e:#}")))?;
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
            .set_signature_creation_time(crate::audit::system_time())
            .and_then(|builder| builder.sign_message(&mut signer, data))
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
        let file = fs::File::open(path)?;
        let mut bytes = Vec::new();
        file.take(MAX_CERT_BYTES + 1).read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_CERT_BYTES {
            return Err(CertError::TooLarge);
        }
        TrustedCert::parse(&bytes)
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
        let valid = cert
            .with_policy(&POLICY, None)
            .map_err(|e| CertError::Policy {
                fingerprint: fingerprint.clone(),
                reason: format!("{e:#}"),
            })?;
        if let RevocationStatus::Revoked(_) = valid.revocation_status() {
            return Err(CertError::Revoked { fingerprint });
        }
        if let Err(e) = valid.alive() {
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
        let signing_keys: Vec<SigningKey> = valid
            .keys()
            .supported()
            .alive()
            .revoked(false)
            .for_signing()
            .map(|ka| SigningKey {
                expires: earliest(primary_expiry, ka.key_expiration_time()),
                key: ka.key().clone(),
            })
            .collect();
        if signing_keys.is_empty() {
            return Err(CertError::NoSigningKey { fingerprint });
        }
        let encryption_keys: Vec<Key<key::PublicParts, key::UnspecifiedRole>> = valid
            .keys()
            .supported()
            .alive()
            .revoked(false)
            .key_flags(encryption_flags())
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
            }),
        })
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
        for path in paths {
            let parsed = TrustedCert::read_file(&path);
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
        let created = sig
            .signature_creation_time()
            .ok_or_else(|| VerifyError::Malformed("no signature creation time".into()))?;
        // A signature from the future means the signer's clock is ahead
        // (or ours behind): say so, rather than sequoia's "not live".
        let now = crate::audit::system_time();
        if let Ok(ahead) = created.duration_since(now) {
            if ahead > CLOCK_SKEW_TOLERANCE {
                return Err(VerifyError::RejectedByPolicy(format!(
                    "signed {} ahead of this node's clock, more than the {} tolerated: \
                     the signer's clock (or this node's) is wrong; accepted once this node's clock reaches {}",
                    humantime::format_duration(Duration::from_secs(ahead.as_secs())),
                    humantime::format_duration(CLOCK_SKEW_TOLERANCE),
                    humantime::format_rfc3339_seconds(created - CLOCK_SKEW_TOLERANCE),
                )));
            }
        }
        sig.signature_alive(Some(now), Some(CLOCK_SKEW_TOLERANCE))
            .map_err(|e| VerifyError::RejectedByPolicy(format!("{e:#}")))?;
        if let Some(expires) = signing_key.expires {
            if created >= expires {
                return Err(VerifyError::RejectedByPolicy(format!(
                    "signing key {} had expired when the signature was made",
                    signing_key.key.fingerprint()
                )));
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
}

/// A key found valid and signing-capable when its certificate was loaded.
struct SigningKey {
    key: Key<key::PublicParts, key::UnspecifiedRole>,
    /// When the key (or its primary key) expires; signatures made at or
    /// after this time are refused.
    expires: Option<SystemTime>,
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
mod tests {
    use super::*;

    use std::process::Command;
    use std::sync::OnceLock;

    /// Key generation is cheap, but sharing keys keeps the tests quick.
    fn alice() -> &'static Identity {
        static KEY: OnceLock<Identity> = OnceLock::new();
        KEY.get_or_init(|| Identity::generate("KE-CIRT").expect("generate"))
    }

    fn bob() -> &'static Identity {
        static KEY: OnceLock<Identity> = OnceLock::new();
        KEY.get_or_init(|| Identity::generate("CN-CERT").expect("generate"))
    }

    fn store_of(ids: &[&Identity]) -> TrustStore {
        let mut store = TrustStore::new();
        for id in ids {
            store.insert(id.public_cert());
        }
        store
    }

    #[test]
    fn generated_key_has_the_expected_shape() {
        let id = alice();
        assert_eq!(id.name(), "KE-CIRT");
        assert_eq!(id.fingerprint().as_str().len(), 40);
        let primary = id.tsk.primary_key().key();
        assert_eq!(primary.version(), 4);
        assert_eq!(primary.pk_algo(), openpgp::types::PublicKeyAlgorithm::EdDSA);
        let valid = id.tsk.with_policy(&POLICY, None).unwrap();
        assert!(valid.primary_key().for_signing());
        assert!(valid.primary_key().for_certification());
        assert_eq!(valid.primary_key().key_expiration_time(), None);
        assert_eq!(valid.keys().subkeys().count(), 1);
        let sub = valid.keys().subkeys().next().unwrap();
        assert!(sub.for_transport_encryption() && sub.for_storage_encryption());
        assert_eq!(
            sub.key().pk_algo(),
            openpgp::types::PublicKeyAlgorithm::ECDH
        );
        assert_eq!(valid.userids().count(), 1);
        assert!(id.public_cert().can_encrypt());
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "  ", " KE-CIRT", "KE\nCIRT"] {
            assert!(
                matches!(Identity::generate(name), Err(SignError::InvalidName { .. })),
                "{name:?}"
            );
        }
    }

    #[test]
    fn sign_verify_round_trip() {
        let store = store_of(&[alice(), bob()]);
        let data = br#"{"v":1,"seq":1}"#;
        let sig = alice().sign_detached(data);
        assert_eq!(
            store.verify_detached(data, &sig).unwrap(),
            *alice().fingerprint()
        );
        let armored = alice().sign_detached_armored(data);
        assert!(armored.starts_with(b"-----BEGIN PGP SIGNATURE-----"));
        assert_eq!(
            store.verify_detached(data, &armored).unwrap(),
            *alice().fingerprint()
        );
        let sig = bob().sign_detached(data);
        assert_eq!(
            store.verify_detached(data, &sig).unwrap(),
            *bob().fingerprint()
        );
    }

    #[test]
    fn signature_is_one_binary_sha512_packet() {
        let sig = alice().sign_detached(b"x");
        let parsed = parse_one_signature(&sig).unwrap();
        assert_eq!(parsed.typ(), SignatureType::Binary);
        assert_eq!(parsed.hash_algo(), HashAlgorithm::SHA512);
        assert_eq!(parsed.version(), 4);
    }

    #[test]
    fn fast_path_agrees_with_sequoia() {
        let data = b"envelope bytes";
        let sig = parse_one_signature(&alice().sign_detached(data)).unwrap();
        let key = alice().signer.public();
        assert!(sig.verify_message(key, data).is_ok());
        assert!(verify_over(&sig, key, data).is_ok());
        assert!(sig.verify_message(key, b"other bytes").is_err());
        assert!(verify_over(&sig, key, b"other bytes").is_err());
        assert!(verify_over(&sig, bob().signer.public(), data).is_err());
    }

    #[test]
    fn flipped_data_byte_is_a_bad_signature() {
        let store = store_of(&[alice()]);
        let mut data = b"incident body".to_vec();
        let sig = alice().sign_detached(&data);
        data[3] ^= 0x01;
        match store.verify_detached(&data, &sig) {
            Err(VerifyError::BadSignature { signer }) => assert_eq!(signer, *alice().fingerprint()),
            other => panic!("expected BadSignature, got {other:?}"),
        }
    }

    #[test]
    fn flipped_signature_byte_is_refused() {
        let store = store_of(&[alice()]);
        let data = b"incident body";
        let mut sig = alice().sign_detached(data);
        let last = sig.len() - 5;
        sig[last] ^= 0x01;
        assert!(store.verify_detached(data, &sig).is_err());
    }

    #[test]
    fn unknown_signer() {
        let store = store_of(&[alice()]);
        let sig = bob().sign_detached(b"data");
        match store.verify_detached(b"data", &sig) {
            Err(VerifyError::UnknownSigner { issuer }) => {
                assert_eq!(issuer, bob().fingerprint().as_str())
            }
            other => panic!("expected UnknownSigner, got {other:?}"),
        }
        assert!(matches!(
            TrustStore::new().verify_detached(b"data", &sig),
            Err(VerifyError::UnknownSigner { .. })
        ));
    }

    #[test]
    fn removed_cert_is_unknown_again() {
        let mut store = store_of(&[alice(), bob()]);
        let sig = alice().sign_detached(b"data");
        assert!(store.remove(alice().fingerprint()).is_some());
        assert!(store.remove(alice().fingerprint()).is_none());
        assert!(matches!(
            store.verify_detached(b"data", &sig),
            Err(VerifyError::UnknownSigner { .. })
        ));
        assert_eq!(store.len(), 1);
        assert!(store.by_key_fpr.len() == 1 && store.by_key_id.len() == 1);
        store.insert(alice().public_cert());
        store.insert(alice().public_cert());
        assert_eq!(store.len(), 2);
        assert!(store.verify_detached(b"data", &sig).is_ok());
    }

    #[test]
    fn garbage_signatures_are_malformed() {
        let store = store_of(&[alice()]);
        assert!(matches!(
            store.verify_detached(b"data", b""),
            Err(VerifyError::Unsigned)
        ));
        for garbage in [
            &b"garbage"[..],
            &[0xff; 64][..],
            &b"-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n"[..],
            &alice().public_armored()[..],
        ] {
            match store.verify_detached(b"data", garbage) {
                Err(VerifyError::Malformed(_)) => {}
                other => panic!("expected Malformed, got {other:?}"),
            }
        }
        // Two signatures where one is expected.
        let mut two = alice().sign_detached(b"data");
        two.extend(alice().sign_detached(b"data"));
        assert!(matches!(
            store.verify_detached(b"data", &two),
            Err(VerifyError::Malformed(_))
        ));
    }

    #[test]
    fn sha1_signature_is_rejected_by_policy() {
        let store = store_of(&[alice()]);
        let mut signer = alice().signer.clone();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .set_hash_algo(HashAlgorithm::SHA1)
            .sign_message(&mut signer, b"data")
            .unwrap();
        let mut bytes = Vec::new();
        Packet::from(sig).serialize(&mut bytes).unwrap();
        assert!(matches!(
            store.verify_detached(b"data", &bytes),
            Err(VerifyError::RejectedByPolicy(_))
        ));
    }

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        alice().save(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
        let loaded = Identity::load(&path).unwrap();
        assert_eq!(loaded.fingerprint(), alice().fingerprint());
        assert_eq!(loaded.name(), "KE-CIRT");
        // Saving over an existing file replaces it, still 0600, no leftovers.
        loaded.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // The loaded key signs for the same store entry.
        let store = store_of(&[alice()]);
        let sig = loaded.sign_detached(b"x");
        assert_eq!(
            store.verify_detached(b"x", &sig).unwrap(),
            *alice().fingerprint()
        );
    }

    #[test]
    fn load_refuses_public_certs_and_junk() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public.asc");
        fs::write(&public, alice().public_armored()).unwrap();
        assert!(matches!(
            Identity::load(&public),
            Err(SignError::BadKey { .. })
        ));
        let junk = dir.path().join("junk");
        fs::write(&junk, b"junk").unwrap();
        assert!(matches!(
            Identity::load(&junk),
            Err(SignError::BadKey { .. })
        ));
        let missing = dir.path().join("missing");
        let err = Identity::load(&missing).unwrap_err();
        assert!(matches!(err, SignError::Read { .. }));
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn public_armored_parses_back() {
        let armored = alice().public_armored();
        assert!(armored.starts_with(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"));
        let cert = TrustedCert::parse(&armored).unwrap();
        assert_eq!(cert.fingerprint(), alice().fingerprint());
        assert_eq!(cert.name(), "KE-CIRT");
        assert!(cert.can_encrypt());
        assert!(cert.check_encryption().is_ok());
        assert_eq!(cert.armored(), armored);
    }

    #[test]
    fn secret_material_is_stripped() {
        let tsk = alice().tsk.as_tsk().to_vec().unwrap();
        let cert = TrustedCert::parse(&tsk).unwrap();
        assert_eq!(cert.fingerprint(), alice().fingerprint());
        let text = String::from_utf8(cert.armored()).unwrap();
        assert!(text.contains("PUBLIC KEY BLOCK"));
        let reparsed = Cert::from_bytes(&cert.armored()).unwrap();
        assert!(!reparsed.is_tsk());
        assert!(cert.had_secret());
        let public = TrustedCert::parse(&cert.armored()).unwrap();
        assert!(!public.had_secret());
    }

    #[test]
    fn refused_certs() {
        let (cert, revocation) = CertBuilder::new()
            .add_userid("REVOKED")
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .generate()
            .unwrap();
        let revoked = cert.insert_packets(revocation).unwrap().0;
        assert!(matches!(
            TrustedCert::parse(&revoked.armored().to_vec().unwrap()),
            Err(CertError::Revoked { .. })
        ));

        let created = SystemTime::now() - std::time::Duration::from_secs(7200);
        let (expired, _) = CertBuilder::new()
            .add_userid("EXPIRED")
            .set_creation_time(created)
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .set_validity_period(std::time::Duration::from_secs(3600))
            .generate()
            .unwrap();
        assert!(matches!(
            TrustedCert::parse(&expired.to_vec().unwrap()),
            Err(CertError::Expired { .. })
        ));

        let (no_signing, _) = CertBuilder::new()
            .add_userid("CERTIFY-ONLY")
            .add_transport_encryption_subkey()
            .generate()
            .unwrap();
        assert!(matches!(
            TrustedCert::parse(&no_signing.to_vec().unwrap()),
            Err(CertError::NoSigningKey { .. })
        ));

        let (sign_only, _) = CertBuilder::new()
            .add_userid("SIGN-ONLY")
            .set_primary_key_flags(KeyFlags::empty().set_certification().set_signing())
            .generate()
            .unwrap();
        let sign_only = TrustedCert::parse(&sign_only.to_vec().unwrap()).unwrap();
        assert!(!sign_only.can_encrypt());
        assert!(matches!(
            sign_only.check_encryption(),
            Err(CertError::NoEncryptionKey { .. })
        ));
        assert!(matches!(
            TrustStore::encrypt(b"x", &[&sign_only]),
            Err(SignError::NoEncryptionKey(_))
        ));

        let (v6, _) = CertBuilder::general_purpose(Some("V6"))
            .set_profile(Profile::RFC9580)
            .unwrap()
            .generate()
            .unwrap();
        assert!(matches!(
            TrustedCert::parse(&v6.to_vec().unwrap()),
            Err(CertError::UnsupportedVersion { version: 6 })
        ));

        assert!(matches!(
            TrustedCert::parse(b"not a cert"),
            Err(CertError::Parse(_))
        ));
        let mut two = alice().public_armored();
        two.extend(bob().public_armored());
        assert!(matches!(TrustedCert::parse(&two), Err(CertError::Parse(_))));
    }

    #[test]
    fn signing_subkey_verifies_for_its_primary() {
        let (cert, _) = CertBuilder::new()
            .add_userid("SUBKEY-SIGNER")
            .add_signing_subkey()
            .generate()
            .unwrap();
        let subkey = cert.keys().subkeys().secret().next().unwrap().key().clone();
        let mut signer = subkey.role_into_unspecified().into_keypair().unwrap();
        let sig = SignatureBuilder::new(SignatureType::Binary)
            .sign_message(&mut signer, b"data")
            .unwrap();
        let mut bytes = Vec::new();
        Packet::from(sig).serialize(&mut bytes).unwrap();
        let trusted = TrustedCert::parse(&cert.to_vec().unwrap()).unwrap();
        let mut store = TrustStore::new();
        store.insert(trusted.clone());
        assert_eq!(
            store.verify_detached(b"data", &bytes).unwrap(),
            *trusted.fingerprint()
        );
    }

    #[test]
    fn find_by_name_ignores_case() {
        let store = store_of(&[alice(), bob()]);
        assert_eq!(
            store.find_by_name("ke-cirt").unwrap().fingerprint(),
            alice().fingerprint()
        );
        assert_eq!(
            store.find_by_name("CN-CERT").unwrap().fingerprint(),
            bob().fingerprint()
        );
        assert!(store.find_by_name("EG-CERT").is_none());
        assert_eq!(store.iter().count(), 2);
        assert!(!store.is_empty());
    }

    #[test]
    fn encrypt_to_two_both_decrypt_third_cannot() {
        let carol = Identity::generate("EG-CERT").unwrap();
        let plaintext = b"TLP:RED body".to_vec();
        let alice_cert = alice().public_cert();
        let bob_cert = bob().public_cert();
        let message = TrustStore::encrypt(&plaintext, &[&alice_cert, &bob_cert]).unwrap();
        assert_eq!(alice().decrypt(&message).unwrap(), plaintext);
        assert_eq!(bob().decrypt(&message).unwrap(), plaintext);
        assert!(matches!(
            carol.decrypt(&message),
            Err(DecryptError::NotForUs)
        ));

        // SEIPD v1 (tag 18, version 1), PKESK v3, no compression inside.
        let pile = openpgp::PacketPile::from_bytes(&message).unwrap();
        let tags: Vec<_> = pile.children().map(|p| p.tag()).collect();
        assert_eq!(
            tags,
            [
                openpgp::packet::Tag::PKESK,
                openpgp::packet::Tag::PKESK,
                openpgp::packet::Tag::SEIP
            ]
        );
        assert!(matches!(
            pile.children().last().unwrap(),
            Packet::SEIP(openpgp::packet::SEIP::V1(_))
        ));

        assert!(matches!(
            TrustStore::encrypt(b"x", &[]),
            Err(SignError::NoRecipients)
        ));

        let armored = encrypt_armored(&plaintext, &[&alice_cert, &bob_cert]).unwrap();
        assert!(armored.starts_with("-----BEGIN PGP MESSAGE-----"));
        assert_eq!(alice().decrypt_armored(&armored).unwrap(), plaintext);
        assert_eq!(bob().decrypt_armored(&armored).unwrap(), plaintext);
        assert!(matches!(
            carol.decrypt_armored(&armored),
            Err(DecryptError::NotForUs)
        ));
    }

    #[test]
    fn tampered_or_junk_messages_are_refused() {
        let alice_cert = alice().public_cert();
        let plaintext = vec![7u8; 4000];
        let message = TrustStore::encrypt(&plaintext, &[&alice_cert]).unwrap();
        let mut tampered = message.clone();
        let at = tampered.len() - 100;
        tampered[at] ^= 0x40;
        match alice().decrypt(&tampered) {
            Err(DecryptError::Integrity(_)) => {}
            other => panic!("expected Integrity, got {other:?}"),
        }
        assert!(matches!(
            alice().decrypt(b"junk"),
            Err(DecryptError::Malformed(_))
        ));

        // A plain literal message is not an encrypted one.
        let mut sink = Vec::new();
        let mut literal = LiteralWriter::new(Message::new(&mut sink)).build().unwrap();
        literal.write_all(b"plain").unwrap();
        literal.finalize().unwrap();
        assert!(matches!(
            alice().decrypt(&sink),
            Err(DecryptError::Malformed(_))
        ));
    }

    #[test]
    fn load_dir_reports_refused_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ke-cirt.asc"), alice().public_armored()).unwrap();
        fs::write(dir.path().join("broken.pgp"), b"\x99garbage").unwrap();
        fs::write(dir.path().join("README.txt"), b"not a cert").unwrap();
        let (store, errors) = TrustStore::load_dir(dir.path());
        assert_eq!(store.len(), 1);
        assert!(store.get(alice().fingerprint()).is_some());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, dir.path().join("broken.pgp"));
        assert!(matches!(errors[0].1, CertError::Parse(_)));

        // The same certificate twice: the second file is reported.
        fs::write(dir.path().join("zz-copy.asc"), alice().public_armored()).unwrap();
        let (store, errors) = TrustStore::load_dir(dir.path());
        assert_eq!(store.len(), 1);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(matches!(errors[1].1, CertError::Duplicate { .. }));

        let (store, errors) = TrustStore::load_dir(&dir.path().join("absent"));
        assert!(store.is_empty() && errors.is_empty());
    }

    #[test]
    fn load_dir_reports_links_that_lead_nowhere_and_refuses_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ke-cirt.asc"), alice().public_armored()).unwrap();
        std::os::unix::fs::symlink("loop-b.asc", dir.path().join("loop-a.asc")).unwrap();
        std::os::unix::fs::symlink("loop-a.asc", dir.path().join("loop-b.asc")).unwrap();
        std::os::unix::fs::symlink("absent.asc", dir.path().join("dangling.asc")).unwrap();
        // Sparse: reading it whole would take 200 MB.
        let huge = fs::File::create(dir.path().join("huge.asc")).unwrap();
        huge.set_len(200 << 20).unwrap();
        let (store, errors) = TrustStore::load_dir(dir.path());
        assert_eq!(store.len(), 1);
        let refused: Vec<(String, String)> = errors
            .iter()
            .map(|(path, e)| {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, e.to_string())
            })
            .collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert_eq!(refused[0].0, "dangling.asc");
        assert!(refused[0].1.starts_with("cannot read"), "{refused:?}");
        assert_eq!(refused[1].0, "huge.asc");
        assert_eq!(refused[1].1, "larger than 1024 KiB; not a certificate");
        for (name, reason) in &refused[2..] {
            assert!(name.starts_with("loop-"), "{refused:?}");
            assert!(reason.contains("symbolic links"), "{refused:?}");
        }
    }

    fn gpg_available() -> bool {
        Command::new("gpg").arg("--version").output().is_ok()
    }

    /// Stops any gpg-agent started for a temporary GNUPGHOME.
    struct Agent<'a>(&'a Path);

    impl Drop for Agent<'_> {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .env("GNUPGHOME", self.0)
                .args(["--kill", "gpg-agent"])
                .output();
        }
    }

    fn gpg(home: &Path, args: &[&str]) -> std::process::Output {
        Command::new("gpg")
            .env("GNUPGHOME", home)
            .args(["--batch", "--no-tty", "--pinentry-mode", "loopback"])
            .args(args)
            .output()
            .expect("run gpg")
    }

    #[test]
    fn gnupg_interop() {
        if !gpg_available() {
            println!("skipping: gpg not found");
            return;
        }
        let home = tempfile::Builder::new().prefix("g").tempdir().unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let _agent = Agent(home.path());
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("ke-cirt.asc");
        fs::write(&cert, alice().public_armored()).unwrap();
        let out = gpg(home.path(), &["--import", cert.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let out = gpg(home.path(), &["--with-colons", "--list-keys"]);
        let listing = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listing}");
        let fpr_line = format!("fpr:::::::::{}:", alice().fingerprint());
        assert!(listing.contains(&fpr_line), "{listing}");
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("pub:") && l.contains(":ed25519:")),
            "{listing}"
        );
        assert!(
            listing
                .lines()
                .any(|l| l.starts_with("sub:") && l.contains(":cv25519:")),
            "{listing}"
        );
        assert!(
            listing.contains("uid:") && listing.contains("KE-CIRT"),
            "{listing}"
        );

        let data = dir.path().join("envelope.json");
        let body = br#"{"v":1,"author":"x","seq":1}"#;
        fs::write(&data, body).unwrap();
        let binary = dir.path().join("envelope.sig");
        fs::write(&binary, alice().sign_detached(body)).unwrap();
        let armored = dir.path().join("envelope.json.asc");
        fs::write(&armored, alice().sign_detached_armored(body)).unwrap();
        let mut changed = body.to_vec();
        changed[2] ^= 0x01;
        let bad_data = dir.path().join("changed.json");
        fs::write(&bad_data, &changed).unwrap();

        for sig in [&binary, &armored] {
            let out = gpg(
                home.path(),
                &["--verify", sig.to_str().unwrap(), data.to_str().unwrap()],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(stderr.contains("Good signature"), "{stderr}");
            assert!(stderr.contains("KE-CIRT"), "{stderr}");

            let out = gpg(
                home.path(),
                &[
                    "--verify",
                    sig.to_str().unwrap(),
                    bad_data.to_str().unwrap(),
                ],
            );
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{stderr}");
            assert!(stderr.contains("BAD signature"), "{stderr}");
        }
    }

    #[test]
    fn gnupg_decrypts_what_we_encrypt() {
        if !gpg_available() {
            println!("skipping: gpg not found");
            return;
        }
        let home = tempfile::Builder::new().prefix("g").tempdir().unwrap();
        fs::set_permissions(home.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let _agent = Agent(home.path());
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("node.key");
        alice().save(&key).unwrap();
        let out = gpg(home.path(), &["--import", key.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let message = dir.path().join("body.pgp");
        let alice_cert = alice().public_cert();
        fs::write(
            &message,
            TrustStore::encrypt(b"restricted body", &[&alice_cert]).unwrap(),
        )
        .unwrap();
        let out = gpg(home.path(), &["--decrypt", message.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"restricted body");
    }

    /// Many distinct messages in a row, as a peer's catch-up delivers them.
    #[test]
    fn verifies_many_distinct_messages() {
        let store = store_of(&[alice(), bob()]);
        for i in 0..200 {
            let message =
                format!(r#"{{"v":1,"seq":{i},"body":"{}"}}"#, "x".repeat(400)).into_bytes();
            let sig = alice().sign_detached(&message);
            assert_eq!(
                store.verify_detached(&message, &sig).unwrap(),
                *alice().fingerprint()
            );
        }
    }
}
