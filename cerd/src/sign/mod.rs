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

mod certs;
mod revoke;
mod rotate;
mod secret;

pub use revoke::is_revocation;
pub use rotate::{retired_path, signature_time, split_signatures};
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
    #[error("certificate {fingerprint} is not trusted here")]
    NotTrusted { fingerprint: Fingerprint },
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
    #[error(
        "{signer} replaced its key {key} at {retired}; this signature by that key is from {signed}"
    )]
    Retired {
        signer: Fingerprint,
        key: Fingerprint,
        retired: String,
        signed: String,
    },
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
    /// The encryption subkeys, ready to decrypt (those of earlier keys
    /// too, for what was encrypted to them).
    decryptors: Vec<KeyPair>,
    /// The current key's certificate.
    public: TrustedCert,
    /// The certificate of the node's first key: whose fingerprint is the
    /// node's identity, the author of its chain, whatever key signs now.
    author: TrustedCert,
    /// Earlier keys (TSKs), oldest first, kept to decrypt.
    retired: Vec<Cert>,
    /// The key that signed before the current one, if the node rotated.
    previous: Option<KeyPair>,
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
            .checked_sub(std::time::Duration::from_secs(60))
            .unwrap_or(UNIX_EPOCH);
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

    /// Reads a TSK (secret key file, binary or armored) whose secret key
    /// material is not protected by a passphrase.
    pub fn load(path: &Path) -> Result<Identity, SignError> {
        Identity::load_with(path, None)
    }

    /// Reads a TSK, unlocking it with `passphrase` if its secret key
    /// material is protected ([`SignError::Locked`] without one,
    /// [`SignError::WrongPassphrase`] when it does not unlock it).
    pub fn load_with(path: &Path, passphrase: Option<&Passphrase>) -> Result<Identity, SignError> {
        let tsk = unlocked(read_tsk(path)?, path, passphrase)?;
        let identity = Identity::from_tsk(tsk).map_err(|reason| SignError::BadKey {
            path: path.to_owned(),
            reason,
        })?;
        rotate::with_retired(identity, path, passphrase)
    }

    /// The identity's public certificate (its first key's, after a
    /// rotation) of a secret key file, and whether its secret key material
    /// is protected by a passphrase; no passphrase needed.
    pub fn peek(path: &Path) -> Result<(TrustedCert, bool), SignError> {
        let tsk = read_tsk(path)?;
        let tsk = rotate::first_retired(path)?.unwrap_or(tsk);
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
        if !self.retired.is_empty() {
            let retired = rotate::retired_path(path);
            let mut keyring = Vec::new();
            for tsk in &self.retired {
                keyring.extend(armored_tsk(tsk, passphrase)?);
            }
            write_private_atomically(&retired, &keyring).map_err(|source| SignError::Write {
                path: retired.clone(),
                source,
            })?;
        }
        let armored = armored_tsk(&self.tsk, passphrase)?;
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

    /// Writes [`Identity::first_key_revocation`] to `path`, mode 0600.
    pub fn save_first_key_revocation(&self, path: &Path) -> Result<(), SignError> {
        let armored = self.first_key_revocation()?;
        write_private_atomically(path, &armored).map_err(|source| SignError::Write {
            path: path.to_owned(),
            source,
        })
    }

    /// The node's identity: its first key's fingerprint, the author of
    /// everything it signs, before and after a key rotation.
    pub fn fingerprint(&self) -> &Fingerprint {
        self.author.fingerprint()
    }

    /// The fingerprint of the key that signs now.
    pub fn key_fingerprint(&self) -> &Fingerprint {
        self.public.fingerprint()
    }

    /// The first User ID's value.
    pub fn name(&self) -> &str {
        self.author.name()
    }

    /// The identity's certificate, ASCII-armored (what `gpg --import`
    /// takes, and what peers trust; after a rotation they learn the new
    /// key from the signed transition).
    pub fn public_armored(&self) -> Vec<u8> {
        self.author.armored()
    }

    /// The identity's certificate.
    pub fn public_cert(&self) -> TrustedCert {
        self.author.clone()
    }

    /// The current key's certificate.
    pub fn current_cert(&self) -> TrustedCert {
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
            author: public.clone(),
            public,
            retired: Vec::new(),
            previous: None,
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
    /// The primary fingerprint of the key that signs for this identity
    /// now: its own, or the last adopted successor's.
    current_key: Fingerprint,
}

/// A key found valid and signing-capable when its certificate was loaded.
#[derive(Clone)]
struct SigningKey {
    key: Key<key::PublicParts, key::UnspecifiedRole>,
    /// When the key (or its primary key) expires; signatures made at or
    /// after this time are refused.
    expires: Option<SystemTime>,
    /// When its certificate was revoked; signatures made at or after this
    /// time are refused.
    revoked: Option<SystemTime>,
    /// When a successor replaced it (the time of the key transition's
    /// signature by this key); signatures made after this are refused.
    retired: Option<SystemTime>,
    /// The primary fingerprint of the certificate the key belongs to (an
    /// adopted successor's, for its keys).
    cert: Fingerprint,
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

/// `tsk` unlocked with `passphrase` if its secret key material is
/// protected.
fn unlocked(tsk: Cert, path: &Path, passphrase: Option<&Passphrase>) -> Result<Cert, SignError> {
    if !secret::is_protected(&tsk) {
        return Ok(tsk);
    }
    let Some(passphrase) = passphrase else {
        return Err(SignError::Locked {
            path: path.to_owned(),
        });
    };
    secret::unlock(tsk, passphrase).map_err(|_| SignError::WrongPassphrase {
        path: path.to_owned(),
    })
}

/// A TSK armored, its secret key material protected by `passphrase` when
/// one is given.
fn armored_tsk(tsk: &Cert, passphrase: Option<&Passphrase>) -> Result<Vec<u8>, SignError> {
    let tsk = match passphrase {
        Some(passphrase) => secret::protect(tsk.clone(), passphrase)
            .map_err(|e| SignError::Serialize(format!("protecting the key: {e:#}")))?,
        None => tsk.clone(),
    };
    let armored = tsk.as_tsk().armored().to_vec();
    armored.map_err(|e| SignError::Serialize(format!("{e:#}")))
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

/// Writes a secret file (a restored key) as [`write_private_atomically`]
/// does.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_private_atomically(path, bytes)
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
