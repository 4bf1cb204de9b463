//! The replay: a history's readings fed tick by tick, in virtual time, to the ledger, the
//! evaluation and the alert state machine the engine runs; what they did, recorded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use super::result::{Backtest, Episode, Incident, Point, Sent, SloSeries, Threshold};
use super::skip::Skip;
use crate::alerting::{self, Notification, Routes, State};
use crate::config::{Config, Source};
use crate::eval::{Report, evaluate};
use crate::ledger::{Ledger, LedgerError};
use crate::model::{Labels, SliceData};
use crate::source::prometheus::{Feed, NodeKey, Series, counter_rows, readings};
use crate::source::scrape::Reading;

/// A replay failed.
#[derive(Debug, thiserror::Error)]
pub enum BacktestError {
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The range is empty or reversed.
    #[error("the range to replay is empty: --from {from} is not before --to {to}")]
    Range {
        /// Start, Unix seconds.
        from: i64,
        /// End, Unix seconds.
        to: i64,
    },
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// The history could not be read.
    #[error("reading the history: {0}")]
    History(String),
    /// The history has no sample of any configured cell in the range.
    #[error("{history} holds no sample of the configured cells ({cells}) in the range")]
    Empty {
        /// Where the history came from.
        history: String,
        /// The configured cells.
        cells: String,
    },
}

/// What to replay: a history (every sample, `up` included) and where it came from.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// The series.
    pub series: Vec<Series>,
    /// Where they came from (for the report).
    pub origin: String,
    /// When a scenario's incident began and ended.
    pub onset: Option<i64>,
    /// See `onset`.
    pub recovery: Option<i64>,
    /// The range to evaluate when none is asked for (a scenario's; None: the whole history).
    pub range: Option<(i64, i64)>,
}

/// One replay's settings.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// First evaluation, Unix seconds.
    pub from: i64,
    /// End (exclusive).
    pub to: i64,
    /// Evaluate at every interval, as the engine does, instead of skipping the quiet ones
    /// (see `backtest::skip`).
    pub exact: bool,
}

/// The seconds between evaluations: the source's interval, as the engine ticks.
pub fn interval(config: &Config) -> i64 {
    match &config.source {
        Source::Scrape { interval, .. } | Source::Prometheus { interval, .. } => {
            (interval.as_secs() as i64).max(1)
        }
    }
}

