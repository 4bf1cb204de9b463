//! An OpenSLO file (`openslo:` imports).
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cellwatch_slo::config::openslo::import_text(Path::new("fuzz.yaml"), text);
    }
});
