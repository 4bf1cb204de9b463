//! The synthetic cell's series, generated scrape by scrape: a baseline of traffic, latency,
//! tokens and energy, changed by the phases of a scenario.
//!
//! Baseline, per node: 2 requests/s (±10 % from scrape to scrape), 100 generated and 400 prompt
//! tokens per ok request (±10 %), request durations 0.25–2 s (85 % under 1 s), time to first
//! token under 500 ms; 150 W idle plus 0.5 J per generated token (±2 %): 250 W and 1.25 J per
//! token at the baseline, 2.88 M tokens/kWh. The cell: 8 requests/s, 800 tokens/s, 1 kW.

use std::collections::BTreeMap;

use cellwatch_metrics as m;

use crate::source::prometheus::Series;

/// 2026-01-05T00:00:00Z, a Monday: where every scenario begins (but `maintenance`).
pub(super) const EPOCH: i64 = 1_767_571_200;
/// Seconds between two scrapes of a node.
pub(super) const STEP: i64 = 15;
/// Nodes of the cell: `n1`..`n4`.
pub(super) const NODES: usize = 4;
/// The cell.
pub(super) const CELL: &str = "cell-a";
/// The `job` label.
pub(super) const JOB: &str = "cellwatch";
/// The `model` label.
pub(super) const MODEL: &str = "llama-3.1-8b-instruct";
/// Requests per second and node at the baseline.
pub(super) const RATE: f64 = 2.0;
/// Generated tokens per ok request.
pub(super) const GENERATED: f64 = 100.0;
/// Prompt tokens per ok request.
const PROMPT: f64 = 400.0;
/// A node's power without requests.
pub(super) const IDLE_WATTS: f64 = 150.0;
/// Energy per generated token on top of the idle power.
pub(super) const JOULES_PER_TOKEN: f64 = 0.5;

/// What a phase changes on its nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Effect {
    /// This share of requests fails (`server_error`, fast: not in the histograms, no tokens).
    Errors(f64),
    /// This share of ok requests takes 2–10 s (time to first token 0.5–2 s).
    Slow(f64),
    /// Every joule times this factor.
    Energy(f64),
    /// The request rate times this factor.
    Traffic(f64),
    /// Neither exporter nor server answers: `up` 0, no other sample, no request served; the
    /// node stays powered (its energy counter runs on). `reset`: it comes back restarted, every
    /// counter from 0.
    Down {
        /// Whether the counters restart from 0 when the node answers again.
        reset: bool,
    },
}

/// One change over a range of scrapes: the scrape at `t` (covering `(t − 15 s, t]`) is in the
/// phase when `from < t <= to`. Bounds are whole multiples of [`STEP`] after the history's start.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Phase {
    /// Start (Unix seconds).
    pub from: i64,
    /// End (Unix seconds).
    pub to: i64,
    /// Node indexes (0 is `n1`).
    pub nodes: Vec<usize>,
    /// The change.
    pub effect: Effect,
}

/// A whole history to generate.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Spec {
    /// First scrape (Unix seconds).
    pub from: i64,
    /// End, exclusive.
    pub to: i64,
    /// The baseline's request rate times this factor (1: the baseline).
    pub traffic: f64,
    /// Whether request counts vary ±10 % from scrape to scrape (off: exact rates).
    pub jitter: bool,
    /// The changes.
    pub phases: Vec<Phase>,
}

/// The cumulative share of requests under each bucket bound, from points (bound, share): the
/// share at the largest point not above the bound.
type Cdf = &'static [(f64, f64)];
const FAST_DURATION: Cdf = &[(0.25, 0.02), (0.5, 0.25), (1.0, 0.85), (2.0, 1.0)];
const SLOW_DURATION: Cdf = &[(2.5, 0.3), (5.0, 0.9), (10.0, 1.0)];
const FAST_TTFT: Cdf = &[(0.05, 0.1), (0.1, 0.55), (0.25, 0.95), (0.5, 1.0)];
const SLOW_TTFT: Cdf = &[(0.5, 0.1), (1.0, 0.6), (2.0, 1.0)];

fn share(cdf: Cdf, bound: f64) -> f64 {
    cdf.iter()
        .rev()
        .find(|(b, _)| *b <= bound + 1e-12)
        .map_or(0.0, |(_, s)| *s)
}

