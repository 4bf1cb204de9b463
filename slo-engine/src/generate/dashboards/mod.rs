//! Grafana dashboards, generated from the metric definitions (`cellwatch-slo dashboards`).
//!
//! Four dashboards in Grafana's classic JSON model (schemaVersion 41, Grafana 11.6 or newer):
//! `cell-overview` (latency beside power and efficiency, budgets, alerts), `node-detail`
//! (power, memory, links, collectors, inference of one node), `fleet` (every cell side by side)
//! and `slo` (budgets and burn rates over time). Every panel reads a `datasource` variable, so
//! the files work both imported and provisioned; `cell` → `node` variables are chained.
//!
//! Whole-node energy is the SMC's (macmon) where a node reports it, else the SoC's (CPU + GPU +
//! ANE from powermetrics), else RAPL plus NVIDIA (Linux), per node: the rule the engine applies
//! to tokens/kWh (`cellwatch_metrics::node_energy_promql`).

mod board;
mod cell_overview;
mod fleet;
mod node_detail;
mod promql;
mod provisioning;
mod slo;
mod tune;
mod variables;

use serde_json::Value;

pub use provisioning::{DATASOURCE_YAML, PROVIDER_YAML};

/// Every dashboard: (file name, JSON).
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("cell-overview.json", cell_overview::dashboard()),
        ("node-detail.json", node_detail::dashboard()),
        ("fleet.json", fleet::dashboard()),
        ("slo.json", slo::dashboard()),
    ]
}

/// A dashboard's file text: pretty JSON with a final newline.
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Every query of a dashboard: (panel title, PromQL) for panel targets, and (variable name,
/// the series inside `label_values(...)`) for query variables.
pub fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(vars) = dashboard["templating"]["list"].as_array() {
        for v in vars {
            if let Some(q) = v["query"]["query"].as_str() {
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|r| r.rsplit_once(','))
                    .map_or(q, |(series, _)| series);
                out.push((format!("variable {}", v["name"]), inner.to_string()));
            }
        }
    }
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
            }
        }
    }
    out
}

/// Replaces Grafana's variables in a query: `$cell`, `$node`, `$slo` by the given regex-safe
/// values, the interval variables by durations.
pub fn substitute(expr: &str, cell: &str, node: &str, slo: &str, range: &str) -> String {
    expr.replace("$__rate_interval", range)
        .replace("$__range", range)
        .replace("$__interval", range)
        .replace("$cell", cell)
        .replace("$node", node)
        .replace("$slo", slo)
}

#[cfg(test)]
mod tests {
    use super::board::DS;
    use super::*;
    use cellwatch_metrics as m;

    #[test]
    fn panels_have_unique_ids_and_fit_the_grid() {
        for (name, d) in all() {
            let mut ids = std::collections::BTreeSet::new();
            for p in d["panels"].as_array().unwrap() {
                assert!(
                    ids.insert(p["id"].as_u64().unwrap()),
                    "{name}: duplicate id"
                );
                let g = &p["gridPos"];
                let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
                assert!(x + w <= 24, "{name}: {} overflows the grid", p["title"]);
                if p["type"] != "row" {
                    assert_eq!(p["datasource"]["uid"], DS, "{name}: {}", p["title"]);
                    assert!(!p["targets"].as_array().unwrap().is_empty());
                }
            }
        }
    }

    #[test]
    fn queries_use_only_known_metric_names() {
        let re = regex::Regex::new(r"cellwatch_[a-z0-9_]+").unwrap();
        for (name, d) in all() {
            for (title, e) in queries(&d) {
                for n in re.find_iter(&e) {
                    let n = n.as_str();
                    let base = n.strip_suffix("_bucket").unwrap_or(n);
                    assert!(
                        m::by_name(base).is_some(),
                        "{name}: {title}: unknown metric {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn substitution_leaves_no_grafana_variables() {
        for (_, d) in all() {
            for (_, e) in queries(&d) {
                let s = substitute(&e, "c", ".*", ".*", "1m");
                assert!(!s.contains('$'), "{s}");
            }
        }
    }
}
