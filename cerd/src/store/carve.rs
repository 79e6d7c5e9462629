//! Finding envelopes in the raw files of a store that sled cannot open.
//!
//! A live envelope record is `1`, the document's length (u32), the
//! document, and its detached OpenPGP signature (one packet, whose header
//! gives its length); sled keeps small values whole in its log segments.
//! Carving looks for envelope documents in every file of the folder,
//! checks that each parses and that its signature verifies (the caller's
//! verifier: a false match cannot pass it), and keeps one copy of each.
//! Withdrawn envelopes come back as tombstones from their author's carved
//! retraction, as a peer would prove them.

use std::collections::BTreeMap;
use std::path::Path;

use cer_proto::envelope::{Envelope, Kind};
use cer_proto::{EnvelopeId, Fingerprint};

use super::check::{Verdict, Verifier};
use super::{keys, StoredEnvelope, Tombstone};

/// The start of every envelope document `Draft::to_bytes` writes.
const MARK: &[u8] = b"{\"v\":1,\"author\":\"";

/// Every verifiable envelope found under `dir`, by author and seq.
pub(super) fn carve(
    dir: &Path,
    verifier: &dyn Verifier,
) -> BTreeMap<Fingerprint, BTreeMap<u64, (EnvelopeId, StoredEnvelope)>> {
    let mut found: BTreeMap<Fingerprint, BTreeMap<u64, (EnvelopeId, StoredEnvelope)>> =
        BTreeMap::new();
    let mut files = Vec::new();
    collect_files(dir, &mut files);
    for file in files {
        let Ok(data) = std::fs::read(&file) else {
            continue;
        };
        let mut at = 0;
        while let Some(offset) = find(&data[at..], MARK) {
            let start = at + offset;
            at = start + 1;
            let Some((bytes, sig)) = record_at(&data, start) else {
                continue;
            };
            let Ok(envelope) = Envelope::parse(bytes) else {
                continue;
            };
            if matches!(verifier.envelope(bytes, sig), Verdict::Bad(_)) {
                continue;
            }
            let id = EnvelopeId::of(bytes);
            found.entry(envelope.author.clone()).or_default().insert(
                envelope.seq,
                (
                    id,
                    StoredEnvelope::Live {
                        bytes: bytes.to_vec(),
                        sig: sig.to_vec(),
                    },
                ),
            );
        }
    }
    // Fill withdrawn places from the author's retractions.
    for chain in found.values_mut() {
        let mut tombstones = Vec::new();
        for (_, record) in chain.values() {
            let StoredEnvelope::Live { bytes, sig } = record else {
                continue;
            };
            let Ok(retraction) = Envelope::parse(bytes) else {
                continue;
            };
            if retraction.kind != Kind::Retraction {
                continue;
            }
            for w in &retraction.withdraws {
                tombstones.push((
                    w.seq,
                    w.id,
                    Tombstone::proven(&retraction, w, bytes.clone(), sig.clone()),
                ));
            }
        }
        for (seq, id, tomb) in tombstones {
            chain
                .entry(seq)
                .or_insert((id, StoredEnvelope::Tombstone(tomb)));
        }
    }
    found
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_files(&entry.path(), out);
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The envelope document at `start` and the signature packet after it,
/// if the record around them is whole.
fn record_at(data: &[u8], start: usize) -> Option<(&[u8], &[u8])> {
    if start < 5 || data[start - 5] != keys::LIVE {
        return None;
    }
    let len = u32::from_be_bytes(data[start - 4..start].try_into().ok()?) as usize;
    let bytes = data.get(start..start.checked_add(len)?)?;
    let rest = &data[start + len..];
    let sig_len = packet_len(rest)?;
    Some((bytes, rest.get(..sig_len)?))
}

/// The length of the OpenPGP packet at the start of `data`, header
/// included (RFC 4880 §4.2).
fn packet_len(data: &[u8]) -> Option<usize> {
    let first = *data.first()?;
    if first & 0x80 == 0 {
        return None;
    }
    if first & 0x40 != 0 {
        let o1 = *data.get(1)? as usize;
        match o1 {
            0..=191 => Some(2 + o1),
            192..=223 => Some(3 + ((o1 - 192) << 8) + *data.get(2)? as usize + 192),
            255 => Some(6 + u32::from_be_bytes(data.get(2..6)?.try_into().ok()?) as usize),
            _ => None,
        }
    } else {
        match first & 0x03 {
            0 => Some(2 + *data.get(1)? as usize),
            1 => Some(3 + u16::from_be_bytes(data.get(1..3)?.try_into().ok()?) as usize),
            2 => Some(5 + u32::from_be_bytes(data.get(1..5)?.try_into().ok()?) as usize),
            _ => None,
        }
    }
}
