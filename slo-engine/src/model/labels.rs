//! Labels, the alert names, fingerprints.

use std::collections::BTreeMap;

/// An alert's labels: its identity.
pub type Labels = BTreeMap<String, String>;

/// The alert names.
pub mod names {
    /// An SLO burns its error budget too fast (`severity` page or ticket).
    pub const BURN: &str = "CellwatchErrorBudgetBurn";
    /// An SLO has no error budget left in its period.
    pub const EXHAUSTED: &str = "CellwatchErrorBudgetExhausted";
    /// An SLO of a cell has had no data for a while.
    pub const NO_DATA: &str = "CellwatchSLONoData";
    /// No exporter of a cell answers.
    pub const CELL_DOWN: &str = "CellwatchCellDown";
    /// An expected link of a cell is down, slower than expected, without RDMA or erroring
    /// (ticket; labels `node`, `peer`).
    pub const LINK_UNHEALTHY: &str = "CellwatchLinkUnhealthy";
    /// An expected link went down and up too often (ticket; labels `node`, `peer`).
    pub const LINK_FLAPPING: &str = "CellwatchLinkFlapping";
    /// A node of a cell answers but cannot be reached over the cell's links (page).
    pub const MESH_SPLIT: &str = "CellwatchMeshSplit";
    /// A cell's power stays above the warn share of its cap (page).
    pub const POWER_NEAR_CAP: &str = "CellwatchPowerNearCap";
    /// An inference server restarts in a loop (ticket; labels `node`, `server`).
    pub const INFERENCE_RESTART_LOOP: &str = "CellwatchInferenceRestartLoop";
    /// An exporter's child process restarts in a loop (ticket; labels `node`, `collector`).
    pub const COLLECTOR_RESTART_LOOP: &str = "CellwatchCollectorRestartLoop";
}

/// Prometheus' label-set fingerprint: FNV-1a 64 over the sorted names and values, each
/// followed by 0xFF; as Alertmanager prints it (16 hex digits).
pub fn fingerprint(labels: &Labels) -> String {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    for (k, v) in labels {
        h.write(k.as_bytes());
        h.write_u8(0xFF);
        h.write(v.as_bytes());
        h.write_u8(0xFF);
    }
    format!("{:016x}", h.finish())
}
