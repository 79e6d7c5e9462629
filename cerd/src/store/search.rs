//! Range reads over the ordered index families (`index`): addresses and networks
//! inside a network, networks containing an address or a network, names
//! below a domain. Each is one sled range scan, or one short prefix scan
//! per prefix length, and stops after `limit` hits. Like every read, call
//! them from blocking threads.

use std::collections::HashMap;

use cer_proto::incident::IndicatorEntry;
use ipnet::IpNet;
use uuid::Uuid;

use super::{corrupt, index, keys, Store, StoreError};

/// Indicators a range read found, each with its incident, and whether
/// more matched than the limit allowed.
#[derive(Debug, Default)]
pub struct RangeHits {
    pub hits: Vec<(Uuid, IndicatorEntry)>,
    pub truncated: bool,
}

impl Store {
    /// Every ipv4/ipv6 indicator inside `net`, and every CIDR indicator
    /// that lies inside it (its network no larger than `net`, `net` itself
    /// included), in address order; at most `limit`.
    pub fn inside(&self, net: IpNet, limit: usize) -> Result<RangeHits, StoreError> {
        let net = net.trunc();
        let (start, end) = index::range_bounds(net);
        let mut found = Found::new(limit);
        for item in self.shared.db.range(start..=end) {
            let (k, v) = item?;
            let (_, tag, id) = index::decode_address(&k)?;
            // A larger network with the same first address contains `net`
            // rather than lying in it: `containing` finds those.
            if tag != index::PLAIN && tag < net.prefix_len() {
                continue;
            }
            if !found.push(id, &v)? {
                break;
            }
        }
        found.read(self)
    }

    /// Every CIDR indicator that contains `net` (an address is a network of
    /// its full length), the most specific first; with `or_equal`, `net`
    /// itself too. One prefix scan per shorter prefix length: 33 for an
    /// IPv4 address, 129 for IPv6.
    pub fn containing(
        &self,
        net: IpNet,
        or_equal: bool,
        limit: usize,
    ) -> Result<RangeHits, StoreError> {
        let longest = if or_equal {
            net.prefix_len()
        } else if net.prefix_len() == 0 {
            return Ok(RangeHits::default());
        } else {
            net.prefix_len() - 1
        };
        let mut found = Found::new(limit);
        'lengths: for len in (0..=longest).rev() {
            let Ok(wider) = IpNet::new(net.addr(), len) else {
                continue;
            };
            for item in self
                .shared
                .db
                .scan_prefix(index::network_prefix(wider.trunc()))
            {
                let (k, v) = item?;
                let (_, _, id) = index::decode_address(&k)?;
                if !found.push(id, &v)? {
                    break 'lengths;
                }
            }
        }
        found.read(self)
    }

    /// Every domain strictly below `domain` (a normalized name:
    /// `example.com` finds `www.example.com` and `a.b.example.com`, never
    /// `example.com` itself nor `badexample.com`), in the order of their
    /// reversed labels; at most `limit`.
    pub fn below(&self, domain: &str, limit: usize) -> Result<RangeHits, StoreError> {
        let mut found = Found::new(limit);
        for item in self.shared.db.scan_prefix(index::below_prefix(domain)) {
            let (k, v) = item?;
            if !found.push(index::incident_of(&k)?, &v)? {
                break;
            }
        }
        found.read(self)
    }
}

/// The positions an index scan found, up to a limit, read afterwards in
/// key order (incident, chunk) so that each chunk record is read once and
/// neighbouring records one after another, then given back in the order
/// they were found.
struct Found {
    limit: usize,
    positions: Vec<(Uuid, u32)>,
    truncated: bool,
}

impl Found {
    fn new(limit: usize) -> Found {
        Found {
            limit,
            positions: Vec::new(),
            truncated: false,
        }
    }

    /// Adds a hit; false once the limit is reached (the scan stops).
    fn push(&mut self, id: Uuid, position: &[u8]) -> Result<bool, StoreError> {
        if self.positions.len() == self.limit {
            self.truncated = true;
            return Ok(false);
        }
        self.positions
            .push((id, keys::u32_from(position, "index position")?));
        Ok(true)
    }

    fn read(self, store: &Store) -> Result<RangeHits, StoreError> {
        let mut order: Vec<usize> = (0..self.positions.len()).collect();
        order.sort_unstable_by_key(|i| self.positions[*i]);
        let mut entries = Entries::new(store);
        let mut read: Vec<Option<IndicatorEntry>> = vec![None; self.positions.len()];
        for i in order {
            let (id, pos) = self.positions[i];
            read[i] = Some(entries.at(id, pos)?);
        }
        Ok(RangeHits {
            hits: self
                .positions
                .iter()
                .zip(read)
                .filter_map(|((id, _), entry)| Some((*id, entry?)))
                .collect(),
            truncated: self.truncated,
        })
    }
}

/// Reads index entries, each chunk record once per query.
struct Entries<'a> {
    store: &'a Store,
    chunks: HashMap<(Uuid, u32), sled::IVec>,
}

impl<'a> Entries<'a> {
    fn new(store: &'a Store) -> Entries<'a> {
        Entries {
            store,
            chunks: HashMap::new(),
        }
    }

    /// The entry at a position an index key's value names.
    fn at(&mut self, id: Uuid, pos: u32) -> Result<IndicatorEntry, StoreError> {
        let pos = pos as usize;
        let n = (pos / keys::CHUNK) as u32;
        let chunk = match self.chunks.get(&(id, n)) {
            Some(chunk) => chunk,
            None => {
                let chunk = self
                    .store
                    .shared
                    .db
                    .get(keys::chunk(id, n))?
                    .ok_or_else(|| corrupt("range index", "names a missing chunk"))?;
                self.chunks.entry((id, n)).or_insert(chunk)
            }
        };
        keys::chunk_entry(chunk, pos % keys::CHUNK)
    }
}
