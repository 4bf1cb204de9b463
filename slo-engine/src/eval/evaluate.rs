//! The evaluation: judge time slices, sum every window, one report per SLO and per cell.

use std::collections::BTreeMap;

use super::plan::{COLUMNS, Columns, ROWS, Sums, add, pieces};
use super::report::{CellReport, Report, SloReport, window_report};
use super::settled::{Settled, ranges, series_sums, tier_bands};
use crate::config::{Budgeting, Config};
use crate::ledger::{Judge, Ledger, LedgerError};
use crate::math;
use crate::model::WINDOWS_MAX;

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

/// Evaluates every SLO of every cell at `now` from the ledger. First the time slices completed
/// since the last evaluation are judged, once, into the rollups; then every SLO and the cells'
/// totals are summed in the database, one query each for every cell at once.
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
    Evaluator::default()
        .evaluate(config, ledger, now, judge)
        .await
}

/// Evaluations one after another, each series' settled sums kept from one to the next (see
/// [`super::settled`]): the leader's. [`Evaluator::default`] keeps nothing.
#[derive(Debug, Default)]
pub struct Evaluator {
    /// What this process writes to the ledger; `None`: keep nothing.
    watch: Option<crate::ledger::ChangeWatch>,
    /// Per series (an SLO's name; `None`: the cells' totals).
    kept: std::collections::HashMap<Option<String>, Settled>,
    /// How many times a series was summed in full.
    full: u64,
}

impl Evaluator {
    /// An evaluator keeping sums between evaluations, watching what this process writes to
    /// `ledger` (only the leader writes: another engine's writes are not seen, so a standby
    /// keeps nothing).
    pub fn keeping(ledger: &Ledger) -> Evaluator {
        Evaluator {
            watch: Some(ledger.watch()),
            kept: Default::default(),
            full: 0,
        }
    }

    /// How many times a series (an SLO, or the cells' totals) was summed in full rather than
    /// moved on from the sums kept.
    pub fn full_sums(&self) -> u64 {
        self.full
    }

    /// Evaluates every SLO of every cell at `now` (see [`evaluate_with`]); sums are kept only
    /// when `judge` (the leader, which writes all there is).
    pub async fn evaluate(
        &mut self,
        config: &Config,
        ledger: &Ledger,
        now: i64,
        judge: bool,
    ) -> Result<Report, LedgerError> {
        // Taken out first: an evaluation that fails on the way keeps nothing (meanwhile rows
        // its sums still count may be pruned).
        let mut held = std::mem::take(&mut self.kept);
        if judge {
            judge_slices(config, ledger, now).await?;
        }
        // After judging (its verdicts are this evaluation's to read), before reading: a write
        // that lands meanwhile is seen at the next evaluation.
        let changed = self.watch.as_ref().map(|w| w.take());
        let keep = judge && self.watch.is_some();
        // Those of SLOs no longer configured go.
        let kept: Vec<Option<Settled>> = config
            .slos
            .iter()
            .map(|s| Some(s.name.clone()))
            .chain([None])
            .map(|k| held.remove(&k).filter(|_| keep))
            .collect();
        // Every SLO and the totals at once, each its own task: PostgreSQL answers them on
        // several connections, and their rows are decoded on every worker thread.
        let tasks: Vec<_> = config
            .slos
            .iter()
            .map(Some)
            .chain([None])
            .zip(kept)
            .map(|(s, k)| {
                // Changed data of this series (all of it, without a watch).
                let name = s.map_or("", |s| s.name.as_str());
                let c = match &changed {
                    Some(c) => c.get(name).copied(),
                    None => Some(i64::MIN),
                };
                // What the task needs of the SLO, not the SLO (it lists every cell).
                let plan = (Columns::of(s), ranges(s, now));
                let ledger = ledger.clone();
                tokio::spawn(async move { series_sums(&ledger, plan, k, c).await })
            })
            .collect();
        let mut all = Vec::with_capacity(tasks.len());
        for task in tasks {
            match task.await {
                Ok(r) => all.push(r?),
                Err(e) => match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // The runtime is shutting down.
                    Err(_) => {
                        return Err(LedgerError::Query {
                            what: "sum a series",
                            source: sqlx::Error::WorkerCrashed,
                        });
                    }
                },
            }
        }
        self.full += all.iter().filter(|r| r.2).count() as u64;
        let mut totals = Default::default();
        if let Some((sums, settled, _)) = all.pop() {
            totals = sums;
            if keep {
                self.kept.insert(None, settled);
            }
        }
        let mut slo_sums_by_name = BTreeMap::new();
        for (slo, (sums, settled, _)) in config.slos.iter().zip(all) {
            if keep {
                self.kept.insert(Some(slo.name.clone()), settled);
            }
            slo_sums_by_name.insert(slo.name.clone(), sums);
        }
        Ok(report_of(config, now, &slo_sums_by_name, &totals))
    }
}

/// The report of every SLO and cell from the series' sums.
fn report_of(
    config: &Config,
    now: i64,
    slo_sums_by_name: &BTreeMap<String, std::collections::HashMap<String, Sums>>,
    totals: &std::collections::HashMap<String, Sums>,
) -> Report {
    let mut report = Report {
        at: now,
        ..Default::default()
    };
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
    report
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
