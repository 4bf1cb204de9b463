//! `cellwatch-slo rules`: Sloth-compatible recording rules and multiwindow burn-rate alerts.

use std::collections::BTreeMap;

use super::health;
use super::rule::{Group, Rule, RuleFile, just_under, record};
use crate::config::{Budgeting, Config, MinEvents, Period, Sli, Slo};
use crate::model::{WINDOWS, burn_factor};
use crate::util::promql::{any_of, duration, le_matcher};
use cellwatch_metrics as m;

pub(super) fn period_secs(p: &Period) -> u64 {
    match p {
        Period::Rolling(d) => d.as_secs(),
        Period::CalendarMonth(_) => crate::model::MONTH_IN_RULES,
    }
}

pub(super) fn cells_matcher(slo: &Slo) -> String {
    let mut cells = slo.cells.clone();
    cells.sort();
    format!("cell=~\"{}\"", any_of(&cells))
}

/// Energy of each node from its best source (the SMC's whole-system reading, else the SoC's;
/// RAPL plus NVIDIA on Linux), summed per cell, over `w`.
pub(super) fn cell_energy(cells: &str, w: &str) -> String {
    format!(
        "sum by (cell) (\n  {}\n)",
        m::node_energy_promql("increase", cells, w)
    )
}

/// Good and total events of an event-ratio SLI over `w`, as PromQL.
pub(super) fn events(slo: &Slo, w: &str) -> Option<(String, String)> {
    let cells = cells_matcher(slo);
    let hist = |family: &str, t: f64| {
        (
            format!(
                "sum by (cell) (increase({family}_bucket{{{cells},{}}}[{w}]))",
                le_matcher(t)
            ),
            format!("sum by (cell) (increase({family}_count{{{cells}}}[{w}]))"),
        )
    };
    let r = m::INFERENCE_REQUESTS.name;
    Some(match &slo.sli {
        Sli::Latency(t) => hist(m::INFERENCE_REQUEST_DURATION.name, *t),
        Sli::Ttft(t) => hist(m::INFERENCE_TTFT.name, *t),
        Sli::Tpot(t) => hist(m::INFERENCE_TPOT.name, *t),
        Sli::Availability => (
            format!("sum by (cell) (increase({r}{{{cells},outcome=~\"ok|client_error\"}}[{w}]))"),
            format!("sum by (cell) (increase({r}{{{cells},outcome!=\"cancelled\"}}[{w}]))"),
        ),
        Sli::TokensPerKwh { .. }
        | Sli::Throughput { .. }
        | Sli::Ratio(_)
        | Sli::LinkHealth
        | Sli::PowerCap => return None,
    })
}

/// The error-ratio expression of an SLO over a window of `secs` seconds, matching the engine:
/// occurrences are 1 − good/total; time slices (judged on slices of the SLO's own length; the
/// health SLIs by [`super::health::slice_bad`]) are
/// the bad slices over every slice of the window, judged or idle, the budget's denominator, so
/// that the ratio over 1 − objective is the engine's burn rate and idle slices neither burn
/// nor fill the budget.
pub(super) fn error_ratio(config: &Config, slo: &Slo, secs: u64) -> String {
    let cells = cells_matcher(slo);
    let slice = match slo.budgeting {
        Budgeting::Timeslices { slice, .. } => slice.as_secs().max(1),
        Budgeting::Occurrences => 300,
    };
    let s = duration(slice);
    let health = super::health::slice_bad(config, slo, slice);
    let bad = match crate::math::Judge::of(slo) {
        // link_health and power_cap: judged from readings, not events.
        _ if super::health::is_health(slo) => health.unwrap_or_default(),
        crate::math::Judge::TokensPerKwh {
            threshold,
            min_tokens,
        } => {
            let tokens = format!(
                "sum by (cell) (increase({}{{{cells},kind=\"generated\"}}[{s}]))",
                m::INFERENCE_TOKENS.name
            );
            format!(
                "({tokens} / on (cell) ({} / 3.6e6 > 0) < bool {threshold})\n  and on (cell)\n  ({tokens} >= {min_tokens})",
                cell_energy(&cells, &s)
            )
        }
        crate::math::Judge::Throughput { .. } => {
            format!("{THROUGHPUT_SLICE_BAD}{{{}}}", selector(slo))
        }
        crate::math::Judge::Ratio { slice_target } => {
            let (good, total) = events(slo, &s).unwrap_or_default();
            format!("({good} / {total} < bool {slice_target})\n  and on (cell)\n  ({total} > 0)")
        }
        crate::math::Judge::AllGood => {
            let (good, total) = events(slo, &duration(secs)).unwrap_or_default();
            return format!("1 - (\n  {good}\n  /\n  {total}\n)");
        }
    };
    // One point per slice that ends in the window: the range stops a millisecond short of the
    // window, so the slice that ended exactly a window ago (a Prometheus 2 range includes its
    // start) is not counted.
    let slices = (secs as f64 / slice as f64).max(1.0);
    format!(
        "sum_over_time((\n  {bad}\n)[{}:{s}]) / {slices}",
        just_under(secs)
    )
}

