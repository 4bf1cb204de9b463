//! The sums of one series (an SLO, or the cells' totals) per cell, kept between evaluations.
//!
//! Every range an evaluation sums (the windows, the period, "recent") is split at a settled
//! time `S`, two minutes before the end of the windows: `[from, S)` is the settled part, kept,
//! and `[S, to)` is the tail, read again each time (the sources are still writing it). From one
//! evaluation to the next the settled part moves: what entered it (`[S, S')`, once for every
//! range) is added, and what left it (`[from, from')` of each range) subtracted, both read from
//! the coarsest ledger table that covers them. At 10,000 cells an evaluation a minute later
//! reads a handful of rows per cell and series instead of ~200.
//!
//! Kept sums are dropped, and read again in full, when anything they hold may have changed:
//! a write of this process to data older than `S` (see [`crate::ledger::ChangeWatch`]: late
//! samples, a backfill, verdicts judged again), time going backwards, or another way of summing
//! (new parameters of the SLO). A standby engine, which cannot see the leader's writes, keeps
//! nothing.

use std::collections::HashMap;

use super::plan::{COLUMNS, Columns, Sums, TIERS, add, hour, period_hour, pieces};
use crate::config::Budgeting;
use crate::ledger::{BandQuery, Judge, Ledger, LedgerError};
use crate::math;

/// How long before the end of the windows their sums are settled (seconds): the sources write
/// the current minute (and the scrape source may split a reading over the minute before).
pub(super) const SETTLE: i64 = 120;

/// A kept sum within this share of the largest it held is zero: what is left of adding rows and
/// subtracting the same rows summed in another order (a rollup). Rounding leaves ~1e-16 of the
/// largest value per step, a month of steps ~1e-11.
const RESIDUE: f64 = 1e-9;

/// One range's kept sum of one cell, and the largest magnitude each column held since it was
/// last zero.
#[derive(Debug, Clone, Copy, Default)]
struct Kept {
    sum: [f64; COLUMNS],
    peak: [f64; COLUMNS],
}

impl Kept {
    /// Adds `plus` and subtracts `minus`; a column left within [`RESIDUE`] of its peak is zero.
    fn moved<'a>(
        &mut self,
        plus: impl Iterator<Item = &'a [f64; COLUMNS]>,
        minus: impl Iterator<Item = &'a [f64; COLUMNS]>,
    ) {
        for b in plus {
            add(&mut self.sum, b);
        }
        for (x, p) in self.sum.iter().zip(self.peak.iter_mut()) {
            *p = p.max(x.abs());
        }
        for b in minus {
            for (x, y) in self.sum.iter_mut().zip(b) {
                *x -= y;
            }
        }
        for (x, p) in self.sum.iter_mut().zip(self.peak.iter_mut()) {
            if x.abs() <= *p * RESIDUE {
                *x = 0.0;
                *p = 0.0;
            }
        }
    }
}

/// One series' settled sums, per cell and range.
#[derive(Debug)]
pub(super) struct Settled {
    /// How the rows were summed (columns, verdict parameters).
    columns: Columns,
    /// `S`: every range is settled up to here.
    to: i64,
    /// Where each range's settled part starts (`min(from, S)`).
    from: Vec<i64>,
    /// Per cell, per range: the sum over `[from[r], to)`.
    sums: HashMap<String, Vec<Kept>>,
}

/// The ranges summed for one series at `now`, each `[from, to)` and whether it is read from
/// minute rows only: every window of `crate::model::WINDOWS`, the period, then "recent" (the
/// no-data test counts minute rows).
pub(super) fn ranges(slo: Option<&crate::config::Slo>, now: i64) -> Vec<(i64, i64, bool)> {
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
    // Windows up to 6h cover exactly the slices that start in their last `w` seconds; a day
    // and longer, and the period, start on the hour.
    let mut out: Vec<(i64, i64, bool)> = crate::model::WINDOWS
        .iter()
        .map(|(_, w)| {
            let from = to - *w as i64;
            (if *w > 21_600 { hour(from) } else { from }, to, false)
        })
        .collect();
    out.push(period.map_or((to, to, false), |p| (period_hour(slo, p), to, false)));
    out.push((recent_from, now + 1, true));
    out
}

