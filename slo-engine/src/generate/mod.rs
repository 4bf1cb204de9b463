//! Files generated from the configuration and the metric definitions: Grafana dashboards.

pub mod dashboards;