/// Generated tokens per second of each cell over the last minute (its nodes' increase of
/// generated tokens, summed, over 60 s), recorded at every evaluation of the rules.
pub(super) const CELL_TOKENS_RATE: &str = "cellwatch:cell_generated_tokens:rate1m";

/// The share of each cell's readings over the last minute that had requests waiting: each
/// node's waiting requests (summed over its models, per scrape target) sampled every
/// [`READING_STEP`] within the minute (a millisecond short of it: a reading at the minute's
/// start belongs to the minute before), the samples above 0 over all samples, pooled over the
/// cell's nodes, recorded at every evaluation. Nodes without the gauge (an EXO ring's
/// non-entry nodes) have no samples and do not count; a cell without it has no series.
pub(super) const CELL_WAITING_SHARE: &str = "cellwatch:cell_requests_waiting:share1m";

/// The step at which [`CELL_WAITING_SHARE`] samples the waiting gauge: one sample per reading
/// at the 15 s scrape interval of `alerts/prometheus.yml` (four a minute); a slower scrape's
/// reading is sampled as often as it is the latest, so the share stays the share of the
/// minute.
const READING_STEP: &str = "15s";

/// The recordings the `throughput` slices read: [`CELL_TOKENS_RATE`] and
/// [`CELL_WAITING_SHARE`], for every cell, then each throughput SLO's verdicts
/// ([`THROUGHPUT_SLICE_BAD`]), which its error ratios sample once a minute (a verdict recorded
/// in the same evaluation as a ratio may land after it, rule groups running apart: that minute
/// is then judged by the verdict a minute older until the next evaluation).
fn throughput_group(config: &Config) -> Group {
    let all_cells: Vec<String> = config.cells.iter().map(|c| c.name.clone()).collect();
    let cells = format!("cell=~\"{}\"", any_of(&all_cells));
    // Each throughput SLO's verdicts come after the recordings they read, in the same group,
    // so that a verdict and its recordings are of the same evaluation.
    let verdicts = config.slos.iter().filter_map(|slo| match slo.sli {
        Sli::Throughput { floor } => Some(record(
            THROUGHPUT_SLICE_BAD,
            throughput_bad(&cells_matcher(slo), floor),
            slo_labels(slo),
        )),
        _ => None,
    });
    // Per scrape target, as the engine's sources read it: one reading per node and scrape.
    let per_node = format!(
        "sum by (cell, node, instance, job) ({}{{{cells}}})",
        m::INFERENCE_WAITING.name
    );
    let minute = format!("[{}:{READING_STEP}]", just_under(60));
    Group {
        name: "cellwatch-cell-throughput".into(),
        rules: [
            record(
                CELL_TOKENS_RATE,
                format!(
                    "sum by (cell) (increase({}{{{cells},kind=\"generated\"}}[1m])) / 60",
                    m::INFERENCE_TOKENS.name
                ),
                BTreeMap::new(),
            ),
            record(
                CELL_WAITING_SHARE,
                format!(
                    "sum by (cell) (sum_over_time(({per_node} > bool 0){minute}))\n/\nsum by (cell) (count_over_time(({per_node}){minute}))"
                ),
                BTreeMap::new(),
            ),
        ]
        .into_iter()
        .chain(verdicts)
        .collect(),
    }
}

