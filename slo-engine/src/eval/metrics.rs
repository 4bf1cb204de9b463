//! The evaluation as `/metrics` samples (`cellwatch_slo_*`).

use cellwatch_http::exposition::Sample;
use cellwatch_metrics as m;

use super::report::Report;

/// The report as metrics.
pub fn samples(report: &Report) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in &report.slos {
        let l = [s.cell.as_str(), s.slo.as_str()];
        out.push(Sample::new(&m::SLO_OBJECTIVE, &l, s.objective));
        out.push(Sample::new(
            &m::SLO_DATA_MISSING,
            &l,
            if s.data_missing { 1.0 } else { 0.0 },
        ));
        if let Some(b) = s.budget_remaining {
            out.push(Sample::new(&m::SLO_BUDGET_REMAINING, &l, b));
        }
        for w in &s.windows {
            let lw = [s.cell.as_str(), s.slo.as_str(), w.window.as_str()];
            if let Some(v) = w.sli {
                out.push(Sample::new(&m::SLO_SLI, &lw, v));
            }
            if let Some(v) = w.burn_rate {
                out.push(Sample::new(&m::SLO_BURN_RATE, &lw, v));
            }
        }
    }
    for c in &report.cells {
        for (w, v) in &c.tokens_per_kwh {
            if let Some(v) = v {
                out.push(Sample::new(&m::CELL_TOKENS_PER_KWH, &[&c.cell, w], *v));
            }
        }
        for (w, v) in &c.kwh_per_1k_requests {
            if let Some(v) = v {
                out.push(Sample::new(&m::CELL_KWH_PER_1K, &[&c.cell, w], *v));
            }
        }
        health_samples(c, &mut out);
    }
    out
}

/// The drain reasons a cell can have, in the order of `health::drain`.
const DRAIN_REASONS: [&str; 6] = [
    "down",
    "mesh_split",
    "over_power_cap",
    "flapping",
    "budget_exhausted",
    "maintenance",
];

/// A cell's power, cap, link states and drain decision.
fn health_samples(c: &super::CellReport, out: &mut Vec<Sample>) {
    use crate::health::LinkState;
    let h = &c.health;
    let cell = c.cell.as_str();
    if let Some(p) = h.power_watts {
        out.push(Sample::new(&m::CELL_POWER_WATTS, &[cell], p));
    }
    if let Some(cap) = h.power_cap_watts {
        out.push(Sample::new(&m::CELL_POWER_CAP, &[cell], cap));
    }
    for l in &h.links {
        for s in [
            LinkState::Up,
            LinkState::Down,
            LinkState::Slow,
            LinkState::RdmaInactive,
            LinkState::Errors,
            LinkState::Unknown,
        ] {
            let v = if l.state == s { 1.0 } else { 0.0 };
            out.push(Sample::new(
                &m::CELL_LINK_STATE,
                &[cell, &l.node, &l.peer, s.as_str()],
                v,
            ));
        }
    }
    let take = if c.take_traffic { 1.0 } else { 0.0 };
    out.push(Sample::new(&m::CELL_TAKE_TRAFFIC, &[cell], take));
    for r in DRAIN_REASONS {
        let v = if c.drain.iter().any(|d| d.reason == r) {
            1.0
        } else {
            0.0
        };
        out.push(Sample::new(&m::CELL_DRAIN_REASON, &[cell, r], v));
    }
}
