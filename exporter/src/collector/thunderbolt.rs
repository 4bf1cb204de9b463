//! `thunderbolt` collector: Thunderbolt 5 links and RDMA.
//!
//! Fast (every interval): 64-bit interface counters from `netstat -ib` for the interfaces that
//! `networksetup -listallhardwareports` names `Thunderbolt N`. Slow (every
//! `--collector.thunderbolt.slow-interval`, off the scrape path): the hardware ports, link speed
//! and peers from `system_profiler SPThunderboltDataType -json`, RDMA port state from
//! `ibv_devinfo`, and `rdma_ctl status`. The last three are optional: where a command does not
//! exist (macOS before 26.2, no RDMA), its series are absent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cellwatch_metrics as m;
use tokio::time::Instant;

use super::{Info, Problems, Settings, ticker};
use crate::command::{CommandError, run_ok};
use crate::counter::Monotonic;
use crate::parse::{ParseError, ibv_devinfo, netstat, networksetup, rdma_ctl, system_profiler};
use crate::store::{Sample, Slot};

/// The collector's name (the task code uses this, not `INFO`: a future that refers to the const
/// that boxes it cannot be checked for `Send`).
const NAME: &str = "thunderbolt";

/// Registration.
pub const INFO: Info = Info {
    name: NAME,
    default_on_macos: true,
    default_on_linux: false,
    help: "Thunderbolt 5 link counters, speed, peers and RDMA state (netstat, networksetup, system_profiler, ibv_devinfo, rdma_ctl)",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// One Thunderbolt link: hardware port `Thunderbolt N` and its interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Receptacle number N.
    pub receptacle: u32,
    /// BSD interface, e.g. `en2` (the `link` label).
    pub device: String,
}

/// What the slow sources said last.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Topology {
    /// Thunderbolt links, from the hardware ports.
    pub links: Vec<Link>,
    /// Receptacles, when system_profiler ran.
    pub receptacles: Option<Vec<system_profiler::Receptacle>>,
    /// RDMA devices, when ibv_devinfo ran.
    pub rdma_devices: Option<Vec<ibv_devinfo::Device>>,
    /// RDMA enabled, when rdma_ctl ran.
    pub rdma_enabled: Option<bool>,
}

impl Topology {
    /// Links from parsed hardware ports (the Thunderbolt Bridge is not a link).
    pub fn links_from(ports: &[networksetup::Port]) -> Vec<Link> {
        ports
            .iter()
            .filter_map(|p| {
                p.thunderbolt_receptacle().map(|receptacle| Link {
                    receptacle,
                    device: p.device.clone(),
                })
            })
            .collect()
    }

    /// Link identity, state, speed and RDMA series.
    pub fn samples(&self) -> Vec<Sample> {
        let mut out = Vec::new();
        for link in &self.links {
            let l = link.device.as_str();
            let rdma_name = format!("rdma_{l}");
            let rdma = self
                .rdma_devices
                .as_ref()
                .and_then(|d| d.iter().find(|d| d.name == rdma_name))
                .map_or("", |d| d.name.as_str());
            let receptacle = self
                .receptacles
                .as_ref()
                .and_then(|r| r.iter().find(|r| r.id == link.receptacle));
            let text = |f: fn(&system_profiler::Receptacle) -> Option<&str>| {
                receptacle.and_then(f).unwrap_or("")
            };
            let peer = text(|r| r.peer.as_deref());
            let domain = text(|r| r.domain.as_deref());
            let peer_domain = text(|r| r.peer_domain.as_deref());
            out.push(Sample::new(
                &m::LINK_INFO,
                &[l, rdma, peer, domain, peer_domain],
                1.0,
            ));
            if let Some(r) = receptacle {
                out.push(Sample::new(
                    &m::LINK_UP,
                    &[l],
                    if r.connected { 1.0 } else { 0.0 },
                ));
                if let Some(speed) = r.speed_bytes_per_second {
                    out.push(Sample::new(&m::LINK_SPEED, &[l], speed));
                }
            }
        }
        for d in self.rdma_devices.iter().flatten() {
            out.push(Sample::new(
                &m::RDMA_PORT_ACTIVE,
                &[&d.name],
                if d.active { 1.0 } else { 0.0 },
            ));
        }
        if let Some(e) = self.rdma_enabled {
            out.push(Sample::new(
                &m::RDMA_ENABLED,
                &[],
                if e { 1.0 } else { 0.0 },
            ));
        }
        out
    }
}

