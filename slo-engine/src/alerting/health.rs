//! The alerts a cell's health calls for: an unhealthy or flapping link (ticket, naming both
//! nodes and their ports), a mesh split (page), power near the cap (page), restart loops
//! (ticket).

use crate::config::{Config, Sli};
use crate::eval::{CellReport, Report};
use crate::health::{LinkState, LinkStatus};
use crate::model::{Labels, names};

use super::wanted::{Wanted, labels};

/// Every health alert of every cell.
pub(super) fn health_alerts(config: &Config, report: &Report) -> Vec<Wanted> {
    let mut out = Vec::new();
    let rules = &config.health;
    for c in &report.cells {
        let h = &c.health;
        for l in &h.links {
            if l.flapping {
                out.push(link_alert(
                    c,
                    l,
                    names::LINK_FLAPPING,
                    0,
                    format!(
                        "Link {} changed state {} times within {}",
                        ends(l),
                        l.transitions,
                        humantime::format_duration(std::time::Duration::from_secs(
                            rules.flap_window as u64
                        ))
                    ),
                ));
            }
            if !matches!(l.state, LinkState::Up | LinkState::Unknown) {
                out.push(link_alert(
                    c,
                    l,
                    names::LINK_UNHEALTHY,
                    rules.link_for,
                    format!("Link {} is {}", ends(l), problem(l)),
                ));
            }
        }
        if !h.unreachable.is_empty() {
            let who = h.unreachable.join(", ");
            out.push(Wanted {
                labels: cell_labels(c, names::MESH_SPLIT, "page", &[]),
                annotations: labels(&[
                    (
                        "summary",
                        &format!(
                            "Cell {}: {who} answer but cannot be reached over the cell's links",
                            c.cell
                        ),
                    ),
                    ("unreachable", &who),
                ]),
                hold: rules.link_for,
            });
        }
        if let (Some(p), Some(cap)) = (h.power_watts, h.power_cap_watts)
            && p >= rules.power_warn_share * cap
        {
            out.push(Wanted {
                labels: cell_labels(c, names::POWER_NEAR_CAP, "page", &[]),
                annotations: labels(&[
                    (
                        "summary",
                        &format!("Cell {} draws {p:.0} W of its {cap:.0} W cap", c.cell),
                    ),
                    ("power_watts", &format!("{p:.0}")),
                    ("power_cap_watts", &format!("{cap:.0}")),
                ]),
                hold: rules.power_warn_for,
            });
        }
        for r in &h.restart_loops {
            let (name, key) = match r.kind {
                "inference" => (names::INFERENCE_RESTART_LOOP, "server"),
                _ => (names::COLLECTOR_RESTART_LOOP, "collector"),
            };
            out.push(Wanted {
                labels: cell_labels(c, name, "ticket", &[("node", &r.node), (key, &r.what)]),
                annotations: labels(&[(
                    "summary",
                    &format!(
                        "{} {} on node {} restarted {} times within {}",
                        if r.kind == "inference" {
                            "Inference server"
                        } else {
                            "Exporter collector"
                        },
                        r.what,
                        r.node,
                        r.restarts,
                        humantime::format_duration(std::time::Duration::from_secs(
                            rules.restart_window as u64
                        ))
                    ),
                )]),
                hold: 0,
            });
        }
    }
    out
}

/// Whether `slo` is a health SLO (judged from the cell's health, alerted through it).
pub(super) fn is_health_slo(config: &Config, slo: &str) -> Option<&'static [&'static str]> {
    let s = config.slos.iter().find(|s| s.name == slo)?;
    match s.sli {
        Sli::LinkHealth => Some(&[
            names::LINK_UNHEALTHY,
            names::LINK_FLAPPING,
            names::MESH_SPLIT,
        ]),
        Sli::PowerCap => Some(&[names::POWER_NEAR_CAP]),
        _ => None,
    }
}

fn cell_labels(c: &CellReport, alertname: &str, severity: &str, more: &[(&str, &str)]) -> Labels {
    let mut l = labels(&[
        ("alertname", alertname),
        ("cell", &c.cell),
        ("severity", severity),
    ]);
    for (k, v) in more {
        l.insert(k.to_string(), v.to_string());
    }
    l
}

fn link_alert(c: &CellReport, l: &LinkStatus, name: &str, hold: i64, summary: String) -> Wanted {
    let port = |p: &Option<String>| p.clone().unwrap_or_else(|| "unknown".into());
    Wanted {
        labels: cell_labels(c, name, "ticket", &[("node", &l.node), ("peer", &l.peer)]),
        annotations: labels(&[
            ("summary", &summary),
            ("port", &port(&l.port)),
            ("peer_port", &port(&l.peer_port)),
            ("state", l.state.as_str()),
        ]),
        hold,
    }
}

/// `studio-a-1 en2 ↔ studio-a-2 en3`.
fn ends(l: &LinkStatus) -> String {
    let p = |p: &Option<String>| p.as_deref().map(|p| format!(" {p}")).unwrap_or_default();
    format!("{}{} ↔ {}{}", l.node, p(&l.port), l.peer, p(&l.peer_port))
}

