//! Indicator search: how a query's value is read (exactly, as an address,
//! as a CIDR range, as a wildcard domain) and the store reads that answer
//! each reading, bounded by the query's limit. Blocking, like every query.

use std::net::IpAddr;

use cer_proto::api::{
    IocQuery, Matched, SearchMode, SearchedAs, DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT,
};
use cer_proto::incident::IndicatorEntry;
use cer_proto::model::IndicatorType;
use cer_proto::FieldError;
use ipnet::IpNet;
use uuid::Uuid;

use super::{Node, NodeError};
use crate::store::{IndicatorHit, RangeHits};

/// One indicator of one incident that a search found.
pub(super) struct Found {
    pub kind: IndicatorType,
    pub value: String,
    pub incident: Uuid,
    pub matched: Matched,
    pub hit: IndicatorHit,
}

/// What a search found, in the order it is shown, and whether the limit
/// cut it short.
pub(super) struct Findings {
    pub searched: Vec<SearchedAs>,
    pub found: Vec<Found>,
    pub truncated: bool,
}

impl Node {
    /// Reads the query's value and finds what matches each reading:
    /// exact matches first (most recently seen first), then CIDRs
    /// containing the value (most specific first), then what lies inside
    /// a range or below a domain (in address or name order).
    pub(super) fn find_indicators(&self, query: &IocQuery) -> Result<Findings, NodeError> {
        let limit = query.limit.unwrap_or(DEFAULT_SEARCH_LIMIT);
        if limit == 0 || limit > MAX_SEARCH_LIMIT {
            return Err(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_SEARCH_LIMIT}"),
            )
            .into());
        }
        let searched = readings(query)?;
        let (mut exact, mut containing, mut inside) = (Vec::new(), Vec::new(), Vec::new());
        let mut truncated = false;
        for reading in &searched {
            let kind = reading.kind;
            let room = |taken: usize| limit.saturating_sub(taken);
            match reading.how {
                SearchMode::Exact | SearchMode::Address => {
                    for (incident, hit) in self.store.indicator_hits(kind, &reading.value)? {
                        exact.push(Found {
                            kind,
                            value: reading.value.clone(),
                            incident,
                            matched: Matched::Exact,
                            hit,
                        });
                    }
                }
                SearchMode::Range | SearchMode::Subdomains => {}
            }
            let taken = exact.len() + containing.len() + inside.len();
            match reading.how {
                SearchMode::Exact => {}
                SearchMode::Address => {
                    let addr: IpAddr = reading.value.parse().map_err(|_| {
                        FieldError::new("value", "the address could not be read back")
                    })?;
                    let found = self
                        .store
                        .containing(IpNet::from(addr), true, room(taken))?;
                    truncated |= found.truncated;
                    containing.extend(hits(found, |_| Matched::Contains));
                }
                SearchMode::Range => {
                    let net: IpNet = reading.value.parse().map_err(|_| {
                        FieldError::new("value", "the network could not be read back")
                    })?;
                    let wider = self.store.containing(net, false, room(taken))?;
                    truncated |= wider.truncated;
                    containing.extend(hits(wider, |_| Matched::Contains));
                    let taken = taken + containing.len();
                    let within = self.store.inside(net, room(taken))?;
                    truncated |= within.truncated;
                    inside.extend(hits(within, |e| {
                        if e.kind == IndicatorType::Cidr && e.value == reading.value {
                            Matched::Exact
                        } else {
                            Matched::Inside
                        }
                    }));
                }
                SearchMode::Subdomains => {
                    let below = self.store.below(&reading.value, room(taken))?;
                    truncated |= below.truncated;
                    inside.extend(hits(below, |_| Matched::Subdomain));
                }
            }
        }
        exact.sort_by_key(|f| std::cmp::Reverse(f.hit.last_seen));
        let mut found = exact;
        found.append(&mut containing);
        found.append(&mut inside);
        if found.len() > limit {
            found.truncate(limit);
            truncated = true;
        }
        Ok(Findings {
            searched,
            found,
            truncated,
        })
    }
}

/// Every way the query's value is read: `*.name` as a wildcard domain
/// (unless another type is asked for), otherwise each type it parses as,
/// searched as that type allows.
fn readings(query: &IocQuery) -> Result<Vec<SearchedAs>, FieldError> {
    let raw = query.value.trim();
    if let Some(rest) = raw.strip_prefix("*.") {
        if query.kind.is_none_or(|k| k == IndicatorType::Domain) {
            return Ok(vec![SearchedAs {
                kind: IndicatorType::Domain,
                value: wildcard_domain(rest)?,
                how: SearchMode::Subdomains,
            }]);
        }
    }
    let typed: Vec<(IndicatorType, String)> = match query.kind {
        Some(kind) => vec![(kind, kind.normalize(raw)?)],
        None => IndicatorType::candidates(raw),
    };
    if typed.is_empty() {
        // An address and a prefix length: say what is wrong with the range
        // (host bits set, a prefix too long) rather than that it is nothing.
        if let Err(e) = IndicatorType::Cidr.normalize(raw) {
            if raw
                .split_once('/')
                .is_some_and(|(addr, _)| addr.trim().parse::<IpAddr>().is_ok())
            {
                return Err(FieldError::new("value", e.reason));
            }
        }
        return Err(FieldError::new(
            "value",
            format!(
                "'{}' is not a valid indicator of any type",
                cer_proto::text::escape(raw)
            ),
        ));
    }
    Ok(typed
        .into_iter()
        .map(|(kind, value)| SearchedAs {
            how: match kind {
                IndicatorType::Ipv4 | IndicatorType::Ipv6 => SearchMode::Address,
                IndicatorType::Cidr => SearchMode::Range,
                _ => SearchMode::Exact,
            },
            kind,
            value,
        })
        .collect())
}

