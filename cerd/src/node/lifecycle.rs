//! What a search adds about each indicator found, on this node: when it
//! expires (and whether it has), the warninglists it is on, and who
//! sighted it or reported it a false positive, per CERT. Reads the store:
//! call from blocking threads.

use std::collections::BTreeMap;

use cer_proto::api::{CertRef, IocSearch, SightingSummary};
use cer_proto::incident::Event;
use cer_proto::Fingerprint;

use super::{Node, NodeError};

impl Node {
    /// Fills each match's expiry, warninglists and sightings per CERT.
    pub fn describe_matches(&self, found: &mut IocSearch) -> Result<(), NodeError> {
        let expiry = self.expiry();
        let lists = self.warninglists();
        // One head record per incident (its timeline, no indicator table),
        // however many of its indicators matched.
        let mut heads: BTreeMap<uuid::Uuid, Option<cer_proto::incident::IncidentState>> =
            BTreeMap::new();
        for m in &mut found.matches {
            m.warninglists = lists.matches(m.kind, &m.value);
            // The author's date, else this node's lifetime for the type.
            m.valid_until = m.valid_until.or_else(|| {
                expiry
                    .lifetimes
                    .get(&m.kind)
                    .map(|lifetime| m.last_seen.plus(*lifetime))
            });
            m.expired = m.valid_until.is_some_and(|until| until <= expiry.now);
            // No sighting counted and nobody but its reporter named it:
            // nobody sighted it or reported it a false positive (a report
            // adds its CERT), so there is no timeline to read.
            if m.sightings == 0 && m.reported_by.len() <= 1 {
                continue;
            }
            let state = match heads.entry(m.incident) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(self.store.incident_head(m.incident)?)
                }
            };
            let Some(state) = state.as_ref() else {
                continue;
            };
            let mut by: BTreeMap<Fingerprint, SightingSummary> = BTreeMap::new();
            for entry in &state.timeline {
                let Event::Sighting {
                    kind,
                    value,
                    seen,
                    count,
                    false_positive,
                    ..
                } = &entry.event
                else {
                    continue;
                };
                if *kind != m.kind || *value != m.value {
                    continue;
                }
                let summary = by
                    .entry(entry.author.clone())
                    .or_insert_with(|| SightingSummary {
                        cert: CertRef {
                            fingerprint: entry.author.clone(),
                            name: self.name_of(&entry.author),
                        },
                        count: 0,
                        first: *seen,
                        last: *seen,
                        false_positives: 0,
                    });
                if *false_positive {
                    summary.false_positives += 1;
                } else {
                    summary.count = summary.count.saturating_add(*count);
                }
                summary.first = summary.first.min(*seen);
                summary.last = summary.last.max(*seen);
            }
            m.sighted_by = by.into_values().collect();
        }
        Ok(())
    }
}
