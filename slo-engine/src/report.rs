//! Budget reports for any range (`cellwatch-slo report`): per cell and SLO the good and total
//! events (or judged slices), the SLI and the share of the range's error budget used, beside
//! the cell's tokens/kWh and kWh per 1,000 requests; as a table, JSON or CSV.

use serde::Serialize;

use crate::config::{Budgeting, Config};
use crate::engine::range_sums;
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
    let mut rows = Vec::new();
    for cell in &config.cells {
        let t = totals.get(&cell.name).copied().unwrap_or_default();
        for (slo, sums) in config.slos.iter().zip(&per_slo) {
            if !slo.cells.contains(&cell.name) {
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

fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// The report as an aligned text table.
pub fn table(r: &Report) -> String {
    let mut lines = vec![[
        "cell".to_string(),
        "slo".into(),
        "objective".into(),
        "good".into(),
        "total".into(),
        "sli".into(),
        "budget used".into(),
        "tokens/kWh".into(),
        "kWh/1k req".into(),
    ]];
    for x in &r.rows {
        lines.push([
            x.cell.clone(),
            x.slo.clone(),
            format!("{:.2}%", x.objective * 100.0),
            format!("{} {}", x.good, x.unit),
            format!("{}", x.total),
            opt(x.sli, |v| format!("{:.4}%", v * 100.0)),
            opt(x.budget_used, |v| format!("{:.1}%", v * 100.0)),
            opt(x.tokens_per_kwh, |v| format!("{v:.0}")),
            opt(x.kwh_per_1k_requests, |v| format!("{v:.4}")),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "cellwatch budget report {} .. {}\n",
        time(r.from),
        time(r.to)
    );
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The report as JSON.
pub fn json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["from"] = time(r.from).into();
    v["to"] = time(r.to).into();
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// The report as CSV (RFC 4180; empty fields for missing values).
pub fn csv(r: &Report) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "from,to,cell,slo,unit,objective,good,total,sli,budget_used,tokens_per_kwh,kwh_per_1k_requests\n",
    );
    for x in &r.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            time(r.from),
            time(r.to),
            q(&x.cell),
            q(&x.slo),
            x.unit,
            x.objective,
            x.good,
            x.total,
            o(x.sli),
            o(x.budget_used),
            o(x.tokens_per_kwh),
            o(x.kwh_per_1k_requests)
        ));
    }
    out
}
