//! Mesh wire frames (ALPN `cer/1`): what two nodes say to each other.
//!
//! A connection carries one bidirectional stream of length-prefixed
//! frames: `u32` big-endian length, then the frame. A frame starts with a
//! version byte and a type byte; every field has a fixed width or a length
//! prefix, so decoding is bounded and never allocates more than the frame's
//! own size. Frames larger than [`MAX_FRAME_BYTES`] are refused before they
//! are read.
//!
//! Envelope bytes travel exactly as the author produced them, next to their
//! detached signature: relays never re-encode them.
//!
//! This module only encodes and decodes bytes in memory; reading and
//! writing the stream is the daemon's `mesh`, and what to say is
//! [`crate::sync`]'s.

use crate::envelope::{MAX_ENVELOPE_BYTES, MAX_SIGNATURE_BYTES};
use crate::id::{EnvelopeId, Fingerprint};

/// Wire format version carried by every frame.
pub const WIRE_VERSION: u8 = 1;

/// Largest frame, in bytes (length prefix excluded).
pub const MAX_FRAME_BYTES: usize = 4 * 1024 * 1024;

/// Most envelopes one [`Frame::Envelopes`] batch carries.
pub const MAX_BATCH: usize = 256;

/// Most authors one [`Frame::Summary`] lists.
pub const MAX_SUMMARY_AUTHORS: usize = 65_536;

/// The ALPN protocol id.
pub const ALPN: &[u8] = b"cer/1";

/// The label of the TLS exporter value each side signs to bind the QUIC
/// connection to its OpenPGP identity (RFC 5705 / RFC 8446 §7.5).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-cer/1-peer-auth";

/// Length of the exporter value.
pub const EXPORTER_LEN: usize = 32;

/// What a node signs to prove it holds its key on this very connection:
/// a fixed context, its role, and the connection's exporter value.
pub fn auth_message(role: Role, exporter: &[u8; EXPORTER_LEN]) -> Vec<u8> {
    let mut m = b"cer/1 peer authentication\n".to_vec();
    m.push(match role {
        Role::Dialer => b'D',
        Role::Listener => b'L',
    });
    m.extend_from_slice(exporter);
    m
}

/// Which end of a connection a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Dialer,
    Listener,
}

/// One frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// First frame each side sends: who it is, and its signature over
    /// [`auth_message`] for its role.
    Auth {
        fingerprint: Fingerprint,
        signature: Vec<u8>,
    },
    /// For each author, the highest contiguous seq held and its id.
    Summary { tips: Vec<Tip> },
    /// Please send `author`'s envelopes `from..=to`.
    Want {
        author: Fingerprint,
        from: u64,
        to: u64,
    },
    /// Envelopes of one or more authors, each author's in seq order: the
    /// answer to a [`Frame::Want`], or an urgent envelope flooded to every
    /// peer (a duplicate of one says nothing about the link).
    Envelopes { items: Vec<Item> },
    /// Envelopes the sender just stored, sent unasked to a peer on an
    /// eager link (lazy push: see [`crate::sync`]). Encoded like
    /// [`Frame::Envelopes`]; a copy the receiver already holds tells it
    /// the link closes a loop, and it answers [`Frame::Prune`].
    Push { items: Vec<Item> },
    /// What the sender just stored, announced by place and id instead of
    /// sent, on a lazy link: for each author, the highest seq it now holds.
    /// The receiver asks for what it still lacks once its eager links had
    /// their chance to deliver.
    Have { tips: Vec<Tip> },
    /// From now on, announce stored envelopes to me with [`Frame::Have`];
    /// the link is lazy both ways.
    Prune,
    /// From now on, push stored envelopes to me in full; the link is eager
    /// both ways.
    Graft,
    /// The sender is closing the connection, and why.
    Goodbye { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    pub author: Fingerprint,
    pub seq: u64,
    pub id: EnvelopeId,
}

/// One envelope in a batch: the signed document, or what remains of one
/// its author withdrew.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Live { bytes: Vec<u8>, sig: Vec<u8> },
    Tombstone(WireTombstone),
}

