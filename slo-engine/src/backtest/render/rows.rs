//! The tables of a backtest as rows of text, shared by the terminal and HTML renderings, and
//! the way they write durations, times and numbers.

use crate::backtest::result::{Backtest, SloSeries};
use crate::util::time::rfc3339;

/// A table: its column heads, its rows, and what to say when it has none.
pub(super) struct Table {
    pub head: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub empty: &'static str,
}

/// Seconds for people: `58s`, `17m 4s`, `2h 0m`, `3d 2h`; a negative span gets a `-`.
pub(super) fn duration(secs: i64) -> String {
    let sign = if secs < 0 { "-" } else { "" };
    let s = secs.unsigned_abs();
    let text = match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    };
    format!("{sign}{text}")
}

/// A value, or `-` when there is none.
pub(super) fn or_dash<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// A share (1 = 100 %) as a percentage with one decimal.
pub(super) fn percent(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// A burn rate: `14.4×`.
pub(super) fn burn(v: f64) -> String {
    format!("{v:.1}×")
}

/// A finite value, None for a missing or non-finite one.
pub(super) fn finite(v: Option<f64>) -> Option<f64> {
    v.filter(|x| x.is_finite())
}

/// The budget left at the series' last point with a value.
pub(super) fn budget_at_end(s: &SloSeries) -> Option<f64> {
    s.points
        .iter()
        .rev()
        .find_map(|p| finite(p.budget_remaining))
}

/// The lowest budget left over the series.
pub(super) fn lowest_budget(s: &SloSeries) -> Option<f64> {
    s.points
        .iter()
        .filter_map(|p| finite(p.budget_remaining))
        .reduce(f64::min)
}

/// The highest 1 h burn rate over the series.
pub(super) fn highest_burn_1h(s: &SloSeries) -> Option<f64> {
    s.points
        .iter()
        .filter_map(|p| finite(p.burn_1h))
        .reduce(f64::max)
}

/// The header of a backtest as (name, value) pairs.
pub(super) fn header(b: &Backtest) -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("config", b.config.clone()),
        ("history", b.history.clone()),
        ("ledger", b.ledger.clone()),
        (
            "range",
            format!(
                "{} .. {} ({})",
                rfc3339(b.from),
                rfc3339(b.to),
                duration(b.to - b.from)
            ),
        ),
        ("interval", duration(b.interval)),
        ("evaluations", b.evaluations.to_string()),
        ("replay", format!("{:.2} s", b.replay_seconds)),
    ];
    if let Some(t) = b.onset {
        out.push(("onset", rfc3339(t)));
    }
    if let Some(t) = b.recovery {
        out.push(("recovery", rfc3339(t)));
    }
    out
}

/// Every alert that fired.
pub(super) fn alerts(b: &Backtest) -> Table {
    let rows = b
        .alerts
        .iter()
        .map(|e| {
            vec![
                e.alertname.clone(),
                e.cell.clone(),
                e.slo.clone(),
                e.severity.clone(),
                rfc3339(e.fired_at),
                e.resolved_at.map_or_else(|| "(firing)".into(), rfc3339),
                or_dash(e.detection_seconds, duration),
                or_dash(e.reset_seconds, duration),
                if e.notified { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    Table {
        head: vec![
            "alertname",
            "cell",
            "slo",
            "severity",
            "fired",
            "resolved",
            "detection",
            "reset",
            "notified",
        ],
        rows,
        empty: "no alert fired",
    }
}

/// Every incident.
pub(super) fn incidents(b: &Backtest) -> Table {
    let rows = b
        .incidents
        .iter()
        .map(|i| {
            vec![
                i.receiver.clone(),
                i.cell.clone(),
                rfc3339(i.opened_at),
                i.resolved_at.map_or_else(|| "(open)".into(), rfc3339),
                i.notifications.to_string(),
                i.pages.to_string(),
                i.alerts.join(", "),
            ]
        })
        .collect();
    Table {
        head: vec![
            "receiver",
            "cell",
            "opened",
            "resolved",
            "notifications",
            "pages",
            "alerts",
        ],
        rows,
        empty: "no incident",
    }
}

/// Per cell and SLO: the budget left at the end, the lowest, the highest 1 h burn.
pub(super) fn budgets(b: &Backtest) -> Table {
    let rows = b
        .series
        .iter()
        .map(|s| {
            vec![
                s.cell.clone(),
                s.slo.clone(),
                format!("{:.2}%", s.objective * 100.0),
                or_dash(budget_at_end(s), percent),
                or_dash(lowest_budget(s), percent),
                or_dash(highest_burn_1h(s), burn),
            ]
        })
        .collect();
    Table {
        head: vec![
            "cell",
            "slo",
            "objective",
            "budget at end",
            "lowest budget",
            "highest 1h burn",
        ],
        rows,
        empty: "no SLO series",
    }
}

/// One row per backtest, to compare configurations on the same history.
pub(super) fn comparison(bs: &[Backtest]) -> Table {
    let rows = bs
        .iter()
        .map(|b| {
            let lowest = b
                .series
                .iter()
                .filter_map(|s| lowest_budget(s).map(|v| (v, s)))
                .min_by(|x, y| x.0.total_cmp(&y.0));
            vec![
                b.config.clone(),
                b.alerts.len().to_string(),
                b.notifications
                    .iter()
                    .filter(|n| n.page)
                    .count()
                    .to_string(),
                b.notifications.len().to_string(),
                b.incidents.len().to_string(),
                or_dash(b.incidents.iter().map(|i| i.notifications).max(), |n| {
                    n.to_string()
                }),
                or_dash(lowest, |(v, s)| {
                    format!("{} ({} {})", percent(v), s.cell, s.slo)
                }),
            ]
        })
        .collect();
    Table {
        head: vec![
            "config",
            "alerts fired",
            "pages",
            "notifications",
            "incidents",
            "most notifications in one incident",
            "lowest budget",
        ],
        rows,
        empty: "no backtest",
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::{budget_at_end, duration, highest_burn_1h, lowest_budget};

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(duration(58), "58s");
        assert_eq!(duration(1024), "17m 4s");
        assert_eq!(duration(7200), "2h 0m");
        assert_eq!(duration(3 * 86400 + 7300), "3d 2h");
        assert_eq!(duration(-30), "-30s");
        assert_eq!(duration(0), "0s");
    }

    #[test]
    fn the_budget_at_the_end_is_the_last_known_and_extremes_skip_gaps() {
        let mut s = fixture::backtest().series.remove(0);
        assert_eq!(budget_at_end(&s), Some(1.0 - 0.05 * 11.0));
        assert_eq!(highest_burn_1h(&s), Some(11.5));
        s.points[11].budget_remaining = None;
        s.points[10].budget_remaining = Some(f64::NAN);
        assert_eq!(budget_at_end(&s), Some(1.0 - 0.05 * 9.0));
        assert_eq!(lowest_budget(&s), Some(1.0 - 0.05 * 9.0));
        s.points.clear();
        assert_eq!(budget_at_end(&s), None);
    }
}
