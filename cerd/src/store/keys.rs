//! The store's keys and record encodings: one sled tree, each record kind
//! under its own one-byte prefix.
//!
//! | prefix | key                               | value                                   |
//! |--------|-----------------------------------|-----------------------------------------|
//! | `e`    | envelope id (32)                  | live record (bytes + sig) or tombstone  |
//! | `c`    | author (20) ‖ seq (be u64)        | envelope id: the author's chain         |
//! | `t`    | author (20)                       | chain tip: seq ‖ id                     |
//! | `d`    | envelope id                       | body JSON this node decrypted           |
//! | `i`    | incident uuid (16)                | summary and folded state, no indicators |
//! | `n`    | uuid ‖ chunk (be u32)             | up to [`CHUNK`] indicator entries       |
//! | `x`    | type `:` value `\0` uuid          | the entry's position in the incident: types other than the next two ([`index`](super::index)) |
//! | `y`    | family (`4`/`6`) ‖ address ‖ tag ‖ uuid | the entry's position: ipv4/ipv6 (tag 0xFF) and CIDR networks (tag: prefix length), in address order |
//! | `z`    | domain labels reversed `\0` uuid | the entry's position: domains, by reversed labels (`com.example.www`) |
//! | `o`    | updated (be i128, sign flipped) ‖ uuid | (empty): incidents by last update  |
//! | `l`    | added here (be i128, sign flipped) ‖ uuid | (empty): incidents by when this node last stored an envelope about them |
//! | `q`    | author ‖ seq ‖ id                 | a second envelope at a seq (evidence)   |
//! | `v`    | event seq (be u64)                | [`EventRecord`](super::EventRecord)     |
//! | `k`    | request uuid                      | the [`Filed`] answer to that request    |
//! | `r`    | run key                           | playbook run record                     |
//! | `R`    | started (16) ‖ run key            | (empty): runs by time                   |
//! | `a`    | uuid ‖ time (16) ‖ n (8)          | local annotation                        |
//! | `p`    | `d` name `\0` uuid type `:` value `\0` action (be u32) | a playbook's [`Acted`](cer_proto::api::Acted) record |
//! | `p`    | `s` name                          | a paused playbook                       |
//! | `p`    | `h` name `\0` event seq (be u64)  | (empty): an event held for it           |
//! | `m`    | name                              | format version, counts, cursors         |
//!
//! Primary records are `e`, `c`, `d`, `k`, `q`, `v`, `r`, `a`, `p`; everything
//! else is derived from them and `cerd repair` rebuilds it.

use cer_proto::envelope::Kind;
use cer_proto::incident::IndicatorEntry;
use cer_proto::model::{IndicatorType, Timestamp, Tlp};
use cer_proto::{EnvelopeId, Fingerprint};
use uuid::Uuid;

use super::{corrupt, StoreError};

pub const ENVELOPE: u8 = b'e';
pub const CHAIN: u8 = b'c';
pub const TIP: u8 = b't';
pub const DECRYPTED: u8 = b'd';
pub const INCIDENT: u8 = b'i';
pub const CHUNK_KEY: u8 = b'n';
pub const INDEX: u8 = b'x';
pub const ORDER: u8 = b'o';
pub const ADDED: u8 = b'l';
pub const EQUIVOCATION: u8 = b'q';
pub const EVENT: u8 = b'v';
pub const REQUEST: u8 = b'k';
pub const RUN: u8 = b'r';
pub const RUN_BY_TIME: u8 = b'R';
pub const ANNOTATION: u8 = b'a';
pub const PLAYBOOK: u8 = b'p';
pub const META: u8 = b'm';

/// Indicator entries per chunk record: small enough that rewriting one
/// chunk for a sighting is cheap, and a chunk stays far below sled's
/// large-value threshold.
pub const CHUNK: usize = 256;

pub const LIVE: u8 = 1;
pub const TOMB: u8 = 0;

pub fn envelope(id: &EnvelopeId) -> Vec<u8> {
    prefixed(ENVELOPE, id.as_bytes())
}

pub fn decrypted(id: &EnvelopeId) -> Vec<u8> {
    prefixed(DECRYPTED, id.as_bytes())
}