/// A withdrawn envelope's place in its author's chain, with its proof:
/// the author's signed retraction (exact bytes and detached signature)
/// whose `withdraws` list names this `seq` and `id`. Nothing else about
/// the withdrawn envelope travels; the receiver takes it all from the
/// verified retraction, so a peer can claim nothing the author did not
/// sign.
#[derive(Debug, Clone, PartialEq)]
pub struct WireTombstone {
    pub author: Fingerprint,
    pub seq: u64,
    pub id: EnvelopeId,
    pub proof: Vec<u8>,
    pub proof_sig: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame is {size} bytes, more than the maximum of {MAX_FRAME_BYTES}")]
    TooLarge { size: usize },
    #[error("frame ends early: needed {needed} more bytes for {what}")]
    Truncated { what: &'static str, needed: usize },
    #[error("unsupported wire version {0}")]
    Version(u8),
    #[error("unknown frame type {0:#04x}")]
    UnknownType(u8),
    #[error("invalid {what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    #[error("{0} trailing bytes after the frame")]
    Trailing(usize),
}

/// Longest [`Frame::Goodbye`] reason, in bytes of UTF-8.
pub const MAX_GOODBYE_BYTES: usize = 1024;

/// Bytes every frame starts with: the version and the type.
pub const FRAME_HEADER_LEN: usize = 2;

/// Bytes of an [`Frame::Envelopes`] frame before its first item: the frame
/// header and the item count. A driver filling a batch adds
/// [`Item::encoded_len`] per item and stops before [`MAX_FRAME_BYTES`].
pub const ENVELOPES_HEADER_LEN: usize = FRAME_HEADER_LEN + 4;

const TYPE_AUTH: u8 = 1;
const TYPE_SUMMARY: u8 = 2;
const TYPE_WANT: u8 = 3;
const TYPE_ENVELOPES: u8 = 4;
const TYPE_GOODBYE: u8 = 5;
const TYPE_PUSH: u8 = 6;
const TYPE_HAVE: u8 = 7;
const TYPE_PRUNE: u8 = 8;
const TYPE_GRAFT: u8 = 9;

const ITEM_LIVE: u8 = 0;
const ITEM_TOMBSTONE: u8 = 1;

const FINGERPRINT_LEN: usize = 20;
const ID_LEN: usize = 32;
/// author, seq, id
const TIP_LEN: usize = FINGERPRINT_LEN + 8 + ID_LEN;
/// The smallest item: a tag and two empty length-prefixed strings.
const MIN_ITEM_LEN: usize = 1 + 4 + 4;

// The largest summary and the largest envelope each fit in one frame.
const _: () = assert!(FRAME_HEADER_LEN + 4 + MAX_SUMMARY_AUTHORS * TIP_LEN <= MAX_FRAME_BYTES);
const _: () = assert!(
    ENVELOPES_HEADER_LEN + MIN_ITEM_LEN + MAX_ENVELOPE_BYTES + MAX_SIGNATURE_BYTES
        <= MAX_FRAME_BYTES
);

impl Frame {
    /// The frame's bytes, without the transport's length prefix.
    ///
    /// Encoding does not check the limits (batch size, byte-string bounds,
    /// [`MAX_FRAME_BYTES`]); a frame that breaks them encodes, and the peer
    /// refuses it. Build frames within the limits.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the frame's bytes to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(WIRE_VERSION);
        match self {
            Frame::Auth {
                fingerprint,
                signature,
            } => {
                out.push(TYPE_AUTH);
                put_fingerprint(out, fingerprint);
                put_bytes(out, signature);
            }
            Frame::Summary { tips } => {
                out.push(TYPE_SUMMARY);
                put_tips(out, tips);
            }
            Frame::Have { tips } => {
                out.push(TYPE_HAVE);
                put_tips(out, tips);
            }
            Frame::Want { author, from, to } => {
                out.push(TYPE_WANT);
                put_fingerprint(out, author);
                out.extend_from_slice(&from.to_be_bytes());
                out.extend_from_slice(&to.to_be_bytes());
            }
            Frame::Envelopes { items } | Frame::Push { items } => {
                out.push(match self {
                    Frame::Push { .. } => TYPE_PUSH,
                    _ => TYPE_ENVELOPES,
                });
                put_len(out, items.len());
                for item in items {
                    item.encode_into(out);
                }
            }
            Frame::Prune => out.push(TYPE_PRUNE),
            Frame::Graft => out.push(TYPE_GRAFT),
            Frame::Goodbye { reason } => {
                out.push(TYPE_GOODBYE);
                put_bytes(out, reason.as_bytes());
            }
        }
    }

