//! The `prometheus` source's I/O: queries, chunks read and recorded.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{Budgeting, Config, Sli};
use crate::ledger::{Ledger, LedgerError};
use crate::math;
use crate::model::{SLICE, SliceData};
use crate::source::scrape::{NodeGap, cell_rows, log_gap, slos_by_cell};
use crate::util::time::secs;

/// The `prometheus` source's settings and state between queries.
pub struct PromSource {
    /// Base URL.
    pub url: String,
    /// Read up to this far behind the present.
    pub delay: Duration,
    /// Backfill at most this far back on a first start (one period and a margin).
    pub backfill: Duration,
    /// The ledger's cursor name for this source.
    pub key: String,
    client: reqwest::Client,
    feed: super::Feed,
    ratios: super::RatioFeed,
    /// The step of PromQL ratio queries (ms): the interval, within 1s..=1m, points aligned to
    /// it.
    step: i64,
    cursor: Option<i64>,
    /// The feeds hold no readings yet (a start, or after a failed write).
    fresh: bool,
    /// The gaps of recorded readings (logged), until [`PromSource::take_gaps`].
    gaps: Vec<NodeGap>,
}

/// How far back before the cursor each query reaches, so that a fresh start finds every
/// node's last reading before the cursor as its baseline (Prometheus' lookback, 5 minutes).
pub(super) const LOOKBACK_MS: i64 = 300_000;

/// The longest stretch read in one query while backfilling.
pub(super) const CHUNK_MS: i64 = 1_800_000;

