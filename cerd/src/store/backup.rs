//! Backups: the store's primary records in one file, written while the
//! node keeps running, and read back into a scratch store that
//! [`rebuild_from`](super::check::rebuild_from) verifies record by record.
//!
//! A backup is a consistent cut without stopping the writer: it takes
//! each author's tip, then that author's chain up to it. Chains are
//! contiguous from seq 1 by construction, envelopes never change except
//! into a tombstone that carries its own proof, and everything past the
//! cut is simply not in the file. The event log is copied up to the cut
//! (the events of envelopes in the file, and the others written before
//! it), with local records (run history, acted records, annotations,
//! request answers, the playbooks' cursors) as they stand.
//!
//! The file: `CERD-BACKUP 1\n`, then frames — a tag (`H` header, `F`
//! file, `R` record, `E` end), a key and a value each with a u32 length,
//! and a CRC-32 of all of it — and last an `E` frame whose value holds the
//! record count and the SHA-256 of every byte before it. A damaged frame
//! is found at its byte offset; a file cut short has no `E` frame.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{keys, Store, StoreError};

pub const MAGIC: &[u8] = b"CERD-BACKUP 1\n";

/// Longest key or value read from a backup (an envelope is far smaller).
const MAX_FIELD: u32 = 64 * 1024 * 1024;

/// What the backup says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub node: String,
    pub fingerprint: String,
    pub created: cer_proto::model::Timestamp,
    pub store_format: u64,
    pub includes_secret_key: bool,
}

/// What a backup holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub envelopes: u64,
    pub authors: u64,
    pub records: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Why a backup could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the backup is damaged at byte {offset} (frame {frame}): {reason}")]
    Damaged {
        offset: u64,
        frame: u64,
        reason: String,
    },
    #[error("reading the backup: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Serialize, Deserialize)]
struct End {
    records: u64,
    files: u64,
    sha256: String,
}

/// Frames written to `out`, with the running hash and counts.
struct Frames<'a> {
    out: &'a mut dyn Write,
    hash: Sha256,
    summary: Summary,
}

impl Frames<'_> {
    fn frame(&mut self, tag: u8, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        let mut head = Vec::with_capacity(9);
        head.push(tag);
        head.extend_from_slice(&(key.len() as u32).to_be_bytes());
        let value_len = (value.len() as u32).to_be_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.update(key);
        crc.update(&value_len);
        crc.update(value);
        let crc = crc.finalize().to_be_bytes();
        for part in [&head[..], key, &value_len, value, &crc] {
            self.out.write_all(part)?;
            self.hash.update(part);
        }
        self.summary.bytes += (head.len() + key.len() + 4 + value.len() + 4) as u64;
        Ok(())
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> std::io::Result<()> {
        self.summary.records += 1;
        self.frame(b'R', key, value)
    }
}

