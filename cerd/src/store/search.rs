//! Range reads over the ordered indexes (`derived`): addresses and networks
//! inside a network, networks containing an address or a network, names
//! below a domain. Each is one sled range scan, or one short prefix scan
//! per prefix length, and stops after `limit` hits. Like every read, call
//! them from blocking threads.

use std::collections::HashMap;

use cer_proto::incident::IndicatorEntry;
use ipnet::IpNet;
use uuid::Uuid;

use super::{corrupt, derived, keys, Store, StoreError};

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
        let (start, end) = derived::range_bounds(net);
        let mut entries = Entries::new(self);
        let mut out = RangeHits::default();
        for item in self.shared.db.range(start..=end) {
            let (k, v) = item?;
            let (_, tag, id) = derived::decode_address(&k)?;
            // A larger network with the same first address contains `net`
            // rather than lying in it: `containing` finds those.
            if tag != derived::PLAIN && tag < net.prefix_len() {
                continue;
            }
            if out.hits.len() == limit {
                out.truncated = true;
                break;
            }
            out.hits.push((id, entries.at(id, &v)?));
        }
        Ok(out)
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
        let mut entries = Entries::new(self);
        let mut out = RangeHits::default();
        for len in (0..=longest).rev() {
            let Ok(wider) = IpNet::new(net.addr(), len) else {
                continue;
            };
            for item in self
                .shared
                .db
                .scan_prefix(derived::network_prefix(wider.trunc()))
            {
                let (k, v) = item?;
                let (_, _, id) = derived::decode_address(&k)?;
                if out.hits.len() == limit {
                    out.truncated = true;
                    return Ok(out);
                }
                out.hits.push((id, entries.at(id, &v)?));
            }
        }
        Ok(out)
    }

    /// Every domain, URL and email address whose host lies strictly below
    /// `domain` (a normalized name: `example.com` finds `www.example.com`
    /// and `a.b.example.com`, never `example.com` itself nor
    /// `badexample.com`), in the order of their reversed labels; at most
    /// `limit`.
    pub fn below(&self, domain: &str, limit: usize) -> Result<RangeHits, StoreError> {
        let mut entries = Entries::new(self);
        let mut out = RangeHits::default();
        for item in self.shared.db.scan_prefix(derived::below_prefix(domain)) {
            let (k, v) = item?;
            let id = derived::decode_name(&k)?;
            if out.hits.len() == limit {
                out.truncated = true;
                break;
            }
            out.hits.push((id, entries.at(id, &v)?));
        }
        Ok(out)
    }
}

/// Reads index entries, each chunk record once per query: a range of
/// addresses often lands in a few chunks of a few incidents.
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

    /// The entry at the position an index key's value names.
    fn at(&mut self, id: Uuid, position: &[u8]) -> Result<IndicatorEntry, StoreError> {
        let pos = keys::u32_from(position, "index position")? as usize;
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
