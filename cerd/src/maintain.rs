//! Offline store maintenance for `cerd check --store` and `cerd repair`:
//! the store's own checker and rebuild, given this node's trust store to
//! verify signatures and tombstone proofs with. Both need the node stopped
//! (sled holds a lock on the folder while cerd runs).

use std::path::PathBuf;

use cer_proto::envelope::{Body, Envelope};
use cer_proto::wire::WireTombstone;
use cer_proto::EnvelopeId;

use crate::config::Config;
use crate::daemon::STORE_DIR;
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
