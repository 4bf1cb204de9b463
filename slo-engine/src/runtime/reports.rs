//! The leader's scheduled reports: each one due since the last tick is built from the ledger and
//! queued for delivery, once.

use std::time::Duration;

use crate::config::{Config, ReportSchedule};
use crate::ledger::Ledger;
use crate::notify;

/// Queues the reports due up to `t` (Unix seconds) since the reports cursor, then moves the
/// cursor to `t`. Without a cursor, since two intervals ago: a restart or a failover within
/// two intervals still sends them, and their outbox keys make them once only.
pub(super) async fn queue_due(
    config: &Config,
    ledger: &Ledger,
    wake: &tokio::sync::Notify,
    interval: Duration,
    t: i64,
) {
    let since = match ledger.cursor("reports").await {
        Ok(Some(ms)) => ms.div_euclid(1000),
        _ => t - (2 * interval.as_secs() as i64).max(2),
    }
    .max(t - 86_400);
    for sched in &config.alerting.reports {
        for at in notify::occurrences(sched, since, t) {
            queue(config, ledger, wake, sched, at).await;
        }
    }
    if !config.alerting.reports.is_empty()
        && let Err(e) = ledger.record_upto(&[], Some(("reports", t * 1000))).await
    {
        tracing::error!(error = %e, "saving the reports cursor failed");
    }
}

/// Builds the report of `sched` ending `at` and queues its mail (waking the delivery loop).
async fn queue(
    config: &Config,
    ledger: &Ledger,
    wake: &tokio::sync::Notify,
    sched: &ReportSchedule,
    at: i64,
) {
    let rep = match crate::report::build(config, ledger, at - sched.range, at).await {
        Ok(rep) => rep,
        Err(e) => {
            tracing::error!(error = %e, report = %sched.name, "building a report failed");
            return;
        }
    };
    let mail = notify::ReportMail {
        subject: format!("cellwatch budget report: {}", sched.name),
        text: crate::report::table(&rep),
        csv: crate::report::csv(&rep),
    };
    let row = notify::report_row(sched, at, &mail);
    match ledger.queue(&[row]).await {
        Ok(()) => {
            tracing::info!(report = %sched.name, receiver = %sched.receiver, "report queued");
            wake.notify_one();
        }
        Err(e) => {
            tracing::error!(error = %e, report = %sched.name, "queueing a report failed")
        }
    }
}