/// Where the settled parts end: [`SETTLE`] before the earliest end, on the minute.
fn settle_at(ranges: &[(i64, i64, bool)]) -> i64 {
    let end = ranges.iter().map(|r| r.1).min().unwrap_or(0);
    end.div_euclid(60) * 60 - SETTLE
}

/// What one range needs read: its settled part again from nothing (`reset`), or moved (the
/// intervals added and subtracted), and its tail. Indexes into the intervals read.
struct Plan {
    reset: bool,
    add: Vec<usize>,
    sub: Vec<usize>,
    tail: Option<usize>,
}

/// The distinct intervals read, each as its pieces (tier, from, to).
#[derive(Default)]
struct Intervals {
    index: HashMap<(i64, i64, bool), usize>,
    split: Vec<Vec<(usize, i64, i64)>>,
}

impl Intervals {
    fn of(&mut self, from: i64, to: i64, minutes_only: bool) -> Option<usize> {
        if from >= to {
            return None;
        }
        let n = self.split.len();
        let i = *self.index.entry((from, to, minutes_only)).or_insert(n);
        if i == n {
            let mut v = Vec::new();
            if minutes_only {
                v.push((0, from, to));
            } else {
                pieces(from, to, 0, &mut v);
            }
            self.split.push(v);
        }
        Some(i)
    }
}

/// Sums per cell of one series (its [`Columns`] and [`ranges`] at the time evaluated; see the
/// module), from `kept` when it still holds:
/// the sums, and what to keep for the next evaluation. `changed`: the earliest data time this
/// process wrote since `kept` was made. The last of the three: whether every range was read in
/// full (nothing kept, or what was kept no longer holds).
pub(super) async fn series_sums(
    ledger: &Ledger,
    (columns, ranges): (Columns, Vec<(i64, i64, bool)>),
    kept: Option<Settled>,
    changed: Option<i64>,
) -> Result<(HashMap<String, Sums>, Settled, bool), LedgerError> {
    let s = settle_at(&ranges);
    let from: Vec<i64> = ranges.iter().map(|r| r.0.min(s)).collect();
    let kept = kept.filter(|k| {
        k.columns == columns
            && k.to <= s
            && changed.is_none_or(|c| c >= k.to)
            && k.from.len() == from.len()
            && k.from.iter().zip(&from).all(|(a, b)| a <= b)
    });
    let mut intervals = Intervals::default();
    let plans: Vec<Plan> = ranges
        .iter()
        .enumerate()
        .map(|(r, &(a, b, minutes))| {
            let tail = intervals.of(a.max(s), b, minutes);
            match &kept {
                Some(k) if from[r] < k.to => Plan {
                    reset: false,
                    add: intervals.of(k.to, s, minutes).into_iter().collect(),
                    sub: intervals
                        .of(k.from[r], from[r], minutes)
                        .into_iter()
                        .collect(),
                    tail,
                },
                _ => Plan {
                    reset: true,
                    add: intervals.of(from[r], s, minutes).into_iter().collect(),
                    sub: Vec::new(),
                    tail,
                },
            }
        })
        .collect();
    let read = interval_sums(ledger, &columns, &intervals.split).await?;
    let mut sums = kept.map(|k| k.sums).unwrap_or_default();
    for cell in read.keys() {
        if !sums.contains_key(cell) {
            sums.insert(cell.clone(), vec![Kept::default(); ranges.len()]);
        }
    }
    let zero = vec![[0.0; COLUMNS]; intervals.split.len()];
    let n = crate::model::WINDOWS.len();
    let mut out = HashMap::with_capacity(sums.len());
    for (cell, settled) in sums.iter_mut() {
        let got = read.get(cell).unwrap_or(&zero);
        let mut total = Vec::with_capacity(ranges.len());
        for (p, kept) in plans.iter().zip(settled.iter_mut()) {
            if p.reset {
                *kept = Kept::default();
            }
            kept.moved(
                p.add.iter().map(|&i| &got[i]),
                p.sub.iter().map(|&i| &got[i]),
            );
            let mut t = kept.sum;
            if let Some(i) = p.tail {
                add(&mut t, &got[i]);
            }
            total.push(t);
        }
        out.insert(
            cell.clone(),
            Sums {
                windows: total[..n].to_vec(),
                period: total[n],
                recent: total[n + 1],
            },
        );
    }
    let keep = Settled {
        columns,
        to: s,
        from,
        sums,
    };
    Ok((out, keep, plans.iter().all(|p| p.reset)))
}

