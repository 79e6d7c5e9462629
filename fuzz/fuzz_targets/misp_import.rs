//! A MISP event or feed to import: events, a feed manifest and one feed
//! event file; none panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let options = common::options();
    if let Ok(report) = cer_interop::misp::import(data, &options) {
        common::check(&report);
    }
    if let Ok(manifest) = cer_interop::misp::feed_manifest(data) {
        let _ = cer_interop::misp::feed_changes(&manifest.entries, &Default::default());
    }
    let uuid = uuid::Uuid::from_u128(0x8a7b8c9d_0000_4000_8000_000000000001);
    if let Ok(report) = cer_interop::misp::import_feed_event(uuid, data, &options) {
        common::check(&report);
    }
});
