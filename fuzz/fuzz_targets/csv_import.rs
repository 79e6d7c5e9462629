//! A CSV file or a plain list of indicators to import: never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    let options = common::options();
    let bulk = cer_interop::csv::Bulk {
        per_incident: 50,
        title: None,
    };
    if let Ok(report) = cer_interop::csv::import(data, &options, &bulk) {
        common::check(&report);
    }
    if let Ok(report) = cer_interop::csv::import_list(data, &options, &bulk) {
        common::check(&report);
    }
});