/// Per cell, the sum of each interval (given as its pieces): every table in one query.
async fn interval_sums(
    ledger: &Ledger,
    columns: &Columns,
    split: &[Vec<(usize, i64, i64)>],
) -> Result<HashMap<String, Vec<[f64; COLUMNS]>>, LedgerError> {
    let mut out: HashMap<String, Vec<[f64; COLUMNS]>> = HashMap::new();
    if split.is_empty() {
        return Ok(out);
    }
    let per_tier = tier_bands(ledger, columns, split).await?;
    // Each piece is a run of bands of its tier: found once, not per cell.
    let runs: Vec<Vec<(usize, usize, usize)>> = split
        .iter()
        .map(|pieces| {
            pieces
                .iter()
                .filter_map(|&(tier, from, to)| {
                    let bounds = &per_tier.get(tier)?.0;
                    let a = bounds.binary_search(&from).ok()?;
                    let b = bounds.binary_search(&to).ok()?;
                    Some((tier, a, b))
                })
                .collect()
        })
        .collect();
    for (tier, (_, cells)) in per_tier.iter().enumerate() {
        for (cell, bands) in cells {
            let acc = out
                .entry(cell.clone())
                .or_insert_with(|| vec![[0.0; COLUMNS]; split.len()]);
            for (i, runs) in runs.iter().enumerate() {
                for &(_, a, b) in runs.iter().filter(|r| r.0 == tier) {
                    for band in bands.get(a..b).into_iter().flatten() {
                        add(&mut acc[i], band);
                    }
                }
            }
        }
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn col(v: f64) -> [f64; COLUMNS] {
        let mut a = [0.0; COLUMNS];
        a[3] = v;
        a
    }

    #[test]
    fn what_is_left_of_the_same_rows_is_zero_and_small_sums_stay() {
        // Three days of fractional joules a minute, added one by one, then subtracted as
        // hourly sums: rounding leaves a residue a full sum would not have.
        let minutes: Vec<[f64; COLUMNS]> = (0..3 * 1440)
            .map(|i| col(600_000.0 + (i as f64) * 0.1 + 1.0 / 3.0))
            .collect();
        let hours: Vec<[f64; COLUMNS]> = minutes
            .chunks(60)
            .map(|c| col(c.iter().rev().map(|m| m[3]).sum()))
            .collect();
        let mut raw = 0.0;
        for m in &minutes {
            raw += m[3];
        }
        for h in &hours {
            raw -= h[3];
        }
        assert_ne!(raw, 0.0, "the residue this guards against");
        let mut k = Kept::default();
        for m in &minutes {
            k.moved(std::iter::once(m), std::iter::empty());
        }
        for h in &hours {
            k.moved(std::iter::empty(), std::iter::once(h));
        }
        assert_eq!(k.sum[3], 0.0);
        // A series of tiny values is not taken for a residue.
        let mut k = Kept::default();
        for _ in 0..10 {
            k.moved(std::iter::once(&col(1e-8)), std::iter::empty());
        }
        k.moved(std::iter::empty(), std::iter::once(&col(1e-8)));
        assert!((k.sum[3] - 9e-8).abs() < 1e-20, "{}", k.sum[3]);
    }
}
