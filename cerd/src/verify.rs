//! The checks every envelope passes before the store sees it.
//!
//! Order matters for cost: size first (free), then the JSON shape (cheap),
//! then the signature (the expensive part), then the author field and the
//! chain. Each refusal is a distinct [`Rejected`] variant so peers'
//! counters and the audit trail can say exactly what was wrong.

use cer_proto::envelope::Kind;
use cer_proto::envelope::{
    ChainError, ChainTip, Envelope, EnvelopeError, MAX_ENVELOPE_BYTES, MAX_SIGNATURE_BYTES,
};
use cer_proto::wire::WireTombstone;
use cer_proto::Fingerprint;

use cer_proto::envelope::Body;

use crate::sign::{self, TrustStore, TrustedCert};
use crate::store::Tombstone;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("envelope is {size} bytes, more than the maximum of {MAX_ENVELOPE_BYTES}")]
    TooLarge { size: usize },
    #[error("signature is {size} bytes, more than the maximum of {MAX_SIGNATURE_BYTES}")]
    SignatureTooLarge { size: usize },
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("signature is not a detached OpenPGP signature: {0}")]
    MalformedSignature(String),
    #[error("signed by an unknown key {issuer}: no certificate in the trust store has it")]
    UnknownSigner { issuer: String },
    #[error("bad signature by {signer}")]
    BadSignature { signer: Fingerprint },
    #[error("signature refused by policy: {0}")]
    Policy(String),
    #[error("{0}")]
    Revoked(String),
    #[error("{0}")]
    Retired(String),
    #[error("key transition not signed by the author's current key: {0}")]
    TransitionWithoutOldKey(String),
    #[error("key transition not signed by the new key: {0}")]
    TransitionWithoutNewKey(String),
    #[error("author field {author} does not match the signer {signer}")]
    AuthorMismatch {
        author: Fingerprint,
        signer: Fingerprint,
    },
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("tombstone for seq {seq} is not proven by its author's retraction: {reason}")]
    UnprovenTombstone { seq: u64, reason: String },
}

impl Rejected {
    /// A short, stable name for counters and logs.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Rejected::TooLarge { .. } | Rejected::SignatureTooLarge { .. } => "oversized",
            Rejected::Malformed(_) | Rejected::MalformedSignature(_) => "malformed",
            Rejected::UnknownSigner { .. } => "unknown_signer",
            Rejected::BadSignature { .. } => "bad_signature",
            Rejected::Policy(_) => "policy",
            Rejected::Revoked(_) => "revoked",
            Rejected::Retired(_) => "retired_key",
            Rejected::TransitionWithoutOldKey(_) => "transition_without_old_key",
            Rejected::TransitionWithoutNewKey(_) => "transition_without_new_key",
            Rejected::AuthorMismatch { .. } => "author_mismatch",
            Rejected::Chain(_) => "chain",
            Rejected::UnprovenTombstone { .. } => "unproven_tombstone",
        }
    }
}

/// Checks an envelope document and its detached signature against the
/// trust store, without the chain. Returns the parsed envelope.
pub fn verify_signed(trust: &TrustStore, bytes: &[u8], sig: &[u8]) -> Result<Envelope, Rejected> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(Rejected::TooLarge { size: bytes.len() });
    }
    if sig.len() > MAX_SIGNATURE_BYTES {
        return Err(Rejected::SignatureTooLarge { size: sig.len() });
    }
    let envelope = Envelope::parse(bytes).map_err(|e| match e {
        EnvelopeError::TooLarge { size, .. } => Rejected::TooLarge { size },
        other => Rejected::Malformed(other.to_string()),
    })?;
    if envelope.kind == Kind::KeyTransition {
        verify_transition(trust, &envelope, bytes, sig)?;
        return Ok(envelope);
    }
    let signer = trust.verify_detached(bytes, sig).map_err(rejected)?;
    if signer != envelope.author {
        return Err(Rejected::AuthorMismatch {
            author: envelope.author,
            signer,
        });
    }
    Ok(envelope)
}

