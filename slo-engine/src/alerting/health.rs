//! The alerts a cell's health calls for: an unhealthy or flapping link (ticket, naming both
//! nodes and their ports), a mesh split (page), power near the cap (page), restart loops
//! (ticket).

use crate::config::{Config, Sli};
use crate::eval::{CellReport, Report};
use crate::health::{LinkState, LinkStatus};
use crate::model::{Labels, names};

use super::rules::{Wanted, labels};

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
            if l.state != LinkState::Up {
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
