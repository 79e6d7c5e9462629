//! A STIX 2.1 bundle to import: never panics, and every incident it gives
//! is one the node would accept as a filing.
#![no_main]

use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = cer_interop::stix::import(data, &common::options()) {
        common::check(&report);
    }
});
