//! The `prometheus` source's pure part. The engine reads the raw samples of the exporters'
//! counters through the HTTP API (an instant query of a range selector, which Prometheus,
//! Thanos, Mimir and VictoriaMetrics all answer with the stored samples), groups them into one
//! reading per node and scrape, and feeds those readings, in time order, through the same
//! [`Tracker`] as the `scrape` source. Increases are therefore exact, with the same reset,
//! new-series and gap rules, and both sources fill the same slices.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::scrape::{Key, Reading, Tracker};

/// The series the SLOs read: histogram buckets and counters of the inference and energy
/// families (the same ones [`crate::scrape::read`] keeps).
pub const SERIES: [&str; 5] = [
    "cellwatch_inference_request_duration_seconds_bucket",
    "cellwatch_inference_time_to_first_token_seconds_bucket",
    "cellwatch_inference_requests_total",
    "cellwatch_inference_tokens_total",
    "cellwatch_node_energy_joules_total",
];

/// Target labels that name where a series came from, not what it counts.
const TARGET_LABELS: [&str; 4] = ["cell", "node", "instance", "job"];

/// The range selector for the raw samples of `cells` over the `range_secs` before the query
/// time.
pub fn selector(cells: &[&str], range_secs: i64) -> String {
    format!(
        "{{__name__=~\"{}\",cell=~\"{}\"}}[{}s]",
        SERIES.join("|"),
        cells
            .iter()
            .map(|c| c.replace('.', "\\\\."))
            .collect::<Vec<_>>()
            .join("|"),
        range_secs.max(1)
    )
}

/// One series of a matrix result.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Every label, `__name__` included.
    pub labels: BTreeMap<String, String>,
    /// (timestamp in milliseconds, value), oldest first.
    pub samples: Vec<(i64, f64)>,
}

#[derive(Deserialize)]
struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<RawSeries>,
}

