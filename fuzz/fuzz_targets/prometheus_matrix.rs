//! A Prometheus `/api/v1/query_range` answer (the prometheus source's input).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cellwatch_slo::source::prometheus::parse_matrix(&String::from_utf8_lossy(data));
});
