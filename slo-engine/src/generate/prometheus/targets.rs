//! `cellwatch-slo targets`: Prometheus file_sd targets of the configured nodes.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Config;

#[derive(Debug, Serialize)]
pub(super) struct Target {
    targets: Vec<String>,
    labels: BTreeMap<String, String>,
}

/// Prometheus file_sd targets for every node, with `cell` and `node` labels.
pub fn targets(config: &Config) -> String {
    let mut out = Vec::new();
    for cell in &config.cells {
        for node in &cell.nodes {
            let (scheme, rest) = node
                .url
                .split_once("://")
                .unwrap_or(("http", node.url.as_str()));
            let (host, path) = rest
                .split_once('/')
                .map_or((rest, "/metrics".to_string()), |(h, p)| {
                    (h, format!("/{p}"))
                });
            let mut labels = node.labels.clone();
            labels.insert("cell".into(), cell.name.clone());
            labels.insert("node".into(), node.name.clone());
            labels.insert("__scheme__".into(), scheme.into());
            labels.insert("__metrics_path__".into(), path);
            out.push(Target {
                targets: vec![host.to_string()],
                labels,
            });
        }
    }
    let mut s = serde_json::to_string_pretty(&out).unwrap_or_default();
    s.push('\n');
    s
}
