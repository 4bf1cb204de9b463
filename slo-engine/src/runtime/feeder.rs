//! The tick's first read: the configured source (the exporters' scrape, or Prometheus) brings
//! the ledger up to date and says which cells are down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cellwatch_http::exposition::Sample;
use cellwatch_metrics as m;

use crate::config::{Config, Source};
use crate::health::{CellHealth, Tracker};
use crate::ledger::{Ledger, LedgerError};
use crate::source::prometheus::PromSource;
use crate::source::scrape::{Baselines, NodeGap, scrape_once};

/// The source, with what it carries from one tick to the next, and the gaps it recorded.
pub(super) struct Feeder {
    source: Fed,
    /// Readings recorded after a gap, per (cell, counted), since the engine started.
    gaps: BTreeMap<(String, bool), u64>,
    /// Each cell's health at the last read (scrape source only).
    pub(super) health: BTreeMap<String, CellHealth>,
}

/// The source and its state.
enum Fed {
    Scrape {
        client: reqwest::Client,
        baselines: Baselines,
        max_gap: i64,
        /// The nodes that did not answer, as last logged.
        last_problems: String,
        /// The cells' health over time.
        tracker: Box<Tracker>,
        /// The learned topologies were read from the ledger.
        learned_read: bool,
    },
    Prometheus {
        src: Box<PromSource>,
        /// The last failure logged; empty while Prometheus answers.
        last_error: String,
    },
}

impl Feeder {
    /// The source of `source`, and its interval (the tick's); `retention` (seconds) is how far
    /// back Prometheus is read on a first start.
    pub(super) fn new(source: &Source, retention: i64) -> (Duration, Feeder) {
        let (interval, source) = Fed::new(source, retention);
        let gaps = BTreeMap::new();
        let health = BTreeMap::new();
        (
            interval,
            Feeder {
                source,
                gaps,
                health,
            },
        )
    }

    /// Reads the source at `now_ms` (recording into the ledger when `leading`) and updates
    /// `down_cells`. Returns the time (Unix seconds) the ledger is complete up to, where the
    /// evaluation windows end; None when Prometheus failed, and the tick stops there.
    pub(super) async fn read(
        &mut self,
        config: &Config,
        ledger: &Ledger,
        now_ms: i64,
        leading: bool,
        down_cells: &mut BTreeSet<String>,
    ) -> Option<i64> {
        let (t, gaps) = self
            .source
            .read(
                config,
                ledger,
                now_ms,
                leading,
                down_cells,
                &mut self.health,
            )
            .await;
        self.count(gaps);
        t
    }

    /// Counts recorded gaps, per cell and whether they counted.
    fn count(&mut self, gaps: Vec<NodeGap>) {
        for g in gaps {
            *self.gaps.entry((g.cell, g.gap.counted)).or_default() += 1;
        }
    }

    /// `cellwatch_slo_scrape_gaps_total` of every configured cell (0 until a gap), counted
    /// and not.
    pub(super) fn gap_samples(&self, config: &Config) -> Vec<Sample> {
        let mut out = Vec::new();
        for cell in &config.cells {
            for counted in [true, false] {
                let n = self
                    .gaps
                    .get(&(cell.name.clone(), counted))
                    .copied()
                    .unwrap_or(0);
                let label = if counted { "true" } else { "false" };
                out.push(Sample::new(
                    &m::SLO_SCRAPE_GAPS,
                    &[&cell.name, label],
                    n as f64,
                ));
            }
        }
        out
    }
}

impl Fed {
    fn new(source: &Source, retention: i64) -> (Duration, Fed) {
        match source {
            Source::Scrape {
                interval, ca_pem, ..
            } => (
                *interval,
                Fed::Scrape {
                    client: scrape_client(*interval, ca_pem.as_deref()),
                    baselines: None,
                    max_gap: (interval.as_secs() as i64 * 3).max(30),
                    last_problems: String::new(),
                    tracker: Box::default(),
                    learned_read: false,
                },
            ),
            Source::Prometheus {
                url,
                interval,
                delay,
                timeout,
                headers,
            } => (
                *interval,
                Fed::Prometheus {
                    src: Box::new(PromSource::new(
                        url,
                        *interval,
                        *delay,
                        *timeout,
                        headers,
                        Duration::from_secs(retention as u64),
                    )),
                    last_error: String::new(),
                },
            ),
        }
    }

