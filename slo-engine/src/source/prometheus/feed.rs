//! The `prometheus` source's pure part: selectors, matrix parsing, feeds of readings and ratio
//! points.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use crate::source::scrape::{Key, NodeGap, Reading, Tracker};

/// The stored series of the families the engine reads ([`FAMILIES`]): a histogram's
/// `_bucket` series, a counter itself.
///
/// [`FAMILIES`]: crate::source::scrape::FAMILIES
pub fn series() -> Vec<String> {
    crate::source::scrape::FAMILIES
        .iter()
        .map(|f| match f.kind {
            cellwatch_metrics::Kind::Histogram => format!("{}_bucket", f.name),
            _ => f.name.to_string(),
        })
        .collect()
}

/// Target labels that name where a series came from, not what it counts.
pub(super) const TARGET_LABELS: [&str; 4] = ["cell", "node", "instance", "job"];

/// The range selector for the raw samples of `cells` over the `range_secs` before the query
/// time.
pub fn selector(cells: &[&str], range_secs: i64) -> String {
    format!(
        "{{__name__=~\"{}\",cell=~\"{}\"}}[{}s]",
        series().join("|"),
        crate::util::promql::any_of(cells),
        range_secs.max(1)
    )
}

/// The `up` samples of `cells` over the last five minutes: a cell whose every target is down
/// over them is down.
pub fn up_query(cells: &[&str]) -> String {
    format!("up{{cell=~\"{}\"}}[5m]", crate::util::promql::any_of(cells))
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
pub(super) struct Response {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: Vec<RawSeries>,
}

#[derive(Deserialize)]
pub(super) struct RawSeries {
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
    /// The gaps before readings later than `after`, fed since the last [`Feed::take_gaps`].
    gaps: Vec<NodeGap>,
}

/// The gap that makes a reading a baseline while a node's scrape interval is not known yet
/// (three 60-second scrapes), ms.
pub(super) const UNKNOWN_GAP_MS: i64 = 180_000;

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
    /// one is skipped; a reading at or before `after` only moves the baseline. After a gap
    /// longer than three scrape intervals (the node's shortest spacing, at least 10 s; 3
    /// minutes while it is unknown) the reading still counts its whole increase, in its own
    /// slice, and the gap is kept for [`Feed::take_gaps`]; a reading more than an hour
    /// ([`CATCH_UP_LIMIT`](crate::source::scrape::CATCH_UP_LIMIT)) after the node's previous
    /// one is only a baseline. The same rules as the `scrape` source
    /// ([`step`](crate::source::scrape::step)).
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
                let step = self
                    .tracker
                    .step(&name, t.div_euclid(1000), reading, max_gap);
                if let Some(gap) = step.gap
                    && t > after
                {
                    self.gaps.push(NodeGap {
                        cell: node.0.clone(),
                        node: node.1.clone(),
                        at: t.div_euclid(1000),
                        gap,
                    });
                }
                if let Some(inc) = step.increases
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

    /// The gaps before the readings fed since the last call whose increases were returned
    /// (or, past the catch-up limit, not counted).
    pub fn take_gaps(&mut self) -> Vec<NodeGap> {
        std::mem::take(&mut self.gaps)
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