/// What a verified key transition establishes: from now on `successor`
/// signs for `author`, and the keys that signed until now are refused
/// for signatures made after `retire_after`.
pub struct Transition {
    pub author: Fingerprint,
    pub successor: TrustedCert,
    pub retire_after: std::time::SystemTime,
}

/// The transition a verified key-transition envelope establishes (see
/// [`verify_signed`], which must have accepted it).
pub fn transition_of(envelope: &Envelope, sig: &[u8]) -> Option<Transition> {
    let Some(Ok(Body::KeyTransition(body))) = envelope.plain_body() else {
        return None;
    };
    let signatures = sign::split_signatures(sig).ok()?;
    Some(Transition {
        author: envelope.author.clone(),
        successor: TrustedCert::parse(body.cert.as_bytes()).ok()?,
        retire_after: sign::signature_time(signatures.first()?)?,
    })
}

/// A key transition's signature is two packets over the envelope bytes:
/// the first by the key that signs for the author now (`old`), the second
/// by the new key (`new`, the primary key of the certificate it carries).
/// Either missing is its own refusal.
fn verify_transition(
    trust: &TrustStore,
    envelope: &Envelope,
    bytes: &[u8],
    sig: &[u8],
) -> Result<(), Rejected> {
    let body = match envelope.plain_body() {
        Some(Ok(Body::KeyTransition(body))) => body,
        Some(Err(e)) => return Err(Rejected::Malformed(format!("body: {e}"))),
        _ => {
            return Err(Rejected::Malformed(
                "a key transition must have a plaintext body".into(),
            ))
        }
    };
    let successor = TrustedCert::parse(body.cert.as_bytes())
        .map_err(|e| Rejected::Malformed(format!("body: cert: {e}")))?;
    if *successor.fingerprint() != body.new {
        return Err(Rejected::Malformed(format!(
            "body: cert is {}, not the new key {}",
            successor.fingerprint(),
            body.new
        )));
    }
    let signatures = sign::split_signatures(sig).map_err(rejected)?;
    let by_old = signatures
        .iter()
        .find_map(|one| trust.verify_detached_key(bytes, one).ok());
    let by_new = signatures
        .iter()
        .any(|one| successor.verify_own(bytes, one).is_ok());
    let Some((signer, key)) = by_old else {
        // Say why the author's key is missing, from the first signature.
        let why = match trust.verify_detached_key(bytes, &signatures[0]) {
            Err(e) => e.to_string(),
            Ok(_) => "no signature by it".into(),
        };
        return Err(Rejected::TransitionWithoutOldKey(why));
    };
    if signer != envelope.author {
        return Err(Rejected::AuthorMismatch {
            author: envelope.author.clone(),
            signer,
        });
    }
    if key != body.old {
        return Err(Rejected::TransitionWithoutOldKey(format!(
            "signed by {key}, but the body names {} as the old key",
            body.old
        )));
    }
    if !by_new || signatures.len() != 2 {
        return Err(Rejected::TransitionWithoutNewKey(format!(
            "{} signature packet(s), none by {}",
            signatures.len(),
            body.new
        )));
    }
    Ok(())
}

fn rejected(e: sign::VerifyError) -> Rejected {
    match e {
        sign::VerifyError::UnknownSigner { issuer } => Rejected::UnknownSigner { issuer },
        sign::VerifyError::BadSignature { signer } => Rejected::BadSignature { signer },
        sign::VerifyError::RejectedByPolicy(reason) => Rejected::Policy(reason),
        revoked @ sign::VerifyError::Revoked { .. } => Rejected::Revoked(revoked.to_string()),
        retired @ sign::VerifyError::Retired { .. } => Rejected::Retired(retired.to_string()),
        other => Rejected::MalformedSignature(other.to_string()),
    }
}