/// The verdict of each cell's `throughput` slice (the minute ending at the evaluation), recorded
/// per SLO at every evaluation (see [`throughput_bad`]); the error ratios sample it once a
/// minute. Recorded rather than written inside their subqueries: a number (the floor) inside a
/// subquery costs a sample per step, more than promtool allows over a period's window (43,200
/// one-minute steps in 30 days).
pub(super) const THROUGHPUT_SLICE_BAD: &str = "cellwatch:throughput_slice_bad:1m";

/// The verdict of a `throughput` slice ending now, per cell of `cells` (a matcher): 1 when the
/// cell's generated tokens per second ([`CELL_TOKENS_RATE`]; 0 without any token series) were
/// under `floor`, 0 when at or above it; no series (idle) unless requests were waiting in at
/// least half of its readings ([`CELL_WAITING_SHARE`] at least
/// [`THROUGHPUT_LOADED_SHARE`](crate::math::THROUGHPUT_LOADED_SHARE)): a backlog persists
/// across readings, one request's prefill caught by one scrape does not. A verdict that stops
/// (the cell went idle) is marked stale, so the minutes after it are idle, not judged again.
fn throughput_bad(cells: &str, floor: f64) -> String {
    let loaded = crate::math::THROUGHPUT_LOADED_SHARE;
    format!(
        "(\n    ({CELL_TOKENS_RATE}{{{cells}}} or on (cell) 0 * {CELL_WAITING_SHARE}{{{cells}}})\n    < bool {floor}\n  )\n  and on (cell)\n  ({CELL_WAITING_SHARE}{{{cells}}} >= {loaded})"
    )
}

pub(super) fn slo_labels(slo: &Slo) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("sloth_id".to_string(), format!("cellwatch-{}", slo.name)),
        ("sloth_service".to_string(), "cellwatch".to_string()),
        ("sloth_slo".to_string(), slo.name.clone()),
    ])
}

pub(super) fn selector(slo: &Slo) -> String {
    format!(
        "sloth_id=\"cellwatch-{0}\", sloth_service=\"cellwatch\", sloth_slo=\"{0}\"",
        slo.name
    )
}

/// The rules for every SLO of `config`, and the cell-health alerts, as a Prometheus rule file.
pub fn rules(config: &Config) -> String {
    let mut groups = vec![
        efficiency_group(config),
        health::power_group(config),
        throughput_group(config),
    ];
    let (mut skipped, mut uncapped) = (Vec::new(), Vec::new());
    for slo in &config.slos {
        if matches!(slo.sli, Sli::Ratio(_)) {
            // The queries are the user's: Prometheus cannot turn arbitrary expressions into exact
            // increases over every window, so these are evaluated by the engine only.
            skipped.push(slo.name.as_str());
            continue;
        }
        if health::is_health(slo) && health::slice_bad(config, slo, 60).is_none() {
            uncapped.push(slo.name.as_str());
            continue;
        }
        let period = period_secs(&slo.period);
        groups.push(sli_group(config, slo, period));
        groups.push(meta_group(slo, period));
        if !health::is_health(slo) {
            // Health SLIs get no burn-rate alerts: their conditions page or ticket (below), as
            // in the engine.
            groups.push(alert_group(config, slo, period));
        }
    }
    groups.push(health::health_group(config));
    let body = yaml_serde::to_string(&RuleFile { groups }).unwrap_or_default();
    let mut note = String::new();
    if !skipped.is_empty() {
        note += &format!(
            "# Not here: {} (PromQL ratio SLIs are evaluated by the engine; alert on its cellwatch_slo_* series).\n",
            skipped.join(", ")
        );
    }
    if config.cells.iter().any(|c| c.topology.is_some()) {
        note += "# link_health, CellwatchLinkUnhealthy, CellwatchLinkFlapping and CellwatchMeshSplit read cellwatch-slo's own\n\
                 # cellwatch_cell_link_state and cellwatch_cell_drain_reason (scrape its /metrics): matching links to\n\
                 # a topology's peers is the engine's work, not PromQL's.\n";
    }
    if !uncapped.is_empty() {
        note += &format!(
            "# Not here: {} (power_cap SLOs none of whose cells has a power_cap_watts).\n",
            uncapped.join(", ")
        );
    }
    format!(
        "# Generated by `cellwatch-slo rules`. DO NOT EDIT: change the SLO configuration and regenerate.\n{note}{body}"
    )
}

