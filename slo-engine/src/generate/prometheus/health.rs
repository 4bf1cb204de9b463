//! The cell-health part of `cellwatch-slo rules`: the per-slice verdicts of the `link_health`
//! and `power_cap` SLIs, and alerts mirroring the engine's health alerts (links, mesh split,
//! power near the cap, restart loops).
//!
//! Power is read from the exporters' series (`cellwatch_node_power_watts`, the whole-node rule of
//! `cellwatch_metrics::node_power_promql`), summed per cell and recorded (a subquery sampling
//! the sum over a 30-day window costs ten times the rest of the rules); the cap comes from the
//! configuration. Links are not read from the exporters: which interface of which node is the
//! expected link to which peer needs the topology matched against the exporters' peers, which
//! the engine does (`health`); the rules read its verdict, `cellwatch_cell_link_state` and
//! `cellwatch_cell_drain_reason`, from the engine's /metrics (the `cellwatch-slo` job of
//! `alerts/prometheus.yml`).

use std::collections::BTreeMap;

use cellwatch_metrics as m;

use super::rule::{Group, Rule, just_under, record};
use crate::config::{Cell, Config, HealthRules, Sli, Slo};
use crate::model::names;
use crate::util::promql::{any_of, duration};

/// `cell=~"…"` of exactly `cells`.
fn matcher<S: AsRef<str>>(cells: &[S]) -> String {
    format!("cell=~\"{}\"", any_of(cells))
}

/// The SLO's cells, in configuration order.
fn cells_of<'a>(config: &'a Config, slo: &Slo) -> Vec<&'a Cell> {
    config
        .cells
        .iter()
        .filter(|c| slo.cells.contains(&c.name))
        .collect()
}

/// The cells with a power cap: (name, cap in watts).
fn capped<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> Vec<(&'a str, f64)> {
    cells
        .into_iter()
        .filter_map(|c| c.power_cap_watts.map(|w| (c.name.as_str(), w)))
        .collect()
}

/// The whole power of each cell, recorded at every evaluation of the rules: its nodes'
/// whole-node power, summed. Keep Prometheus' `evaluation_interval` at the scrape interval, so a
/// peak lasting one scrape is seen.
pub(super) const CELL_POWER: &str = "cellwatch:cell_power_watts:sum";

/// The power cap of each cell that has one, recorded as a series with its `cell` label, so
/// that a slice compares two series: a number inside a subquery costs a sample per step, more
/// than promtool allows over a period's window (43,200 one-minute steps in 30 days).
pub(super) const CELL_POWER_CAP: &str = "cellwatch:cell_power_cap_watts";

/// The recordings of [`CELL_POWER`] (every cell) and [`CELL_POWER_CAP`] (each cell with a cap).
pub(super) fn power_group(config: &Config) -> Group {
    let cells: Vec<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
    let mut rules = vec![record(
        CELL_POWER,
        cell_power(&matcher(&cells)),
        BTreeMap::new(),
    )];
    for (cell, cap) in capped(&config.cells) {
        rules.push(record(
            CELL_POWER_CAP,
            format!("vector({cap})"),
            BTreeMap::from([("cell".to_string(), cell.to_string())]),
        ));
    }
    Group {
        name: "cellwatch-cell-power".into(),
        rules,
    }
}

/// The whole power of `cells` now: each node's whole-node power, summed per cell.
fn cell_power(cells: &str) -> String {
    format!("sum by (cell) (\n  {}\n)", m::node_power_promql(cells))
}

/// Whether `slo` is a health SLI, judged per slice from the cell's readings, not from events.
pub(super) fn is_health(slo: &Slo) -> bool {
    matches!(slo.sli, Sli::LinkHealth | Sli::PowerCap)
}

