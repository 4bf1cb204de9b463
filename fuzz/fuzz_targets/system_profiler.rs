//! `system_profiler -json SPThunderboltDataType`, and link speed strings.
#![no_main]
use cellwatch_exporter::parse::system_profiler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = system_profiler::parse(&text);
    let _ = system_profiler::speed(&text);
});
