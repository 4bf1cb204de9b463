//! Increases into slices: events per SLI, totals, the rows of a cell.

use std::time::Duration;

use cellwatch_metrics as m;

use super::tracker::Reading;
use crate::config::{Budgeting, Config, Sli, Slo};
use crate::model::{SLICE, SliceData};

pub(super) fn sum(inc: &Reading, family: &str, pred: impl Fn(&[(String, String)]) -> bool) -> f64 {
    inc.iter()
        .filter(|((f, l), _)| f == family && pred(l))
        .map(|(_, v)| *v)
        .sum()
}

pub(super) fn label<'a>(l: &'a [(String, String)], name: &str) -> Option<&'a str> {
    l.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// One node's contribution to a cell's totals in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Generated tokens.
    pub tokens: f64,
    /// Joules (the node's whole-system source when it has one, else the SoC; RAPL plus NVIDIA on
    /// Linux).
    pub joules: f64,
    /// Finished requests that were not cancelled.
    pub requests: f64,
}

/// The cell-level totals of one node's increases.
pub fn totals(inc: &Reading) -> Totals {
    let energy = |source: &str| -> Option<f64> {
        let k = inc.iter().find(|((f, l), _)| {
            f == m::NODE_ENERGY_JOULES.name && label(l, "source") == Some(source)
        });
        k.map(|(_, v)| *v)
    };
    Totals {
        tokens: sum(inc, m::INFERENCE_TOKENS.name, |l| {
            label(l, "kind") == Some("generated")
        }),
        // The whole-node rule of `cellwatch_metrics::node_energy_promql`: SMC, else SoC (Apple),
        // else RAPL plus NVIDIA (Linux).
        joules: energy("smc")
            .or_else(|| energy("soc"))
            .or_else(|| match (energy("rapl"), energy("nvidia")) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            })
            .unwrap_or(0.0),
        requests: sum(inc, m::INFERENCE_REQUESTS.name, |l| {
            label(l, "outcome") != Some("cancelled")
        }),
    }
}

/// Good and total events of an event-ratio SLO in one node's increases (throughput: the
/// reading itself, one in total when it carries the waiting gauge, and good when requests were
/// waiting at it).
pub fn events(slo: &Slo, inc: &Reading) -> (f64, f64) {
    // Only histograms that have a bucket at the threshold count, good and total alike (an
    // adapter's upstream may use other bounds).
    let hist = |family: &str, t: f64| {
        let bucket = format!("{family}_bucket");
        let without_le = |l: &[(String, String)]| -> Vec<(String, String)> {
            l.iter().filter(|(k, _)| k != "le").cloned().collect()
        };
        let mut good = 0.0;
        let mut with_bound = std::collections::HashSet::new();
        for ((f, l), v) in inc {
            if *f == bucket
                && label(l, "le")
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|b| (b - t).abs() < 1e-9)
            {
                good += v;
                with_bound.insert(without_le(l));
            }
        }
        let total = inc
            .iter()
            .filter(|((f, l), _)| {
                *f == bucket
                    && label(l, "le") == Some("+Inf")
                    && with_bound.contains(&without_le(l))
            })
            .map(|(_, v)| *v)
            .sum();
        (good, total)
    };
    match &slo.sli {
        Sli::Latency(t) => hist(m::INFERENCE_REQUEST_DURATION.name, *t),
        Sli::Ttft(t) => hist(m::INFERENCE_TTFT.name, *t),
        Sli::Tpot(t) => hist(m::INFERENCE_TPOT.name, *t),
        // No events: `total` counts the readings that carry the waiting gauge (a node without
        // inference series, such as an EXO ring's non-entry node, has none), `good` those with
        // requests waiting (the reading's gauge, not an increase). A slice is judged when at
        // least half of its readings had requests waiting; its tokens decide (`Judge`).
        Sli::Throughput { .. } => {
            let gauge = inc.keys().any(|(f, _)| f == m::INFERENCE_WAITING.name);
            let waiting = sum(inc, m::INFERENCE_WAITING.name, |_| true);
            match (gauge, waiting > 0.0) {
                (false, _) => (0.0, 0.0),
                (true, loaded) => (if loaded { 1.0 } else { 0.0 }, 1.0),
            }
        }
        Sli::Availability => {
            fn outcome(l: &[(String, String)]) -> &str {
                label(l, "outcome").unwrap_or("")
            }
            let good = sum(inc, m::INFERENCE_REQUESTS.name, |l| {
                matches!(outcome(l), "ok" | "client_error")
            });
            let total = sum(inc, m::INFERENCE_REQUESTS.name, |l| {
                outcome(l) != "cancelled"
            });
            (good, total)
        }
        // Not read from exporter pages: see `source::prometheus`.
        Sli::TokensPerKwh { .. } | Sli::Ratio(_) => (0.0, 0.0),
        // Judged from the cell's health, not from increases: see `cell_rows`.
        Sli::LinkHealth | Sli::PowerCap => (0.0, 0.0),
    }
}

