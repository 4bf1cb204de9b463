//! Muting: silences and maintenance windows that keep an alert from notifying.

use crate::config::Maintenance;
use crate::model::{CompiledSilence, Labels};

/// Whether an alert sends nothing at `now`: a silence mutes it, or its cell is in a
/// maintenance window.
pub fn muted(
    silences: &[&CompiledSilence],
    maintenance: &[Maintenance],
    labels: &Labels,
    now: i64,
) -> bool {
    silences.iter().any(|s| s.mutes(labels, now))
        || labels
            .get("cell")
            .is_some_and(|c| maintenance.iter().any(|m| m.active(c, now)))
}
