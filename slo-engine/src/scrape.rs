//! The `scrape` source's pure part: an exporter page becomes raw counter readings; successive
//! readings of a node become increases (a counter that went down was reset, as Prometheus'
//! `increase()` reads it); increases of a cell's nodes become one slice per SLO.

use std::collections::{BTreeMap, HashMap};

use cellwatch_metrics as m;
use prometheus_parse::{Scrape, Value};

use crate::config::{Sli, Slo};
use crate::math::SliceData;

/// One counter series: family and sorted label pairs.
pub type Key = (String, Vec<(String, String)>);

/// The counters of one page that the SLOs read.
pub type Reading = BTreeMap<Key, f64>;

const FAMILIES: [&str; 5] = [
    "cellwatch_inference_request_duration_seconds",
    "cellwatch_inference_time_to_first_token_seconds",
    "cellwatch_inference_requests_total",
    "cellwatch_inference_tokens_total",
    "cellwatch_node_energy_joules_total",
];

fn le(x: f64) -> String {
    if x.is_infinite() {
        "+Inf".into()
    } else {
        format!("{x}")
    }
}

/// Parses an exporter's `/metrics` page into the counters the SLOs read.
pub fn read(page: &str) -> Result<Reading, String> {
    let scrape = Scrape::parse(page.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| format!("not a metrics page: {e}"))?;
    if scrape.samples.is_empty() {
        return Err("no samples on the page".into());
    }
    let mut out = Reading::new();
    for s in &scrape.samples {
        let base = s
            .metric
            .trim_end_matches("_count")
            .trim_end_matches("_bucket");
        if !FAMILIES.contains(&base) {
            continue;
        }
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        match &s.value {
            Value::Histogram(buckets) => {
                for b in buckets.iter().filter(|b| b.count.is_finite()) {
                    let mut l = labels.clone();
                    l.push(("le".into(), le(b.less_than)));
                    l.sort();
                    out.insert((format!("{base}_bucket"), l), b.count);
                }
            }
            Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) if v.is_finite() => {
                out.insert((s.metric.clone(), labels), *v);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Follows each node's counters across readings.
#[derive(Debug, Default)]
pub struct Tracker {
    last: HashMap<String, (i64, Reading)>,
}

impl Tracker {
    /// Takes a node's reading at `now` and returns the increases since its previous reading,
    /// or `None` for a first reading, or one after a gap longer than `max_gap` seconds (the
    /// node was down: its events in the gap are not attributed to the slice it came back in).
    pub fn increases(
        &mut self,
        node: &str,
        now: i64,
        reading: Reading,
        max_gap: i64,
    ) -> Option<Reading> {
        let prev = self.last.insert(node.to_string(), (now, reading));
        let (then, old) = prev?;
        if now - then > max_gap {
            return None;
        }
        Some(increase(&old, &self.last[node].1))
    }
}

/// The increases of a node's counters from reading `old` to reading `new`: a counter that went
/// down was reset (a histogram resets as a whole), a series that appeared counts in full.
pub fn increase(old: &Reading, new: &Reading) -> Reading {
    // A histogram resets as a whole: if any of its series went down, all of them did.
    let group = |(f, l): &Key| -> (String, Vec<(String, String)>) {
        let base = f
            .trim_end_matches("_bucket")
            .trim_end_matches("_count")
            .trim_end_matches("_sum")
            .to_string();
        (base, l.iter().filter(|(k, _)| k != "le").cloned().collect())
    };
    let reset: std::collections::HashSet<(String, Vec<(String, String)>)> = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| *v < o))
        .map(|(k, _)| group(k))
        .collect();
    let mut inc = Reading::new();
    for (k, v) in new {
        let d = match old.get(k) {
            _ if reset.contains(&group(k)) => *v,
            Some(o) => v - o,
            // A series that appeared since the last reading (a model's first request, an
            // exporter that restarted): everything it counts happened since then.
            None => *v,
        };
        inc.insert(k.clone(), d);
    }
    inc
}

/// One series of a stored reading: family, labels, value.
type Stored = (String, Vec<(String, String)>, f64);

/// A node's reading as the ledger stores it (JSON: `[[family, [[label, value], …], value], …]`).
pub fn encode_reading(r: &Reading) -> String {
    let v: Vec<Stored> = r
        .iter()
        .map(|((f, l), v)| (f.clone(), l.clone(), *v))
        .collect();
    serde_json::to_string(&v).unwrap_or_default()
}

/// A reading the ledger stored.
pub fn decode_reading(text: &str) -> Result<Reading, String> {
    let v: Vec<Stored> =
        serde_json::from_str(text).map_err(|e| format!("a stored reading: {e}"))?;
    Ok(v.into_iter().map(|(f, l, v)| ((f, l), v)).collect())
}

/// What the ledger's slices are recorded up to, per node (`cell/node`): the last recorded
/// reading, when it was taken, and its generation in the ledger. The leader computes a node's
/// increases against it and moves it in the same transaction as the slices they add; a failed
/// write leaves it where it was, so the increases are recorded by the next write that
/// succeeds (this engine's, or the next leader's, which starts from the ledger's baselines).
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// When the reading was taken (Unix seconds).
    pub at: i64,
    /// The ledger row's generation (None: not in the ledger yet).
    pub generation: Option<i64>,
    /// The counters.
    pub reading: Reading,
}

