//! `fleet`: every cell side by side, Apple cells beside the GPU pool.

use cellwatch_metrics as m;
use serde_json::{Value, json};

use super::board::{Board, Kind, q};
use super::promql::{kwh_per_1k, node_power, quantile, tokens_per_kwh};
use super::tune::{budget_thresholds, headroom, take_traffic, unit_min0};
use super::variables::{v_cell, v_datasource};

/// The dashboard (uid `cellwatch-fleet`), row by row.
pub(super) fn dashboard() -> Value {
    let s = "cell=~\"$cell\"";
    let mut b = Board::new();
    efficiency(&mut b, s);
    health(&mut b, s);
    budgets(&mut b, s);
    b.finish(
        "cellwatch-fleet",
        "cellwatch / Fleet",
        "Every cell side by side, Apple cells beside the GPU pool: tokens/kWh, kWh per 1,000 requests, power, latency, power headroom, drain state and budgets.",
        vec![v_datasource(), v_cell(true)],
        "now-6h",
    )
}

/// Efficiency, power, latency and throughput by cell.
fn efficiency(b: &mut Board, s: &str) {
    let by = " by (cell)";
    b.row("Efficiency, every cell");
    b.panel(
        Kind::Timeseries,
        "Tokens per kWh by cell",
        "Generated tokens per kWh of each cell's nodes: Apple cells beside the GPU pool, on the same energy rule.",
        "si:tok/kWh",
        12,
        8,
        vec![q(tokens_per_kwh(s, by), "{{cell}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "kWh per 1,000 requests by cell",
        "Energy per 1,000 finished requests.",
        "kwatth",
        12,
        8,
        vec![q(kwh_per_1k(s, by), "{{cell}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Power by cell",
        "Whole power of each cell's nodes.",
        "watt",
        8,
        8,
        vec![q(format!("sum by (cell) ({})", node_power(s)), "{{cell}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Latency p99 by cell",
        "End-to-end latency of ok requests.",
        "s",
        8,
        8,
        vec![q(
            quantile(0.99, m::INFERENCE_REQUEST_DURATION.name, s, "cell"),
            "{{cell}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Generated tokens per second by cell",
        "Throughput of each cell.",
        "suffix: tok/s",
        8,
        8,
        vec![q(
            format!(
                "sum by (cell) (rate({}{{kind=\"generated\",{s}}}[$__rate_interval]))",
                m::INFERENCE_TOKENS.name
            ),
            "{{cell}}",
        )],
        unit_min0,
    );
}

/// Power headroom and the drain decision by cell.
fn health(b: &mut Board, s: &str) {
    b.row("Health, every cell");
    b.panel(
        Kind::Timeseries,
        "Power headroom by cell",
        "The cell's power_cap_watts minus its whole power now, as cellwatch-slo reads them (below 0: over the cap). Cells without a cap have no line.",
        "watt",
        12,
        8,
        vec![q(
            format!(
                "max by (cell) ({}{{{s}}}) - on (cell) max by (cell) ({}{{{s}}})",
                m::CELL_POWER_CAP.name,
                m::CELL_POWER_WATTS.name
            ),
            "{{cell}}",
        )],
        headroom,
    );
    b.panel(
        Kind::StateTimeline,
        "Take traffic by cell",
        "Whether a load balancer should send the cell traffic (GET /api/v1/cells/CELL/health: 200) or drain it (503; the reasons are cellwatch_cell_drain_reason).",
        "none",
        12,
        8,
        vec![q(
            format!("min by (cell) ({}{{{s}}})", m::CELL_TAKE_TRAFFIC.name),
            "{{cell}}",
        )],
        take_traffic,
    );
}

/// Lowest budget left and firing alerts by cell.
fn budgets(b: &mut Board, s: &str) {
    b.row("Budgets, every cell");
    b.panel(
        Kind::Stat,
        "Lowest error budget left by cell",
        "The least budget any SLO of the cell has left in its period.",
        "percentunit",
        12,
        7,
        vec![q(
            format!("min by (cell) ({}{{{s}}})", m::SLO_BUDGET_REMAINING.name),
            "{{cell}}",
        )],
        budget_thresholds,
    );
    b.panel(
        Kind::Stat,
        "Firing alerts by cell",
        "Alerts firing now, per cell (0 when none).",
        "none",
        12,
        7,
        vec![q(
            format!(
                "count by (cell) ({a}{{state=\"firing\",{s}}}) or (0 * count by (cell) ({o}{{{s}}}))",
                a = m::SLO_ALERTS.name,
                o = m::SLO_OBJECTIVE.name
            ),
            "{{cell}}",
        )],
        |p| {
            p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
                { "color": "green", "value": null },
                { "color": "red", "value": 1 },
            ]);
        },
    );
}
