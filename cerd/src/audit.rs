//! The audit trail's name and the node's clock: every state change is one
//! structured `tracing` event under [`AUDIT`], stamped by [`now`].

use cer_proto::model::Timestamp;

/// Target of the audit trail: one structured event per state change.
pub const AUDIT: &str = "cerd::audit";

/// The current time, as envelopes and records carry it.
pub fn now() -> Timestamp {
    Timestamp(time::OffsetDateTime::now_utc())
}
