//! When the replay may skip an evaluation: only while nothing an evaluation decides could
//! change. Every tick's readings are recorded either way (before the next evaluation), so a
//! skipped tick changes no window; it only saves the queries of an evaluation whose alerts
//! would be the ones already held (none).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Budgeting, Config};
use crate::eval::Report;
use crate::math::Judge;
use crate::model::{SliceData, Verdict};

/// How close to a threshold counts as warm: a window at a quarter of its tier's factor.
const WARM: f64 = 0.25;

/// How long after a cell's data stopped or came back its no-data state may still change
/// (the evaluation's "recent" reach, 5 minutes), seconds.
const NO_DATA_REACH: i64 = 300;

/// What the replay knows between evaluations.
#[derive(Debug, Default)]
pub struct Skip {
    /// Whether the last evaluation had a window near a threshold or a budget near spent.
    warm: bool,
    /// The cells down at the last evaluation.
    down: BTreeSet<String>,
    /// Per cell: the last tick it recorded no row, or recorded rows after one without.
    changed_data: BTreeMap<String, i64>,
    /// Per cell: whether the previous tick recorded rows.
    had_rows: BTreeMap<String, bool>,
    /// A bad event or slice arrived since the last evaluation.
    bad: bool,
    /// A time-slice SLO's slice completed since the last evaluation.
    slice_done: bool,
    /// When the last evaluation ran.
    last: Option<i64>,
}

impl Skip {
    /// Takes one tick's rows (recorded before the next evaluation) at `t`.
    pub fn saw(
        &mut self,
        config: &Config,
        rows: &[(String, String, SliceData)],
        t: i64,
        step: i64,
    ) {
        let with_rows: BTreeSet<&str> = rows.iter().map(|(c, ..)| c.as_str()).collect();
        for cell in &config.cells {
            let now = with_rows.contains(cell.name.as_str());
            let before = self.had_rows.insert(cell.name.clone(), now);
            if !now || before != Some(true) {
                self.changed_data.insert(cell.name.clone(), t);
            }
        }
        for (_, slo, s) in rows {
            let Some(slo) = config.slos.iter().find(|x| x.name == *slo) else {
                continue;
            };
            match slo.budgeting {
                Budgeting::Occurrences => self.bad |= s.total > s.good,
                Budgeting::Timeslices { slice, .. } => {
                    let len = slice.as_secs() as i64;
                    // A slice completed in this tick: judged at the next evaluation.
                    self.slice_done |= (t - step).div_euclid(len) != t.div_euclid(len);
                    self.bad |= Judge::of(slo).verdict(s) == Verdict::Bad;
                }
            }
        }
    }

    /// Whether the tick at `t` must be evaluated: the alert state is not `quiet` (an alert
    /// pending, firing or unsent, a group open), the last evaluation was warm (a window at a
    /// quarter of its tier's threshold, a budget under 10 %), a bad event or slice arrived,
    /// a time slice completed, the cells down changed, a cell's data stopped or came back in
    /// the last five minutes, or `every` seconds passed.
    pub fn must_evaluate(&self, quiet: bool, down: &BTreeSet<String>, t: i64, every: i64) -> bool {
        !quiet
            || self.warm
            || self.bad
            || self.slice_done
            || *down != self.down
            || self.last.is_none_or(|l| t - l >= every)
            || self
                .changed_data
                .values()
                .any(|c| t - c <= NO_DATA_REACH + every.min(NO_DATA_REACH))
    }

    /// Takes an evaluation's report at `t`.
    pub fn evaluated(&mut self, config: &Config, report: &Report, down: &BTreeSet<String>, t: i64) {
        self.last = Some(t);
        self.bad = false;
        self.slice_done = false;
        self.down = down.clone();
        self.warm = report.slos.iter().any(|r| {
            let burn = |secs: u64| {
                r.windows
                    .iter()
                    .find(|w| {
                        crate::model::WINDOWS
                            .iter()
                            .any(|(n, s)| *n == w.window && *s == secs)
                    })
                    .and_then(|w| w.burn_rate)
                    .unwrap_or(0.0)
            };
            let Some(slo) = config.slos.iter().find(|s| s.name == r.slo) else {
                return true;
            };
            let period = crate::math::period_length(&slo.period, t).as_secs();
            let hot = config.alerting.burn_rates.iter().any(|b| {
                let f = crate::model::burn_factor(b.budget, b.long, period) * WARM;
                burn(b.long) >= f && burn(b.short) >= f
            });
            hot || r.budget_remaining.is_some_and(|b| b <= 0.1)
        });
    }
}
