//! cellwatch-slo: cell-level error budgets for latency, availability and tokens/kWh.
//!
//! The configuration ([`config`]: typed YAML, `cellwatch-slo check`), the SLO math ([`math`]:
//! pure functions of recorded slices, tested in virtual time), the [`ledger`] (SQLite or
//! PostgreSQL), the two data sources ([`scrape`] and [`promsource`]), the evaluation and HTTP
//! outputs ([`engine`]), Prometheus rule generation ([`rules`]) and Grafana dashboards
//! ([`generate::dashboards`]).

pub mod alerting;
pub mod config;
pub mod demo;
pub mod engine;
pub mod generate;
pub mod ledger;
pub mod math;
pub mod notify;
pub mod openslo;
pub mod promsource;
pub mod report;
pub mod rules;
pub mod scrape;
pub mod status;
