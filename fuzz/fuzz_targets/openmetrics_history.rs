//! An OpenMetrics history (`cellwatch-slo backtest --history`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cellwatch_slo::backtest::openmetrics::parse(&String::from_utf8_lossy(data), "fuzz");
});
