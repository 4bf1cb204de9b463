//! The `scrape` source's pure part: an exporter page becomes raw counter readings; successive
//! readings of a node become increases (a counter that went down was reset, as Prometheus'
//! `increase()` reads it); increases of a cell's nodes become one slice per SLO.

mod exposition;
mod scrape_io;
mod slices;
mod tracker;

pub use exposition::*;
pub use scrape_io::*;
pub use slices::*;
pub use tracker::*;

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::{Budgeting, Period};
    use crate::config::{Sli, Slo};
    use crate::model::SliceData;
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
            min_events: crate::config::MinEvents::Fixed(0),
            sli,
        }
    }

    #[test]
    fn health_series_become_a_node_snapshot() {
        let page = "\
# TYPE cellwatch_link_info gauge
cellwatch_link_info{link=\"en2\",rdma_device=\"rdma_en2\",peer=\"studio-b\",domain=\"d-a2\",peer_domain=\"d-b1\"} 1
cellwatch_link_info{link=\"en3\",rdma_device=\"\",peer=\"\",domain=\"d-a3\",peer_domain=\"\"} 1
# TYPE cellwatch_link_up gauge
cellwatch_link_up{link=\"en2\"} 1
cellwatch_link_up{link=\"en3\"} 0
# TYPE cellwatch_link_speed_bytes_per_second gauge
cellwatch_link_speed_bytes_per_second{link=\"en2\"} 1e+10
# TYPE cellwatch_link_errors_total counter
cellwatch_link_errors_total{link=\"en2\",direction=\"received\"} 3
cellwatch_link_errors_total{link=\"en2\",direction=\"transmitted\"} 4
# TYPE cellwatch_rdma_port_active gauge
cellwatch_rdma_port_active{device=\"rdma_en2\"} 1
# TYPE cellwatch_rdma_enabled gauge
cellwatch_rdma_enabled 1
# TYPE cellwatch_node_power_watts gauge
cellwatch_node_power_watts{source=\"soc\"} 191.5
cellwatch_node_power_watts{source=\"smc\"} 236.4
# TYPE cellwatch_collector_restarts_total counter
cellwatch_collector_restarts_total{collector=\"powermetrics\"} 2
# TYPE cellwatch_inference_upstream_restarts_total counter
cellwatch_inference_upstream_restarts_total{server=\"proxy\"} 1
cellwatch_inference_upstream_restarts_total{server=\"vllm\"} 4
";
        let (_, s) = read_all(&format!("{page}{}", page_text())).unwrap();
        assert_eq!(s.links.len(), 2);
        let en2 = s.link("en2").unwrap();
        assert_eq!(
            (en2.up, en2.speed, en2.errors, en2.peer_domain.as_str()),
            (Some(true), Some(1e10), 7.0, "d-b1")
        );
        assert_eq!(s.link("en3").unwrap().up, Some(false));
        assert_eq!(s.rdma_on(en2), Some(true));
        assert_eq!(s.rdma_on(s.link("en3").unwrap()), Some(false));
        assert_eq!(s.power_watts, Some(236.4), "smc before soc");
        assert_eq!(s.restarts[&("collector", "powermetrics".to_string())], 2.0);
        assert_eq!(s.restarts[&("inference", "vllm".to_string())], 4.0);
        assert_eq!(s.domains(), ["d-a2", "d-a3"]);
        // The latency histogram of page(): 10 under 1 s, 12 in all.
        assert_eq!(s.latency, [(1.0, 10.0), (2.0, 10.0), (f64::INFINITY, 12.0)]);
        let (_, bare) = read_all(&page_text()).unwrap();
        assert_eq!(bare.links.len(), 0);
        assert_eq!(bare.power_watts, None);
    }

    fn page_text() -> String {
        page(10, 12, 100, 1000.0, 11, 1)
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
        // Not read for almost five minutes, no reset: the whole increase counts, in the
        // later reading, and the step says there was a gap.
        let s = t.step("n1", 330, read(&page(9, 9, 30, 90.0, 9, 0)).unwrap(), 60);
        assert_eq!(
            s.gap,
            Some(Gap {
                seconds: 285,
                counted: true
            })
        );
        assert_eq!(
            totals(&s.increases.unwrap()),
            Totals {
                tokens: 27.0,
                joules: 80.0,
                requests: 8.0
            }
        );
        // Within max_gap: no gap.
        let s = t.step("n1", 345, read(&page(9, 9, 30, 90.0, 9, 0)).unwrap(), 60);
        assert_eq!(s.gap, None);
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
        // Longer than max_gap: still the whole increase, with the gap.
        let late = step(Some(&base), 61, &r2, 60);
        assert_eq!(totals(&late.increases.unwrap()).requests, 13.0);
        assert_eq!(
            late.gap,
            Some(Gap {
                seconds: 61,
                counted: true
            })
        );
        assert_eq!(first.gap, None);
    }

    #[test]
    fn a_reset_after_a_gap_is_still_a_reset() {
        let mut t = Tracker::default();
        t.increases("n", 0, read(&page(10, 12, 100, 1000.0, 11, 1)).unwrap(), 45);
        // 120 s later every counter is smaller: the exporter restarted in the gap, and only
        // what it counted since counts.
        let s = t.step("n", 120, read(&page(2, 3, 7, 20.0, 3, 0)).unwrap(), 45);
        assert_eq!(
            s.gap,
            Some(Gap {
                seconds: 120,
                counted: true
            })
        );
        let inc = s.increases.unwrap();
        assert_eq!(
            totals(&inc),
            Totals {
                tokens: 7.0,
                joules: 20.0,
                requests: 3.0
            }
        );
        assert_eq!(events(&slo(Sli::Availability), &inc), (3.0, 3.0));
    }

    #[test]
    fn a_histogram_resets_as_a_whole_after_a_gap() {
        let h = |b2: u64, inf: u64| {
            format!(
                "# TYPE cellwatch_inference_request_duration_seconds histogram\n\
                 cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"2\"}} {b2}\n\
                 cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"+Inf\"}} {inf}\n"
            )
        };
        let mut t = Tracker::default();
        t.increases("n", 0, read(&h(50, 100)).unwrap(), 45);
        // +Inf went down over the gap, le=2 did not: the whole histogram reset.
        let s = t.step("n", 120, read(&h(60, 90)).unwrap(), 45);
        assert!(s.gap.is_some_and(|g| g.counted));
        assert_eq!(
            events(&slo(Sli::Latency(2.0)), &s.increases.unwrap()),
            (60.0, 90.0)
        );
        // Without a reset, the same gap counts the difference.
        let s = t.step("n", 240, read(&h(70, 110)).unwrap(), 45);
        assert_eq!(
            events(&slo(Sli::Latency(2.0)), &s.increases.unwrap()),
            (10.0, 20.0)
        );
    }

    #[test]
    fn a_baseline_older_than_the_catch_up_limit_only_moves() {
        let r0 = read(&page(10, 12, 100, 1000.0, 11, 1)).unwrap();
        let r1 = read(&page(15, 20, 150, 1360.0, 18, 2)).unwrap();
        let base = Baseline {
            at: 1000,
            generation: Some(1),
            reading: r0,
        };
        // An hour exactly: counted.
        let s = step(Some(&base), 1000 + CATCH_UP_LIMIT, &r1, 45);
        assert_eq!(totals(&s.increases.unwrap()).requests, 8.0);
        assert!(s.gap.is_some_and(|g| g.counted));
        // A second more: only a baseline, and the gap says it was not counted.
        let s = step(Some(&base), 1001 + CATCH_UP_LIMIT, &r1, 45);
        assert_eq!(s.increases, None);
        assert_eq!(s.from, Some((1000, Some(1))));
        assert_eq!(
            s.gap,
            Some(Gap {
                seconds: CATCH_UP_LIMIT + 1,
                counted: false
            })
        );
        // The tracker too: the reading after it counts from it.
        let mut t = Tracker::default();
        t.increases("n", 0, base.reading.clone(), 45);
        assert_eq!(t.increases("n", 7200, r1.clone(), 45), None);
        let s = t.step(
            "n",
            7215,
            read(&page(16, 21, 160, 1400.0, 19, 2)).unwrap(),
            45,
        );
        assert_eq!((s.gap, totals(&s.increases.unwrap()).requests), (None, 1.0));
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

    /// A node's page of the LLM-serving series: the TPOT histogram (`fast` of `all` streamed
    /// requests under 100 ms, a few under 50 ms; a model whose upstream has other bounds), the
    /// generated tokens and the waiting requests (a gauge).
    fn llm_page(fast: u64, all: u64, tokens: u64, waiting: u64) -> String {
        let h = "cellwatch_inference_time_per_output_token_seconds";
        format!(
            "# TYPE {h} histogram\n\
             {h}_bucket{{model=\"m\",le=\"0.05\"}} {half}\n\
             {h}_bucket{{model=\"m\",le=\"0.1\"}} {fast}\n\
             {h}_bucket{{model=\"m\",le=\"+Inf\"}} {all}\n\
             {h}_sum{{model=\"m\"}} 1\n\
             {h}_count{{model=\"m\"}} {all}\n\
             {h}_bucket{{model=\"tgi\",le=\"0.3\"}} {all}\n\
             {h}_bucket{{model=\"tgi\",le=\"+Inf\"}} {all}\n\
             # TYPE cellwatch_inference_tokens_total counter\n\
             cellwatch_inference_tokens_total{{model=\"m\",kind=\"generated\"}} {tokens}\n\
             # TYPE cellwatch_inference_requests_waiting gauge\n\
             cellwatch_inference_requests_waiting{{model=\"m\"}} {waiting}\n",
            half = fast / 2
        )
    }

    /// Readings of every node of cell `a` at `at` (seconds, from 0 every `step`) through one
    /// tracker into `cell_rows`, summed per SLO and slice start.
    fn replay_cell(
        config: &crate::config::Config,
        step: i64,
        until: i64,
        page_of: impl Fn(&str, i64) -> String,
    ) -> std::collections::BTreeMap<(String, i64), SliceData> {
        let mut t = Tracker::default();
        let mut out: std::collections::BTreeMap<(String, i64), SliceData> = Default::default();
        let nodes: Vec<String> = config.cells[0]
            .nodes
            .iter()
            .map(|n| n.name.clone())
            .collect();
        let by_cell = slos_by_cell(config);
        for at in (0..until).step_by(step as usize) {
            let incs: Vec<Reading> = nodes
                .iter()
                .filter_map(|n| t.increases(n, at, read(&page_of(n, at)).unwrap(), 3 * step))
                .collect();
            for (_, slo, s) in cell_rows(config, &by_cell["a"], "a", at, &incs, None) {
                out.entry((slo, s.start))
                    .or_insert(SliceData {
                        start: s.start,
                        ..Default::default()
                    })
                    .add(&s);
            }
        }
        out
    }

    fn slices_of(
        rows: &std::collections::BTreeMap<(String, i64), SliceData>,
        slo: &str,
    ) -> Vec<SliceData> {
        rows.iter()
            .filter(|((s, _), _)| s == slo)
            .map(|(_, d)| *d)
            .collect()
    }

    const LLM_CONFIG: &str = "\
cells:
  - name: a
    nodes:
      - { name: n1, url: \"http://n1:9817/metrics\" }
      - { name: n2, url: \"http://n2:9817/metrics\" }
slos:
  - { name: tpot, objective: 0.99, period: 1d, sli: { tpot: { threshold: 100ms } } }
  - { name: throughput, objective: 0.99, period: 1d, sli: { throughput: { floor: 20 } } }
";

    #[test]
    fn a_day_of_streamed_requests_gives_the_exact_tpot_budget() {
        let config = crate::config::parse(LLM_CONFIG, std::path::Path::new("c.yaml")).unwrap();
        let tpot = &config.slos[0];
        assert_eq!(tpot.sli, Sli::Tpot(0.1));
        // A day, read every minute: n1 streams 100 requests a minute, 1 of them slower than
        // 100 ms per token; n2 50 a minute, all fast.
        let rows = replay_cell(&config, 60, 86400, |n, at| {
            let k = (at / 60) as u64;
            match n {
                "n1" => llm_page(99 * k, 100 * k, 0, 0),
                _ => llm_page(50 * k, 50 * k, 0, 0),
            }
        });
        let slices = slices_of(&rows, "tpot");
        // The first reading is a baseline: 1,439 minutes counted. The other model's histogram,
        // without a 100 ms bound, counts neither as good nor in total.
        let t = crate::math::tally(tpot, &slices, 0, 86400);
        assert_eq!((t.good, t.total), (1439.0 * 149.0, 1439.0 * 150.0));
        // 1 slow of 150: two thirds of the 1 % budget spent.
        let left = crate::math::budget_remaining(tpot, &slices, 86399).unwrap();
        assert!(
            (left - (1.0 - (1.0 / 150.0) / 0.01)).abs() < 1e-12,
            "{left}"
        );
        // The 1 h window burns at 2/3.
        let w =
            crate::math::window_state(tpot, crate::math::tally(tpot, &slices, 82800, 86400), 3600);
        let crate::math::WindowState::Judged { burn_rate, .. } = w else {
            panic!("{w:?}")
        };
        assert!((burn_rate - 2.0 / 3.0).abs() < 1e-12, "{burn_rate}");
    }

    /// The verdicts (good, bad, idle) of `slo`'s slices that start in `[from, to)`.
    fn verdicts(slo: &crate::config::Slo, slices: &[SliceData], from: i64, to: i64) -> [u32; 3] {
        let mut v = [0; 3];
        for s in slices.iter().filter(|s| s.start >= from && s.start < to) {
            match crate::math::judge(slo, s) {
                crate::model::Verdict::Good => v[0] += 1,
                crate::model::Verdict::Bad => v[1] += 1,
                crate::model::Verdict::Idle => v[2] += 1,
            }
        }
        v
    }

    #[test]
    fn throughput_judges_only_minutes_with_a_backlog() {
        let config = crate::config::parse(LLM_CONFIG, std::path::Path::new("c.yaml")).unwrap();
        let slo = &config.slos[1];
        assert_eq!(slo.sli, Sli::Throughput { floor: 20.0 });
        // Eight hours read every 15 s. Hours 0–2: a backlog on n1 at every reading, none on n2
        // (requests wait in 4 of the minute's 8 readings: exactly half) and fast (300 tokens
        // per node per 15 s: 40 tokens/s); 2–4: the same backlog, slow (100: 13.3 tokens/s);
        // 4–6: slow and lightly loaded, one request waiting on n1 at one reading in four (the
        // reading 30 s into each minute caught its prefill: 1 of 8); 6–8: slow, nobody waiting.
        let phase = |at: i64| at / 7200;
        let rows = replay_cell(&config, 15, 8 * 3600, |n, at| {
            let tokens: u64 = (15..=at)
                .step_by(15)
                .map(|t| if phase(t) == 0 { 300 } else { 100 })
                .sum();
            let waiting = match phase(at) {
                _ if n != "n1" => 0,
                0 | 1 => 3,
                2 => u64::from(at % 60 == 30),
                _ => 0,
            };
            llm_page(0, 0, tokens, waiting)
        });
        let slices = slices_of(&rows, "throughput");
        let v = |from, to| verdicts(slo, &slices, from, to);
        assert_eq!(v(0, 7200), [120, 0, 0], "a backlog, fast: good");
        assert_eq!(v(7200, 14400), [0, 120, 0], "a backlog, slow: bad");
        assert_eq!(v(14400, 21600), [0, 0, 120], "one prefill a minute: idle");
        assert_eq!(v(21600, 28800), [0, 0, 120], "nobody waiting: idle");
        // Each counts the readings with the gauge and, of them, those with requests waiting.
        assert_eq!((slices[200].good, slices[200].total), (4.0, 8.0));
        assert_eq!((slices[300].good, slices[300].total), (1.0, 8.0));
        // The first minute lacks its baseline's 15 s and is still good: 900 tokens per node.
        assert_eq!(slices[0].tokens, 1800.0);
        // 120 bad minutes of 1,440, 1 % allowed (14.4): the budget is overspent 120 / 14.4.
        let left = crate::math::budget_remaining(slo, &slices, 28800).unwrap();
        assert!((left - (1.0 - 120.0 / 14.4)).abs() < 1e-9, "{left}");
        // The lightly loaded hours are idle: no data for their burn rate, nothing to alert on.
        for from in [14400, 18000, 25200] {
            let t = crate::math::tally(slo, &slices, from, from + 3600);
            assert_eq!(
                crate::math::window_state(slo, t, 3600),
                crate::math::WindowState::NoData,
                "{from}"
            );
        }
    }

    #[test]
    fn throughput_counts_only_readings_with_the_waiting_gauge() {
        let config = crate::config::parse(LLM_CONFIG, std::path::Path::new("c.yaml")).unwrap();
        let slo = &config.slos[1];
        // An EXO ring: only n1 (the entry node) serves the API and has inference series; n2
        // only computes. An hour read every 15 s, slow (100 tokens per 15 s). The first half
        // hour, requests wait on n1 at 2 of its 4 readings a minute: half of the readings with
        // the gauge, judged (bad); were n2's readings counted, 2 of 8 would not be. The second
        // half hour, at 1 of 4: idle.
        let rows = replay_cell(&config, 15, 3600, |n, at| {
            if n == "n2" {
                return "# TYPE cellwatch_node_power_watts gauge\n\
                        cellwatch_node_power_watts{source=\"smc\"} 100\n"
                    .to_string();
            }
            let busy = if at < 1800 { [15, 30] } else { [15, 15] };
            let waiting = u64::from(busy.contains(&(at % 60)));
            llm_page(0, 0, (at / 15) as u64 * 100, waiting)
        });
        let slices = slices_of(&rows, "throughput");
        assert_eq!(verdicts(slo, &slices, 0, 1800), [0, 30, 0]);
        assert_eq!(verdicts(slo, &slices, 1800, 3600), [0, 0, 30]);
        // The first minute has 3 readings (its first is the baseline), 2 with requests waiting.
        assert_eq!((slices[0].good, slices[0].total), (2.0, 3.0));
        assert_eq!((slices[1].good, slices[1].total), (2.0, 4.0));
        assert_eq!((slices[40].good, slices[40].total), (1.0, 4.0));
    }

    #[test]
    fn a_waiting_gauge_is_read_as_it_is() {
        let mut t = Tracker::default();
        t.increases("n", 0, read(&llm_page(0, 0, 10, 5)).unwrap(), 60);
        let inc = t
            .increases("n", 15, read(&llm_page(0, 0, 30, 2)).unwrap(), 60)
            .unwrap();
        let key = |f: &str| {
            inc.iter()
                .find(|((n, _), _)| n == f)
                .map(|(_, v)| *v)
                .unwrap()
        };
        // The gauge fell 5 → 2: its reading, neither a difference nor a reset; the counter's
        // increase.
        assert_eq!(key("cellwatch_inference_requests_waiting"), 2.0);
        assert_eq!(key("cellwatch_inference_tokens_total"), 20.0);
        assert!(is_gauge("cellwatch_inference_requests_waiting"));
        assert!(!is_gauge("cellwatch_inference_tokens_total"));
        // Every gauge the engine reads is one of the GAUGES, and only those.
        for f in FAMILIES {
            assert_eq!(
                is_gauge(f.name),
                f.kind == cellwatch_metrics::Kind::Gauge,
                "{}",
                f.name
            );
        }
    }

    #[test]
    fn each_cell_gets_the_slos_that_cover_it_in_file_order() {
        let yaml = "cells:\n\
            \x20 - { name: a, nodes: [ { name: n, url: \"http://a:9817/metrics\" } ] }\n\
            \x20 - { name: b, nodes: [ { name: n, url: \"http://b:9817/metrics\" } ] }\n\
            \x20 - { name: c, nodes: [ { name: n, url: \"http://c:9817/metrics\" } ] }\n\
            slos:\n\
            \x20 - { name: everywhere, objective: 0.99, period: 30d, sli: { availability: {} } }\n\
            \x20 - { name: only-b, objective: 0.99, period: 30d, cells: [ b ], sli: { availability: {} } }\n\
            \x20 - { name: b-and-c, objective: 0.99, period: 30d, cells: [ c, b ], sli: { availability: {} } }\n";
        let config = crate::config::parse(yaml, std::path::Path::new("c.yaml")).unwrap();
        let by_cell = slos_by_cell(&config);
        let names =
            |cell: &str| -> Vec<&str> { by_cell[cell].iter().map(|s| s.name.as_str()).collect() };
        assert_eq!(names("a"), ["everywhere"]);
        assert_eq!(names("b"), ["everywhere", "only-b", "b-and-c"]);
        assert_eq!(names("c"), ["everywhere", "b-and-c"]);
        assert_eq!(by_cell.len(), 3);
    }
}
