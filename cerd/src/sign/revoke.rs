//! Revocation certificates in the trust store: a file (or an API upload)
//! holding only a key revocation signature is applied to the certificate
//! it revokes, once the signature verifies against that certificate's own
//! primary key. The certificate stays in the store, so what its key
//! signed before the revocation still verifies; every signature made from
//! the revocation's time on is refused ([`VerifyError::Revoked`]).

use super::*;

/// A key revocation signature, not yet checked against any certificate.
pub(super) struct Revocation {
    sig: Signature,
}

/// Whether `bytes` (armored or binary) are a revocation certificate: one
/// signature packet of type key revocation, and nothing else.
pub fn is_revocation(bytes: &[u8]) -> bool {
    parse_revocation(bytes).is_some()
}

pub(super) fn parse_revocation(bytes: &[u8]) -> Option<Revocation> {
    let PacketParserResult::Some(parser) = PacketParser::from_bytes(bytes).ok()? else {
        return None;
    };
    let (packet, rest) = parser.next().ok()?;
    if let PacketParserResult::Some(_) = rest {
        return None;
    }
    match packet {
        Packet::Signature(sig) if sig.typ() == SignatureType::KeyRevocation => {
            Some(Revocation { sig })
        }
        _ => None,
    }
}

impl TrustStore {
    /// Checks a revocation certificate against the store without applying
    /// it: the fingerprint of the certificate it revokes.
    pub fn check_revocation(&self, bytes: &[u8]) -> Result<Fingerprint, CertError> {
        let revocation = parse_revocation(bytes)
            .ok_or_else(|| CertError::Parse("not a revocation certificate".into()))?;
        let mut store = self.clone();
        store.apply_revocation(revocation)
    }

    /// Applies `revocation` to the certificate whose primary key made it.
    pub(super) fn apply_revocation(
        &mut self,
        revocation: Revocation,
    ) -> Result<Fingerprint, CertError> {
        let issuers = revocation.sig.get_issuers();
        let target = self.certs.values().find(|cert| {
            issuers.iter().any(|handle| match handle {
                KeyHandle::Fingerprint(fpr) => fpr.to_hex() == cert.fingerprint().as_str(),
                KeyHandle::KeyID(id) => id.to_hex() == cert.fingerprint().short(),
            })
        });
        let Some(target) = target.cloned() else {
            let issuer = issuers
                .first()
                .map(|handle| handle.to_hex())
                .unwrap_or_else(|| "(no issuer)".to_owned());
            return Err(CertError::RevocationForUnknown { issuer });
        };
        let fingerprint = target.fingerprint().clone();
        let bad = |reason: String| CertError::BadRevocation {
            fingerprint: fingerprint.clone(),
            reason,
        };
        let cert = Cert::from_bytes(&target.inner.armored).map_err(|e| bad(format!("{e:#}")))?;
        let primary = cert.primary_key().key();
        revocation
            .sig
            .verify_primary_key_revocation(primary, primary)
            .map_err(|e| bad(format!("{e:#}")))?;
        let (merged, _) = cert
            .insert_packets(Some(Packet::from(revocation.sig)))
            .map_err(|e| bad(format!("{e:#}")))?;
        let mut revoked = TrustedCert::from_cert(merged)?;
        if revoked.revoked().is_none() {
            return Err(bad(
                "the revocation is not in force (dated in the future?)".into()
            ));
        }
        if let Some(inner) = Arc::get_mut(&mut revoked.inner) {
            inner.had_secret = target.had_secret();
        }
        self.insert(revoked);
        Ok(fingerprint)
    }
}
