//! Collectors, one per file. Each samples its source in the background and publishes into its
//! [`Slot`]; each can be switched on or off (`--collector.NAME` / `--no-collector.NAME`) and
//! runs on any OS when switched on, finding its commands on `PATH`.

pub mod inference;
pub mod infiniband;
pub mod macmon;
pub mod meminfo;
pub mod nvidia;
pub mod powermetrics;
pub mod rapl;
pub mod thunderbolt;
pub mod vmstat;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::store::Slot;

/// Settings every collector may read (resolved from the command line).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Sampling interval of fast sources.
    pub interval: Duration,
    /// Polling interval of slow sources (`system_profiler`, hardware ports, RDMA state).
    pub slow_interval: Duration,
    /// Longest one command may run.
    pub command_timeout: Duration,
    /// powermetrics samplers.
    pub powermetrics_samplers: String,
    /// Run powermetrics through `sudo -n`.
    pub powermetrics_sudo: bool,
    /// Root of the sysfs tree (`--path.sysfs`).
    pub sysfs: std::path::PathBuf,
    /// Root of the procfs tree (`--path.procfs`).
    pub procfs: std::path::PathBuf,
    /// The inference collector's proxy and adapters.
    pub inference: inference::InferenceSettings,
}

/// Starts a collector: its sampling loop, which runs until the process ends.
pub type StartFn = fn(&Settings, Arc<Slot>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// A collector's static description.
#[derive(Debug, Clone, Copy)]
pub struct Info {
    /// The name used in flags and in the `collector` label.
    pub name: &'static str,
    /// Enabled by default on macOS.
    pub default_on_macos: bool,
    /// Enabled by default on Linux.
    pub default_on_linux: bool,
    /// One line for `--help`.
    pub help: &'static str,
    /// Starts the collector.
    pub start: StartFn,
}

impl Info {
    /// Whether the collector is on by default on the OS this binary was built for.
    pub fn default_enabled(&self) -> bool {
        if cfg!(target_os = "macos") {
            self.default_on_macos
        } else if cfg!(target_os = "linux") {
            self.default_on_linux
        } else {
            false
        }
    }
}

/// Every collector, in flag order.
pub const ALL: &[Info] = &[
    powermetrics::INFO,
    macmon::INFO,
    vmstat::INFO,
    thunderbolt::INFO,
    meminfo::INFO,
    rapl::INFO,
    nvidia::INFO,
    infiniband::INFO,
    inference::INFO,
];

/// Logs a recurring problem once (at warn), then at debug until it changes or clears.
#[derive(Debug, Default)]
pub struct Problems {
    last: Option<String>,
}

impl Problems {
    /// Reports the problems of one sample (empty: all well).
    pub fn report(&mut self, collector: &'static str, problems: &[String]) {
        if problems.is_empty() {
            if self.last.take().is_some() {
                tracing::info!(collector, "collector recovered");
            }
            return;
        }
        let msg = problems.join("; ");
        if self.last.as_deref() == Some(msg.as_str()) {
            tracing::debug!(collector, error = %msg, "sample failed again");
        } else {
            tracing::warn!(collector, error = %msg, "sample failed");
            self.last = Some(msg);
        }
    }
}

/// A ticker for polling loops: first tick at once, then every `period`, never bursting to catch up.
pub fn ticker(period: Duration) -> tokio::time::Interval {
    let mut t = tokio::time::interval(period);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}
