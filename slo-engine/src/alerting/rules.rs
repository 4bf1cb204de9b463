//! The alerts an evaluation calls for: burn-rate pages and tickets, budget exhausted, no data, cell
//! down.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Config, Slo, Timing};
use crate::eval::{Report, SloReport};
use crate::math;
use crate::model::{burn_factor, names};

use super::wanted::{Wanted, labels};

pub(super) fn window<'a>(
    s: &'a crate::eval::SloReport,
    name: &str,
) -> Option<&'a crate::eval::WindowReport> {
    s.windows.iter().find(|w| w.window == name)
}

pub(super) fn window_name(secs: u64) -> &'static str {
    crate::model::WINDOWS
        .iter()
        .find(|(_, s)| *s == secs)
        .map_or("", |(n, _)| *n)
}

/// The burn tiers of an SLO that fire now: (severity, long window, factor, long burn).
pub(super) fn burning<'a>(
    rates: &'a [crate::config::BurnRate],
    slo: &Slo,
    r: &crate::eval::SloReport,
    now: i64,
) -> Vec<(&'a str, u64, f64, f64)> {
    let period = math::period_length(&slo.period, now).as_secs();
    let mut out = Vec::new();
    for b in rates {
        let (severity, long, short) = (b.severity.as_str(), b.long, b.short);
        if long > period {
            continue;
        }
        let f = burn_factor(b.budget, long, period);
        let burn = |secs| window(r, window_name(secs)).and_then(|w| w.burn_rate);
        let units = |secs| window(r, window_name(secs)).map_or(0.0, |w| w.total);
        // Judged windows only: a window too thin for a fixed min_events has no burn rate, and
        // one with a burn rate holds at least one unit. Low traffic (automatic min_events): the
        // long window must hold enough events that one bad event alone cannot fire the tier.
        if let (Some(l), Some(s)) = (burn(long), burn(short))
            && l >= f
            && s >= f
            && units(long) >= math::tier_min_events(slo, f) as f64
            && units(short) >= 1.0
        {
            out.push((severity, long, f, l));
        }
    }
    out
}

/// The alerts an evaluation calls for, before inhibition: per cell and SLO, a page and a
/// ticket for the burn-rate tiers that fire, budget exhausted, no data; per cell, cell down
/// when every exporter of `down_cells` failed, and the alerts of its health.
pub fn wanted(
    config: &Config,
    report: &Report,
    down_cells: &BTreeSet<String>,
    timing: &Timing,
) -> Vec<Wanted> {
    let health = super::health::health_alerts(config, report);
    let mut out = Vec::new();
    for r in &report.slos {
        let Some(slo) = config.slos.iter().find(|s| s.name == r.slo) else {
            continue;
        };
        // A health SLO (link_health, power_cap) alerts through its conditions, which name the
        // link or the power: no burn tiers, and no exhausted ticket while one of them is wanted.
        let conditions = super::health::is_health_slo(config, &r.slo);
        let condition_wanted = conditions.is_some_and(|names| {
            health.iter().any(|w| {
                w.labels.get("cell") == Some(&r.cell)
                    && w.labels
                        .get("alertname")
                        .is_some_and(|a| names.contains(&a.as_str()))
            })
        });
        if conditions.is_none() {
            out.extend(burn_alerts(config, slo, r, report.at));
        }
        let period_units = window(r, "period").map_or(0.0, |w| w.total);
        if r.budget_remaining.is_some_and(|b| b <= 0.0)
            && period_units >= math::exhausted_min_events(slo) as f64
            && !condition_wanted
        {
            out.push(slo_alert(
                r,
                names::EXHAUSTED,
                "ticket",
                format!(
                    "Cell {} has spent the {} error budget of its period",
                    r.cell, r.slo
                ),
                0,
            ));
        }
        if r.data_missing {
            out.push(slo_alert(
                r,
                names::NO_DATA,
                "ticket",
                format!("SLO {} of cell {} has no data", r.slo, r.cell),
                timing.no_data_for,
            ));
        }
    }
    for cell in down_cells {
        out.push(Wanted {
            labels: labels(&[
                ("alertname", names::CELL_DOWN),
                ("cell", cell),
                ("severity", "page"),
            ]),
            annotations: labels(&[("summary", &format!("No exporter of cell {cell} answers"))]),
            hold: timing.cell_down_for,
        });
    }
    out.extend(health);
    out
}

/// An alert about one SLO of one cell, with its budget left.
fn slo_alert(r: &SloReport, alertname: &str, severity: &str, summary: String, hold: i64) -> Wanted {
    Wanted {
        labels: labels(&[
            ("alertname", alertname),
            ("cell", &r.cell),
            ("slo", &r.slo),
            ("severity", severity),
        ]),
        annotations: labels(&[
            ("summary", &summary),
            (
                "budget_remaining",
                &r.budget_remaining
                    .map_or("unknown".into(), |b| format!("{:.1} %", b * 100.0)),
            ),
        ]),
        hold,
    }
}

/// One burn-rate alert per severity whose windows burn, naming each burning window.
fn burn_alerts(config: &Config, slo: &Slo, r: &SloReport, at: i64) -> Vec<Wanted> {
    let mut by_severity: BTreeMap<&str, Vec<(u64, f64, f64)>> = BTreeMap::new();
    for (severity, long, f, l) in burning(&config.alerting.burn_rates, slo, r, at) {
        by_severity.entry(severity).or_default().push((long, f, l));
    }
    let mut out = Vec::new();
    for (severity, tiers) in by_severity {
        let detail: Vec<String> = tiers
            .iter()
            .map(|(long, f, l)| {
                format!(
                    "{:.1}× over {} (threshold {:.1}×)",
                    l,
                    window_name(*long),
                    f
                )
            })
            .collect();
        let mut w = slo_alert(
            r,
            names::BURN,
            severity,
            format!("Cell {} burns the {} error budget too fast", r.cell, r.slo),
            0,
        );
        w.annotations.insert("burn_rates".into(), detail.join("; "));
        out.push(w);
    }
    out
}
