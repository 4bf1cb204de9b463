//! The health layer in virtual time: a four-node mesh whose cables are pulled, renegotiated,
//! stripped of RDMA and cut off, a power surge, a restart loop.

use std::collections::BTreeMap;

use super::{CellHealth, LinkObs, LinkState, NodeSnapshot, Tracker};
use crate::config::{Cell, HealthRules, Node, Topology};

const NODES: [&str; 4] = ["s1", "s2", "s3", "s4"];
const SPEED: f64 = 1e10;

fn cell(topology: Topology) -> Cell {
    Cell {
        name: "c".into(),
        nodes: NODES
            .iter()
            .map(|n| Node {
                name: n.to_string(),
                url: format!("http://{n}/metrics"),
                labels: BTreeMap::new(),
            })
            .collect(),
        topology: Some(topology),
        link_speed: Some(SPEED),
        rdma: true,
        power_cap_watts: Some(1000.0),
    }
}

/// Node i's port towards node j: `en{j}`; bus domains `d{i}{j}` (local) and `d{j}{i}` (peer).
fn mesh() -> Vec<(String, NodeSnapshot)> {
    (0..4)
        .map(|i| {
            let mut s = NodeSnapshot {
                power_watts: Some(200.0),
                rdma_enabled: Some(true),
                ..Default::default()
            };
            for j in (0..4).filter(|j| *j != i) {
                s.links.push(LinkObs {
                    link: format!("en{j}"),
                    up: Some(true),
                    speed: Some(SPEED),
                    rdma_device: format!("rdma_en{j}"),
                    peer: "Mac Studio".into(),
                    domain: format!("d{i}{j}"),
                    peer_domain: format!("d{j}{i}"),
                    errors: 0.0,
                });
                s.rdma_active.insert(format!("rdma_en{j}"), true);
            }
            (NODES[i].to_string(), s)
        })
        .collect()
}

/// Pulls the cable between nodes i and j: both receptacles show nothing attached.
fn pull(nodes: &mut [(String, NodeSnapshot)], i: usize, j: usize) {
    for (a, b) in [(i, j), (j, i)] {
        let l = nodes[a]
            .1
            .links
            .iter_mut()
            .find(|l| l.link == format!("en{b}"))
            .unwrap();
        l.up = Some(false);
        l.speed = None;
        l.peer.clear();
        l.peer_domain.clear();
    }
}

fn states(h: &CellHealth) -> Vec<(String, String, &'static str)> {
    h.links
        .iter()
        .filter(|l| l.state != LinkState::Up)
        .map(|l| (l.node.clone(), l.peer.clone(), l.state.as_str()))
        .collect()
}

#[test]
fn a_healthy_mesh_then_a_pulled_cable_then_half_speed() {
    let (c, rules) = (cell(Topology::Mesh), HealthRules::default());
    let mut t = Tracker::default();
    let mut nodes = mesh();
    let h = t.observe(&c, &rules, 0, &nodes);
    assert_eq!(h.links.len(), 6);
    assert_eq!(h.links_healthy, Some(true));
    assert_eq!(h.power_watts, Some(800.0));
    assert_eq!(h.power_headroom_watts, Some(200.0));
    assert!(h.unreachable.is_empty());
    let l = &h.links[0];
    assert_eq!(
        (l.port.as_deref(), l.peer_port.as_deref()),
        (Some("en1"), Some("en0"))
    );
    pull(&mut nodes, 0, 1);
    let h = t.observe(&c, &rules, 15, &nodes);
    // The ports were matched while connected: the pulled link is down, named by both ends.
    assert_eq!(states(&h), [("s1".into(), "s2".into(), "down")]);
    assert_eq!(h.links[0].port.as_deref(), Some("en1"));
    assert!(
        h.unreachable.is_empty(),
        "one cable of a mesh splits nothing"
    );
    // Plugged back at half speed.
    nodes = mesh();
    for (a, b) in [(0, 1), (1, 0)] {
        let p = format!("en{b}");
        nodes[a]
            .1
            .links
            .iter_mut()
            .find(|l| l.link == p)
            .unwrap()
            .speed = Some(SPEED / 2.0);
    }
    let h = t.observe(&c, &rules, 30, &nodes);
    assert_eq!(states(&h), [("s1".into(), "s2".into(), "slow")]);
    assert_eq!(h.links[0].transitions, 2);
    assert!(!h.links[0].flapping);
}

