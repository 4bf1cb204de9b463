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