/// The verdict on the slice of `slice` seconds that ends now, per cell, for a health SLI: 1 bad,
/// 0 good, no series idle (no reading). `None` for other SLIs, or a `power_cap` SLO none of
/// whose cells has a cap.
///
/// - `power_cap`: bad when the cell's power recorded within the slice ([`CELL_POWER`]) ever
///   exceeds the cell's `power_cap_watts` (recorded as [`CELL_POWER_CAP`]). A recording made at
///   the slice's end may land after the slice is judged (rule groups run apart): that slice
///   is judged without it until the next evaluation.
/// - `link_health`: bad when any expected link was in any state but `up` at any engine reading
///   within the slice (`cellwatch_cell_link_state`, the engine's verdict: see the module).
///   Cells without a topology have no link states: their slices are idle.
///
/// The ranges stop a millisecond short of the slice, so a reading at the slice's start (the
/// previous slice's end) is not counted twice.
pub(super) fn slice_bad(config: &Config, slo: &Slo, slice: u64) -> Option<String> {
    let under = just_under(slice);
    match slo.sli {
        Sli::PowerCap => {
            let cells: Vec<&str> = capped(cells_of(config, slo))
                .into_iter()
                .map(|(cell, _)| cell)
                .collect();
            let cells = (!cells.is_empty()).then(|| matcher(&cells))?;
            Some(format!(
                "max_over_time({CELL_POWER}{{{cells}}}[{under}])\n  > bool on (cell)\n  {CELL_POWER_CAP}{{{cells}}}"
            ))
        }
        Sli::LinkHealth => {
            let cells: Vec<&str> = cells_of(config, slo)
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            Some(format!(
                "max by (cell) (max_over_time({}{{{},state!=\"up\"}}[{under}]))",
                m::CELL_LINK_STATE.name,
                matcher(&cells)
            ))
        }
        _ => None,
    }
}

/// An alert rule.
fn alert(
    name: &str,
    expr: String,
    hold: i64,
    severity: &str,
    summary: String,
    description: String,
) -> Rule {
    Rule {
        record: None,
        alert: Some(name.into()),
        expr,
        for_: (hold > 0).then(|| duration(hold as u64)),
        labels: BTreeMap::from([("severity".to_string(), severity.to_string())]),
        annotations: BTreeMap::from([
            ("summary".to_string(), summary),
            ("description".to_string(), description),
        ]),
    }
}

/// The health alerts: link unhealthy and flapping, mesh split (cells with a topology), power
/// near the cap (cells with a cap), restart loops (every cell). Health SLIs get no burn-rate
/// alerts: these conditions page or ticket, as in the engine.
pub(super) fn health_group(config: &Config) -> Group {
    let h = &config.health;
    let linked: Vec<&str> = config
        .cells
        .iter()
        .filter(|c| c.topology.is_some())
        .map(|c| c.name.as_str())
        .collect();
    let mut rules = Vec::new();
    if !linked.is_empty() {
        rules.extend(link_alerts(&matcher(&linked), h));
    }
    for (cell, cap) in capped(&config.cells) {
        rules.push(power_alert(cell, cap, h));
    }
    let all: Vec<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
    rules.extend(restart_alerts(&matcher(&all), h));
    Group {
        name: "cellwatch-cell-health".into(),
        rules,
    }
}

