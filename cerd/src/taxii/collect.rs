//! What a TAXII collection holds: the STIX objects `cer_interop::stix`
//! gives for each readable, non-retracted incident, cut to the
//! collection's TLP, in the order they were added, with an opaque cursor
//! for the next page. Reads the store: call from blocking threads.
//!
//! An object's date added is when this node last stored an envelope about
//! its incident: the store's order of arrival, in which every new arrival
//! goes to the end, even an incident a late peer sends with an old time.
//! A cursor names the next object's place — arrival time, incident and
//! index — rather than an offset, so incidents filed or updated while a
//! client pages do not shift its pages: an updated incident moves behind
//! the cursor's end and is served again there, whole.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use cer_interop::{ExportIncident, ExportOptions};
use cer_proto::api::IncidentSummary;
use cer_proto::model::{Timestamp, Tlp};
use serde_json::Value;
use uuid::Uuid;

use crate::node::{Node, NodeError};

/// Incidents read from the store per listing call.
const BATCH: usize = 64;

/// A place in a collection: the incident (its arrival time and id) and
/// the index of an object among its objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor {
    pub added: i128,
    pub incident: Uuid,
    pub index: usize,
}

/// What to read.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub added_after: Option<Timestamp>,
    pub after: Option<Cursor>,
    pub limit: usize,
    pub types: Vec<String>,
    pub ids: Vec<String>,
    /// `match[version]`: "last", "first", "all" or a timestamp each.
    pub versions: Vec<String>,
    pub spec_versions: Vec<String>,
    /// Also indicators past their expiry, and warninglisted ones.
    pub include_expired: bool,
    pub include_warninglisted: bool,
}

/// Each incident's objects as last made, so that a client paging through
/// a large incident, or many clients asking for small pages, do not have
/// its indicators read and exported again for every page. An entry is
/// found by the incident's place in the order of arrival (which moves on
/// every change), the TLP and the inclusion flags, and is made again when
/// the warninglists change or a minute has passed (indicators expire).
#[derive(Default)]
pub struct Cache {
    entries: Mutex<CacheEntries>,
}

#[derive(Default)]
struct CacheEntries {
    by_key: HashMap<CacheKey, (Arc<Vec<Value>>, u64)>,
    objects: usize,
    tick: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    incident: Uuid,
    added: i128,
    tlp: Tlp,
    include_expired: bool,
    include_warninglisted: bool,
    /// The warninglists in force (their address) and the minute.
    lists: usize,
    minute: i128,
}

impl Cache {
    /// Objects kept at most; the least recently used go first.
    const OBJECTS: usize = 200_000;

    fn get(&self, key: &CacheKey) -> Option<Arc<Vec<Value>>> {
        let mut entries = self.lock();
        entries.tick += 1;
        let tick = entries.tick;
        let (objects, used) = entries.by_key.get_mut(key)?;
        *used = tick;
        Some(objects.clone())
    }

