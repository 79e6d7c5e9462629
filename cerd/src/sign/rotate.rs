//! Key rotation: a node moves to a new key and keeps its identity (its
//! first key's fingerprint), and peers adopt the new key once they have
//! verified a transition signed by both.
//!
//! Here only the key material and signatures: the node's earlier keys
//! kept beside its key file (to decrypt what was encrypted to them), the
//! two-packet signature of a transition, and the trust store's adoption
//! of a successor key for an identity. What a transition document says
//! is checked in `verify`; this module knows no envelopes.

use super::*;

/// Where a node's earlier keys are kept, beside its key file
/// (`identity.key` → `identity.retired.key`), oldest first.
pub fn retired_path(path: &Path) -> PathBuf {
    path.with_extension("retired.key")
}

/// `identity` with the earlier keys kept beside `path`, if any: its
/// identity becomes the oldest key's, and their encryption subkeys decrypt.
pub(super) fn with_retired(
    mut identity: Identity,
    path: &Path,
    passphrase: Option<&Passphrase>,
) -> Result<Identity, SignError> {
    let retired = retired_path(path);
    let bytes = match fs::read(&retired) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(identity),
        Err(source) => {
            return Err(SignError::Read {
                path: retired,
                source,
            })
        }
    };
    let bad = |reason: String| SignError::BadKey {
        path: retired.clone(),
        reason,
    };
    let mut tsks = Vec::new();
    for tsk in CertParser::from_bytes(&bytes).map_err(|e| bad(format!("{e:#}")))? {
        let tsk = tsk.map_err(|e| bad(format!("{e:#}")))?;
        tsks.push(unlocked(tsk, &retired, passphrase)?);
    }
    let Some(first) = tsks.first() else {
        return Ok(identity);
    };
    identity.author = TrustedCert::from_cert(first.clone()).map_err(|e| bad(e.to_string()))?;
    for tsk in &tsks {
        let valid = tsk
            .with_policy(&POLICY, None)
            .map_err(|e| bad(format!("{e:#}")))?;
        for ka in valid
            .keys()
            .subkeys()
            .supported()
            .key_flags(encryption_flags())
            .secret()
        {
            let keypair = ka
                .key()
                .clone()
                .role_into_unspecified()
                .into_keypair()
                .map_err(|e| bad(format!("encryption subkey: {e:#}")))?;
            identity.decryptors.push(keypair);
        }
    }
    if let Some(last) = tsks.last() {
        let previous = last
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .and_then(|k| k.role_into_unspecified().into_keypair())
            .map_err(|e| bad(format!("primary key: {e:#}")))?;
        identity.previous = Some(previous);
    }
    identity.retired = tsks;
    Ok(identity)
}

/// The first (oldest) of the earlier keys kept beside `path`, if any.
pub(super) fn first_retired(path: &Path) -> Result<Option<Cert>, SignError> {
    let retired = retired_path(path);
    let bytes = match fs::read(&retired) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SignError::Read {
                path: retired,
                source,
            })
        }
    };
    let bad = |e: openpgp::anyhow::Error| SignError::BadKey {
        path: retired.clone(),
        reason: format!("{e:#}"),
    };
    let first = CertParser::from_bytes(&bytes).map_err(bad)?.next();
    match first {
        Some(first) => first.map(Some).map_err(bad),
        None => Ok(None),
    }
}

impl Identity {
    /// A new key for the same identity, generated now; this one's keys
    /// are kept to decrypt. Saved with [`Identity::save_with`], which
    /// writes the earlier keys beside the new one.
    pub fn successor(&self) -> Result<Identity, SignError> {
        Ok(self.succeeded_by(Identity::generate(self.name())?))
    }

    /// `next` (a key alone, as [`Identity::current_only`] saved it) as
    /// this identity's successor.
    pub fn succeeded_by(&self, mut next: Identity) -> Identity {
        next.author = self.author.clone();
        next.retired = self.retired.clone();
        next.retired.push(self.tsk.clone());
        next.decryptors.extend(self.decryptors.iter().cloned());
        next.previous = Some(self.signer.clone());
        next
    }

    /// A mesh authentication signature: the current key's, and after a
    /// rotation the previous key's too (see `mesh::transport`), so a
    /// peer that has not yet adopted the new key still lets the node in
    /// to deliver the transition.
    pub fn sign_auth(&self, data: &[u8]) -> Vec<u8> {
        let mut sig = self.sign_detached(data);
        if let Some(previous) = &self.previous {
            let mut signer = previous.clone();
            let older = SignatureBuilder::new(SignatureType::Binary)
                .set_hash_algo(HashAlgorithm::SHA512)
                .set_signature_creation_time(crate::audit::system_time())
                .and_then(|builder| builder.sign_message(&mut signer, data))
                .expect("signing with a validated ed25519 key cannot fail");
            Packet::from(older)
                .serialize(&mut sig)
                .expect("serializing a signature into memory cannot fail");
        }
        sig
    }

