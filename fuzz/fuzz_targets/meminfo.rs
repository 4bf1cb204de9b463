//! `/proc/meminfo`, and the memory figures computed from it.
#![no_main]
use cellwatch_exporter::parse::meminfo;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(fields) = meminfo::parse(&String::from_utf8_lossy(data)) {
        let _ = meminfo::memory(&fields);
    }
});