/// `le` as the exporter writes it (`0.5`, `2`, `+Inf`).
fn le(x: f64) -> String {
    if x.is_infinite() {
        "+Inf".into()
    } else {
        format!("{x}")
    }
}

/// Bucket bounds of both histograms, `+Inf` last.
fn bounds() -> impl Iterator<Item = f64> {
    m::DEFAULT_LATENCY_BUCKETS
        .iter()
        .copied()
        .chain([f64::INFINITY])
}

/// Buckets per histogram, `+Inf` included.
const BUCKETS: usize = m::DEFAULT_LATENCY_BUCKETS.len() + 1;

/// The counters of one node.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    fast: f64,
    slow: f64,
    errors: f64,
    generated: f64,
    prompt: f64,
    joules: f64,
}

/// One node being generated.
struct Node {
    rng: fastrand::Rng,
    /// Fractions carried to the next scrape: requests, errors, slow requests.
    carry: [f64; 3],
    c: Counters,
    /// Down at the previous scrape, and whether it comes back reset.
    down: Option<bool>,
    /// Its series, in the order of [`node_series`].
    series: Vec<Series>,
}

/// The state of one scrape interval of one node, every phase applied.
#[derive(Debug, Clone, Copy)]
struct State {
    errors: f64,
    slow: f64,
    energy: f64,
    traffic: f64,
    down: Option<bool>,
}

fn state(spec: &Spec, node: usize, t: i64) -> State {
    let mut s = State {
        errors: 0.0,
        slow: 0.0,
        energy: 1.0,
        traffic: spec.traffic,
        down: None,
    };
    for p in spec
        .phases
        .iter()
        .filter(|p| p.from < t && t <= p.to && p.nodes.contains(&node))
    {
        match p.effect {
            Effect::Errors(r) => s.errors = r,
            Effect::Slow(r) => s.slow = r,
            Effect::Energy(f) => s.energy *= f,
            Effect::Traffic(f) => s.traffic *= f,
            Effect::Down { reset } => s.down = Some(reset),
        }
    }
    s
}

/// The series of node `i` (labels only): duration buckets, TTFT buckets, requests ok and
/// server_error, tokens prompt and generated, energy, `up`.
fn node_series(i: usize, capacity: usize) -> Vec<Series> {
    let target = |name: &str, extra: &[(&str, String)]| {
        let mut labels: BTreeMap<String, String> = [
            ("__name__", name.to_string()),
            ("cell", CELL.to_string()),
            ("node", format!("n{}", i + 1)),
            ("instance", format!("n{}:9817", i + 1)),
            ("job", JOB.to_string()),
        ]
        .into_iter()
        .chain(extra.iter().cloned())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if name != "up" && name != m::NODE_ENERGY_JOULES.name {
            labels.insert("model".into(), MODEL.into());
        }
        Series {
            labels,
            samples: Vec::with_capacity(capacity),
        }
    };
    let mut out = Vec::new();
    for family in [&m::INFERENCE_REQUEST_DURATION, &m::INFERENCE_TTFT] {
        let name = format!("{}_bucket", family.name);
        out.extend(bounds().map(|b| target(&name, &[("le", le(b))])));
    }
    for outcome in ["ok", "server_error"] {
        out.push(target(
            m::INFERENCE_REQUESTS.name,
            &[("outcome", outcome.into())],
        ));
    }
    for kind in ["prompt", "generated"] {
        out.push(target(m::INFERENCE_TOKENS.name, &[("kind", kind.into())]));
    }
    out.push(target(
        m::NODE_ENERGY_JOULES.name,
        &[("source", "smc".into())],
    ));
    out.push(target("up", &[]));
    out
}

