//! The two data sources that fill the ledger: `scrape` (the engine reads the exporters'
//! `/metrics`) and `prometheus` (the engine reads the same counters from Prometheus' API).

pub mod prometheus;
pub mod scrape;
