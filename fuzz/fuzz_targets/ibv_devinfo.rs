//! `ibv_devinfo`'s output.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = cellwatch_exporter::parse::ibv_devinfo::parse(&String::from_utf8_lossy(data));
});
