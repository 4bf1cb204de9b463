//! Validation of `cells` and their nodes.

use std::collections::BTreeSet;

use super::{Fail, safe_name};
use crate::config::check::{check_url, label_safe};
use crate::config::error::ConfigError;
use crate::config::raw::{RawCell, RawHealth, RawTopology};
use crate::config::types::{Cell, ExpectedLink, HealthRules, LinkEnd, Node, Topology};
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
        let nodes = nodes(c, &f, fail)?;
        let topology = c
            .topology
            .as_ref()
            .map(|t| topology(t, &nodes, &f, fail))
            .transpose()?;
        let link_speed = c
            .link_speed
            .as_deref()
            .map(|s| {
                link_speed(s).ok_or_else(|| {
                    fail.at(
                        format!("{f}.link_speed"),
                        format!("{} is not a speed such as 80Gb/s", quote(s)),
                    )
                })
            })
            .transpose()?;
        if let Some(w) = c.power_cap_watts
            && !(w.is_finite() && w > 0.0)
        {
            return Err(fail.at(
                format!("{f}.power_cap_watts"),
                format!("{w} is not a positive number of watts"),
            ));
        }
        if topology.is_none() && (link_speed.is_some() || c.rdma) {
            return Err(fail.at(
                format!("{f}.topology"),
                "link_speed and rdma apply to the links of a topology: set topology",
            ));
        }
        cells.push(Cell {
            name: c.name.clone(),
            nodes,
            topology,
            link_speed,
            rdma: c.rdma,
            power_cap_watts: c.power_cap_watts,
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

/// `cells[i].topology`: a name, or pairs of ends naming the cell's nodes.
fn topology(
    raw: &RawTopology,
    nodes: &[Node],
    f: &str,
    fail: Fail<'_>,
) -> Result<Topology, ConfigError> {
    let field = format!("{f}.topology");
    let links = match raw {
        RawTopology::Named(_) if nodes.len() < 2 => {
            return Err(fail.at(field, "a topology needs at least two nodes"));
        }
        RawTopology::Named(n) => {
            return match n.as_str() {
                "mesh" => Ok(Topology::Mesh),
                "chain" => Ok(Topology::Chain),
                "learn" => Ok(Topology::Learn),
                other => Err(fail.at(
                    field,
                    format!(
                        "{}: use mesh, chain, learn or a list of node pairs",
                        quote(other)
                    ),
                )),
            };
        }
        RawTopology::Links(l) => l,
    };
    if nodes.len() < 2 {
        return Err(fail.at(field, "a topology needs at least two nodes"));
    }
    let mut out: Vec<ExpectedLink> = Vec::new();
    for (k, pair) in links.iter().enumerate() {
        let lf = format!("{field}[{k}]");
        let [a, b] = pair.as_slice() else {
            return Err(fail.at(
                lf,
                "a link is a pair of ends: [node, node] or [node:port, node:port]",
            ));
        };
        let (a, b) = (end(a, nodes, &lf, fail)?, end(b, nodes, &lf, fail)?);
        if a.node == b.node {
            return Err(fail.at(lf, format!("links node {} to itself", quote(&a.node))));
        }
        let link = if a <= b {
            ExpectedLink { a, b }
        } else {
            ExpectedLink { a: b, b: a }
        };
        if out.iter().any(|l| {
            l.a.node == link.a.node
                && l.b.node == link.b.node
                && (l.a.port.is_none() || l.a.port == link.a.port)
        }) {
            return Err(fail.at(
                lf,
                format!(
                    "the link {} – {} is listed twice",
                    quote(&link.a.node),
                    quote(&link.b.node)
                ),
            ));
        }
        out.push(link);
    }
    if out.is_empty() {
        return Err(fail.at(field, "an empty list of links"));
    }
    Ok(Topology::Links(out))
}

/// One end: `node` or `node:port`, the node one of the cell's.
fn end(s: &str, nodes: &[Node], f: &str, fail: Fail<'_>) -> Result<LinkEnd, ConfigError> {
    let (node, port) = match s.rsplit_once(':') {
        Some((n, p)) if nodes.iter().any(|x| x.name == n) && !p.is_empty() => {
            (n, Some(p.to_string()))
        }
        _ => (s, None),
    };
    if !nodes.iter().any(|n| n.name == node) {
        return Err(fail.at(f, format!("{} is not a node of the cell", quote(node))));
    }
    Ok(LinkEnd {
        node: node.to_string(),
        port,
    })
}

/// A link speed such as `80Gb/s`, `80 Gb/s`, `40Gbps` or `800Mb/s`, in bytes per second.
pub(crate) fn link_speed(s: &str) -> Option<f64> {
    let t: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    let t = t.to_ascii_lowercase();
    let (num, scale) = if let Some(n) = t.strip_suffix("gb/s").or_else(|| t.strip_suffix("gbps")) {
        (n, 1e9)
    } else if let Some(n) = t.strip_suffix("mb/s").or_else(|| t.strip_suffix("mbps")) {
        (n, 1e6)
    } else {
        return None;
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v > 0.0).then_some(v * scale / 8.0)
}

/// `health:` thresholds.
pub(super) fn health(raw: &RawHealth, fail: Fail<'_>) -> Result<HealthRules, ConfigError> {
    if !(raw.link_error_rate.is_finite() && raw.link_error_rate >= 0.0) {
        return Err(fail.at(
            "health.link_error_rate",
            format!(
                "{} is not a rate of errors per second (0 or more)",
                raw.link_error_rate
            ),
        ));
    }
    if !(raw.power_warn_share > 0.0 && raw.power_warn_share <= 1.0) {
        return Err(fail.at(
            "health.power_warn_share",
            format!(
                "{} is not a share of the cap between 0 and 1",
                raw.power_warn_share
            ),
        ));
    }
    if raw.flap_transitions < 2 {
        return Err(fail.at(
            "health.flap_transitions",
            "at least 2 (a link going down and coming back is 2)",
        ));
    }
    if raw.restarts == 0 {
        return Err(fail.at("health.restarts", "at least 1"));
    }
    for (name, d) in [
        ("flap_window", raw.flap_window),
        ("restart_window", raw.restart_window),
        ("learn_for", raw.learn_for),
    ] {
        if d.is_zero() {
            return Err(fail.at(format!("health.{name}"), "a window longer than zero"));
        }
    }
    Ok(HealthRules {
        link_error_rate: raw.link_error_rate,
        flap_transitions: raw.flap_transitions,
        flap_window: raw.flap_window.as_secs() as i64,
        link_for: raw.link_for.as_secs() as i64,
        power_warn_share: raw.power_warn_share,
        power_warn_for: raw.power_warn_for.as_secs() as i64,
        restarts: raw.restarts,
        restart_window: raw.restart_window.as_secs() as i64,
        learn_for: raw.learn_for.as_secs() as i64,
    })
}
