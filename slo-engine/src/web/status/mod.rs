//! The status page at the engine's `/`: every cell with its budgets, burn rates and efficiency,
//! the firing alerts and the active silences. Server-rendered HTML, refreshed every 15 s,
//! readable on a phone; no script.

use std::fmt::Write;

use axum::response::{Html, IntoResponse};
use cellwatch_http::html::escape as esc;

use crate::alerting::State;
use crate::eval::Report;
use crate::model::Silence;
use crate::util::time::utc as time;
use crate::web::AppState;

pub(crate) fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".into(), |v| format!("{:.2} %", v * 100.0))
}

pub(crate) fn num(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "–".into(), |v| format!("{v:.digits$}"))
}

/// `GET /`: the page for the last evaluation, the held alerts and silences, now.
pub(crate) async fn status_page(
    axum::extract::State(s): axum::extract::State<AppState>,
) -> impl IntoResponse {
    let report = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    let alerts = s.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let silences = s.silences.snapshot();
    let now = s.clock.now_ms().div_euclid(1000);
    let silences: Vec<&crate::model::Silence> = silences.iter().map(|c| &c.silence).collect();
    Html(page(&report, &alerts, &silences, now))
}

/// The page's head: the title, the viewport, the 15 s refresh and the style sheet.
const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
     <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
     <meta http-equiv=\"refresh\" content=\"15\"><title>cellwatch status</title><style>\
     body{font-family:system-ui,sans-serif;margin:1rem;max-width:70rem}\
     table{border-collapse:collapse;width:100%;margin-bottom:1.5rem;font-size:.9rem}\
     th,td{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left}\
     .wrap{overflow-x:auto}.bad{color:#b00020;font-weight:600}.ok{color:#1b5e20}\
     h2{margin-top:1.5rem}</style></head><body><h1>cellwatch status</h1>";

/// The page for a report, the alert state and the silences, at `now`.
pub fn page(report: &Report, alerts: &State, silences: &[&Silence], now: i64) -> String {
    let mut h = String::from(HEAD);
    let _ = write!(
        h,
        "<p>Evaluated {}; this page refreshes every 15 s.</p>",
        if report.at > 0 {
            time(report.at)
        } else {
            "not yet".into()
        }
    );
    firing_alerts(&mut h, alerts);
    cells(&mut h, report);
    slos(&mut h, report);
    active_silences(&mut h, silences, now);
    h.push_str("</body></html>\n");
    h
}

/// The firing alerts, or "None.".
fn firing_alerts(h: &mut String, alerts: &State) {
    let firing: Vec<_> = alerts.alerts.values().filter(|a| a.firing()).collect();
    let _ = write!(h, "<h2 id=\"alerts\">Firing alerts ({})</h2>", firing.len());
    if firing.is_empty() {
        h.push_str("<p class=\"ok\">None.</p>");
        return;
    }
    h.push_str("<div class=\"wrap\"><table><tr><th>alert</th><th>cell</th><th>SLO</th><th>severity</th><th>since</th><th>summary</th></tr>");
    for a in firing {
        let get = |k: &str| esc(a.labels.get(k).map_or("", String::as_str));
        let _ = write!(
            h,
            "<tr class=\"alert\"><td class=\"bad\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            get("alertname"),
            get("cell"),
            get("slo"),
            get("severity"),
            time(a.active_since),
            esc(a.annotations.get("summary").map_or("", String::as_str)),
        );
    }
    h.push_str("</table></div>");
}

/// Every cell: healthy, budget headroom, efficiency over the last hour.
fn cells(h: &mut String, report: &Report) {
    h.push_str("<h2 id=\"cells\">Cells</h2><div class=\"wrap\"><table><tr><th>cell</th><th>healthy</th><th>budget headroom</th><th>tokens/kWh (1h)</th><th>kWh per 1k requests (1h)</th></tr>");
    for c in &report.cells {
        let _ = write!(
            h,
            "<tr class=\"cell\"><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&c.cell),
            if c.healthy { "ok" } else { "bad" },
            if c.healthy { "yes" } else { "no" },
            pct(c.budget_headroom),
            num(c.tokens_per_kwh.get("1h").copied().flatten(), 0),
            num(c.kwh_per_1k_requests.get("1h").copied().flatten(), 4),
        );
    }
    h.push_str("</table></div>");
}

