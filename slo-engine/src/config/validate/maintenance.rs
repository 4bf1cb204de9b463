//! Validation of `maintenance` windows.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Fail, schedule};
use crate::config::error::ConfigError;
use crate::config::raw::RawMaintenance;
use crate::config::types::{Cell, Maintenance};
use crate::util::text::quote;

/// `maintenance:` windows: a schedule that starts some day, at least 1m long, known cells.
pub(super) fn windows(
    raw: &[RawMaintenance],
    cells: &[Cell],
    names: &BTreeSet<String>,
    fail: Fail<'_>,
) -> Result<Vec<Maintenance>, ConfigError> {
    let mut maintenance = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        let f = format!("maintenance[{i}]");
        let (schedule, timezone) = schedule::schedule(
            &f,
            &m.schedule,
            m.timezone.as_deref(),
            "\"0 0 3 * * Sun\" is Sundays at 03:00",
            "never starts a window",
            fail,
        )?;
        if m.duration < Duration::from_secs(60) {
            return Err(fail.at(format!("{f}.duration"), "a window lasts at least 1m"));
        }
        let covered = match &m.cells {
            None => cells.iter().map(|c| c.name.clone()).collect(),
            Some(list) => {
                if let Some(c) = list.iter().find(|c| !names.contains(*c)) {
                    return Err(
                        fail.at(format!("{f}.cells"), format!("no cell named {}", quote(c)))
                    );
                }
                list.iter().cloned().collect()
            }
        };
        maintenance.push(Maintenance {
            name: m.name.clone(),
            cells: covered,
            schedule,
            timezone,
            duration: m.duration.as_secs() as i64,
            exclude_from_budget: m.exclude_from_budget,
        });
    }
    Ok(maintenance)
}
