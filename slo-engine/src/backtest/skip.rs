//! When the replay may skip an evaluation: only while nothing an evaluation decides could
//! change. Every tick's readings are recorded either way (before the next evaluation), so a
//! skipped tick changes no window; it only saves the queries of an evaluation whose alerts
//! would be the ones already held (none).

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Budgeting, Config};
use crate::eval::Report;
use crate::math::Judge;
use crate::model::{SliceData, Verdict};

/// A budget this low may run out without a new bad event (its period's good events leaving a
/// rolling period): evaluated every interval.
const WARM_BUDGET: f64 = 0.1;

/// How long after a cell's data stopped or came back its no-data state may still change
/// (the evaluation's "recent" reach, 5 minutes), seconds.
const NO_DATA_REACH: i64 = 300;

/// What the replay knows between evaluations.
#[derive(Debug, Default)]
pub struct Skip {
    /// Whether the last evaluation had a bad event in a tier's short window or a budget near
    /// spent.
    warm: bool,
    /// The cells down at the last evaluation.
    down: BTreeSet<String>,
    /// Per cell: the last tick it recorded no row, or recorded rows after one without.
    changed_data: BTreeMap<String, i64>,
    /// Per cell: whether the previous tick recorded rows.
    had_rows: BTreeMap<String, bool>,
    /// A bad event or slice arrived since the last evaluation.
    bad: bool,
    /// A time-slice SLO's slice that completed since the last evaluation was bad.
    slice_done: bool,
    /// Time-slice SLOs' slices in progress, as recorded so far: (cell, SLO, start) → data.
    open_slices: BTreeMap<(String, String, i64), SliceData>,
    /// When the last evaluation ran.
    last: Option<i64>,
}

impl Skip {
    /// Takes one tick's rows (recorded before the next evaluation) at `t`.
    pub fn saw(&mut self, config: &Config, rows: &[(String, String, SliceData)], t: i64) {
        let with_rows: BTreeSet<&str> = rows.iter().map(|(c, ..)| c.as_str()).collect();
        for cell in &config.cells {
            let now = with_rows.contains(cell.name.as_str());
            let before = self.had_rows.insert(cell.name.clone(), now);
            if !now || before != Some(true) {
                self.changed_data.insert(cell.name.clone(), t);
            }
        }
        for (cell, slo, s) in rows {
            let Some(slo) = config.slos.iter().find(|x| x.name == *slo) else {
                continue;
            };
            match slo.budgeting {
                Budgeting::Occurrences => self.bad |= s.total > s.good,
                Budgeting::Timeslices { .. } => {
                    self.open_slices
                        .entry((cell.clone(), slo.name.clone(), s.start))
                        .or_default()
                        .add(s);
                }
            }
        }
        // A slice complete at `t` is judged by the evaluation at `t`: only a bad one can
        // move a burn rate up (a good or idle slice spends nothing).
        let done: Vec<(String, String, i64)> = self
            .open_slices
            .keys()
            .filter(|(_, slo, start)| {
                config.slos.iter().any(|x| {
                    x.name == *slo
                        && matches!(x.budgeting, Budgeting::Timeslices { slice, .. }
                            if start + slice.as_secs() as i64 <= t)
                })
            })
            .cloned()
            .collect();
        for key in done {
            let Some(data) = self.open_slices.remove(&key) else {
                continue;
            };
            if let Some(slo) = config.slos.iter().find(|x| x.name == key.1) {
                self.slice_done |= Judge::of(slo).verdict(&data) == Verdict::Bad;
            }
        }
    }

    /// Whether the tick at `t` must be evaluated: the alert state is not `quiet` (an alert
    /// pending, firing or unsent, a group open), the last evaluation was warm (a bad event in a
    /// tier's short window, a budget under 10 %), a bad event or slice arrived,
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
            // Whether a window holds a bad event (its SLI is below 1, judged or too thin).
            let bad_in = |secs: u64| {
                r.windows.iter().any(|w| {
                    crate::model::WINDOWS
                        .iter()
                        .any(|(n, s)| *n == w.window && *s == secs)
                        && w.sli.is_some_and(|sli| sli < 1.0)
                })
            };
            // A bad event in a tier's short window: its burn rates can still rise without a new
            // one (good events leaving the windows faster than bad ones, when traffic drops).
            // Once every short window is clean, a tier fires only after a new bad event: bad
            // events enter a window at its recent end, which the short window covers.
            let exposed = config.alerting.burn_rates.iter().any(|b| bad_in(b.short));
            exposed || r.budget_remaining.is_some_and(|b| b <= WARM_BUDGET)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            "cells: [ { name: c, nodes: [ { name: n, url: \"http://n:9817/metrics\" } ] } ]
slos:
  - { name: avail, objective: 0.999, period: 30d, sli: { availability: {} } }
  - name: tpk
    objective: 0.95
    period: 30d
    budgeting: timeslices
    slice: 5m
    sli: { tokens_per_kwh: { threshold: 1000000, min_tokens: 10 } }
",
            std::path::Path::new("t.yaml"),
        )
        .unwrap()
    }

    fn row(
        slo: &str,
        start: i64,
        good: f64,
        total: f64,
        tokens: f64,
        joules: f64,
    ) -> (String, String, SliceData) {
        let s = SliceData {
            start,
            good,
            total,
            tokens,
            joules,
            requests: total,
        };
        ("c".into(), slo.into(), s)
    }

    #[test]
    fn only_what_could_change_an_alert_wakes_the_evaluation() {
        let cfg = config();
        let quiet = BTreeSet::new();
        let mut skip = Skip::default();
        let report = Report::default();
        // Rows every tick, all good: evaluated once, then only every `every`.
        skip.saw(&cfg, &[row("avail", 0, 10.0, 10.0, 0.0, 0.0)], 0);
        assert!(skip.must_evaluate(true, &quiet, 0, 3600));
        skip.evaluated(&cfg, &report, &quiet, 0);
        for t in (15..1200).step_by(15) {
            let slice = t - t % 300;
            skip.saw(
                &cfg,
                &[
                    row("avail", t - t % 60, 10.0, 10.0, 0.0, 0.0),
                    // 2,000 tokens for 3,600 J: 2 M tokens/kWh, a good slice.
                    row("tpk", slice, 0.0, 0.0, 100.0, 180.0),
                ],
                t,
            );
            // Rows began at 0: ten minutes in which no-data may still change.
            if t > 600 {
                assert!(!skip.must_evaluate(true, &quiet, t, 3600), "{t}");
            }
        }
        // A failed request, a cell down, an alert held: evaluate.
        skip.saw(&cfg, &[row("avail", 1200, 9.0, 10.0, 0.0, 0.0)], 1200);
        assert!(skip.must_evaluate(true, &quiet, 1200, 3600));
        skip.evaluated(&cfg, &report, &quiet, 1200);
        let down = BTreeSet::from(["c".to_string()]);
        assert!(skip.must_evaluate(true, &down, 1215, 3600));
        assert!(skip.must_evaluate(false, &quiet, 1215, 3600));
        // A bad time slice, once complete: 100 tokens for 3,600 J is 0.1 M tokens/kWh.
        for t in (1215..=1500).step_by(15) {
            skip.saw(
                &cfg,
                &[
                    row("avail", t - t % 60, 10.0, 10.0, 0.0, 0.0),
                    row("tpk", 1200, 0.0, 0.0, 5.0, 180.0),
                ],
                t,
            );
            assert_eq!(skip.must_evaluate(true, &quiet, t, 3600), t == 1500, "{t}");
        }
    }
}
