//! One expected link: its ports on both ends (matched to peers once, then kept), its state,
//! and whether the cell's linked nodes still form one group.

use std::collections::{BTreeMap, BTreeSet};

use super::snapshot::{LinkObs, NodeSnapshot};
use super::status::{LinkState, LinkStatus};
use crate::config::{Cell, ExpectedLink, HealthRules};

/// What the link checks remember per cell between readings.
#[derive(Debug, Default)]
pub(super) struct Memory {
    /// The port each node uses towards each peer, once seen: (node, peer) → port.
    pub(super) ports: BTreeMap<(String, String), String>,
    /// The last error counter of each (node, port): (at, errors).
    pub(super) errors: BTreeMap<(String, String), (i64, f64)>,
}

/// Both ends of an expected link at one reading.
pub(super) struct LinkEnds<'a> {
    pub(super) link: &'a ExpectedLink,
    /// Per end (a, then b): the port, the node's snapshot when it answered, the port's reading.
    pub(super) ends: [End<'a>; 2],
}

pub(super) struct End<'a> {
    pub(super) node: &'a str,
    pub(super) port: Option<String>,
    pub(super) snapshot: Option<&'a NodeSnapshot>,
    pub(super) obs: Option<&'a LinkObs>,
}

impl<'a> LinkEnds<'a> {
    /// Finds each end's port: the configured one, else the link whose attached device is the
    /// peer (by the peer's bus domains, else its name), else the port it was last seen on.
    pub(super) fn resolve(
        t: &mut Memory,
        link: &'a ExpectedLink,
        nodes: &'a [(String, NodeSnapshot)],
    ) -> LinkEnds<'a> {
        let snap = |n: &str| nodes.iter().find(|(x, _)| x == n).map(|(_, s)| s);
        let mut end = |me: &'a crate::config::LinkEnd, peer: &str| -> End<'a> {
            let s = snap(&me.node);
            let domains = snap(peer).map(|p| p.domains()).unwrap_or_default();
            let key = (me.node.clone(), peer.to_string());
            let port = me
                .port
                .clone()
                .or_else(|| {
                    s.and_then(|s| s.link_to(peer, &domains))
                        .map(|l| l.link.clone())
                })
                .or_else(|| t.ports.get(&key).cloned());
            if let Some(p) = &port {
                t.ports.insert(key, p.clone());
            }
            End {
                node: &me.node,
                obs: s.zip(port.as_deref()).and_then(|(s, p)| s.link(p)),
                port,
                snapshot: s,
            }
        };
        let a = end(&link.a, &link.b.node);
        let b = end(&link.b, &link.a.node);
        LinkEnds { link, ends: [a, b] }
    }
}

/// The state of an expected link: unknown while neither end reports its links; down when a
/// reporting end has no such port, or reports it down; else slow under the expected speed, RDMA
/// inactive where required, errors over the threshold, or up.
pub(super) fn link_status(
    t: &Memory,
    cell: &Cell,
    rules: &HealthRules,
    ends: &LinkEnds<'_>,
    now: i64,
) -> LinkStatus {
    // An end tells about its links once its exporter reports any (the collector's first slow
    // reading may not have come yet).
    // An end whose port was never matched tells nothing while its peer is silent (the peer's
    // domains are what match it).
    let [ea, eb] = &ends.ends;
    let tells = |e: &End<'_>, other: &End<'_>| {
        e.snapshot.is_some_and(|s| !s.links.is_empty())
            && (e.port.is_some() || other.snapshot.is_some())
    };
    let answering: Vec<&End<'_>> = [(ea, eb), (eb, ea)]
        .into_iter()
        .filter(|(e, o)| tells(e, o))
        .map(|(e, _)| e)
        .collect();
    let down = !answering.is_empty()
        && answering
            .iter()
            .any(|e| e.obs.is_none_or(|o| o.up == Some(false)));
    let speed = answering
        .iter()
        .filter_map(|e| e.obs.and_then(|o| o.speed))
        .reduce(f64::min);
    let rdma = (!answering.is_empty())
        .then(|| {
            answering
                .iter()
                .map(|e| e.obs.zip(e.snapshot).and_then(|(o, s)| s.rdma_on(o)))
                .try_fold(true, |acc, x| x.map(|v| acc && v))
        })
        .flatten();
    let errors = error_rate(t, &answering, now);
    let state = if answering.is_empty() {
        LinkState::Unknown
    } else if down {
        LinkState::Down
    } else if cell
        .link_speed
        .zip(speed)
        .is_some_and(|(want, got)| got < want * 0.999)
    {
        LinkState::Slow
    } else if cell.rdma && rdma != Some(true) {
        LinkState::RdmaInactive
    } else if errors.is_some_and(|e| e > rules.link_error_rate) {
        LinkState::Errors
    } else {
        LinkState::Up
    };
    let [a, b] = &ends.ends;
    LinkStatus {
        node: ends.link.a.node.clone(),
        port: a.port.clone(),
        peer: ends.link.b.node.clone(),
        peer_port: b.port.clone(),
        state,
        speed_bytes_per_second: speed,
        expected_speed_bytes_per_second: cell.link_speed,
        rdma_active: rdma,
        errors_per_second: errors,
        transitions: 0,
        flapping: false,
    }
}

