//! `macmon pipe`: JSON lines, each parsed and turned into samples by the collector's handler
//! (which integrates power into energy across lines).
#![no_main]
use std::time::Duration;

use cellwatch_exporter::collector::macmon::MacmonHandler;
use cellwatch_exporter::supervisor::Handler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = MacmonHandler::new(Duration::from_secs(1));
    for line in data.split(|b| *b == b'\n') {
        let _ = h.document(line);
    }
});
