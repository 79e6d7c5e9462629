//! One incident's indicators while the writer works on a batch: the entries
//! it touched, read from and written back to their chunks, and the index
//! keys that change. Applying an envelope touches only the indicators it
//! names; a whole refold replaces the table at once. Index keys (`index`)
//! are written here only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cer_proto::incident::{IndicatorEntry, IndicatorTable};
use cer_proto::model::IndicatorType;
use uuid::Uuid;

use super::{index, keys, StoreError};

pub(super) struct Table {
    subject: Uuid,
    db: sled::Db,
    /// Entries the incident names now, and had when the batch began.
    count: usize,
    stored: usize,
    /// Chunks read or written in this batch, and the ones to write back.
    chunks: BTreeMap<u32, Vec<IndicatorEntry>>,
    dirty: BTreeSet<u32>,
    /// Known positions, from the index or made in this batch.
    positions: HashMap<(IndicatorType, String), usize>,
    /// Index keys to write (Some: the position) or remove (None).
    index: BTreeMap<(IndicatorType, String), Option<u32>>,
    /// After a whole refold, the stored chunks and index are stale.
    replaced: bool,
    /// The first read error, reported when the batch commits.
    error: Option<StoreError>,
    /// Stands in for an entry that could not be read.
    scratch: Option<IndicatorEntry>,
}

impl Table {
    pub fn open(db: &sled::Db, subject: Uuid, stored: usize) -> Table {
        Table {
            subject,
            db: db.clone(),
            count: stored,
            stored,
            chunks: BTreeMap::new(),
            dirty: BTreeSet::new(),
            positions: HashMap::new(),
            index: BTreeMap::new(),
            replaced: false,
            error: None,
            scratch: None,
        }
    }

    pub fn len(&self) -> usize {
        self.count
    }

    /// Every entry, in position order.
    pub fn entries(&mut self) -> Result<Vec<IndicatorEntry>, StoreError> {
        let chunks = self.count.div_ceil(keys::CHUNK) as u32;
        let mut out = Vec::with_capacity(self.count);
        for chunk in 0..chunks {
            out.extend(self.chunk(chunk)?.iter().cloned());
        }
        out.truncate(self.count);
        Ok(out)
    }

    /// Replaces every entry with `entries` (the result of a whole fold).
    pub fn replace(&mut self, entries: Vec<IndicatorEntry>) -> Result<(), StoreError> {
        let old = self.entries()?;
        let keep: std::collections::HashSet<(IndicatorType, &str)> =
            entries.iter().map(|e| (e.kind, e.value.as_str())).collect();
        for entry in &old {
            if !keep.contains(&(entry.kind, entry.value.as_str())) {
                self.index.insert((entry.kind, entry.value.clone()), None);
            }
        }
        self.positions.clear();
        for (pos, entry) in entries.iter().enumerate() {
            let key = (entry.kind, entry.value.clone());
            self.index.insert(key.clone(), Some(pos as u32));
            self.positions.insert(key, pos);
        }
        self.count = entries.len();
        self.chunks.clear();
        self.dirty.clear();
        for (n, chunk) in entries.chunks(keys::CHUNK).enumerate() {
            self.chunks.insert(n as u32, chunk.to_vec());
            self.dirty.insert(n as u32);
        }
        self.replaced = true;
        Ok(())
    }

    /// Adds this table's writes to the batch. Returns the change in the
    /// number of (incident, indicator) pairs.
    pub fn commit(
        mut self,
        write: &mut dyn FnMut(Vec<u8>, Option<Vec<u8>>),
    ) -> Result<i64, StoreError> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for ((kind, value), pos) in &self.index {
            let position = pos.map(|p| p.to_be_bytes().to_vec());
            write(index::key(*kind, value, self.subject), position);
        }
        for n in &self.dirty {
            let entries = &self.chunks[n];
            write(
                keys::chunk(self.subject, *n),
                Some(keys::encode_chunk(entries)),
            );
        }
        let now = self.count.div_ceil(keys::CHUNK);
        let before = self.stored.div_ceil(keys::CHUNK);
        for n in now..before {
            write(keys::chunk(self.subject, n as u32), None);
        }
        Ok(self.count as i64 - self.stored as i64)
    }

    fn chunk(&mut self, n: u32) -> Result<&mut Vec<IndicatorEntry>, StoreError> {
        if !self.chunks.contains_key(&n) {
            let stored = if self.replaced || n as usize * keys::CHUNK >= self.stored {
                Vec::new()
            } else {
                match self.db.get(keys::chunk(self.subject, n))? {
                    Some(v) => keys::decode_chunk(&v)?,
                    None => return Err(super::corrupt("indicator chunk", "missing")),
                }
            };
            self.chunks.insert(n, stored);
        }
        Ok(self.chunks.get_mut(&n).expect("inserted above"))
    }

    fn position(&mut self, kind: IndicatorType, value: &str) -> Result<Option<usize>, StoreError> {
        if let Some(pos) = self.positions.get(&(kind, value.to_owned())) {
            return Ok(Some(*pos));
        }
        if self.replaced {
            return Ok(None);
        }
        match self.db.get(index::key(kind, value, self.subject))? {
            Some(v) => {
                let pos = keys::u32_from(&v, "index position")? as usize;
                self.positions.insert((kind, value.to_owned()), pos);
                Ok(Some(pos))
            }
            None => Ok(None),
        }
    }

    fn try_entry(
        &mut self,
        kind: IndicatorType,
        value: &str,
        new: &dyn Fn() -> IndicatorEntry,
    ) -> Result<&mut IndicatorEntry, StoreError> {
        let pos = match self.position(kind, value)? {
            Some(pos) => pos,
            None => {
                let pos = self.count;
                self.count += 1;
                self.positions.insert((kind, value.to_owned()), pos);
                self.index
                    .insert((kind, value.to_owned()), Some(pos as u32));
                let chunk = self.chunk((pos / keys::CHUNK) as u32)?;
                if chunk.len() != pos % keys::CHUNK {
                    return Err(super::corrupt(
                        "indicator chunk",
                        "its length does not match the incident's count",
                    ));
                }
                chunk.push(new());
                pos
            }
        };
        let n = (pos / keys::CHUNK) as u32;
        self.dirty.insert(n);
        self.chunk(n)?
            .get_mut(pos % keys::CHUNK)
            .ok_or_else(|| super::corrupt("indicator chunk", "shorter than the index says"))
    }
}

impl IndicatorTable for Table {
    fn entry(
        &mut self,
        kind: IndicatorType,
        value: &str,
        new: &dyn Fn() -> IndicatorEntry,
    ) -> &mut IndicatorEntry {
        // The fold cannot fail; a read error is kept and fails the batch
        // at commit, and the fold meanwhile writes into a scratch entry.
        match self.try_entry(kind, value, new) {
            Ok(_) => {
                let pos = self.positions[&(kind, value.to_owned())];
                self.chunks
                    .get_mut(&((pos / keys::CHUNK) as u32))
                    .and_then(|c| c.get_mut(pos % keys::CHUNK))
                    .expect("entry just read")
            }
            Err(e) => {
                self.error.get_or_insert(e);
                self.scratch.insert(new())
            }
        }
    }

    fn count(&self) -> usize {
        self.count
    }
}
