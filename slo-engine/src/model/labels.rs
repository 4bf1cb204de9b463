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