/// Interface counters made monotonic across interface resets.
#[derive(Debug, Default)]
pub struct Counters {
    series: HashMap<(String, &'static str), Monotonic>,
}

impl Counters {
    /// Counter samples for `links` from one `netstat -ib` reading.
    pub fn samples(&mut self, links: &[Link], ifaces: &[netstat::Interface]) -> Vec<Sample> {
        let mut out = Vec::new();
        for link in links {
            let Some(i) = ifaces.iter().find(|i| i.name == link.device) else {
                continue;
            };
            let l = link.device.as_str();
            let rows: [(&'static m::MetricDef, Option<&str>, Option<u64>); 6] = [
                (&m::LINK_RECEIVED_BYTES, None, Some(i.ibytes)),
                (&m::LINK_TRANSMITTED_BYTES, None, Some(i.obytes)),
                (&m::LINK_RECEIVED_PACKETS, None, i.ipkts),
                (&m::LINK_TRANSMITTED_PACKETS, None, i.opkts),
                (&m::LINK_ERRORS, Some("received"), i.ierrs),
                (&m::LINK_ERRORS, Some("transmitted"), i.oerrs),
            ];
            for (def, direction, raw) in rows {
                let Some(raw) = raw else { continue };
                let key = (
                    l.to_string(),
                    direction.map_or(def.name, |d| {
                        if d == "received" {
                            "errors_rx"
                        } else {
                            "errors_tx"
                        }
                    }),
                );
                let v = self.series.entry(key).or_default().observe(raw as f64);
                match direction {
                    Some(d) => out.push(Sample::new(def, &[l, d], v)),
                    None => out.push(Sample::new(def, &[l], v)),
                }
            }
        }
        out
    }
}

#[derive(Debug, Default)]
struct Shared {
    topology: Option<Topology>,
    slow_failed: bool,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs an optional command: `Ok(None)` when it does not exist here (logged once).
async fn optional<T>(
    program: &'static str,
    args: &[&str],
    settings: &Settings,
    absent_logged: &mut bool,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<Option<T>, String> {
    match run_ok(program, args, settings.command_timeout).await {
        Ok(out) => parse(&out).map(Some).map_err(|e| e.to_string()),
        Err(e @ CommandError::NotFound { .. }) => {
            if !*absent_logged {
                tracing::info!(collector = NAME, program, "{e}; its series are omitted");
                *absent_logged = true;
            }
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn slow_loop(settings: Settings, shared: Arc<Mutex<Shared>>, slot: Arc<Slot>) {
    let mut tick = ticker(settings.slow_interval);
    let mut problems = Problems::default();
    let mut absent = [false; 3];
    loop {
        tick.tick().await;
        let mut errors = Vec::new();
        let mut topo = Topology::default();
        match run_ok(
            "networksetup",
            &["-listallhardwareports"],
            settings.command_timeout,
        )
        .await
        {
            Ok(out) => match networksetup::parse(&out) {
                Ok(ports) => topo.links = Topology::links_from(&ports),
                Err(e) => errors.push(e.to_string()),
            },
            Err(e) => errors.push(e.to_string()),
        }
        if !errors.is_empty() {
            // Keep the links we knew: one failed poll must not make every link series vanish.
            topo.links = lock(&shared)
                .topology
                .as_ref()
                .map(|t| t.links.clone())
                .unwrap_or_default();
        }
        {
            // Counters can start before the slow sources below answer.
            let mut sh = lock(&shared);
            let mut early = sh.topology.clone().unwrap_or_default();
            early.links = topo.links.clone();
            sh.topology = Some(early);
        }
        let [sp, ibv, rdma] = &mut absent;
        match optional(
            "system_profiler",
            &["SPThunderboltDataType", "-json"],
            &settings,
            sp,
            system_profiler::parse,
        )
        .await
        {
            Ok(r) => topo.receptacles = r,
            Err(e) => errors.push(e),
        }
        match optional("ibv_devinfo", &[], &settings, ibv, ibv_devinfo::parse).await {
            Ok(d) => topo.rdma_devices = d,
            Err(e) => errors.push(e),
        }
        match optional("rdma_ctl", &["status"], &settings, rdma, rdma_ctl::parse).await {
            Ok(e) => topo.rdma_enabled = e,
            Err(e) => errors.push(e),
        }
        {
            let mut sh = lock(&shared);
            sh.topology = Some(topo);
            sh.slow_failed = !errors.is_empty();
        }
        if !errors.is_empty() {
            slot.error();
        }
        problems.report(NAME, &errors);
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let shared = Arc::new(Mutex::new(Shared::default()));
    tokio::spawn(slow_loop(settings.clone(), shared.clone(), slot.clone()));
    let mut tick = ticker(settings.interval);
    let mut counters = Counters::default();
    let mut problems = Problems::default();
    loop {
        tick.tick().await;
        let (topology, slow_ok) = {
            let sh = lock(&shared);
            match &sh.topology {
                Some(t) => (t.clone(), !sh.slow_failed),
                None => continue,
            }
        };
        let started = Instant::now();
        let netstat = run_ok("netstat", &["-ib"], settings.command_timeout)
            .await
            .map_err(|e| e.to_string())
            .and_then(|o| netstat::parse(&o).map_err(|e| e.to_string()));
        let mut samples = topology.samples();
        let errors = match &netstat {
            Ok(ifaces) => {
                samples.extend(counters.samples(&topology.links, ifaces));
                vec![]
            }
            Err(e) => vec![e.clone()],
        };
        if !errors.is_empty() {
            slot.error();
        }
        slot.publish(samples, started.elapsed(), errors.is_empty() && slow_ok);
        problems.report(NAME, &errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, ibytes: u64, ierrs: u64) -> netstat::Interface {
        netstat::Interface {
            name: name.into(),
            ipkts: Some(1),
            ierrs: Some(ierrs),
            ibytes,
            opkts: Some(1),
            oerrs: Some(0),
            obytes: 7,
        }
    }

    #[test]
    fn counters_survive_an_interface_reset() {
        let links = vec![Link {
            receptacle: 3,
            device: "en2".into(),
        }];
        let mut c = Counters::default();
        c.samples(
            &links,
            &[iface("en2", 5_000_000_000, 2), iface("en0", 1, 0)],
        );
        let s = c.samples(&links, &[iface("en2", 100, 0)]);
        let rx = s
            .iter()
            .find(|s| s.def.name == m::LINK_RECEIVED_BYTES.name)
            .unwrap();
        assert_eq!(rx.value, 5_000_000_100.0);
        let errs = s
            .iter()
            .find(|s| s.def.name == m::LINK_ERRORS.name && s.labels[1] == "received")
            .unwrap();
        assert_eq!(errs.value, 2.0);
        assert!(
            s.iter().all(|s| s.labels[0] == "en2"),
            "en0 is not a Thunderbolt link"
        );
    }

    #[test]
    fn topology_series() {
        let t = Topology {
            links: vec![
                Link {
                    receptacle: 1,
                    device: "en2".into(),
                },
                Link {
                    receptacle: 2,
                    device: "en3".into(),
                },
            ],
            receptacles: Some(vec![system_profiler::Receptacle {
                id: 1,
                connected: true,
                speed_bytes_per_second: Some(1e10),
                peer: Some("studio-b".into()),
                domain: Some("D1".into()),
                peer_domain: Some("P1".into()),
            }]),
            rdma_devices: Some(vec![ibv_devinfo::Device {
                name: "rdma_en2".into(),
                active: true,
            }]),
            rdma_enabled: Some(true),
        };
        let text = crate::store::encode(&t.samples());
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_link_info{link="en2",rdma_device="rdma_en2",peer="studio-b",domain="D1",peer_domain="P1"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_link_info{link="en3",rdma_device="",peer="",domain="",peer_domain=""}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_link_speed_bytes_per_second{link="en2"}"#
            ),
            Some(10000000000.0),
            "{text}"
        );
        assert!(!text.contains(r#"cellwatch_link_up{link="en3"}"#));
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_rdma_port_active{device="rdma_en2"}"#
            ),
            Some(1.0)
        );
        assert!(text.contains("cellwatch_rdma_enabled 1"));
    }
}
