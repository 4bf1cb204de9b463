//! sysfs values: InfiniBand port state and rate, counters.
#![no_main]
use cellwatch_exporter::parse::sysfs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = sysfs::state("state", &text);
    let _ = sysfs::rate("rate", &text);
    let _ = sysfs::counter("port_rcv_data", &text);
});
