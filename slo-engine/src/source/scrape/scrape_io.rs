//! The `scrape` source's I/O: fetch every node, record increases with the new baselines.

use crate::config::{Config, Source};
use crate::ledger::{Ledger, LedgerError};
use crate::model::SliceData;
use crate::source::scrape;
use crate::source::scrape::{cell_rows, slos_by_cell};

/// The scrape source's baselines as this engine last read or wrote them, by node (`cell/node`);
/// `None` until read from the ledger (at start, after standing by, after a conflict).
pub type Baselines = Option<std::collections::HashMap<String, scrape::Baseline>>;

/// Reads every node's baseline from the ledger; an unreadable one counts as a baseline too old
/// to compare with (the node's next reading replaces it).
pub(super) async fn load_baselines(
    ledger: &Ledger,
) -> Result<std::collections::HashMap<String, scrape::Baseline>, LedgerError> {
    Ok(ledger
        .baselines()
        .await?
        .into_iter()
        .map(|(node, (at, generation, text))| {
            let b = match scrape::decode_reading(&text) {
                Ok(reading) => scrape::Baseline {
                    at,
                    generation: Some(generation),
                    reading,
                },
                Err(e) => {
                    tracing::warn!(node = %node, error = %e, "an unreadable scrape baseline; the node's next reading replaces it");
                    scrape::Baseline {
                        at: i64::MIN / 2,
                        generation: Some(generation),
                        reading: scrape::Reading::new(),
                    }
                }
            };
            (node, b)
        })
        .collect())
}

/// One scrape of every node; when `record`, the increases since each node's baseline in the
/// ledger are recorded as slices of `now`, moving the baselines in the same transaction (after
/// a gap longer than `max_gap` too, up to [`scrape::CATCH_UP_LIMIT`]: see [`scrape::step`];
/// each gap is logged and returned in [`Scraped::gaps`]). A
/// write that fails moves nothing: the next one records the increases (once). A standby
/// (`record` false) records nothing and forgets its baselines: when it leads, it starts from
/// the ledger's, where the last leader left them.
///
/// The baselines are read before the nodes are scraped, so every reading is newer than the
/// baseline it is compared with; when another engine moved a baseline since (two engines that
/// both believe they lead, a leader that stalled), nothing is written
/// ([`LedgerError::Moved`]) and the next scrape starts from the ledger's baselines.
#[allow(clippy::too_many_arguments)]
pub async fn scrape_once(
    config: &Config,
    ledger: &Ledger,
    client: &reqwest::Client,
    baselines: &mut Baselines,
    tracker: &mut crate::health::Tracker,
    now: i64,
    max_gap: i64,
    record: bool,
) -> Result<Scraped, LedgerError> {
    if !record {
        *baselines = None;
    } else if baselines.is_none() {
        *baselines = Some(load_baselines(ledger).await?);
    }
    let (mut scraped, readings) = fetch_all(config, client).await;
    // Every engine follows the cells' health (the drain signal is served by any of them).
    for ((cell, nodes), c) in readings.iter().zip(&config.cells) {
        let snaps: Vec<(String, crate::health::NodeSnapshot)> = nodes
            .iter()
            .map(|(n, (_, s))| (n.clone(), s.clone()))
            .collect();
        let h = tracker.observe(c, &config.health, now, &snaps);
        scraped.health.insert(cell.to_string(), h);
    }
    let Some(base) = baselines.as_mut() else {
        return Ok(scraped);
    };
    match record_readings(
        config,
        ledger,
        base,
        &readings,
        &scraped.health,
        now,
        max_gap,
    )
    .await
    {
        Ok(gaps) => {
            for g in &gaps {
                log_gap(g);
            }
            Ok(Scraped { gaps, ..scraped })
        }
        Err(e) => {
            if matches!(e, LedgerError::Moved { .. }) {
                *baselines = None;
            }
            Err(e)
        }
    }
}

/// A node's counters and health series.
type NodeReading = (scrape::Reading, crate::health::NodeSnapshot);