/// A query against the Prometheus API failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The HTTP request failed or the answer was not usable.
    #[error("querying {url}: {message}")]
    Query {
        /// The API URL.
        url: String,
        /// Why.
        message: String,
    },
    /// Recording failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl PromSource {
    /// Builds the source from the configuration's settings.
    pub fn new(
        url: &str,
        interval: Duration,
        delay: Duration,
        timeout: Duration,
        headers: &BTreeMap<String, String>,
        backfill: Duration,
    ) -> PromSource {
        let mut map = reqwest::header::HeaderMap::new();
        for (k, v) in headers {
            // Validated by `config`.
            if let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.as_bytes()),
                reqwest::header::HeaderValue::from_str(v),
            ) {
                map.insert(k, v);
            }
        }
        let client = cellwatch_http::tls::http_client()
            .timeout(timeout)
            .default_headers(map)
            .build()
            .unwrap_or_default();
        PromSource {
            url: url.to_string(),
            delay,
            backfill,
            key: format!("prometheus {url}"),
            client,
            feed: super::Feed::default(),
            ratios: super::RatioFeed::default(),
            step: interval.as_millis().clamp(1000, 60_000) as i64 / 1000 * 1000,
            cursor: None,
            fresh: true,
            gaps: Vec::new(),
        }
    }

    /// The gaps of the readings recorded since the last call (each logged when recorded).
    pub fn take_gaps(&mut self) -> Vec<NodeGap> {
        std::mem::take(&mut self.gaps)
    }

    async fn query(&self, expr: &str, at_ms: i64) -> Result<Vec<super::Series>, QueryError> {
        self.api("query", &[("query", expr), ("time", &secs(at_ms))])
            .await
    }

    async fn query_range(
        &self,
        expr: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<super::Series>, QueryError> {
        let step = format!("{}s", self.step / 1000);
        self.api(
            "query_range",
            &[
                ("query", expr),
                ("start", &secs(from_ms)),
                ("end", &secs(to_ms)),
                ("step", &step),
            ],
        )
        .await
    }

    async fn api(
        &self,
        endpoint: &str,
        form: &[(&str, &str)],
    ) -> Result<Vec<super::Series>, QueryError> {
        let url = format!("{}/api/v1/{endpoint}", self.url);
        let fail = |message: String| QueryError::Query {
            url: url.clone(),
            message,
        };
        let resp = self
            .client
            .post(&url)
            .form(form)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| fail(e.to_string()))?;
        match super::parse_matrix(&body) {
            Ok(m) => Ok(m),
            Err(e) if status.is_success() => Err(fail(e)),
            Err(e) => Err(fail(format!("HTTP {status}: {e}"))),
        }
    }

    /// The cells none of whose scrape targets is up (`up` 0 at each target's latest sample in
    /// the last 5 minutes), as Prometheus sees them at `at_ms`.
    pub async fn down_cells(
        &self,
        config: &Config,
        at_ms: i64,
    ) -> Result<std::collections::BTreeSet<String>, QueryError> {
        let cells: Vec<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
        let series = self.query(&super::up_query(&cells), at_ms).await?;
        Ok(super::down_cells(&series))
    }

    /// Every raw sample the engine reads, and `up`, of the configured cells over `(from_ms,
    /// to_ms]`, read in chunks: the history `cellwatch-slo backtest` replays. Samples a chunk
    /// boundary returns twice are kept once.
    pub async fn history(
        &self,
        config: &Config,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<super::Series>, QueryError> {
        let cells: Vec<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
        let mut merged: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
        let mut start = from_ms;
        while start < to_ms {
            let end = (start + CHUNK_MS).min(to_ms);
            let range = (end - start + 999) / 1000;
            let up = format!(
                "up{{cell=~\"{}\"}}[{range}s]",
                crate::util::promql::any_of(&cells)
            );
            for expr in [super::selector(&cells, range), up] {
                for s in self.query(&expr, end).await? {
                    let kept = merged.entry(s.labels).or_default();
                    let last = kept.last().map_or(i64::MIN, |(t, _)| *t);
                    kept.extend(s.samples.into_iter().filter(|(t, _)| *t > last));
                }
            }
            start = end;
        }
        Ok(merged
            .into_iter()
            .map(|(labels, samples)| super::Series { labels, samples })
            .collect())
    }

    /// Forgets what it read: when it leads again it starts from the ledger's cursor, which the
    /// leader moved meanwhile.
    pub fn stand_by(&mut self) {
        self.feed = super::Feed::default();
        self.ratios = super::RatioFeed::default();
        self.cursor = None;
        self.fresh = true;
    }

    /// Reads everything from the cursor (or, on a first start, from `backfill` ago) up to
    /// `now - delay`, in chunks, recording each chunk with the cursor in one transaction.
    /// Returns the time (Unix seconds) the ledger is complete up to.
    pub async fn pull(
        &mut self,
        config: &Config,
        ledger: &Ledger,
        now_ms: i64,
    ) -> Result<i64, QueryError> {
        let to = now_ms - self.delay.as_millis() as i64;
        // Where the ledger's cursor is (None: never written), and where to read from.
        let mut expected = match self.cursor {
            Some(c) => Some(c),
            None => ledger.cursor(&self.key).await?,
        };
        let mut cursor = expected.unwrap_or(to - self.backfill.as_millis() as i64);
        while cursor < to {
            let end = (cursor + CHUNK_MS).min(to);
            let rows = self.read_chunk(config, cursor, end).await?;
            // Only if the cursor is still where this engine read it: another engine that led
            // meanwhile recorded this stretch.
            if let Err(e) = ledger.record_chunk(&rows, &self.key, expected, end).await {
                // Start again from the ledger's cursor next time: the feed has moved on.
                self.feed = super::Feed::default();
                self.ratios = super::RatioFeed::default();
                self.cursor = None;
                self.fresh = true;
                return Err(e.into());
            }
            for g in self.feed.take_gaps() {
                log_gap(&g);
                self.gaps.push(g);
            }
            cursor = end;
            expected = Some(end);
            self.cursor = Some(cursor);
        }
        Ok(cursor.div_euclid(1000))
    }

    /// The rows of `[cursor, end)`: every query first (a failed one leaves the feeds where they
    /// were), then the counters' increases and the ratio SLIs' events, summed per slice.
    async fn read_chunk(
        &mut self,
        config: &Config,
        cursor: i64,
        end: i64,
    ) -> Result<Vec<(String, String, SliceData)>, QueryError> {
        let cells: Vec<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
        // A fresh feed reaches back for every node's last reading before the cursor (its
        // baseline); afterwards the feed holds them, and a second of overlap is enough.
        let lookback = if self.fresh { LOOKBACK_MS } else { 1000 };
        let range = (end - cursor + lookback + 999) / 1000;
        let series = self.query(&super::selector(&cells, range), end).await?;
        // PromQL ratio SLIs: one point a step, the events of the step before it.
        let (first, last) = (
            (cursor - if self.fresh { LOOKBACK_MS } else { 0 }).div_euclid(self.step) * self.step,
            end.div_euclid(self.step) * self.step,
        );
        let ratio_results = self.ratio_queries(config, cursor, first, last).await?;

        let incs = self.feed.feed(super::readings(&series), cursor, end);
        self.fresh = false;
        let mut sums: BTreeMap<(String, String, i64), SliceData> = BTreeMap::new();
        counter_rows(config, &incs, &mut sums);
        for r in ratio_results {
            self.ratio_rows(config, r, cursor, last, &mut sums);
        }
        Ok(sums
            .into_iter()
            .map(|((cell, slo, _), s)| (cell, slo, s))
            .collect())
    }

    /// The range queries of every PromQL ratio SLI over `[first, last]` (none when no step
    /// ends after `cursor`).
    async fn ratio_queries<'a>(
        &self,
        config: &'a Config,
        cursor: i64,
        first: i64,
        last: i64,
    ) -> Result<Vec<RatioResult<'a>>, QueryError> {
        let mut out = Vec::new();
        for slo in config.slos.iter().filter(|_| last > cursor) {
            let Sli::Ratio(q) = &slo.sli else { continue };
            let queries = [
                (q.good.as_deref(), 1.0, 0.0),
                (q.bad.as_deref(), -1.0, 0.0),
                // good = total − bad when bad is given.
                (
                    Some(q.total.as_str()),
                    if q.bad.is_some() { 1.0 } else { 0.0 },
                    1.0,
                ),
            ];
            for (expr, to_good, to_total) in queries {
                let Some(expr) = expr else { continue };
                let series = self.query_range(expr, first, last).await?;
                out.push(RatioResult {
                    slo,
                    counter: q.counter,
                    expr,
                    series,
                    to_good,
                    to_total,
                });
            }
        }
        Ok(out)
    }

    /// Adds one ratio query's events to the slices of its SLO, outside maintenance windows that
    /// exclude them from the budget.
    fn ratio_rows(
        &mut self,
        config: &Config,
        r: RatioResult<'_>,
        cursor: i64,
        last: i64,
        sums: &mut BTreeMap<(String, String, i64), SliceData>,
    ) {
        let slo = r.slo;
        let len = match slo.budgeting {
            Budgeting::Timeslices { slice, .. } => slice,
            Budgeting::Occurrences => Duration::from_secs(SLICE as u64),
        };
        let name = format!("{}\u{0}{}", slo.name, r.expr);
        for e in self.ratios.feed(&name, &r.series, r.counter, last, cursor) {
            let cell = match (&e.cell, slo.cells.as_slice()) {
                (Some(c), cells) if cells.contains(c) => c.clone(),
                (None, [only]) => only.clone(),
                _ => continue,
            };
            let at = (e.at - 1).div_euclid(1000);
            if config
                .maintenance
                .iter()
                .any(|m| m.exclude_from_budget && m.active(&cell, at))
            {
                continue;
            }
            let start = math::slice_start((e.at - 1).div_euclid(1000), len);
            let row = sums
                .entry((cell, slo.name.clone(), start))
                .or_insert(SliceData {
                    start,
                    ..Default::default()
                });
            row.good += r.to_good * e.events;
            row.total += r.to_total * e.events;
        }
    }
}

