//! `cellwatch-slo run`: the `scrape` source feeding the ledger, the evaluation of every SLO of
//! every cell over every window, and the HTTP outputs (`/metrics`, `/api/v1/…`).

mod drain;
mod evaluate;
mod metrics;
mod plan;
mod report;
mod settled;

pub use drain::*;
pub use evaluate::*;
pub use metrics::*;
pub use report::*;

#[cfg(test)]
mod tests {
    use super::plan::{period_hour, pieces};

    #[test]
    fn windows_split_into_minutes_hours_and_days() {
        let mut v = Vec::new();
        // 6h ending at 10:30:00 on day 3: 04:30–05:00 in minutes, 05:00–10:00 in hours, then
        // 10:00–10:30 in minutes.
        let day = 3 * 86_400;
        pieces(day + 4 * 3600 + 1800, day + 10 * 3600 + 1800, 0, &mut v);
        assert_eq!(
            v,
            [
                (0, day + 4 * 3600 + 1800, day + 5 * 3600),
                (1, day + 5 * 3600, day + 10 * 3600),
                (0, day + 10 * 3600, day + 10 * 3600 + 1800),
            ]
        );
        // 30 days from the top of an hour: hours to midnight, whole days, hours of today.
        v.clear();
        pieces(day + 3600 * 20, day + 30 * 86_400 + 3600 * 2, 0, &mut v);
        assert_eq!(
            v,
            [
                (1, day + 3600 * 20, day + 86_400),
                (2, day + 86_400, day + 30 * 86_400),
                (1, day + 30 * 86_400, day + 30 * 86_400 + 7200),
            ]
        );
    }

    #[test]
    fn a_calendar_month_never_counts_the_previous_one() {
        let cfg = crate::config::parse(
            "cells:\n  - { name: a, nodes: [ { name: n, url: \"http://n:9817/metrics\" } ] }\n\
             slos:\n  - { name: m, objective: 0.99, period: calendar-month, timezone: Asia/Kolkata, sli: { availability: {} } }\n\
             \x20 - { name: r, objective: 0.99, period: 30d, sli: { availability: {} } }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        // 2026-03-01 00:00 in Kolkata is 2026-02-28 18:30 UTC.
        let start = 1_772_303_400;
        assert_eq!(start % 3600, 1800);
        assert_eq!(period_hour(Some(&cfg.slos[0]), start), start + 1800);
        assert_eq!(period_hour(Some(&cfg.slos[1]), start), start - 1800);
    }
}
