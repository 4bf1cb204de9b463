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
