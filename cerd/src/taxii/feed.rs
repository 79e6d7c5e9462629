//! Plain blocklists for firewalls, resolvers and SIEMs: one value per
//! line, a CSV of hashes, and a DNS RPZ zone. Only active indicators
//! (not expired, not warninglisted) of readable, non-retracted incidents,
//! each within the client's TLP. Reads the store: call from blocking
//! threads.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cer_proto::model::{IndicatorType, Severity, Tlp};
use serde::Deserialize;
use sha2::Digest as _;

use super::collect;
use crate::node::{Node, NodeError};

/// The feeds, by file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feed {
    Ipv4,
    Ipv6,
    Domains,
    Urls,
    Hashes,
    Rpz,
}

/// `?min_severity=high&class=malicious-code/*`
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub min_severity: Option<Severity>,
    pub class: Option<String>,
}

impl Feed {
    pub fn from_file(name: &str) -> Option<Feed> {
        Some(match name {
            "ipv4.txt" => Feed::Ipv4,
            "ipv6.txt" => Feed::Ipv6,
            "domains.txt" => Feed::Domains,
            "urls.txt" => Feed::Urls,
            "hashes.csv" => Feed::Hashes,
            "rpz.zone" => Feed::Rpz,
            _ => return None,
        })
    }

    pub fn content_type(&self) -> &'static str {
        match self {
            Feed::Hashes => "text/csv; charset=utf-8",
            Feed::Rpz => "text/dns; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }

    fn takes(&self, kind: IndicatorType, value: &str) -> bool {
        use IndicatorType as T;
        match self {
            Feed::Ipv4 => kind == T::Ipv4 || kind == T::Cidr && value.contains('.'),
            Feed::Ipv6 => kind == T::Ipv6 || kind == T::Cidr && value.contains(':'),
            Feed::Domains | Feed::Rpz => kind == T::Domain,
            Feed::Urls => kind == T::Url,
            Feed::Hashes => matches!(kind, T::Md5 | T::Sha1 | T::Sha256 | T::Sha512),
        }
    }
}

/// A feed as built once: its body, ETag and value count, and its gzip
/// form made on first demand.
pub struct Built {
    pub body: Bytes,
    pub etag: String,
    pub count: usize,
    gzip: OnceLock<Bytes>,
    /// What it was built from: the store's last durable event, the
    /// warninglists in force, and when.
    event: u64,
    lists: Arc<crate::warninglist::Warninglists>,
    at: Instant,
}

impl Built {
    /// The body gzipped (fast level), made once.
    pub fn gzip(&self) -> std::io::Result<Bytes> {
        if let Some(done) = self.gzip.get() {
            return Ok(done.clone());
        }
        use std::io::Write as _;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&self.body)?;
        let compressed = Bytes::from(encoder.finish()?);
        Ok(self.gzip.get_or_init(|| compressed).clone())
    }
}

/// Feeds already built, per feed, TLP and filter. A firewall polling every
/// minute gets the same body (or its 304) without the store being read
/// again, as long as nothing new was stored, the warninglists did not
/// change and [`Cache::FRESH`] has not passed (indicators expire with
/// time).
#[derive(Default)]
pub struct Cache {
    built: Mutex<HashMap<(Feed, Tlp, Filter), Arc<Built>>>,
}

impl Cache {
    pub const FRESH: Duration = Duration::from_secs(60);
    /// Feeds kept at once; the oldest goes first.
    const ENTRIES: usize = 32;

