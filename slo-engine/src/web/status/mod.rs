//! The status page at the engine's `/`: the firing alerts, every cell as a card (drain state
//! and why, power against its cap, latency, efficiency, links, restart loops, and per SLO a plot
//! of budget left and burn rate over the period with the alerts sent) and the active silences.
//! Server-rendered HTML and inline SVG, refreshed every 15 s, readable on a phone; no script.

mod cell;
pub mod history;
mod plot;

use std::fmt::Write;

use axum::response::{Html, IntoResponse};
use cellwatch_http::html::escape as esc;

use crate::alerting::State;
use crate::eval::Report;
use crate::model::Silence;
use crate::util::time::utc as time;
use crate::web::AppState;
pub use history::{History, HistoryCache};

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
    let pairs: Vec<(String, String)> = report
        .slos
        .iter()
        .map(|x| (x.cell.clone(), x.slo.clone()))
        .collect();
    let history = s.history.get(&s.ledger, &pairs, report.at).await;
    let alerts = s.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let silences = s.silences.snapshot();
    let now = s.clock.now_ms().div_euclid(1000);
    let silences: Vec<&crate::model::Silence> = silences.iter().map(|c| &c.silence).collect();
    Html(page(&report, history.as_deref(), &alerts, &silences, now))
}

/// The page's head: the title, the viewport, the 15 s refresh and the style sheet (cards in a
/// grid that falls to one column on a phone; plots as wide as their card).
const HEAD: &str = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
     <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
     <meta http-equiv=\"refresh\" content=\"15\"><title>cellwatch status</title><style>\
     body{font-family:system-ui,sans-serif;margin:1rem;max-width:70rem;overflow-wrap:break-word}\
     table{border-collapse:collapse;width:100%;margin-bottom:1.5rem;font-size:.9rem}\
     th,td{padding:.3rem .5rem;border-bottom:1px solid #ddd;text-align:left}\
     .wrap{overflow-x:auto}.alert td:last-child{min-width:15rem}.bad{color:#b00020;font-weight:600}.ok{color:#1b5e20}\
     .warn{color:#a15c00}.muted{color:#666}h2{margin-top:1.5rem}\
     .cells{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,24rem),1fr));gap:1rem}\
     .cell{border:1px solid #ccc;border-radius:.5rem;padding:.5rem .8rem;min-width:0;overflow-wrap:anywhere}\
     .cell h3{margin:.2rem 0 .4rem}.state{font-size:.85rem;padding:.1rem .4rem;border-radius:.3rem;background:#f3f3f3}\
     .cell p,.cell ul{margin:.3rem 0}.cell ul{padding-left:1.2rem}\
     .bar{height:.7rem;background:#eee;border-radius:.35rem;overflow:hidden}\
     .bar .fill{display:block;height:100%;background:#2e7d32}.bar .warn{background:#ef6c00}.bar .bad{background:#c62828}\
     .facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(9rem,1fr));gap:.2rem .8rem;margin:.4rem 0}\
     .facts dt{font-size:.75rem;color:#555}.facts dd{margin:0;font-weight:600}\
     .slo{margin:.6rem 0 0}.slo figcaption{font-size:.85rem}\
     svg.plot{display:block;width:100%;height:auto}.legend{font-size:.85rem}\
     </style></head><body><h1>cellwatch status</h1>";