/// Each cell's nodes' readings, fetched at once per cell (in config order); the nodes that did
/// not answer and the cells none of whose nodes did.
async fn fetch_all<'a>(
    config: &'a Config,
    client: &reqwest::Client,
) -> (Scraped, Vec<(&'a str, Vec<(String, NodeReading)>)>) {
    let mut problems = Vec::new();
    let mut down = std::collections::BTreeSet::new();
    let mut readings = Vec::new();
    let auth = match &config.source {
        Source::Scrape {
            basic_auth: Some(b),
            ..
        } => Some((b.username.clone(), b.password())),
        _ => None,
    };
    for cell in &config.cells {
        let fetches = cell.nodes.iter().map(|n| {
            let auth = auth.clone();
            async move { (n.name.clone(), fetch(client, &n.url, auth).await) }
        });
        let results = futures_util::future::join_all(fetches).await;
        if results.iter().all(|(_, r)| r.is_err()) {
            down.insert(cell.name.clone());
        }
        let mut ok = Vec::new();
        for (node, r) in results {
            match r {
                Ok(reading) => ok.push((node, reading)),
                Err(e) => problems.push(format!("cell {} node {node}: {e}", cell.name)),
            }
        }
        readings.push((cell.name.as_str(), ok));
    }
    (
        Scraped {
            problems,
            down,
            gaps: Vec::new(),
            health: Default::default(),
        },
        readings,
    )
}

/// One node's reading; the error names the URL without its credentials.
async fn fetch(
    client: &reqwest::Client,
    url: &str,
    auth: Option<(String, Result<String, String>)>,
) -> Result<NodeReading, String> {
    // Credentials in a URL never reach the logs.
    let shown = crate::util::redact::credentials(url);
    let mut req = client.get(url);
    if let Some((user, pass)) = auth {
        req = req.basic_auth(user, Some(pass?));
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("{shown}: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("{shown}: HTTP {}", resp.status()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("{shown}: {}", e.without_url()))?;
    scrape::read_all(&text).map_err(|e| format!("{shown}: {e}"))
}

/// The increases since each node's baseline as rows, recorded with the new baselines in one
/// transaction; the baselines in memory move only when it commits. Returns the gaps the
/// recorded readings came after.
async fn record_readings(
    config: &Config,
    ledger: &Ledger,
    base: &mut std::collections::HashMap<String, scrape::Baseline>,
    readings: &[(&str, Vec<(String, NodeReading)>)],
    health: &std::collections::BTreeMap<String, crate::health::CellHealth>,
    now: i64,
    max_gap: i64,
) -> Result<Vec<scrape::NodeGap>, LedgerError> {
    let mut rows: Vec<(String, String, SliceData)> = Vec::new();
    let mut moves = Vec::new();
    let mut gaps = Vec::new();
    let by_cell = slos_by_cell(config);
    for (cell, nodes) in readings {
        let mut incs = Vec::new();
        for (node, (reading, _)) in nodes {
            let key = format!("{cell}/{node}");
            let step = scrape::step(base.get(&key), now, reading, max_gap);
            incs.extend(step.increases);
            gaps.extend(step.gap.map(|gap| scrape::NodeGap {
                cell: cell.to_string(),
                node: node.clone(),
                at: now,
                gap,
            }));
            let generation = step.from.and_then(|(_, g)| g);
            moves.push((
                key,
                generation,
                now,
                scrape::encode_reading(reading),
                reading,
            ));
        }
        // Every node down (or first readings): no rows, so no data; never good or bad events.
        let slos = by_cell.get(*cell).map_or(&[][..], Vec::as_slice);
        rows.extend(cell_rows(config, slos, cell, now, &incs, health.get(*cell)));
    }
    let written: Vec<(String, Option<i64>, i64, String)> = moves
        .iter()
        .map(|(k, g, at, json, _)| (k.clone(), *g, *at, json.clone()))
        .collect();
    ledger.record_scrape(&rows, &written).await?;
    for (key, generation, at, _, reading) in moves {
        base.insert(
            key,
            scrape::Baseline {
                at,
                generation: Some(generation.map_or(0, |g| g + 1)),
                reading: reading.clone(),
            },
        );
    }
    Ok(gaps)
}

/// Logs a gap a source recorded: one warning per node and gap.
pub fn log_gap(g: &scrape::NodeGap) {
    if g.gap.counted {
        tracing::warn!(cell = %g.cell, node = %g.node, gap_seconds = g.gap.seconds, counted = true,
            "a node's readings were further apart than the source allows; its whole increase was counted in the slice of the later reading");
    } else {
        tracing::warn!(cell = %g.cell, node = %g.node, gap_seconds = g.gap.seconds, counted = false,
            limit_seconds = scrape::CATCH_UP_LIMIT,
            "a node's baseline was older than the catch-up limit; its increase was not counted and the reading is the new baseline");
    }
}

/// What one scrape of every node found wrong.
#[derive(Debug, Default)]
pub struct Scraped {
    /// One line per node that did not answer.
    pub problems: Vec<String>,
    /// Cells none of whose nodes answered.
    pub down: std::collections::BTreeSet<String>,
    /// The recorded readings that came more than `max_gap` after their baseline (logged).
    pub gaps: Vec<scrape::NodeGap>,
    /// Each cell's health at this scrape.
    pub health: std::collections::BTreeMap<String, crate::health::CellHealth>,
}
