//! `nvidia-smi --query-gpu … --format=csv,noheader,nounits -lms`: CSV lines, each parsed and
//! turned into samples by the collector's handler.
#![no_main]
use std::time::Duration;

use cellwatch_exporter::collector::nvidia::NvidiaHandler;
use cellwatch_exporter::supervisor::Handler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = NvidiaHandler::nominal(Duration::from_secs(1));
    for line in data.split(|b| *b == b'\n') {
        let _ = h.document(line);
    }
});