/// Checks a tombstone received from a peer: its proof must be a retraction
/// signed by the tombstone's author (verified like any envelope) whose
/// `withdraws` list names exactly this seq and id. What the store keeps
/// about the withdrawn envelope is taken from that signed list and
/// header, never from the peer.
pub fn verify_tombstone(trust: &TrustStore, wire: WireTombstone) -> Result<Tombstone, Rejected> {
    let unproven = |reason: String| Rejected::UnprovenTombstone {
        seq: wire.seq,
        reason,
    };
    // The tombstone's author is trusted (the sync layer drops untrusted
    // authors), so a proof its key does not verify is a forgery, whoever
    // signed it.
    let retraction = verify_signed(trust, &wire.proof, &wire.proof_sig)
        .map_err(|e| unproven(format!("proof: {e}")))?;
    if retraction.author != wire.author {
        return Err(unproven(format!(
            "the proof is by {}, the tombstone claims {}",
            retraction.author, wire.author
        )));
    }
    if retraction.kind != Kind::Retraction {
        return Err(unproven(format!(
            "the proof is a {}, not a retraction",
            retraction.kind
        )));
    }
    let withdrawal = *retraction
        .withdrawal(wire.seq)
        .ok_or_else(|| unproven("the retraction does not withdraw this seq".into()))?;
    if withdrawal.id != wire.id {
        return Err(unproven(format!(
            "the retraction withdraws {} at this seq, not {}",
            withdrawal.id, wire.id
        )));
    }
    Ok(Tombstone::proven(
        &retraction,
        &withdrawal,
        wire.proof,
        wire.proof_sig,
    ))
}

/// The full check: signature, author and that the envelope extends the
/// author's chain whose last held envelope is `tip`.
pub fn verify_envelope(
    trust: &TrustStore,
    bytes: &[u8],
    sig: &[u8],
    tip: Option<&ChainTip>,
) -> Result<Envelope, Rejected> {
    let envelope = verify_signed(trust, bytes, sig)?;
    envelope.check_follows(tip)?;
    Ok(envelope)
}

#[cfg(test)]
mod tests {
    use cer_proto::envelope::{Body, Draft, DraftBody, IncidentBody};
    use cer_proto::model::{Classification, Severity, Status, Tlp};
    use cer_proto::EnvelopeId;
    use uuid::Uuid;

    use super::*;
    use crate::sign::Identity;

    fn draft(author: &Identity, seq: u64, prev: Option<EnvelopeId>) -> Vec<u8> {
        Draft {
            author: author.fingerprint().clone(),
            seq,
            prev,
            created: "2026-11-28T13:00:00Z".parse().unwrap(),
            subject: Uuid::new_v4(),
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(Body::Incident(IncidentBody {
                title: format!("incident {seq}"),
                description: String::new(),
                severity: Severity::High,
                classification: Classification::parse("fraud/phishing").unwrap(),
                status: Status::New,
                indicators: vec![],
                affected: Default::default(),
                occurred: None,
                detected: None,
                tags: vec![],
                source: None,
            })),
            withdraws: vec![],
        }
        .to_bytes()
        .unwrap()
    }

    struct World {
        alice: Identity,
        mallory: Identity,
        trust: TrustStore,
    }

    fn world() -> World {
        let alice = Identity::generate("ALICE-CERT").unwrap();
        let mallory = Identity::generate("MALLORY").unwrap();
        let mut trust = TrustStore::new();
        trust.insert(alice.public_cert());
        World {
            alice,
            mallory,
            trust,
        }
    }

    #[test]
    fn accepts_a_good_chain() {
        let w = world();
        let first = draft(&w.alice, 1, None);
        let sig = w.alice.sign_detached(&first);
        let envelope = verify_envelope(&w.trust, &first, &sig, None).unwrap();
        assert_eq!(envelope.seq, 1);
        let tip = ChainTip {
            seq: 1,
            id: EnvelopeId::of(&first),
        };
        let second = draft(&w.alice, 2, Some(tip.id));
        let sig = w.alice.sign_detached(&second);
        verify_envelope(&w.trust, &second, &sig, Some(&tip)).unwrap();
    }

