//! The checks every envelope passes before the store sees it.
//!
//! Order matters for cost: size first (free), then the JSON shape (cheap),
//! then the signature (the expensive part), then the author field and the
//! chain. Each refusal is a distinct [`Rejected`] variant so peers'
//! counters and the audit trail can say exactly what was wrong.

use cer_proto::envelope::{
    ChainError, ChainTip, Envelope, EnvelopeError, MAX_ENVELOPE_BYTES, MAX_SIGNATURE_BYTES,
};
use cer_proto::Fingerprint;

use crate::sign::{self, TrustStore};

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
    #[error("author field {author} does not match the signer {signer}")]
    AuthorMismatch {
        author: Fingerprint,
        signer: Fingerprint,
    },
    #[error(transparent)]
    Chain(#[from] ChainError),
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
            Rejected::AuthorMismatch { .. } => "author_mismatch",
            Rejected::Chain(_) => "chain",
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
    let signer = trust.verify_detached(bytes, sig).map_err(|e| match e {
        sign::VerifyError::UnknownSigner { issuer } => Rejected::UnknownSigner { issuer },
        sign::VerifyError::BadSignature { signer } => Rejected::BadSignature { signer },
        sign::VerifyError::RejectedByPolicy(reason) => Rejected::Policy(reason),
        other => Rejected::MalformedSignature(other.to_string()),
    })?;
    if signer != envelope.author {
        return Err(Rejected::AuthorMismatch {
            author: envelope.author,
            signer,
        });
    }
    Ok(envelope)
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
