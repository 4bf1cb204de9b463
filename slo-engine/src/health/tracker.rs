//! Health over time, per cell: which port each expected link uses, error rates, flaps,
//! restart loops, the last five minutes of latency, and the learned topology.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::links::{LinkEnds, Memory, link_status, split};
use super::snapshot::{NodeSnapshot, quantile};
use super::status::{CellHealth, LinkState, RestartLoop};
use crate::config::{Cell, ExpectedLink, HealthRules, Topology};

/// How far back the latency quantiles look (seconds).
pub const LATENCY_WINDOW: i64 = 300;

/// Health state of every cell, kept between readings.
#[derive(Debug, Default)]
pub struct Tracker {
    cells: BTreeMap<String, CellTrack>,
}

/// A restart counter's readings in the window: (at, value).
type Readings = VecDeque<(i64, f64)>;

/// Cumulative histograms of one reading: (at, latency, ttft).
type Histograms = (i64, Vec<(f64, f64)>, Vec<(f64, f64)>);

#[derive(Debug, Default)]
struct CellTrack {
    /// Ports and error counters of the links.
    memory: Memory,
    /// Per expected link (node, peer): up at the last reading, and the times it changed.
    flaps: BTreeMap<(String, String), (bool, VecDeque<i64>)>,
    /// Restart counters per (node, kind, what): (at, value), the window's worth.
    restarts: BTreeMap<(String, &'static str, String), Readings>,
    /// Histograms per node, the latency window's worth.
    histograms: BTreeMap<String, VecDeque<Histograms>>,
    learn: Learn,
}

/// `topology: learn`: when watching began, the links seen healthy, the result.
#[derive(Debug, Default)]
struct Learn {
    since: Option<i64>,
    seen: BTreeSet<(String, String)>,
    links: Option<Vec<ExpectedLink>>,
    /// Learned by this engine and not yet stored.
    fresh: bool,
}

impl Tracker {
    /// A cell's links as learned before (from the ledger).
    pub fn set_learned(&mut self, cell: &str, links: Vec<ExpectedLink>) {
        let learn = &mut self.cells.entry(cell.to_string()).or_default().learn;
        learn.links = Some(links);
        learn.fresh = false;
    }

    /// Topologies learned since the last call, to store.
    pub fn take_learned(&mut self) -> Vec<(String, Vec<ExpectedLink>)> {
        let mut out = Vec::new();
        for (cell, t) in &mut self.cells {
            if t.learn.fresh {
                t.learn.fresh = false;
                out.push((cell.clone(), t.learn.links.clone().unwrap_or_default()));
            }
        }
        out
    }

    /// One reading of a cell's answering nodes at `now` (seconds): its health.
    pub fn observe(
        &mut self,
        cell: &Cell,
        rules: &HealthRules,
        now: i64,
        nodes: &[(String, NodeSnapshot)],
    ) -> CellHealth {
        let t = self.cells.entry(cell.name.clone()).or_default();
        if cell.topology == Some(Topology::Learn) {
            t.learn(cell, rules, now, nodes);
        }
        let expected = cell.expected_links(t.learn.links.as_deref());
        let mut links = Vec::new();
        for e in &expected {
            let ends = LinkEnds::resolve(&mut t.memory, e, nodes);
            let mut s = link_status(&t.memory, cell, rules, &ends, now);
            if s.state != LinkState::Unknown {
                let (transitions, flapping) = t.flap(e, s.state != LinkState::Down, rules, now);
                s.transitions = transitions;
                s.flapping = flapping;
            }
            links.push(s);
        }
        t.keep_errors(&expected, nodes, now);
        // Whole-cell power only when every node answered: a silent node's share is unknown.
        let power: Vec<f64> = nodes.iter().filter_map(|(_, n)| n.power_watts).collect();
        let all_answered = cell
            .nodes
            .iter()
            .all(|c| nodes.iter().any(|(n, _)| *n == c.name));
        let power_watts = (!power.is_empty() && all_answered).then(|| power.iter().sum::<f64>());
        let (latency_p95, ttft_p95) = t.latency(nodes, now);
        CellHealth {
            power_watts,
            power_cap_watts: cell.power_cap_watts,
            power_headroom_watts: cell.power_cap_watts.zip(power_watts).map(|(c, p)| c - p),
            latency_p95_seconds: latency_p95,
            ttft_p95_seconds: ttft_p95,
            links_healthy: links_healthy(&links, nodes.is_empty()),
            unreachable: split(cell, &links, nodes),
            links,
            restart_loops: t.restart_loops(rules, now, nodes),
        }
    }
}

impl CellTrack {
    /// Counts a change of the link's up state, from the first time it was seen up; the
    /// transitions within the flap window and whether they make it flap.
    fn flap(&mut self, e: &ExpectedLink, up: bool, rules: &HealthRules, now: i64) -> (u32, bool) {
        let key = (e.a.node.clone(), e.b.node.clone());
        if !up && !self.flaps.contains_key(&key) {
            return (0, false);
        }
        let (last, times) = self.flaps.entry(key).or_insert((up, VecDeque::new()));
        if *last != up {
            times.push_back(now);
            *last = up;
        }
        while times.front().is_some_and(|t| *t <= now - rules.flap_window) {
            times.pop_front();
        }
        let n = times.len() as u32;
        (n, n >= rules.flap_transitions)
    }

