//! `cell-overview`: one inference cell, latency, time to first token and time per output token
//! beside power, tokens/kWh and kWh per 1,000 requests, requests waiting and queue time; power
//! against its cap and link health; error budgets and burn rates per SLO; alerts.

use cellwatch_metrics as m;
use serde_json::Value;

use super::board::{Board, Kind, q};
use super::promql::{kwh_per_1k, link_state_code, node_power, quantile, tokens_per_kwh};
use super::tune::{
    alerts_table, budget_thresholds, burn_threshold, cap_line, instant_stat, link_states, unit_min0,
};
use super::variables::{v_cell, v_datasource, v_node};

/// The dashboard (uid `cellwatch-cell`), row by row.
pub(super) fn dashboard() -> Value {
    let c = "cell=\"$cell\"";
    let mut b = Board::new();
    latency_beside_power(&mut b, c);
    cap_and_links(&mut b, c);
    error_budgets(&mut b, c);
    alerts(&mut b, c);
    b.finish(
        "cellwatch-cell",
        "cellwatch / Cell overview",
        "One inference cell: latency, time to first token and time per output token beside power, tokens/kWh and kWh per 1,000 requests; power against its cap and link health; error budgets and burn rates per SLO; alerts.",
        vec![v_datasource(), v_cell(false), v_node()],
        "now-1h",
    )
}

/// Latency beside power: latency, power and efficiency, traffic, energy.
fn latency_beside_power(b: &mut Board, c: &str) {
    b.row("Latency beside power ($cell)");
    latency(b, c);
    power_and_efficiency(b, c);
    traffic(b, c);
    energy(b, c);
}

/// Request latency and time to first token, p95 and p99.
fn latency(b: &mut Board, c: &str) {
    p95_p99(
        b,
        "Request latency p95 / p99",
        "End-to-end latency of ok requests, from the exporters' histograms (metering proxy or server adapter). The nodes of a cell should share bucket bounds (--collector.inference.buckets) for the quantiles to be right.",
        m::INFERENCE_REQUEST_DURATION.name,
        c,
    );
    p95_p99(
        b,
        "Time to first token p95 / p99",
        "Time from request to the first generated token, ok requests.",
        m::INFERENCE_TTFT.name,
        c,
    );
    p95_p99(
        b,
        "Time per output token p95 / p99",
        "Time per generated token after the first (inter-token latency) of ok streamed requests: the metering proxy's (last − first content chunk) / (tokens − 1), or the server's own per-request histogram. Bounds: --collector.inference.tpot-buckets.",
        m::INFERENCE_TPOT.name,
        c,
    );
}

/// A panel of a histogram's p95 and p99 over the cell.
fn p95_p99(b: &mut Board, title: &str, description: &str, histogram: &str, c: &str) {
    b.panel(
        Kind::Timeseries,
        title,
        description,
        "s",
        6,
        8,
        vec![
            q(quantile(0.95, histogram, c, ""), "p95"),
            q(quantile(0.99, histogram, c, ""), "p99"),
        ],
        unit_min0,
    );
}