    /// The length of [`Frame::encode`]'s result, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        FRAME_HEADER_LEN
            + match self {
                Frame::Auth { signature, .. } => FINGERPRINT_LEN + 4 + signature.len(),
                Frame::Summary { tips } | Frame::Have { tips } => 4 + tips.len() * TIP_LEN,
                Frame::Want { .. } => FINGERPRINT_LEN + 8 + 8,
                Frame::Envelopes { items } | Frame::Push { items } => {
                    4 + items.iter().map(Item::encoded_len).sum::<usize>()
                }
                Frame::Prune | Frame::Graft => 0,
                Frame::Goodbye { reason } => 4 + reason.len(),
            }
    }

    /// Decodes one frame (the bytes after the transport's length prefix).
    ///
    /// Every malformed input is an error, never a panic; counts and lengths
    /// are checked against the limits and the bytes left before anything is
    /// allocated, so decoding never allocates more than the input's size.
    pub fn decode(bytes: &[u8]) -> Result<Frame, DecodeError> {
        if bytes.len() > MAX_FRAME_BYTES {
            return Err(DecodeError::TooLarge { size: bytes.len() });
        }
        let mut r = Reader { rest: bytes };
        let version = r.u8("version")?;
        if version != WIRE_VERSION {
            return Err(DecodeError::Version(version));
        }
        let frame = match r.u8("frame type")? {
            TYPE_AUTH => Frame::Auth {
                fingerprint: r.fingerprint("auth fingerprint")?,
                signature: r.bytes("auth signature", MAX_SIGNATURE_BYTES)?.to_vec(),
            },
            TYPE_SUMMARY => Frame::Summary {
                tips: r.tips("summary tips")?,
            },
            TYPE_HAVE => Frame::Have {
                tips: r.tips("have tips")?,
            },
            TYPE_WANT => {
                let author = r.fingerprint("want author")?;
                let from = r.u64("want from")?;
                let to = r.u64("want to")?;
                if from == 0 {
                    return Err(invalid("want", "seq starts at 1, got from = 0"));
                }
                if from > to {
                    return Err(invalid("want", format!("from {from} is after to {to}")));
                }
                Frame::Want { author, from, to }
            }
            TYPE_ENVELOPES => Frame::Envelopes {
                items: r.items("envelope batch")?,
            },
            TYPE_PUSH => Frame::Push {
                items: r.items("push batch")?,
            },
            TYPE_PRUNE => Frame::Prune,
            TYPE_GRAFT => Frame::Graft,
            TYPE_GOODBYE => {
                let reason = r.bytes("goodbye reason", MAX_GOODBYE_BYTES)?;
                let reason = std::str::from_utf8(reason)
                    .map_err(|e| invalid("goodbye reason", e.to_string()))?;
                Frame::Goodbye {
                    reason: reason.to_owned(),
                }
            }
            other => return Err(DecodeError::UnknownType(other)),
        };
        if !r.rest.is_empty() {
            return Err(DecodeError::Trailing(r.rest.len()));
        }
        Ok(frame)
    }
}

impl Item {
    /// The item's size inside an [`Frame::Envelopes`] frame.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            Item::Live { bytes, sig } => 4 + bytes.len() + 4 + sig.len(),
            Item::Tombstone(t) => {
                FINGERPRINT_LEN + 8 + ID_LEN + 4 + t.proof.len() + 4 + t.proof_sig.len()
            }
        }
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Item::Live { bytes, sig } => {
                out.push(ITEM_LIVE);
                put_bytes(out, bytes);
                put_bytes(out, sig);
            }
            Item::Tombstone(t) => {
                out.push(ITEM_TOMBSTONE);
                put_fingerprint(out, &t.author);
                out.extend_from_slice(&t.seq.to_be_bytes());
                out.extend_from_slice(t.id.as_bytes());
                put_bytes(out, &t.proof);
                put_bytes(out, &t.proof_sig);
            }
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Item, DecodeError> {
        match r.u8("item tag")? {
            ITEM_LIVE => Ok(Item::Live {
                bytes: r.bytes("envelope bytes", MAX_ENVELOPE_BYTES)?.to_vec(),
                sig: r.bytes("envelope signature", MAX_SIGNATURE_BYTES)?.to_vec(),
            }),
            ITEM_TOMBSTONE => {
                let author = r.fingerprint("tombstone author")?;
                let seq = r.u64("tombstone seq")?;
                let id = r.id("tombstone id")?;
                let proof = r.bytes("tombstone proof", MAX_ENVELOPE_BYTES)?.to_vec();
                let proof_sig = r
                    .bytes("tombstone proof signature", MAX_SIGNATURE_BYTES)?
                    .to_vec();
                if seq == 0 {
                    return Err(invalid("tombstone seq", "seq starts at 1"));
                }
                Ok(Item::Tombstone(WireTombstone {
                    author,
                    seq,
                    id,
                    proof,
                    proof_sig,
                }))
            }
            other => Err(invalid("item tag", format!("expected 0 or 1, got {other}"))),
        }
    }
}

