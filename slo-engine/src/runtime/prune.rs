//! The leader's hourly pruning of the ledger.

use std::time::Duration;

use crate::config::{Budgeting, Config};
use crate::ledger::Ledger;
use crate::model::MINUTE_RETENTION;

/// Whether the tick at `t` (Unix seconds) prunes: the first tick of each hour.
pub(super) fn due(t: i64, interval: Duration) -> bool {
    t % 3600 < interval.as_secs() as i64
}

/// Deletes what the evaluation no longer reads, up to `t`; `retention` (seconds) is the
/// longest period. Failures are left for the next hour.
pub(super) async fn prune(config: &Config, ledger: &Ledger, t: i64, retention: i64) {
    // Minute rows: a day for the short windows (longer ones come from the rollups), the whole
    // period for time-slice SLOs (judged again from them when their threshold changes);
    // rollups: the period.
    for slo in &config.slos {
        let keep = match slo.budgeting {
            Budgeting::Timeslices { .. } => retention,
            Budgeting::Occurrences => MINUTE_RETENTION,
        };
        let _ = ledger.prune_minutes(Some(&slo.name), t - keep).await;
    }
    let _ = ledger.prune_minutes(Some(""), t - MINUTE_RETENTION).await;
    // And rows of SLOs no longer configured.
    let _ = ledger.prune_minutes(None, t - retention).await;
    let _ = ledger.prune_hourly(t - retention).await;
    // Delivered notifications and ended silences: kept a period for the record.
    let _ = ledger.prune_delivered(t - retention).await;
}
