//! `sysctl` output, and each value through the parsers of the values the exporter reads.
#![no_main]
use cellwatch_exporter::parse::sysctl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(values) = sysctl::parse(&text) {
        for v in values.values() {
            let _ = sysctl::memsize(v);
            let _ = sysctl::wired_limit_bytes(v);
            let _ = sysctl::pressure_level(v);
            let _ = sysctl::swap_used_bytes(v);
        }
    }
    let _ = sysctl::swap_used_bytes(&text);
});
