//! A cell's card: drain state and why, power against its cap, latency, efficiency, links,
//! restart loops, and a plot per SLO.

use std::fmt::Write as _;

use cellwatch_http::html::escape as esc;

use super::history::History;
use super::plot::plot;
use super::{num, pct};
use crate::eval::{CellReport, Report, SloReport};
use crate::health::{CellHealth, LinkStatus};

/// Share of the cap from which the bar turns orange (display only).
const WARN_SHARE: f64 = 0.9;

/// The card of one cell of `report`.
pub(super) fn card(h: &mut String, report: &Report, c: &CellReport, history: Option<&History>) {
    let _ = write!(
        h,
        "<section class=\"cell\" id=\"cell-{0}\"><h3>{0} {1}</h3>",
        esc(&c.cell),
        if c.take_traffic {
            "<span class=\"state ok\">taking traffic</span>"
        } else {
            "<span class=\"state bad\">drained</span>"
        }
    );
    if !c.drain.is_empty() {
        h.push_str("<ul class=\"drain\">");
        for d in &c.drain {
            let _ = write!(h, "<li><b>{}</b>: {}</li>", esc(d.reason), esc(&d.detail));
        }
        h.push_str("</ul>");
    }
    power(h, &c.health);
    facts(h, c);
    links(h, &c.health);
    restarts(h, &c.health);
    for s in report.slos.iter().filter(|s| s.cell == c.cell) {
        let hist = history.and_then(|x| x.slos.get(&(s.cell.clone(), s.slo.clone())));
        slo_figure(h, s, hist);
    }
    h.push_str("</section>");
}

/// Power now against the cap: a bar, the watts and the headroom.
fn power(h: &mut String, p: &CellHealth) {
    h.push_str("<div class=\"power\">");
    match (p.power_watts, p.power_cap_watts) {
        (None, cap) => {
            let cap = cap.map_or("no cap set".into(), |c| format!("cap {c:.0} W"));
            let _ = write!(
                h,
                "<p>Power: <span class=\"muted\">no power reading</span> ({cap})</p>"
            );
        }
        (Some(w), None) => {
            let _ = write!(h, "<p>Power: {w:.0} W (no cap set)</p>");
        }
        (Some(w), Some(cap)) => {
            let share = if cap > 0.0 { w / cap } else { f64::INFINITY };
            let class = match share {
                s if s > 1.0 => "bad",
                s if s >= WARN_SHARE => "warn",
                _ => "ok",
            };
            let headroom = p.power_headroom_watts.unwrap_or(cap - w);
            let room = if headroom < 0.0 {
                format!(
                    "<span class=\"bad\">over the cap by {:.0} W</span>",
                    -headroom
                )
            } else {
                format!("headroom {headroom:.0} W")
            };
            let _ = write!(
                h,
                "<p>Power: {w:.0} W of {cap:.0} W ({:.1} %); {room}</p>\
                 <div class=\"bar\" role=\"img\" aria-label=\"{w:.0} W of {cap:.0} W\">\
                 <span class=\"fill {class}\" style=\"width:{:.1}%\"></span></div>",
                share * 100.0,
                (share * 100.0).clamp(0.0, 100.0)
            );
        }
    }
    h.push_str("</div>");
}