    #[test]
    fn each_refusal_is_distinct() {
        let w = world();
        let bytes = draft(&w.alice, 1, None);
        let sig = w.alice.sign_detached(&bytes);

        let mut tampered = bytes.clone();
        let at = tampered.len() - 10;
        tampered[at] = tampered[at].wrapping_add(1);
        let bad = verify_envelope(&w.trust, &tampered, &sig, None).unwrap_err();
        // A flipped byte inside a string stays valid JSON: the signature catches it.
        assert!(
            matches!(bad, Rejected::BadSignature { .. } | Rejected::Malformed(_)),
            "{bad}"
        );
        let mut retitled = String::from_utf8(bytes.clone()).unwrap();
        retitled = retitled.replace("incident 1", "incident 9");
        let bad = verify_envelope(&w.trust, retitled.as_bytes(), &sig, None).unwrap_err();
        assert_eq!(bad.reason_code(), "bad_signature", "{bad}");

        let stranger = draft(&w.mallory, 1, None);
        let bad = verify_envelope(
            &w.trust,
            &stranger,
            &w.mallory.sign_detached(&stranger),
            None,
        )
        .unwrap_err();
        assert_eq!(bad.reason_code(), "unknown_signer", "{bad}");

        // Alice signs a document that claims Mallory wrote it.
        let mut trust = w.trust.clone();
        trust.insert(w.mallory.public_cert());
        let forged = draft(&w.mallory, 1, None);
        let bad =
            verify_envelope(&trust, &forged, &w.alice.sign_detached(&forged), None).unwrap_err();
        assert!(matches!(bad, Rejected::AuthorMismatch { .. }), "{bad}");

        let bad = verify_envelope(
            &w.trust,
            &bytes,
            &sig,
            Some(&ChainTip {
                seq: 1,
                id: EnvelopeId::of(b"x"),
            }),
        )
        .unwrap_err();
        assert!(
            matches!(bad, Rejected::Chain(ChainError::SeqMismatch { .. })),
            "{bad}"
        );
        let second = draft(&w.alice, 2, Some(EnvelopeId::of(b"not the first")));
        let tip = ChainTip {
            seq: 1,
            id: EnvelopeId::of(&bytes),
        };
        let bad = verify_envelope(
            &w.trust,
            &second,
            &w.alice.sign_detached(&second),
            Some(&tip),
        )
        .unwrap_err();
        assert!(
            matches!(bad, Rejected::Chain(ChainError::PrevMismatch { .. })),
            "{bad}"
        );

        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        let bad = verify_envelope(&w.trust, &huge, &sig, None).unwrap_err();
        assert!(matches!(bad, Rejected::TooLarge { .. }), "{bad}");

        let junk = b"{\"v\":1,";
        let bad = verify_envelope(&w.trust, junk, &w.alice.sign_detached(junk), None).unwrap_err();
        assert!(matches!(bad, Rejected::Malformed(_)), "{bad}");

        let bad = verify_envelope(&w.trust, &bytes, b"not a signature", None).unwrap_err();
        assert!(matches!(bad, Rejected::MalformedSignature(_)), "{bad}");
        let bad = verify_envelope(&w.trust, &bytes, &vec![0u8; MAX_SIGNATURE_BYTES + 1], None)
            .unwrap_err();
        assert!(matches!(bad, Rejected::SignatureTooLarge { .. }), "{bad}");
    }

    fn retraction(
        author: &Identity,
        seq: u64,
        prev: EnvelopeId,
        withdraws: Vec<cer_proto::envelope::Withdrawal>,
    ) -> (Vec<u8>, Vec<u8>) {
        let bytes = Draft {
            author: author.fingerprint().clone(),
            seq,
            prev: Some(prev),
            created: "2026-11-28T14:00:00Z".parse().unwrap(),
            subject: Uuid::nil(),
            tlp: Tlp::Green,
            recipients: vec![],
            body: DraftBody::Plain(Body::Retraction(cer_proto::envelope::RetractionBody {
                target: None,
                reason: None,
            })),
            withdraws,
        }
        .to_bytes()
        .unwrap();
        let sig = author.sign_detached(&bytes);
        (bytes, sig)
    }