#[derive(Deserialize)]
struct RawSeries {
    metric: BTreeMap<String, String>,
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Parses a `/api/v1/query` or `/api/v1/query_range` answer whose result is a matrix.
pub fn parse_matrix(body: &str) -> Result<Vec<Series>, String> {
    let r: Response = serde_json::from_str(body).map_err(|e| {
        let head: String = body.chars().take(120).collect();
        format!("not a Prometheus API answer ({e}): {head:?}")
    })?;
    if r.status != "success" {
        return Err(format!(
            "{}: {}",
            r.error_type.unwrap_or_else(|| "error".into()),
            r.error.unwrap_or_default()
        ));
    }
    let data = r.data.ok_or("a successful answer without data")?;
    if data.result_type != "matrix" {
        return Err(format!(
            "expected a matrix result, got {:?}",
            data.result_type
        ));
    }
    data.result
        .into_iter()
        .map(|s| {
            let samples = s
                .values
                .iter()
                .map(|(t, v)| {
                    let v: f64 = v
                        .parse()
                        .map_err(|_| format!("sample value {v:?} is not a number"))?;
                    Ok(((t * 1000.0).round() as i64, v))
                })
                .collect::<Result<Vec<_>, String>>()?;
            Ok(Series {
                labels: s.metric,
                samples,
            })
        })
        .collect()
}

/// One scrape target of a node, as the target labels name it: (cell, node, `job/instance`). A
/// series without a `node` label is named by its `instance`. A node scraped by several targets
/// (the exporter, an adapter on another port) has one reading per target and scrape, each
/// complete, so each is followed on its own.
pub type NodeKey = (String, String, String);

/// Groups the samples into one reading per target and timestamp (a scrape stores every sample
/// of a page at the same time), oldest first. Series without a `cell` label are skipped.
pub fn readings(series: &[Series]) -> BTreeMap<NodeKey, BTreeMap<i64, Reading>> {
    let mut out: BTreeMap<NodeKey, BTreeMap<i64, Reading>> = BTreeMap::new();
    for s in series {
        let (Some(cell), Some(node), Some(name)) = (
            s.labels.get("cell"),
            s.labels.get("node").or_else(|| s.labels.get("instance")),
            s.labels.get("__name__"),
        ) else {
            continue;
        };
        let labels: Vec<(String, String)> = s
            .labels
            .iter()
            .filter(|(k, _)| *k != "__name__" && !TARGET_LABELS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let key: Key = (name.clone(), labels);
        let target = format!(
            "{}/{}",
            s.labels.get("job").map_or("", String::as_str),
            s.labels.get("instance").map_or("", String::as_str)
        );
        let by_time = out.entry((cell.clone(), node.clone(), target)).or_default();
        for (t, v) in &s.samples {
            if v.is_finite() {
                by_time.entry(*t).or_default().insert(key.clone(), *v);
            }
        }
    }
    out
}

/// The cells whose every target's latest `up` sample is 0 (from a range query of `up`).
pub fn down_cells(series: &[Series]) -> std::collections::BTreeSet<String> {
    let mut any_up: BTreeMap<String, bool> = BTreeMap::new();
    for s in series {
        let (Some(cell), Some((_, v))) = (s.labels.get("cell"), s.samples.last()) else {
            continue;
        };
        *any_up.entry(cell.clone()).or_insert(false) |= *v > 0.0;
    }
    any_up
        .into_iter()
        .filter(|(_, up)| !up)
        .map(|(c, _)| c)
        .collect()
}

/// Follows every node's readings across queries: feeds each reading once, in time order, to a
/// [`Tracker`], and returns the increases of readings later than `after` (ms).
#[derive(Debug, Default)]
pub struct Feed {
    tracker: Tracker,
    /// Per node: the last fed timestamp (ms) and the shortest spacing seen (ms).
    fed: HashMap<NodeKey, (i64, i64)>,
}

/// The gap that makes a reading a baseline while a node's scrape interval is not known yet
/// (three 60-second scrapes), ms.
const UNKNOWN_GAP_MS: i64 = 180_000;

/// One node's increases at one reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Increase {
    /// Cell.
    pub cell: String,
    /// Node.
    pub node: String,
    /// Reading time, Unix seconds.
    pub at: i64,
    /// Increases since the node's previous reading.
    pub inc: Reading,
}

impl Feed {
    /// Feeds `readings` (all at or before `upto` ms). A reading at or before a node's last fed
    /// one is skipped; a reading at or before `after` only moves the baseline. A gap longer
    /// than three scrape intervals (the node's shortest spacing, at least 10 s; 3 minutes
    /// while it is unknown) makes the next reading a baseline, as the `scrape` source does for
    /// a node that was down.
    pub fn feed(
        &mut self,
        readings: BTreeMap<NodeKey, BTreeMap<i64, Reading>>,
        after: i64,
        upto: i64,
    ) -> Vec<Increase> {
        let mut out = Vec::new();
        for (node, by_time) in readings {
            for (t, reading) in by_time {
                if t > upto {
                    break;
                }
                let (last, spacing) = self.fed.get(&node).copied().unwrap_or((i64::MIN, 0));
                if t <= last {
                    continue;
                }
                let max_gap_ms = if spacing == 0 {
                    UNKNOWN_GAP_MS
                } else {
                    (spacing * 3).max(10_000)
                };
                // A gap is not a scrape interval: only spacings within the allowed gap count.
                let spacing = match t.checked_sub(last) {
                    Some(d)
                        if last != i64::MIN && d <= max_gap_ms && (spacing == 0 || d < spacing) =>
                    {
                        d
                    }
                    _ => spacing,
                };
                self.fed.insert(node.clone(), (t, spacing));
                let name = format!("{}/{}/{}", node.0, node.1, node.2);
                // The tracker compares whole seconds: a gap of exactly the allowed length
                // stays an increase.
                let max_gap = max_gap_ms.div_euclid(1000);
                let inc = self
                    .tracker
                    .increases(&name, t.div_euclid(1000), reading, max_gap);
                if let Some(inc) = inc
                    && t > after
                {
                    out.push(Increase {
                        cell: node.0.clone(),
                        node: node.1.clone(),
                        at: t.div_euclid(1000),
                        inc,
                    });
                }
            }
        }
        out
    }
}

/// Follows the results of PromQL ratio queries (see [`crate::config::RatioQueries`]) across
/// queries: per series, the events each point adds.
#[derive(Debug, Default)]
pub struct RatioFeed {
    last: HashMap<(String, BTreeMap<String, String>), (i64, f64)>,
    /// Per query: the end of the first range it was fed for.
    origin: HashMap<String, i64>,
}

/// Events one point of a ratio query adds.
#[derive(Debug, Clone, PartialEq)]
pub struct Events {
    /// The series' `cell` label, if it has one.
    pub cell: Option<String>,
    /// The point's time (ms): the events happened in the step before it.
    pub at: i64,
    /// How many.
    pub events: f64,
}

impl RatioFeed {
    /// Feeds the points of one query's result over a range ending at `to` (ms; `query` names
    /// it: the SLO and which query) and returns the events of points later than `after` (ms).
    /// Counters: a point adds its increase over the series' previous point (a drop is a reset:
    /// the new value). A series first seen after the query's first range (after a start or
    /// restart) counts in full: a model's first requests. Every series of that first range, and
    /// one back after more than 5 minutes, is a baseline: never counted twice. Not counters:
    /// every point adds its value.
    pub fn feed(
        &mut self,
        query: &str,
        series: &[Series],
        counter: bool,
        to: i64,
        after: i64,
    ) -> Vec<Events> {
        let origin = *self.origin.entry(query.to_string()).or_insert(to);
        let mut out = Vec::new();
        for s in series {
            let key = (query.to_string(), s.labels.clone());
            let cell = s.labels.get("cell").cloned();
            for &(t, v) in &s.samples {
                if !v.is_finite() {
                    continue;
                }
                let prev = self.last.get(&key).copied();
                if prev.is_some_and(|(pt, _)| t <= pt) {
                    continue;
                }
                self.last.insert(key.clone(), (t, v));
                let events = if counter {
                    match prev {
                        Some((pt, pv)) if t - pt <= 300_000 => {
                            if v >= pv {
                                v - pv
                            } else {
                                v
                            }
                        }
                        None if t > origin => v,
                        _ => continue,
                    }
                } else {
                    v
                };
                if t > after {
                    out.push(Events {
                        cell: cell.clone(),
                        at: t,
                        events,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // Down for five minutes between the first two readings, then every 15 s.
        let body = answer(&[(
            n,
            "n1",
            "ok",
            &[(0.0, 1.0), (300.0, 40.0), (315.0, 41.0), (330.0, 43.0)],
        )]);
        let mut feed = Feed::default();
        let incs = feed.feed(readings(&parse_matrix(&body).unwrap()), -1, 400_000);
        let sum: f64 = incs.iter().flat_map(|i| i.inc.values()).sum();
        assert_eq!(sum, 3.0, "the 39 of the outage are not counted");
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
    fn a_gap_makes_a_baseline() {
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
        let incs = feed.feed(readings(&parse_matrix(&body).unwrap()), -1, 400_000);
        let sum: f64 = incs.iter().flat_map(|i| i.inc.values()).sum();
        assert_eq!(
            sum,
            1.0 + 1.0 + 2.0,
            "the 47 across the 270 s gap are not counted"
        );
    }
}