/// A cursor over a frame being decoded. Every read checks the bytes left.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated {
                what,
                needed: n - self.rest.len(),
            });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    fn fingerprint(&mut self, what: &'static str) -> Result<Fingerprint, DecodeError> {
        let raw: [u8; FINGERPRINT_LEN] = self.array(what)?;
        Fingerprint::parse(&hex::encode_upper(raw)).map_err(|e| invalid(what, e.reason))
    }

    fn id(&mut self, what: &'static str) -> Result<EnvelopeId, DecodeError> {
        Ok(EnvelopeId::from_bytes(self.array(what)?))
    }

    fn tips(&mut self, what: &'static str) -> Result<Vec<Tip>, DecodeError> {
        let count = self.count(what, MAX_SUMMARY_AUTHORS, TIP_LEN)?;
        let mut tips = Vec::with_capacity(count);
        for _ in 0..count {
            tips.push(Tip {
                author: self.fingerprint("tip author")?,
                seq: self.u64("tip seq")?,
                id: self.id("tip id")?,
            });
        }
        Ok(tips)
    }

    fn items(&mut self, what: &'static str) -> Result<Vec<Item>, DecodeError> {
        let count = self.count(what, MAX_BATCH, MIN_ITEM_LEN)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(Item::decode(self)?);
        }
        Ok(items)
    }

    /// A u32-length-prefixed byte string of at most `max` bytes.
    fn bytes(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32(what)? as usize;
        if len > max {
            return Err(invalid(
                what,
                format!("{len} bytes, more than the maximum of {max}"),
            ));
        }
        self.take(len, what)
    }

    /// A u32 count of at most `max` elements of at least `min_each` bytes,
    /// checked against the bytes left so the caller may allocate `count`.
    fn count(
        &mut self,
        what: &'static str,
        max: usize,
        min_each: usize,
    ) -> Result<usize, DecodeError> {
        let count = self.u32(what)? as usize;
        if count > max {
            return Err(invalid(
                what,
                format!("{count} entries, more than the maximum of {max}"),
            ));
        }
        let least = count.saturating_mul(min_each);
        if least > self.rest.len() {
            return Err(DecodeError::Truncated {
                what,
                needed: least - self.rest.len(),
            });
        }
        Ok(count)
    }
}

fn invalid(what: &'static str, reason: impl Into<String>) -> DecodeError {
    DecodeError::Invalid {
        what,
        reason: reason.into(),
    }
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Every length the limits allow fits in a u32; a larger one saturates
    // and the peer refuses the frame as oversized.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_tips(out: &mut Vec<u8>, tips: &[Tip]) {
    put_len(out, tips.len());
    for tip in tips {
        put_fingerprint(out, &tip.author);
        out.extend_from_slice(&tip.seq.to_be_bytes());
        out.extend_from_slice(tip.id.as_bytes());
    }
}

