//! The engine's YAML configuration.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cellwatch_slo::config::parse(text, Path::new("fuzz.yaml"));
    }
});
