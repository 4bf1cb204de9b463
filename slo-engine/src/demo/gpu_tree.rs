//! The GPU node's simulated sysfs tree: RAPL energy counters and one RoCE port.

use std::path::PathBuf;

use super::{DemoError, io, write_atomically};

/// The RAPL counters' range (`max_energy_range_uj`): they wrap at this many microjoules.
const RAPL_MAX_UJ: u64 = 262_143_328_850;

/// The GPU node's simulated sysfs tree: RAPL zones (package-0 starts a minute before its wrap)
/// and one RoCE port, rewritten every second.
pub(super) struct GpuTree {
    sys: PathBuf,
    zones: Vec<(&'static str, &'static str, f64, u64)>,
    words: u64,
}

impl GpuTree {
    pub(super) fn new(sys: PathBuf) -> Result<GpuTree, DemoError> {
        let t = GpuTree {
            sys,
            zones: vec![
                (
                    "intel-rapl:0",
                    "package-0",
                    60.0,
                    RAPL_MAX_UJ - 60 * 60_000_000,
                ),
                ("intel-rapl:0:0", "dram", 8.0, 1_000_000_000),
                ("intel-rapl:1", "package-1", 60.0, 5_000_000_000),
                ("intel-rapl:1:0", "dram", 8.0, 2_000_000_000),
            ],
            words: 250_000_000_000,
        };
        for (dir, name, _, _) in &t.zones {
            let d = t.sys.join("class/powercap").join(dir);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            std::fs::write(d.join("name"), format!("{name}\n")).map_err(io(&d))?;
            std::fs::write(d.join("max_energy_range_uj"), format!("{RAPL_MAX_UJ}\n"))
                .map_err(io(&d))?;
        }
        let port = t.sys.join("class/infiniband/mlx5_0/ports/1");
        std::fs::create_dir_all(port.join("counters")).map_err(io(&port))?;
        for (f, v) in [
            ("state", "4: ACTIVE"),
            ("phys_state", "5: LinkUp"),
            ("rate", "400 Gb/sec (4X NDR)"),
            ("link_layer", "Ethernet"),
        ] {
            std::fs::write(port.join(f), format!("{v}\n")).map_err(io(&port))?;
        }
        t.write();
        Ok(t)
    }

    /// Writes the counters.
    pub(super) fn write(&self) {
        for (dir, _, _, uj) in &self.zones {
            let d = self.sys.join("class/powercap").join(dir);
            write_atomically(&d.join("energy_uj"), &format!("{uj}\n"));
        }
        let c = self.sys.join("class/infiniband/mlx5_0/ports/1/counters");
        for (f, v) in [
            ("port_rcv_data", self.words),
            ("port_xmit_data", self.words),
            ("port_rcv_packets", self.words / 1024),
            ("port_xmit_packets", self.words / 1024),
            ("port_rcv_errors", 0),
            ("port_xmit_discards", 0),
        ] {
            write_atomically(&c.join(f), &format!("{v}\n"));
        }
    }

    /// Advances the counters by `dt` seconds at `tps` tokens per second and writes them.
    pub(super) fn advance(&mut self, dt: f64, tps: f64) {
        for (_, name, watts, uj) in &mut self.zones {
            let w = if name.starts_with("package") {
                *watts + 0.02 * tps
            } else {
                *watts
            };
            let inc = (w * dt * 1e6) as u64;
            *uj = (*uj + inc) % RAPL_MAX_UJ;
        }
        // Tensor-parallel traffic: 40 KB per generated token, each way, in 4-octet words.
        self.words += (tps * dt * 10_000.0) as u64;
        self.write();
    }
}
