//! The SLO period before a scenario: a month of the cell's baseline traffic, read every 5
//! minutes, so that a replay starts as a cell that ran for a month (its 30-day budgets and 3-day
//! windows full) without generating a month of 15-second scrapes. Five minutes is the time
//! slice of the scenarios' tokens/kWh SLO: each reading's increase fills one slice, as 15-second
//! readings would.

use crate::source::prometheus::Series;

/// How far back the period reaches before the first 15-second scrape (a 30-day period).
const PERIOD: i64 = 30 * 86_400;
/// Seconds between the period's readings.
const EVERY: i64 = 300;

/// The history with the period before `from` in front: readings every 5 minutes from
/// `from − 30 d`. Each counter runs at its rate over the history's first
/// hour (clean in every scenario) up to where the history begins; the whole series is lifted by
/// what it counted over the period, so no counter goes below zero. `up` is 1.
pub fn with_period(history: Vec<Series>, from: i64) -> Vec<Series> {
    let times: Vec<i64> = (from - PERIOD..from).step_by(EVERY as usize).collect();
    history
        .into_iter()
        .map(|s| {
            let value = |t: i64| {
                let i = s.samples.partition_point(|(at, _)| *at <= t * 1000);
                i.checked_sub(1).map(|i| s.samples[i].1)
            };
            let first = s.samples.first().map_or(0.0, |(_, v)| *v);
            let up = s.labels.get("__name__").map(String::as_str) == Some("up");
            let rate = match value(from + 3600) {
                Some(v) if !up => ((v - first) / 3600.0).max(0.0),
                _ => 0.0,
            };
            let lift = (rate * PERIOD as f64).ceil();
            let mut samples: Vec<(i64, f64)> = times
                .iter()
                .map(|t| {
                    let v = first + lift - rate * (from - t) as f64;
                    (t * 1000, if up { 1.0 } else { v.floor() })
                })
                .collect();
            samples.extend(
                s.samples
                    .iter()
                    .map(|(t, v)| (*t, if up { *v } else { v + lift })),
            );
            Series {
                labels: s.labels,
                samples,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_runs_at_the_first_hours_rate_into_the_history() {
        let from = 40 * 86_400;
        let counter = Series {
            labels: [("__name__".to_string(), "x_total".to_string())].into(),
            samples: (0..=240)
                .map(|k| ((from + k * 15) * 1000, 100.0 + 30.0 * k as f64))
                .collect(),
        };
        let s = &with_period(vec![counter], from)[0];
        // 8,640 five-minute readings, then the history, never falling.
        assert_eq!(s.samples.len(), 8640 + 241);
        assert!(
            s.samples
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
        );
        assert!(s.samples[0].1 >= 0.0);
        // 2 a second throughout: the period counted 30 days of it.
        let total = s.samples.last().unwrap().1 - s.samples[0].1;
        let expected = 2.0 * (30.0 * 86_400.0 + 3600.0);
        assert!((total - expected).abs() <= 2.0, "{total} vs {expected}");
    }
}