    fn put(&self, key: CacheKey, objects: Arc<Vec<Value>>) {
        let mut entries = self.lock();
        entries.tick += 1;
        let tick = entries.tick;
        entries.objects += objects.len();
        if let Some((old, _)) = entries.by_key.insert(key, (objects, tick)) {
            entries.objects -= old.len();
        }
        while entries.objects > Self::OBJECTS && entries.by_key.len() > 1 {
            let Some(oldest) = entries
                .by_key
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((gone, _)) = entries.by_key.remove(&oldest) {
                entries.objects -= gone.len();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheEntries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One object and when it was added.
pub struct Item {
    pub added: Timestamp,
    pub object: Value,
}

pub struct Page {
    pub items: Vec<Item>,
    /// Where the next page starts, when there is more.
    pub next: Option<Cursor>,
}

impl Cursor {
    pub fn encode(&self) -> String {
        let text = format!("{}.{}.{}", self.added, self.incident, self.index);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    pub fn decode(raw: &str) -> Option<Cursor> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('.');
        let cursor = Cursor {
            added: parts.next()?.parse().ok()?,
            incident: parts.next()?.parse().ok()?,
            index: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// The date added of the objects every incident shares (the CERTs'
/// identities, the TLP marking definitions): before any incident.
const SHARED_ADDED: i128 = 0;

/// Reads one page of the collection at `tlp`.
///
/// A collection begins with the objects incidents share — the identity of
/// each CERT in the trust store and this node's, the TLP marking
/// definitions up to `tlp` — once each, dated 1970-01-01 (so `added_after`
/// polls do not fetch them again); then each incident's own objects.
pub fn page(node: &Node, cache: &Cache, tlp: Tlp, query: &Query) -> Result<Page, NodeError> {
    let context = Context::new(node, cache);
    let mut items = Vec::new();
    let since = query.added_after;
    let shared_done = query.after.is_some_and(|c| c.added > i128::MIN)
        || since.is_some_and(|t| t.unix_nanos() >= SHARED_ADDED);
    if !shared_done {
        let start = query.after.map_or(0, |c| c.index);
        for (index, object) in context.shared(tlp).into_iter().enumerate().skip(start) {
            let place = Cursor {
                added: i128::MIN,
                incident: Uuid::nil(),
                index,
            };
            if !matches(&object, query) {
                continue;
            }
            if items.len() == query.limit {
                return Ok(Page {
                    items,
                    next: Some(place),
                });
            }
            items.push(Item {
                added: Timestamp::from_unix_nanos(SHARED_ADDED),
                object,
            });
        }
    }
    // Where the store's scan starts: strictly after the later of the
    // cursor's incident (whose remaining objects come first) and
    // `added_after`.
    let resume = query.after.filter(|c| c.added > i128::MIN);
    let mut from = later(
        resume.map(|c| (Timestamp::from_unix_nanos(c.added), c.incident)),
        since.map(|t| (t, Uuid::max())),
    );
    if let Some(cursor) = resume {
        // The rest of the incident the last page ended in, if it has not
        // arrived again since.
        let at = Timestamp::from_unix_nanos(cursor.added);
        let summary = node.store().arrived_at(at, cursor.incident)?;
        if let Some(summary) = summary.filter(|s| s.readable && !s.retracted) {
            let place = |index| Cursor {
                added: cursor.added,
                incident: cursor.incident,
                index,
            };
            if let Some(next) = context.emit(
                node,
                &summary,
                at,
                tlp,
                query,
                cursor.index,
                &mut items,
                place,
            )? {
                return Ok(Page {
                    items,
                    next: Some(next),
                });
            }
        }
    }
    loop {
        // Every incident gives an object or more, as a rule: a page of 10
        // needs about 10 incidents read, not a whole batch.
        let batch = BATCH.min(query.limit.saturating_add(1)).max(4);
        let (arrivals, more) = node.store().arrivals(from, batch)?;
        for (at, summary) in &arrivals {
            from = Some((*at, summary.id));
            if !summary.readable || summary.retracted {
                continue;
            }
            let place = |index| Cursor {
                added: at.unix_nanos(),
                incident: summary.id,
                index,
            };
            if let Some(next) =
                context.emit(node, summary, *at, tlp, query, 0, &mut items, place)?
            {
                return Ok(Page {
                    items,
                    next: Some(next),
                });
            }
        }
        if !more {
            return Ok(Page { items, next: None });
        }
    }
}

fn later(a: Option<(Timestamp, Uuid)>, b: Option<(Timestamp, Uuid)>) -> Option<(Timestamp, Uuid)> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// What every incident's objects are made with on this request.
struct Context<'c> {
    options: ExportOptions,
    expiry: cer_proto::incident::Expiry,
    lists: std::sync::Arc<crate::warninglist::Warninglists>,
    cache: &'c Cache,
}

impl<'c> Context<'c> {
    fn new(node: &Node, cache: &'c Cache) -> Context<'c> {
        let names = node
            .certs()
            .certs
            .into_iter()
            .map(|c| (c.fingerprint, c.name))
            .collect();
        let expiry = node.expiry();
        Context {
            options: ExportOptions {
                now: expiry.now,
                active_only: false,
                producer: (
                    node.identity().name().to_owned(),
                    node.fingerprint().clone(),
                ),
                names,
            },
            expiry,
            lists: node.warninglists(),
            cache,
        }
    }

    /// The objects every incident may refer to, in a fixed order.
    fn shared(&self, tlp: Tlp) -> Vec<Value> {
        let (name, fingerprint) = &self.options.producer;
        let mut out = vec![cer_interop::stix::identity(fingerprint, name)];
        let mut others: Vec<&(cer_proto::Fingerprint, String)> = self
            .options
            .names
            .iter()
            .filter(|(f, _)| f != fingerprint)
            .collect();
        others.sort();
        out.extend(
            others
                .into_iter()
                .map(|(f, n)| cer_interop::stix::identity(f, n)),
        );
        out.extend(
            Tlp::ALL
                .iter()
                .filter(|t| **t <= tlp && **t != Tlp::AmberStrict)
                .map(|t| cer_interop::stix::marking::object(*t)),
        );
        out
    }

    /// Adds one incident's objects from `start` on that `query` matches,
    /// until the page is full; then returns the place of the first object
    /// left out.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        node: &Node,
        summary: &IncidentSummary,
        added: Timestamp,
        tlp: Tlp,
        query: &Query,
        start: usize,
        items: &mut Vec<Item>,
        place: impl Fn(usize) -> Cursor,
    ) -> Result<Option<Cursor>, NodeError> {
        let key = CacheKey {
            incident: summary.id,
            added: added.unix_nanos(),
            tlp,
            include_expired: query.include_expired,
            include_warninglisted: query.include_warninglisted,
            lists: Arc::as_ptr(&self.lists) as usize,
            minute: self.options.now.unix_nanos() / 60_000_000_000,
        };
        let objects = match self.cache.get(&key) {
            Some(objects) => objects,
            None => {
                let made = Arc::new(self.objects(node, summary, tlp, query)?);
                self.cache.put(key, made.clone());
                made
            }
        };
        for (index, object) in objects.iter().enumerate().skip(start) {
            if !matches(object, query) {
                continue;
            }
            if items.len() == query.limit {
                return Ok(Some(place(index)));
            }
            items.push(Item {
                added,
                object: object.clone(),
            });
        }
        Ok(None)
    }

    /// One incident's objects at `tlp` or below, in a fixed order.
    fn objects(
        &self,
        node: &Node,
        summary: &IncidentSummary,
        tlp: Tlp,
        query: &Query,
    ) -> Result<Vec<Value>, NodeError> {
        let Some(mut state) = node.store().incident(summary.id)? else {
            return Ok(Vec::new());
        };
        state.indicators.retain(|entry| {
            (query.include_expired || !self.expiry.expired(entry))
                && (query.include_warninglisted
                    || self.lists.matches(entry.kind, &entry.value).is_empty())
        });
        let reporter_name = state.reporter.as_ref().and_then(|f| node.name_of(f));
        let incident = ExportIncident {
            state: &state,
            reporter_name: reporter_name.as_deref(),
        };
        // Identities and marking definitions come once, at the
        // collection's start.
        Ok(within(
            cer_interop::stix::incident_objects(&incident, &self.options),
            tlp,
        )
        .into_iter()
        .filter(|o| !matches!(kind(o), "identity" | "marking-definition"))
        .collect())
    }
}

/// The objects marked `tlp` or lower, and the identities and marking
/// definitions those refer to. An object with a marking this server does
/// not know is left out.
pub fn within(objects: Vec<Value>, tlp: Tlp) -> Vec<Value> {
    let unmarked = |o: &Value| matches!(kind(o), "identity" | "marking-definition");
    let allowed = |o: &Value| match o.get("object_marking_refs").and_then(Value::as_array) {
        None => false,
        Some(refs) => refs.iter().all(|r| {
            r.as_str()
                .and_then(cer_interop::stix::marking::known)
                .is_some_and(|t| t <= tlp)
        }),
    };
    let kept: Vec<Value> = objects
        .into_iter()
        .filter(|o| unmarked(o) || allowed(o))
        .collect();
    let mut referred = BTreeSet::new();
    for object in kept.iter().filter(|o| !unmarked(o)) {
        for key in [
            "created_by_ref",
            "object_marking_refs",
            "where_sighted_refs",
        ] {
            match object.get(key) {
                Some(Value::String(s)) => {
                    referred.insert(s.clone());
                }
                Some(Value::Array(refs)) => {
                    referred.extend(refs.iter().filter_map(Value::as_str).map(str::to_owned));
                }
                _ => {}
            }
        }
    }
    kept.into_iter()
        .filter(|o| !unmarked(o) || id(o).is_some_and(|i| referred.contains(i)))
        .collect()
}

pub fn kind(object: &Value) -> &str {
    object.get("type").and_then(Value::as_str).unwrap_or("")
}

pub fn id(object: &Value) -> Option<&str> {
    object.get("id").and_then(Value::as_str)
}

/// An object's version: `modified`, else `created`, else the fixed time of
/// objects that have neither.
pub fn version(object: &Value) -> &str {
    object
        .get("modified")
        .or_else(|| object.get("created"))
        .and_then(Value::as_str)
        .unwrap_or("1970-01-01T00:00:00.000Z")
}

fn matches(object: &Value, query: &Query) -> bool {
    let listed =
        |wanted: &[String], have: &str| wanted.is_empty() || wanted.iter().any(|w| w == have);
    let spec = object
        .get("spec_version")
        .and_then(Value::as_str)
        .unwrap_or("2.1");
    // Each object has one version here: first, last and all all name it.
    let version_ok = query.versions.is_empty()
        || query.versions.iter().any(|v| match v.as_str() {
            "first" | "last" | "all" => true,
            time => same_time(time, version(object)),
        });
    listed(&query.types, kind(object))
        && listed(&query.ids, id(object).unwrap_or(""))
        && listed(&query.spec_versions, spec)
        && version_ok
}

fn same_time(a: &str, b: &str) -> bool {
    match (Timestamp::parse(a), Timestamp::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Calls `each` with every readable, non-retracted incident, in their
/// order of arrival, with its indicators.
pub fn each_incident(
    node: &Node,
    each: &mut dyn FnMut(cer_proto::incident::IncidentState),
) -> Result<(), NodeError> {
    let mut from = None;
    loop {
        let (arrivals, more) = node.store().arrivals(from, BATCH)?;
        for (at, summary) in &arrivals {
            from = Some((*at, summary.id));
            if !summary.readable || summary.retracted {
                continue;
            }
            if let Some(state) = node.store().incident(summary.id)? {
                each(state);
            }
        }
        if !more {
            return Ok(());
        }
    }
}