/// Link unhealthy, link flapping and mesh split, from the engine's link verdicts.
fn link_alerts(cells: &str, h: &HealthRules) -> Vec<Rule> {
    let state = m::CELL_LINK_STATE.name;
    let why = "Which state and which ports: GET /api/v1/cells/{{ $labels.cell }}/health on cellwatch-slo.";
    vec![
        alert(
            names::LINK_UNHEALTHY,
            format!("max by (cell, node, peer) ({state}{{{cells},state!=\"up\"}}) == 1"),
            h.link_for,
            "ticket",
            "Link {{ $labels.node }} – {{ $labels.peer }} of cell {{ $labels.cell }} is down, slow, without RDMA or erroring".into(),
            format!("An expected link of the cell's topology, as cellwatch-slo judges it ({state}). {why}"),
        ),
        alert(
            names::LINK_FLAPPING,
            format!(
                "max by (cell, node, peer) (changes({state}{{{cells},state=\"up\"}}[{}])) >= {}",
                duration(h.flap_window as u64),
                h.flap_transitions
            ),
            0,
            "ticket",
            "Link {{ $labels.node }} – {{ $labels.peer }} of cell {{ $labels.cell }} is flapping".into(),
            format!(
                "{{{{ $value }}}} transitions in {} (threshold {}). {why}",
                duration(h.flap_window as u64),
                h.flap_transitions
            ),
        ),
        alert(
            names::MESH_SPLIT,
            format!(
                "max by (cell) ({}{{{cells},reason=\"mesh_split\"}}) == 1",
                m::CELL_DRAIN_REASON.name
            ),
            h.link_for,
            "page",
            "The mesh of cell {{ $labels.cell }} is split: a node answers but cannot be reached over the cell's links".into(),
            "cellwatch-slo drains the cell (reason mesh_split). Which nodes: GET /api/v1/cells/{{ $labels.cell }}/health.".into(),
        ),
    ]
}

/// Power above the warn share of one cell's cap.
fn power_alert(cell: &str, cap: f64, h: &HealthRules) -> Rule {
    let share = h.power_warn_share;
    alert(
        names::POWER_NEAR_CAP,
        format!("{} > {share} * {cap}", cell_power(&matcher(&[cell]))),
        h.power_warn_for,
        "page",
        "Cell {{ $labels.cell }} draws {{ $value | humanize }}W, near its power cap".into(),
        format!(
            "Above {share} of the cap of {cap} W for {}: shed load before the breaker trips.",
            duration(h.power_warn_for.max(0) as u64)
        ),
    )
}

