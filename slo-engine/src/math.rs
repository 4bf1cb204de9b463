//! SLO math: pure functions of recorded slices, an objective and a given time. No IO, no clock,
//! so days of traffic are tested in milliseconds. Every ratio is a ratio of sums (never an
//! average of ratios), and a window without data is `NoData`, never NaN.

use std::time::Duration;

use chrono::{Datelike, TimeZone};

use crate::config::{Budgeting, Period, Sli, Slo};

/// What one slice of one cell recorded for one SLO. Times are Unix seconds; a slice covers
/// `[start, start + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SliceData {
    /// Slice start.
    pub start: i64,
    /// Good events (requests under the threshold, non-error outcomes).
    pub good: f64,
    /// All events counted by the SLI.
    pub total: f64,
    /// Generated tokens of the cell.
    pub tokens: f64,
    /// Energy of the cell's nodes, joules.
    pub joules: f64,
    /// Requests of the cell.
    pub requests: f64,
}

/// A slice's verdict under timeslices budgeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Met the slice target.
    Good,
    /// Missed it.
    Bad,
    /// Too little traffic to judge (no events; fewer tokens than the minimum).
    Idle,
}

/// Tokens per kWh, when energy was used.
pub fn tokens_per_kwh(tokens: f64, joules: f64) -> Option<f64> {
    (joules > 0.0 && tokens.is_finite()).then(|| tokens / (joules / 3.6e6))
}

/// kWh per 1,000 requests, when there were requests.
pub fn kwh_per_1k_requests(joules: f64, requests: f64) -> Option<f64> {
    (requests > 0.0 && joules.is_finite()).then(|| (joules / 3.6e6) / (requests / 1000.0))
}

/// Judges one slice for a timeslices SLO.
pub fn judge(slo: &Slo, s: &SliceData) -> Verdict {
    match (&slo.sli, slo.budgeting) {
        (
            Sli::TokensPerKwh {
                threshold,
                min_tokens,
            },
            _,
        ) => {
            if s.tokens < *min_tokens as f64 || s.tokens <= 0.0 {
                return Verdict::Idle;
            }
            match tokens_per_kwh(s.tokens, s.joules) {
                // Tokens without any energy reading cannot be judged.
                None => Verdict::Idle,
                Some(t) if t >= *threshold => Verdict::Good,
                Some(_) => Verdict::Bad,
            }
        }
        (_, Budgeting::Timeslices { slice_target, .. }) => {
            if s.total <= 0.0 {
                Verdict::Idle
            } else if s.good / s.total >= slice_target {
                Verdict::Good
            } else {
                Verdict::Bad
            }
        }
        (_, Budgeting::Occurrences) => {
            if s.total <= 0.0 {
                Verdict::Idle
            } else if s.good >= s.total {
                Verdict::Good
            } else {
                Verdict::Bad
            }
        }
    }
}

/// Good and total units (events, or judged slices) over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tally {
    /// Good units.
    pub good: f64,
    /// All units.
    pub total: f64,
}

/// Sums the slices that start in `[from, to)`.
pub fn tally(slo: &Slo, slices: &[SliceData], from: i64, to: i64) -> Tally {
    let mut t = Tally::default();
    for s in slices.iter().filter(|s| s.start >= from && s.start < to) {
        match slo.budgeting {
            Budgeting::Occurrences => {
                t.good += s.good;
                t.total += s.total;
            }
            Budgeting::Timeslices { .. } => match judge(slo, s) {
                Verdict::Good => {
                    t.good += 1.0;
                    t.total += 1.0;
                }
                Verdict::Bad => t.total += 1.0,
                Verdict::Idle => {}
            },
        }
    }
    t
}

/// The state of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowState {
    /// No events (or no judged slice) at all.
    NoData,
    /// Fewer units than the SLO's `min_events`: reported, not judged.
    TooThin {
        /// The SLI so far.
        sli: f64,
        /// Units seen.
        total: f64,
    },
    /// Enough data.
    Judged {
        /// Good / total.
        sli: f64,
        /// (1 − SLI) / (1 − objective): 1 spends the budget exactly over the period.
        burn_rate: f64,
    },
}