#[test]
fn rdma_off_errors_and_a_split() {
    let (c, rules) = (cell(Topology::Mesh), HealthRules::default());
    let mut t = Tracker::default();
    let mut nodes = mesh();
    t.observe(&c, &rules, 0, &nodes);
    nodes[2].1.rdma_active.insert("rdma_en3".into(), false);
    let h = t.observe(&c, &rules, 15, &nodes);
    assert_eq!(states(&h), [("s3".into(), "s4".into(), "rdma_inactive")]);
    nodes = mesh();
    nodes[1].1.links[0].errors = 30.0; // s2's en0, towards s1: 30 errors in 15 s
    let h = t.observe(&c, &rules, 30, &nodes);
    assert_eq!(states(&h), [("s1".into(), "s2".into(), "errors")]);
    assert_eq!(h.links[0].errors_per_second, Some(2.0));
    // Every cable of s4 pulled while its exporter answers: s4 is cut off.
    nodes = mesh();
    nodes[1].1.links[0].errors = 30.0;
    for j in 0..3 {
        pull(&mut nodes, 3, j);
    }
    let h = t.observe(&c, &rules, 45, &nodes);
    assert_eq!(h.unreachable, ["s4"]);
    assert_eq!(states(&h).len(), 3);
    // s4's exporter down too: it is not reachable, but it is no split of answering nodes.
    nodes.pop();
    let h = t.observe(&c, &rules, 60, &nodes);
    assert!(h.unreachable.is_empty());
}

#[test]
fn a_chain_split_in_the_middle_and_flapping() {
    let (c, rules) = (cell(Topology::Chain), HealthRules::default());
    let mut t = Tracker::default();
    let mut nodes = mesh();
    assert_eq!(t.observe(&c, &rules, 0, &nodes).links.len(), 3);
    pull(&mut nodes, 1, 2);
    let h = t.observe(&c, &rules, 15, &nodes);
    // Two groups of two: the first node's group stays.
    assert_eq!(h.unreachable, ["s3", "s4"]);
    let mut at = 15;
    for _ in 0..3 {
        at += 15;
        let h = t.observe(&c, &rules, at, &mesh());
        at += 15;
        let _ = h;
        t.observe(&c, &rules, at, &nodes);
    }
    let h = t.observe(&c, &rules, at + 15, &mesh());
    let l = &h.links[1];
    assert!(l.flapping, "{l:?}");
    assert_eq!(l.transitions, 8);
    // Ten minutes later the flaps have left the window.
    let h = t.observe(&c, &rules, at + 15 + 600, &mesh());
    assert!(!h.links[1].flapping);
}

#[test]
fn learn_takes_the_links_seen_over_learn_for() {
    let (c, mut rules) = (cell(Topology::Learn), HealthRules::default());
    rules.learn_for = 60;
    let mut t = Tracker::default();
    let mut nodes = mesh();
    // A chain, not a mesh, is cabled: only neighbours see each other.
    for (i, j) in [(0, 2), (0, 3), (1, 3)] {
        pull(&mut nodes, i, j);
    }
    let h = t.observe(&c, &rules, 0, &nodes);
    assert_eq!(h.links_healthy, None, "nothing expected while learning");
    assert!(t.take_learned().is_empty());
    t.observe(&c, &rules, 60, &nodes);
    let learned = t.take_learned();
    assert_eq!(learned.len(), 1);
    let pairs: Vec<(&str, &str)> = learned[0]
        .1
        .iter()
        .map(|l| (l.a.node.as_str(), l.b.node.as_str()))
        .collect();
    assert_eq!(pairs, [("s1", "s2"), ("s2", "s3"), ("s3", "s4")]);
    let h = t.observe(&c, &rules, 75, &nodes);
    assert_eq!(h.links_healthy, Some(true));
    // Stored and loaded by another engine: the same expectation.
    let mut other = Tracker::default();
    other.set_learned("c", learned[0].1.clone());
    pull(&mut nodes, 2, 3);
    let h = other.observe(&c, &rules, 90, &nodes);
    assert_eq!(h.links_healthy, Some(false));
}