/// Cell efficiency, shared by the tokens/kWh SLOs and the dashboards.
fn efficiency_group(config: &Config) -> Group {
    let all_cells: Vec<String> = config.cells.iter().map(|c| c.name.clone()).collect();
    let cells = format!("cell=~\"{}\"", any_of(&all_cells));
    Group {
        name: "cellwatch-cell-efficiency".into(),
        rules: vec![
            record(
                "cellwatch:cell_generated_tokens:increase5m",
                format!("sum by (cell) (increase({}{{{cells},kind=\"generated\"}}[5m]))", m::INFERENCE_TOKENS.name),
                BTreeMap::new(),
            ),
            record(
                "cellwatch:cell_energy_joules:increase5m",
                cell_energy(&cells, "5m"),
                BTreeMap::new(),
            ),
            record(
                "cellwatch:cell_tokens_per_kwh:ratio_rate5m",
                "cellwatch:cell_generated_tokens:increase5m\n/ on (cell)\n(cellwatch:cell_energy_joules:increase5m / 3.6e6 > 0)".into(),
                BTreeMap::new(),
            ),
        ],
    }
}

/// The SLI error ratio of `slo` over every window and its period.
fn sli_group(config: &Config, slo: &Slo, period: u64) -> Group {
    let mut windows: Vec<(String, u64)> = WINDOWS.iter().map(|(_, s)| (duration(*s), *s)).collect();
    windows.push((duration(period), period));
    let mut sli = Vec::new();
    for (w, secs) in &windows {
        let mut labels = slo_labels(slo);
        labels.insert("sloth_window".into(), w.clone());
        sli.push(record(
            &format!("slo:sli_error:ratio_rate{w}"),
            error_ratio(config, slo, *secs),
            labels,
        ));
    }
    Group {
        name: format!("cellwatch-slo-sli-recordings-{}", slo.name),
        rules: sli,
    }
}

/// Sloth's metadata series of `slo`: objective, budget, period, burn rates, info.
fn meta_group(slo: &Slo, period: u64) -> Group {
    let sel = selector(slo);
    let pw = duration(period);
    let mut info = slo_labels(slo);
    info.insert(
        "sloth_objective".into(),
        format!("{}", slo.objective * 100.0),
    );
    Group {
        name: format!("cellwatch-slo-meta-recordings-{}", slo.name),
        rules: vec![
            record(
                "slo:objective:ratio",
                format!("vector({})", slo.objective),
                slo_labels(slo),
            ),
            record(
                "slo:error_budget:ratio",
                format!("vector(1-{})", slo.objective),
                slo_labels(slo),
            ),
            record(
                "slo:time_period:days",
                format!("vector({})", period / 86400),
                slo_labels(slo),
            ),
            record(
                "slo:current_burn_rate:ratio",
                format!(
                    "slo:sli_error:ratio_rate5m{{{sel}}}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{{{sel}}}"
                ),
                slo_labels(slo),
            ),
            record(
                "slo:period_burn_rate:ratio",
                format!(
                    "slo:sli_error:ratio_rate{pw}{{{sel}}}\n/ on(sloth_id, sloth_slo, sloth_service) group_left\nslo:error_budget:ratio{{{sel}}}"
                ),
                slo_labels(slo),
            ),
            record(
                "slo:period_error_budget_remaining:ratio",
                format!("1 - slo:period_burn_rate:ratio{{{sel}}}"),
                slo_labels(slo),
            ),
            record("sloth_slo_info", "vector(1)".into(), info),
        ],
    }
}

