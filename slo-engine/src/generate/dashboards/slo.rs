//! `slo`: error budgets, SLIs and burn rates over time per cell and SLO.

use cellwatch_metrics as m;
use serde_json::{Value, json};

use super::board::{Board, Kind, q, series};
use super::tune::{alerts_table, burn_threshold};
use super::variables::{v_datasource, v_query};

/// The dashboard (uid `cellwatch-slo`), row by row.
pub(super) fn dashboard() -> Value {
    let s = "cell=~\"$cell\",slo=~\"$slo\"";
    let mut b = Board::new();
    error_budgets(&mut b, s);
    burn_rates(&mut b, s);
    alerts_and_data(&mut b, s);
    b.finish(
        "cellwatch-slo",
        "cellwatch / SLOs",
        "Error budgets, SLIs and burn rates over time per cell and SLO, from cellwatch-slo.",
        variables(),
        "now-24h",
    )
}

/// Budget left and the SLI over the period, beside the objective.
fn error_budgets(b: &mut Board, s: &str) {
    b.row("Error budgets");
    b.panel(
        Kind::Timeseries,
        "Error budget left",
        "Share of the error budget left in the current period, per cell and SLO (below 0: overspent).",
        "percentunit",
        12,
        9,
        vec![series(&m::SLO_BUDGET_REMAINING, s, "{{cell}} {{slo}}")],
        |_| {},
    );
    b.panel(
        Kind::Timeseries,
        "SLI over the period",
        "Share of good events (or good time slices) over the SLO period, beside the objective.",
        "percentunit",
        12,
        9,
        vec![
            q(
                format!("{}{{{s},window=\"period\"}}", m::SLO_SLI.name),
                "{{cell}} {{slo}}",
            ),
            series(&m::SLO_OBJECTIVE, s, "{{cell}} {{slo}} objective"),
        ],
        |_| {},
    );
}

/// Burn rates, one panel per alert pair of windows.
fn burn_rates(b: &mut Board, s: &str) {
    b.row("Burn rates");
    for (w, h) in [("5m", "1h"), ("30m", "6h"), ("2h", "1d")] {
        let title = match w {
            "5m" => "Burn rate 5m and 1h (fast page)",
            "30m" => "Burn rate 30m and 6h (slow page)",
            _ => "Burn rate 2h and 1d (ticket)",
        };
        b.panel(
            Kind::Timeseries,
            title,
            "Error budget burn rate over the short and long windows of an alert pair; 1 spends the budget exactly over the period.",
            "none",
            8,
            8,
            vec![q(
                format!("{}{{{s},window=~\"{w}|{h}\"}}", m::SLO_BURN_RATE.name),
                "{{cell}} {{slo}} {{window}}",
            )],
            burn_threshold,
        );
    }
}

/// The alerts the engine holds, and SLOs without data.
fn alerts_and_data(b: &mut Board, s: &str) {
    b.row("Alerts and data");
    b.panel(
        Kind::Table,
        "Pending and firing alerts",
        "Alerts cellwatch-slo holds now.",
        "none",
        16,
        7,
        vec![q(format!("{}{{cell=~\"$cell\"}}", m::SLO_ALERTS.name), "")],
        alerts_table,
    );
    b.panel(
        Kind::StateTimeline,
        "Data missing",
        "1 if the SLO had no data in the last 5 minutes (every node of the cell down or idle).",
        "none",
        8,
        7,
        vec![series(&m::SLO_DATA_MISSING, s, "{{cell}} {{slo}}")],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "data", "color": "green", "index": 0 },
                "1": { "text": "missing", "color": "red", "index": 1 },
            } }]);
        },
    );
}

/// The datasource, then every cell with an SLO and its SLOs, all selected.
fn variables() -> Vec<Value> {
    let mut slo_var = v_query(
        "slo",
        "SLO",
        &format!("{}{{cell=~\"$cell\"}}", m::SLO_OBJECTIVE.name),
        true,
    );
    slo_var["current"] = json!({ "text": "All", "value": "$__all" });
    // Every cell with an SLO, including cells whose data comes through Prometheus alone.
    let mut cell_var = v_query("cell", "Cell", m::SLO_OBJECTIVE.name, true);
    cell_var["current"] = json!({ "text": "All", "value": "$__all" });
    vec![v_datasource(), cell_var, slo_var]
}