/// Seconds for people: milliseconds under a second.
fn seconds(v: Option<f64>) -> String {
    match v {
        None => "no data".into(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
    }
}

/// Latency, efficiency, budget headroom and the routing signal.
fn facts(h: &mut String, c: &CellReport) {
    let _ = write!(
        h,
        "<dl class=\"facts\"><div><dt>p95 latency (5 min)</dt><dd>{}</dd></div>\
         <div><dt>p95 TTFT (5 min)</dt><dd>{}</dd></div>\
         <div><dt>tokens/kWh (1h)</dt><dd>{}</dd></div>\
         <div><dt>kWh per 1k requests (1h)</dt><dd>{}</dd></div>\
         <div><dt>budget headroom</dt><dd>{}</dd></div>\
         <div><dt>fast-enough pool</dt><dd class=\"{}\">{}</dd></div></dl>",
        seconds(c.health.latency_p95_seconds),
        seconds(c.health.ttft_p95_seconds),
        num(c.tokens_per_kwh.get("1h").copied().flatten(), 0),
        num(c.kwh_per_1k_requests.get("1h").copied().flatten(), 4),
        pct(c.budget_headroom),
        if c.healthy { "ok" } else { "bad" },
        if c.healthy { "healthy" } else { "not healthy" },
    );
}

/// `node port ↔ peer peer_port: state`.
fn link(l: &LinkStatus) -> String {
    let end = |n: &str, p: &Option<String>| match p {
        Some(p) => format!("{} {}", esc(n), esc(p)),
        None => esc(n).to_string(),
    };
    let mut s = format!(
        "{} ↔ {}: {}",
        end(&l.node, &l.port),
        end(&l.peer, &l.peer_port),
        l.state.as_str().replace('_', " ")
    );
    if l.flapping {
        let _ = write!(s, " (flapping: {} transitions)", l.transitions);
    }
    s
}

/// Link health: overall, each expected link, and the nodes cut off.
fn links(h: &mut String, p: &CellHealth) {
    let (class, what) = match p.links_healthy {
        None => ("muted", "no topology"),
        Some(true) => ("ok", "healthy"),
        Some(false) => ("bad", "not healthy"),
    };
    let _ = write!(
        h,
        "<div class=\"links\"><p>Links: <span class=\"{class}\">{what}</span></p>"
    );
    if !p.links.is_empty() {
        h.push_str("<ul>");
        for l in &p.links {
            let ok = l.state == crate::health::LinkState::Up && !l.flapping;
            let _ = write!(
                h,
                "<li class=\"link {}\">{}</li>",
                if ok { "ok" } else { "bad" },
                link(l)
            );
        }
        h.push_str("</ul>");
    }
    if !p.unreachable.is_empty() {
        let nodes: Vec<String> = p.unreachable.iter().map(|n| esc(n).to_string()).collect();
        let _ = write!(
            h,
            "<p class=\"bad\">Mesh split: unreachable over the links: {}</p>",
            nodes.join(", ")
        );
    }
    h.push_str("</div>");
}

/// Restart loops, or "none".
fn restarts(h: &mut String, p: &CellHealth) {
    if p.restart_loops.is_empty() {
        h.push_str("<p class=\"restarts\">Restart loops: <span class=\"ok\">none</span></p>");
        return;
    }
    h.push_str("<div class=\"restarts\"><p>Restart loops:</p><ul>");
    for r in &p.restart_loops {
        let _ = write!(
            h,
            "<li class=\"bad\">{}: {} {}, {:.0} restarts</li>",
            esc(&r.node),
            esc(r.kind),
            esc(&r.what),
            r.restarts
        );
    }
    h.push_str("</ul></div>");
}

/// One SLO: its figures and its plot.
fn slo_figure(h: &mut String, s: &SloReport, hist: Option<&super::history::SloHistory>) {
    let w = |name: &str| s.windows.iter().find(|w| w.window == name);
    let burn = |name: &str| num(w(name).and_then(|w| w.burn_rate), 2);
    let low = s.budget_remaining.is_some_and(|b| b <= 0.0);
    let _ = write!(
        h,
        "<figure class=\"slo\" id=\"slo-{}-{}\"><figcaption><b>{}</b> objective {:.2} %, SLI {}, \
         budget left <span class=\"{}\">{}</span>, burn 1h {}×, 6h {}×{}</figcaption>",
        esc(&s.cell),
        esc(&s.slo),
        esc(&s.slo),
        s.objective * 100.0,
        pct(w("period").and_then(|w| w.sli)),
        if low { "bad" } else { "ok" },
        pct(s.budget_remaining),
        burn("1h"),
        burn("6h"),
        if s.data_missing {
            " <span class=\"bad\">(data missing)</span>"
        } else {
            ""
        },
    );
    match hist {
        Some(x) => h.push_str(&plot(
            x,
            &format!(
                "{} {}: budget left and burn rate over the period",
                s.cell, s.slo
            ),
        )),
        None => h.push_str("<p class=\"muted\">No history yet.</p>"),
    }
    h.push_str("</figure>");
}
