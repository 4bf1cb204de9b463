//! Prometheus rules for the configured SLOs (`cellwatch-slo rules`), with Sloth-compatible
//! names (`slo:sli_error:ratio_rate5m`, `slo:objective:ratio`, …, `sloth_*` labels) and a `cell`
//! label on every SLI series, plus multiwindow multi-burn-rate alerts with the SRE Workbook
//! defaults scaled to the period; and Prometheus file_sd targets (`cellwatch-slo targets`).
//!
//! The health SLIs (`link_health`, `power_cap`) get their recording rules but no burn-rate
//! alerts; alerts mirroring the engine's health alerts (links, mesh split, power near the cap,
//! restart loops) stand beside them (`health`).
//!
//! The `throughput` SLI reads two per-cell recordings made at every evaluation (generated
//! tokens per second over the last minute, and the share of its nodes' readings in that minute
//! with requests waiting); its one-minute slices are bad when the first is under the floor
//! while the second is at least one half, idle otherwise (nobody waited, or one request's
//! prefill was caught by a scrape: a backlog persists across readings).
//!
//! Unlike Sloth's, the period SLI is an exact ratio of increases over the period, not an average
//! of 5-minute ratios. A calendar-month period is approximated by 30 days in Prometheus.

mod health;
mod rule;
mod rules;
mod targets;

pub use rules::*;
pub use targets::*;
