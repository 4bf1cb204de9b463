//! Validation of `reports` schedules.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Fail, schedule};
use crate::config::error::ConfigError;
use crate::config::raw::RawReport;
use crate::config::receiver::Receiver;
use crate::config::types::ReportSchedule;
use crate::util::text::quote;

/// `alerting.reports`: a schedule that fires, a receiver with email, at least 1h each.
pub(super) fn reports(
    raw: &[RawReport],
    receivers: &BTreeMap<String, Receiver>,
    fail: Fail<'_>,
) -> Result<Vec<ReportSchedule>, ConfigError> {
    let mut reports = Vec::new();
    for (i, r) in raw.iter().enumerate() {
        let f = format!("alerting.reports[{i}]");
        let (schedule, timezone) = schedule::schedule(
            &f,
            &r.schedule,
            r.timezone.as_deref(),
            "\"0 0 8 * * Mon\"",
            "never fires",
            fail,
        )?;
        if receivers
            .get(&r.receiver)
            .and_then(Receiver::email)
            .is_none()
        {
            return Err(fail.at(
                format!("{f}.receiver"),
                format!(
                    "no receiver named {} with an email integration",
                    quote(&r.receiver)
                ),
            ));
        }
        if r.range < Duration::from_secs(3600) {
            return Err(fail.at(format!("{f}.range"), "a report covers at least 1h"));
        }
        reports.push(ReportSchedule {
            name: r.name.clone(),
            schedule,
            timezone,
            range: r.range.as_secs() as i64,
            receiver: r.receiver.clone(),
        });
    }
    Ok(reports)
}
