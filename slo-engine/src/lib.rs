//! cellwatch-slo: cell-level error budgets for latency, availability and tokens/kWh.
//!
//! So far: the configuration ([`config`]: typed YAML, `cellwatch-slo check`) and the SLO math
//! ([`math`]: pure functions of recorded slices, tested in virtual time), and the [`ledger`]
//! (SQLite or PostgreSQL). The data sources, the HTTP outputs and rule generation build on
//! these.

pub mod config;
pub mod engine;
pub mod ledger;
pub mod math;
pub mod rules;
pub mod scrape;