/// The slice one interval of a cell adds for an SLO, from its nodes' increases.
pub fn slice(slo: &Slo, start: i64, nodes: &[Reading]) -> SliceData {
    let mut s = SliceData {
        start,
        ..Default::default()
    };
    for inc in nodes {
        let (good, total) = events(slo, inc);
        let t = totals(inc);
        s.good += good;
        s.total += total;
        s.tokens += t.tokens;
        s.joules += t.joules;
        s.requests += t.requests;
    }
    s
}

/// The SLOs that cover each cell, in file order: built once per scrape, then one lookup per
/// cell (scanning every SLO's cells for every cell grows with the square of the cells).
pub(crate) fn slos_by_cell(config: &Config) -> std::collections::HashMap<&str, Vec<&Slo>> {
    let mut by_cell: std::collections::HashMap<&str, Vec<&Slo>> = config
        .cells
        .iter()
        .map(|c| (c.name.as_str(), Vec::new()))
        .collect();
    for slo in &config.slos {
        for cell in &slo.cells {
            if let Some(v) = by_cell.get_mut(cell.as_str())
                && !v.last().is_some_and(|last| std::ptr::eq(*last, slo))
            {
                v.push(slo);
            }
        }
    }
    by_cell
}

/// The rows (per SLO, and the cell's totals under `""`) that increases of a cell's nodes at
/// `at` add (none without increases), and the rows of its health SLIs: one reading, good when
/// every expected link is healthy (link_health) or the cell's power is at or under its cap
/// (power_cap); none without a topology, a cap or a power reading. `slos` are the SLOs that
/// cover the cell ([`slos_by_cell`]).
pub(crate) fn cell_rows(
    config: &Config,
    slos: &[&Slo],
    cell: &str,
    at: i64,
    incs: &[super::Reading],
    health: Option<&crate::health::CellHealth>,
) -> Vec<(String, String, SliceData)> {
    let mut rows = Vec::new();
    // A maintenance window that excludes its slices from the budget: nothing is recorded.
    let excluded = config
        .maintenance
        .iter()
        .any(|m| m.exclude_from_budget && m.active(cell, at));
    if excluded {
        return rows;
    }
    for slo in slos {
        let good = match (&slo.sli, health) {
            (Sli::LinkHealth, Some(h)) => h.links_healthy,
            (Sli::PowerCap, Some(h)) => h
                .power_watts
                .zip(h.power_cap_watts)
                .map(|(p, cap)| p <= cap),
            _ => continue,
        };
        let (Some(good), Budgeting::Timeslices { slice, .. }) = (good, slo.budgeting) else {
            continue;
        };
        let s = SliceData {
            start: crate::math::slice_start(at, slice),
            good: if good { 1.0 } else { 0.0 },
            total: 1.0,
            ..Default::default()
        };
        rows.push((cell.to_string(), slo.name.clone(), s));
    }
    if incs.is_empty() {
        return rows;
    }
    for slo in slos
        .iter()
        .filter(|s| !matches!(s.sli, Sli::Ratio(_) | Sli::LinkHealth | Sli::PowerCap))
    {
        let len = match slo.budgeting {
            Budgeting::Timeslices { slice, .. } => slice,
            Budgeting::Occurrences => Duration::from_secs(SLICE as u64),
        };
        let s = super::slice(slo, crate::math::slice_start(at, len), incs);
        rows.push((cell.to_string(), slo.name.clone(), s));
    }
    let mut t = SliceData {
        start: crate::math::slice_start(at, Duration::from_secs(SLICE as u64)),
        ..Default::default()
    };
    for inc in incs {
        let x = super::totals(inc);
        t.tokens += x.tokens;
        t.joules += x.joules;
        t.requests += x.requests;
    }
    rows.push((cell.to_string(), String::new(), t));
    rows
}