/// Every SLO of every cell: objective, SLI over the period, budget left, burn rates.
fn slos(h: &mut String, report: &Report) {
    h.push_str("<h2 id=\"slos\">SLOs</h2><div class=\"wrap\"><table><tr><th>cell</th><th>SLO</th><th>objective</th><th>SLI (period)</th><th>budget left</th><th>burn 1h</th><th>burn 6h</th><th>data</th></tr>");
    for s in &report.slos {
        let w = |name: &str| s.windows.iter().find(|w| w.window == name);
        let burn = |name: &str| num(w(name).and_then(|w| w.burn_rate), 2);
        let low = s.budget_remaining.is_some_and(|b| b <= 0.0);
        let _ = write!(
            h,
            "<tr class=\"slo\"><td>{}</td><td>{}</td><td>{:.2} %</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.cell),
            esc(&s.slo),
            s.objective * 100.0,
            pct(w("period").and_then(|w| w.sli)),
            if low { "bad" } else { "ok" },
            pct(s.budget_remaining),
            burn("1h"),
            burn("6h"),
            if s.data_missing { "missing" } else { "ok" },
        );
    }
    h.push_str("</table></div>");
}

/// The silences active at `now`: matchers, end, author, comment.
fn active_silences(h: &mut String, silences: &[&Silence], now: i64) {
    let active: Vec<_> = silences
        .iter()
        .filter(|s| s.state(now) == "active")
        .collect();
    let _ = write!(
        h,
        "<h2 id=\"silences\">Active silences ({})</h2>",
        active.len()
    );
    for s in active {
        let m: Vec<String> = s.matchers.iter().map(matcher).collect();
        let _ = write!(
            h,
            "<p class=\"silence\">{{{}}} until {} by {}: {}</p>",
            esc(&m.join(", ")),
            time(s.ends_at),
            esc(&s.created_by),
            esc(&s.comment)
        );
    }
}

/// A matcher as Alertmanager writes it: `name=value`, `!=`, `=~`, `!~`.
fn matcher(m: &crate::model::Matcher) -> String {
    let op = match (m.is_equal, m.is_regex) {
        (true, false) => "=",
        (false, false) => "!=",
        (true, true) => "=~",
        (false, true) => "!~",
    };
    format!("{}{}{}", m.name, op, m.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_alerts_and_silences_are_shown_and_escaped() {
        let mut r = Report {
            at: 1_700_000_000,
            ..Default::default()
        };
        r.cells.push(crate::eval::CellReport {
            cell: "studio-<a>".into(),
            tokens_per_kwh: [("1h".to_string(), Some(150_000.0))].into(),
            kwh_per_1k_requests: Default::default(),
            budget_headroom: Some(0.5),
            healthy: false,
            health: Default::default(),
            take_traffic: true,
            drain: Vec::new(),
        });
        let mut st = State::default();
        let labels: crate::model::Labels = [
            ("alertname".to_string(), "CellwatchCellDown".to_string()),
            ("cell".into(), "studio-<a>".into()),
        ]
        .into();
        st.alerts.insert(
            "f".into(),
            crate::alerting::Alert {
                labels,
                annotations: Default::default(),
                fingerprint: "f".into(),
                active_since: 1_699_999_000,
                fired_at: Some(1_699_999_060),
                resolved_at: None,
            },
        );
        let p = page(&r, &st, &[], 1_700_000_000);
        assert!(
            p.contains("Firing alerts (1)") && p.contains("CellwatchCellDown"),
            "{p}"
        );
        assert!(
            p.contains("studio-&lt;a&gt;") && !p.contains("studio-<a>"),
            "{p}"
        );
        assert!(p.contains("150000") && p.contains("50.00 %"), "{p}");
        assert!(p.contains("http-equiv=\"refresh\"") && p.contains("width=device-width"));
    }
}