/// Replays `history` over `range` through `config`, recording into `ledger` (an empty one:
/// the replay writes as the leader would): every `interval`, the readings since the last
/// evaluation are recorded, the cells evaluated and the alerts stepped and dispatched. The
/// history before `range.from` is recorded before the first evaluation, so windows start as
/// full as the history allows. `config_name` and `ledger_kind` name them in the result.
pub async fn replay(
    config: &Config,
    config_name: &str,
    history: &History,
    ledger: &Ledger,
    ledger_kind: &str,
    range: Range,
) -> Result<Backtest, BacktestError> {
    if range.from >= range.to {
        return Err(BacktestError::Range {
            from: range.from,
            to: range.to,
        });
    }
    let started = Instant::now();
    let step = interval(config);
    let mut tape = Tape::new(config, history, step);
    if tape.is_empty() {
        return Err(BacktestError::Empty {
            history: history.origin.clone(),
            cells: config
                .cells
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    let mut out = Backtest {
        config: config_name.to_string(),
        history: history.origin.clone(),
        ledger: ledger_kind.to_string(),
        from: range.from,
        to: range.to,
        interval: step,
        onset: history.onset,
        recovery: history.recovery,
        ..Default::default()
    };
    let mut run = Run::new(config, range, step);
    let mut skip = Skip::default();
    let mut unrecorded: BTreeMap<(String, String, i64), SliceData> = BTreeMap::new();
    let mut t = range.from;
    while t < range.to {
        let rows = tape.rows_upto(config, t);
        skip.saw(config, &rows, t);
        for (cell, slo, s) in rows {
            unrecorded
                .entry((cell, slo, s.start))
                .or_insert(SliceData {
                    start: s.start,
                    ..Default::default()
                })
                .add(&s);
        }
        let down = tape.down_cells(config, t);
        let quiet = run.state.alerts.is_empty() && run.state.groups.is_empty();
        if range.exact
            || t + step >= range.to
            || skip.must_evaluate(quiet, &down, t, run.point_step)
        {
            let rows: Vec<(String, String, SliceData)> = std::mem::take(&mut unrecorded)
                .into_iter()
                .map(|((cell, slo, _), s)| (cell, slo, s))
                .collect();
            ledger.record_many(&rows).await?;
            let report = evaluate(config, ledger, t).await?;
            run.step(config, &report, &down, t, &mut out);
            skip.evaluated(config, &report, &down, t);
            out.evaluations += 1;
        }
        t += step;
    }
    run.finish(&mut out);
    out.replay_seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

/// One counter series of the history: its node, its key in a reading, its samples.
type Counter<'h> = (NodeKey, crate::source::scrape::Key, &'h [(i64, f64)]);

/// The history cut into what each tick reads: every counter series of the configured cells
/// with its node and key (labelled once, as the `prometheus` source labels them) and how far it
/// was read, and the `up` samples of every target. Readings are built tick by tick, so a month
/// of history costs its samples, not a month of readings at once.
struct Tape<'h> {
    /// Per counter series: its node, its key in a reading, its samples.
    counters: Vec<Counter<'h>>,
    /// Per counter series: the first sample not yet read.
    next: Vec<usize>,
    feed: Feed,
    /// Per cell: per target, the `up` samples (ms, value).
    up: BTreeMap<String, Vec<&'h [(i64, f64)]>>,
    /// Per cell: the last reading's time (ms).
    seen: HashMap<String, i64>,
    /// A cell without `up` samples is down when no node was read for this long (ms).
    silence_ms: i64,
}

impl<'h> Tape<'h> {
    fn new(config: &Config, history: &'h History, step: i64) -> Tape<'h> {
        let cells: BTreeSet<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
        let families = crate::source::prometheus::series();
        let mut counters = Vec::new();
        let mut up: BTreeMap<String, Vec<&'h [(i64, f64)]>> = BTreeMap::new();
        for s in &history.series {
            let name = s.labels.get("__name__").map_or("", String::as_str);
            let Some(cell) = s.labels.get("cell").filter(|c| cells.contains(c.as_str())) else {
                continue;
            };
            if name == "up" {
                up.entry(cell.clone()).or_default().push(&s.samples);
                continue;
            }
            if !families.iter().any(|f| f == name) {
                continue;
            }
            // The source's own labelling, applied to one sample of the series.
            let one = Series {
                labels: s.labels.clone(),
                samples: vec![(0, 0.0)],
            };
            let labelled = readings(std::slice::from_ref(&one)).into_iter().next();
            if let Some((node, times)) = labelled
                && let Some(key) = times
                    .into_values()
                    .next()
                    .and_then(|r| r.into_keys().next())
            {
                counters.push((node, key, s.samples.as_slice()));
            }
        }
        Tape {
            next: vec![0; counters.len()],
            counters,
            feed: Feed::default(),
            up,
            seen: HashMap::new(),
            silence_ms: (3 * step).max(30) * 1000,
        }
    }

    fn is_empty(&self) -> bool {
        self.counters.is_empty() && self.up.is_empty()
    }

    /// The rows the readings up to `t` add, through the `prometheus` source's feed: a node's
    /// first reading is its baseline, every later one adds its increase. The first call, at the
    /// range's start, records the whole history before it at once (the windows' warm-up).
    fn rows_upto(
        &mut self,
        config: &Config,
        t: i64,
    ) -> Vec<(String, String, crate::model::SliceData)> {
        let upto = t * 1000;
        let mut batch: BTreeMap<NodeKey, BTreeMap<i64, Reading>> = BTreeMap::new();
        for ((node, key, samples), next) in self.counters.iter().zip(self.next.iter_mut()) {
            while let Some((at, v)) = samples.get(*next) {
                if *at > upto {
                    break;
                }
                *next += 1;
                if !v.is_finite() {
                    continue;
                }
                let seen = self.seen.entry(node.0.clone()).or_insert(*at);
                *seen = (*seen).max(*at);
                batch
                    .entry(node.clone())
                    .or_default()
                    .entry(*at)
                    .or_default()
                    .insert(key.clone(), *v);
            }
        }
        let incs = self.feed.feed(batch, i64::MIN, upto);
        let mut sums = BTreeMap::new();
        counter_rows(config, &incs, &mut sums);
        sums.into_iter()
            .map(|((cell, slo, _), s)| (cell, slo, s))
            .collect()
    }

    /// The cells down at `t`: every target's latest `up` sample in the last 5 minutes is 0 (as
    /// the `prometheus` source asks Prometheus); a cell without `up` samples is down when none
    /// of its nodes was read for three intervals.
    fn down_cells(&self, config: &Config, t: i64) -> BTreeSet<String> {
        let now = t * 1000;
        let mut down = BTreeSet::new();
        for cell in &config.cells {
            let latest: Vec<f64> = self
                .up
                .get(&cell.name)
                .into_iter()
                .flatten()
                .filter_map(|samples: &&[(i64, f64)]| {
                    let i = samples.partition_point(|(at, _)| *at <= now);
                    i.checked_sub(1)
                        .map(|i| samples[i])
                        .filter(|(at, _)| *at > now - 300_000)
                        .map(|(_, v)| v)
                })
                .collect();
            let is_down = if latest.is_empty() {
                self.seen
                    .get(&cell.name)
                    .is_none_or(|at| now - at > self.silence_ms)
            } else {
                latest.iter().all(|v| *v <= 0.0)
            };
            if is_down {
                down.insert(cell.name.clone());
            }
        }
        down
    }
}

/// The alert state and what the replay has seen of it.
struct Run {
    state: State,
    routes: Routes,
    /// Open episodes by fingerprint: index in the result's alerts.
    open: HashMap<String, usize>,
    /// When each cell and SLO last got a point.
    last_point: HashMap<(String, String), i64>,
    /// Seconds between points of the series.
    point_step: i64,
}

impl Run {
    fn new(config: &Config, range: Range, step: i64) -> Run {
        Run {
            state: State::default(),
            routes: Routes::new(&config.alerting.routes),
            open: HashMap::new(),
            last_point: HashMap::new(),
            point_step: ((range.to - range.from) / 720).max(step),
        }
    }

    /// One evaluation's alerts, notifications and points.
    fn step(
        &mut self,
        config: &Config,
        report: &Report,
        down: &BTreeSet<String>,
        t: i64,
        out: &mut Backtest,
    ) {
        let timing = &config.alerting.timing;
        let wanted = alerting::wanted(config, report, down, timing);
        self.state.step_alerts(&wanted, t);
        let changed = self.episodes(t, out);
        let muted = |l: &Labels| alerting::muted(&[], &config.maintenance, l, t);
        let notes = self.state.dispatch(&self.routes, timing, &muted, t);
        for n in &notes {
            self.sent(n, out);
        }
        self.points(config, report, t, changed || !notes.is_empty(), out);
    }

    /// Opens an episode for each alert that fired at `t` and closes those that resolved.
    /// Returns whether any did.
    fn episodes(&mut self, t: i64, out: &mut Backtest) -> bool {
        let mut changed = false;
        for a in self.state.alerts.values() {
            if a.fired_at == Some(t) && a.resolved_at.is_none() {
                let get = |k: &str| a.labels.get(k).cloned().unwrap_or_default();
                out.alerts.push(Episode {
                    alertname: get("alertname"),
                    cell: get("cell"),
                    slo: get("slo"),
                    severity: get("severity"),
                    labels: a.labels.clone(),
                    active_since: a.active_since,
                    fired_at: t,
                    resolved_at: None,
                    detection_seconds: out.onset.map(|o| t - o),
                    reset_seconds: None,
                    notified: false,
                });
                self.open
                    .insert(a.fingerprint.clone(), out.alerts.len() - 1);
                changed = true;
            } else if a.resolved_at == Some(t)
                && let Some(i) = self.open.remove(&a.fingerprint)
            {
                out.alerts[i].resolved_at = Some(t);
                out.alerts[i].reset_seconds = out.recovery.map(|r| t - r);
                changed = true;
            }
        }
        changed
    }

    /// Records one notification, marks its firing alerts' episodes notified and counts it in
    /// its incident.
    fn sent(&mut self, n: &Notification, out: &mut Backtest) {
        let name = |a: &alerting::Notified| {
            let get = |k: &str| a.labels.get(k).map_or("", String::as_str);
            let slo = get("slo");
            let sep = if slo.is_empty() { "" } else { "," };
            format!("{}{{{slo}{sep}{}}}", get("alertname"), get("severity"))
        };
        for a in n.alerts.iter().filter(|a| a.status == "firing") {
            if let Some(i) = self.open.get(&a.fingerprint) {
                out.alerts[*i].notified = true;
            }
        }
        let alerts: Vec<String> = n
            .alerts
            .iter()
            .map(|a| format!("{} {}", name(a), a.status))
            .collect();
        out.notifications.push(Sent {
            at: n.at,
            receiver: n.receiver.clone(),
            cell: n.cell.clone(),
            status: n.status.clone(),
            reason: n.reason.clone(),
            incident: n.incident.clone(),
            page: n.pages,
            alerts,
        });
        let i = match out.incidents.iter().position(|i| i.key == n.incident) {
            Some(i) => i,
            None => {
                out.incidents.push(Incident {
                    key: n.incident.clone(),
                    receiver: n.receiver.clone(),
                    cell: n.cell.clone(),
                    opened_at: n.at,
                    ..Default::default()
                });
                out.incidents.len() - 1
            }
        };
        let inc = &mut out.incidents[i];
        inc.notifications += 1;
        inc.pages += u64::from(n.pages);
        if n.status == "resolved" {
            inc.resolved_at = Some(n.at);
        }
        for a in &n.alerts {
            let a = name(a);
            if !inc.alerts.contains(&a) {
                inc.alerts.push(a);
            }
        }
    }

    /// A point per cell and SLO every `point_step`, and whenever an alert changed.
    fn points(
        &mut self,
        config: &Config,
        report: &Report,
        t: i64,
        changed: bool,
        out: &mut Backtest,
    ) {
        for r in &report.slos {
            let key = (r.cell.clone(), r.slo.clone());
            if !changed
                && self
                    .last_point
                    .get(&key)
                    .is_some_and(|last| t - last < self.point_step)
            {
                continue;
            }
            self.last_point.insert(key, t);
            let burn = |w: &str| {
                r.windows
                    .iter()
                    .find(|x| x.window == w)
                    .and_then(|x| x.burn_rate)
            };
            let point = Point {
                at: t,
                budget_remaining: r.budget_remaining,
                burn_1h: burn("1h"),
                burn_6h: burn("6h"),
                burn_3d: burn("3d"),
            };
            match out
                .series
                .iter_mut()
                .find(|s| s.cell == r.cell && s.slo == r.slo)
            {
                Some(s) => s.points.push(point),
                None => out.series.push(SloSeries {
                    cell: r.cell.clone(),
                    slo: r.slo.clone(),
                    objective: r.objective,
                    thresholds: thresholds(config, &r.slo, t),
                    points: vec![point],
                }),
            }
        }
    }

    /// Alerts still open at the end stay unresolved; the incidents are ordered by opening.
    fn finish(&mut self, out: &mut Backtest) {
        out.incidents.sort_by_key(|i| i.opened_at);
    }
}

/// The burn-rate thresholds of an SLO's alert tiers over its period at `t`.
fn thresholds(config: &Config, slo: &str, t: i64) -> Vec<Threshold> {
    let Some(slo) = config.slos.iter().find(|s| s.name == slo) else {
        return Vec::new();
    };
    let period = crate::math::period_length(&slo.period, t).as_secs();
    config
        .alerting
        .burn_rates
        .iter()
        .filter(|b| b.long <= period)
        .map(|b| Threshold {
            label: format!("{} {}", b.severity, crate::util::promql::duration(b.long)),
            factor: crate::model::burn_factor(b.budget, b.long, period),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// A four-node cell answering 2 requests per second per node from `from` to `to`, read
    /// every 2 minutes until `dense`, then every 15 s; every request fails in `[bad_from, bad_to)`.
    fn history(from: i64, dense: i64, to: i64, bad_from: i64, bad_to: i64) -> History {
        let mut series = Vec::new();
        for n in 1..=4 {
            let labels = |name: &str, extra: &[(&str, &str)]| {
                let mut l: BTreeMap<String, String> = [
                    ("__name__", name),
                    ("cell", "cell-a"),
                    ("node", &format!("n{n}")),
                    ("instance", &format!("n{n}:9817")),
                    ("job", "cellwatch"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                l.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
                l
            };
            let (mut ok, mut err) = (Vec::new(), Vec::new());
            let mut up = Vec::new();
            let (mut o, mut e) = (0.0, 0.0);
            let times = (from..dense).step_by(120).chain((dense..to).step_by(15));
            let mut last = from;
            for t in times {
                // A sample tells the time since the one before it.
                let n = (t - last) as f64 * 2.0;
                last = t;
                if (bad_from + 15..=bad_to).contains(&t) {
                    e += n;
                } else {
                    o += n;
                }
                ok.push((t * 1000, o));
                err.push((t * 1000, e));
                up.push((t * 1000, 1.0));
            }
            let req = "cellwatch_inference_requests_total";
            series.push(Series {
                labels: labels(req, &[("model", "m"), ("outcome", "ok")]),
                samples: ok,
            });
            series.push(Series {
                labels: labels(req, &[("model", "m"), ("outcome", "server_error")]),
                samples: err,
            });
            series.push(Series {
                labels: labels("up", &[]),
                samples: up,
            });
        }
        History {
            series,
            origin: "test".into(),
            onset: Some(bad_from),
            recovery: Some(bad_to),
            range: None,
        }
    }

    fn config() -> Config {
        crate::config::parse(
            "cells:
  - name: cell-a
    nodes:
      - { name: n1, url: \"http://n1:9817/metrics\" }
      - { name: n2, url: \"http://n2:9817/metrics\" }
      - { name: n3, url: \"http://n3:9817/metrics\" }
      - { name: n4, url: \"http://n4:9817/metrics\" }
slos:
  - { name: availability, objective: 0.999, period: 30d, sli: { availability: {} } }
alerting:
  receivers: [ { name: oncall, webhook: { url: \"http://127.0.0.1:1/hook\" } } ]
",
            std::path::Path::new("t.yaml"),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn a_full_outage_pages_once_at_the_workbook_detection_time() {
        let day = 86_400;
        // A clean period before the first evaluation (every 2 minutes, then every 15 s for the last 7
        // hours): the windows and the budget start full.
        let (from, onset) = (20_000 * day, 20_000 * day + 600);
        let end = from + 7 * 3600;
        let h = history(from - 30 * day, from - 7 * 3600, end, onset, onset + 1800);
        let dir = std::env::temp_dir().join(format!("cw-replay-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut runs = Vec::new();
        for exact in [true, false] {
            let url = format!("sqlite://{}", dir.join(format!("{exact}.db")).display());
            let ledger = Ledger::open(&url).await.unwrap();
            let range = Range {
                from,
                to: end,
                exact,
            };
            let r = replay(&config(), "t.yaml", &h, &ledger, "sqlite", range)
                .await
                .unwrap();
            ledger.close().await;
            eprintln!("{} evaluations in {:.2} s", r.evaluations, r.replay_seconds);
            runs.push(r);
        }
        std::fs::remove_dir_all(&dir).unwrap();
        // Skipping quiet evaluations changes nothing the replay reports but the points.
        let (exact, r) = (&runs[0], &runs[1]);
        assert_eq!(r.alerts, exact.alerts);
        assert_eq!(r.notifications, exact.notifications);
        assert!(r.evaluations < exact.evaluations, "{}", r.evaluations);
        // Workbook: 14.4 × (1 − 0.999) × 1 h / 100 % errors = 51.84 s; at most one evaluation
        // and one scrape later.
        let page = r
            .alerts
            .iter()
            .find(|a| a.severity == "page")
            .expect("a page");
        let d = page.detection_seconds.unwrap();
        assert!((52..=52 + 30).contains(&d), "{page:#?}");
        let pages: Vec<&Sent> = r.notifications.iter().filter(|n| n.page).collect();
        assert_eq!(pages.len(), 1, "{:#?}", r.notifications);
        assert_eq!(r.incidents.len(), 1, "{:#?}", r.incidents);
        assert!(r.incidents[0].resolved_at.is_some(), "{:#?}", r.incidents);
        assert_eq!(r.incidents[0].notifications, 2, "{:#?}", r.notifications);
    }
}
