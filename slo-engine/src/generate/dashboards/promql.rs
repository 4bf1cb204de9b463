//! The PromQL the panels share: node energy and power, efficiency, quantiles, link states.

use cellwatch_metrics as m;

/// The per-node energy rate in joules per second (`cellwatch_metrics::node_energy_promql`).
fn energy_rate(sel: &str) -> String {
    m::node_energy_promql("rate", sel, "$__rate_interval")
}

/// The per-node whole power in watts, by the same rule.
pub(super) fn node_power(sel: &str) -> String {
    m::node_power_promql(sel)
}

/// Generated tokens per kWh, summed `by`.
pub(super) fn tokens_per_kwh(sel: &str, by: &str) -> String {
    format!(
        "sum{by} (rate({t}{{kind=\"generated\",{sel}}}[$__rate_interval])) / (sum{by} ({e}) > 0) * 3.6e6",
        t = m::INFERENCE_TOKENS.name,
        e = energy_rate(sel)
    )
}

/// kWh per 1,000 requests (cancelled ones excluded, as the engine counts), summed `by`; no value
/// while there are no requests.
pub(super) fn kwh_per_1k(sel: &str, by: &str) -> String {
    format!(
        "sum{by} ({e}) / 3.6e6 / ((sum{by} (rate({r}{{outcome!=\"cancelled\",{sel}}}[$__rate_interval])) > 0) / 1000)",
        r = m::INFERENCE_REQUESTS.name,
        e = energy_rate(sel)
    )
}

pub(super) fn quantile(q: f64, hist: &str, sel: &str, by: &str) -> String {
    let by = if by.is_empty() {
        "le".to_string()
    } else {
        format!("{by}, le")
    };
    format!(
        "histogram_quantile({q}, sum by ({by}) (rate({hist}_bucket{{{sel}}}[$__rate_interval])))"
    )
}

/// The engine's state of each expected link (`cellwatch_cell_link_state`, one series per state,
/// 1 for the current one) as one number per link, `by` its ends: 1 up, 2 slow, 3 RDMA inactive,
/// 4 errors, 5 down (the worst wins where two engines disagree). See [`LINK_STATE_CODES`].
pub(super) fn link_state_code(sel: &str, by: &str) -> String {
    let parts: Vec<String> = LINK_STATE_CODES
        .iter()
        .map(|(state, code, _, _)| {
            format!(
                "{}{{{sel},state=\"{state}\"}} * {code}",
                m::CELL_LINK_STATE.name
            )
        })
        .collect();
    format!("max by ({by}) (\n  {}\n)", parts.join("\n  or "))
}

/// The codes of [`link_state_code`]: (state, code, text, colour).
pub(super) const LINK_STATE_CODES: [(&str, u8, &str, &str); 5] = [
    ("up", 1, "up", "green"),
    ("slow", 2, "slow", "orange"),
    ("rdma_inactive", 3, "no RDMA", "orange"),
    ("errors", 4, "errors", "yellow"),
    ("down", 5, "down", "red"),
];
