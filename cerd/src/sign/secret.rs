//! What only the holder of the secret key does with it at rest: protect
//! it with a passphrase (OpenPGP's own S2K encryption of the secret key
//! material, which GnuPG reads too) and make its revocation certificate.

use super::*;
use openpgp::crypto::Password;
use openpgp::types::ReasonForRevocation;

/// A passphrase, held as sequoia holds one: encrypted in memory and
/// zeroed when dropped. Never printed.
#[derive(Clone)]
pub struct Passphrase(Password);

impl Passphrase {
    pub fn new(bytes: &[u8]) -> Passphrase {
        Passphrase(Password::from(bytes))
    }
}

impl fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Passphrase(..)")
    }
}

/// Whether any secret key material in `tsk` is encrypted.
pub(super) fn is_protected(tsk: &Cert) -> bool {
    tsk.keys()
        .secret()
        .any(|ka| ka.key().secret().is_encrypted())
}

/// `tsk` with every secret key encrypted with `passphrase`.
pub(super) fn protect(tsk: Cert, passphrase: &Passphrase) -> openpgp::Result<Cert> {
    let mut packets: Vec<Packet> = Vec::new();
    for ka in tsk.keys().secret() {
        let key = ka.key().clone();
        if key.secret().is_encrypted() {
            continue;
        }
        let key = key.encrypt_secret(&passphrase.0)?;
        packets.push(if ka.primary() {
            key.role_into_primary().into()
        } else {
            key.role_into_subordinate().into()
        });
    }
    Ok(tsk.insert_packets(packets)?.0)
}

/// `tsk` with every secret key decrypted; an error when `passphrase` does
/// not decrypt one of them.
pub(super) fn unlock(tsk: Cert, passphrase: &Passphrase) -> openpgp::Result<Cert> {
    let mut packets: Vec<Packet> = Vec::new();
    for ka in tsk.keys().secret() {
        let key = ka.key().clone();
        if !key.secret().is_encrypted() {
            continue;
        }
        let key = key.decrypt_secret(&passphrase.0)?;
        packets.push(if ka.primary() {
            key.role_into_primary().into()
        } else {
            key.role_into_subordinate().into()
        });
    }
    Ok(tsk.insert_packets(packets)?.0)
}

/// A revocation signature over `tsk`'s primary key, dated now, armored as
/// GnuPG armors one (a public key block holding only the signature, with
/// a comment saying what it is).
pub(super) fn revocation_certificate(tsk: &Cert, signer: &KeyPair) -> Result<Vec<u8>, SignError> {
    let fail = |e: openpgp::anyhow::Error| SignError::Revocation(format!("{e:#}"));
    let mut signer = signer.clone();
    let sig = CertRevocationBuilder::new()
        .set_reason_for_revocation(
            ReasonForRevocation::Unspecified,
            b"revoked by its owner with the revocation certificate made at cerd init",
        )
        .map_err(fail)?
        .build(&mut signer, tsk, None)
        .map_err(fail)?;
    let mut binary = Vec::new();
    Packet::from(sig)
        .serialize(&mut binary)
        .map_err(|e| SignError::Revocation(format!("{e:#}")))?;
    let fingerprint = tsk.fingerprint().to_hex();
    let comment = format!("Revocation certificate for {fingerprint}");
    let mut writer = armor::Writer::with_headers(
        Vec::new(),
        armor::Kind::PublicKey,
        [("Comment", comment.as_str())],
    )
    .map_err(|e| SignError::Revocation(e.to_string()))?;
    writer
        .write_all(&binary)
        .map_err(|e| SignError::Revocation(e.to_string()))?;
    writer
        .finalize()
        .map_err(|e| SignError::Revocation(e.to_string()))
}