/// One range query of a PromQL ratio SLI, and how its events count: `to_good` and `to_total`
/// times the events go to the slice's good and total.
struct RatioResult<'a> {
    slo: &'a crate::config::Slo,
    counter: bool,
    expr: &'a str,
    series: Vec<super::Series>,
    to_good: f64,
    to_total: f64,
}

/// Adds the counters' increases of configured nodes (as the scrape source reads them) to the
/// slices they fall in.
pub fn counter_rows(
    config: &Config,
    incs: &[super::Increase],
    sums: &mut BTreeMap<(String, String, i64), SliceData>,
) {
    let by_cell = slos_by_cell(config);
    let nodes: std::collections::HashSet<(&str, &str)> = config
        .cells
        .iter()
        .flat_map(|c| c.nodes.iter().map(|n| (c.name.as_str(), n.name.as_str())))
        .collect();
    for i in incs {
        if !nodes.contains(&(i.cell.as_str(), i.node.as_str())) {
            continue;
        }
        let slos = by_cell.get(i.cell.as_str()).map_or(&[][..], Vec::as_slice);
        for (cell, slo, s) in cell_rows(
            config,
            slos,
            &i.cell,
            i.at,
            std::slice::from_ref(&i.inc),
            None,
        ) {
            sums.entry((cell, slo, s.start))
                .or_insert(SliceData {
                    start: s.start,
                    ..Default::default()
                })
                .add(&s);
        }
    }
}
