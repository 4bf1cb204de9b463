//! Adjustments a panel's JSON takes after its defaults (`Board::panel`'s `tune`).

use serde_json::{Value, json};

pub(super) fn unit_min0(p: &mut Value) {
    p["fieldConfig"]["defaults"]["min"] = json!(0);
}

pub(super) fn budget_thresholds(p: &mut Value) {
    p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
        { "color": "red", "value": null },
        { "color": "orange", "value": 0 },
        { "color": "green", "value": 0.25 },
    ]);
    p["fieldConfig"]["defaults"]["decimals"] = json!(1);
}

/// Transmitted series below zero, received above (node_exporter's convention).
pub(super) fn tx_negative(p: &mut Value) {
    p["fieldConfig"]["overrides"] = json!([{
        "matcher": { "id": "byFrameRefID", "options": "B" },
        "properties": [{ "id": "custom.transform", "value": "negative-Y" }],
    }]);
}

/// A stat from one instant query (a total over the range), without a sparkline.
pub(super) fn instant_stat(p: &mut Value) {
    p["targets"][0]["instant"] = json!(true);
    p["targets"][0]["range"] = json!(false);
    p["options"]["graphMode"] = json!("none");
    p["fieldConfig"]["defaults"]["decimals"] = json!(3);
}

/// A dashed line at burn rate 1: above it, the budget runs out before the period ends.
pub(super) fn burn_threshold(p: &mut Value) {
    p["fieldConfig"]["defaults"]["min"] = json!(0);
    p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({ "mode": "dashed" });
    p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
        { "color": "green", "value": null },
        { "color": "red", "value": 1 },
    ]);
}

/// Tables of ALERTS-like series: only the labels, no time or value.
pub(super) fn alerts_table(p: &mut Value) {
    p["transformations"] = json!([{
        "id": "organize",
        "options": {
            "excludeByName": { "Time": true, "Value": true, "__name__": true, "job": true, "instance": true },
            "indexByName": { "cell": 0, "alertname": 1, "slo": 2, "severity": 3, "state": 4 },
            "renameByName": {},
        },
    }]);
}

/// A state timeline of 0/1 series: down in red, up in green.
pub(super) fn up_down(p: &mut Value) {
    p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
        "0": { "text": "down", "color": "red", "index": 0 },
        "1": { "text": "up", "color": "green", "index": 1 },
    } }]);
}

/// The second query (refId B) drawn as a dashed red line without fill: a cap over a series.
pub(super) fn cap_line(p: &mut Value) {
    p["fieldConfig"]["defaults"]["min"] = json!(0);
    p["fieldConfig"]["overrides"] = json!([{
        "matcher": { "id": "byFrameRefID", "options": "B" },
        "properties": [
            { "id": "color", "value": { "mode": "fixed", "fixedColor": "red" } },
            { "id": "custom.lineStyle", "value": { "fill": "dash", "dash": [10, 10] } },
            { "id": "custom.lineWidth", "value": 2 },
            { "id": "custom.fillOpacity", "value": 0 },
        ],
    }]);
}

/// A state timeline of [`super::promql::link_state_code`]: each state in its colour.
pub(super) fn link_states(p: &mut Value) {
    let options: serde_json::Map<String, Value> = super::promql::LINK_STATE_CODES
        .iter()
        .enumerate()
        .map(|(i, (_, code, text, color))| {
            (
                code.to_string(),
                json!({ "text": text, "color": color, "index": i }),
            )
        })
        .collect();
    p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": options }]);
}

/// A state timeline of 0/1 take-traffic series: drain in red, take traffic in green.
pub(super) fn take_traffic(p: &mut Value) {
    p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
        "0": { "text": "drain", "color": "red", "index": 0 },
        "1": { "text": "take traffic", "color": "green", "index": 1 },
    } }]);
}

/// Headroom under a cap: a dashed red line at 0 (below it, over the cap).
pub(super) fn headroom(p: &mut Value) {
    p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({ "mode": "dashed" });
    p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
        { "color": "red", "value": null },
        { "color": "green", "value": 0 },
    ]);
}
