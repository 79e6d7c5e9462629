//! MISP event JSON and feeds: import on hand-written fixtures, export,
//! round trips, and PyMISP as the judge of what is written.

#[path = "../shared/mod.rs"]
mod common;

mod export;
mod feed;
mod import;
mod pymisp;
mod roundtrip;
