//! The indicator index: one key per (indicator, incident), whose value is
//! the entry's position in the incident's chunks. Its family follows the
//! type, so that a range of addresses or a wildcard domain is one sled
//! range scan, never a scan of every indicator:
//!
//! - `y` ‖ family (`4` or `6`) ‖ address (4 or 16 bytes, big-endian) ‖
//!   tag ‖ uuid: ipv4 and ipv6 indicators (tag [`PLAIN`]) and CIDR
//!   indicators by their network address (tag: the prefix length), so the
//!   keys of everything inside a network lie between its first and its
//!   last address;
//! - `z` ‖ the domain's labels reversed (`com.example.www`) ‖ `\0` ‖ uuid:
//!   domains, so every name below `example.com` starts with `com.example.`;
//! - `x` ‖ type ‖ `:` ‖ value ‖ `\0` ‖ uuid: every other type.
//!
//! Each family also answers exact lookups (a key's prefix before the uuid
//! names one indicator), so an indicator costs one index key whatever its
//! type: a second key per indicator halved the bulk insert rate. URL hosts
//! and email domains are therefore not indexed by name.
//!
//! Keys are made only by [`key`] and written only by `table`; `cerd
//! repair` rebuilds them with the rest, `cerd check --store` compares them
//! with the indicators both ways, and a store of format 2 (every key in
//! `x`) has its addresses, networks and domains moved to `y` and `z` when
//! it is opened ([`upgrade`]).

use std::net::IpAddr;

use cer_proto::model::IndicatorType;
use ipnet::IpNet;
use uuid::Uuid;

use super::{keys, StoreError};

pub const ADDRESS: u8 = b'y';
pub const NAME: u8 = b'z';

/// The tag of a plain address; a network's tag is its prefix length
/// (0..=128), so the two never share a key.
pub const PLAIN: u8 = 0xFF;

/// The three families, for scans over the whole index.
pub const FAMILIES: [u8; 3] = [keys::INDEX, ADDRESS, NAME];

/// The index key of an indicator in an incident.
pub fn key(kind: IndicatorType, value: &str, id: Uuid) -> Vec<u8> {
    let mut key = prefix(kind, value);
    key.extend_from_slice(id.as_bytes());
    key
}

/// Where the keys of one indicator begin: every incident naming it.
pub fn prefix(kind: IndicatorType, value: &str) -> Vec<u8> {
    ordered_prefix(kind, value).unwrap_or_else(|| exact_prefix(kind, value))
}

/// `y` ‖ family ‖ address: where the keys of an address begin.
pub fn address_prefix(addr: IpAddr) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + 1 + 16 + 1 + 16);
    key.push(ADDRESS);
    match addr {
        IpAddr::V4(a) => {
            key.push(4);
            key.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            key.push(6);
            key.extend_from_slice(&a.octets());
        }
    }
    key
}

/// The keys of one network (address and tag) in every incident.
pub fn network_prefix(net: IpNet) -> Vec<u8> {
    let mut key = address_prefix(net.network());
    key.push(net.prefix_len());
    key
}

/// The first and last possible keys of everything whose address lies in
/// `net` (its own network address to its last address, every tag).
pub fn range_bounds(net: IpNet) -> (Vec<u8>, Vec<u8>) {
    let start = address_prefix(net.network());
    let mut end = address_prefix(net.broadcast());
    end.push(PLAIN);
    end.extend_from_slice(&[0xFF; 16]);
    (start, end)
}

/// An address key read back: the address, its tag and the incident.
pub fn decode_address(key: &[u8]) -> Result<(IpAddr, u8, Uuid), StoreError> {
    let bad = || super::corrupt("address index key", "malformed");
    let (addr, rest) = match key.get(1) {
        Some(4) => {
            let octets: [u8; 4] = key
                .get(2..6)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            (IpAddr::from(octets), &key[6..])
        }
        Some(6) => {
            let octets: [u8; 16] = key
                .get(2..18)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(bad)?;
            (IpAddr::from(octets), &key[18..])
        }
        _ => return Err(bad()),
    };
    if rest.len() != 17 {
        return Err(bad());
    }
    Ok((addr, rest[0], keys::uuid_at(rest, 1)?))
}

/// `z` ‖ reversed labels ‖ `.`: the keys of every name strictly below
/// `domain` (not `domain` itself, whose reversed labels end in `\0`).
pub fn below_prefix(domain: &str) -> Vec<u8> {
    let mut key = vec![NAME];
    key.extend_from_slice(reversed(domain).as_bytes());
    key.push(b'.');
    key
}

