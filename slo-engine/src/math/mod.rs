//! SLO math: pure functions of recorded slices, an objective and a given time. No IO, no clock,
//! so days of traffic are tested in milliseconds. Every ratio is a ratio of sums (never an
//! average of ratios), and a window without data is `NoData`, never NaN.

mod budget;
mod efficiency;
mod judge;
mod period;

pub use budget::*;
pub use efficiency::*;
pub use judge::*;
pub use period::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Budgeting, MinEvents, Period, Sli, Slo};
    use crate::model::{SliceData, Verdict};
    use chrono::TimeZone;
    use std::time::Duration;

    fn slo(
        sli: Sli,
        budgeting: Budgeting,
        objective: f64,
        period: Period,
        min_events: MinEvents,
    ) -> Slo {
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
    fn judging_keys_stay_as_the_ledger_stored_them() {
        // The ledger names its judging cursors by these keys: a changed key re-judges every slice.
        let tokens = Judge::TokensPerKwh {
            threshold: 50_000.0,
            min_tokens: 100,
        };
        assert_eq!(tokens.key(), "tokens_per_kwh 50000.0 100.0");
        assert_eq!(Judge::Ratio { slice_target: 0.9 }.key(), "ratio 0.9");
        let throughput = Judge::Throughput {
            floor: 20.0,
            slice_secs: 60.0,
        };
        assert_eq!(throughput.key(), "throughput 20.0 loaded 0.5");
    }

    #[test]
    fn a_throughput_slice_is_judged_when_requests_waited_in_half_its_readings() {
        let j = Judge::Throughput {
            floor: 20.0,
            slice_secs: 60.0,
        };
        // (readings with requests waiting, readings with the gauge, tokens in the minute).
        let v = |good: f64, total: f64, tokens: f64| {
            j.verdict(&SliceData {
                good,
                total,
                tokens,
                ..Default::default()
            })
        };
        assert_eq!(v(4.0, 8.0, 1200.0), Verdict::Good, "half, at the floor");
        assert_eq!(v(4.0, 8.0, 1199.0), Verdict::Bad, "half, under it");
        assert_eq!(v(8.0, 8.0, 0.0), Verdict::Bad, "a stalled backlog");
        assert_eq!(v(3.0, 8.0, 0.0), Verdict::Idle, "under half");
        assert_eq!(
            v(1.0, 4.0, 600.0),
            Verdict::Idle,
            "one prefill in four readings"
        );
        assert_eq!(v(0.0, 0.0, 600.0), Verdict::Idle, "no gauge");
    }

    #[test]
    fn budget_and_burn_rates_equal_a_hand_computation_to_the_event() {
        let s = slo(
            Sli::Latency(2.0),
            Budgeting::Occurrences,
            0.99,
            Period::Rolling(Duration::from_secs(30 * 86400)),
            MinEvents::Auto,
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
        let w = window_state(&s, tally(&s, &slices, at - 3600, at), 3600);
        assert_eq!(
            w.round(),
            WindowState::Judged {
                sli: 0.6,
                burn_rate: 40.0
            }
        );
        // A quiet 5m window burns at 1x.
        let w = window_state(&s, tally(&s, &slices, 300, 600), 300);
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
            MinEvents::Auto,
        );
        let w = window_state(
            &s,
            Tally {
                good: 999.0,
                total: 1000.0,
            },
            3600,
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
            MinEvents::Fixed(50),
        );
        assert_eq!(
            window_state(&s, Tally::default(), 3600),
            WindowState::NoData
        );
        assert_eq!(
            window_state(
                &s,
                Tally {
                    good: 3.0,
                    total: 4.0
                },
                3600
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
    fn the_automatic_minimum_guards_each_tier_of_occurrence_slos_only() {
        let month = Period::Rolling(Duration::from_secs(30 * 86400));
        let auto = slo(
            Sli::Availability,
            Budgeting::Occurrences,
            0.999,
            month.clone(),
            MinEvents::Auto,
        );
        // 14.4× page: 70 events an hour; 6× page: 167 in 6 h; 1× ticket: 1001 in 3 d.
        assert_eq!(tier_min_events(&auto, 14.4), 70);
        assert_eq!(tier_min_events(&auto, 6.0), 167);
        assert_eq!(tier_min_events(&auto, 1.0), 1001);
        // Automatic windows are judged however thin: the guard is per tier, not per window.
        let one_bad = Tally {
            good: 0.0,
            total: 1.0,
        };
        assert!(matches!(
            window_state(&auto, one_bad, 3600),
            WindowState::Judged { burn_rate, .. } if burn_rate > 999.0
        ));
        // A fixed minimum keeps its per-window meaning and adds no tier guard.
        let fixed = Slo {
            min_events: MinEvents::Fixed(10),
            ..auto.clone()
        };
        assert_eq!(tier_min_events(&fixed, 14.4), 0);
        assert_eq!(
            window_state(&fixed, one_bad, 3600),
            WindowState::TooThin {
                sli: 0.0,
                total: 1.0
            }
        );
        // Time slices: no automatic minimum.
        let slices = Slo {
            budgeting: Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                slice_target: 0.999,
            },
            ..auto
        };
        assert_eq!(tier_min_events(&slices, 14.4), 0);
    }

    #[test]
    fn time_slice_burn_rates_share_the_budgets_denominator() {
        // A cell idle 90 % of an hour of one-minute slices: 6 judged slices, 1 of them bad,
        // objective 0.99 over 30 days (43,200 slices, 432 of which may be bad).
        let s = slo(
            Sli::Availability,
            Budgeting::Timeslices {
                slice: Duration::from_secs(60),
                slice_target: 0.99,
            },
            0.99,
            Period::Rolling(Duration::from_secs(30 * 86400)),
            MinEvents::Auto,
        );
        let minute = |m: i64, good: f64| SliceData {
            start: 86400 + m * 60,
            good,
            total: 10.0,
            ..Default::default()
        };
        // Minutes 0, 10, … 50 have traffic; minute 20 misses the slice target.
        let slices: Vec<SliceData> = (0..6)
            .map(|i| minute(i * 10, if i == 2 { 5.0 } else { 10.0 }))
            .collect();
        let now = 86400 + 3600;
        let t = tally(&s, &slices, now - 3600, now);
        assert_eq!(
            t,
            Tally {
                good: 5.0,
                total: 6.0
            }
        );
        let WindowState::Judged { sli, burn_rate } = window_state(&s, t, 3600) else {
            panic!("judged")
        };
        // The SLI stays good / judged; the burn rate is 1 / (0.01 × 60), not (1/6) / 0.01 =
        // 16.7, which would page (14.4×).
        assert!((sli - 5.0 / 6.0).abs() < 1e-12, "{sli}");
        assert!((burn_rate - 1.0 / 0.6).abs() < 1e-9, "{burn_rate}");
        assert_eq!((burn_rate * 100.0).round() / 100.0, 1.67);
        // The budget this hour spent: the burn rate × window / period = 1 / 432.
        let period = 30.0 * 86400.0;
        let spent = 1.0 - budget_remaining(&s, &slices, now).unwrap();
        assert!(
            (spent - burn_rate * 3600.0 / period).abs() < 1e-12,
            "{spent}"
        );
        assert!((spent - 1.0 / 432.0).abs() < 1e-12, "{spent}");
        // The period's burn rate runs over the slices elapsed so far: the same budget spent.
        let elapsed = period_elapsed(&s, now);
        assert_eq!(elapsed, 30 * 86400);
        let (start, _) = period_bounds(&s.period, now);
        let WindowState::Judged { burn_rate, .. } =
            window_state(&s, tally(&s, &slices, start, now), elapsed)
        else {
            panic!("judged")
        };
        assert!((spent - burn_rate * elapsed as f64 / period).abs() < 1e-12);
        // A window never counts fewer slices than it judged (a period just begun).
        let WindowState::Judged { burn_rate, .. } = window_state(&s, t, 60) else {
            panic!("judged")
        };
        assert!((burn_rate - 1.0 / (0.01 * 6.0)).abs() < 1e-9, "{burn_rate}");
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
            MinEvents::Auto,
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
