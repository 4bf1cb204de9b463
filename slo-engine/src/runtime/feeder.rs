//! The tick's first read: the configured source (the exporters' scrape, or Prometheus) brings
//! the ledger up to date and says which cells are down.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::config::{Config, Source};
use crate::ledger::{Ledger, LedgerError};
use crate::source::prometheus::PromSource;
use crate::source::scrape::{Baselines, scrape_once};

/// The source, with what it carries from one tick to the next.
pub(super) enum Feeder {
    Scrape {
        client: reqwest::Client,
        baselines: Baselines,
        max_gap: i64,
        /// The nodes that did not answer, as last logged.
        last_problems: String,
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
        match source {
            Source::Scrape {
                interval, ca_pem, ..
            } => (
                *interval,
                Feeder::Scrape {
                    client: scrape_client(*interval, ca_pem.as_deref()),
                    baselines: None,
                    max_gap: (interval.as_secs() as i64 * 3).max(30),
                    last_problems: String::new(),
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
                Feeder::Prometheus {
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
        match self {
            Feeder::Scrape {
                client,
                baselines,
                max_gap,
                last_problems,
            } => {
                let t = now_ms.div_euclid(1000);
                // A standby scrapes too (which cells are down), but records nothing: the
                // ledger's baselines say where the leader's records reach.
                let scraped =
                    scrape_once(config, ledger, client, baselines, t, *max_gap, leading).await;
                note_scrape(scraped, down_cells, last_problems);
                Some(t)
            }
            Feeder::Prometheus { src, .. } if !leading => {
                src.stand_by();
                Some((now_ms - src.delay.as_millis() as i64).div_euclid(1000))
            }
            Feeder::Prometheus { src, last_error } => {
                pull(src, last_error, config, ledger, now_ms, down_cells).await
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

/// Takes a scrape's down cells, and logs its problems when they changed, or its failure.
fn note_scrape(
    scraped: Result<crate::source::scrape::Scraped, LedgerError>,
    down_cells: &mut BTreeSet<String>,
    last_problems: &mut String,
) {
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
        }
        Err(e @ LedgerError::Moved { .. }) => {
            tracing::warn!(error = %e, "another engine recorded meanwhile; carrying on from its baselines at the next scrape")
        }
        Err(e) => {
            tracing::error!(error = %e, "recording slices failed; the next scrape records the increases")
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