fn put_fingerprint(out: &mut Vec<u8>, fingerprint: &Fingerprint) {
    out.extend_from_slice(&fingerprint.to_raw());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn fingerprint() -> impl Strategy<Value = Fingerprint> {
        any::<[u8; 20]>().prop_map(|raw| Fingerprint::parse(&hex::encode(raw)).unwrap())
    }

    fn id() -> impl Strategy<Value = EnvelopeId> {
        any::<[u8; 32]>().prop_map(EnvelopeId::from_bytes)
    }

    fn tombstone() -> impl Strategy<Value = WireTombstone> {
        (
            fingerprint(),
            1u64..,
            id(),
            vec(any::<u8>(), 0..300),
            vec(any::<u8>(), 0..100),
        )
            .prop_map(|(author, seq, id, proof, proof_sig)| WireTombstone {
                author,
                seq,
                id,
                proof,
                proof_sig,
            })
    }

    fn item() -> impl Strategy<Value = Item> {
        prop_oneof![
            (vec(any::<u8>(), 0..300), vec(any::<u8>(), 0..100))
                .prop_map(|(bytes, sig)| Item::Live { bytes, sig }),
            tombstone().prop_map(Item::Tombstone),
        ]
    }

    fn tip() -> impl Strategy<Value = Tip> {
        (fingerprint(), any::<u64>(), id()).prop_map(|(author, seq, id)| Tip { author, seq, id })
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (fingerprint(), vec(any::<u8>(), 0..200)).prop_map(|(fingerprint, signature)| {
                Frame::Auth {
                    fingerprint,
                    signature,
                }
            }),
            vec(tip(), 0..20).prop_map(|tips| Frame::Summary { tips }),
            vec(tip(), 0..20).prop_map(|tips| Frame::Have { tips }),
            Just(Frame::Prune),
            Just(Frame::Graft),
            (fingerprint(), 1u64.., any::<u64>()).prop_map(|(author, from, span)| Frame::Want {
                author,
                from,
                to: from.saturating_add(span),
            }),
            vec(item(), 0..12).prop_map(|items| Frame::Envelopes { items }),
            vec(item(), 0..12).prop_map(|items| Frame::Push { items }),
            "\\PC{0,100}".prop_map(|reason| Frame::Goodbye { reason }),
        ]
    }

    proptest! {
        #[test]
        fn every_frame_round_trips(frame in frame()) {
            let bytes = frame.encode();
            prop_assert_eq!(bytes.len(), frame.encoded_len());
            prop_assert_eq!(Frame::decode(&bytes), Ok(frame));
        }

        #[test]
        fn every_truncation_is_an_error(frame in frame()) {
            let bytes = frame.encode();
            for len in 0..bytes.len() {
                prop_assert!(Frame::decode(&bytes[..len]).is_err(), "prefix of {} bytes decoded", len);
            }
        }

        #[test]
        fn trailing_bytes_are_an_error(frame in frame(), extra in vec(any::<u8>(), 1..8)) {
            let mut bytes = frame.encode();
            bytes.extend_from_slice(&extra);
            prop_assert_eq!(Frame::decode(&bytes), Err(DecodeError::Trailing(extra.len())));
        }

        #[test]
        fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..512)) {
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn random_bodies_never_panic(kind in 1u8..=9, body in vec(any::<u8>(), 0..512)) {
            let mut bytes = vec![WIRE_VERSION, kind];
            bytes.extend_from_slice(&body);
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn corrupted_frames_never_panic(frame in frame(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut bytes = frame.encode();
            let at = at.index(bytes.len());
            bytes[at] = byte;
            if let Ok(decoded) = Frame::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes: the encoding is canonical.
                prop_assert_eq!(decoded.encode(), bytes);
            }
        }
    }

    fn header(kind: u8) -> Vec<u8> {
        vec![WIRE_VERSION, kind]
    }

    fn assert_invalid(bytes: &[u8], what: &str) {
        match Frame::decode(bytes) {
            Err(DecodeError::Invalid { what: got, .. }) => assert_eq!(got, what),
            other => panic!("expected Invalid {what}, got {other:?}"),
        }
    }

    #[test]
    fn oversized_counts_are_refused_before_reading() {
        let mut summary = header(TYPE_SUMMARY);
        summary.extend_from_slice(&(MAX_SUMMARY_AUTHORS as u32 + 1).to_be_bytes());
        assert_invalid(&summary, "summary tips");

        let mut batch = header(TYPE_ENVELOPES);
        batch.extend_from_slice(&(MAX_BATCH as u32 + 1).to_be_bytes());
        assert_invalid(&batch, "envelope batch");

        // A count within the limit but larger than the bytes that follow
        // is refused before allocating.
        let mut batch = header(TYPE_ENVELOPES);
        batch.extend_from_slice(&(MAX_BATCH as u32).to_be_bytes());
        assert!(matches!(
            Frame::decode(&batch),
            Err(DecodeError::Truncated { what: "envelope batch", needed }) if needed == MAX_BATCH * MIN_ITEM_LEN
        ));

        let mut live = header(TYPE_ENVELOPES);
        live.extend_from_slice(&1u32.to_be_bytes());
        live.push(ITEM_LIVE);
        live.extend_from_slice(&(MAX_ENVELOPE_BYTES as u32 + 1).to_be_bytes());
        live.extend_from_slice(&[0; 4]);
        assert_invalid(&live, "envelope bytes");

        let mut sig = header(TYPE_ENVELOPES);
        sig.extend_from_slice(&1u32.to_be_bytes());
        sig.push(ITEM_LIVE);
        sig.extend_from_slice(&0u32.to_be_bytes());
        sig.extend_from_slice(&(MAX_SIGNATURE_BYTES as u32 + 1).to_be_bytes());
        assert_invalid(&sig, "envelope signature");

        let mut auth = header(TYPE_AUTH);
        auth.extend_from_slice(&[0xAB; 20]);
        auth.extend_from_slice(&(MAX_SIGNATURE_BYTES as u32 + 1).to_be_bytes());
        assert_invalid(&auth, "auth signature");

        let mut goodbye = header(TYPE_GOODBYE);
        goodbye.extend_from_slice(&(MAX_GOODBYE_BYTES as u32 + 1).to_be_bytes());
        goodbye.extend_from_slice(&[b'x'; MAX_GOODBYE_BYTES + 1]);
        assert_invalid(&goodbye, "goodbye reason");

        let mut proof = Frame::Envelopes {
            items: vec![Item::Tombstone(WireTombstone {
                author: Fingerprint::parse(&"AB".repeat(20)).unwrap(),
                seq: 1,
                id: EnvelopeId::of(b"x"),
                proof: vec![],
                proof_sig: vec![],
            })],
        }
        .encode();
        // Claim a proof over the envelope limit: refused before reading it.
        let at = proof.len() - 8;
        proof[at..at + 4].copy_from_slice(&(MAX_ENVELOPE_BYTES as u32 + 1).to_be_bytes());
        assert_invalid(&proof, "tombstone proof");
    }

    #[test]
    fn frame_level_errors() {
        assert_eq!(
            Frame::decode(&vec![0; MAX_FRAME_BYTES + 1]),
            Err(DecodeError::TooLarge {
                size: MAX_FRAME_BYTES + 1
            })
        );
        assert!(matches!(
            Frame::decode(&[]),
            Err(DecodeError::Truncated {
                what: "version",
                needed: 1
            })
        ));
        assert_eq!(Frame::decode(&[2, TYPE_WANT]), Err(DecodeError::Version(2)));
        assert_eq!(
            Frame::decode(&header(10)),
            Err(DecodeError::UnknownType(10))
        );
        assert_eq!(Frame::decode(&header(0)), Err(DecodeError::UnknownType(0)));
    }

    #[test]
    fn want_ranges_are_checked() {
        let author = Fingerprint::parse(&"CD".repeat(20)).unwrap();
        let want = |from, to| Frame::Want {
            author: author.clone(),
            from,
            to,
        };
        assert!(Frame::decode(&want(1, 1).encode()).is_ok());
        assert_invalid(&want(0, 5).encode(), "want");
        assert_invalid(&want(6, 5).encode(), "want");
    }

    #[test]
    fn bad_enum_codes_and_text_are_refused() {
        let mut goodbye = header(TYPE_GOODBYE);
        goodbye.extend_from_slice(&2u32.to_be_bytes());
        goodbye.extend_from_slice(&[0xC3, 0x28]);
        assert_invalid(&goodbye, "goodbye reason");

        let mut item = header(TYPE_ENVELOPES);
        item.extend_from_slice(&1u32.to_be_bytes());
        item.push(7);
        item.extend_from_slice(&[0; 8]);
        assert_invalid(&item, "item tag");

        let tombstone = Frame::Envelopes {
            items: vec![Item::Tombstone(WireTombstone {
                author: Fingerprint::parse(&"AB".repeat(20)).unwrap(),
                seq: 0,
                id: EnvelopeId::of(b"x"),
                proof: b"{}".to_vec(),
                proof_sig: vec![1, 2, 3],
            })],
        }
        .encode();
        assert_invalid(&tombstone, "tombstone seq");
    }

    #[test]
    fn live_items_cost_nine_bytes() {
        let item = Item::Live {
            bytes: vec![1; 500],
            sig: vec![2; 119],
        };
        assert_eq!(item.encoded_len(), 500 + 119 + 9);
        let frame = Frame::Envelopes {
            items: vec![item; MAX_BATCH],
        };
        assert_eq!(
            frame.encode().len(),
            ENVELOPES_HEADER_LEN + MAX_BATCH * (500 + 119 + 9)
        );
    }
}
