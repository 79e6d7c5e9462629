//! The ordered indexes derived from the indicator index, so that a range
//! of addresses or a wildcard domain is one sled range scan, never a scan
//! of every indicator:
//!
//! - `y` ‖ family (`4` or `6`) ‖ address (4 or 16 bytes, big-endian) ‖
//!   tag ‖ uuid: ipv4 and ipv6 indicators (tag [`PLAIN`]) and CIDR
//!   indicators by their network address (tag: the prefix length), so the
//!   keys of everything inside a network lie between its first and its
//!   last address;
//! - `z` ‖ the host's labels reversed (`com.example.www`) ‖ `\0` ‖ uuid ‖
//!   type [‖ `:` value]: domains, the host of a URL and the domain of an
//!   email address (these two with their value, as an incident may name
//!   several with one host), so every name below `example.com` starts
//!   with `com.example.`.
//!
//! Each key's value is the entry's position in its incident, as the `x`
//! key's is. They are written and removed together with the `x` keys (see
//! `table`), so what holds for one holds for the other; `cerd repair`
//! rebuilds them with the rest, `cerd check --store` compares them with the
//! indicators, and a store of the previous format gets them built from
//! its `x` keys when it is opened ([`build_from_index`]).

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

/// The derived key of an indicator, if its type has one.
pub fn key(kind: IndicatorType, value: &str, id: Uuid) -> Option<Vec<u8>> {
    match kind {
        IndicatorType::Ipv4 | IndicatorType::Ipv6 => value
            .parse::<IpAddr>()
            .ok()
            .map(|addr| address_key(addr, PLAIN, id)),
        IndicatorType::Cidr => value
            .parse::<IpNet>()
            .ok()
            .map(|net| address_key(net.network(), net.prefix_len(), id)),
        IndicatorType::Domain => Some(name_key(value, id, kind, None)),
        IndicatorType::Url => url_host(value).map(|host| name_key(&host, id, kind, Some(value))),
        IndicatorType::Email => value
            .rsplit_once('@')
            .map(|(_, domain)| name_key(domain, id, kind, Some(value))),
        _ => None,
    }
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

/// The incident a name key belongs to.
pub fn decode_name(key: &[u8]) -> Result<Uuid, StoreError> {
    let zero = key
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| super::corrupt("name index key", "no end of the name"))?;
    keys::uuid_at(key, zero + 1)
}

/// Builds the derived indexes from the `x` keys of a store written before
/// they existed, in batches of bounded size, and then sets the store's
/// format to the current one (a crash half-way leaves the old format,
/// and the next open builds again: the keys written are the same).
/// Returns how many keys were written. Runs on the writer's thread before
/// it takes any command.
pub(super) fn build_from_index(db: &sled::Db) -> Result<u64, StoreError> {
    const BATCH: usize = 10_000;
    let mut written = 0u64;
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    for item in db.scan_prefix([keys::INDEX]) {
        let (k, v) = item?;
        let Some((kind, value, id)) = parse_index_key(&k) else {
            // `cerd check --store` reports it; nothing to derive.
            continue;
        };
        if let Some(derived) = key(kind, value, id) {
            batch.insert(derived, v);
            in_batch += 1;
            written += 1;
        }
        if in_batch == BATCH {
            db.apply_batch(std::mem::take(&mut batch))?;
            in_batch = 0;
        }
    }
    batch.insert(
        keys::meta("format"),
        &super::FORMAT_VERSION.to_be_bytes()[..],
    );
    db.apply_batch(batch)?;
    db.flush()?;
    Ok(written)
}

/// An `x` key's type, value and incident.
pub fn parse_index_key(key: &[u8]) -> Option<(IndicatorType, &str, Uuid)> {
    let zero = key.iter().position(|b| *b == 0)?;
    let spec = std::str::from_utf8(key.get(1..zero)?).ok()?;
    let (kind, value) = spec.split_once(':')?;
    let id = keys::uuid_at(key, zero + 1).ok()?;
    (key.len() == zero + 17).then_some(())?;
    Some((kind.parse().ok()?, value, id))
}

fn address_key(addr: IpAddr, tag: u8, id: Uuid) -> Vec<u8> {
    let mut key = address_prefix(addr);
    key.push(tag);
    key.extend_from_slice(id.as_bytes());
    key
}

fn name_key(host: &str, id: Uuid, kind: IndicatorType, value: Option<&str>) -> Vec<u8> {
    let mut key = vec![NAME];
    key.extend_from_slice(reversed(host).as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key.extend_from_slice(kind.as_str().as_bytes());
    if let Some(value) = value {
        key.push(b':');
        key.extend_from_slice(value.as_bytes());
    }
    key
}

/// `www.example.com` → `com.example.www`.
fn reversed(host: &str) -> String {
    host.rsplit('.').collect::<Vec<_>>().join(".")
}

/// A URL's host when it is a name (not an address literal).
fn url_host(value: &str) -> Option<String> {
    match url::Url::parse(value).ok()?.host()? {
        url::Host::Domain(host) if !host.is_empty() => Some(host.to_ascii_lowercase()),
        _ => None,
    }
}

/// The index a derived key belongs to, for messages.
pub fn index_name(key: &[u8]) -> &'static str {
    match key.first() {
        Some(&ADDRESS) => "address index",
        _ => "name index",
    }
}

/// A derived key's address, network or host, for messages.
pub fn describe(key: &[u8]) -> String {
    match key.first() {
        Some(&ADDRESS) => match decode_address(key) {
            Ok((addr, PLAIN, _)) => addr.to_string(),
            Ok((addr, tag, _)) => format!("{addr}/{tag}"),
            Err(_) => "(malformed key)".into(),
        },
        _ => {
            let name = key.get(1..).unwrap_or_default();
            let end = name.iter().position(|b| *b == 0).unwrap_or(name.len());
            reversed(&String::from_utf8_lossy(&name[..end]))
        }
    }
}
