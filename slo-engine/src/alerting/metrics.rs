//! The alert state as `/metrics` samples (`cellwatch_slo_alerts`).

use cellwatch_http::exposition::Sample;
use cellwatch_metrics as m;

use crate::alerting;

/// The pending and firing alerts as metrics (as Prometheus' ALERTS).
pub fn alert_samples(state: &alerting::State) -> Vec<Sample> {
    state
        .alerts
        .values()
        .filter(|a| a.resolved_at.is_none())
        .map(|a| {
            let get = |k: &str| a.labels.get(k).map_or("", String::as_str);
            let st = if a.firing() { "firing" } else { "pending" };
            Sample::new(
                &m::SLO_ALERTS,
                &[
                    get("cell"),
                    get("alertname"),
                    get("slo"),
                    get("severity"),
                    st,
                ],
                1.0,
            )
        })
        .collect()
}