/// The state of a window from its tally.
pub fn window_state(slo: &Slo, t: Tally) -> WindowState {
    if t.total <= 0.0 {
        return WindowState::NoData;
    }
    let sli = t.good / t.total;
    if t.total < slo.min_events as f64 {
        return WindowState::TooThin {
            sli,
            total: t.total,
        };
    }
    WindowState::Judged {
        sli,
        burn_rate: (1.0 - sli) / (1.0 - slo.objective),
    }
}

/// The multiwindow set every SLO reports, besides its period.
pub const WINDOWS: [(&str, u64); 7] = [
    ("5m", 300),
    ("30m", 1800),
    ("1h", 3600),
    ("2h", 7200),
    ("6h", 21600),
    ("1d", 86400),
    ("3d", 259200),
];

/// The SLO period containing `now`: `[start, end)`; for a rolling period, the window ending now.
pub fn period_bounds(period: &Period, now: i64) -> (i64, i64) {
    match period {
        Period::Rolling(d) => (now - d.as_secs() as i64, now),
        Period::CalendarMonth(tz) => {
            // UTC to local time is never ambiguous.
            let local = tz.from_utc_datetime(
                &chrono::DateTime::from_timestamp(now, 0)
                    .unwrap_or_default()
                    .naive_utc(),
            );
            let start = tz
                .with_ymd_and_hms(local.year(), local.month(), 1, 0, 0, 0)
                .earliest()
                .map_or(now, |t| t.timestamp());
            let (y, m) = if local.month() == 12 {
                (local.year() + 1, 1)
            } else {
                (local.year(), local.month() + 1)
            };
            let end = tz
                .with_ymd_and_hms(y, m, 1, 0, 0, 0)
                .earliest()
                .map_or(now, |t| t.timestamp());
            (start, end)
        }
    }
}

/// The period's length (a calendar month's own length).
pub fn period_length(period: &Period, now: i64) -> Duration {
    let (start, end) = period_bounds(period, now);
    match period {
        Period::Rolling(d) => *d,
        Period::CalendarMonth(_) => Duration::from_secs((end - start).max(0) as u64),
    }
}

/// The error budget left in the period containing `now`, as a share of the whole budget:
/// 1 untouched, 0 spent, below 0 overspent; `None` without data.
///
/// Occurrences: the budget is (1 − objective) × events so far. Timeslices: (1 − objective) ×
/// every slice of the period (judged or not yet), so an idle cell spends nothing.
pub fn budget_remaining(slo: &Slo, slices: &[SliceData], now: i64) -> Option<f64> {
    let (start, end) = period_bounds(&slo.period, now);
    let to = match slo.period {
        Period::Rolling(_) => now + 1,
        Period::CalendarMonth(_) => (now + 1).min(end),
    };
    // A time slice is judged once it is complete.
    let to = match slo.budgeting {
        Budgeting::Timeslices { slice, .. } => to.min(slice_start(now, slice)),
        Budgeting::Occurrences => to,
    };
    budget_from_tally(slo, tally(slo, slices, start, to), now)
}

/// The budget left, from the period's tally (see [`budget_remaining`]).
pub fn budget_from_tally(slo: &Slo, t: Tally, now: i64) -> Option<f64> {
    if t.total <= 0.0 {
        return None;
    }
    let allowed = match slo.budgeting {
        Budgeting::Occurrences => (1.0 - slo.objective) * t.total,
        Budgeting::Timeslices { slice, .. } => {
            let slices_in_period =
                (period_length(&slo.period, now).as_secs() / slice.as_secs().max(1)) as f64;
            (1.0 - slo.objective) * slices_in_period
        }
    };
    (allowed > 0.0).then(|| 1.0 - (t.total - t.good) / allowed)
}

