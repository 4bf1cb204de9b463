//! The node's identity for `cellwatch_node_info`, probed once at start.

use std::time::Duration;

use cellwatch_metrics as m;

use crate::command::run_ok;
use crate::store::Sample;

/// What `cellwatch_node_info` says about this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `--cell`.
    pub cell: String,
    /// `--node`, or the host name.
    pub node: String,
    /// e.g. `Mac15,14`; empty when unknown.
    pub hw_model: String,
    /// e.g. `26.2`; empty when unknown.
    pub os_version: String,
}

impl Identity {
    /// The info series (node and build).
    pub fn samples(&self) -> Vec<Sample> {
        vec![
            Sample::new(
                &m::NODE_INFO,
                &[&self.cell, &self.node, &self.hw_model, &self.os_version],
                1.0,
            ),
            Sample::new(&m::BUILD_INFO, &[env!("CARGO_PKG_VERSION")], 1.0),
        ]
    }
}

/// The host name, or `unknown`.
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Hardware model and OS version: `sysctl -n hw.model` and `sw_vers -productVersion` on macOS;
/// the DMI product name and kernel release on Linux. Empty strings where unknown.
pub async fn probe(timeout: Duration) -> (String, String) {
    if cfg!(target_os = "macos") {
        let model = run_ok("sysctl", &["-n", "hw.model"], timeout)
            .await
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let version = run_ok("sw_vers", &["-productVersion"], timeout)
            .await
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        (model, version)
    } else {
        (
            read_trimmed("/sys/class/dmi/id/product_name"),
            read_trimmed("/proc/sys/kernel/osrelease"),
        )
    }
}