pub fn chain(author: &Fingerprint, seq: u64) -> Vec<u8> {
    let mut key = prefixed(CHAIN, &author.to_raw());
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub fn tip(author: &Fingerprint) -> Vec<u8> {
    prefixed(TIP, &author.to_raw())
}

pub fn incident(id: Uuid) -> Vec<u8> {
    prefixed(INCIDENT, id.as_bytes())
}

pub fn chunk(id: Uuid, chunk: u32) -> Vec<u8> {
    let mut key = prefixed(CHUNK_KEY, id.as_bytes());
    key.extend_from_slice(&chunk.to_be_bytes());
    key
}

pub fn order(updated: Timestamp, id: Uuid) -> Vec<u8> {
    let mut key = vec![ORDER];
    key.extend_from_slice(&time_bytes(updated));
    key.extend_from_slice(id.as_bytes());
    key
}

/// An incident's place in the order of arrival here: `at` is strictly
/// later for every batch, whatever times the envelopes carry.
pub fn added(at: Timestamp, id: Uuid) -> Vec<u8> {
    let mut key = vec![ADDED];
    key.extend_from_slice(&time_bytes(at));
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn equivocation(author: &Fingerprint, seq: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut key = chain(author, seq);
    key[0] = EQUIVOCATION;
    key.extend_from_slice(id.as_bytes());
    key
}

pub fn event(seq: u64) -> Vec<u8> {
    prefixed(EVENT, &seq.to_be_bytes())
}

pub fn request(id: Uuid) -> Vec<u8> {
    prefixed(REQUEST, id.as_bytes())
}

pub fn run(key: &str) -> Vec<u8> {
    prefixed(RUN, key.as_bytes())
}

pub fn run_by_time(started: Timestamp, key: &str) -> Vec<u8> {
    let mut out = vec![RUN_BY_TIME];
    out.extend_from_slice(&time_bytes(started));
    out.extend_from_slice(key.as_bytes());
    out
}

pub fn annotation(id: Uuid, at: Timestamp, n: u64) -> Vec<u8> {
    let mut key = prefixed(ANNOTATION, id.as_bytes());
    key.extend_from_slice(&time_bytes(at));
    key.extend_from_slice(&n.to_be_bytes());
    key
}

pub fn meta(name: &str) -> Vec<u8> {
    prefixed(META, name.as_bytes())
}

pub fn prefixed(prefix: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(prefix);
    key.extend_from_slice(rest);
    key
}

/// Big-endian nanoseconds with the sign bit flipped, so keys sort like
/// times.
pub fn time_bytes(t: Timestamp) -> [u8; 16] {
    let mut bytes = t.unix_nanos().to_be_bytes();
    bytes[0] ^= 0x80;
    bytes
}

pub fn time_from(bytes: &[u8]) -> Result<Timestamp, StoreError> {
    let mut raw: [u8; 16] = bytes
        .get(..16)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt("time key", "shorter than 16 bytes"))?;
    raw[0] ^= 0x80;
    Ok(Timestamp::from_unix_nanos(i128::from_be_bytes(raw)))
}

pub fn uuid_at(key: &[u8], at: usize) -> Result<Uuid, StoreError> {
    key.get(at..at + 16)
        .and_then(|b| Uuid::from_slice(b).ok())
        .ok_or_else(|| corrupt("key", "no incident id where expected"))
}

pub fn id_from(bytes: &[u8]) -> Result<EnvelopeId, StoreError> {
    let raw: [u8; 32] = bytes
        .try_into()
        .map_err(|_| corrupt("envelope id", "not 32 bytes"))?;
    Ok(EnvelopeId::from_bytes(raw))
}

pub fn fingerprint_from(bytes: &[u8]) -> Result<Fingerprint, StoreError> {
    let raw: [u8; 20] = bytes
        .try_into()
        .map_err(|_| corrupt("fingerprint", "not 20 bytes"))?;
    Ok(Fingerprint::from_raw(&raw))
}

pub fn u64_from(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let raw: [u8; 8] = bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(what, "not 8 bytes"))?;
    Ok(u64::from_be_bytes(raw))
}

pub fn u32_from(bytes: &[u8], what: &str) -> Result<u32, StoreError> {
    let raw: [u8; 4] = bytes
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(what, "not 4 bytes"))?;
    Ok(u32::from_be_bytes(raw))
}