/// The domain of `*.rest`, normalized as a domain indicator is (so IDN
/// patterns find punycode names), except that one label is enough:
/// `*.com` is a pattern, though `com` is no domain indicator.
fn wildcard_domain(rest: &str) -> Result<String, FieldError> {
    let pattern = format!("*.{rest}");
    let refuse = |reason: String| {
        FieldError::new(
            "value",
            format!(
                "'{}' is not a domain pattern such as *.example.com: {reason}",
                cer_proto::text::escape(&pattern)
            ),
        )
    };
    if rest.trim().is_empty() {
        return Err(refuse("a domain must follow '*.'".into()));
    }
    if rest.contains('*') {
        return Err(refuse("'*' may stand only as the whole first label".into()));
    }
    // Normalized under a stand-in first label, which the two-label rule
    // then always satisfies; the messages speak of the pattern.
    let stand_in = format!("x.{rest}");
    let name = IndicatorType::Domain
        .normalize(&stand_in)
        .map_err(|e| refuse(e.reason.replace(&stand_in, &pattern)))?;
    name.strip_prefix("x.")
        .map(str::to_owned)
        .ok_or_else(|| refuse("it does not normalize to a name".into()))
}

fn hits(found: RangeHits, matched: impl Fn(&IndicatorEntry) -> Matched) -> Vec<Found> {
    found
        .hits
        .into_iter()
        .map(|(incident, entry)| Found {
            matched: matched(&entry),
            incident,
            hit: IndicatorHit {
                first_seen: entry.first_seen,
                last_seen: entry.last_seen,
                sightings: entry.sightings,
                reported_by: entry.reported_by,
                valid_until: entry.valid_until,
            },
            kind: entry.kind,
            value: entry.value,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(value: &str, kind: Option<IndicatorType>) -> Result<Vec<SearchedAs>, FieldError> {
        readings(&IocQuery {
            value: value.into(),
            kind,
            limit: None,
        })
    }

    fn one(value: &str) -> (IndicatorType, String, SearchMode) {
        let mut found = read(value, None).unwrap();
        assert_eq!(found.len(), 1, "{value}: {found:?}");
        let s = found.remove(0);
        (s.kind, s.value, s.how)
    }

    #[test]
    fn values_are_read_as_ranges_addresses_and_wildcards() {
        use IndicatorType::*;
        assert_eq!(
            one("192.0.2.0/24"),
            (Cidr, "192.0.2.0/24".into(), SearchMode::Range)
        );
        assert_eq!(
            one("2001:DB8::/32"),
            (Cidr, "2001:db8::/32".into(), SearchMode::Range)
        );
        assert_eq!(
            one("192.0.2.7"),
            (Ipv4, "192.0.2.7".into(), SearchMode::Address)
        );
        assert_eq!(
            one("*.Example.COM."),
            (Domain, "example.com".into(), SearchMode::Subdomains)
        );
        assert_eq!(one("*.com"), (Domain, "com".into(), SearchMode::Subdomains));
        assert_eq!(
            one("*.bücher.example"),
            (
                Domain,
                "xn--bcher-kva.example".into(),
                SearchMode::Subdomains
            )
        );
        assert_eq!(
            one("example.com"),
            (Domain, "example.com".into(), SearchMode::Exact)
        );
        // Another type asked for: the value is read as that type.
        let filename = read("*.exe", Some(Filename)).unwrap();
        assert_eq!(
            (filename[0].kind, filename[0].how),
            (Filename, SearchMode::Exact)
        );
    }

    #[test]
    fn bad_patterns_name_the_field_and_the_reason() {
        for (value, reason) in [
            ("*.", "a domain must follow"),
            ("*.*.example.com", "whole first label"),
            ("*.exa mple.com", "*.exa mple.com"),
            ("*.example.123", "numeric"),
        ] {
            let e = read(value, None).unwrap_err();
            assert_eq!(e.field, "value", "{value}");
            assert!(e.reason.contains(reason), "{value}: {}", e.reason);
            assert!(!e.reason.contains("x.exa"), "{value}: {}", e.reason);
        }
        let e = read("192.0.2.1/24", None).unwrap_err();
        assert_eq!(e.field, "value");
        assert!(
            e.reason.contains("did you mean 192.0.2.0/24"),
            "{}",
            e.reason
        );
        let e = read("192.0.2.0/33", None).unwrap_err();
        assert!(e.reason.contains("out of range"), "{}", e.reason);
    }
}
