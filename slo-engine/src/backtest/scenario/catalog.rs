//! The scenarios: names, what each does to the cell, when, and what the SRE Workbook says
//! should fire (against `testdata/backtest/cell.yaml`: availability 99.9 %, latency-2s 99 %,
//! tokens-per-kwh 95 % of 5-minute slices at 1.5 M tokens/kWh, all over 30 days, the default
//! burn-rate tiers 1h/5m 14.4×, 6h/30m 6× (pages), 1d/2h 3×, 3d/6h 1× (tickets)).
//!
//! Detection = factor × (1 − objective) × long window / bad ratio, counted from the onset.
//! Each history begins with clean traffic at least as long as the longest window that decides
//! what fires (6 h for a page, 3 days where a ticket decides), so its windows are as full as in
//! a cell that ran for weeks. The SLO period (30 days) is not: budgets over the history spend
//! faster than they would over a real period.

use super::generate::{
    EPOCH, Effect, GENERATED, IDLE_WATTS, JOULES_PER_TOKEN, NODES, Phase, RATE, Spec, history,
};
use crate::source::prometheus::Series;
use crate::util::time::rfc3339;

/// A synthetic history of the four-node cell `cell-a` (nodes `n1`..`n4`, job `cellwatch`,
/// instances `n1:9817`…): every node scraped every 15 s, with the series the `prometheus`
/// source reads (latency and TTFT `_bucket` series, requests by outcome, tokens by kind, energy
/// of source `smc`) and `up`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Name, as in [`SCENARIOS`].
    pub name: String,
    /// What happens when, and what should fire.
    pub description: String,
    /// The series, each oldest first.
    pub history: Vec<Series>,
    /// First scrape (Unix seconds).
    pub from: i64,
    /// End of the history, exclusive (Unix seconds).
    pub to: i64,
    /// When the incident begins (detection times count from here).
    pub onset: Option<i64>,
    /// When it ends (reset times count from here).
    pub recovery: Option<i64>,
    /// Per SLO of `cell.yaml`: its bad ratio over `(onset, recovery]`, the cell's counters
    /// summed (bad events over events; for `tokens-per-kwh`, bad slices over judged slices).
    pub bad: Vec<(String, f64)>,
}

/// The benchmark's scenario (`cargo bench -p cellwatch-slo --bench backtest`), not in
/// [`SCENARIOS`]: too big for the suite.
pub const MONTH: (&str, &str) = (
    "month",
    "30 days every 15 s, a 30-min full outage in the middle: the benchmark's",
);

/// Every scenario: name and one line.
pub const SCENARIOS: &[(&str, &str)] = &[
    (
        "full-outage",
        "every request fails (server_error, fast) on all four nodes for 30 min",
    ),
    (
        "slow-node",
        "n3 answers 20 % of its requests in over 2 s for 16 h: 5 % slow cell-wide",
    ),
    (
        "slow-burn",
        "0.5 % of requests fail cell-wide for 16 h: a ticket, not a page, at 99.9 %",
    ),
    (
        "flapping",
        "every request fails for 2 min every 10 min, for 1 h",
    ),
    (
        "low-traffic",
        "1 request a minute for the whole cell, one of which fails: must not page",
    ),
    (
        "one-node-down",
        "n3's exporter and server stop for 30 min; the others serve its traffic",
    ),
    (
        "all-down-and-back",
        "no node answers for 20 min, then all come back with their counters continuing",
    ),
    (
        "benign-noise",
        "0.05 % of requests fail (half the 99.9 % budget rate) for 2 days: nothing fires",
    ),
    (
        "energy-regression",
        "joules per token rise 4x on every node for 3 h: tokens/kWh slices go bad",
    ),
    (
        "idle",
        "zero requests for 6 h, every exporter answering: nothing fires",
    ),
    (
        "maintenance",
        "a 30-min full outage inside cell.yaml's maintenance window: nothing notified",
    ),
];

const MIN: i64 = 60;
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// After the incident: long enough for the 3d/6h ticket's 6h window to clear.
const TAIL: i64 = 6 * HOUR + 30 * MIN;
/// The node that misbehaves alone (`n3`).
const N3: usize = 2;

