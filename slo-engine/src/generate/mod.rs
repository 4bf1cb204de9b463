//! Generated files: Prometheus rules and file_sd targets, Grafana dashboards.

pub mod prometheus;
