//! `meminfo` collector (Linux): `/proc/meminfo` into the memory families the Apple nodes report.

use std::sync::Arc;

use cellwatch_metrics as m;
use tokio::time::Instant;

use super::{Info, Problems, Settings, ticker};
use crate::parse::meminfo::{self, Memory};
use crate::store::{Sample, Slot};

/// Registration.
pub const INFO: Info = Info {
    name: "meminfo",
    default_on_macos: false,
    default_on_linux: true,
    help: "memory from /proc/meminfo (under --path.procfs): total, used, app, wired, cached, free, swap",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// Samples from the mapped fields.
pub fn samples(mem: &Memory) -> Vec<Sample> {
    let mut out = vec![Sample::new(&m::MEMORY_TOTAL, &[], mem.total as f64)];
    if let Some(u) = mem.used {
        out.push(Sample::new(&m::MEMORY_USED, &[], u as f64));
    }
    for (state, v) in &mem.states {
        out.push(Sample::new(&m::MEMORY_BYTES, &[state], *v as f64));
    }
    if let Some(s) = mem.swap_used {
        out.push(Sample::new(&m::MEMORY_SWAP_USED, &[], s as f64));
    }
    out
}

/// Reads and maps `PROCFS/meminfo`.
pub fn read(settings: &Settings) -> Result<Vec<Sample>, String> {
    let path = settings.procfs.join("meminfo");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let fields = meminfo::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let mem = meminfo::memory(&fields).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(samples(&mem))
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let mut tick = ticker(settings.interval);
    let mut problems = Problems::default();
    loop {
        tick.tick().await;
        let started = Instant::now();
        match read(&settings) {
            Ok(s) => {
                slot.publish(s, started.elapsed(), true);
                problems.report(INFO.name, &[]);
            }
            Err(e) => {
                slot.publish(Vec::new(), started.elapsed(), false);
                slot.error();
                problems.report(INFO.name, &[e]);
            }
        }
    }
}
