//! The SRE Workbook's windows, burn-rate alerts and page, and the calendar month's lengths.

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

/// The SRE Workbook's multiwindow, multi-burn-rate alerts: (severity, long window, short
/// window, share of the budget spent over the long window) for the page and ticket pairs.
pub const BURN_ALERTS: [(&str, u64, u64, f64); 4] = [
    ("page", PAGE_WINDOW, 300, PAGE_SHARE),
    ("page", 21600, 1800, 0.05),
    ("ticket", 86400, 7200, 0.10),
    ("ticket", 259200, 21600, 0.10),
];

/// The burn-rate factor of one alert window for a period: `share × period / window`
/// (14.4, 6, 3 and 1 for 30 days).
pub fn burn_factor(share: f64, window_secs: u64, period_secs: u64) -> f64 {
    share * period_secs as f64 / window_secs as f64
}

/// The fewest events the long window of a burn tier (factor `factor`) must hold for the tier to
/// fire on an occurrence SLO, so that one bad event alone stays under its threshold: among `n`
/// events, one bad burns at 1 / (n × (1 − objective)), which is under `factor` once
/// n > 1 / (factor × (1 − objective)). Hence ⌊1 / (factor × (1 − objective))⌋ + 1: 70 events
/// for the 14.4× page at 99.9 %, 7 at 99 % (the SRE Workbook's low-traffic advice, derived from
/// the objective). A quotient a rounding error short of a whole number counts as that number, so
/// the engine's own float burn rate never reaches the factor on one bad event. 0 when the
/// objective or factor is not usable (the configuration refuses those).
pub fn low_traffic_guard(objective: f64, factor: f64) -> u64 {
    let budget = 1.0 - objective;
    if !(budget > 0.0 && factor > 0.0) {
        return 0;
    }
    let x = 1.0 / (factor * budget);
    // `as` saturates: an absurdly small budget asks for u64::MAX events, never wraps.
    (x + x * 1e-9).floor() as u64 + 1
}

/// The SRE Workbook's fast page: [`PAGE_SHARE`] of the budget spent in [`PAGE_WINDOW`] seconds.
pub const PAGE_SHARE: f64 = 0.02;

/// The long window of the fast page (1 h), seconds.
pub const PAGE_WINDOW: u64 = 3600;

/// The burn rate at which the fast page fires over a period of `period_secs` (14.4 for 30 days).
pub fn page_factor(period_secs: u64) -> f64 {
    burn_factor(PAGE_SHARE, PAGE_WINDOW, period_secs)
}

/// A calendar month where no date is at hand, seconds: at its shortest (28 days: a check that
/// must hold in every month)…
pub const MONTH_SHORTEST: u64 = 28 * 86_400;

/// …as Prometheus rules count it (30 days: they have no calendar)…
pub const MONTH_IN_RULES: u64 = 30 * 86_400;

/// …and at its longest (31 days: how long rows are kept).
pub const MONTH_LONGEST: u64 = 31 * 86_400;

/// The longest fixed window (3 days), seconds.
pub const WINDOWS_MAX: i64 = 259_200;

/// How long minute rows of occurrence SLOs and cell totals are kept: windows up to 6h read them.
pub const MINUTE_RETENTION: i64 = 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factors_are_the_workbook_defaults_for_30_days() {
        let p = 30 * 86400;
        let f: Vec<f64> = BURN_ALERTS
            .iter()
            .map(|(_, l, _, s)| (burn_factor(*s, *l, p) * 1e9).round() / 1e9)
            .collect();
        assert_eq!(f, [14.4, 6.0, 3.0, 1.0]);
        // A 7-day period scales them down.
        assert!((burn_factor(0.02, 3600, 7 * 86400) - 3.36).abs() < 1e-9);
        assert!((page_factor(7 * 86400) - 3.36).abs() < 1e-9);
    }

    #[test]
    fn the_low_traffic_guard_keeps_one_bad_event_under_each_tier() {
        let page = page_factor(30 * 86400);
        assert_eq!(low_traffic_guard(0.999, page), 70);
        assert_eq!(low_traffic_guard(0.99, page), 7);
        // A whole quotient: 100 events with one bad burn at exactly 1×, so 101 are needed.
        assert_eq!(low_traffic_guard(0.99, 1.0), 101);
        assert_eq!(low_traffic_guard(1.0, page), 0);
        assert_eq!(low_traffic_guard(0.99, 0.0), 0);
        // The burn rate the engine computes (1 − good/total) / (1 − objective) for one bad event
        // among n: under the factor at the guard, at or over it one event below.
        let burn = |n: u64, objective: f64| (1.0 - (n - 1) as f64 / n as f64) / (1.0 - objective);
        for objective in [0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999] {
            for (_, long, _, share) in BURN_ALERTS {
                for period in [7 * 86400, 28 * 86400, 30 * 86400, 31 * 86400] {
                    let f = burn_factor(share, long, period);
                    let n = low_traffic_guard(objective, f);
                    assert!(burn(n, objective) < f, "{objective} {f}: {n}");
                    if n > 1 {
                        assert!(burn(n - 1, objective) >= f, "{objective} {f}: {n}");
                    }
                }
            }
        }
    }
}
