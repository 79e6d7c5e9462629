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
        for m in &mut found.matches {
            m.warninglists = lists.matches(m.kind, &m.value);
            let Some(state) = self.store.incident(m.incident)? else {
                continue;
            };
            if let Some(entry) = state
                .indicators
                .iter()
                .find(|e| e.kind == m.kind && e.value == m.value)
            {
                m.valid_until = expiry.until(entry);
                m.expired = expiry.expired(entry);
            }
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
