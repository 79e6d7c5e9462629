//! Certificates and the trust store: parsing and checking a certificate
//! against the policy once, loading `certs/`, and the fast path that
//! verifies a detached signature with a hash-map lookup.

use super::*;
use openpgp::packet::signature::subpacket::CLOCK_SKEW_TOLERANCE;

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

    pub(super) fn from_cert(cert: Cert) -> Result<TrustedCert, CertError> {
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
                retired: None,
                cert: fingerprint.clone(),
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
        let current_key = fingerprint.clone();
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
                current_key,
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
        self.verify_detached_key(data, sig)
            .map(|(identity, _)| identity)
    }

    /// [`TrustStore::verify_detached`], and which key signed: the primary
    /// fingerprint of that key's own certificate (after a key transition,
    /// the successor's, not the identity's).
    pub fn verify_detached_key(
        &self,
        data: &[u8],
        sig: &[u8],
    ) -> Result<(Fingerprint, Fingerprint), VerifyError> {
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
                    humantime::format_duration(std::time::Duration::from_secs(ahead.as_secs())),
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
        if let Some(retired) = signing_key.retired {
            if created > retired {
                return Err(VerifyError::Retired {
                    signer: signer.clone(),
                    key: signing_key.cert.clone(),
                    retired: rfc3339(retired),
                    signed: rfc3339(created),
                });
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
            Ok(()) => Ok((signer.clone(), signing_key.cert.clone())),
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
