//! The evaluation: judge time slices, sum every window, one report per SLO and per cell.

use std::collections::BTreeMap;

use super::plan::{COLUMNS, Columns, ROWS, Sums, TIERS, add, hour, period_hour, pieces};
use super::report::{CellReport, Report, SloReport, window_report};
use crate::config::{Budgeting, Config};
use crate::ledger::{BandQuery, Judge, Ledger, LedgerError};
use crate::math;
use crate::model::WINDOWS_MAX;

/// Sums per cell of one SLO's rows (`None`: the cells' totals) at `now`. Windows up to 6h
/// cover exactly the slices that start in their last `w` seconds; a day and longer, and the
/// period, start on the hour. Each range is read from the coarsest table that covers it
/// exactly (minute rows at the edges, hourly and daily rollups between): one query per table,
/// one index range scan per stretch, summed in the database.
pub(super) async fn slo_sums(
    ledger: &Ledger,
    slo: Option<&crate::config::Slo>,
    now: i64,
) -> Result<std::collections::HashMap<String, Sums>, LedgerError> {
    let columns = Columns::of(slo);
    // (end of the windows, period start, start of "recent").
    let (to, period, recent_from) = match slo {
        None => (now + 1, None, now - 300),
        Some(s) => {
            let (start, _) = math::period_bounds(&s.period, now);
            match (s.budgeting, Judge::of_timeslices(s)) {
                (Budgeting::Timeslices { slice, .. }, Some(_)) => (
                    math::slice_start(now, slice),
                    Some(start),
                    now - (slice.as_secs() as i64 * 2).max(300),
                ),
                _ => (now + 1, Some(start), now - 300),
            }
        }
    };
    // Every range summed: the windows, the period, "recent" (minute rows only).
    let mut ranges: Vec<(i64, i64)> = crate::model::WINDOWS
        .iter()
        .map(|(_, w)| {
            let from = to - *w as i64;
            (if *w > 21_600 { hour(from) } else { from }, to)
        })
        .collect();
    ranges.push(period.map_or((to, to), |p| (period_hour(slo, p), to)));
    let split: Vec<Vec<(usize, i64, i64)>> = ranges
        .iter()
        .map(|(from, to)| {
            let mut v = Vec::new();
            pieces(*from, *to, 0, &mut v);
            v
        })
        .chain([vec![(0, recent_from, now + 1)]])
        .collect();
    let per_tier = tier_bands(ledger, &columns, &split).await?;
    let cells: std::collections::BTreeSet<&String> =
        per_tier.iter().flat_map(|(_, s)| s.keys()).collect();
    let mut out = std::collections::HashMap::new();
    for cell in cells {
        let sum_of = |pieces: &[(usize, i64, i64)]| {
            let mut acc = [0.0; COLUMNS];
            for (tier, from, to) in pieces {
                let (bounds, sums) = &per_tier[*tier];
                let Some(bands) = sums.get(cell) else {
                    continue;
                };
                for (i, band) in bands.iter().enumerate() {
                    if bounds[i] >= *from && bounds[i + 1] <= *to {
                        add(&mut acc, band);
                    }
                }
            }
            acc
        };
        let n = crate::model::WINDOWS.len();
        out.insert(
            cell.clone(),
            Sums {
                windows: split[..n].iter().map(|p| sum_of(p)).collect(),
                period: sum_of(&split[n]),
                recent: sum_of(&split[n + 1]),
            },
        );
    }
    Ok(out)
}