/// A chain tip: seq ‖ id.
pub fn encode_tip(seq: u64, id: &EnvelopeId) -> Vec<u8> {
    let mut out = seq.to_be_bytes().to_vec();
    out.extend_from_slice(id.as_bytes());
    out
}

pub fn decode_tip(v: &[u8]) -> Result<(u64, EnvelopeId), StoreError> {
    if v.len() != 40 {
        return Err(corrupt("chain tip", "not 40 bytes"));
    }
    Ok((u64_from(v, "chain tip")?, id_from(&v[8..])?))
}

pub fn live_record(bytes: &[u8], sig: &[u8]) -> Vec<u8> {
    let mut record = Vec::with_capacity(5 + bytes.len() + sig.len());
    record.push(LIVE);
    record.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    record.extend_from_slice(bytes);
    record.extend_from_slice(sig);
    record
}

pub fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Incident => 0,
        Kind::Update => 1,
        Kind::Sighting => 2,
        Kind::Retraction => 3,
        Kind::Receipt => 4,
        Kind::KeyTransition => 5,
        Kind::KeyRevocation => 6,
    }
}

/// A chunk of an incident's indicator entries: each a u16 length and the
/// entry, so one entry is found without decoding the others.
pub fn encode_chunk(entries: &[IndicatorEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 64);
    for entry in entries {
        let start = out.len();
        out.extend_from_slice(&[0, 0]);
        encode_entry(entry, &mut out);
        let len = (out.len() - start - 2) as u16;
        out[start..start + 2].copy_from_slice(&len.to_be_bytes());
    }
    out
}

pub fn decode_chunk(v: &[u8]) -> Result<Vec<IndicatorEntry>, StoreError> {
    let mut out = Vec::new();
    let mut rest = v;
    while !rest.is_empty() {
        let (entry, tail) = next_entry(rest)?;
        out.push(decode_entry(entry)?);
        rest = tail;
    }
    Ok(out)
}

/// The entry at `index` inside a chunk.
pub fn chunk_entry(v: &[u8], index: usize) -> Result<IndicatorEntry, StoreError> {
    let mut rest = v;
    for _ in 0..index {
        rest = next_entry(rest)?.1;
    }
    if rest.is_empty() {
        return Err(corrupt("indicator chunk", "shorter than the index says"));
    }
    decode_entry(next_entry(rest)?.0)
}

fn next_entry(v: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let len = v
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
        .ok_or_else(|| corrupt("indicator chunk", "truncated"))?;
    let entry = v
        .get(2..2 + len)
        .ok_or_else(|| corrupt("indicator chunk", "truncated"))?;
    Ok((entry, &v[2 + len..]))
}

/// Comments are cut to keep an entry within its u16 length.
const MAX_COMMENT_BYTES: usize = 4096;

fn encode_entry(entry: &IndicatorEntry, out: &mut Vec<u8>) {
    let kind = entry.kind.as_str().as_bytes();
    out.push(kind.len() as u8);
    out.extend_from_slice(kind);
    let value = entry.value.as_bytes();
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
    out.extend_from_slice(&entry.first_seen.unix_nanos().to_be_bytes());
    out.extend_from_slice(&entry.last_seen.unix_nanos().to_be_bytes());
    out.extend_from_slice(&entry.sightings.to_be_bytes());
    out.push(entry.confidence.unwrap_or(u8::MAX));
    let comment = entry.comment.as_deref().unwrap_or("");
    let mut cut = comment.len().min(MAX_COMMENT_BYTES);
    while !comment.is_char_boundary(cut) {
        cut -= 1;
    }
    out.extend_from_slice(&(cut as u16).to_be_bytes());
    out.extend_from_slice(&comment.as_bytes()[..cut]);
    let reporters = entry.reported_by.len().min(255);
    out.push(reporters as u8);
    for fpr in &entry.reported_by[..reporters] {
        out.extend_from_slice(&fpr.to_raw());
    }
    // Labels only where they differ from the incident's, and an expiry
    // only where the author gave one: most entries end here, as every
    // entry did before entries had labels.
    let expiry = entry.valid_until.zip(entry.valid_until_set);
    if entry.tlp.is_some() || entry.details_tlp.is_some() || expiry.is_some() {
        out.push(tlp_code(entry.tlp));
        out.push(tlp_code(entry.details_tlp));
    }
    if let Some((until, set)) = expiry {
        out.extend_from_slice(&until.unix_nanos().to_be_bytes());
        out.extend_from_slice(&set.unix_nanos().to_be_bytes());
    }
}