    #[test]
    fn tombstones_need_the_authors_retraction_naming_them() {
        use cer_proto::envelope::{Kind, Withdrawal};
        use cer_proto::wire::WireTombstone;

        let w = world();
        let mut trust = w.trust.clone();
        trust.insert(w.mallory.public_cert());
        let first = draft(&w.alice, 1, None);
        let id = EnvelopeId::of(&first);
        let withdrawal = Withdrawal {
            seq: 1,
            id,
            kind: Kind::Incident,
            created: "2026-11-28T13:00:00Z".parse().unwrap(),
        };
        let (proof, proof_sig) = retraction(&w.alice, 2, id, vec![withdrawal]);
        let wire = WireTombstone {
            author: w.alice.fingerprint().clone(),
            seq: 1,
            id,
            proof: proof.clone(),
            proof_sig: proof_sig.clone(),
        };
        let tomb = verify_tombstone(&trust, wire.clone()).unwrap();
        assert_eq!(
            (tomb.header.seq, tomb.header.kind, tomb.withdrawn_by),
            (1, Kind::Incident, EnvelopeId::of(&proof))
        );

        let refused = |wire: WireTombstone| verify_tombstone(&trust, wire).unwrap_err();
        // Another id at that seq: the retraction does not say so.
        let bad = refused(WireTombstone {
            id: EnvelopeId::of(b"forged"),
            ..wire.clone()
        });
        assert_eq!(bad.reason_code(), "unproven_tombstone", "{bad}");
        // Another seq of the same author.
        let bad = refused(WireTombstone {
            seq: 3,
            ..wire.clone()
        });
        assert_eq!(bad.reason_code(), "unproven_tombstone", "{bad}");
        // A tampered proof.
        let mut tampered = String::from_utf8(proof.clone()).unwrap();
        tampered = tampered.replace("14:00:00", "15:00:00");
        let bad = refused(WireTombstone {
            proof: tampered.into_bytes(),
            ..wire.clone()
        });
        assert_eq!(bad.reason_code(), "unproven_tombstone", "{bad}");
        // Mallory, trusted, signs a retraction of Alice's envelope.
        let (forged, forged_sig) = retraction(&w.mallory, 2, id, vec![withdrawal]);
        let bad = refused(WireTombstone {
            proof: forged,
            proof_sig: forged_sig,
            ..wire.clone()
        });
        assert_eq!(bad.reason_code(), "unproven_tombstone", "{bad}");
        // An envelope that is not a retraction proves nothing.
        let sig = w.alice.sign_detached(&first);
        let bad = refused(WireTombstone {
            proof: first,
            proof_sig: sig,
            ..wire
        });
        assert_eq!(bad.reason_code(), "unproven_tombstone", "{bad}");
    }

    fn transition(author: &Identity, old: &Identity, new: &Identity) -> Vec<u8> {
        use cer_proto::envelope::KeyTransitionBody;
        Draft {
            author: author.fingerprint().clone(),
            seq: 2,
            prev: Some(EnvelopeId::of(b"first")),
            created: "2026-11-28T13:00:00Z".parse().unwrap(),
            subject: Uuid::nil(),
            tlp: Tlp::Clear,
            recipients: vec![],
            body: DraftBody::Plain(Body::KeyTransition(KeyTransitionBody {
                old: old.key_fingerprint().clone(),
                new: new.key_fingerprint().clone(),
                cert: String::from_utf8(new.current_cert().armored()).unwrap(),
            })),
            withdraws: vec![],
        }
        .to_bytes()
        .unwrap()
    }