    /// [`Feeder::read`], with the gaps of the readings recorded (each logged by the source).
    async fn read(
        &mut self,
        config: &Config,
        ledger: &Ledger,
        now_ms: i64,
        leading: bool,
        down_cells: &mut BTreeSet<String>,
        health: &mut BTreeMap<String, CellHealth>,
    ) -> (Option<i64>, Vec<NodeGap>) {
        match self {
            Fed::Scrape {
                client,
                baselines,
                max_gap,
                last_problems,
                tracker,
                learned_read,
            } => {
                let t = now_ms.div_euclid(1000);
                if !*learned_read {
                    *learned_read = read_learned(config, ledger, tracker).await;
                }
                // A standby scrapes too (which cells are down, their health), but records
                // nothing: the ledger's baselines say where the leader's records reach.
                let scraped = scrape_once(
                    config, ledger, client, baselines, tracker, t, *max_gap, leading,
                )
                .await;
                if let Ok(s) = &scraped {
                    health.clone_from(&s.health);
                }
                if leading {
                    store_learned(ledger, tracker, t).await;
                }
                (Some(t), note_scrape(scraped, down_cells, last_problems))
            }
            Fed::Prometheus { src, .. } if !leading => {
                src.stand_by();
                let t = (now_ms - src.delay.as_millis() as i64).div_euclid(1000);
                (Some(t), src.take_gaps())
            }
            Fed::Prometheus { src, last_error } => {
                let t = pull(src, last_error, config, ledger, now_ms, down_cells).await;
                (t, src.take_gaps())
            }
        }
    }
}

/// Hands the topologies learned before (stored in the ledger) to the tracker; false when the
/// ledger could not be read (tried again next tick).
async fn read_learned(config: &Config, ledger: &Ledger, tracker: &mut Tracker) -> bool {
    let learn = |c: &&crate::config::Cell| c.topology == Some(crate::config::Topology::Learn);
    if !config.cells.iter().any(|c| learn(&c)) {
        return true;
    }
    match ledger.learned_links().await {
        Ok(stored) => {
            for (cell, pairs) in stored {
                let links = pairs
                    .iter()
                    .map(|(a, b)| crate::config::ExpectedLink::between(a, b))
                    .collect();
                tracker.set_learned(&cell, links);
            }
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "reading learned topologies failed; retrying next tick");
            false
        }
    }
}

/// Stores the topologies learned since the last tick (one line each in the log).
async fn store_learned(ledger: &Ledger, tracker: &mut Tracker, at: i64) {
    for (cell, links) in tracker.take_learned() {
        let pairs: Vec<(String, String)> = links
            .iter()
            .map(|l| (l.a.node.clone(), l.b.node.clone()))
            .collect();
        let shown: Vec<String> = pairs.iter().map(|(a, b)| format!("{a}–{b}")).collect();
        match ledger.save_learned_links(&cell, &pairs, at).await {
            Ok(()) => {
                tracing::info!(cell = %cell, links = %shown.join(", "), "learned the cell's topology")
            }
            Err(e) => {
                tracing::error!(cell = %cell, error = %e, "storing the learned topology failed; it is kept in memory")
            }
        }
    }
}

/// The scrape's client: trusting `ca_pem` too when given, timing out within the interval
/// (10 s at most).
fn scrape_client(interval: Duration, ca_pem: Option<&[u8]>) -> reqwest::Client {
    let mut b = cellwatch_http::tls::http_client();
    if let Some(pem) = ca_pem
        && let Ok(tls) = cellwatch_http::tls::client_config(Some(pem))
    {
        b = b.use_preconfigured_tls(tls);
    }
    b.timeout(interval.min(Duration::from_secs(10)))
        .build()
        .unwrap_or_default()
}