/// The incident an index key of any family belongs to: its last 16 bytes.
pub fn incident_of(key: &[u8]) -> Result<Uuid, StoreError> {
    key.len()
        .checked_sub(16)
        .filter(|at| *at > 1)
        .ok_or_else(|| super::corrupt("index key", "too short"))
        .and_then(|at| keys::uuid_at(key, at))
}

/// An index key's indicator as `type:value`, for messages (a network
/// shows as a CIDR, a plain address as ipv4 or ipv6).
pub fn describe(key: &[u8]) -> String {
    let body = &key[..key.len().saturating_sub(16)];
    match key.first() {
        Some(&ADDRESS) => match decode_address(key) {
            Ok((addr, PLAIN, _)) if addr.is_ipv4() => format!("ipv4:{addr}"),
            Ok((addr, PLAIN, _)) => format!("ipv6:{addr}"),
            Ok((addr, tag, _)) => format!("cidr:{addr}/{tag}"),
            Err(_) => "(a malformed address key)".into(),
        },
        Some(&NAME) => {
            let name = body
                .get(1..body.len().saturating_sub(1))
                .unwrap_or_default();
            format!("domain:{}", reversed(&String::from_utf8_lossy(name)))
        }
        _ => {
            let spec = body
                .get(1..body.len().saturating_sub(1))
                .unwrap_or_default();
            String::from_utf8_lossy(spec).into_owned()
        }
    }
}

/// Moves the addresses, networks and domains of a store of format 2 from
/// `x` to their ordered families, in batches of bounded size. Each batch
/// moves whole keys (a new key and the removal of the old one), so a crash
/// half-way leaves a store of format 2 that the next open finishes.
/// Returns how many keys moved. Runs on the writer's thread before it
/// takes any command (`writer::upgrade`, which then sets the format).
pub(super) fn upgrade(db: &sled::Db) -> Result<u64, StoreError> {
    const BATCH: usize = 10_000;
    let mut moved = 0u64;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for item in db.scan_prefix([keys::INDEX]) {
        let (k, v) = item?;
        let Some((kind, value, id)) = parse_exact(&k) else {
            // `cerd check --store` reports it.
            continue;
        };
        let Some(mut ordered) = ordered_prefix(kind, value) else {
            continue;
        };
        ordered.extend_from_slice(id.as_bytes());
        batch.insert(ordered, v);
        batch.remove(k);
        in_batch += 1;
        moved += 1;
        if in_batch == BATCH {
            db.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    db.apply_batch(batch)?;
    Ok(moved)
}

/// The ordered family's prefix of an indicator, for the types it holds.
fn ordered_prefix(kind: IndicatorType, value: &str) -> Option<Vec<u8>> {
    match kind {
        IndicatorType::Ipv4 | IndicatorType::Ipv6 => {
            let mut key = address_prefix(value.parse().ok()?);
            key.push(PLAIN);
            Some(key)
        }
        IndicatorType::Cidr => Some(network_prefix(value.parse().ok()?)),
        IndicatorType::Domain => {
            let mut key = vec![NAME];
            key.extend_from_slice(reversed(value).as_bytes());
            key.push(0);
            Some(key)
        }
        _ => None,
    }
}

/// `x` ‖ type ‖ `:` ‖ value ‖ `\0`.
fn exact_prefix(kind: IndicatorType, value: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(value.len() + 24);
    key.push(keys::INDEX);
    key.extend_from_slice(kind.as_str().as_bytes());
    key.push(b':');
    key.extend_from_slice(value.as_bytes());
    key.push(0);
    key
}

/// An `x` key's type, value and incident.
fn parse_exact(key: &[u8]) -> Option<(IndicatorType, &str, Uuid)> {
    let zero = key.iter().position(|b| *b == 0)?;
    let spec = std::str::from_utf8(key.get(1..zero)?).ok()?;
    let (kind, value) = spec.split_once(':')?;
    (key.len() == zero + 17).then_some(())?;
    let id = keys::uuid_at(key, zero + 1).ok()?;
    Some((kind.parse().ok()?, value, id))
}

/// `www.example.com` → `com.example.www`.
fn reversed(host: &str) -> String {
    host.rsplit('.').collect::<Vec<_>>().join(".")
}
