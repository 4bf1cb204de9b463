//! `vmstat` collector: unified memory from `vm_stat` and `sysctl`.

use std::collections::BTreeMap;
use std::sync::Arc;

use cellwatch_metrics as m;
use tokio::time::Instant;

use super::{Info, Problems, Settings, ticker};
use crate::command::run_ok;
use crate::parse::{sysctl, vm_stat};
use crate::store::{Sample, Slot};

/// Registration.
pub const INFO: Info = Info {
    name: "vmstat",
    default_on_macos: true,
    default_on_linux: false,
    help: "unified memory: app, wired, compressed, cached, free, swap, pressure, GPU wired limit (vm_stat, sysctl)",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// Samples from parsed `vm_stat` and `sysctl` output, and the problems found in the values.
/// Either input may be missing (its command failed); what the other gives is still exported.
pub fn samples(
    vm: Option<&vm_stat::VmStat>,
    ctl: Option<&BTreeMap<String, String>>,
) -> (Vec<Sample>, Vec<String>) {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    if let Some(vm) = vm {
        let mem = vm.memory();
        if let Some(used) = mem.used() {
            out.push(Sample::new(&m::MEMORY_USED, &[], used as f64));
        }
        for (state, v) in [
            ("app", mem.app),
            ("wired", mem.wired),
            ("compressed", mem.compressed),
            ("cached", mem.cached),
            ("free", mem.free),
        ] {
            if let Some(v) = v {
                out.push(Sample::new(&m::MEMORY_BYTES, &[state], v as f64));
            }
        }
    }
    if let Some(ctl) = ctl {
        let mut field =
            |key: &str,
             def: &'static m::MetricDef,
             f: &dyn Fn(&str) -> Result<f64, crate::parse::ParseError>| {
                if let Some(v) = ctl.get(key) {
                    match f(v) {
                        Ok(v) => out.push(Sample::new(def, &[], v)),
                        Err(e) => problems.push(e.to_string()),
                    }
                }
            };
        field("hw.memsize", &m::MEMORY_TOTAL, &|v| {
            sysctl::memsize(v).map(|b| b as f64)
        });
        field("vm.swapusage", &m::MEMORY_SWAP_USED, &|v| {
            sysctl::swap_used_bytes(v).map(|b| b as f64)
        });
        field(
            "kern.memorystatus_vm_pressure_level",
            &m::MEMORY_PRESSURE,
            &|v| sysctl::pressure_level(v).map(f64::from),
        );
        field("iogpu.wired_limit_mb", &m::GPU_WIRED_LIMIT, &|v| {
            sysctl::wired_limit_bytes(v).map(|b| b as f64)
        });
        if !ctl.contains_key("hw.memsize") {
            problems.push("sysctl printed no hw.memsize".to_string());
        }
    }
    (out, problems)
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let mut tick = ticker(settings.interval);
    let mut problems = Problems::default();
    loop {
        tick.tick().await;
        let started = Instant::now();
        let t = settings.command_timeout;
        // sysctl exits non-zero when one name is unknown (iogpu.* on older macOS) but prints the
        // others: read whatever it printed.
        let (vm, ctl) = tokio::join!(
            run_ok("vm_stat", &[], t),
            crate::command::run("sysctl", &sysctl::KEYS, t)
        );
        let mut errors = Vec::new();
        let vm = vm
            .map_err(|e| e.to_string())
            .and_then(|o| vm_stat::parse(&o).map_err(|e| e.to_string()));
        let ctl = ctl
            .map_err(|e| e.to_string())
            .and_then(|o| sysctl::parse(&o.stdout).map_err(|e| format!("{e} ({})", o.stderr)));
        if let Err(e) = &vm {
            errors.push(e.clone());
        }
        if let Err(e) = &ctl {
            errors.push(e.clone());
        }
        let (out, value_problems) = samples(vm.as_ref().ok(), ctl.as_ref().ok());
        errors.extend(value_problems);
        if errors.is_empty() {
            slot.publish(out, started.elapsed(), true);
        } else {
            slot.publish(out, started.elapsed(), false);
            slot.error();
        }
        problems.report(INFO.name, &errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_inputs_give_partial_samples() {
        let ctl =
            sysctl::parse("hw.memsize: 1024\nkern.memorystatus_vm_pressure_level: 3\n").unwrap();
        let (s, problems) = samples(None, Some(&ctl));
        assert_eq!(s, vec![Sample::new(&m::MEMORY_TOTAL, &[], 1024.0)]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let (s, problems) = samples(None, None);
        assert!(s.is_empty() && problems.is_empty());
    }
}