    /// Remembers each expected link's error counters for the next rate.
    fn keep_errors(
        &mut self,
        expected: &[ExpectedLink],
        nodes: &[(String, NodeSnapshot)],
        now: i64,
    ) {
        for e in expected {
            for (node, peer) in [(&e.a.node, &e.b.node), (&e.b.node, &e.a.node)] {
                let Some(port) = self.memory.ports.get(&(node.clone(), peer.clone())) else {
                    continue;
                };
                let obs = nodes
                    .iter()
                    .find(|(n, _)| n == node)
                    .and_then(|(_, s)| s.link(port));
                if let Some(o) = obs {
                    self.memory
                        .errors
                        .insert((node.clone(), port.clone()), (now, o.errors));
                }
            }
        }
    }

    /// Restart counters that rose `rules.restarts` times or more within the window (a counter
    /// that went down was reset: its value is what it counted since).
    fn restart_loops(
        &mut self,
        rules: &HealthRules,
        now: i64,
        nodes: &[(String, NodeSnapshot)],
    ) -> Vec<RestartLoop> {
        for (node, s) in nodes {
            for ((kind, what), v) in &s.restarts {
                let q = self
                    .restarts
                    .entry((node.clone(), *kind, what.clone()))
                    .or_default();
                // A node away for longer than the window: its old reading is no baseline.
                if q.back().is_some_and(|b| b.0 < now - rules.restart_window) {
                    q.clear();
                }
                q.push_back((now, *v));
            }
        }
        let mut out = Vec::new();
        for ((node, kind, what), q) in &mut self.restarts {
            // Keep one reading at or before the window's start as its baseline.
            while q.len() > 1 && q[1].0 <= now - rules.restart_window {
                q.pop_front();
            }
            let rose: f64 = q
                .iter()
                .zip(q.iter().skip(1))
                .map(|(a, b)| if b.1 >= a.1 { b.1 - a.1 } else { b.1 })
                .sum();
            if rose >= rules.restarts as f64 {
                out.push(RestartLoop {
                    node: node.clone(),
                    kind,
                    what: what.clone(),
                    restarts: rose,
                });
            }
        }
        out
    }

    /// p95 latency and TTFT of the cell over the last [`LATENCY_WINDOW`].
    fn latency(
        &mut self,
        nodes: &[(String, NodeSnapshot)],
        now: i64,
    ) -> (Option<f64>, Option<f64>) {
        let mut lat: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let mut ttft: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (node, s) in nodes {
            let q = self.histograms.entry(node.clone()).or_default();
            q.push_back((now, s.latency.clone(), s.ttft.clone()));
            while q.len() > 1 && q[1].0 <= now - LATENCY_WINDOW {
                q.pop_front();
            }
            let (Some(first), Some(last)) = (q.front(), q.back()) else {
                continue;
            };
            if q.len() < 2 {
                continue;
            }
            add_increase(&mut lat, &first.1, &last.1);
            add_increase(&mut ttft, &first.2, &last.2);
        }
        let p95 = |m: BTreeMap<u64, (f64, f64)>| {
            let v: Vec<(f64, f64)> = m.into_values().collect();
            quantile(0.95, &v)
        };
        (p95(lat), p95(ttft))
    }

    /// `topology: learn`: pairs of the cell's nodes seen linked and up, until `learn_for` has
    /// passed since the first reading; then those are the expected links.
    fn learn(
        &mut self,
        cell: &Cell,
        rules: &HealthRules,
        now: i64,
        nodes: &[(String, NodeSnapshot)],
    ) {
        if self.learn.links.is_some() {
            return;
        }
        let since = *self.learn.since.get_or_insert(now);
        for (node, s) in nodes {
            for peer in cell.nodes.iter().filter(|n| n.name != *node) {
                let domains: Vec<&str> = nodes
                    .iter()
                    .find(|(n, _)| *n == peer.name)
                    .map(|(_, p)| p.domains())
                    .unwrap_or_default();
                if s.link_to(&peer.name, &domains)
                    .is_some_and(|l| l.up != Some(false))
                {
                    let (a, b) = if *node <= peer.name {
                        (node.clone(), peer.name.clone())
                    } else {
                        (peer.name.clone(), node.clone())
                    };
                    self.learn.seen.insert((a, b));
                }
            }
        }
        if now - since >= rules.learn_for && !self.learn.seen.is_empty() {
            let links = self
                .learn
                .seen
                .iter()
                .map(|(a, b)| ExpectedLink::between(a, b))
                .collect();
            self.learn.links = Some(links);
            self.learn.fresh = true;
        }
    }
}

/// Unhealthy when a judged link is not up; healthy when every link is up; not judged (`None`)
/// without links, without answering nodes, or when the judged links are up and others unknown.
fn links_healthy(links: &[super::status::LinkStatus], silent: bool) -> Option<bool> {
    let judged = links.iter().filter(|l| l.state != LinkState::Unknown);
    if silent || links.is_empty() {
        None
    } else if judged.clone().any(|l| l.state != LinkState::Up) {
        Some(false)
    } else if judged.count() == links.len() {
        Some(true)
    } else {
        None
    }
}

/// Adds `last − first` per bucket bound (all of `last` where the counter went down: a reset).
fn add_increase(into: &mut BTreeMap<u64, (f64, f64)>, first: &[(f64, f64)], last: &[(f64, f64)]) {
    for (le, v) in last {
        let before = first
            .iter()
            .find(|(b, _)| b.to_bits() == le.to_bits())
            .map_or(0.0, |(_, c)| *c);
        let inc = if *v >= before { v - before } else { *v };
        into.entry(le.to_bits()).or_insert((*le, 0.0)).1 += inc;
    }
}
