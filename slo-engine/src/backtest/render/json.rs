//! Backtests as JSON.

use serde::Serialize;

use crate::backtest::result::Backtest;

/// The document: `{"backtests": [...]}`.
#[derive(Serialize)]
struct Document<'a> {
    backtests: &'a [Backtest],
}

/// Backtests as pretty JSON, `{"backtests": [...]}`, fields in the order `result.rs` declares
/// them; times in Unix seconds, missing values `null` (a non-finite number too).
pub fn json(bs: &[Backtest]) -> String {
    let mut s = serde_json::to_string_pretty(&Document { backtests: bs }).unwrap_or_else(|e| {
        serde_json::json!({ "error": format!("backtest JSON: {e}") }).to_string()
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::super::fixture;
    use super::json;

    #[test]
    fn the_key_fields_round_trip() {
        let mut b = fixture::backtest();
        b.config = "b.yaml".into();
        let text = json(&[fixture::backtest(), b]);
        assert!(
            text.ends_with("}\n") && text.contains("\n  \"backtests\": ["),
            "{text}"
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        let all = v["backtests"].as_array().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1]["config"], "b.yaml");
        let a = &all[0];
        assert_eq!(a["from"], fixture::FROM);
        assert_eq!(a["onset"], fixture::ONSET);
        assert_eq!(a["alerts"][0]["severity"], "page");
        assert_eq!(a["alerts"][0]["detection_seconds"], 58);
        assert_eq!(a["alerts"][1]["resolved_at"], Value::Null);
        assert_eq!(a["alerts"][0]["labels"]["cell"], "studio-a");
        assert_eq!(a["notifications"][0]["page"], true);
        assert_eq!(a["incidents"][0]["notifications"], 2);
        assert_eq!(a["incidents"][0]["pages"], 1);
        let s = &a["series"][0];
        assert_eq!(s["thresholds"][0]["label"], "page 1h");
        assert_eq!(s["thresholds"][0]["factor"], 14.4);
        assert_eq!(s["points"][4]["burn_1h"], Value::Null);
        assert_eq!(s["points"][3]["burn_1h"], 3.5);
        assert_eq!(a["series"][1]["points"][3]["budget_remaining"], Value::Null);
    }

    #[test]
    fn fields_keep_the_declared_order_and_non_finite_numbers_are_null() {
        let mut b = fixture::backtest();
        b.series[0].points[0].burn_1h = Some(f64::INFINITY);
        let text = json(&[b]);
        let at = |k: &str| text.find(&format!("\"{k}\":")).unwrap();
        let order = [
            "config", "history", "ledger", "from", "to", "interval", "onset",
        ];
        for w in order.windows(2) {
            assert!(at(w[0]) < at(w[1]), "{} before {}", w[0], w[1]);
        }
        assert!(at("alerts") < at("notifications") && at("incidents") < at("series"));
        assert!(at("series") < at("evaluations"));
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["backtests"][0]["series"][0]["points"][0]["burn_1h"],
            Value::Null
        );
        assert_eq!(json(&[]), "{\n  \"backtests\": []\n}\n");
    }
}