impl Node {
    fn new(seed: u64, i: usize, spec: &Spec, capacity: usize) -> Node {
        let mut rng = fastrand::Rng::with_seed(seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9));
        // The exporter has been up 2 to 7 days: counters start where that traffic left them.
        let uptime = 86_400.0 * (2.0 + 5.0 * rng.f64());
        let requests = (RATE * spec.traffic * uptime).floor();
        let ok = (requests * 0.9998).floor();
        let c = Counters {
            fast: (ok * 0.999).floor(),
            slow: ok - (ok * 0.999).floor(),
            errors: requests - ok,
            generated: (ok * GENERATED).round(),
            prompt: (ok * PROMPT).round(),
            joules: (uptime * IDLE_WATTS + ok * GENERATED * JOULES_PER_TOKEN).round(),
        };
        Node {
            rng,
            // Spread over the nodes, so that a cell at a low rate sees its requests evenly.
            carry: [i as f64 / NODES as f64, 0.0, 0.0],
            c,
            down: None,
            series: node_series(i, capacity),
        }
    }

    /// The scrape at `t` (Unix seconds) after an interval in state `s`.
    fn scrape(&mut self, t: i64, s: State, jitter: bool) {
        let ms = t * 1000;
        let up = self.series.len() - 1;
        let idle = IDLE_WATTS * (0.98 + 0.04 * self.rng.f64()) * STEP as f64;
        if let Some(reset) = s.down {
            // Powered, not answering: the energy counter runs on (unless it restarts anyway).
            if !reset {
                self.c.joules += idle * s.energy;
            }
            self.down = Some(reset);
            self.series[up].samples.push((ms, 0.0));
            return;
        }
        if self.down.take() == Some(true) {
            self.c = Counters::default();
        }
        let wobble = if jitter {
            0.9 + 0.2 * self.rng.f64()
        } else {
            1.0
        };
        let n = take(&mut self.carry[0], RATE * s.traffic * STEP as f64 * wobble);
        let errors = take(&mut self.carry[1], n * s.errors).min(n);
        let ok = n - errors;
        let slow = take(&mut self.carry[2], ok * s.slow).min(ok);
        let generated = (ok * GENERATED * (0.9 + 0.2 * self.rng.f64())).round();
        let prompt = (ok * PROMPT * (0.9 + 0.2 * self.rng.f64())).round();
        self.c.fast += ok - slow;
        self.c.slow += slow;
        self.c.errors += errors;
        self.c.generated += generated;
        self.c.prompt += prompt;
        self.c.joules += (idle + JOULES_PER_TOKEN * generated) * s.energy;
        self.record(ms);
    }

    /// Appends the counters' values at `ms`.
    fn record(&mut self, ms: i64) {
        let c = self.c;
        let histograms = [(FAST_DURATION, SLOW_DURATION), (FAST_TTFT, SLOW_TTFT)];
        for (h, (fast, slow)) in histograms.into_iter().enumerate() {
            for (j, bound) in bounds().enumerate() {
                // Cumulative and monotonic in time: floors of shares of growing totals.
                let v = if bound.is_infinite() {
                    c.fast + c.slow
                } else {
                    (c.fast * share(fast, bound)).floor() + (c.slow * share(slow, bound)).floor()
                };
                self.series[h * BUCKETS + j].samples.push((ms, v));
            }
        }
        let rest = [
            c.fast + c.slow,
            c.errors,
            c.prompt,
            c.generated,
            c.joules,
            1.0,
        ];
        let first = 2 * BUCKETS;
        for (k, v) in rest.into_iter().enumerate() {
            self.series[first + k].samples.push((ms, v));
        }
    }
}

/// Whole units out of a carried fraction plus `x`.
fn take(carry: &mut f64, x: f64) -> f64 {
    *carry += x;
    // Rates such as 1/480 per second add up to a whole request a hair under 1.0.
    let n = (*carry + 1e-9).floor();
    *carry -= n;
    n
}

/// FNV-1a of the name: the seed, so a name always gives the same history.
fn seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The history of `spec`, seeded by `name`: every node scraped every [`STEP`] seconds from
/// `spec.from` to before `spec.to`.
pub(super) fn history(name: &str, spec: &Spec) -> Vec<Series> {
    let scrapes = ((spec.to - spec.from).max(0) / STEP) as usize;
    let seed = seed(name);
    let mut nodes: Vec<Node> = (0..NODES)
        .map(|i| Node::new(seed, i, spec, scrapes))
        .collect();
    for k in 0..scrapes {
        let t = spec.from + k as i64 * STEP;
        for (i, node) in nodes.iter_mut().enumerate() {
            node.scrape(t, state(spec, i, t), spec.jitter);
        }
    }
    nodes.into_iter().flat_map(|n| n.series).collect()
}
