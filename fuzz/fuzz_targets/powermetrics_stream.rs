//! The powermetrics plist stream: NUL-separated documents, each parsed and turned into samples
//! by the collector's handler (which keeps energy totals across documents).
#![no_main]
use cellwatch_exporter::collector::powermetrics::PowerHandler;
use cellwatch_exporter::supervisor::Handler;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut h = PowerHandler::default();
    for doc in data.split(|b| *b == 0) {
        let _ = h.document(doc);
    }
});