/// 0: the incident's label; 1 and up: [`Tlp::ALL`] in order.
fn tlp_code(tlp: Option<Tlp>) -> u8 {
    tlp.and_then(|t| Tlp::ALL.iter().position(|a| *a == t))
        .map_or(0, |i| i as u8 + 1)
}

fn tlp_from(code: u8) -> Result<Option<Tlp>, StoreError> {
    match code {
        0 => Ok(None),
        n => Tlp::ALL
            .get(n as usize - 1)
            .copied()
            .map(Some)
            .ok_or_else(|| corrupt("indicator entry", "unknown TLP code")),
    }
}

fn decode_entry(v: &[u8]) -> Result<IndicatorEntry, StoreError> {
    let mut r = Cursor { v, at: 0 };
    let kind_len = r.take(1)?[0] as usize;
    let kind: IndicatorType = std::str::from_utf8(r.take(kind_len)?)
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or_else(|| corrupt("indicator entry", "unknown type"))?;
    let value_len = u16::from_be_bytes(r.array()?) as usize;
    let value = std::str::from_utf8(r.take(value_len)?)
        .map_err(|_| corrupt("indicator entry", "value is not UTF-8"))?
        .to_owned();
    let first = i128::from_be_bytes(r.array()?);
    let last = i128::from_be_bytes(r.array()?);
    let sightings = u32::from_be_bytes(r.array()?);
    let confidence = r.take(1)?[0];
    let comment_len = u16::from_be_bytes(r.array()?) as usize;
    let comment = std::str::from_utf8(r.take(comment_len)?)
        .map_err(|_| corrupt("indicator entry", "comment is not UTF-8"))?
        .to_owned();
    let reporters = r.take(1)?[0] as usize;
    let mut reported_by = Vec::with_capacity(reporters);
    for _ in 0..reporters {
        reported_by.push(Fingerprint::from_raw(&r.array()?));
    }
    let rest = r.rest();
    let (tlp, details_tlp) = match rest.get(..2) {
        None if rest.is_empty() => (None, None),
        Some([lowest, highest]) => (tlp_from(*lowest)?, tlp_from(*highest)?),
        _ => return Err(corrupt("indicator entry", "unexpected bytes after it")),
    };
    let (valid_until, valid_until_set) = match rest.get(2..) {
        None | Some([]) => (None, None),
        Some(expiry) if expiry.len() == 32 => {
            let nanos = |b: &[u8]| {
                <[u8; 16]>::try_from(b)
                    .map(|a| Timestamp::from_unix_nanos(i128::from_be_bytes(a)))
                    .map_err(|_| corrupt("indicator entry", "bad expiry"))
            };
            (Some(nanos(&expiry[..16])?), Some(nanos(&expiry[16..])?))
        }
        Some(_) => return Err(corrupt("indicator entry", "unexpected bytes after it")),
    };
    Ok(IndicatorEntry {
        kind,
        value,
        first_seen: Timestamp::from_unix_nanos(first),
        last_seen: Timestamp::from_unix_nanos(last),
        confidence: (confidence != u8::MAX).then_some(confidence),
        comment: (!comment.is_empty()).then_some(comment),
        reported_by,
        sightings,
        valid_until,
        valid_until_set,
        tlp,
        details_tlp,
    })
}

struct Cursor<'a> {
    v: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let out = self
            .v
            .get(self.at..self.at + n)
            .ok_or_else(|| corrupt("indicator entry", "truncated"))?;
        self.at += n;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn rest(&self) -> &'a [u8] {
        &self.v[self.at.min(self.v.len())..]
    }
}

/// A playbook's acted records: all, or one incident's.
pub fn acted_prefix(playbook: &str, incident: Option<Uuid>) -> Vec<u8> {
    let mut key = vec![PLAYBOOK, b'd'];
    key.extend_from_slice(playbook.as_bytes());
    key.push(0);
    if let Some(incident) = incident {
        key.extend_from_slice(incident.as_bytes());
    }
    key
}