/// What one node's new reading does: its increases (None: it only sets a baseline) and its
/// next baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The increases since the baseline; None for a first reading or one after a gap longer
    /// than `max_gap` (the node was down: its events in the gap are not attributed to the
    /// slice it came back in).
    pub increases: Option<Reading>,
    /// The baseline the increases were computed from (its generation is the one expected in
    /// the ledger).
    pub from: Option<(i64, Option<i64>)>,
}

/// Compares a node's new reading at `now` with its baseline.
pub fn step(base: Option<&Baseline>, now: i64, reading: &Reading, max_gap: i64) -> Step {
    match base {
        None => Step {
            increases: None,
            from: None,
        },
        Some(b) => Step {
            increases: (now - b.at <= max_gap).then(|| increase(&b.reading, reading)),
            from: Some((b.at, b.generation)),
        },
    }
}

fn sum(inc: &Reading, family: &str, pred: impl Fn(&[(String, String)]) -> bool) -> f64 {
    inc.iter()
        .filter(|((f, l), _)| f == family && pred(l))
        .map(|(_, v)| *v)
        .sum()
}

fn label<'a>(l: &'a [(String, String)], name: &str) -> Option<&'a str> {
    l.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// One node's contribution to a cell's totals in one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    /// Generated tokens.
    pub tokens: f64,
    /// Joules (the node's whole-system source when it has one, else the SoC; RAPL plus NVIDIA on
    /// Linux).
    pub joules: f64,
    /// Finished requests that were not cancelled.
    pub requests: f64,
}