/// Errors per second on both ends since their last reading (a counter that went down was
/// reset: its value counts); `None` before a second reading.
fn error_rate(t: &Memory, answering: &[&End<'_>], now: i64) -> Option<f64> {
    let mut rate = None;
    for e in answering {
        let (Some(o), Some(port)) = (e.obs, e.port.as_ref()) else {
            continue;
        };
        let Some((at, before)) = t.errors.get(&(e.node.to_string(), port.clone())) else {
            continue;
        };
        if now <= *at {
            continue;
        }
        let inc = if o.errors >= *before {
            o.errors - before
        } else {
            o.errors
        };
        *rate.get_or_insert(0.0) += inc / (now - at) as f64;
    }
    rate
}

/// The answering nodes of the topology that the largest group of linked answering nodes cannot
/// reach over links that are not down (ties: the group of the first node in the cell's order).
pub(super) fn split(
    cell: &Cell,
    links: &[LinkStatus],
    nodes: &[(String, NodeSnapshot)],
) -> Vec<String> {
    let in_topology: BTreeSet<&str> = links
        .iter()
        .flat_map(|l| [l.node.as_str(), l.peer.as_str()])
        .collect();
    // Every node of the topology joins the groups (a silent exporter does not cut the links
    // its peers see up); only answering nodes are counted and reported.
    let all: Vec<&str> = cell
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| in_topology.contains(n))
        .collect();
    let answering: Vec<&str> = all
        .iter()
        .copied()
        .filter(|n| nodes.iter().any(|(x, _)| x == n))
        .collect();
    if answering.len() < 2 {
        return Vec::new();
    }
    // Union-find over the topology's nodes.
    let mut group: BTreeMap<&str, &str> = all.iter().map(|n| (*n, *n)).collect();
    fn root<'a>(g: &BTreeMap<&'a str, &'a str>, mut n: &'a str) -> &'a str {
        while g[n] != n {
            n = g[n];
        }
        n
    }
    for l in links.iter().filter(|l| l.state != LinkState::Down) {
        let (a, b) = (l.node.as_str(), l.peer.as_str());
        if group.contains_key(a) && group.contains_key(b) {
            let (ra, rb) = (root(&group, a), root(&group, b));
            if ra != rb {
                group.insert(rb, ra);
            }
        }
    }
    let mut sizes: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &answering {
        *sizes.entry(root(&group, n)).or_default() += 1;
    }
    let biggest = answering
        .iter()
        .map(|n| root(&group, n))
        .max_by_key(|r| {
            (
                sizes[r],
                std::cmp::Reverse(answering.iter().position(|n| root(&group, n) == *r)),
            )
        })
        .unwrap_or(answering[0]);
    answering
        .iter()
        .filter(|n| root(&group, n) != biggest)
        .map(|n| n.to_string())
        .collect()
}