    /// The feed, built now or reused. Reads the store: call from blocking
    /// threads.
    pub fn get(
        &self,
        node: &Node,
        feed: Feed,
        tlp: Tlp,
        filter: &Filter,
    ) -> Result<Arc<Built>, NodeError> {
        // Read before building: a write during the build makes the next
        // request build again, never serve something older as current.
        let event = *node.store().durable_events().borrow();
        let lists = node.warninglists();
        let key = (feed, tlp, filter.clone());
        let now = Instant::now();
        if let Some(built) = self.lock().get(&key) {
            if built.event == event
                && Arc::ptr_eq(&built.lists, &lists)
                && now.duration_since(built.at) < Self::FRESH
            {
                return Ok(built.clone());
            }
        }
        let (body, count) = build(node, feed, tlp, filter)?;
        let etag = format!("\"{}\"", hex::encode(sha2::Sha256::digest(&body)));
        let built = Arc::new(Built {
            body: Bytes::from(body),
            etag,
            count,
            gzip: OnceLock::new(),
            event,
            lists,
            at: now,
        });
        let mut cache = self.lock();
        if cache.len() >= Self::ENTRIES && !cache.contains_key(&key) {
            if let Some(oldest) = cache
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| k.clone())
            {
                cache.remove(&oldest);
            }
        }
        cache.insert(key, built.clone());
        Ok(built)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Feed, Tlp, Filter), Arc<Built>>> {
        self.built.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The feed's body for a client allowed up to `tlp`, and how many values
/// it holds.
pub fn build(
    node: &Node,
    feed: Feed,
    tlp: Tlp,
    filter: &Filter,
) -> Result<(Vec<u8>, usize), NodeError> {
    let expiry = node.expiry();
    let lists = node.warninglists();
    let mut values: BTreeSet<(IndicatorType, String)> = BTreeSet::new();
    let mut serial: i64 = 1;
    collect::each_incident(node, &mut |state| {
        let Some(content) = state.content.as_ref() else {
            return;
        };
        if state.retracted.is_some()
            || filter
                .min_severity
                .is_some_and(|min| content.severity < min)
            || filter
                .class
                .as_deref()
                .is_some_and(|p| !content.classification.matches(p))
        {
            return;
        }
        let before = values.len();
        for entry in &state.indicators {
            if feed.takes(entry.kind, &entry.value)
                && entry.tlp_range(state.tlp).1 <= tlp
                && !expiry.expired(entry)
                && lists.matches(entry.kind, &entry.value).is_empty()
                && (feed != Feed::Rpz || rpz_name(&entry.value))
            {
                values.insert((entry.kind, entry.value.clone()));
            }
        }
        if values.len() > before {
            serial = serial.max(state.updated.unix_seconds());
        }
    })?;
    let mut out = String::with_capacity(values.len() * 24);
    match feed {
        Feed::Hashes => {
            out.push_str("type,value\r\n");
            for (kind, value) in &values {
                let _ = write!(out, "{kind},{value}\r\n");
            }
        }
        Feed::Rpz => {
            // A serial fits in 32 bits; the newest update's seconds do
            // until 2106.
            let serial = u32::try_from(serial).unwrap_or(u32::MAX);
            let _ = write!(
                out,
                "$TTL 300\n@ IN SOA localhost. hostmaster.localhost. {serial} 3600 600 86400 300\n@ IN NS localhost.\n"
            );
            for (_, name) in &values {
                let _ = write!(out, "{name} CNAME .\n*.{name} CNAME .\n");
            }
        }
        _ => {
            for (_, value) in &values {
                out.push_str(value);
                out.push('\n');
            }
        }
    }
    Ok((out.into_bytes(), values.len()))
}

/// Whether a domain is safe to write as an owner name in a zone file:
/// letters, digits and hyphens in labels of 1 to 63, room for `*.`.
fn rpz_name(name: &str) -> bool {
    name.len() <= 250
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_go_into_the_zone() {
        assert!(rpz_name("evil.example"));
        assert!(rpz_name("xn--bcher-kva.example"));
        assert!(!rpz_name("evil.example."));
        assert!(!rpz_name("a b.example"));
        assert!(!rpz_name("$ORIGIN.example"));
        assert!(!rpz_name(&format!("{}.example", "a".repeat(64))));
    }
}
