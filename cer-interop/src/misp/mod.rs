//! MISP event JSON and MISP feed directories, both ways.
//!
//! **Import** ([`import`]): a bare event, `{"Event": …}`, a list of those
//! or MISP's `{"response": [...]}`. Each event becomes one incident (more
//! when it holds more indicators than one envelope carries, or attributes
//! tagged with a stricter TLP than the event's: see [`crate::common`]'s
//! naming of parts), recorded with source `misp` and the event's uuid.
//! Attributes the model has no indicator type for are listed in
//! [`ImportReport::skipped`](crate::ImportReport); values that are not
//! what their type says in `invalid`, each with its place in the input
//! (`Event.Attribute[5]`, `Event.Object[2].Attribute[1]`).
//!
//! `to_ids`: every attribute is imported; one that MISP marks as not for
//! detection (`to_ids: false`) gets confidence [`NOT_FOR_IDS_CONFIDENCE`],
//! so playbooks can leave it out, and is written back with `to_ids:
//! false` (see [`IDS_MIN_CONFIDENCE`]).
//!
//! **Feeds** ([`feed_manifest`], [`feed_changes`], [`import_feed_event`],
//! [`export_feed`]): the directory layout MISP's "MISP Feed" source type
//! reads: `manifest.json` (event uuid → summary with its timestamp), one
//! `<uuid>.json` per event, and `hashes.csv` (`md5 of a value,event
//! uuid`). The caller reads and writes the files; this module only maps
//! bytes.
//!
//! **Export** ([`export_event`], [`export`]): one event per incident, its
//! uuid the incident's (stable across exports), `Orgc` the reporting CERT
//! (its uuid derived from the CERT's fingerprint), attributes of the MISP
//! type and category for each indicator, `tlp:` and `rsit:` tags in the
//! MISP taxonomies' spelling. Events validate against PyMISP's strict
//! schema (`schema.json`), which is why attributes carry no
//! `first_seen`/`last_seen` (the schema has no place for them; the
//! attribute `timestamp` is the indicator's last sighting) and there are
//! no MISP objects.
//!
//! Must not: read files, reach the network or read the clock.

mod attribute;
mod export;
mod feed;
mod import;
mod labels;

pub use export::{export, export_event, org_uuid};
pub use feed::{export_feed, feed_changes, feed_manifest, FeedEntry, FeedManifest};
pub use import::{import, import_feed_event};

pub(crate) use attribute::{read as read_attribute, Mapped};

/// Confidence given to an attribute MISP marks `to_ids: false`: kept as
/// context, not as something to block or alert on.
pub const NOT_FOR_IDS_CONFIDENCE: u8 = 25;

/// Below this confidence an indicator is written with `to_ids: false`.
/// Expired indicators are too, and types MISP never uses for detection
/// (AS numbers, vulnerabilities).
pub const IDS_MIN_CONFIDENCE: u8 = 50;

/// The MISP attribute types the importer reads; all others are skipped.
pub fn read_types() -> &'static [&'static str] {
    attribute::READ_TYPES
}

/// A place inside an event: `Event` + `Tag[2]` is `Event.Tag[2]`; a bare
/// event's places have no prefix.
fn join(base: &str, rest: &str) -> String {
    if base.is_empty() {
        rest.to_owned()
    } else {
        format!("{base}.{rest}")
    }
}