/// What is wrong with a link, for people.
fn problem(l: &LinkStatus) -> String {
    let gbps = |b: f64| format!("{:.0} Gb/s", b * 8.0 / 1e9);
    match l.state {
        LinkState::Up => "up".into(),
        LinkState::Unknown => "unknown".into(),
        LinkState::Down => "down".into(),
        LinkState::Slow => format!(
            "slower than expected: {} of {}",
            l.speed_bytes_per_second.map_or("?".into(), gbps),
            l.expected_speed_bytes_per_second.map_or("?".into(), gbps)
        ),
        LinkState::RdmaInactive => "up without RDMA".into(),
        LinkState::Errors => format!(
            "erroring: {:.1} errors/s",
            l.errors_per_second.unwrap_or(0.0)
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::alerting::State;
    use crate::eval::attach_health;
    use crate::health::{LinkObs, NodeSnapshot, Tracker};

    const CONFIG: &str = "cells:
  - name: c
    topology: mesh
    link_speed: 80Gb/s
    rdma: true
    power_cap_watts: 1000
    nodes:
      - { name: s1, url: \"http://s1/metrics\" }
      - { name: s2, url: \"http://s2/metrics\" }
      - { name: s3, url: \"http://s3/metrics\" }
slos:
  - { name: links, objective: 0.99, period: 30d, sli: { link_health: {} } }
";

    /// A three-node mesh at 80 Gb/s with RDMA; the cable s1–s2 pulled when `pulled`.
    fn nodes(pulled: bool, watts: f64) -> Vec<(String, NodeSnapshot)> {
        let names = ["s1", "s2", "s3"];
        (0..3)
            .map(|i| {
                let mut s = NodeSnapshot {
                    power_watts: Some(watts),
                    rdma_enabled: Some(true),
                    ..Default::default()
                };
                for j in (0..3).filter(|j| *j != i) {
                    let cut = pulled && i + j == 1;
                    s.links.push(LinkObs {
                        link: format!("en{j}"),
                        up: Some(!cut),
                        speed: (!cut).then_some(1e10),
                        rdma_device: format!("rdma_en{j}"),
                        peer: if cut { String::new() } else { names[j].into() },
                        ..Default::default()
                    });
                    s.rdma_active.insert(format!("rdma_en{j}"), !cut);
                }
                (names[i].to_string(), s)
            })
            .collect()
    }

    /// The alerts firing after each 15 s tick from `from` to `to` (virtual time).
    fn run(
        t: &mut Tracker,
        st: &mut State,
        from: i64,
        to: i64,
        n: &[(String, NodeSnapshot)],
    ) -> BTreeSet<String> {
        let config = crate::config::parse(CONFIG, std::path::Path::new("t.yaml")).unwrap();
        let mut fired = BTreeSet::new();
        for at in (from..to).step_by(15) {
            let h = t.observe(&config.cells[0], &config.health, at, n);
            let mut r = Report {
                at,
                cells: vec![crate::eval::CellReport {
                    cell: "c".into(),
                    tokens_per_kwh: BTreeMap::new(),
                    kwh_per_1k_requests: BTreeMap::new(),
                    budget_headroom: None,
                    healthy: true,
                    health: Default::default(),
                    take_traffic: true,
                    drain: Vec::new(),
                }],
                ..Default::default()
            };
            let health = BTreeMap::from([("c".to_string(), h)]);
            attach_health(&mut r, &config, &health, &BTreeSet::new(), at);
            let wanted =
                crate::alerting::wanted(&config, &r, &BTreeSet::new(), &config.alerting.timing);
            st.step_alerts(&wanted, at);
            fired.extend(st.alerts.values().filter(|a| a.firing()).map(|a| {
                format!(
                    "{} {}-{}",
                    a.labels["alertname"],
                    a.labels.get("node").cloned().unwrap_or_default(),
                    a.labels.get("peer").cloned().unwrap_or_default()
                )
            }));
        }
        fired
    }

    #[test]
    fn a_healthy_hour_gives_nothing_and_a_pulled_cable_one_ticket() {
        let (mut t, mut st) = (Tracker::default(), State::default());
        let healthy = run(&mut t, &mut st, 0, 3600, &nodes(false, 250.0));
        assert!(healthy.is_empty(), "{healthy:?}");
        let pulled = run(&mut t, &mut st, 3600, 4200, &nodes(true, 250.0));
        assert_eq!(
            pulled,
            BTreeSet::from(["CellwatchLinkUnhealthy s1-s2".to_string()])
        );
        // Power near the cap (950 W of 1000 W) for two minutes: the page.
        let hot = run(&mut t, &mut st, 4200, 4400, &nodes(false, 950.0 / 3.0));
        assert!(hot.contains("CellwatchPowerNearCap -"), "{hot:?}");
    }
}
