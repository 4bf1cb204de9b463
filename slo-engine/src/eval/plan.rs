//! Which ledger tiers (minutes, hours, days) and pieces cover each window.

/// How many sums a band holds: `[good, total, tokens, joules, requests, rows]`; for time
/// slices, good and total count judged slices; `rows` counts the rows recorded (a row of zeros
/// is traffic that was looked at and found idle, no row is no data).
pub(super) const COLUMNS: usize = 6;

/// The column of [`COLUMNS`] that counts rows.
pub(super) const ROWS: usize = 5;

/// Sums of one SLO (or of the cells' totals) for one cell: every window of `crate::model::WINDOWS`, the
/// period, and the last few minutes (the no-data test), each as [`COLUMNS`].
#[derive(Debug, Clone, Default)]
pub(super) struct Sums {
    pub(super) windows: Vec<[f64; COLUMNS]>,
    pub(super) period: [f64; COLUMNS],
    pub(super) recent: [f64; COLUMNS],
}

pub(super) fn add(a: &mut [f64; COLUMNS], b: &[f64; COLUMNS]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The tables of the ledger by resolution, and the alignment of their rows (seconds).
pub(super) const TIERS: [(crate::ledger::Table, i64); 3] = [
    (crate::ledger::Table::Minutes, 60),
    (crate::ledger::Table::Hours, 3600),
    (crate::ledger::Table::Days, 86_400),
];

/// Splits `[from, to)` into pieces read from the coarsest table that covers them exactly:
/// (tier, from, to). A 6-hour window is a few minute rows at each end and five hourly rows; a
/// month is some hours at each end and whole days between.
pub(super) fn pieces(from: i64, to: i64, tier: usize, out: &mut Vec<(usize, i64, i64)>) {
    if from >= to {
        return;
    }
    let Some(&(_, next)) = TIERS.get(tier + 1) else {
        out.push((tier, from, to));
        return;
    };
    let a = (from + next - 1).div_euclid(next) * next;
    let b = to.div_euclid(next) * next;
    if a >= b {
        out.push((tier, from, to));
        return;
    }
    if from < a {
        out.push((tier, from, a));
    }
    pieces(a, b, tier + 1, out);
    if b < to {
        out.push((tier, b, to));
    }
}

pub(super) fn hour(t: i64) -> i64 {
    t - t.rem_euclid(3600)
}

/// Where the period's sums start: on the hour. A rolling period starts at the top of the hour
/// in which it begins (up to 59 minutes more); a calendar month in a time zone whose offset is
/// not whole hours starts at the next full hour, so the previous month never counts.
pub(super) fn period_hour(slo: Option<&crate::config::Slo>, p: i64) -> i64 {
    match slo.map(|s| &s.period) {
        Some(crate::config::Period::CalendarMonth(_)) if p.rem_euclid(3600) != 0 => hour(p) + 3600,
        _ => hour(p),
    }
}

/// What is summed for an SLO (or the cells' totals): its name in the ledger, the columns
/// of minute rows and of rollups (judged verdicts for a time-slice SLO), and the verdicts'
/// parameters.
#[derive(Debug, PartialEq)]
pub(super) struct Columns {
    pub(super) name: String,
    pub(super) minute: [String; COLUMNS],
    pub(super) rollup: [String; COLUMNS],
    pub(super) params: Vec<f64>,
}

impl Columns {
    /// An SLO sums its good and total (verdicts) and rows; the cells' totals their tokens,
    /// joules, requests and rows. What a series does not use is not summed (an empty
    /// expression, read as zero).
    pub(super) fn of(slo: Option<&crate::config::Slo>) -> Columns {
        let cols = |g: &str, t: &str| -> [String; COLUMNS] {
            let (tokens, joules, requests) = match slo {
                Some(_) => ("", "", ""),
                None => ("tokens", "joules", "requests"),
            };
            [
                g.to_string(),
                t.to_string(),
                tokens.into(),
                joules.into(),
                requests.into(),
                "1".into(),
            ]
        };
        let plain = match slo {
            Some(_) => cols("good", "total"),
            None => cols("", ""),
        };
        match slo.map(|s| (s, crate::math::Judge::of_timeslices(s))) {
            Some((s, Some(j))) => {
                let (g, t, params) = j.sql(1);
                Columns {
                    name: s.name.clone(),
                    minute: cols(&g, &t),
                    rollup: cols("judged_good", "judged_total"),
                    params,
                }
            }
            other => Columns {
                name: other.map_or(String::new(), |(s, _)| s.name.clone()),
                minute: plain.clone(),
                rollup: plain,
                params: Vec::new(),
            },
        }
    }
}