/// Writes a backup of `store` to `out`: `header`, then `files` (name,
/// bytes: certificates, and the secret key when asked for), then the
/// records. Reads only; runs beside the writer.
pub fn write(
    store: &Store,
    header: &Header,
    files: &[(String, Vec<u8>)],
    out: &mut dyn Write,
) -> Result<Summary, StoreError> {
    let io = |e: std::io::Error| super::corrupt("backup output", &e.to_string());
    let db = &store.shared.db;
    out.write_all(MAGIC).map_err(io)?;
    let mut frames = Frames {
        out,
        hash: Sha256::new(),
        summary: Summary::default(),
    };
    frames.hash.update(MAGIC);
    let json = serde_json::to_vec(header).map_err(super::json_err)?;
    frames.frame(b'H', b"header", &json).map_err(io)?;
    for (name, bytes) in files {
        frames.summary.files += 1;
        frames.frame(b'F', name.as_bytes(), bytes).map_err(io)?;
    }
    // The cut: every author's tip, then the newest event. An envelope's
    // chain entry and its event are written in one batch, so every
    // envelope up to the tips has its event at or before that one.
    let mut tips = std::collections::HashMap::new();
    for item in db.scan_prefix([keys::TIP]) {
        let (tip_key, tip) = item?;
        let author = keys::fingerprint_from(&tip_key[1..])?;
        tips.insert(author, keys::decode_tip(&tip)?.0);
    }
    let last_event = match db.scan_prefix([keys::EVENT]).keys().next_back() {
        Some(k) => keys::u64_from(&k?[1..], "event key")?,
        None => 0,
    };
    for (author, top) in &tips {
        frames.summary.authors += 1;
        for seq in 1..=*top {
            let chain_key = keys::chain(author, seq);
            let id = db
                .get(&chain_key)?
                .ok_or_else(|| super::corrupt("chain", "a seq below the tip is missing"))?;
            let envelope_id = keys::id_from(&id)?;
            let record = db
                .get(keys::envelope(&envelope_id))?
                .ok_or_else(|| super::corrupt("chain", "names an envelope not held"))?;
            frames.record(&chain_key, &id).map_err(io)?;
            let key = keys::envelope(&envelope_id);
            frames.record(&key, &record).map_err(io)?;
            if let Some(plain) = db.get(keys::decrypted(&envelope_id))? {
                frames
                    .record(&keys::decrypted(&envelope_id), &plain)
                    .map_err(io)?;
            }
            frames.summary.envelopes += 1;
        }
    }
    // The event log up to the cut, without the events of envelopes past
    // it (stored between reading the tips and the newest event).
    for item in db.range(keys::event(1)..=keys::event(last_event)) {
        let (k, v) = item?;
        let record: super::EventRecord = super::decode_json(&v, "event")?;
        if let super::Change::Stored { author, seq, .. } = &record.change {
            if tips.get(author).is_none_or(|top| seq > top) {
                continue;
            }
        }
        frames.record(&k, &v).map_err(io)?;
    }
    for prefix in [
        keys::EQUIVOCATION,
        keys::REQUEST,
        keys::RUN,
        keys::RUN_BY_TIME,
        keys::ANNOTATION,
        keys::PLAYBOOK,
    ] {
        for item in db.scan_prefix([prefix]) {
            let (k, v) = item?;
            frames.record(&k, &v).map_err(io)?;
        }
    }
    for item in db.scan_prefix(keys::meta("cursor:")) {
        let (k, v) = item?;
        frames.record(&k, &v).map_err(io)?;
    }
    let end = End {
        records: frames.summary.records,
        files: frames.summary.files,
        sha256: hex::encode(frames.hash.clone().finalize()),
    };
    let json = serde_json::to_vec(&end).map_err(super::json_err)?;
    frames.frame(b'E', b"end", &json).map_err(io)?;
    frames.out.flush().map_err(io)?;
    Ok(frames.summary)
}

/// A backup read into a scratch database.
pub struct Loaded {
    pub header: Header,
    pub files: Vec<(String, Vec<u8>)>,
    pub db: sled::Db,
    pub records: u64,
}