/// Restart loops of inference servers and exporter children.
fn restart_alerts(cells: &str, h: &HealthRules) -> Vec<Rule> {
    let w = duration(h.restart_window as u64);
    let n = h.restarts;
    let rule = |name: &str, family: &str, by: &str, what: &str| {
        alert(
            name,
            format!("sum by (cell, node, {by}) (increase({family}{{{cells}}}[{w}])) >= {n}"),
            0,
            "ticket",
            format!(
                "{what} {{{{ $labels.{by} }}}} on node {{{{ $labels.node }}}} of cell {{{{ $labels.cell }}}} restarts in a loop"
            ),
            format!("{{{{ $value | humanize }}}} restarts in {w} (threshold {n}), from {family}."),
        )
    };
    vec![
        rule(
            names::INFERENCE_RESTART_LOOP,
            cellwatch_metrics::INFERENCE_UPSTREAM_RESTARTS.name,
            "server",
            "Inference server",
        ),
        rule(
            names::COLLECTOR_RESTART_LOOP,
            m::COLLECTOR_RESTARTS.name,
            "collector",
            "Exporter child",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::rules;
    use crate::config::parse;

    const CELLS: &str = r#"
cells:
  - name: a.1
    topology: chain
    power_cap_watts: 900
    nodes:
      - { name: a1, url: "http://a1:9817/metrics" }
      - { name: a2, url: "http://a2:9817/metrics" }
  - name: b
    nodes:
      - { name: b1, url: "http://b1:9817/metrics" }
health: { restarts: 5, restart_window: 30m, power_warn_share: 0.8 }
slos:
"#;

    fn generated(slos: &str) -> String {
        let config = parse(&format!("{CELLS}{slos}"), std::path::Path::new("c.yaml")).unwrap();
        rules::rules(&config)
    }

    #[test]
    fn power_cap_slices_compare_the_cells_power_with_its_recorded_cap() {
        let r =
            generated("  - { name: cap, objective: 0.99, period: 7d, sli: { power_cap: {} } }\n");
        // The cap is recorded for the capped cell only, in the rule text.
        assert!(
            r.contains("record: cellwatch:cell_power_cap_watts\n    expr: vector(900)\n    labels:\n      cell: a.1\n"),
            "{r}"
        );
        assert_eq!(
            r.matches("record: cellwatch:cell_power_cap_watts").count(),
            1
        );
        // Slices: the peak of the cell's recorded power within the minute, over the cap; cell b
        // (no cap) is not judged. The power of every cell is recorded.
        assert!(
            r.contains(
                "max_over_time(cellwatch:cell_power_watts:sum{cell=~\"a\\\\.1\"}[59s999ms])\n"
            ),
            "{r}"
        );
        assert!(r.contains("source=\"smc\",cell=~\"a\\\\.1|b\""), "{r}");
        assert!(
            r.contains(
                "> bool on (cell)\n        cellwatch:cell_power_cap_watts{cell=~\"a\\\\.1\"}\n"
            ),
            "{r}"
        );
        assert!(r.contains("source=\"smc\",cell=~\"a\\\\.1\""), "{r}");
        // No burn-rate alerts for a health SLI; its SLO recordings are there.
        assert!(!r.contains("cellwatch-slo-alerts-cap"), "{r}");
        assert!(r.contains("sloth_slo: cap"), "{r}");
        // The page at the warn share, per capped cell.
        assert!(r.contains("> 0.8 * 900\n    for: 2m"), "{r}");
    }

    #[test]
    fn a_power_cap_slo_without_a_capped_cell_is_left_out_with_a_note() {
        let r = generated(
            "  - { name: cap, cells: [b], objective: 0.99, period: 7d, sli: { power_cap: {} } }\n",
        );
        assert!(
            r.contains(
                "# Not here: cap (power_cap SLOs none of whose cells has a power_cap_watts)."
            ),
            "{r}"
        );
        assert!(!r.contains("sloth_slo: cap"), "{r}");
    }

    #[test]
    fn link_health_reads_the_engines_link_states_and_alerts_cover_linked_cells_only() {
        let r = generated(
            "  - { name: links, objective: 0.99, period: 7d, sli: { link_health: {} } }\n",
        );
        assert!(
            r.contains(
                "max by (cell) (max_over_time(cellwatch_cell_link_state{cell=~\"a\\\\.1|b\",state!=\"up\"}[59s999ms]))"
            ),
            "{r}"
        );
        assert!(!r.contains("cellwatch-slo-alerts-links"), "{r}");
        // Link and mesh alerts for the cell with a topology; restart loops for every cell, with
        // the configured thresholds.
        assert!(
            r.contains("max by (cell, node, peer) (cellwatch_cell_link_state{cell=~\"a\\\\.1\",state!=\"up\"}) == 1"),
            "{r}"
        );
        assert!(r.contains("reason=\"mesh_split\""), "{r}");
        assert!(
            r.contains("(increase(cellwatch_inference_upstream_restarts_total{cell=~\"a\\\\.1|b\"}[30m])) >= 5"),
            "{r}"
        );
        assert!(r.contains("alert: CellwatchCollectorRestartLoop"), "{r}");
    }

    #[test]
    fn without_topology_or_cap_only_restart_loops_are_alerted() {
        let config = parse(
            "cells:\n  - name: b\n    nodes:\n      - { name: b1, url: \"http://b1:9817/metrics\" }\n",
            std::path::Path::new("c.yaml"),
        )
        .unwrap();
        let r = rules::rules(&config);
        for absent in [
            "CellwatchLinkUnhealthy",
            "CellwatchLinkFlapping",
            "CellwatchMeshSplit",
            "CellwatchPowerNearCap",
            "cellwatch:cell_power_cap_watts",
        ] {
            assert!(!r.contains(absent), "{absent}: {r}");
        }
        assert!(r.contains("alert: CellwatchInferenceRestartLoop"), "{r}");
    }
}
