//! Generated files: Prometheus rules and file_sd targets (`cellwatch-slo rules`, `targets`),
//! Grafana dashboards and their provisioning (`cellwatch-slo dashboards`).

pub mod dashboards;
pub mod prometheus;
