//! Synthetic histories of a four-node cell for `cellwatch-slo backtest`: the SRE Workbook's
//! incidents (outages, slow nodes, slow burns, flapping, low traffic, nodes down, energy
//! regressions, idle cells, maintenance), generated deterministically, with when each begins
//! and ends and how bad it is.

mod catalog;
mod generate;
mod period;

pub use catalog::{MONTH, SCENARIOS, Scenario, scenario};
pub use period::with_period;

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::generate::{CELL, Effect, NODES, STEP, Spec};
    use super::{SCENARIOS, Scenario, catalog, scenario};
    use crate::config::{Budgeting, Config, Sli};
    use crate::math::{judge, slice_start};
    use crate::model::{SliceData, Verdict};
    use crate::source::prometheus::{Feed, Series, readings};
    use crate::source::scrape::{events, slice};

    fn config() -> Config {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/backtest/cell.yaml");
        crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn spec(name: &str) -> Spec {
        catalog::spec(name).unwrap()
    }

    /// The samples of `history` in `(from, to]` (seconds).
    fn window(history: &[Series], from: i64, to: i64) -> Vec<Series> {
        history
            .iter()
            .map(|s| {
                let a = s.samples.partition_point(|(t, _)| *t <= from * 1000);
                let b = s.samples.partition_point(|(t, _)| *t <= to * 1000);
                Series {
                    labels: s.labels.clone(),
                    samples: s.samples[a..b.max(a)].to_vec(),
                }
            })
            .collect()
    }

    /// Per SLO of `config`, its bad ratio over the readings in `(from, to]` as the prometheus
    /// source turns them into increases and slices: bad events over events, or bad slices over
    /// judged slices. SLOs without events (or judged slices) are left out.
    fn engine_bad_ratios(
        config: &Config,
        history: &[Series],
        from: i64,
        to: i64,
    ) -> BTreeMap<String, f64> {
        let mut feed = Feed::default();
        let mut incs = Vec::new();
        // An hour at a time: readings of a whole history would take gigabytes.
        let mut at = from - 60;
        while at < to {
            let next = (at + 3600).min(to);
            incs.extend(feed.feed(
                readings(&window(history, at, next)),
                from * 1000,
                next * 1000,
            ));
            at = next;
        }
        let mut out = BTreeMap::new();
        for slo in &config.slos {
            let bad = match slo.budgeting {
                Budgeting::Occurrences => {
                    let (good, total) = incs.iter().fold((0.0, 0.0), |(g, t), i| {
                        let (g1, t1) = events(slo, &i.inc);
                        (g + g1, t + t1)
                    });
                    (total > 0.0).then(|| 1.0 - good / total)
                }
                Budgeting::Timeslices { slice: len, .. } => {
                    let mut slices: BTreeMap<i64, SliceData> = BTreeMap::new();
                    for i in &incs {
                        let start = slice_start(i.at, len);
                        let s = slice(slo, start, std::slice::from_ref(&i.inc));
                        let e = slices.entry(start).or_insert(SliceData {
                            start,
                            ..Default::default()
                        });
                        e.good += s.good;
                        e.total += s.total;
                        e.tokens += s.tokens;
                        e.joules += s.joules;
                        e.requests += s.requests;
                    }
                    let verdicts: Vec<Verdict> = slices.values().map(|s| judge(slo, s)).collect();
                    let judged = verdicts.iter().filter(|v| **v != Verdict::Idle).count();
                    let bad = verdicts.iter().filter(|v| **v == Verdict::Bad).count();
                    (judged > 0).then(|| bad as f64 / judged as f64)
                }
            };
            if let Some(b) = bad {
                out.insert(slo.name.clone(), b);
            }
        }
        out
    }

    /// Each increase of `s` at its samples in `(from, to]` (seconds), as the sources read
    /// counters: a drop is a reset (the new value), a gap over 45 s a new baseline.
    fn increases(s: &Series, from: i64, to: i64) -> impl Iterator<Item = (i64, f64)> + '_ {
        let a = s.samples.partition_point(|(t, _)| *t <= from * 1000);
        let b = s.samples.partition_point(|(t, _)| *t <= to * 1000);
        s.samples[a.saturating_sub(1)..b.max(a)]
            .windows(2)
            .filter(|w| w[1].0 - w[0].0 <= 45_000)
            .map(|w| {
                let inc = if w[1].1 >= w[0].1 {
                    w[1].1 - w[0].1
                } else {
                    w[1].1
                };
                (w[1].0 / 1000, inc)
            })
    }

    /// The same bad ratios as [`engine_bad_ratios`], straight from the counters: fast enough
    /// for days of history.
    fn bad_ratios(
        config: &Config,
        history: &[Series],
        from: i64,
        to: i64,
    ) -> BTreeMap<String, f64> {
        let pick = |name: &str, label: &str, value: &str| -> Vec<&Series> {
            history
                .iter()
                .filter(|s| {
                    s.labels["__name__"] == name && s.labels.get(label).is_some_and(|v| v == value)
                })
                .collect()
        };
        let sum = |series: Vec<&Series>| -> f64 {
            series
                .iter()
                .flat_map(|s| increases(s, from, to))
                .map(|(_, v)| v)
                .sum()
        };
        let duration = "cellwatch_inference_request_duration_seconds_bucket";
        let requests = "cellwatch_inference_requests_total";
        let mut out = BTreeMap::new();
        for slo in &config.slos {
            let bad = match &slo.sli {
                Sli::Availability => {
                    let (ok, err) = (
                        sum(pick(requests, "outcome", "ok")),
                        sum(pick(requests, "outcome", "server_error")),
                    );
                    (ok + err > 0.0).then(|| err / (ok + err))
                }
                Sli::Latency(t) => {
                    let (good, all) = (
                        sum(pick(duration, "le", &format!("{t}"))),
                        sum(pick(duration, "le", "+Inf")),
                    );
                    (all > 0.0).then(|| 1.0 - good / all)
                }
                Sli::TokensPerKwh { .. } => {
                    let Budgeting::Timeslices { slice: len, .. } = slo.budgeting else {
                        unreachable!("tokens/kWh is judged in slices")
                    };
                    let mut slices: BTreeMap<i64, SliceData> = BTreeMap::new();
                    let tokens = pick("cellwatch_inference_tokens_total", "kind", "generated");
                    let joules = pick("cellwatch_node_energy_joules_total", "source", "smc");
                    for (is_tokens, series) in [(true, tokens), (false, joules)] {
                        for (t, v) in series.iter().flat_map(|s| increases(s, from, to)) {
                            let start = slice_start(t, len);
                            let e = slices.entry(start).or_insert(SliceData {
                                start,
                                ..Default::default()
                            });
                            if is_tokens {
                                e.tokens += v
                            } else {
                                e.joules += v
                            }
                        }
                    }
                    let verdicts: Vec<Verdict> = slices.values().map(|s| judge(slo, s)).collect();
                    let judged = verdicts.iter().filter(|v| **v != Verdict::Idle).count();
                    let bad = verdicts.iter().filter(|v| **v == Verdict::Bad).count();
                    (judged > 0).then(|| bad as f64 / judged as f64)
                }
                _ => None,
            };
            if let Some(b) = bad {
                out.insert(slo.name.clone(), b);
            }
        }
        out
    }

    fn node_of(s: &Series) -> usize {
        let n = &s.labels["node"];
        n.trim_start_matches('n').parse::<usize>().unwrap() - 1
    }

    fn down(spec: &Spec, node: usize, t: i64) -> bool {
        spec.phases.iter().any(|p| {
            matches!(p.effect, Effect::Down { .. })
                && p.nodes.contains(&node)
                && p.from < t
                && t <= p.to
        })
    }

    /// The first scrape after a phase in which `node` went down to come back reset.
    fn reset_at(spec: &Spec, node: usize) -> Option<i64> {
        spec.phases
            .iter()
            .find(|p| p.effect == (Effect::Down { reset: true }) && p.nodes.contains(&node))
            .map(|p| p.to + STEP)
    }

    /// Times, counters and `up` of one scenario.
    fn check_shape(s: &Scenario) {
        let spec = spec(&s.name);
        let (onset, recovery) = (s.onset.unwrap(), s.recovery.unwrap());
        assert!(
            s.from < onset && onset < recovery && recovery < s.to,
            "{}",
            s.name
        );
        assert!(
            onset - s.from >= 3600,
            "{}: at least 1 h of clean history",
            s.name
        );
        for p in &spec.phases {
            assert_eq!((p.from - s.from) % STEP, 0, "{}: phases on scrapes", s.name);
            assert_eq!((p.to - s.from) % STEP, 0, "{}: phases on scrapes", s.name);
        }
        let scrapes = ((s.to - s.from) / STEP) as usize;
        // 2 histograms of 17 buckets, 2 outcomes, 2 token kinds, energy, up; per node.
        assert_eq!(s.history.len(), NODES * 40, "{}", s.name);
        for series in &s.history {
            let node = node_of(series);
            assert_eq!(series.labels["cell"], CELL);
            assert_eq!(series.labels["instance"], format!("n{}:9817", node + 1));
            assert_eq!(series.labels["job"], "cellwatch");
            let is_up = series.labels["__name__"] == "up";
            let answering: Vec<i64> = (0..scrapes as i64)
                .map(|k| s.from + k * STEP)
                .filter(|t| is_up || !down(&spec, node, *t))
                .collect();
            let times: Vec<i64> = series.samples.iter().map(|(t, _)| t / 1000).collect();
            assert_eq!(times, answering, "{}: {:?}", s.name, series.labels);
            if is_up {
                for (t, v) in &series.samples {
                    let want = if down(&spec, node, t / 1000) {
                        0.0
                    } else {
                        1.0
                    };
                    assert_eq!(*v, want, "{}: up of n{} at {t}", s.name, node + 1);
                }
                continue;
            }
            for w in series.samples.windows(2) {
                let reset = reset_at(&spec, node) == Some(w[1].0 / 1000);
                assert!(
                    w[1].1 >= w[0].1 || reset,
                    "{}: {:?} fell at {} from {} to {}",
                    s.name,
                    series.labels,
                    w[1].0,
                    w[0].1,
                    w[1].1
                );
                if reset {
                    assert!(
                        w[1].1 < w[0].1 || w[0].1 == 0.0,
                        "{}: the reset shows",
                        s.name
                    );
                }
            }
        }
    }

    #[test]
    fn every_scenario_has_its_shape_and_its_bad_ratio() {
        let config = config();
        let slos: Vec<&str> = config.slos.iter().map(|s| s.name.as_str()).collect();
        for (name, line) in SCENARIOS {
            let s = scenario(name).unwrap();
            assert_eq!(s.name, *name);
            assert!(s.description.starts_with(line), "{name}");
            check_shape(&s);
            let (onset, recovery) = (s.onset.unwrap(), s.recovery.unwrap());
            let during = bad_ratios(&config, &s.history, onset, recovery);
            for (slo, want) in &s.bad {
                assert!(
                    slos.contains(&slo.as_str()),
                    "{name}: no SLO {slo} in cell.yaml"
                );
                let got = during.get(slo).copied().unwrap_or(f64::NAN);
                assert!(
                    (got - want).abs() <= 0.01 * want,
                    "{name}: {slo} bad {got}, expected {want} within 1 %"
                );
            }
            for (slo, got) in &during {
                if !s.bad.iter().any(|(b, _)| b == slo) {
                    assert_eq!(*got, 0.0, "{name}: {slo} is bad but not in `bad`");
                }
            }
            // The engine reads the same from the series (labels, buckets, gaps), over the first
            // half hour of the incident.
            let early = onset + 1800.min(recovery - onset);
            let (ours, engine) = (
                bad_ratios(&config, &s.history, onset, early),
                engine_bad_ratios(&config, &s.history, onset, early),
            );
            assert_eq!(
                ours.keys().collect::<Vec<_>>(),
                engine.keys().collect::<Vec<_>>(),
                "{name}"
            );
            for (slo, v) in &ours {
                assert!(
                    (v - engine[slo]).abs() < 1e-9,
                    "{name}: {slo} {v} vs {}",
                    engine[slo]
                );
            }
            // Clean before: the last 6 hours (or all) before the onset.
            let before = bad_ratios(&config, &s.history, (onset - 6 * 3600).max(s.from), onset);
            assert!(before.values().all(|b| *b == 0.0), "{name}: {before:?}");
            assert!(
                before.len() >= 2,
                "{name}: traffic before the onset: {before:?}"
            );
        }
    }

    #[test]
    fn scenarios_are_deterministic_and_differ_by_name() {
        let a = scenario("flapping").unwrap();
        assert_eq!(a, scenario("flapping").unwrap());
        let b = scenario("full-outage").unwrap();
        let ok = |s: &Scenario| -> Vec<f64> {
            let ok = s.history.iter().find(|x| {
                x.labels["__name__"] == "cellwatch_inference_requests_total"
                    && x.labels["outcome"] == "ok"
            });
            ok.unwrap().samples[..10].iter().map(|(_, v)| *v).collect()
        };
        assert_ne!(ok(&a), ok(&b), "another name, other counters");
        for (name, _) in SCENARIOS {
            let (x, y) = (scenario(name).unwrap(), scenario(name).unwrap());
            assert!(x == y, "{name} is not deterministic");
        }
        assert!(scenario("no-such-scenario").is_none());
    }

    #[test]
    fn histories_stay_small() {
        let bytes = |s: &Scenario| -> usize {
            s.history
                .iter()
                .map(|x| x.samples.len() * 16)
                .sum::<usize>()
        };
        let noise = scenario("benign-noise").unwrap();
        assert!(noise.to - noise.from >= 2 * 86_400);
        assert!(bytes(&noise) < 40 << 20, "{} bytes", bytes(&noise));
        let longest = scenario("slow-burn").unwrap();
        assert!(bytes(&longest) < 70 << 20, "{} bytes", bytes(&longest));
    }

    #[test]
    fn baseline_is_what_the_docs_say() {
        let s = scenario("idle").unwrap();
        // The first hour: 4 nodes at 2 requests/s, 100 tokens each, 1 kW.
        let sum = |name: &str, extra: Option<(&str, &str)>| -> f64 {
            s.history
                .iter()
                .filter(|x| x.labels["__name__"] == name)
                .filter(|x| {
                    extra.is_none_or(|(k, v)| x.labels.get(k).map(String::as_str) == Some(v))
                })
                .map(|x| {
                    let at = |t: i64| x.samples.iter().find(|(u, _)| *u == t * 1000).unwrap().1;
                    at(s.from + 3600) - at(s.from)
                })
                .sum()
        };
        let requests = sum("cellwatch_inference_requests_total", None) / 3600.0;
        let tokens = sum(
            "cellwatch_inference_tokens_total",
            Some(("kind", "generated")),
        ) / 3600.0;
        let watts = sum("cellwatch_node_energy_joules_total", None) / 3600.0;
        assert!((requests - 8.0).abs() < 0.1, "{requests} requests/s");
        assert!((tokens - 800.0).abs() < 10.0, "{tokens} tokens/s");
        assert!((watts - 1000.0).abs() < 10.0, "{watts} W");
        let per_kwh = tokens / watts * 3.6e6;
        assert!((per_kwh - 2.88e6).abs() < 0.05e6, "{per_kwh} tokens/kWh");
    }

    #[test]
    fn the_maintenance_window_covers_the_maintenance_outage_only() {
        let config = config();
        let window = &config.maintenance[0];
        for (name, _) in SCENARIOS {
            let spec = spec(name);
            let s = scenario(name).unwrap();
            let (onset, recovery) = (s.onset.unwrap(), s.recovery.unwrap());
            if *name == "maintenance" {
                assert!(
                    (onset + STEP..=recovery)
                        .step_by(15)
                        .all(|t| window.active(CELL, t))
                );
            } else {
                assert!(
                    !(spec.from..spec.to)
                        .step_by(60)
                        .any(|t| window.active(CELL, t)),
                    "{name} reaches the maintenance window"
                );
            }
        }
    }

    #[test]
    fn a_history_round_trips_through_openmetrics() {
        let s = scenario("one-node-down").unwrap();
        let onset = s.onset.unwrap();
        let mut part = window(&s.history, onset - 60, onset + 120);
        let text = crate::backtest::openmetrics::write(&part);
        let mut back = crate::backtest::openmetrics::parse(&text, "one-node-down.om").unwrap();
        part.sort_by(|a, b| a.labels.cmp(&b.labels));
        back.sort_by(|a, b| a.labels.cmp(&b.labels));
        // n3's series other than `up` have no sample in the range after its first scrape down.
        part.retain(|x| !x.samples.is_empty());
        assert_eq!(back, part);
    }
}
