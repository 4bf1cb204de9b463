//! A backtest from the command line's choices: load the history once, replay it through each
//! configuration into a ledger of its own.

use std::path::PathBuf;
use std::time::Duration;

use super::replay::{BacktestError, History, Range, replay};
use super::result::Backtest;
use crate::config::{Config, Source};
use crate::ledger::Ledger;

/// Where the history comes from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A Prometheus server's raw samples of the configured cells (the `prometheus` source's
    /// selectors, and `up`), over `--from`/`--to`.
    Prometheus(String),
    /// OpenMetrics text files with timestamps.
    Files(Vec<PathBuf>),
    /// A history the engine ships (see `backtest::SCENARIOS`).
    Scenario(String),
}

/// What to replay, through what, into what.
#[derive(Debug, Clone)]
pub struct Options {
    /// The configurations to compare, each with the name it is shown under.
    pub configs: Vec<(String, Config)>,
    /// The history.
    pub input: Input,
    /// The range (Unix seconds); None: the whole history (required for Prometheus).
    pub range: Option<(i64, i64)>,
    /// The ledger URL (an empty database); None: an in-memory SQLite ledger per configuration.
    pub ledger: Option<String>,
    /// Evaluate at every interval (see [`Range::exact`]).
    pub exact: bool,
}

/// Loads the history, then replays it through every configuration, in order.
pub async fn run(o: &Options, history: &History) -> Result<Vec<Backtest>, BacktestError> {
    let range = match o.range {
        Some((from, to)) => Range {
            from,
            to,
            exact: o.exact,
        },
        None => whole(history, o.exact)?,
    };
    if o.ledger.is_some() && o.configs.len() > 1 {
        return Err(BacktestError::Usage(
            "--ledger takes one --config: each replay needs an empty ledger (leave --ledger out to give each configuration an in-memory SQLite ledger)".into(),
        ));
    }
    let mut out = Vec::new();
    for (name, config) in &o.configs {
        // Default: SQLite in memory, one per replay (no file, nothing synced to disk).
        let url = o.ledger.clone().unwrap_or_else(|| "sqlite::memory:".into());
        let ledger = Ledger::open(&url).await?;
        if ledger.holds_slices().await? {
            ledger.close().await;
            return Err(BacktestError::Usage(format!(
                "the ledger {} already holds slices: backtest replays into an empty database",
                crate::util::redact::credentials(&url)
            )));
        }
        let kind = if url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        let r = replay(config, name, history, &ledger, kind, range).await;
        ledger.close().await;
        out.push(r?);
    }
    Ok(out)
}

/// The history from the input: Prometheus over the range, files, or a shipped scenario.
pub async fn load(o: &Options) -> Result<History, BacktestError> {
    match &o.input {
        Input::Prometheus(url) => {
            let Some((from, to)) = o.range else {
                return Err(BacktestError::Usage(
                    "--prometheus needs --from and --to".into(),
                ));
            };
            let Some((_, config)) = o.configs.first() else {
                return Err(BacktestError::Usage("give at least one --config".into()));
            };
            let source = prometheus(url, config);
            // The longest window before the range, so every window is full at its start, and a
            // lookback for the nodes' baselines.
            let before = crate::model::WINDOWS_MAX + 300;
            let series = source
                .history(config, (from - before) * 1000, to * 1000)
                .await
                .map_err(|e| BacktestError::History(e.to_string()))?;
            Ok(History {
                series,
                origin: crate::util::redact::credentials(url),
                ..Default::default()
            })
        }
        Input::Files(paths) => {
            let mut series = Vec::new();
            for p in paths {
                let text = crate::config::read_text(p, 1 << 30)
                    .map_err(|e| BacktestError::History(format!("{}: {e}", p.display())))?;
                let origin = p.display().to_string();
                series.extend(
                    super::openmetrics::parse(&text, &origin)
                        .map_err(|e| BacktestError::History(e.to_string()))?,
                );
            }
            let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
            Ok(History {
                series,
                origin: names.join(", "),
                ..Default::default()
            })
        }
        Input::Scenario(name) => {
            let s = super::scenario::scenario(name).ok_or_else(|| {
                let known: Vec<&str> = super::scenario::SCENARIOS.iter().map(|s| s.0).collect();
                BacktestError::Usage(format!(
                    "no scenario named {} (scenarios: {})",
                    crate::util::text::quote(name),
                    known.join(", ")
                ))
            })?;
            Ok(History {
                // A month of the baseline before it: budgets and windows start full.
                series: super::scenario::with_period(s.history, s.from),
                origin: format!("scenario {}", s.name),
                onset: s.onset,
                recovery: s.recovery,
                range: Some((s.from, s.to)),
            })
        }
    }
}

/// The `prometheus` source of `config` pointed at `url` (its timeout and headers when the
/// configuration reads Prometheus).
fn prometheus(url: &str, config: &Config) -> crate::source::prometheus::PromSource {
    let (interval, timeout, headers) = match &config.source {
        Source::Prometheus {
            interval,
            timeout,
            headers,
            ..
        } => (*interval, *timeout, headers.clone()),
        Source::Scrape { interval, .. } => (*interval, Duration::from_secs(30), Default::default()),
    };
    crate::source::prometheus::PromSource::new(
        url.trim_end_matches('/'),
        interval,
        Duration::ZERO,
        timeout,
        &headers,
        Duration::ZERO,
    )
}

/// The history's own range (a scenario's), else the whole history: from its first sample to
/// just after its last.
fn whole(h: &History, exact: bool) -> Result<Range, BacktestError> {
    if let Some((from, to)) = h.range {
        return Ok(Range { from, to, exact });
    }
    let times = h
        .series
        .iter()
        .flat_map(|s| s.samples.iter().map(|(t, _)| *t));
    let (min, max) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    if min > max {
        return Err(BacktestError::Empty {
            history: h.origin.clone(),
            cells: "any".into(),
        });
    }
    Ok(Range {
        from: min.div_euclid(1000),
        to: max.div_euclid(1000) + 1,
        exact,
    })
}