/// Takes a scrape's down cells, and logs its problems when they changed, or its failure;
/// returns its gaps.
fn note_scrape(
    scraped: Result<crate::source::scrape::Scraped, LedgerError>,
    down_cells: &mut BTreeSet<String>,
    last_problems: &mut String,
) -> Vec<NodeGap> {
    match scraped {
        Ok(p) => {
            *down_cells = p.down;
            let joined = p.problems.join("; ");
            if joined != *last_problems {
                if !joined.is_empty() {
                    tracing::warn!(problems = %joined, "some nodes did not answer");
                }
                *last_problems = joined;
            }
            p.gaps
        }
        Err(e @ LedgerError::Moved { .. }) => {
            tracing::warn!(error = %e, "another engine recorded meanwhile; carrying on from its baselines at the next scrape");
            Vec::new()
        }
        Err(e) => {
            tracing::error!(error = %e, "recording slices failed; the next scrape records the increases");
            Vec::new()
        }
    }
}

/// The leader's read of Prometheus: records up to `now_ms - delay`, then asks which cells are
/// down. A failure is logged once until Prometheus answers again.
async fn pull(
    src: &mut PromSource,
    last_error: &mut String,
    config: &Config,
    ledger: &Ledger,
    now_ms: i64,
    down_cells: &mut BTreeSet<String>,
) -> Option<i64> {
    match src.pull(config, ledger, now_ms).await {
        Ok(t) => {
            match src.down_cells(config, now_ms).await {
                Ok(d) => *down_cells = d,
                Err(e) => {
                    tracing::warn!(error = %e, "reading up from Prometheus failed")
                }
            }
            if !last_error.is_empty() {
                tracing::info!(url = %src.url, "Prometheus answers again");
                last_error.clear();
            }
            Some(t)
        }
        Err(e) => {
            let msg = e.to_string();
            if msg != *last_error {
                tracing::error!(error = %msg, "reading from Prometheus failed; retrying every interval");
                *last_error = msg;
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::scrape::Gap;

    #[test]
    fn gaps_are_counted_per_cell_and_exposed_from_zero() {
        let config = crate::config::parse(
            "cells:\n  - { name: a, nodes: [ { name: n1, url: \"http://127.0.0.1:1/metrics\" } ] }\n  \
             - { name: b, nodes: [ { name: n1, url: \"http://127.0.0.1:2/metrics\" } ] }\n\
             slos:\n  - { name: s, objective: 0.99, period: 1d, sli: { availability: {} } }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        let (interval, mut f) = Feeder::new(&config.source, 86400);
        let gap = |cell: &str, seconds, counted| NodeGap {
            cell: cell.into(),
            node: "n1".into(),
            at: 0,
            gap: Gap { seconds, counted },
        };
        f.count(vec![gap("a", 120, true), gap("a", 60, true)]);
        f.count(vec![gap("a", 7200, false)]);
        let text = cellwatch_http::exposition::encode(&f.gap_samples(&config));
        let value = |s: &str| cellwatch_metrics::exposition::value(&text, s);
        assert_eq!(interval, Duration::from_secs(15));
        assert_eq!(
            value("cellwatch_slo_scrape_gaps_total{cell=\"a\",counted=\"true\"}"),
            Some(2.0)
        );
        assert_eq!(
            value("cellwatch_slo_scrape_gaps_total{cell=\"a\",counted=\"false\"}"),
            Some(1.0)
        );
        assert_eq!(
            value("cellwatch_slo_scrape_gaps_total{cell=\"b\",counted=\"true\"}"),
            Some(0.0),
            "{text}"
        );
        assert!(
            text.contains("# TYPE cellwatch_slo_scrape_gaps_total counter"),
            "{text}"
        );
    }
}