/// The `min_events` guard of a burn tier's long window `w` (factor `f`), as the engine applies
/// it: a fixed `min_events`, or the automatic low-traffic guard of occurrence SLOs
/// ([`crate::math::tier_min_events`]: one bad event alone never fires a tier). The short window
/// needs no guard: without events its error ratio is NaN, never above a threshold.
fn min_events_guard(slo: &Slo, w: &str, f: f64) -> String {
    let min = match slo.min_events {
        MinEvents::Fixed(n) => n,
        MinEvents::Auto => crate::math::tier_min_events(slo, f),
    };
    match events(slo, w) {
        Some((_, total)) if min > 0 => format!("\n    and on (cell) ({total} >= {min})"),
        _ => String::new(),
    }
}

/// The multiwindow, multi-burn-rate page and ticket alerts of `slo`.
fn alert_group(config: &Config, slo: &Slo, period: u64) -> Group {
    let mut alerts = Vec::new();
    for severity in ["page", "ticket"] {
        let parts = burn_conditions(config, slo, period, severity);
        if parts.is_empty() {
            continue; // every window of this severity is longer than the period
        }
        alerts.push(burn_alert(slo, period, severity, parts));
    }
    Group {
        name: format!("cellwatch-slo-alerts-{}", slo.name),
        rules: alerts,
    }
}

/// One condition per configured burn rate of `severity` whose long window fits the period.
fn burn_conditions(config: &Config, slo: &Slo, period: u64, severity: &str) -> Vec<String> {
    let sel = selector(slo);
    let budget = 1.0 - slo.objective;
    config
        .alerting
        .burn_rates
        .iter()
        .filter(|b| b.severity == severity && b.long <= period)
        .map(|b| {
            let f = burn_factor(b.budget, b.long, period);
            let (lw, sw) = (duration(b.long), duration(b.short));
            format!(
                "(\n    max(slo:sli_error:ratio_rate{sw}{{{sel}}} > ({f} * {budget})) without (sloth_window)\n    and\n    max(slo:sli_error:ratio_rate{lw}{{{sel}}} > ({f} * {budget})) without (sloth_window){}\n)",
                min_events_guard(slo, &lw, f)
            )
        })
        .collect()
}

/// The alert rule of one severity.
fn burn_alert(slo: &Slo, period: u64, severity: &str, parts: Vec<String>) -> Rule {
    let pw = duration(period);
    let mut labels = BTreeMap::from([
        ("severity".to_string(), severity.to_string()),
        ("slo".to_string(), slo.name.clone()),
    ]);
    labels.insert("sloth_severity".into(), severity.into());
    Rule {
        record: None,
        alert: Some(if severity == "page" {
            "CellSLOBurnRatePage".into()
        } else {
            "CellSLOBurnRateTicket".into()
        }),
        expr: parts.join("\nor\n"),
        for_: None,
        labels,
        annotations: BTreeMap::from([
            (
                "summary".to_string(),
                format!(
                    "Cell {{{{ $labels.cell }}}} burns the {} error budget too fast ({severity})",
                    slo.name
                ),
            ),
            (
                "description".to_string(),
                format!(
                    "SLO {}: objective {} over {}. See cellwatch_slo_error_budget_remaining_ratio.",
                    slo.name, slo.objective, pw
                ),
            ),
        ]),
    }
}
