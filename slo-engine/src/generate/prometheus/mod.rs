//! Prometheus rules for the configured SLOs (`cellwatch-slo rules`), with Sloth-compatible
//! names (`slo:sli_error:ratio_rate5m`, `slo:objective:ratio`, …, `sloth_*` labels) and a `cell`
//! label on every SLI series, plus multiwindow multi-burn-rate alerts with the SRE Workbook
//! defaults scaled to the period; and Prometheus file_sd targets (`cellwatch-slo targets`).
//!
//! Unlike Sloth's, the period SLI is an exact ratio of increases over the period, not an average
//! of 5-minute ratios. A calendar-month period is approximated by 30 days in Prometheus.

mod rules;
mod targets;

pub use rules::*;
pub use targets::*;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BURN_ALERTS, burn_factor};

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
    }

    #[test]
    fn durations() {
        assert_eq!(prom_duration(300), "5m");
        assert_eq!(prom_duration(7200), "2h");
        assert_eq!(prom_duration(30 * 86400), "30d");
        assert_eq!(prom_duration(90), "90s");
    }
}