/// Power by node and tokens per kWh.
fn power_and_efficiency(b: &mut Board, c: &str) {
    b.panel(
        Kind::Stacked,
        "Power by node",
        "Whole-node power: the SMC's (macmon) where the node reports it, else CPU + GPU + ANE (powermetrics); on Linux, RAPL plus NVIDIA GPUs.",
        "watt",
        6,
        8,
        vec![q(
            format!(
                "sum by (node) ({})",
                node_power(&format!("{c},node=~\"$node\""))
            ),
            "{{node}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Tokens per kWh",
        "Generated tokens per kWh of the cell's nodes (energy counters, not sampled power).",
        "si:tok/kWh",
        6,
        8,
        vec![q(tokens_per_kwh(c, ""), "tokens/kWh")],
        unit_min0,
    );
}

/// Requests by outcome and tokens per second.
fn traffic(b: &mut Board, c: &str) {
    b.panel(
        Kind::Timeseries,
        "Requests by outcome",
        "Finished requests per second (ok, client_error, server_error, upstream_unavailable, cancelled).",
        "reqps",
        6,
        7,
        vec![q(
            format!(
                "sum by (outcome) (rate({}{{{c}}}[$__rate_interval]))",
                m::INFERENCE_REQUESTS.name
            ),
            "{{outcome}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Tokens per second",
        "Prompt and generated tokens per second across the cell.",
        "suffix: tok/s",
        6,
        7,
        vec![q(
            format!(
                "sum by (kind) (rate({}{{{c}}}[$__rate_interval]))",
                m::INFERENCE_TOKENS.name
            ),
            "{{kind}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Requests waiting",
        "Requests queued in the servers (vLLM, SGLang, TGI, llama.cpp deferred) or, behind the metering proxy, in flight with no generated token yet. The throughput SLI judges only the minutes in which requests waited in at least half of the readings.",
        "short",
        6,
        7,
        vec![q(
            format!("sum by (node) ({}{{{c}}})", m::INFERENCE_WAITING.name),
            "{{node}}",
        )],
        unit_min0,
    );
}

/// Stats: cell power, kWh per 1,000 requests, energy over the range.
fn energy(b: &mut Board, c: &str) {
    b.panel(
        Kind::Stat,
        "Cell power",
        "Whole power of the cell's nodes now.",
        "watt",
        4,
        7,
        vec![q(format!("sum({})", node_power(c)), "W")],
        |_| {},
    );
    b.panel(
        Kind::Stat,
        "kWh per 1,000 requests",
        "Energy of the cell's nodes per 1,000 finished requests.",
        "kwatth",
        4,
        7,
        vec![q(kwh_per_1k(c, ""), "kWh/1k")],
        |_| {},
    );
    b.panel(
        Kind::Stat,
        "Energy over the range",
        "kWh the cell's nodes used over the dashboard's time range.",
        "kwatth",
        4,
        7,
        vec![q(
            format!(
                "sum({}) / 3.6e6",
                m::node_energy_promql("increase", c, "$__range")
            ),
            "kWh",
        )],
        instant_stat,
    );
    b.panel(
        Kind::Timeseries,
        "Queue time p95 / p99",
        "Time requests waited in the server's queue before being scheduled (vLLM, TGI, recent SGLang; none behind the metering proxy alone).",
        "s",
        12,
        7,
        vec![
            q(quantile(0.95, m::INFERENCE_QUEUE_TIME.name, c, ""), "p95"),
            q(quantile(0.99, m::INFERENCE_QUEUE_TIME.name, c, ""), "p99"),
        ],
        unit_min0,
    );
}

/// The cell's power against its cap, and the state of each expected link.
fn cap_and_links(b: &mut Board, c: &str) {
    b.row("Power cap and links ($cell)");
    b.panel(
        Kind::Timeseries,
        "Power against its cap",
        "Whole power of the cell's nodes (the rule of the power_cap SLI), and the cell's power_cap_watts as cellwatch-slo reports it (dashed red; none without a cap). The power_cap SLI counts the minutes whose peak crosses the line; power above health.power_warn_share of it pages.",
        "watt",
        12,
        8,
        vec![
            q(format!("sum by (cell) ({})", node_power(c)), "power"),
            q(
                format!("max by (cell) ({}{{{c}}})", m::CELL_POWER_CAP.name),
                "cap",
            ),
        ],
        cap_line,
    );
    b.panel(
        Kind::StateTimeline,
        "Link health",
        "Each expected link of the cell's topology as cellwatch-slo judges it: up, slow (under link_speed), no RDMA (rdma required), errors (over health.link_error_rate) or down. No rows without a topology.",
        "none",
        12,
        8,
        vec![q(link_state_code(c, "node, peer"), "{{node}} – {{peer}}")],
        link_states,
    );
}

/// Error budgets: budget left, burn rates, SLIs.
fn error_budgets(b: &mut Board, c: &str) {
    b.row("Error budgets ($cell)");
    b.panel(
        Kind::Stat,
        "Error budget left",
        "Share of each SLO's error budget left in its current period (below 0: overspent), from cellwatch-slo.",
        "percentunit",
        8,
        7,
        vec![q(
            format!("{}{{{c}}}", m::SLO_BUDGET_REMAINING.name),
            "{{slo}}",
        )],
        budget_thresholds,
    );
    b.panel(
        Kind::Timeseries,
        "Burn rate (5m and 1h)",
        "How fast each SLO spends its budget: 1 spends it exactly over the period; pages need both windows of a pair above the threshold.",
        "none",
        8,
        7,
        vec![q(
            format!(
                "{}{{{c},window=~\"5m|1h\"}}",
                m::SLO_BURN_RATE.name
            ),
            "{{slo}} {{window}}",
        )],
        burn_threshold,
    );
    b.panel(
        Kind::Timeseries,
        "SLI (1h)",
        "Share of good events (or good time slices) over the last hour, per SLO, beside its objective.",
        "percentunit",
        8,
        7,
        vec![
            q(
                format!("{}{{{c},window=\"1h\"}}", m::SLO_SLI.name),
                "{{slo}}",
            ),
            q(
                format!("{}{{{c}}}", m::SLO_OBJECTIVE.name),
                "{{slo}} objective",
            ),
        ],
        |_| {},
    );
}

/// The alerts the engine holds for the cell.
fn alerts(b: &mut Board, c: &str) {
    b.row("Alerts ($cell)");
    b.panel(
        Kind::Table,
        "Pending and firing alerts",
        "Alerts cellwatch-slo holds for the cell now (pages and tickets; muted ones included).",
        "none",
        24,
        6,
        vec![q(format!("{}{{{c}}}", m::SLO_ALERTS.name), "")],
        alerts_table,
    );
}
