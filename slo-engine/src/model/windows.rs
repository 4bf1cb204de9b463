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
    ("page", 3600, 300, 0.02),
    ("page", 21600, 1800, 0.05),
    ("ticket", 86400, 7200, 0.10),
    ("ticket", 259200, 21600, 0.10),
];

/// The burn-rate factor of one alert window for a period: `share × period / window`
/// (14.4, 6, 3 and 1 for 30 days).
pub fn burn_factor(share: f64, window_secs: u64, period_secs: u64) -> f64 {
    share * period_secs as f64 / window_secs as f64
}

/// The longest fixed window (3 days), seconds.
pub const WINDOWS_MAX: i64 = 259_200;

/// How long minute rows of occurrence SLOs and cell totals are kept: windows up to 6h read them.
pub const MINUTE_RETENTION: i64 = 86_400;