/// The cell-level totals of one node's increases.
pub fn totals(inc: &Reading) -> Totals {
    let energy = |source: &str| -> Option<f64> {
        let k = inc.iter().find(|((f, l), _)| {
            f == m::NODE_ENERGY_JOULES.name && label(l, "source") == Some(source)
        });
        k.map(|(_, v)| *v)
    };
    Totals {
        tokens: sum(inc, m::INFERENCE_TOKENS.name, |l| {
            label(l, "kind") == Some("generated")
        }),
        // The whole-node rule of `cellwatch_metrics::node_energy_promql`: SMC, else SoC (Apple),
        // else RAPL plus NVIDIA (Linux).
        joules: energy("smc")
            .or_else(|| energy("soc"))
            .or_else(|| match (energy("rapl"), energy("nvidia")) {
                (None, None) => None,
                (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
            })
            .unwrap_or(0.0),
        requests: sum(inc, m::INFERENCE_REQUESTS.name, |l| {
            label(l, "outcome") != Some("cancelled")
        }),
    }
}

/// Good and total events of an event-ratio SLO in one node's increases.
pub fn events(slo: &Slo, inc: &Reading) -> (f64, f64) {
    // Only histograms that have a bucket at the threshold count, good and total alike (an
    // adapter's upstream may use other bounds).
    let hist = |family: &str, t: f64| {
        let bucket = format!("{family}_bucket");
        let without_le = |l: &[(String, String)]| -> Vec<(String, String)> {
            l.iter().filter(|(k, _)| k != "le").cloned().collect()
        };
        let mut good = 0.0;
        let mut with_bound = std::collections::HashSet::new();
        for ((f, l), v) in inc {
            if *f == bucket
                && label(l, "le")
                    .and_then(|v| v.parse::<f64>().ok())
                    .is_some_and(|b| (b - t).abs() < 1e-9)
            {
                good += v;
                with_bound.insert(without_le(l));
            }
        }
        let total = inc
            .iter()
            .filter(|((f, l), _)| {
                *f == bucket
                    && label(l, "le") == Some("+Inf")
                    && with_bound.contains(&without_le(l))
            })
            .map(|(_, v)| *v)
            .sum();
        (good, total)
    };
    match &slo.sli {
        Sli::Latency(t) => hist(m::INFERENCE_REQUEST_DURATION.name, *t),
        Sli::Ttft(t) => hist(m::INFERENCE_TTFT.name, *t),
        Sli::Availability => {
            fn outcome(l: &[(String, String)]) -> &str {
                label(l, "outcome").unwrap_or("")
            }
            let good = sum(inc, m::INFERENCE_REQUESTS.name, |l| {
                matches!(outcome(l), "ok" | "client_error")
            });
            let total = sum(inc, m::INFERENCE_REQUESTS.name, |l| {
                outcome(l) != "cancelled"
            });
            (good, total)
        }
        // Not read from exporter pages: see `promsource`.
        Sli::TokensPerKwh { .. } | Sli::Ratio(_) => (0.0, 0.0),
    }
}

/// The slice one interval of a cell adds for an SLO, from its nodes' increases.
pub fn slice(slo: &Slo, start: i64, nodes: &[Reading]) -> SliceData {
    let mut s = SliceData {
        start,
        ..Default::default()
    };
    for inc in nodes {
        let (good, total) = events(slo, inc);
        let t = totals(inc);
        s.good += good;
        s.total += total;
        s.tokens += t.tokens;
        s.joules += t.joules;
        s.requests += t.requests;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Budgeting, Period};
    use std::time::Duration;

    fn page(fast: u64, all: u64, tokens: u64, joules: f64, ok: u64, err: u64) -> String {
        format!(
            "# TYPE cellwatch_inference_request_duration_seconds histogram\n\
             cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"1\"}} {fast}\n\
             cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"2\"}} {fast}\n\
             cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"+Inf\"}} {all}\n\
             cellwatch_inference_request_duration_seconds_sum{{model=\"m\"}} 1\n\
             cellwatch_inference_request_duration_seconds_count{{model=\"m\"}} {all}\n\
             # TYPE cellwatch_inference_tokens_total counter\n\
             cellwatch_inference_tokens_total{{model=\"m\",kind=\"generated\"}} {tokens}\n\
             cellwatch_inference_tokens_total{{model=\"m\",kind=\"prompt\"}} 5\n\
             # TYPE cellwatch_inference_requests_total counter\n\
             cellwatch_inference_requests_total{{model=\"m\",outcome=\"ok\"}} {ok}\n\
             cellwatch_inference_requests_total{{model=\"m\",outcome=\"server_error\"}} {err}\n\
             cellwatch_inference_requests_total{{model=\"m\",outcome=\"cancelled\"}} 7\n\
             # TYPE cellwatch_node_energy_joules_total counter\n\
             cellwatch_node_energy_joules_total{{source=\"soc\"}} 1\n\
             cellwatch_node_energy_joules_total{{source=\"smc\"}} {joules}\n"
        )
    }

    fn slo(sli: Sli) -> Slo {
        Slo {
            name: "s".into(),
            description: None,
            cells: vec![],
            objective: 0.99,
            period: Period::Rolling(Duration::from_secs(86400)),
            budgeting: Budgeting::Occurrences,
            min_events: 0,
            sli,
        }
    }

    #[test]
    fn energy_is_smc_else_soc_else_rapl_plus_nvidia() {
        let energy = |lines: &str| {
            let page = format!("# TYPE cellwatch_node_energy_joules_total counter\n{lines}");
            totals(&read(&page).unwrap()).joules
        };
        let e = "cellwatch_node_energy_joules_total";
        assert_eq!(
            energy(&format!(
                "{e}{{source=\"soc\"}} 1\n{e}{{source=\"smc\"}} 5\n"
            )),
            5.0
        );
        assert_eq!(energy(&format!("{e}{{source=\"soc\"}} 1\n")), 1.0);
        assert_eq!(
            energy(&format!(
                "{e}{{source=\"rapl\"}} 300\n{e}{{source=\"nvidia\"}} 1200\n"
            )),
            1500.0
        );
        assert_eq!(energy(&format!("{e}{{source=\"nvidia\"}} 1200\n")), 1200.0);
        assert_eq!(
            energy("cellwatch_node_energy_joules_total{source=\"x\"} 9\n"),
            0.0
        );
    }

    #[test]
    fn increases_with_resets_and_gaps() {
        let mut t = Tracker::default();
        assert_eq!(
            t.increases(
                "n1",
                0,
                read(&page(10, 12, 100, 1000.0, 11, 1)).unwrap(),
                60
            ),
            None,
            "a baseline"
        );
        let inc = t
            .increases(
                "n1",
                15,
                read(&page(15, 20, 150, 1360.0, 18, 2)).unwrap(),
                60,
            )
            .unwrap();
        assert_eq!(events(&slo(Sli::Latency(2.0)), &inc), (5.0, 8.0));
        assert_eq!(events(&slo(Sli::Latency(1.0)), &inc), (5.0, 8.0));
        assert_eq!(events(&slo(Sli::Availability), &inc), (7.0, 8.0));
        assert_eq!(
            totals(&inc),
            Totals {
                tokens: 50.0,
                joules: 360.0,
                requests: 8.0
            }
        );
        // The exporter restarted: every counter is small again.
        let inc = t
            .increases("n1", 30, read(&page(1, 1, 3, 10.0, 1, 0)).unwrap(), 60)
            .unwrap();
        assert_eq!(
            totals(&inc),
            Totals {
                tokens: 3.0,
                joules: 10.0,
                requests: 1.0
            }
        );
        // A model's first requests appear as new series: they count in full.
        let mut p = page(1, 1, 3, 10.0, 1, 0);
        p.push_str(
            "cellwatch_inference_requests_total{model=\"new\",outcome=\"server_error\"} 4\n",
        );
        let inc = t.increases("n1", 45, read(&p).unwrap(), 60).unwrap();
        assert_eq!(events(&slo(Sli::Availability), &inc), (0.0, 4.0));
        // Down for five minutes: the first reading after is a baseline, not an increase.
        assert_eq!(
            t.increases("n1", 330, read(&page(9, 9, 30, 90.0, 9, 0)).unwrap(), 60),
            None
        );
    }

    #[test]
    fn a_baseline_is_compared_until_it_moves_and_readings_round_trip() {
        let r0 = read(&page(10, 12, 100, 1000.0, 11, 1)).unwrap();
        let r1 = read(&page(15, 20, 150, 1360.0, 18, 2)).unwrap();
        let r2 = read(&page(17, 25, 170, 1400.0, 22, 3)).unwrap();
        assert_eq!(decode_reading(&encode_reading(&r1)).unwrap(), r1);
        assert!(decode_reading("{").is_err());
        assert_eq!(step(None, 0, &r0, 60).increases, None);
        let base = Baseline {
            at: 0,
            generation: Some(3),
            reading: r0.clone(),
        };
        // A write of the first increase failed: the baseline did not move, so the next
        // reading's increase covers both intervals, once.
        let first = step(Some(&base), 15, &r1, 60);
        let both = step(Some(&base), 30, &r2, 60);
        assert_eq!(first.from, Some((0, Some(3))));
        assert_eq!(totals(&first.increases.unwrap()).requests, 8.0);
        assert_eq!(totals(&both.increases.unwrap()).requests, 13.0);
        // Longer than max_gap: a new baseline, no increase.
        assert_eq!(step(Some(&base), 61, &r2, 60).increases, None);
    }

    #[test]
    fn a_cell_slice_sums_its_nodes() {
        let mut t = Tracker::default();
        let mut incs = Vec::new();
        for (node, k) in [("a", 1u64), ("b", 2u64)] {
            t.increases(node, 0, read(&page(0, 0, 0, 0.0, 0, 0)).unwrap(), 60);
            incs.push(
                t.increases(
                    node,
                    15,
                    read(&page(9 * k, 10 * k, 100 * k, 3600.0 * k as f64, 10 * k, 0)).unwrap(),
                    60,
                )
                .unwrap(),
            );
        }
        let s = slice(&slo(Sli::Latency(2.0)), 60, &incs);
        assert_eq!(
            s,
            SliceData {
                start: 60,
                good: 27.0,
                total: 30.0,
                tokens: 300.0,
                joules: 10800.0,
                requests: 30.0
            }
        );
    }

    #[test]
    fn a_histogram_resets_as_a_whole_and_foreign_bounds_do_not_count() {
        let h = |b2: u64, inf: u64, other_inf: u64| {
            format!(
                "# TYPE cellwatch_inference_request_duration_seconds histogram\n\
                 cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"2\"}} {b2}\n\
                 cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"+Inf\"}} {inf}\n\
                 cellwatch_inference_request_duration_seconds_bucket{{model=\"v\",le=\"3\"}} 0\n\
                 cellwatch_inference_request_duration_seconds_bucket{{model=\"v\",le=\"+Inf\"}} {other_inf}\n"
            )
        };
        let mut t = Tracker::default();
        t.increases("n", 0, read(&h(50, 100, 7)).unwrap(), 60);
        // +Inf went down (a restart), le=2 did not: the whole histogram reset.
        let inc = t
            .increases("n", 15, read(&h(60, 90, 9)).unwrap(), 60)
            .unwrap();
        let (good, total) = events(&slo(Sli::Latency(2.0)), &inc);
        assert_eq!(
            (good, total),
            (60.0, 90.0),
            "good never exceeds total; model v has no 2 s bucket"
        );
    }

    #[test]
    fn pages_that_are_not_metrics_are_errors() {
        assert!(read("").is_err());
        assert!(read("<html>").is_err());
        assert_eq!(read("up 1\n").unwrap().len(), 0);
    }
}