#[test]
fn restart_loops_count_rises_and_resets_within_the_window() {
    let (c, rules) = (cell(Topology::Mesh), HealthRules::default());
    let mut t = Tracker::default();
    let mut nodes = mesh();
    let key = ("inference", "proxy".to_string());
    let mut at = 0;
    for v in [5.0, 5.0, 6.0, 7.0] {
        nodes[0].1.restarts.insert(key.clone(), v);
        assert!(t.observe(&c, &rules, at, &nodes).restart_loops.is_empty());
        at += 60;
    }
    // The exporter restarted too: its counter starts again at 1.
    nodes[0].1.restarts.insert(key.clone(), 1.0);
    let h = t.observe(&c, &rules, at, &nodes);
    assert_eq!(h.restart_loops.len(), 1);
    assert_eq!(h.restart_loops[0].node, "s1");
    assert_eq!(h.restart_loops[0].restarts, 3.0);
    let h = t.observe(&c, &rules, at + 900, &nodes);
    assert!(h.restart_loops.is_empty(), "{:?}", h.restart_loops);
}

#[test]
fn p95_over_the_last_five_minutes() {
    let (c, rules) = (cell(Topology::Mesh), HealthRules::default());
    let mut t = Tracker::default();
    let mut nodes = mesh();
    let hist = |fast: f64, all: f64| vec![(1.0, fast), (2.0, all), (f64::INFINITY, all)];
    nodes[0].1.latency = hist(100.0, 100.0);
    assert_eq!(t.observe(&c, &rules, 0, &nodes).latency_p95_seconds, None);
    // 100 more requests, 50 of them between 1 s and 2 s.
    nodes[0].1.latency = hist(150.0, 200.0);
    let p = t
        .observe(&c, &rules, 60, &nodes)
        .latency_p95_seconds
        .unwrap();
    assert!((p - 1.9).abs() < 1e-9, "{p}");
}

#[test]
fn links_not_reported_yet_are_unknown_not_down() {
    let (c, rules) = (cell(Topology::Mesh), HealthRules::default());
    let mut t = Tracker::default();
    // The exporters answer, but their Thunderbolt collector has not reported yet.
    let mut nodes = mesh();
    for (_, s) in &mut nodes {
        s.links.clear();
    }
    let h = t.observe(&c, &rules, 0, &nodes);
    assert!(h.links.iter().all(|l| l.state == LinkState::Unknown));
    assert_eq!(h.links_healthy, None, "not judged");
    assert!(h.unreachable.is_empty());
    // Then they do: up, and no transition counted for the start.
    let h = t.observe(&c, &rules, 15, &mesh());
    assert_eq!(h.links_healthy, Some(true));
    assert!(h.links.iter().all(|l| l.transitions == 0));
}

#[test]
fn a_silent_exporter_neither_splits_a_chain_nor_hides_power() {
    let (c, rules) = (cell(Topology::Chain), HealthRules::default());
    let mut t = Tracker::default();
    let mut nodes = mesh();
    t.observe(&c, &rules, 0, &nodes);
    // s2's exporter stops answering; its links, seen from s1 and s3, are up.
    nodes.remove(1);
    let h = t.observe(&c, &rules, 15, &nodes);
    assert!(h.unreachable.is_empty(), "{:?}", h.unreachable);
    assert_eq!(h.links_healthy, Some(true));
    assert_eq!(h.power_watts, None, "s2's share is unknown");
    // Two nodes dark in a mesh: the links between them unknown, the others down: unhealthy.
    let (m, mut t) = (cell(Topology::Mesh), Tracker::default());
    t.observe(&m, &rules, 0, &mesh());
    let mut two = mesh();
    for j in 0..2 {
        for i in 2..4 {
            pull(&mut two, i, j);
        }
    }
    two.truncate(2);
    let h = t.observe(&m, &rules, 15, &two);
    assert_eq!(h.links_healthy, Some(false));
}
