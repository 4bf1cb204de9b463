//! `rapl` collector (Linux): RAPL energy counters under `SYSFS/class/powercap` into
//! `cellwatch_energy_joules_total{component}` and `cellwatch_power_watts{component}`, and the
//! node's CPU-side energy (`source="rapl"`).
//!
//! `energy_uj` wraps at `max_energy_range_uj` (about 262 kJ: a quarter of an hour at 300 W), so
//! the collector keeps its own joule counter per zone and adds `(max - last) + current` across a
//! wrap; it samples every `--interval`, far more often than a wrap. On kernels since 5.10
//! `energy_uj` is readable by root only: that is reported as such, not as silence.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cellwatch_metrics as m;
use tokio::time::Instant;

use super::{Info, Problems, Settings, ticker};
use crate::store::{Sample, Slot};

/// Registration.
pub const INFO: Info = Info {
    name: "rapl",
    default_on_macos: false,
    default_on_linux: true,
    help: "CPU package, DRAM and platform energy from RAPL (SYSFS/class/powercap; energy_uj needs root on Linux 5.10+)",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// One zone's reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Zone {
    /// The component label: the zone's name (`package-0`, `psys`), a subzone's prefixed with
    /// its parent's (`package-0-dram`).
    pub component: String,
    /// Whether it is a top-level zone.
    pub top: bool,
    /// `energy_uj`, µJ.
    pub energy_uj: u64,
    /// `max_energy_range_uj`, µJ (the wrap point), when readable.
    pub max_uj: Option<u64>,
}

/// The increase from `last` to `cur` of a counter that wraps after `max`. A drop is a wrap when
/// the wrapped increase is under half the range (the collector reads far more often than a
/// wrap); otherwise, or without a known range, it is a reset (a driver reload) and counts from
/// zero.
pub fn increase(last: u64, cur: u64, max: Option<u64>) -> u64 {
    if cur >= last {
        return cur - last;
    }
    match max {
        Some(max) if max >= last && (max - last).saturating_add(cur) < max / 2 => {
            (max - last) + cur
        }
        _ => cur,
    }
}

/// What a failed read of a RAPL file means.
pub fn read_error(p: &Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "{}: permission denied: RAPL energy counters are readable by root only since Linux 5.10 (CVE-2020-8694); run the exporter as root, or make energy_uj readable (exporter/packaging/rapl-readable.conf)",
            p.display()
        )
    } else {
        format!("{}: {e}", p.display())
    }
}

/// Reads every RAPL zone (`intel-rapl:N` and `intel-rapl:N:M`): the zones that could be read,
/// and a problem for each that could not (an unreadable `energy_uj` says why). No zone at all is
/// an error.
pub fn read_zones(sysfs: &Path) -> Result<(Vec<Zone>, Vec<String>), String> {
    let root = sysfs.join("class/powercap");
    let entries = std::fs::read_dir(&root).map_err(|e| {
        format!(
            "{}: {e} (no RAPL: not an x86 CPU, or the intel_rapl_common module is not loaded)",
            root.display()
        )
    })?;
    let mut dirs: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("intel-rapl:"))
        .collect();
    dirs.sort();
    if dirs.is_empty() {
        return Err(format!("{}: no intel-rapl:N zones", root.display()));
    }
    let read = |p: &Path| -> Result<String, String> {
        std::fs::read_to_string(p).map_err(|e| read_error(p, &e))
    };
    let mut names = BTreeMap::new();
    let mut zones = Vec::new();
    let mut problems = Vec::new();
    for d in &dirs {
        let dir = root.join(d);
        let name = match read(&dir.join("name")) {
            Ok(n) => n.trim().to_string(),
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        names.insert(d.clone(), name.clone());
        let parent = d
            .rsplit_once(':')
            .map(|(p, _)| p)
            .filter(|p| p.contains(':'));
        let (component, top) = match parent {
            Some(p) => match names.get(p) {
                Some(pn) => (format!("{pn}-{name}"), false),
                None => (format!("{p}-{name}"), false),
            },
            None => (name, true),
        };
        let path = dir.join("energy_uj");
        let energy_uj = match read(&path).and_then(|t| {
            t.trim()
                .parse()
                .map_err(|_| format!("{}: not a number", path.display()))
        }) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let max_uj = read(&dir.join("max_energy_range_uj"))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        zones.push(Zone {
            component,
            top,
            energy_uj,
            max_uj,
        });
    }
    if zones.is_empty() {
        return Err(problems.join("; "));
    }
    Ok((zones, problems))
}

/// Joule counters per zone, built from successive readings.
#[derive(Debug, Default)]
pub struct Rapl {
    last: BTreeMap<String, u64>,
    joules: BTreeMap<String, f64>,
    node: f64,
}

