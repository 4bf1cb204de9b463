//! cellwatch-slo: cell-level error budgets for latency, availability and tokens/kWh.
//!
//! The crate is cut in layers, bottom first; each imports only the layers before it here (the test
//! `tests/layers.rs` holds it, the README's "Architecture" section draws it):
//!
//! 1. [`util`]: time, message text, URL redaction, secrets, PromQL text.
//! 2. [`model`]: labels, matchers, silences, the Workbook windows, the slice.
//! 3. [`config`]: raw YAML types, resolved types, validation, OpenSLO import.
//! 4. [`math`]: pure SLO math of slices (budgets, burn rates, periods, the slice verdict).
//! 5. [`health`]: cell health beyond latency (links, power caps, restart loops, drain), pure.
//! 6. [`ledger`]: SQLite or PostgreSQL, one file per table group.
//! 7. [`source`]: the `scrape` and `prometheus` sources, each with its I/O and pure parts.
//! 8. [`eval`]: the evaluation of every SLO of every cell over every window.
//! 9. [`alerting`]: wanted alerts, state, inhibition, muting, routing.
//! 10. [`report`]: SLO reports (table, JSON, CSV).
//! 11. [`notify`]: the outbox, one file per integration.
//! 12. [`web`]: API, silences, status page, `/metrics`.
//! 13. [`runtime`]: the lease, the leader's tick, the delivery loop.
//! 14. [`backtest`]: a history replayed in virtual time through the ledger, evaluation and
//!     alerting.
//! 15. [`generate`]: Prometheus rules and targets, Grafana dashboards.
//! 16. [`demo`]: the demo cell.

pub mod alerting;
pub mod backtest;
pub mod config;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod health;
pub mod ledger;
pub mod math;
pub mod model;
pub mod notify;
pub mod report;
pub mod runtime;
pub mod source;
pub mod util;
pub mod web;