/// The acted records of one indicator (every action) of an incident.
pub fn acted_indicator(
    playbook: &str,
    incident: Uuid,
    kind: IndicatorType,
    value: &str,
) -> Vec<u8> {
    let mut key = acted_prefix(playbook, Some(incident));
    key.extend_from_slice(kind.as_str().as_bytes());
    key.push(b':');
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

pub fn acted(
    playbook: &str,
    incident: Uuid,
    kind: IndicatorType,
    value: &str,
    action: usize,
) -> Vec<u8> {
    let mut key = acted_indicator(playbook, incident, kind, value);
    key.extend_from_slice(&u32::try_from(action).unwrap_or(u32::MAX).to_be_bytes());
    key
}

pub fn paused_prefix() -> Vec<u8> {
    vec![PLAYBOOK, b's']
}

pub fn paused(playbook: &str) -> Vec<u8> {
    let mut key = paused_prefix();
    key.extend_from_slice(playbook.as_bytes());
    key
}

/// Events held for a playbook; `""` gives every playbook's.
pub fn held_prefix(playbook: &str) -> Vec<u8> {
    let mut key = vec![PLAYBOOK, b'h'];
    if !playbook.is_empty() {
        key.extend_from_slice(playbook.as_bytes());
        key.push(0);
    }
    key
}

pub fn held(playbook: &str, event: u64) -> Vec<u8> {
    let mut key = held_prefix(playbook);
    key.extend_from_slice(&event.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_round_trip_and_index_single_entries() {
        let fpr = Fingerprint::parse(&"AB12".repeat(10)).unwrap();
        let entries: Vec<IndicatorEntry> = (0..5)
            .map(|i| IndicatorEntry {
                kind: IndicatorType::Ipv4,
                value: format!("192.0.2.{i}"),
                first_seen: Timestamp::from_unix_nanos(i as i128 * 1000),
                last_seen: Timestamp::from_unix_nanos(-5),
                confidence: (i % 2 == 0).then_some(i as u8 * 10),
                comment: (i == 3).then(|| "é".repeat(3000)),
                reported_by: vec![fpr.clone(); i],
                sightings: i as u32,
                tlp: (i == 1).then_some(Tlp::Green),
                details_tlp: (i >= 1).then_some(Tlp::ALL[i % Tlp::ALL.len()]),
                valid_until: None,
                valid_until_set: None,
            })
            .collect();
        let chunk = encode_chunk(&entries);
        let mut expected = entries.clone();
        expected[3].comment = Some("é".repeat(2048));
        assert_eq!(decode_chunk(&chunk).unwrap(), expected);
        assert_eq!(chunk_entry(&chunk, 4).unwrap(), expected[4]);
        assert!(chunk_entry(&chunk, 5).is_err());
        assert!(decode_chunk(&chunk[..chunk.len() - 1]).is_err());
    }

    /// Entries written before entries had labels end at their reporters;
    /// they read as entries at the incident's label.
    #[test]
    fn entries_without_labels_read_as_the_incidents() {
        let mut old = vec![4];
        old.extend_from_slice(b"ipv4");
        old.extend_from_slice(&11u16.to_be_bytes());
        old.extend_from_slice(b"192.0.2.200");
        old.extend_from_slice(&[0; 32]);
        old.extend_from_slice(&7u32.to_be_bytes());
        old.push(u8::MAX);
        old.extend_from_slice(&0u16.to_be_bytes());
        old.push(0);
        let mut chunk = (old.len() as u16).to_be_bytes().to_vec();
        chunk.extend_from_slice(&old);
        let entry = chunk_entry(&chunk, 0).unwrap();
        assert_eq!((entry.value.as_str(), entry.sightings), ("192.0.2.200", 7));
        assert_eq!((entry.tlp, entry.details_tlp), (None, None));
        // And an unlabelled entry is still written that way.
        assert_eq!(encode_chunk(&[entry]), chunk);

        let mut bad = chunk.clone();
        bad.extend_from_slice(&[9, 9]);
        bad[..2].copy_from_slice(&(old.len() as u16 + 2).to_be_bytes());
        assert!(chunk_entry(&bad, 0).is_err());
    }

    #[test]
    fn time_keys_sort_like_times() {
        let times = [-5_000i128, -1, 0, 1, 1_800_000_000_000_000_000];
        let keys: Vec<[u8; 16]> = times
            .iter()
            .map(|t| time_bytes(Timestamp::from_unix_nanos(*t)))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            time_from(&keys[0]).unwrap(),
            Timestamp::from_unix_nanos(-5_000)
        );
    }
}
