//! Receiving: verifying what peers send before the store sees it, and
//! reading the bodies addressed to this node.

use cer_proto::envelope::{Body, Envelope, Kind};
use cer_proto::wire::Item;
use cer_proto::{EnvelopeId, Fingerprint};

use super::Node;
use crate::audit::AUDIT;
use crate::sign::TrustStore;
use crate::store::{Incoming, Inserted, NewEnvelope, StoreError};
use crate::verify::{self, Rejected};

/// Why a received envelope was not stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IngestError {
    /// A chain that does not follow is the peer's problem; anything else
    /// from the store is this node's.
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Chain(chain) => IngestError::Rejected(Rejected::Chain(chain)),
            other => IngestError::Store(other),
        }
    }
}

fn store_error(text: &str) -> StoreError {
    StoreError::Corrupt {
        what: "ingest".into(),
        reason: text.to_owned(),
    }
}

impl Node {
    /// Verifies received items (signatures on every core): each becomes
    /// its id and something the store can take, or the reason it is
    /// refused. Each envelope is parsed and hashed once, here. Blocking:
    /// call from a blocking thread.
    pub fn verify_items(&self, items: Vec<Item>) -> Vec<(EnvelopeId, Result<Incoming, Rejected>)> {
        let mut trust = self.trust_store();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // A key transition changes what verifies the author's next
        // envelopes, which may follow in the same batch: one at a time.
        let transition = items.iter().any(|item| match item {
            Item::Live { bytes, .. } => {
                contains(bytes, b"\"key_transition\"") || contains(bytes, b"\"key_revocation\"")
            }
            Item::Tombstone(_) => false,
        });
        if items.len() < 16 || threads < 2 || transition {
            let mut verified = Vec::with_capacity(items.len());
            for item in items {
                let (id, result) = self.verify_item(&trust, item);
                if let Ok(Incoming::Live(new)) = &result {
                    let changed = match new.envelope.kind {
                        Kind::KeyTransition => self.adopt_key(&new.bytes, &new.sig),
                        Kind::KeyRevocation => self.apply_revocation(&new.envelope),
                        _ => false,
                    };
                    if changed {
                        trust = self.trust_store();
                    }
                }
                verified.push((id, result));
            }
            return verified;
        }
        let chunk = items.len().div_ceil(threads);
        let mut parts: Vec<Vec<Item>> = Vec::new();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            parts.push(items.by_ref().take(chunk).collect());
        }
        let trust = &trust;
        std::thread::scope(|scope| {
            let workers: Vec<_> = parts
                .into_iter()
                .map(|part| {
                    scope.spawn(move || {
                        part.into_iter()
                            .map(|item| self.verify_item(trust, item))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| {
                    w.join().unwrap_or_else(|_| {
                        vec![(
                            EnvelopeId::of(b""),
                            Err(Rejected::Malformed("verification failed".into())),
                        )]
                    })
                })
                .collect()
        })
    }

    fn verify_item(
        &self,
        trust: &TrustStore,
        item: Item,
    ) -> (EnvelopeId, Result<Incoming, Rejected>) {
        match item {
            Item::Live { bytes, sig } => {
                let id = EnvelopeId::of(&bytes);
                let verified = verify::verify_signed(trust, &bytes, &sig).and_then(|envelope| {
                    let body = self.readable_body(&envelope)?;
                    Ok(Incoming::Live(Box::new(NewEnvelope {
                        id,
                        bytes,
                        sig,
                        envelope,
                        body,
                    })))
                });
                (id, verified)
            }
            Item::Tombstone(wire) => {
                let id = wire.id;
                let verified =
                    verify::verify_tombstone(trust, wire).map(|tomb| Incoming::Tombstone(id, tomb));
                (id, verified)
            }
        }
    }

    /// Adopts the new key of a verified key transition; true when the
    /// trust store changed.
    fn adopt_key(&self, bytes: &[u8], sig: &[u8]) -> bool {
        let Ok(envelope) = Envelope::parse(bytes) else {
            return false;
        };
        let Some(transition) = verify::transition_of(&envelope, sig) else {
            return false;
        };
        match self.trust.adopt(bytes, sig, &transition) {
            Ok(true) => {
                self.emit(super::NodeEvent::TrustChanged);
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::error!(target: AUDIT, event = "key_adoption_failed", author = %transition.author, key = %transition.successor.fingerprint(), error = %e, "cannot adopt a verified key transition");
                false
            }
        }
    }

    /// Applies a received revocation certificate if it revokes a trusted
    /// certificate not yet revoked (one for a CERT this node does not
    /// trust is stored and relayed, and changes nothing here); true when
    /// the trust store changed.
    fn apply_revocation(&self, envelope: &Envelope) -> bool {
        let Some(Ok(Body::KeyRevocation(body))) = envelope.plain_body() else {
            return false;
        };
        let applies = self.with_trust(|t| {
            t.check_revocation(body.revocation.as_bytes())
                .ok()
                .and_then(|fpr| t.get(&fpr).map(|c| c.revoked().is_none()))
        });
        if applies != Some(true) {
            return false;
        }
        match self.trust.add(&body.revocation) {
            Ok(info) => {
                tracing::warn!(target: AUDIT, event = "revocation_received", name = %info.name, fingerprint = %info.fingerprint, from = %envelope.author, "a revocation certificate arrived and was applied");
                self.emit(super::NodeEvent::TrustChanged);
                true
            }
            // Applied already (it came back through another peer).
            Err(crate::trust::TrustError::Conflict(_)) => false,
            Err(crate::trust::TrustError::Forbidden(_)) => {
                tracing::error!(target: AUDIT, event = "own_key_revoked", from = %envelope.author, "a revocation of this node's first key arrived: peers refuse what that key signs from the revocation's time on; a key rotated to before it goes on signing, otherwise this node is cut off and needs a new identity (cerd init --force) that peers trust anew");
                false
            }
            Err(e) => {
                tracing::error!(target: AUDIT, event = "revocation_failed", from = %envelope.author, error = %e, "cannot apply a received revocation certificate");
                false
            }
        }
    }

    /// Verifies and stores received items, waiting for them to be durable.
    /// Blocking: for tools and benchmarks, not runtime workers.
    pub fn ingest_blocking(
        &self,
        items: Vec<Item>,
        from: Option<Fingerprint>,
    ) -> Vec<Result<Inserted, IngestError>> {
        let verified = self.verify_items(items);
        let mut results: Vec<Option<Result<Inserted, IngestError>>> = Vec::new();
        let mut good = Vec::new();
        for (_, v) in verified {
            match v {
                Ok(incoming) => {
                    good.push(incoming);
                    results.push(None);
                }
                Err(rejected) => results.push(Some(Err(rejected.into()))),
            }
        }
        let mut stored = match self.store.ingest_blocking(good, from) {
            Ok(stored) => stored.into_iter(),
            Err(e) => {
                let text = e.to_string();
                return results
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|| Err(IngestError::Store(store_error(&text)))))
                    .collect();
            }
        };
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| match stored.next() {
                    Some(result) => result.map_err(IngestError::from_store),
                    None => Err(IngestError::Store(store_error("missing result"))),
                })
            })
            .collect()
    }

    /// The body as this node can read it: plaintext, or decrypted when
    /// addressed to this node.
    fn readable_body(&self, envelope: &Envelope) -> Result<Option<Body>, Rejected> {
        Ok(match (&envelope.body, &envelope.body_enc) {
            (Some(_), _) => match envelope.plain_body() {
                Some(Ok(body)) => Some(body),
                Some(Err(e)) => return Err(Rejected::Malformed(format!("body: {e}"))),
                None => None,
            },
            (None, Some(armored))
                if envelope.recipients.contains(self.fingerprint())
                    || envelope.author == *self.fingerprint() =>
            {
                match self.identity.decrypt_armored(armored) {
                    Ok(plain) => Body::from_slice(envelope.kind, &plain).ok(),
                    Err(e) => {
                        tracing::warn!(target: AUDIT, event = "decrypt_failed", author = %envelope.author, seq = envelope.seq, error = %e, "cannot decrypt an envelope addressed to this node");
                        None
                    }
                }
            }
            _ => None,
        })
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
