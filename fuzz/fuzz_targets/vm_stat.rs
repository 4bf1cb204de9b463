//! `vm_stat`'s output.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cellwatch_exporter::parse::vm_stat::parse(&String::from_utf8_lossy(data));
});
