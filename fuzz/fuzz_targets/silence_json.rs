//! A `POST /api/v1/silences` body, checked and compiled as the API does.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cellwatch_slo::web::checked_silence(data, "id".into(), 1_800_000_000);
});
