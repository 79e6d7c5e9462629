//! Incidents → CSV, one row per indicator.

use ::csv::{QuoteStyle, Terminator, WriterBuilder};
use cer_proto::model::Timestamp;

use super::guard;
use crate::common::reporter_name;
use crate::{ExportIncident, ExportOptions};

/// The export's columns, in order. `type,value,comment,first_seen,
/// last_seen,valid_until,tlp,confidence` are what [`super::import`]
/// reads back; `incident`, `cert` and `sightings` it passes over.
pub const EXPORT_COLUMNS: [&str; 11] = [
    "incident",
    "cert",
    "tlp",
    "type",
    "value",
    "first_seen",
    "last_seen",
    "valid_until",
    "sightings",
    "confidence",
    "comment",
];

/// One row per indicator of each incident this node can read (none of a
/// retracted one), expired ones left out with
/// [`ExportOptions::active_only`]. An indicator's `tlp` is the label it
/// was shared under, which may be stricter than its incident's.
pub fn export(incidents: &[ExportIncident<'_>], options: &ExportOptions) -> Vec<u8> {
    let mut writer = WriterBuilder::new()
        .terminator(Terminator::CRLF)
        .quote_style(QuoteStyle::Necessary)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; the results are checked all the same.
    let mut ok = writer.write_record(EXPORT_COLUMNS).is_ok();
    for incident in incidents {
        let state = incident.state;
        if state.retracted.is_some() || state.content.is_none() {
            continue;
        }
        let id = state.id.to_string();
        let cert = reporter_name(incident, options);
        for entry in &state.indicators {
            if options.active_only && entry.expired(options.now, None) {
                continue;
            }
            let (tlp, _) = entry.tlp_range(state.tlp);
            let time = |t: Option<Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
            let row = [
                id.as_str(),
                &guard(&cert),
                tlp.as_str(),
                entry.kind.as_str(),
                &guard(&entry.value),
                &time(Some(entry.first_seen)),
                &time(Some(entry.last_seen)),
                &time(entry.valid_until),
                &entry.sightings.to_string(),
                &entry.confidence.map(|c| c.to_string()).unwrap_or_default(),
                &guard(entry.comment.as_deref().unwrap_or("")),
            ];
            ok &= writer.write_record(row).is_ok();
        }
    }
    let bytes = writer.into_inner().unwrap_or_default();
    debug_assert!(ok, "writing CSV into memory failed");
    bytes
}
