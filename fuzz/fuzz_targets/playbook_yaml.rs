//! A playbook file: parsing and the checks `cerctl playbook check` runs
//! never panic, and agree on whether the file is valid.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = cer_playbook::parse_all(text, "fuzz.yaml");
    let _ = cer_playbook::parse(text, "fuzz.yaml");
    let check = cer_playbook::check(text, "fuzz.yaml");
    assert_eq!(parsed.is_ok(), check.errors.is_empty(), "{check:?}");
});
