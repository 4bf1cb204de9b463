//! Recorded command outputs replayed through the real parsers and collectors into a [`Store`],
//! without running anything: the golden `/metrics`, the benchmarks and anything else that needs
//! a deterministic snapshot use it.
//!
//! [`linux_snapshot`] does the same for the Linux collectors from `exporter/testdata/linux/`.
//!
//! The directory holds the files the stand-in commands print (`exporter/testdata/macos/`):
//! `powermetrics-m3ultra.plist`, `vm_stat.txt`, `sysctl.txt`, `netstat-ib.txt`,
//! `networksetup.txt`, `system_profiler.json`, `ibv_devinfo.txt`, `rdma_ctl.txt`; and a vLLM
//! `/metrics` page at `../inference/vllm.prom` for the inference series.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::collector::macmon::MacmonHandler;
use crate::collector::powermetrics::PowerHandler;
use crate::collector::thunderbolt::{Counters, Topology};
use crate::collector::vmstat;
use crate::node::Identity;
use crate::parse::{
    ParseError, ibv_devinfo, netstat, networksetup, rdma_ctl, sysctl, system_profiler, vm_stat,
};
use crate::store::Store;
use crate::supervisor::Handler;

/// A recording that could not be replayed.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file did not parse.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ParseError,
    },
}

struct Dir<'a>(&'a Path);

impl Dir<'_> {
    fn read(&self, name: &str) -> Result<(PathBuf, String), ReplayError> {
        let path = self.0.join(name);
        std::fs::read_to_string(&path)
            .map(|t| (path.clone(), t))
            .map_err(|source| ReplayError::Read { path, source })
    }

    fn parse<T>(
        &self,
        name: &str,
        f: impl FnOnce(&str) -> Result<T, ParseError>,
    ) -> Result<T, ReplayError> {
        let (path, text) = self.read(name)?;
        f(&text).map_err(|source| ReplayError::Parse { path, source })
    }
}

