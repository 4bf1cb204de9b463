//! `cargo bench -p cellwatch-slo --bench health`: what cell health costs per scrape. Parsing a
//! node's exporter page with its link, RDMA, power and restart series into counters and a
//! snapshot, and one tracker step of a four-node mesh (six links matched to ports, states,
//! flaps, mesh split, power, restart loops, p95 over five minutes).

use std::collections::BTreeMap;

use cellwatch_slo::config::{Cell, HealthRules, Node, Topology};
use cellwatch_slo::health::{LinkObs, NodeSnapshot, Tracker};

fn main() {
    divan::main();
}

const NODES: usize = 4;

fn mesh() -> Vec<(String, NodeSnapshot)> {
    (0..NODES)
        .map(|i| {
            let mut s = NodeSnapshot {
                power_watts: Some(250.0),
                rdma_enabled: Some(true),
                latency: vec![(1.0, 900.0), (2.0, 990.0), (f64::INFINITY, 1000.0)],
                ..Default::default()
            };
            for j in (0..NODES).filter(|j| *j != i) {
                s.links.push(LinkObs {
                    link: format!("en{j}"),
                    up: Some(true),
                    speed: Some(1e10),
                    rdma_device: format!("rdma_en{j}"),
                    peer: format!("n{j}"),
                    domain: format!("d{i}{j}"),
                    peer_domain: format!("d{j}{i}"),
                    errors: 0.0,
                });
                s.rdma_active.insert(format!("rdma_en{j}"), true);
            }
            s.restarts.insert(("inference", "proxy".into()), 0.0);
            (format!("n{i}"), s)
        })
        .collect()
}

fn cell() -> Cell {
    Cell {
        name: "c".into(),
        nodes: (0..NODES)
            .map(|i| Node {
                name: format!("n{i}"),
                url: format!("http://n{i}/metrics"),
                labels: BTreeMap::new(),
            })
            .collect(),
        topology: Some(Topology::Mesh),
        link_speed: Some(1e10),
        rdma: true,
        power_cap_watts: Some(2000.0),
    }
}

/// One step of a tracker that already holds five minutes of 15-second readings.
#[divan::bench]
fn tracker_step_four_node_mesh(b: divan::Bencher<'_, '_>) {
    let (c, rules, nodes) = (cell(), HealthRules::default(), mesh());
    let mut t = Tracker::default();
    let mut at = 0;
    for _ in 0..20 {
        t.observe(&c, &rules, at, &nodes);
        at += 15;
    }
    b.bench_local(|| {
        at += 15;
        t.observe(&c, &rules, at, &nodes)
    });
}

/// An exporter page of a Mac Studio: three links, RDMA, power, restarts and one model's
/// histograms, parsed into counters and a health snapshot.
#[divan::bench]
fn read_a_node_page(b: divan::Bencher<'_, '_>) {
    let mut page = String::new();
    for (l, p) in [("en2", "s2"), ("en3", "s3"), ("en4", "s4")] {
        page += &format!(
            "cellwatch_link_info{{link=\"{l}\",rdma_device=\"rdma_{l}\",peer=\"{p}\",domain=\"a{l}\",peer_domain=\"b{l}\"}} 1\n\
             cellwatch_link_up{{link=\"{l}\"}} 1\ncellwatch_link_speed_bytes_per_second{{link=\"{l}\"}} 1e10\n\
             cellwatch_link_errors_total{{link=\"{l}\",direction=\"received\"}} 3\n\
             cellwatch_link_received_bytes_total{{link=\"{l}\"}} 123456789\n\
             cellwatch_rdma_port_active{{device=\"rdma_{l}\"}} 1\n"
        );
    }
    page += "cellwatch_node_power_watts{source=\"smc\"} 236.4\ncellwatch_node_power_watts{source=\"soc\"} 191.5\n\
             cellwatch_collector_restarts_total{collector=\"powermetrics\"} 0\n\
             cellwatch_inference_upstream_restarts_total{server=\"proxy\"} 0\n\
             # TYPE cellwatch_inference_request_duration_seconds histogram\n";
    for le in cellwatch_metrics::DEFAULT_LATENCY_BUCKETS {
        page += &format!(
            "cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"{le}\"}} 100\n"
        );
    }
    page += "cellwatch_inference_request_duration_seconds_bucket{model=\"m\",le=\"+Inf\"} 100\n\
             cellwatch_inference_request_duration_seconds_sum{model=\"m\"} 50\n\
             cellwatch_inference_request_duration_seconds_count{model=\"m\"} 100\n";
    b.bench_local(|| cellwatch_slo::source::scrape::read_all(divan::black_box(&page)).unwrap());
}
