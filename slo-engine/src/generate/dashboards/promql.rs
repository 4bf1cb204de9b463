//! The PromQL the panels share: node energy and power, efficiency, quantiles.

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