/// One snapshot of every collector from the recordings in `dir`: two powermetrics windows (so
/// energy has accumulated), one macmon line (`sys_power` 236.5 W, `ram_power` 11.25 W over 1 s),
/// one vm_stat/sysctl sample, one Thunderbolt sample. Durations are zero, so the result is
/// deterministic.
pub fn snapshot(dir: &Path, identity: &Identity) -> Result<Arc<Store>, ReplayError> {
    let d = Dir(dir);
    let store = Store::new();
    store.set_info(identity.samples());

    let slot = store.slot("powermetrics");
    slot.supervised();
    let (path, doc) = d.read("powermetrics-m3ultra.plist")?;
    let mut power = PowerHandler::default();
    let mut samples = Vec::new();
    for _ in 0..2 {
        samples = power
            .document(doc.as_bytes())
            .map_err(|source| ReplayError::Parse {
                path: path.clone(),
                source,
            })?;
    }
    slot.publish(samples, Duration::ZERO, true);

    let slot = store.slot("macmon");
    slot.supervised();
    let mut macmon = MacmonHandler::new(Duration::from_secs(1));
    let line = macmon
        .document(br#"{"sys_power": 236.5, "ram_power": 11.25}"#)
        .map_err(|source| ReplayError::Parse {
            path: "macmon".into(),
            source,
        })?;
    slot.publish(line, Duration::ZERO, true);

    let slot = store.slot("vmstat");
    let vm = d.parse("vm_stat.txt", vm_stat::parse)?;
    let ctl = d.parse("sysctl.txt", sysctl::parse)?;
    let (samples, problems) = vmstat::samples(Some(&vm), Some(&ctl));
    slot.publish(samples, Duration::ZERO, problems.is_empty());

    let slot = store.slot("thunderbolt");
    let topology = Topology {
        links: Topology::links_from(&d.parse("networksetup.txt", networksetup::parse)?),
        receptacles: Some(d.parse("system_profiler.json", system_profiler::parse)?),
        rdma_devices: Some(d.parse("ibv_devinfo.txt", ibv_devinfo::parse)?),
        rdma_enabled: Some(d.parse("rdma_ctl.txt", rdma_ctl::parse)?),
    };
    let mut samples = topology.samples();
    samples.extend(
        Counters::default().samples(&topology.links, &d.parse("netstat-ib.txt", netstat::parse)?),
    );
    slot.publish(samples, Duration::ZERO, true);

    let slot = store.slot("inference");
    let (path, page) = d.read("../inference/vllm.prom")?;
    let models = crate::proxy::ModelLabels::new(20);
    let readings =
        crate::adapter::normalize(crate::adapter::Server::Vllm, &page, "unknown", &models)
            .map_err(|source| ReplayError::Parse { path, source })?;
    let families = crate::store::SharedFamilies::default();
    let mut dropped = crate::adapter::DropCounter::default();
    dropped.register(crate::adapter::Server::Vllm);
    let mut all = crate::adapter::Monotonize::default().families(&readings);
    all.push(dropped.family());
    all.push(crate::adapter::restarts_family([(
        crate::adapter::Server::Vllm,
        &crate::adapter::RestartWatch::default(),
    )]));
    families.set(all);
    if let Ok(registry) = families.registry() {
        slot.register_live(registry);
    }
    slot.publish(Vec::new(), Duration::ZERO, true);

    Ok(store)
}

/// One snapshot of the Linux collectors from the fixture tree in `dir`
/// (`exporter/testdata/linux/`): meminfo from `proc/`, two readings of RAPL and InfiniBand one
/// second apart (`sys/`, then `sys-later/`), two nvidia-smi samples of `nvidia-smi.csv` 1 s
/// apart; the metering proxy's series of one model at zero, with `--otlp.traces` (no span lost
/// yet). Durations are zero, so the result is deterministic.
pub fn linux_snapshot(dir: &Path, identity: &Identity) -> Result<Arc<Store>, ReplayError> {
    use crate::collector::{infiniband, meminfo, nvidia, rapl};
    let store = Store::new();
    store.set_info(identity.samples());
    let failed = |what: &str, e: String| ReplayError::Read {
        path: dir.join(what),
        source: std::io::Error::other(e),
    };
    let settings = |sys: &str| crate::collector::Settings {
        interval: Duration::from_secs(1),
        slow_interval: Duration::from_secs(30),
        command_timeout: Duration::from_secs(10),
        powermetrics_samplers: String::new(),
        powermetrics_sudo: false,
        sysfs: dir.join(sys),
        procfs: dir.join("proc"),
        inference: Default::default(),
    };

    let slot = store.slot("meminfo");
    let s = meminfo::read(&settings("sys")).map_err(|e| failed("proc/meminfo", e))?;
    slot.publish(s, Duration::ZERO, true);

    let slot = store.slot("rapl");
    let mut r = rapl::Rapl::default();
    let (first, _) = rapl::read_zones(&dir.join("sys")).map_err(|e| failed("sys", e))?;
    r.samples(&first, 0.0);
    let (later, _) =
        rapl::read_zones(&dir.join("sys-later")).map_err(|e| failed("sys-later", e))?;
    slot.publish(r.samples(&later, 1.0), Duration::ZERO, true);

    let slot = store.slot("nvidia");
    slot.supervised();
    let (path, csv) = Dir(dir).read("nvidia-smi.csv")?;
    let mut h = nvidia::NvidiaHandler::nominal(Duration::from_secs(1));
    let mut samples = Vec::new();
    for _ in 0..2 {
        for line in csv.lines() {
            samples = h
                .document(line.as_bytes())
                .map_err(|source| ReplayError::Parse {
                    path: path.clone(),
                    source,
                })?;
        }
    }
    slot.publish(samples, Duration::ZERO, true);

    let slot = store.slot("infiniband");
    let mut ports = infiniband::Ports::default();
    let first = infiniband::read_ports(&dir.join("sys")).map_err(|e| failed("sys", e))?;
    ports.samples(&first);
    let later =
        infiniband::read_ports(&dir.join("sys-later")).map_err(|e| failed("sys-later", e))?;
    slot.publish(ports.samples(&later), Duration::ZERO, true);

    // The metering proxy before its first request's end: one model's series at zero.
    let slot = store.slot("inference");
    let meters = crate::proxy::Meters::new(
        crate::proxy::DEFAULT_BUCKETS,
        cellwatch_metrics::DEFAULT_TPOT_BUCKETS,
    )
    .map_err(|e| failed("(metering proxy)", e.to_string()))?;
    meters.prepare("meta-llama/Llama-3.3-70B-Instruct");
    crate::proxy::trace::idle_dropped_collector()
        .and_then(|c| meters.registry.register(c))
        .map_err(|e| failed("(metering proxy)", e.to_string()))?;
    slot.register_live(meters.registry.clone());
    slot.publish(Vec::new(), Duration::ZERO, true);
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_broken_recording_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = Identity {
            cell: "c".into(),
            node: "n".into(),
            hw_model: String::new(),
            os_version: String::new(),
        };
        let e = snapshot(dir.path(), &id).unwrap_err().to_string();
        assert!(e.contains("powermetrics-m3ultra.plist"), "{e}");
        std::fs::write(dir.path().join("powermetrics-m3ultra.plist"), "garbage").unwrap();
        let e = snapshot(dir.path(), &id).unwrap_err().to_string();
        assert!(
            e.contains("powermetrics-m3ultra.plist") && e.contains("not a plist"),
            "{e}"
        );
    }
}
