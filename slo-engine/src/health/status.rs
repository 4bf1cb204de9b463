//! What the health layer says about a cell now: power against its cap, links, latency, restart
//! loops; and the drain decision a load balancer reads.

use serde::Serialize;

/// The health of one cell at one evaluation.
#[derive(Debug, Clone, Default, Serialize, PartialEq, schemars::JsonSchema)]
pub struct CellHealth {
    /// Whole-cell power now (the sum of the answering nodes' whole-node power), watts.
    pub power_watts: Option<f64>,
    /// The cell's power cap (`power_cap_watts`), watts.
    pub power_cap_watts: Option<f64>,
    /// Cap minus power now, watts (negative: over the cap).
    pub power_headroom_watts: Option<f64>,
    /// 95th percentile request latency over the last 5 minutes, seconds.
    pub latency_p95_seconds: Option<f64>,
    /// 95th percentile time to first token over the last 5 minutes, seconds.
    pub ttft_p95_seconds: Option<f64>,
    /// Every link of the cell's topology is healthy now (`None` without a topology, or while a
    /// link's state is unknown).
    pub links_healthy: Option<bool>,
    /// The expected links, in topology order.
    pub links: Vec<LinkStatus>,
    /// Nodes that answer but cannot be reached over the cell's links from the largest group of
    /// linked nodes (empty: the mesh is whole).
    pub unreachable: Vec<String>,
    /// Nodes and children in a restart loop.
    pub restart_loops: Vec<RestartLoop>,
}

/// One expected link between two nodes of a cell.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct LinkStatus {
    /// One end (the first node of the pair in the topology).
    pub node: String,
    /// Its port (interface, e.g. `en2`), when known.
    pub port: Option<String>,
    /// The other end.
    pub peer: String,
    /// The other end's port, when known.
    pub peer_port: Option<String>,
    /// The link's state now.
    pub state: LinkState,
    /// Negotiated speed now (the lower of the two ends), bytes per second.
    pub speed_bytes_per_second: Option<f64>,
    /// Expected speed, bytes per second.
    pub expected_speed_bytes_per_second: Option<f64>,
    /// RDMA active on both ends (`None`: not reported).
    pub rdma_active: Option<bool>,
    /// Interface errors per second over the last reading interval (both ends).
    pub errors_per_second: Option<f64>,
    /// Up/down transitions within the flap window.
    pub transitions: u32,
    /// Transitions reached the flap threshold.
    pub flapping: bool,
}

/// The state of a link.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Up, at its speed, RDMA active where required, errors under the threshold.
    Up,
    /// Down on either end, or never seen.
    Down,
    /// Up below its expected speed.
    Slow,
    /// Up, RDMA required but not active.
    RdmaInactive,
    /// Up with an error rate over the threshold.
    Errors,
    /// Neither end reports its links yet (their exporters answer without link series, or do
    /// not answer): not judged.
    Unknown,
}

impl LinkState {
    /// The state's name, as in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkState::Up => "up",
            LinkState::Down => "down",
            LinkState::Slow => "slow",
            LinkState::RdmaInactive => "rdma_inactive",
            LinkState::Errors => "errors",
            LinkState::Unknown => "unknown",
        }
    }
}

/// A server or exporter child that restarted too often.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct RestartLoop {
    /// The node.
    pub node: String,
    /// `inference` (the inference server) or `collector` (an exporter child).
    #[schemars(extend("enum" = ["inference", "collector"]))]
    pub kind: &'static str,
    /// The server (`proxy`, `vllm`…) or collector.
    pub what: String,
    /// Restarts within the window.
    pub restarts: f64,
}

/// Why a cell should be drained.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct DrainReason {
    /// `down`, `mesh_split`, `over_power_cap`, `flapping`, `budget_exhausted`, `maintenance`;
    /// `not_evaluated` before the engine's first evaluation.
    #[schemars(extend("enum" = ["down", "mesh_split", "over_power_cap", "flapping", "budget_exhausted", "maintenance", "not_evaluated"]))]
    pub reason: &'static str,
    /// For people.
    pub detail: String,
}
