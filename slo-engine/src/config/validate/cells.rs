//! Validation of `cells` and their nodes.

use std::collections::BTreeSet;

use super::{Fail, safe_name};
use crate::config::check::{check_url, label_safe};
use crate::config::error::ConfigError;
use crate::config::raw::RawCell;
use crate::config::types::{Cell, Node};
use crate::util::text::quote;

/// `cells:` at least one, names unique and safe, each with nodes.
pub(super) fn cells(raw: &[RawCell], fail: Fail<'_>) -> Result<Vec<Cell>, ConfigError> {
    if raw.is_empty() {
        return Err(fail.at("cells", "at least one cell is needed"));
    }
    let mut cells = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in raw.iter().enumerate() {
        let f = format!("cells[{i}]");
        safe_name(&c.name, &f, fail)?;
        if !names.insert(c.name.clone()) {
            return Err(fail.at(
                format!("{f}.name"),
                format!("cell {} is defined twice", quote(&c.name)),
            ));
        }
        if c.nodes.is_empty() {
            return Err(fail.at(
                format!("{f}.nodes"),
                format!("cell {} has no nodes", quote(&c.name)),
            ));
        }
        cells.push(Cell {
            name: c.name.clone(),
            nodes: nodes(c, &f, fail)?,
        });
    }
    Ok(cells)
}

/// A cell's nodes: names unique within the cell, usable URLs and extra label names.
fn nodes(c: &RawCell, f: &str, fail: Fail<'_>) -> Result<Vec<Node>, ConfigError> {
    let mut node_names = BTreeSet::new();
    let mut nodes = Vec::new();
    for (j, n) in c.nodes.iter().enumerate() {
        let nf = format!("{f}.nodes[{j}]");
        if !label_safe(&n.name) {
            return Err(fail.at(
                format!("{nf}.name"),
                "a non-empty name without control characters, at most 128 bytes",
            ));
        }
        if !node_names.insert(n.name.clone()) {
            return Err(fail.at(
                format!("{nf}.name"),
                format!(
                    "node {} appears twice in cell {}",
                    quote(&n.name),
                    quote(&c.name)
                ),
            ));
        }
        check_url(&n.url, false, "http://studio-a-1.local:9817/metrics")
            .map_err(|m| fail.at(format!("{nf}.url"), m))?;
        if let Some(k) = n.labels.keys().find(|k| !target_label(k)) {
            return Err(fail.at(
                format!("{nf}.labels"),
                format!(
                    "{} is not a usable label name (cell and node are set for you)",
                    quote(k)
                ),
            ));
        }
        nodes.push(Node {
            name: n.name.clone(),
            url: n.url.clone(),
            labels: n.labels.clone(),
        });
    }
    Ok(nodes)
}

/// A Prometheus label name that is not reserved (`__…`) nor one we set (`cell`, `node`).
fn target_label(k: &str) -> bool {
    let valid = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    valid && !k.starts_with("__") && k != "cell" && k != "node"
}
