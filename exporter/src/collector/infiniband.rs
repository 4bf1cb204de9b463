//! `infiniband` collector (Linux): InfiniBand and RoCE ports under `SYSFS/class/infiniband` into
//! the link and RDMA families the Thunderbolt links of Apple nodes report. A port is the link
//! `DEVICE/PORT`; data counters count 4-octet words (× 4 into bytes); the 64-bit
//! `counters_ext/*_64` files are read when present, else `counters/`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use cellwatch_metrics as m;
use tokio::time::Instant;

use super::{Info, Problems, Settings, ticker};
use crate::counter::Monotonic;
use crate::parse::sysfs;
use crate::store::{Sample, Slot};

/// Registration.
pub const INFO: Info = Info {
    name: "infiniband",
    default_on_macos: false,
    default_on_linux: true,
    help: "InfiniBand/RoCE port counters, rate and state from SYSFS/class/infiniband",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// One port's reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Port {
    /// The RDMA device (`mlx5_0`).
    pub device: String,
    /// The port number.
    pub port: String,
    /// Logical state number (4: ACTIVE).
    pub state: Option<u32>,
    /// Physical state number (5: LinkUp).
    pub phys_state: Option<u32>,
    /// Rate, bytes per second.
    pub rate: Option<f64>,
    /// Bytes received.
    pub rx_bytes: Option<u64>,
    /// Bytes transmitted.
    pub tx_bytes: Option<u64>,
    /// Packets received.
    pub rx_packets: Option<u64>,
    /// Packets transmitted.
    pub tx_packets: Option<u64>,
    /// Receive errors.
    pub rx_errors: Option<u64>,
    /// Transmit discards.
    pub tx_discards: Option<u64>,
}

impl Port {
    fn link(&self) -> String {
        format!("{}/{}", self.device, self.port)
    }
}

fn read_opt(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// Reads every port. No `class/infiniband` directory means no ports (not an error).
pub fn read_ports(sysfs: &Path) -> Result<Vec<Port>, String> {
    let root = sysfs.join("class/infiniband");
    let Ok(devices) = std::fs::read_dir(&root) else {
        return Ok(Vec::new());
    };
    let mut names: Vec<String> = devices
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for dev in names {
        let ports_dir = root.join(&dev).join("ports");
        let Ok(ports) = std::fs::read_dir(&ports_dir) else {
            continue;
        };
        let mut ports: Vec<String> = ports
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ports.sort();
        for port in ports {
            let dir = ports_dir.join(&port);
            let what = "infiniband sysfs";
            let at = |p: &Path, e: crate::parse::ParseError| format!("{}: {e}", p.display());
            let state = |f: &str| -> Result<Option<u32>, String> {
                let p = dir.join(f);
                read_opt(&p)
                    .map(|t| sysfs::state(what, &t).map(|s| s.0).map_err(|e| at(&p, e)))
                    .transpose()
            };
            // counters_ext/NAME_64 when present, else counters/NAME; × words for data.
            let counter = |name: &str, ext: &str, words: u64| -> Result<Option<u64>, String> {
                for p in [
                    dir.join("counters_ext").join(ext),
                    dir.join("counters").join(name),
                ] {
                    if let Some(t) = read_opt(&p) {
                        let v = sysfs::counter(what, &t).map_err(|e| at(&p, e))?;
                        if let Some(v) = v {
                            return Ok(Some(v.saturating_mul(words)));
                        }
                    }
                }
                Ok(None)
            };
            let rate_path = dir.join("rate");
            out.push(Port {
                device: dev.clone(),
                port: port.clone(),
                state: state("state")?,
                phys_state: state("phys_state")?,
                rate: read_opt(&rate_path)
                    .map(|t| sysfs::rate(what, &t).map_err(|e| at(&rate_path, e)))
                    .transpose()?,
                rx_bytes: counter("port_rcv_data", "port_rcv_data_64", 4)?,
                tx_bytes: counter("port_xmit_data", "port_xmit_data_64", 4)?,
                rx_packets: counter("port_rcv_packets", "port_rcv_packets_64", 1)?,
                tx_packets: counter("port_xmit_packets", "port_xmit_packets_64", 1)?,
                rx_errors: counter("port_rcv_errors", "-", 1)?,
                tx_discards: counter("port_xmit_discards", "-", 1)?,
            });
        }
    }
    Ok(out)
}

/// Counters that never go backwards, per link and series.
#[derive(Debug, Default)]
pub struct Ports {
    counters: BTreeMap<(String, &'static str), Monotonic>,
}

impl Ports {
    /// Samples for one reading of every port.
    pub fn samples(&mut self, ports: &[Port]) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut active: BTreeMap<&str, bool> = BTreeMap::new();
        for p in ports {
            let link = p.link();
            // sysfs does not know the peer: no peer, no domains.
            out.push(Sample::new(
                &m::LINK_INFO,
                &[&link, &p.device, "", "", ""],
                1.0,
            ));
            let up = p.phys_state == Some(5);
            if p.phys_state.is_some() {
                out.push(Sample::new(&m::LINK_UP, &[&link], f64::from(u8::from(up))));
            }
            if let Some(r) = p.rate.filter(|_| up) {
                out.push(Sample::new(&m::LINK_SPEED, &[&link], r));
            }
            *active.entry(&p.device).or_default() |= p.state == Some(4);
            for (def, key, v, dir) in [
                (&m::LINK_RECEIVED_BYTES, "rxb", p.rx_bytes, None),
                (&m::LINK_TRANSMITTED_BYTES, "txb", p.tx_bytes, None),
                (&m::LINK_RECEIVED_PACKETS, "rxp", p.rx_packets, None),
                (&m::LINK_TRANSMITTED_PACKETS, "txp", p.tx_packets, None),
                (&m::LINK_ERRORS, "rxe", p.rx_errors, Some("received")),
                (&m::LINK_ERRORS, "txe", p.tx_discards, Some("transmitted")),
            ] {
                let Some(v) = v else { continue };
                let value = self
                    .counters
                    .entry((link.clone(), key))
                    .or_default()
                    .observe(v as f64);
                match dir {
                    Some(d) => out.push(Sample::new(def, &[&link, d], value)),
                    None => out.push(Sample::new(def, &[&link], value)),
                }
            }
        }
        for (dev, a) in active {
            out.push(Sample::new(
                &m::RDMA_PORT_ACTIVE,
                &[dev],
                f64::from(u8::from(a)),
            ));
        }
        out
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let mut tick = ticker(settings.interval);
    let mut problems = Problems::default();
    let mut ports = Ports::default();
    loop {
        tick.tick().await;
        let started = Instant::now();
        match read_ports(&settings.sysfs) {
            Ok(p) => {
                slot.publish(ports.samples(&p), started.elapsed(), true);
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