    /// This identity's current key alone, without the earlier ones: what
    /// is saved while a rotation is under way.
    pub fn current_only(&self) -> Identity {
        Identity {
            tsk: self.tsk.clone(),
            signer: self.signer.clone(),
            decryptors: self.decryptors.clone(),
            public: self.public.clone(),
            author: self.public.clone(),
            retired: Vec::new(),
            previous: None,
        }
    }

    /// A revocation certificate, dated now, of the node's first key (its
    /// identity's): after a rotation that key is a retired one, and
    /// revoking it leaves the current key signing.
    pub fn first_key_revocation(&self) -> Result<Vec<u8>, SignError> {
        let Some(first) = self.retired.first() else {
            return self.revocation_certificate();
        };
        let signer = first
            .primary_key()
            .key()
            .clone()
            .parts_into_secret()
            .and_then(|k| k.role_into_unspecified().into_keypair())
            .map_err(|e| SignError::Revocation(format!("{e:#}")))?;
        secret::revocation_certificate(first, &signer)
    }

    /// The detached signature of a key transition from this key to
    /// `next`'s: two signature packets over the same bytes, this key's
    /// first.
    pub fn sign_transition(&self, next: &Identity, data: &[u8]) -> Vec<u8> {
        let mut sig = self.sign_detached(data);
        sig.extend(next.sign_detached(data));
        sig
    }
}

/// The signature packets of a detached signature, each serialized on its
/// own (at most four).
pub fn split_signatures(bytes: &[u8]) -> Result<Vec<Vec<u8>>, VerifyError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(VerifyError::Unsigned);
    }
    let malformed = |e: openpgp::anyhow::Error| VerifyError::Malformed(format!("{e:#}"));
    let mut signatures = Vec::new();
    let mut next = PacketParser::from_bytes(bytes).map_err(malformed)?;
    while let PacketParserResult::Some(parser) = next {
        let (packet, rest) = parser.next().map_err(malformed)?;
        let Packet::Signature(sig) = packet else {
            return Err(VerifyError::Malformed(format!(
                "expected signature packets, found {}",
                packet.tag()
            )));
        };
        let mut one = Vec::new();
        Packet::from(sig)
            .serialize(&mut one)
            .map_err(|e| VerifyError::Malformed(format!("{e:#}")))?;
        signatures.push(one);
        if signatures.len() > 4 {
            return Err(VerifyError::Malformed(
                "more than four signature packets".into(),
            ));
        }
        next = rest;
    }
    if signatures.is_empty() {
        return Err(VerifyError::Unsigned);
    }
    Ok(signatures)
}

/// When a detached signature (of one packet) says it was made.
pub fn signature_time(sig: &[u8]) -> Option<SystemTime> {
    parse_one_signature(sig).ok()?.signature_creation_time()
}

impl TrustedCert {
    /// The primary fingerprint of the key that signs for this identity
    /// now: its own, or its last adopted successor's.
    pub fn current_key(&self) -> &Fingerprint {
        &self.inner.current_key
    }

    /// A detached signature (one packet) over `data` by this
    /// certificate's own keys, whether or not it is in a trust store.
    pub fn verify_own(&self, data: &[u8], sig: &[u8]) -> Result<(), VerifyError> {
        let mut alone = TrustStore::new();
        alone.insert(self.clone());
        alone.verify_detached(data, sig).map(|_| ())
    }
}

impl TrustStore {
    /// Adopts `successor` as the key that signs for `identity` from now
    /// on: its signing keys verify as `identity`, nobody encrypts to
    /// `identity` with another key than its encryption subkey, and every
    /// key that signed for `identity` until now is refused for signatures
    /// made after `retire_after`. `identity` keeps its fingerprint and
    /// name.
    pub fn adopt(
        &mut self,
        identity: &Fingerprint,
        successor: &TrustedCert,
        retire_after: SystemTime,
    ) -> Result<(), CertError> {
        let Some(current) = self.get(identity).cloned() else {
            return Err(CertError::NotTrusted {
                fingerprint: identity.clone(),
            });
        };
        let mut signing_keys: Vec<SigningKey> = current
            .inner
            .signing_keys
            .iter()
            .map(|key| SigningKey {
                retired: Some(key.retired.map_or(retire_after, |r| r.min(retire_after))),
                ..key.clone()
            })
            .collect();
        signing_keys.extend(successor.inner.signing_keys.iter().cloned());
        let merged = TrustedCert {
            inner: Arc::new(CertInner {
                fingerprint: current.inner.fingerprint.clone(),
                name: current.inner.name.clone(),
                armored: current.inner.armored.clone(),
                signing_keys,
                encryption_keys: successor.inner.encryption_keys.clone(),
                had_secret: current.inner.had_secret,
                expires: successor.inner.expires,
                revoked: successor.inner.revoked,
                current_key: successor.fingerprint().clone(),
            }),
        };
        self.insert(merged);
        Ok(())
    }
}
