//! cellwatch-slo: cell-level error budgets for latency, availability and tokens/kWh.

pub mod alerting;
pub mod config;
pub mod dashboards;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod ledger;
pub mod math;
pub mod model;
pub mod notify;
pub mod report;
pub mod runtime;
pub mod source;
pub mod util;
pub mod web;