/// Reads a backup into a new database at `scratch`, checking every frame
/// and the whole file's hash; the first damage found is reported with its
/// place, and nothing read is trusted beyond that.
pub fn load(input: &mut dyn Read, scratch: &std::path::Path) -> Result<Loaded, ReadError> {
    let mut reader = Counted {
        inner: input,
        offset: 0,
        hash: Sha256::new(),
    };
    let mut magic = vec![0; MAGIC.len()];
    let damaged = |offset: u64, frame: u64, reason: &str| ReadError::Damaged {
        offset,
        frame,
        reason: reason.to_owned(),
    };
    if reader.read_exact(&mut magic).is_err() || magic != MAGIC {
        return Err(damaged(0, 0, "it does not start as a cerd backup does"));
    }
    let db = sled::Config::new()
        .path(scratch)
        .temporary(false)
        .open()
        .map_err(StoreError::from)?;
    let mut header = None;
    let mut files = Vec::new();
    let mut records = 0u64;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for frame in 1u64.. {
        let at = reader.offset;
        let before = reader.hash.clone();
        let (tag, key, value) = match read_frame(&mut reader) {
            Ok(Some(f)) => f,
            Ok(None) => {
                return Err(damaged(
                    at,
                    frame,
                    "cut short: it ends before its end frame",
                ))
            }
            Err(reason) => return Err(damaged(at, frame, &reason)),
        };
        match tag {
            b'H' if frame == 1 => {
                header = Some(
                    serde_json::from_slice::<Header>(&value)
                        .map_err(|e| damaged(at, frame, &format!("header: {e}")))?,
                );
            }
            b'F' => files.push((
                String::from_utf8(key)
                    .map_err(|_| damaged(at, frame, "a file name is not UTF-8"))?,
                value,
            )),
            b'R' => {
                records += 1;
                batch.insert(key, value);
                in_batch += 1;
                if in_batch == 10_000 {
                    db.apply_batch(std::mem::take(&mut batch))
                        .map_err(StoreError::from)?;
                    in_batch = 0;
                }
            }
            b'E' => {
                let end: End = serde_json::from_slice(&value)
                    .map_err(|e| damaged(at, frame, &format!("end: {e}")))?;
                if end.sha256 != hex::encode(before.finalize()) {
                    return Err(damaged(
                        at,
                        frame,
                        "the file's hash does not match its contents",
                    ));
                }
                if end.records != records || end.files != files.len() as u64 {
                    return Err(damaged(at, frame, "fewer records than it says it holds"));
                }
                let mut rest = [0u8; 1];
                if reader.read(&mut rest)? != 0 {
                    return Err(damaged(
                        reader.offset - 1,
                        frame + 1,
                        "bytes after the end frame",
                    ));
                }
                db.apply_batch(batch).map_err(StoreError::from)?;
                db.flush().map_err(StoreError::from)?;
                let header = header.ok_or_else(|| damaged(0, 1, "no header frame"))?;
                return Ok(Loaded {
                    header,
                    files,
                    db,
                    records,
                });
            }
            _ => return Err(damaged(at, frame, "unknown frame")),
        }
    }
    unreachable!("frames are read until the end frame or an error")
}

/// A frame's tag, key and value.
type Frame = (u8, Vec<u8>, Vec<u8>);

/// One frame, or None at a clean end of input; Err names the damage.
fn read_frame(reader: &mut Counted<'_>) -> Result<Option<Frame>, String> {
    let mut tag = [0u8; 1];
    match reader.read(&mut tag) {
        Ok(0) => return Ok(None),
        Ok(_) => {}
        Err(e) => return Err(e.to_string()),
    }
    let cut = |_| "cut short inside a frame".to_owned();
    let mut len = [0u8; 4];
    reader.read_exact(&mut len).map_err(cut)?;
    let key_len = u32::from_be_bytes(len);
    if key_len > MAX_FIELD {
        return Err(format!("a key of {key_len} bytes"));
    }
    let mut key = vec![0; key_len as usize];
    reader.read_exact(&mut key).map_err(cut)?;
    let mut value_len = [0u8; 4];
    reader.read_exact(&mut value_len).map_err(cut)?;
    let length = u32::from_be_bytes(value_len);
    if length > MAX_FIELD {
        return Err(format!("a value of {length} bytes"));
    }
    let mut value = vec![0; length as usize];
    reader.read_exact(&mut value).map_err(cut)?;
    let mut crc = [0u8; 4];
    reader.read_exact(&mut crc).map_err(cut)?;
    let mut check = crc32fast::Hasher::new();
    check.update(&tag);
    check.update(&len);
    check.update(&key);
    check.update(&value_len);
    check.update(&value);
    if check.finalize().to_be_bytes() != crc {
        return Err("its checksum does not match".into());
    }
    Ok(Some((tag[0], key, value)))
}

/// A reader that counts and hashes what passes.
struct Counted<'a> {
    inner: &'a mut dyn Read,
    offset: u64,
    hash: Sha256,
}

impl Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.offset += n as u64;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}