/// The page for a report, the alert state and the silences, at `now`.
pub fn page(
    report: &Report,
    history: Option<&History>,
    alerts: &State,
    silences: &[&Silence],
    now: i64,
) -> String {
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
    cells(&mut h, report, history);
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

/// Every cell as a card, under a legend of the plots.
fn cells(h: &mut String, report: &Report, history: Option<&History>) {
    let _ = write!(
        h,
        "<h2 id=\"cells\">Cells</h2><p class=\"legend\">Plots over each SLO's period: \
         <span style=\"color:{}\">budget left</span> (0–100 %), \
         <span style=\"color:{}\">burn rate per hour</span> (log, dashed at 1×), alerts sent: \
         <span style=\"color:{}\">page</span>, <span style=\"color:{}\">ticket</span>.</p>\
         <div class=\"cells\">",
        plot::BUDGET,
        plot::BURN,
        plot::PAGE,
        plot::TICKET
    );
    for c in &report.cells {
        cell::card(h, report, c, history);
    }
    h.push_str("</div>");
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

/// A report for the page's tests and the API's: three cells (one drained) and their SLOs.
#[cfg(test)]
pub(crate) mod fixture {
    use crate::eval::{CellReport, Report, SloReport, WindowReport};
    use crate::health::{CellHealth, DrainReason, LinkState, LinkStatus, RestartLoop};

    pub(crate) fn cell(name: &str, health: CellHealth, drain: Vec<DrainReason>) -> CellReport {
        CellReport {
            cell: name.into(),
            tokens_per_kwh: [("1h".to_string(), Some(123_456.0))].into(),
            kwh_per_1k_requests: Default::default(),
            budget_headroom: Some(0.25),
            healthy: drain.is_empty(),
            health,
            take_traffic: drain.is_empty(),
            drain,
        }
    }

    pub(crate) fn slo(cell: &str, name: &str) -> SloReport {
        SloReport {
            cell: cell.into(),
            slo: name.into(),
            objective: 0.999,
            budget_remaining: Some(0.4),
            data_missing: false,
            windows: vec![WindowReport {
                window: "1h".into(),
                state: "ok",
                sli: Some(0.998),
                burn_rate: Some(2.0),
                total: 0.0,
            }],
        }
    }

    pub(crate) fn link(a: &str, b: &str, state: LinkState) -> LinkStatus {
        LinkStatus {
            node: a.into(),
            port: Some("en2".into()),
            peer: b.into(),
            peer_port: Some("en3".into()),
            state,
            speed_bytes_per_second: None,
            expected_speed_bytes_per_second: None,
            rdma_active: None,
            errors_per_second: None,
            transitions: 0,
            flapping: false,
        }
    }

    /// Three cells: a drained one with its power over 75 % of its cap, links and a restart
    /// loop; one without a power reading; one without a cap.
    pub(crate) fn report() -> Report {
        let drained = CellHealth {
            power_watts: Some(1500.0),
            power_cap_watts: Some(2000.0),
            power_headroom_watts: Some(500.0),
            latency_p95_seconds: Some(0.42),
            ttft_p95_seconds: Some(1.5),
            links_healthy: Some(false),
            links: vec![
                link("m1", "m2", LinkState::Up),
                link("m2", "m3", LinkState::RdmaInactive),
            ],
            unreachable: vec!["m4".into()],
            restart_loops: vec![RestartLoop {
                node: "m3".into(),
                kind: "inference",
                what: "vllm".into(),
                restarts: 5.0,
            }],
        };
        let reasons = vec![
            DrainReason {
                reason: "mesh_split",
                detail: "m4 is unreachable over TB5".into(),
            },
            DrainReason {
                reason: "flapping",
                detail: "m2 en2 <-> m3".into(),
            },
        ];
        let unread = CellHealth {
            power_cap_watts: Some(900.0),
            ..Default::default()
        };
        let uncapped = CellHealth {
            power_watts: Some(640.0),
            ..Default::default()
        };
        Report {
            at: 36_000,
            slos: vec![slo("a", "avail"), slo("a", "latency"), slo("b", "avail")],
            cells: vec![
                cell("a", drained, reasons),
                cell("b", unread, Vec::new()),
                cell("c", uncapped, Vec::new()),
            ],
        }
    }
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
        let p = page(&r, None, &st, &[], 1_700_000_000);
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

    use super::fixture::report;
    use plot::fixture::{attr, polylines, tags};

    /// The card of `cell` in `page`.
    fn card<'a>(page: &'a str, cell: &str) -> &'a str {
        let start = page
            .find(&format!("<section class=\"cell\" id=\"cell-{cell}\">"))
            .unwrap();
        &page[start..start + page[start..].find("</section>").unwrap()]
    }

    #[test]
    fn a_card_shows_power_against_the_cap_the_drain_and_why() {
        let p = page(&report(), None, &State::default(), &[], 36_000);
        let a = card(&p, "a");
        assert!(
            a.contains("<h3>a <span class=\"state bad\">drained</span></h3>"),
            "{a}"
        );
        assert!(
            a.contains("<li><b>mesh_split</b>: m4 is unreachable over TB5</li>"),
            "{a}"
        );
        assert!(
            a.contains("<li><b>flapping</b>: m2 en2 &lt;-&gt; m3</li>"),
            "{a}"
        );
        assert!(
            a.contains("Power: 1500 W of 2000 W (75.0 %); headroom 500 W"),
            "{a}"
        );
        let fill = tags(a, "span", "fill ok");
        assert_eq!(attr(fill[0], "style"), "width:75.0%");
        assert!(
            a.contains("<dd>420 ms</dd>") && a.contains("<dd>1.50 s</dd>"),
            "{a}"
        );
        assert!(
            a.contains("<dd>123456</dd>") && a.contains("<dd>25.00 %</dd>"),
            "{a}"
        );
        assert!(
            a.contains("<li class=\"link ok\">m1 en2 ↔ m2 en3: up</li>"),
            "{a}"
        );
        assert!(
            a.contains("<li class=\"link bad\">m2 en2 ↔ m3 en3: rdma inactive</li>"),
            "{a}"
        );
        assert!(
            a.contains("Links: <span class=\"bad\">not healthy</span>"),
            "{a}"
        );
        assert!(a.contains("unreachable over the links: m4"), "{a}");
        assert!(a.contains("m3: inference vllm, 5 restarts"), "{a}");
        let b = card(&p, "b");
        assert!(
            b.contains("<span class=\"state ok\">taking traffic</span>"),
            "{b}"
        );
        assert!(b.contains("no power reading</span> (cap 900 W)"), "{b}");
        assert!(
            !b.contains("class=\"bar\"") && !b.contains("class=\"drain\""),
            "{b}"
        );
        assert!(
            b.contains("Links: <span class=\"muted\">no topology</span>"),
            "{b}"
        );
        assert!(
            b.contains("Restart loops: <span class=\"ok\">none</span>"),
            "{b}"
        );
        let c = card(&p, "c");
        assert!(
            c.contains("Power: 640 W (no cap set)") && c.contains("<dd>no data</dd>"),
            "{c}"
        );
        // Over the cap: a full red bar and the excess.
        let mut r = report();
        r.cells[0].health.power_watts = Some(2300.0);
        r.cells[0].health.power_headroom_watts = Some(-300.0);
        let p = page(&r, None, &State::default(), &[], 36_000);
        let a = card(&p, "a");
        assert!(
            a.contains("(115.0 %); <span class=\"bad\">over the cap by 300 W</span>"),
            "{a}"
        );
        assert_eq!(
            attr(tags(a, "span", "fill bad")[0], "style"),
            "width:100.0%"
        );
    }

    #[test]
    fn every_slo_of_a_card_has_its_plot_from_the_history() {
        let r = report();
        let mut h = History {
            at: r.at,
            slos: Default::default(),
        };
        for s in &r.slos {
            let mut x = plot::fixture::history();
            if s.slo == "latency" {
                // Budget left 100 % all along.
                for p in &mut x.points {
                    p.budget = Some(1.0);
                }
            }
            h.slos.insert((s.cell.clone(), s.slo.clone()), x);
        }
        let p = page(&r, Some(&h), &State::default(), &[], 36_000);
        assert_eq!(p.matches("<svg class=\"plot\"").count(), 3, "{p}");
        let a = card(&p, "a");
        assert_eq!(a.matches("<svg class=\"plot\"").count(), 2);
        assert!(a.contains("<figcaption><b>avail</b> objective 99.90 %, SLI no data, budget left <span class=\"ok\">40.00 %</span>, burn 1h 2.00×"), "{a}");
        let latency = &a[a.find("id=\"slo-a-latency\"").unwrap()..];
        let budget = polylines(latency, "budget");
        assert!(
            budget[0].iter().all(|&(_, y)| (y - plot::TOP).abs() < 0.06),
            "{budget:?}"
        );
        let avail =
            &a[a.find("id=\"slo-a-avail\"").unwrap()..a.find("id=\"slo-a-latency\"").unwrap()];
        let budget = polylines(avail, "budget");
        assert!((budget[0][9].1 - plot::BOTTOM).abs() < 0.06, "{budget:?}");
        assert_eq!(tags(avail, "line", "page").len(), 1);
        // Without a history: said so, no plot.
        let p = page(&r, None, &State::default(), &[], 36_000);
        assert_eq!(p.matches("<svg").count(), 0);
        assert_eq!(p.matches("No history yet.").count(), 3);
    }
}
