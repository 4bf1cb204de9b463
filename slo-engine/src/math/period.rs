//! SLO periods: rolling or calendar month, their bounds and length; slice starts.

use std::time::Duration;

use chrono::{Datelike, TimeZone};

use crate::config::Period;

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

/// Start of the slice containing `t`, for slices of `len` aligned to the Unix epoch.
pub fn slice_start(t: i64, len: Duration) -> i64 {
    let l = len.as_secs().max(1) as i64;
    t.div_euclid(l) * l
}
