//! Building an SLO report from the ledger.

use serde::Serialize;

use crate::config::{Budgeting, Config};
use crate::eval::range_sums;
use crate::ledger::{Ledger, LedgerError};
use crate::math;

/// One SLO of one cell over the range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Cell.
    pub cell: String,
    /// SLO.
    pub slo: String,
    /// `events` or `slices`.
    pub unit: &'static str,
    /// Objective.
    pub objective: f64,
    /// Good units.
    pub good: f64,
    /// All units.
    pub total: f64,
    /// good / total, when there were any.
    pub sli: Option<f64>,
    /// Bad units over the budget the range's own traffic allowed: 1.0 = all of it.
    pub budget_used: Option<f64>,
    /// The cell's tokens per kWh over the range.
    pub tokens_per_kwh: Option<f64>,
    /// The cell's kWh per 1,000 requests over the range.
    pub kwh_per_1k_requests: Option<f64>,
}

/// A report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Range start (Unix seconds, on the hour).
    pub from: i64,
    /// Range end (Unix seconds, on the hour).
    pub to: i64,
    /// Rows, by cell then SLO in configuration order.
    pub rows: Vec<Row>,
}

/// Builds the report for `[from, to)`, both moved out to whole hours (older minute rows are
/// pruned; hours and days are kept for the period).
pub async fn build(
    config: &Config,
    ledger: &Ledger,
    from: i64,
    to: i64,
) -> Result<Report, LedgerError> {
    let from = from - from.rem_euclid(3600);
    let to = to + (3600 - to.rem_euclid(3600)) % 3600;
    let totals = range_sums(ledger, None, from, to).await?;
    let mut per_slo = Vec::new();
    for slo in &config.slos {
        per_slo.push(range_sums(ledger, Some(slo), from, to).await?);
    }
    let covers: Vec<std::collections::HashSet<&str>> = config
        .slos
        .iter()
        .map(|s| s.cells.iter().map(String::as_str).collect())
        .collect();
    let mut rows = Vec::new();
    for cell in &config.cells {
        let t = totals.get(&cell.name).copied().unwrap_or_default();
        for ((slo, sums), covered) in config.slos.iter().zip(&per_slo).zip(&covers) {
            if !covered.contains(cell.name.as_str()) {
                continue;
            }
            let s = sums.get(&cell.name).copied().unwrap_or_default();
            let (good, total) = (s[0], s[1]);
            let allowed = (1.0 - slo.objective) * total;
            rows.push(Row {
                cell: cell.name.clone(),
                slo: slo.name.clone(),
                unit: match slo.budgeting {
                    Budgeting::Occurrences => "events",
                    Budgeting::Timeslices { .. } => "slices",
                },
                objective: slo.objective,
                good,
                total,
                sli: (total > 0.0).then(|| good / total),
                budget_used: (allowed > 0.0).then(|| (total - good) / allowed),
                tokens_per_kwh: math::tokens_per_kwh(t[2], t[3]),
                kwh_per_1k_requests: math::kwh_per_1k_requests(t[3], t[4]),
            });
        }
    }
    Ok(Report { from, to, rows })
}