/// Start of the slice containing `t`, for slices of `len` aligned to the Unix epoch.
pub fn slice_start(t: i64, len: Duration) -> i64 {
    let l = len.as_secs().max(1) as i64;
    t.div_euclid(l) * l
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo(sli: Sli, budgeting: Budgeting, objective: f64, period: Period, min_events: u64) -> Slo {
        Slo {
            name: "s".into(),
            description: None,
            cells: vec!["a".into()],
            objective,
            period,
            budgeting,
            min_events,
            sli,
        }
    }

    const DAY: i64 = 86400;

    /// 30 days of one-minute slices: 100 requests a minute, 1 bad a minute, except an incident
    /// on day 29 from 12:00 to 13:00 when 40 of 100 are bad.
    fn month_of_traffic() -> Vec<SliceData> {
        let mut v = Vec::new();
        for m in 0..30 * 1440 {
            let start = m as i64 * 60;
            let bad = if (29 * DAY + 12 * 3600..29 * DAY + 13 * 3600).contains(&start) {
                40.0
            } else {
                1.0
            };
            v.push(SliceData {
                start,
                good: 100.0 - bad,
                total: 100.0,
                tokens: 0.0,
                joules: 0.0,
                requests: 100.0,
            });
        }
        v
    }

    #[test]
    fn budget_and_burn_rates_equal_a_hand_computation_to_the_event() {
        let s = slo(
            Sli::Latency(2.0),
            Budgeting::Occurrences,
            0.99,
            Period::Rolling(Duration::from_secs(30 * 86400)),
            0,
        );
        let slices = month_of_traffic();
        let now = 30 * DAY;
        // Events: 4,320,000; bad: 43,200 − 60 + 60 × 40 = 45,540; allowed: 43,200.
        let total = 30.0 * 1440.0 * 100.0;
        let bad = 30.0 * 1440.0 - 60.0 + 60.0 * 40.0;
        let t = tally(&s, &slices, now - 30 * DAY, now);
        assert_eq!((t.total, t.total - t.good), (total, bad));
        let remaining = budget_remaining(&s, &slices, now).unwrap();
        assert!(
            (remaining - (1.0 - bad / (0.01 * total))).abs() < 1e-12,
            "{remaining}"
        );
        assert!(remaining < 0.0, "the incident overspent the budget");
        // The 1h window ending at 13:00 on day 29 is the incident: SLI 0.6, burn rate 40.
        let at = 29 * DAY + 13 * 3600;
        let w = window_state(&s, tally(&s, &slices, at - 3600, at));
        assert_eq!(
            w.round(),
            WindowState::Judged {
                sli: 0.6,
                burn_rate: 40.0
            }
        );
        // A quiet 5m window burns at 1x.
        let w = window_state(&s, tally(&s, &slices, 300, 600));
        assert_eq!(
            w.round(),
            WindowState::Judged {
                sli: 0.99,
                burn_rate: 1.0
            }
        );
    }

    trait Round {
        fn round(self) -> Self;
    }

    impl Round for WindowState {
        fn round(self) -> Self {
            match self {
                WindowState::Judged { sli, burn_rate } => WindowState::Judged {
                    sli: (sli * 1e9).round() / 1e9,
                    burn_rate: (burn_rate * 1e9).round() / 1e9,
                },
                o => o,
            }
        }
    }

    #[test]
    fn a_window_at_the_objective_burns_at_one() {
        let s = slo(
            Sli::Availability,
            Budgeting::Occurrences,
            0.999,
            Period::Rolling(Duration::from_secs(7 * 86400)),
            0,
        );
        let w = window_state(
            &s,
            Tally {
                good: 999.0,
                total: 1000.0,
            },
        )
        .round();
        assert_eq!(
            w,
            WindowState::Judged {
                sli: 0.999,
                burn_rate: 1.0
            }
        );
    }

    #[test]
    fn no_data_and_thin_windows() {
        let s = slo(
            Sli::Availability,
            Budgeting::Occurrences,
            0.99,
            Period::Rolling(Duration::from_secs(86400)),
            50,
        );
        assert_eq!(window_state(&s, Tally::default()), WindowState::NoData);
        assert_eq!(
            window_state(
                &s,
                Tally {
                    good: 3.0,
                    total: 4.0
                }
            ),
            WindowState::TooThin {
                sli: 0.75,
                total: 4.0
            }
        );
        assert_eq!(
            budget_remaining(&s, &[], 1000),
            None,
            "no data is not a full budget"
        );
    }

    #[test]
    fn tokens_per_kwh_timeslices_with_idle_slices() {
        let s = slo(
            Sli::TokensPerKwh {
                threshold: 150_000.0,
                min_tokens: 100,
            },
            Budgeting::Timeslices {
                slice: Duration::from_secs(300),
                slice_target: 0.95,
            },
            0.95,
            Period::Rolling(Duration::from_secs(86400)),
            0,
        );
        // 1 kWh = 3.6e6 J. 200,000 tokens on 1 kWh: good; 100,000: bad; 50 tokens: idle.
        let slices = [
            SliceData {
                start: 0,
                tokens: 200_000.0,
                joules: 3.6e6,
                ..Default::default()
            },
            SliceData {
                start: 300,
                tokens: 100_000.0,
                joules: 3.6e6,
                ..Default::default()
            },
            SliceData {
                start: 600,
                tokens: 50.0,
                joules: 3.6e6,
                ..Default::default()
            },
            SliceData {
                start: 900,
                tokens: 1000.0,
                joules: 0.0,
                ..Default::default()
            },
        ];
        assert_eq!(judge(&s, &slices[0]), Verdict::Good);
        assert_eq!(judge(&s, &slices[1]), Verdict::Bad);
        assert_eq!(judge(&s, &slices[2]), Verdict::Idle);
        assert_eq!(
            judge(&s, &slices[3]),
            Verdict::Idle,
            "tokens without an energy reading"
        );
        assert_eq!(
            tally(&s, &slices, 0, 1200),
            Tally {
                good: 1.0,
                total: 2.0
            }
        );
        // 288 slices a day, 5 % may be bad: 14.4; one bad slice spends 1/14.4.
        let r = budget_remaining(&s, &slices, 1200).unwrap();
        assert!((r - (1.0 - 1.0 / 14.4)).abs() < 1e-12, "{r}");
        assert_eq!(tokens_per_kwh(150.0, 3600.0), Some(150_000.0));
        assert_eq!(kwh_per_1k_requests(3.6e6, 2000.0), Some(0.5));
        assert_eq!(kwh_per_1k_requests(3.6e6, 0.0), None);
        assert_eq!(tokens_per_kwh(10.0, 0.0), None);
    }

    #[test]
    fn calendar_month_in_a_time_zone() {
        let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        // 2026-11-25T12:00:00Z: November in Berlin starts 2026-10-31T23:00:00Z (CET, +1).
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
            .unwrap()
            .timestamp();
        let (start, end) = period_bounds(&Period::CalendarMonth(tz), now);
        assert_eq!(
            start,
            chrono::Utc
                .with_ymd_and_hms(2026, 10, 31, 23, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            end,
            chrono::Utc
                .with_ymd_and_hms(2026, 11, 30, 23, 0, 0)
                .unwrap()
                .timestamp()
        );
        assert_eq!(
            period_length(&Period::CalendarMonth(tz), now),
            Duration::from_secs(30 * 86400)
        );
        // December wraps into the next year.
        let dec = chrono::Utc
            .with_ymd_and_hms(2026, 12, 10, 0, 0, 0)
            .unwrap()
            .timestamp();
        let (_, end) = period_bounds(&Period::CalendarMonth(chrono_tz::UTC), dec);
        assert_eq!(
            end,
            chrono::Utc
                .with_ymd_and_hms(2027, 1, 1, 0, 0, 0)
                .unwrap()
                .timestamp()
        );
    }

    #[test]
    fn slices_align_to_the_epoch() {
        assert_eq!(slice_start(601, Duration::from_secs(300)), 600);
        assert_eq!(slice_start(-1, Duration::from_secs(60)), -60);
    }
}
