//! The `prometheus` source's pure part. The engine reads the raw samples of the exporters'
//! counters through the HTTP API (an instant query of a range selector, which Prometheus,
//! Thanos, Mimir and VictoriaMetrics all answer with the stored samples), groups them into one
//! reading per node and scrape, and feeds those readings, in time order, through the same
//! [`Tracker`](crate::source::scrape::Tracker) as the `scrape` source. Increases are therefore exact, with the same reset,
//! new-series and gap rules, and both sources fill the same slices.

mod api;
mod feed;

pub use api::*;
pub use feed::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// (name, node, outcome, samples).
    type TestSeries<'a> = (&'a str, &'a str, &'a str, &'a [(f64, f64)]);

    fn answer(series: &[TestSeries<'_>]) -> String {
        let result: Vec<serde_json::Value> = series
            .iter()
            .map(|(name, node, outcome, samples)| {
                serde_json::json!({
                    "metric": {"__name__": name, "cell": "a", "node": node, "instance": format!("{node}:9817"),
                               "job": "cellwatch", "outcome": outcome, "model": "m"},
                    "values": samples.iter().map(|(t, v)| serde_json::json!([t, v.to_string()])).collect::<Vec<_>>(),
                })
            })
            .collect();
        serde_json::json!({"status": "success", "data": {"resultType": "matrix", "result": result}})
            .to_string()
    }

    #[test]
    fn selector_names_the_series_and_cells() {
        let s = selector(&["studio-a", "b.c"], 3600);
        assert!(s.starts_with("{__name__=~\"cellwatch_inference_request_duration_seconds_bucket|"));
        assert!(s.ends_with(",cell=~\"studio-a|b\\\\.c\"}[3600s]"), "{s}");
    }

    #[test]
    fn errors_and_other_results_are_refused() {
        assert!(
            parse_matrix(r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#)
                .unwrap_err()
                .contains("bad_data: parse error")
        );
        assert!(
            parse_matrix(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#)
                .unwrap_err()
                .contains("matrix")
        );
        assert!(
            parse_matrix("<html>")
                .unwrap_err()
                .contains("not a Prometheus")
        );
    }

    #[test]
    fn readings_become_exact_increases() {
        let n = "cellwatch_inference_requests_total";
        let body = answer(&[
            (
                n,
                "n1",
                "ok",
                &[(100.0, 5.0), (115.0, 8.0), (130.0, 2.0), (145.0, 4.0)],
            ),
            (
                n,
                "n1",
                "server_error",
                &[(115.0, 1.0), (130.0, 0.0), (145.0, 1.0)],
            ),
            (n, "n2", "ok", &[(101.5, 0.0), (116.5, 3.0)]),
        ]);
        let series = parse_matrix(&body).unwrap();
        let r = readings(&series);
        assert_eq!(r.len(), 2);
        let mut feed = Feed::default();
        // Everything up to 115 s was recorded before: only baselines move.
        let incs = feed.feed(r.clone(), 115_000, 150_000);
        let total = |incs: &[Increase], outcome: &str| -> f64 {
            incs.iter()
                .flat_map(|i| i.inc.iter())
                .filter(|((_, l), _)| l.contains(&("outcome".into(), outcome.into())))
                .map(|(_, v)| v)
                .sum()
        };
        // n1: 8 → 2 is a reset (2 counted), then +2; n2: +3 at 116.5 s.
        assert_eq!(total(&incs, "ok"), 2.0 + 2.0 + 3.0);
        // The server_error series appeared at 115 s (recorded before), reset at 130 s, then
        // counted one.
        assert_eq!(total(&incs, "server_error"), 1.0);
        assert!(incs.iter().all(|i| i.at > 115));
        // The same readings again add nothing.
        assert!(feed.feed(r, 0, 150_000).is_empty());
    }

    #[test]
    fn a_node_scraped_by_two_targets_at_different_times_counts_once() {
        let n = "cellwatch_inference_requests_total";
        // Series "ok" from one target at 0, 15, 30 s; "server_error" from another (another
        // port) at 5, 20, 35 s.
        let mut body: serde_json::Value = serde_json::from_str(&answer(&[
            (n, "n1", "ok", &[(0.0, 10.0), (15.0, 12.0), (30.0, 15.0)]),
            (
                n,
                "n1",
                "server_error",
                &[(5.0, 100.0), (20.0, 101.0), (35.0, 101.0)],
            ),
        ]))
        .unwrap();
        body["data"]["result"][1]["metric"]["instance"] = "n1:9818".into();
        let body = body.to_string();
        let mut feed = Feed::default();
        let incs = feed.feed(readings(&parse_matrix(&body).unwrap()), -1, 60_000);
        let sum = |outcome: &str| -> f64 {
            incs.iter()
                .flat_map(|i| i.inc.iter())
                .filter(|((_, l), _)| l.contains(&("outcome".into(), outcome.into())))
                .map(|(_, v)| v)
                .sum()
        };
        assert_eq!(sum("ok"), 5.0);
        assert_eq!(
            sum("server_error"),
            1.0,
            "its running total is never counted"
        );
    }

    #[test]
    fn a_gap_before_the_scrape_interval_is_known_is_a_gap() {
        let n = "cellwatch_inference_requests_total";
        // Not scraped for five minutes between the first two readings, then every 15 s.
        let body = answer(&[(
            n,
            "n1",
            "ok",
            &[(0.0, 1.0), (300.0, 40.0), (315.0, 41.0), (330.0, 43.0)],
        )]);
        let mut feed = Feed::default();
        let incs = feed.feed(readings(&parse_matrix(&body).unwrap()), -1, 400_000);
        let sum: f64 = incs.iter().flat_map(|i| i.inc.values()).sum();
        assert_eq!(sum, 42.0, "the 39 of the gap count too");
        assert_eq!(incs[0].at, 300, "in the slice of the reading after the gap");
        let gaps = feed.take_gaps();
        assert_eq!(
            gaps.iter()
                .map(|g| (
                    g.cell.as_str(),
                    g.node.as_str(),
                    g.at,
                    g.gap.seconds,
                    g.gap.counted
                ))
                .collect::<Vec<_>>(),
            [("a", "n1", 300, 300, true)]
        );
        assert!(feed.take_gaps().is_empty(), "taken once");
    }

    #[test]
    fn a_cell_is_down_when_every_target_is() {
        let up = |cell: &str, inst: &str, v: f64| Series {
            labels: BTreeMap::from([
                ("__name__".to_string(), "up".to_string()),
                ("cell".into(), cell.into()),
                ("instance".into(), inst.into()),
            ]),
            samples: vec![(0, 1.0), (15_000, v)],
        };
        let d = down_cells(&[
            up("a", "1", 0.0),
            up("a", "2", 0.0),
            up("b", "1", 0.0),
            up("b", "2", 1.0),
        ]);
        assert_eq!(d.into_iter().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn ratio_points_become_events() {
        let series = |cell: Option<&str>, points: &[(i64, f64)]| Series {
            labels: cell
                .map(|c| BTreeMap::from([("cell".to_string(), c.to_string())]))
                .unwrap_or_default(),
            samples: points.to_vec(),
        };
        let mut f = RatioFeed::default();
        let r = vec![
            series(
                Some("a"),
                &[(0, 10.0), (60_000, 15.0), (120_000, 3.0), (180_000, 4.0)],
            ),
            series(None, &[(60_000, 1.0), (120_000, 2.0)]),
        ];
        // The first range (to 180 s): every series in it starts as a baseline.
        let e = f.feed("s/total", &r, true, 180_000, 60_000);
        assert_eq!(
            e,
            vec![
                Events {
                    cell: Some("a".into()),
                    at: 120_000,
                    events: 3.0
                },
                Events {
                    cell: Some("a".into()),
                    at: 180_000,
                    events: 1.0
                },
                Events {
                    cell: None,
                    at: 120_000,
                    events: 1.0
                },
            ]
        );
        // Fed again: nothing new.
        assert!(f.feed("s/total", &r, true, 180_000, 0).is_empty());
        // A series that appears later counts in full.
        let late = vec![series(Some("b"), &[(240_000, 7.0)])];
        assert_eq!(
            f.feed("s/total", &late, true, 240_000, 180_000)[0].events,
            7.0
        );
        // Not a counter: each value counts.
        let e = RatioFeed::default().feed("g", &r[1..], false, 120_000, 0);
        assert_eq!(e.iter().map(|e| e.events).sum::<f64>(), 3.0);
    }

    #[test]
    fn a_gap_counts_its_whole_increase_unless_longer_than_an_hour() {
        let n = "cellwatch_inference_requests_total";
        let body = answer(&[(
            n,
            "n1",
            "ok",
            &[
                (0.0, 1.0),
                (15.0, 2.0),
                (30.0, 3.0),
                (300.0, 50.0),
                (315.0, 52.0),
            ],
        )]);
        let mut feed = Feed::default();
        let r = readings(&parse_matrix(&body).unwrap());
        // Already recorded up to 30 s: the readings before only move the baseline.
        let incs = feed.feed(r.clone(), 30_000, 400_000);
        let sum: f64 = incs.iter().flat_map(|i| i.inc.values()).sum();
        assert_eq!(sum, 47.0 + 2.0, "the 47 across the 270 s gap count");
        assert_eq!(feed.take_gaps().len(), 1);
        // Recorded up to 300 s: the gap was reported when its reading was recorded.
        let mut feed = Feed::default();
        feed.feed(r, 300_000, 400_000);
        assert!(feed.take_gaps().is_empty());
        // More than an hour between two readings: only a baseline, reported as not counted.
        let body = answer(&[(
            n,
            "n1",
            "ok",
            &[(0.0, 1.0), (15.0, 2.0), (3616.0, 50.0), (3631.0, 52.0)],
        )]);
        let mut feed = Feed::default();
        let incs = feed.feed(readings(&parse_matrix(&body).unwrap()), -1, 4_000_000);
        let sum: f64 = incs.iter().flat_map(|i| i.inc.values()).sum();
        assert_eq!(sum, 1.0 + 2.0);
        let gaps = feed.take_gaps();
        assert_eq!(
            gaps.iter()
                .map(|g| (g.gap.seconds, g.gap.counted))
                .collect::<Vec<_>>(),
            [(3601, false)]
        );
    }
}
