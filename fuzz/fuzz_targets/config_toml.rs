//! `cerd.toml`: parsing reports errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match cerd::config::Config::parse(text, std::path::Path::new("/etc/cerd/cerd.toml")) {
        Ok(_) => {}
        Err(errors) => assert!(!errors.is_empty(), "refused without a reason"),
    }
});