/// Sums per cell of one SLO's rows (`None`: the cells' totals) over `[from, to)`, each piece
/// from the coarsest table that covers it (see [`evaluate`]): `[good, total, tokens, joules,
/// requests]`, good and total counting judged slices for a time-slice SLO.
pub async fn range_sums(
    ledger: &Ledger,
    slo: Option<&crate::config::Slo>,
    from: i64,
    to: i64,
) -> Result<std::collections::HashMap<String, [f64; 5]>, LedgerError> {
    let mut split = Vec::new();
    pieces(from, to, 0, &mut split);
    let mut out: std::collections::HashMap<String, [f64; COLUMNS]> =
        std::collections::HashMap::new();
    // Every kept band lies in the range; the others are zero.
    for (_, sums) in tier_bands(ledger, &Columns::of(slo), &[split]).await? {
        for (cell, bands) in sums {
            let acc = out.entry(cell).or_insert([0.0; COLUMNS]);
            for b in &bands {
                add(acc, b);
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|(cell, s)| (cell, [s[0], s[1], s[2], s[3], s[4]]))
        .collect())
}

/// Per tier (minutes, hours, days): the band bounds of every piece of `split` in that tier and
/// the sums per cell and band, the three tables in one query.
pub(super) async fn tier_bands(
    ledger: &Ledger,
    c: &Columns,
    split: &[Vec<(usize, i64, i64)>],
) -> Result<
    Vec<(
        Vec<i64>,
        std::collections::HashMap<String, Vec<[f64; COLUMNS]>>,
    )>,
    LedgerError,
> {
    let mut plans = Vec::new();
    for tier in 0..TIERS.len() {
        let mine: Vec<(i64, i64)> = split
            .iter()
            .flatten()
            .filter(|(t, ..)| *t == tier)
            .map(|(_, a, b)| (*a, *b))
            .collect();
        let mut bounds: Vec<i64> = mine.iter().flat_map(|(a, b)| [*a, *b]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let keep: Vec<bool> = bounds
            .windows(2)
            .map(|w| mine.iter().any(|(a, b)| *a <= w[0] && w[1] <= *b))
            .collect();
        plans.push((bounds, keep));
    }
    let parts: Vec<BandQuery<'_, COLUMNS>> = plans
        .iter()
        .zip(TIERS)
        .enumerate()
        .map(|(tier, ((bounds, keep), (table, _)))| BandQuery {
            table,
            slo: &c.name,
            bounds,
            keep,
            // Only minute rows are judged here (their verdicts' placeholders come first).
            cols: if tier == 0 { &c.minute } else { &c.rollup },
        })
        .collect();
    let sums = ledger.bands_of(&parts, &c.params).await?;
    Ok(plans
        .into_iter()
        .map(|(bounds, _)| bounds)
        .zip(sums)
        .collect())
}

/// Evaluates every SLO of every cell at `now` from the ledger. First the time slices completed
/// since the last evaluation are judged, once, into the rollups; then every SLO and the cells'
/// totals are summed in the database, three queries each for every cell at once.
pub async fn evaluate(config: &Config, ledger: &Ledger, now: i64) -> Result<Report, LedgerError> {
    evaluate_with(config, ledger, now, true).await
}

/// As [`evaluate`]; a standby engine (not the leader) passes `judge: false` and reads the
/// verdicts the leader judged, writing nothing.
pub async fn evaluate_with(
    config: &Config,
    ledger: &Ledger,
    now: i64,
    judge: bool,
) -> Result<Report, LedgerError> {
    let mut report = Report {
        at: now,
        ..Default::default()
    };
    if judge {
        judge_slices(config, ledger, now).await?;
    }
    // Every SLO and the totals at once: PostgreSQL answers them on several connections.
    let mut all = futures_util::future::try_join_all(
        config
            .slos
            .iter()
            .map(Some)
            .chain([None])
            .map(|s| slo_sums(ledger, s, now)),
    )
    .await?;
    let totals = all.pop().unwrap_or_default();
    let slo_sums_by_name: BTreeMap<String, _> = config
        .slos
        .iter()
        .map(|s| s.name.clone())
        .zip(all)
        .collect();
    // Which cells each SLO covers, as sets: a lookup per cell, not a scan of every cell.
    let covers: Vec<std::collections::HashSet<&str>> = config
        .slos
        .iter()
        .map(|s| s.cells.iter().map(String::as_str).collect())
        .collect();
    for cell in &config.cells {
        let mut headroom: Option<f64> = None;
        let mut paging = false;
        let mut any_data = false;
        for (slo, _) in config
            .slos
            .iter()
            .zip(&covers)
            .filter(|(_, c)| c.contains(cell.name.as_str()))
        {
            let sums = slo_sums_by_name
                .get(&slo.name)
                .and_then(|m| m.get(&cell.name))
                .cloned()
                .unwrap_or_else(|| Sums {
                    windows: vec![[0.0; COLUMNS]; crate::model::WINDOWS.len()],
                    ..Default::default()
                });
            let (r, pages) = slo_report(&cell.name, slo, &sums, now);
            paging |= pages;
            any_data |= !r.data_missing;
            if let Some(b) = r.budget_remaining {
                headroom = Some(headroom.map_or(b, |h: f64| h.min(b)));
            }
            report.slos.push(r);
        }
        let sums = totals.get(&cell.name);
        report
            .cells
            .push(cell_report(&cell.name, sums, headroom, any_data, paging));
    }
    Ok(report)
}

/// Judges the complete time slices of every time-slice SLO up to `now`.
async fn judge_slices(config: &Config, ledger: &Ledger, now: i64) -> Result<(), LedgerError> {
    let keep = retention(config);
    for slo in &config.slos {
        if let (Budgeting::Timeslices { slice, .. }, Some(j)) =
            (slo.budgeting, Judge::of_timeslices(slo))
        {
            ledger
                .judge(
                    &slo.name,
                    &j,
                    slice.as_secs() as i64,
                    now - keep,
                    math::slice_start(now, slice),
                )
                .await?;
        }
    }
    Ok(())
}

/// One SLO of one cell over every window and its period, and whether its 1 h burn rate pages.
fn slo_report(cell: &str, slo: &crate::config::Slo, sums: &Sums, now: i64) -> (SloReport, bool) {
    let page_factor = crate::model::page_factor(math::period_length(&slo.period, now).as_secs());
    let tally = |s: &[f64; COLUMNS]| math::Tally {
        good: s[0],
        total: s[1],
    };
    let tallies: Vec<math::Tally> = sums.windows.iter().map(tally).collect();
    let period = tally(&sums.period);
    // No data is no rows: zero traffic recorded (an idle cell, requests that all failed and so
    // carry no latency) is data; a cell whose exporters do not answer, or whose series are
    // absent, records nothing.
    let data_missing = sums.recent[ROWS] <= 0.0;
    let mut paging = false;
    let mut windows = Vec::new();
    for ((name, secs), t) in crate::model::WINDOWS.iter().zip(&tallies) {
        let mut w = window_report(name, math::window_state(slo, *t, *secs));
        w.total = t.total;
        // As the page fires: never on one bad event of a quiet cell (automatic min_events).
        let enough = t.total >= math::tier_min_events(slo, page_factor) as f64;
        if *name == "1h" && enough && w.burn_rate.is_some_and(|b| b >= page_factor) {
            paging = true;
        }
        windows.push(w);
    }
    let elapsed = math::period_elapsed(slo, now);
    let mut w = window_report("period", math::window_state(slo, period, elapsed));
    w.total = period.total;
    windows.push(w);
    let report = SloReport {
        cell: cell.to_string(),
        slo: slo.name.clone(),
        objective: slo.objective,
        budget_remaining: math::budget_from_tally(slo, period, now),
        data_missing,
        windows,
    };
    (report, paging)
}

/// A cell's efficiency over every window, its budget headroom and health.
fn cell_report(
    cell: &str,
    sums: Option<&Sums>,
    headroom: Option<f64>,
    any_data: bool,
    paging: bool,
) -> CellReport {
    let mut tpk = BTreeMap::new();
    let mut kpr = BTreeMap::new();
    for (i, (name, _)) in crate::model::WINDOWS.iter().enumerate() {
        let s = sums.map(|s| s.windows[i]).unwrap_or_default();
        tpk.insert(name.to_string(), math::tokens_per_kwh(s[2], s[3]));
        kpr.insert(name.to_string(), math::kwh_per_1k_requests(s[3], s[4]));
    }
    let recent_totals = sums.is_some_and(|s| s.recent[2..].iter().any(|v| *v > 0.0));
    CellReport {
        cell: cell.to_string(),
        tokens_per_kwh: tpk,
        kwh_per_1k_requests: kpr,
        budget_headroom: headroom,
        healthy: (any_data || recent_totals) && !paging,
        health: Default::default(),
        take_traffic: true,
        drain: Vec::new(),
    }
}

/// One period plus a margin (a calendar month counts as its longest), and never less
/// than the longest fixed window: how long the ledger keeps rows and how far a first start of
/// the `prometheus` source backfills.
pub fn retention(config: &Config) -> i64 {
    config
        .slos
        .iter()
        .map(|s| match s.period {
            crate::config::Period::Rolling(d) => d.as_secs() as i64,
            crate::config::Period::CalendarMonth(_) => crate::model::MONTH_LONGEST as i64,
        })
        .max()
        .unwrap_or(0)
        .max(WINDOWS_MAX)
        + 86400
}
