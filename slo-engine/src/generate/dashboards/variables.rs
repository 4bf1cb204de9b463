//! The dashboards' template variables: the datasource, then cell → node (or SLO), chained.

use cellwatch_metrics as m;
use serde_json::{Value, json};

use super::board::ds;

pub(super) fn v_datasource() -> Value {
    json!({
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": { "text": "Prometheus", "value": "prometheus" },
        "hide": 0, "refresh": 1, "regex": "", "options": [], "skipUrlSync": false,
    })
}

/// A query variable over `label_values(series, label)`, reloaded on dashboard load only.
pub(super) fn v_query(name: &str, label: &str, series: &str, multi: bool) -> Value {
    let mut v = json!({
        "name": name, "label": label, "type": "query", "datasource": ds(),
        "query": {
            "qryType": 1,
            "query": format!("label_values({series}, {name})"),
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 1, "sort": 1, "regex": "", "hide": 0,
        "multi": multi, "includeAll": multi,
        "options": [], "skipUrlSync": false,
    });
    if multi {
        // All as a regex, so cells and nodes that appear later are included.
        v["allValue"] = json!(".*");
    }
    v
}

pub(super) fn v_cell(multi: bool) -> Value {
    v_query("cell", "Cell", m::NODE_INFO.name, multi)
}

pub(super) fn v_node() -> Value {
    v_query(
        "node",
        "Node",
        &format!("{}{{cell=~\"$cell\"}}", m::NODE_INFO.name),
        true,
    )
}