/// A scenario before its history is generated: the spec, the bad ratio per SLO, and what
/// should fire by the Workbook.
type Plan = (Spec, Vec<(&'static str, f64)>, String);

fn all() -> Vec<usize> {
    (0..NODES).collect()
}

/// Clean traffic for `lead`, an incident of `length`, `tail` after it; `phases` from the
/// onset and recovery.
fn plan(
    start: i64,
    lead: i64,
    length: i64,
    tail: i64,
    phases: impl Fn(i64, i64) -> Vec<Phase>,
) -> Spec {
    let onset = start + lead;
    Spec {
        from: start,
        to: onset + length + tail,
        traffic: 1.0,
        jitter: true,
        phases: phases(onset, onset + length),
    }
}

fn phase(from: i64, to: i64, nodes: Vec<usize>, effect: Effect) -> Phase {
    Phase {
        from,
        to,
        nodes,
        effect,
    }
}

/// The scenarios in which requests fail or slow down.
fn burns(name: &str) -> Option<Plan> {
    let errors = |r| move |a, b| vec![phase(a, b, all(), Effect::Errors(r))];
    Some(match name {
        "full-outage" => (
            plan(EPOCH, 6 * HOUR, 30 * MIN, TAIL, errors(1.0)),
            vec![("availability", 1.0)],
            "availability burns at 1000x: the 1h/5m page fires 51.8 s after the onset \
             (14.4 x 0.1 % x 1 h / 100 %), the 6h/30m page at 129.6 s; they resolve about 5 and \
             30 min after the recovery; the 1d/2h and 3d/6h tickets (inhibited by the page) hold \
             until their 2h and 6h windows clear. Failed requests carry no latency and no \
             tokens: latency-2s has no events, tokens-per-kwh slices are idle"
                .into(),
        ),
        "slow-node" => (
            plan(EPOCH, 3 * DAY, 16 * HOUR, TAIL, |a, b| {
                vec![phase(a, b, vec![N3], Effect::Slow(0.2))]
            }),
            vec![("latency-2s", 0.05)],
            "latency-2s burns at 5x: no page (14.4x and 6x are never reached); the 1d/2h and \
             3d/6h tickets fire 14.4 h after the onset (3 x 1 % x 1 d / 5 % = 1 x 1 % x 3 d / 5 %), \
             and resolve about 48 min and 4.8 h after the recovery. With less than 3 days of \
             clean history before it, the 3d window would hold mostly the incident and ticket \
             within minutes"
                .into(),
        ),
        "slow-burn" => (
            plan(EPOCH, 3 * DAY, 16 * HOUR, TAIL, errors(0.005)),
            vec![("availability", 0.005)],
            "availability burns at 5x: no page; the 1d/2h and 3d/6h tickets fire 14.4 h after \
             the onset (3 x 0.1 % x 1 d / 0.5 %), and resolve about 48 min and 4.8 h after the \
             recovery"
                .into(),
        ),
        "flapping" => (
            plan(EPOCH, 6 * HOUR, HOUR, TAIL, |a, _| {
                (0..6)
                    .map(|k| phase(a + k * 10 * MIN, a + k * 10 * MIN + 2 * MIN, all(), Effect::Errors(1.0)))
                    .collect()
            }),
            vec![("availability", 0.2)],
            "the 1h/5m page fires 51.8 s into the first burst; its 5m window clears about \
             5 min after each burst and fills again with the next; the 6h/30m page fires \
             9.6 s into the second burst (129.6 s of errors in 6 h) and holds until about \
             30 min after the last burst ends (onset + 52 min): one incident, not six"
                .into(),
        ),
        "month" => (
            plan(EPOCH, 15 * DAY, 30 * MIN, 15 * DAY - 30 * MIN, errors(1.0)),
            vec![("availability", 1.0)],
            "the benchmark's month: 30 days of the baseline every 15 s with a full outage of \
             30 min in the middle (one page, one resolve), about half a gigabyte of samples"
                .into(),
        ),
        "benign-noise" => (
            plan(EPOCH, HOUR, 2 * DAY, HOUR, errors(0.0005)),
            vec![("availability", 0.0005)],
            "availability burns at 0.5x at most, under every tier: nothing fires".into(),
        ),
        _ => return None,
    })
}

/// One request a minute for the whole cell, one of which fails.
fn low_traffic() -> Plan {
    let mut spec = plan(EPOCH, 3 * DAY, MIN, HOUR, |a, b| {
        vec![phase(a, b, all(), Effect::Errors(1.0))]
    });
    // 8 requests/s × 1/480 = 1 a minute, one node after the other, exactly.
    spec.traffic = 1.0 / (RATE * NODES as f64 * 60.0);
    spec.jitter = false;
    (
        spec,
        vec![("availability", 1.0)],
        "the failed request is the cell's only one in (onset, recovery], recorded at \
         the recovery. 1h window: 1 of 60 (1.7 % > 1.44 %), 5m: 1 of 5: the 1h/5m \
         page condition holds for about 5 min, but one failed request must not page \
         (the low-traffic guard); the 3d/6h ticket stays under 1x (1 of 360 in 6 h, \
         0.28 %, but 1 of 4,320 in 3 d)"
            .into(),
    )
}

/// The scenarios in which nodes stop, traffic changes, or energy does.
fn others(name: &str) -> Option<Plan> {
    Some(match name {
        "low-traffic" => low_traffic(),
        "one-node-down" => (
            plan(EPOCH, 6 * HOUR, 30 * MIN, HOUR, |a, b| {
                vec![
                    phase(a, b, vec![N3], Effect::Down { reset: true }),
                    phase(a, b, vec![0, 1, 3], Effect::Traffic(4.0 / 3.0)),
                ]
            }),
            vec![],
            "no SLO burns: n1, n2 and n4 serve 8/3 requests/s each; n3 comes back restarted, \
             every counter from 0 (a reset). No cell-down (3 of 4 answer), no no-data"
                .into(),
        ),
        "all-down-and-back" => (
            plan(EPOCH, 6 * HOUR, 20 * MIN, HOUR, |a, b| {
                vec![phase(a, b, all(), Effect::Down { reset: false })]
            }),
            vec![],
            "the cell-down page fires after cell_down_for (1 min) and resolves with the first \
             answering scrape; nothing else. The counters continue: requests where they \
             stopped (nothing was served), energy 20 min of idle further (720 kJ for the \
             cell): a gap, not a reset"
                .into(),
        ),
        "energy-regression" => (
            plan(EPOCH, 3 * DAY, 3 * HOUR, 2 * HOUR, |a, b| {
                vec![phase(a, b, all(), Effect::Energy(4.0))]
            }),
            vec![("tokens-per-kwh", 1.0)],
            "every node draws 4x (1 kW at 200 tokens/s: 5 J per token, 0.72 M tokens/kWh \
             against 1.5 M): every 5-min slice is bad, a 20x burn. The 1h/5m page fires \
             43.2 min after the onset by the formula (14.4 x 5 % x 1 h), 45 min in whole \
             slices (9 of the 1h window's 12 bad, each judged when it ends); the 6h/30m page at \
             1.8 h (22 of 72 slices: 110 min); no ticket (3 h of bad slices are under 15 % of a \
             day and 5 % of 3 days)"
                .into(),
        ),
        "idle" => (
            plan(EPOCH, HOUR, 6 * HOUR, HOUR, |a, b| {
                vec![phase(a, b, all(), Effect::Traffic(0.0))]
            }),
            vec![],
            "no requests, no tokens, energy at idle (150 W a node): no events, idle slices, \
             every exporter up: nothing fires (no no-data either)"
                .into(),
        ),
        "maintenance" => (
            // 2026-01-12, a week after the others: cell.yaml's window `planned-upgrade` is
            // 06:00-07:00 UTC that day; the outage is 06:05-06:35.
            plan(
                EPOCH + 7 * DAY,
                6 * HOUR + 5 * MIN,
                30 * MIN,
                TAIL,
                |a, b| vec![phase(a, b, all(), Effect::Errors(1.0))],
            ),
            vec![("availability", 1.0)],
            "the outage lies inside the maintenance window `planned-upgrade` (06:00-07:00 \
             UTC, exclude_from_budget): its slices are not recorded, nothing burns, nothing is \
             notified"
                .into(),
        ),
        _ => return None,
    })
}

/// The scenario `name` (one of [`SCENARIOS`]), generated: the same history for the same name.
pub fn scenario(name: &str) -> Option<Scenario> {
    let (spec, bad, expect) = burns(name).or_else(|| others(name))?;
    let summary = SCENARIOS
        .iter()
        .chain([&MONTH])
        .find(|(n, _)| *n == name)?
        .1;
    let onset = spec.phases.iter().map(|p| p.from).min()?;
    let recovery = match name {
        // The incident is the hour of bursts, not the last burst's end.
        "flapping" => onset + HOUR,
        _ => spec.phases.iter().map(|p| p.to).max()?,
    };
    let description = format!(
        "{summary}. Baseline: {RATE} requests/s per node, {GENERATED} generated tokens per \
         request, {IDLE_WATTS} W idle + {JOULES_PER_TOKEN} J per token per node. History \
         {} to {}; onset {}, recovery {}. Expected: {expect}.",
        rfc3339(spec.from),
        rfc3339(spec.to),
        rfc3339(onset),
        rfc3339(recovery),
    );
    Some(Scenario {
        name: name.to_string(),
        description,
        history: history(name, &spec),
        from: spec.from,
        to: spec.to,
        onset: Some(onset),
        recovery: Some(recovery),
        bad: bad.into_iter().map(|(s, r)| (s.to_string(), r)).collect(),
    })
}

/// The spec of `name`, for the tests.
#[cfg(test)]
pub(super) fn spec(name: &str) -> Option<Spec> {
    burns(name).or_else(|| others(name)).map(|(s, _, _)| s)
}
