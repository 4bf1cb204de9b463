//! The cells' health and drain decision, added to an evaluation's report.

use std::collections::{BTreeMap, BTreeSet};

use super::report::{Report, SloReport};
use crate::config::Config;
use crate::health::{CellHealth, DrainFacts, drain};

/// Adds each cell's health (from the source's last reading) and the drain decision at `now`
/// to `report`: down, mesh split, over the power cap, a flapping link, a spent budget still
/// burning, or a maintenance window drains a cell.
pub fn attach_health(
    report: &mut Report,
    config: &Config,
    health: &BTreeMap<String, CellHealth>,
    down: &BTreeSet<String>,
    now: i64,
) {
    for c in &mut report.cells {
        let facts = DrainFacts {
            down: down.contains(&c.cell),
            maintenance: config
                .maintenance
                .iter()
                .find(|m| m.active(&c.cell, now))
                .map(|m| m.name.clone()),
            exhausted_burning: report
                .slos
                .iter()
                .filter(|s| s.cell == c.cell && exhausted_and_burning(s))
                .map(|s| s.slo.clone())
                .collect(),
        };
        c.health = health.get(&c.cell).cloned().unwrap_or_else(|| CellHealth {
            power_cap_watts: config
                .cells
                .iter()
                .find(|x| x.name == c.cell)
                .and_then(|x| x.power_cap_watts),
            ..Default::default()
        });
        c.drain = drain(&facts, &c.health);
        c.take_traffic = c.drain.is_empty();
    }
}

/// The budget is spent and the shortest judged window (5m, else 1h) still burns faster than
/// the budget allows.
fn exhausted_and_burning(s: &SloReport) -> bool {
    let burn = ["5m", "1h"]
        .iter()
        .find_map(|w| s.windows.iter().find(|x| x.window == *w)?.burn_rate);
    s.budget_remaining.is_some_and(|b| b <= 0.0) && burn.is_some_and(|b| b > 1.0)
}