    #[test]
    fn a_key_transition_needs_the_old_key_and_the_new() {
        let w = world();
        let next = w.alice.successor().unwrap();
        assert_eq!(next.fingerprint(), w.alice.fingerprint());
        assert_ne!(next.key_fingerprint(), w.alice.key_fingerprint());
        let bytes = transition(&w.alice, &w.alice, &next);

        // Both: accepted, and it names the successor.
        let sig = w.alice.sign_transition(&next, &bytes);
        let envelope = verify_signed(&w.trust, &bytes, &sig).unwrap();
        let adopted = transition_of(&envelope, &sig).unwrap();
        assert_eq!(adopted.author, *w.alice.fingerprint());
        assert_eq!(adopted.successor.fingerprint(), next.key_fingerprint());

        // The new key alone, the old key alone, or a stranger's key as
        // the second signature: each refused with its own reason.
        let only_new = next.sign_detached(&bytes);
        let bad = verify_signed(&w.trust, &bytes, &only_new).unwrap_err();
        assert_eq!(bad.reason_code(), "transition_without_old_key", "{bad}");
        let only_old = w.alice.sign_detached(&bytes);
        let bad = verify_signed(&w.trust, &bytes, &only_old).unwrap_err();
        assert_eq!(bad.reason_code(), "transition_without_new_key", "{bad}");
        let mut with_stranger = w.alice.sign_detached(&bytes);
        with_stranger.extend(w.mallory.sign_detached(&bytes));
        let bad = verify_signed(&w.trust, &bytes, &with_stranger).unwrap_err();
        assert_eq!(bad.reason_code(), "transition_without_new_key", "{bad}");
        // Signed by both, but by someone else's old key: not the author's.
        let mut trust = w.trust.clone();
        trust.insert(w.mallory.public_cert());
        let forged = transition(&w.alice, &w.mallory, &next);
        let sig = w.mallory.sign_transition(&next, &forged);
        let bad = verify_signed(&trust, &forged, &sig).unwrap_err();
        assert!(matches!(bad, Rejected::AuthorMismatch { .. }), "{bad}");
        // An ordinary envelope with two signatures is malformed.
        let first = draft(&w.alice, 1, None);
        let bad =
            verify_signed(&w.trust, &first, &w.alice.sign_transition(&next, &first)).unwrap_err();
        assert_eq!(bad.reason_code(), "malformed", "{bad}");
    }

    #[test]
    fn after_adoption_the_new_key_signs_for_the_author_and_the_old_is_retired() {
        let w = world();
        let next = w.alice.successor().unwrap();
        let first = draft(&w.alice, 1, None);
        let by_new = next.sign_detached(&first);
        let bad = verify_signed(&w.trust, &first, &by_new).unwrap_err();
        assert_eq!(bad.reason_code(), "unknown_signer", "{bad}");

        let mut trust = w.trust.clone();
        let a_minute_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        trust
            .adopt(w.alice.fingerprint(), &next.current_cert(), a_minute_ago)
            .unwrap();
        let envelope = verify_signed(&trust, &first, &by_new).unwrap();
        assert_eq!(envelope.author, *w.alice.fingerprint());
        assert_eq!(
            trust.get(w.alice.fingerprint()).unwrap().current_key(),
            next.key_fingerprint()
        );
        // The old key, signing after it was replaced.
        let bad = verify_signed(&trust, &first, &w.alice.sign_detached(&first)).unwrap_err();
        assert_eq!(bad.reason_code(), "retired_key", "{bad}");
        // Mallory's key does not become Alice's.
        let bad = verify_signed(&trust, &first, &w.mallory.sign_detached(&first)).unwrap_err();
        assert_eq!(bad.reason_code(), "unknown_signer", "{bad}");
        // The successor decrypts what was encrypted to the old key, too.
        let message = TrustStore::encrypt(b"old", &[&w.alice.public_cert()]).unwrap();
        assert_eq!(next.decrypt(&message).unwrap(), b"old");
    }
}