impl Rapl {
    /// Samples after one reading, `dt` seconds after the previous. The first reading is the
    /// baseline: counters start at 0 and no power is known yet.
    pub fn samples(&mut self, zones: &[Zone], dt: f64) -> Vec<Sample> {
        let mut out = Vec::new();
        let psys = zones.iter().any(|z| z.component == "psys");
        let mut node_w = 0.0;
        let mut node_known = false;
        for z in zones {
            let inc = self
                .last
                .insert(z.component.clone(), z.energy_uj)
                .map(|last| increase(last, z.energy_uj, z.max_uj) as f64 / 1e6);
            let total = self.joules.entry(z.component.clone()).or_insert(0.0);
            // Whole node: psys where the platform reports it, else packages and their DRAM.
            let counts = if psys {
                z.component == "psys"
            } else {
                (z.top && z.component.starts_with("package"))
                    || (!z.top && z.component.ends_with("-dram"))
            };
            if let Some(j) = inc {
                *total += j;
                if dt > 0.0 {
                    out.push(Sample::new(&m::POWER_WATTS, &[&z.component], j / dt));
                    if counts {
                        node_w += j / dt;
                        node_known = true;
                    }
                }
                if counts {
                    self.node += j;
                }
            }
            out.push(Sample::new(&m::ENERGY_JOULES, &[&z.component], *total));
        }
        out.push(Sample::new(&m::NODE_ENERGY_JOULES, &["rapl"], self.node));
        if node_known {
            out.push(Sample::new(&m::NODE_POWER_WATTS, &["rapl"], node_w));
        }
        out
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let mut tick = ticker(settings.interval);
    let mut problems = Problems::default();
    let mut rapl = Rapl::default();
    let mut last: Option<Instant> = None;
    loop {
        tick.tick().await;
        let started = Instant::now();
        match read_zones(&settings.sysfs) {
            Ok((zones, bad)) => {
                let dt = last.map_or(0.0, |l| started.duration_since(l).as_secs_f64());
                last = Some(started);
                // Some zones unreadable: the others are still exported, the sample is marked
                // failed and the reason logged.
                slot.publish(rapl.samples(&zones, dt), started.elapsed(), bad.is_empty());
                if !bad.is_empty() {
                    slot.error();
                }
                problems.report(INFO.name, &bad);
            }
            Err(e) => {
                slot.publish(Vec::new(), started.elapsed(), false);
                slot.error();
                problems.report(INFO.name, &[e]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(c: &str, top: bool, e: u64) -> Zone {
        Zone {
            component: c.into(),
            top,
            energy_uj: e,
            max_uj: Some(262_143_328_850),
        }
    }

    fn get(s: &[Sample], d: &m::MetricDef, l: &str) -> Option<f64> {
        s.iter()
            .find(|x| x.def.name == d.name && x.labels[0] == l)
            .map(|x| x.value)
    }

    #[test]
    fn a_wrap_counts_the_rest_of_the_range() {
        assert_eq!(increase(100, 250, Some(1000)), 150);
        assert_eq!(increase(900, 50, Some(1000)), 150);
        assert_eq!(increase(900, 50, None), 50);
        // A drop from far below the top is a reset, not a wrap worth most of the range.
        assert_eq!(increase(300, 50, Some(1000)), 50);
    }

    #[test]
    fn counters_start_at_zero_and_cross_a_wrap() {
        let mut r = Rapl::default();
        let s = r.samples(
            &[
                zone("package-0", true, 262_000_000_000),
                zone("package-0-dram", false, 5_000_000),
                zone("package-0-core", false, 1),
            ],
            0.0,
        );
        assert_eq!(get(&s, &m::ENERGY_JOULES, "package-0"), Some(0.0));
        assert_eq!(get(&s, &m::POWER_WATTS, "package-0"), None);
        // 2 s later the package counter wrapped: 143,328.85 J to the wrap, then 56.67 J.
        let s = r.samples(
            &[
                zone("package-0", true, 56_671_150),
                zone("package-0-dram", false, 25_000_000),
                zone("package-0-core", false, 2),
            ],
            2.0,
        );
        let pkg = get(&s, &m::ENERGY_JOULES, "package-0").unwrap();
        assert!((pkg - 200.0).abs() < 1e-6, "{pkg}");
        assert!((get(&s, &m::POWER_WATTS, "package-0").unwrap() - 100.0).abs() < 1e-6);
        assert_eq!(get(&s, &m::ENERGY_JOULES, "package-0-dram"), Some(20.0));
        // The node: package + its DRAM; the core subzone is inside the package.
        let node = get(&s, &m::NODE_ENERGY_JOULES, "rapl").unwrap();
        assert!((node - 220.0).abs() < 1e-6, "{node}");
        assert!((get(&s, &m::NODE_POWER_WATTS, "rapl").unwrap() - 110.0).abs() < 1e-6);
    }

    #[test]
    fn psys_is_the_node_when_present() {
        let mut r = Rapl::default();
        r.samples(&[zone("package-0", true, 0), zone("psys", true, 0)], 0.0);
        let s = r.samples(
            &[
                zone("package-0", true, 10_000_000),
                zone("psys", true, 30_000_000),
            ],
            1.0,
        );
        assert_eq!(get(&s, &m::NODE_ENERGY_JOULES, "rapl"), Some(30.0));
    }

    #[test]
    fn unreadable_or_missing_zones_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_zones(dir.path()).unwrap_err();
        assert!(e.contains("class/powercap") && e.contains("no RAPL"), "{e}");
        let z = dir.path().join("class/powercap/intel-rapl:0");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::write(z.join("name"), "package-0\n").unwrap();
        let e = read_zones(dir.path()).unwrap_err();
        assert!(e.contains("energy_uj"), "{e}");
        std::fs::write(z.join("energy_uj"), "123\n").unwrap();
        // A second zone that cannot be read does not hide the first.
        let z1 = dir.path().join("class/powercap/intel-rapl:1");
        std::fs::create_dir_all(&z1).unwrap();
        std::fs::write(z1.join("name"), "package-1\n").unwrap();
        let (zones, bad) = read_zones(dir.path()).unwrap();
        assert_eq!(zones.len(), 1);
        assert!(bad[0].contains("intel-rapl:1/energy_uj"), "{bad:?}");
        assert_eq!(zones[0].component, "package-0");
        assert_eq!(zones[0].max_uj, None);
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = read_error(&z.join("energy_uj"), &denied);
        assert!(
            e.contains("energy_uj: permission denied") && e.contains("root"),
            "{e}"
        );
    }
}
