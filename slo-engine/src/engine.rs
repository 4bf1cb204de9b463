//! `cellwatch-slo run`: the `scrape` source feeding the ledger, the evaluation of every SLO of
//! every cell over every window, and the HTTP outputs (`/metrics`, `/api/v1/…`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use cellwatch_http::exposition::{Sample, encode};
use cellwatch_metrics as m;
use serde::Serialize;

use crate::config::{Budgeting, Config, Sli, Source};
use crate::ledger::{Judge, Ledger, LedgerError};
use crate::math::{self, SliceData, WindowState};
use crate::promsource;
use crate::scrape;
use crate::{alerting, notify};

/// Resolution of occurrence slices and of the cell totals (seconds).
pub const SLICE: i64 = 60;

/// One window of one SLO, for the API.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WindowReport {
    /// `5m` … `3d`, or `period`.
    pub window: String,
    /// `ok`, `no_data` or `too_thin`.
    pub state: &'static str,
    /// Good / total, when there is data.
    pub sli: Option<f64>,
    /// Burn rate, when judged.
    pub burn_rate: Option<f64>,
    /// Units (events or judged slices) in the window.
    pub total: f64,
}

/// One SLO of one cell, for the API.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SloReport {
    /// Cell.
    pub cell: String,
    /// SLO.
    pub slo: String,
    /// Objective.
    pub objective: f64,
    /// Budget left in the period (None without data).
    pub budget_remaining: Option<f64>,
    /// No data in the last 5 minutes.
    pub data_missing: bool,
    /// Windows, shortest first, then the period.
    pub windows: Vec<WindowReport>,
}

/// A cell's efficiency and routing signal, for the API.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CellReport {
    /// Cell.
    pub cell: String,
    /// Tokens per kWh by window.
    pub tokens_per_kwh: BTreeMap<String, Option<f64>>,
    /// kWh per 1,000 requests by window.
    pub kwh_per_1k_requests: BTreeMap<String, Option<f64>>,
    /// The smallest budget left over the cell's SLOs (None without data).
    pub budget_headroom: Option<f64>,
    /// No SLO of the cell burns at the page rate (14.4× over 1h) and the cell has data: a gateway
    /// may route "fast-enough" calls here, preferring the highest tokens/kWh.
    pub healthy: bool,
}

/// The last evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Evaluation time (Unix seconds).
    pub at: i64,
    /// Every SLO of every cell.
    pub slos: Vec<SloReport>,
    /// Every cell.
    pub cells: Vec<CellReport>,
}

fn window_report(name: &str, state: WindowState) -> WindowReport {
    match state {
        WindowState::NoData => WindowReport {
            window: name.into(),
            state: "no_data",
            sli: None,
            burn_rate: None,
            total: 0.0,
        },
        WindowState::TooThin { sli, total } => WindowReport {
            window: name.into(),
            state: "too_thin",
            sli: Some(sli),
            burn_rate: None,
            total,
        },
        WindowState::Judged { sli, burn_rate } => WindowReport {
            window: name.into(),
            state: "ok",
            sli: Some(sli),
            burn_rate: Some(burn_rate),
            total: 0.0,
        },
    }
}

/// How a time-slice SLO's slices are judged, for the database.
pub fn judge_of(slo: &crate::config::Slo) -> Option<Judge> {
    match (&slo.sli, slo.budgeting) {
        (_, Budgeting::Occurrences) => None,
        (
            Sli::TokensPerKwh {
                threshold,
                min_tokens,
            },
            _,
        ) => Some(Judge::TokensPerKwh {
            threshold: *threshold,
            min_tokens: *min_tokens as f64,
        }),
        (_, Budgeting::Timeslices { slice_target, .. }) => Some(Judge::Ratio { slice_target }),
    }
}

/// Sums of one SLO (or of the cells' totals) for one cell: every window of `math::WINDOWS`, the
/// period, and the last few minutes (the no-data test). Each is `[good, total, tokens, joules,
/// requests]`; for time slices, good and total count judged slices.
#[derive(Debug, Clone, Default)]
struct Sums {
    windows: Vec<[f64; 5]>,
    period: [f64; 5],
    recent: [f64; 5],
}

fn add(a: &mut [f64; 5], b: &[f64; 5]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

/// The tables of the ledger by resolution, and the alignment of their rows (seconds).
const TIERS: [(crate::ledger::Table, i64); 3] = [
    (crate::ledger::Table::Minutes, 60),
    (crate::ledger::Table::Hours, 3600),
    (crate::ledger::Table::Days, 86_400),
];

/// Splits `[from, to)` into pieces read from the coarsest table that covers them exactly:
/// (tier, from, to). A 6-hour window is a few minute rows at each end and five hourly rows; a
/// month is some hours at each end and whole days between.
fn pieces(from: i64, to: i64, tier: usize, out: &mut Vec<(usize, i64, i64)>) {
    if from >= to {
        return;
    }
    let Some(&(_, next)) = TIERS.get(tier + 1) else {
        out.push((tier, from, to));
        return;
    };
    let a = (from + next - 1).div_euclid(next) * next;
    let b = to.div_euclid(next) * next;
    if a >= b {
        out.push((tier, from, to));
        return;
    }
    if from < a {
        out.push((tier, from, a));
    }
    pieces(a, b, tier + 1, out);
    if b < to {
        out.push((tier, b, to));
    }
}

fn hour(t: i64) -> i64 {
    t - t.rem_euclid(3600)
}

/// Where the period's sums start: on the hour. A rolling period starts at the top of the hour
/// in which it begins (up to 59 minutes more); a calendar month in a time zone whose offset is
/// not whole hours starts at the next full hour, so the previous month never counts.
fn period_hour(slo: Option<&crate::config::Slo>, p: i64) -> i64 {
    match slo.map(|s| &s.period) {
        Some(crate::config::Period::CalendarMonth(_)) if p.rem_euclid(3600) != 0 => hour(p) + 3600,
        _ => hour(p),
    }
}

/// Sums per cell of one SLO's rows (`None`: the cells' totals) at `now`. Windows up to 6h
/// cover exactly the slices that start in their last `w` seconds; a day and longer, and the
/// period, start on the hour. Each range is read from the coarsest table that covers it
/// exactly (minute rows at the edges, hourly and daily rollups between): one query per table,
/// one index range scan per stretch, summed in the database.
async fn slo_sums(
    ledger: &Ledger,
    slo: Option<&crate::config::Slo>,
    now: i64,
) -> Result<std::collections::HashMap<String, Sums>, LedgerError> {
    let columns = Columns::of(slo);
    // (end of the windows, period start, start of "recent").
    let (to, period, recent_from) = match slo {
        None => (now + 1, None, now - 300),
        Some(s) => {
            let (start, _) = math::period_bounds(&s.period, now);
            match (s.budgeting, judge_of(s)) {
                (Budgeting::Timeslices { slice, .. }, Some(_)) => (
                    math::slice_start(now, slice),
                    Some(start),
                    now - (slice.as_secs() as i64 * 2).max(300),
                ),
                _ => (now + 1, Some(start), now - 300),
            }
        }
    };
    // Every range summed: the windows, the period, "recent" (minute rows only).
    let mut ranges: Vec<(i64, i64)> = math::WINDOWS
        .iter()
        .map(|(_, w)| {
            let from = to - *w as i64;
            (if *w > 21_600 { hour(from) } else { from }, to)
        })
        .collect();
    ranges.push(period.map_or((to, to), |p| (period_hour(slo, p), to)));
    let split: Vec<Vec<(usize, i64, i64)>> = ranges
        .iter()
        .map(|(from, to)| {
            let mut v = Vec::new();
            pieces(*from, *to, 0, &mut v);
            v
        })
        .chain([vec![(0, recent_from, now + 1)]])
        .collect();
    let per_tier = tier_bands(ledger, &columns, &split).await?;
    let cells: std::collections::BTreeSet<&String> =
        per_tier.iter().flat_map(|(_, s)| s.keys()).collect();
    let mut out = std::collections::HashMap::new();
    for cell in cells {
        let sum_of = |pieces: &[(usize, i64, i64)]| {
            let mut acc = [0.0; 5];
            for (tier, from, to) in pieces {
                let (bounds, sums) = &per_tier[*tier];
                let Some(bands) = sums.get(cell) else {
                    continue;
                };
                for (i, band) in bands.iter().enumerate() {
                    if bounds[i] >= *from && bounds[i + 1] <= *to {
                        add(&mut acc, band);
                    }
                }
            }
            acc
        };
        let n = math::WINDOWS.len();
        out.insert(
            cell.clone(),
            Sums {
                windows: split[..n].iter().map(|p| sum_of(p)).collect(),
                period: sum_of(&split[n]),
                recent: sum_of(&split[n + 1]),
            },
        );
    }
    Ok(out)
}

/// Sums per cell of one SLO's rows (`None`: the cells' totals) over `[from, to)`, each piece
/// from the coarsest table that covers it (see [`evaluate`]): `[good, total, tokens, joules,
/// requests]`, good and total counting judged slices for a time-slice SLO.
pub async fn range_sums(
    ledger: &Ledger,
    slo: Option<&crate::config::Slo>,
    from: i64,
    to: i64,
) -> Result<std::collections::HashMap<String, [f64; 5]>, LedgerError> {
    let mut split = Vec::new();
    pieces(from, to, 0, &mut split);
    let mut out: std::collections::HashMap<String, [f64; 5]> = std::collections::HashMap::new();
    // Every kept band lies in the range; the others are zero.
    for (_, sums) in tier_bands(ledger, &Columns::of(slo), &[split]).await? {
        for (cell, bands) in sums {
            let acc = out.entry(cell).or_insert([0.0; 5]);
            for b in &bands {
                add(acc, b);
            }
        }
    }
    Ok(out)
}

/// What is summed for an SLO (or the cells' totals): its name in the ledger, the five columns
/// of minute rows and of rollups (judged verdicts for a time-slice SLO), and the verdicts'
/// parameters.
struct Columns {
    name: String,
    minute: [String; 5],
    rollup: [String; 5],
    params: Vec<f64>,
}

impl Columns {
    fn of(slo: Option<&crate::config::Slo>) -> Columns {
        let cols = |g: &str, t: &str| -> [String; 5] {
            [
                g.to_string(),
                t.to_string(),
                "tokens".into(),
                "joules".into(),
                "requests".into(),
            ]
        };
        let plain = cols("good", "total");
        match slo.map(|s| (s, judge_of(s))) {
            Some((s, Some(j))) => {
                let (g, t, params) = j.sql(1);
                Columns {
                    name: s.name.clone(),
                    minute: cols(&g, &t),
                    rollup: cols("judged_good", "judged_total"),
                    params,
                }
            }
            other => Columns {
                name: other.map_or(String::new(), |(s, _)| s.name.clone()),
                minute: plain.clone(),
                rollup: plain,
                params: Vec::new(),
            },
        }
    }
}

/// Per tier (minutes, hours, days): the band bounds of every piece of `split` in that tier and
/// the sums per cell and band, one query per table.
async fn tier_bands(
    ledger: &Ledger,
    c: &Columns,
    split: &[Vec<(usize, i64, i64)>],
) -> Result<Vec<(Vec<i64>, std::collections::HashMap<String, Vec<[f64; 5]>>)>, LedgerError> {
    let mut per_tier = Vec::new();
    for (tier, (table, _)) in TIERS.iter().enumerate() {
        let mine: Vec<(i64, i64)> = split
            .iter()
            .flatten()
            .filter(|(t, ..)| *t == tier)
            .map(|(_, a, b)| (*a, *b))
            .collect();
        let mut bounds: Vec<i64> = mine.iter().flat_map(|(a, b)| [*a, *b]).collect();
        bounds.sort_unstable();
        bounds.dedup();
        let keep: Vec<bool> = bounds
            .windows(2)
            .map(|w| mine.iter().any(|(a, b)| *a <= w[0] && w[1] <= *b))
            .collect();
        let (cols, params) = if tier == 0 {
            (&c.minute, c.params.as_slice())
        } else {
            (&c.rollup, &[][..])
        };
        let sums = ledger
            .bands(*table, &c.name, &bounds, &keep, cols, params)
            .await?;
        per_tier.push((bounds, sums));
    }
    Ok(per_tier)
}

/// Evaluates every SLO of every cell at `now` from the ledger. First the time slices completed
/// since the last evaluation are judged, once, into the rollups; then every SLO and the cells'
/// totals are summed in the database, three queries each for every cell at once.
pub async fn evaluate(config: &Config, ledger: &Ledger, now: i64) -> Result<Report, LedgerError> {
    evaluate_with(config, ledger, now, true).await
}

/// As [`evaluate`]; a standby engine (not the leader) passes `judge: false` and reads the
/// verdicts the leader judged, writing nothing.
pub async fn evaluate_with(
    config: &Config,
    ledger: &Ledger,
    now: i64,
    judge: bool,
) -> Result<Report, LedgerError> {
    let mut report = Report {
        at: now,
        ..Default::default()
    };
    let keep = retention(config);
    for slo in config.slos.iter().filter(|_| judge) {
        if let (Budgeting::Timeslices { slice, .. }, Some(j)) = (slo.budgeting, judge_of(slo)) {
            ledger
                .judge(
                    &slo.name,
                    &j,
                    slice.as_secs() as i64,
                    now - keep,
                    math::slice_start(now, slice),
                )
                .await?;
        }
    }
    // Every SLO and the totals at once: PostgreSQL answers them on several connections.
    let mut all = futures_util::future::try_join_all(
        config
            .slos
            .iter()
            .map(Some)
            .chain([None])
            .map(|s| slo_sums(ledger, s, now)),
    )
    .await?;
    let totals = all.pop().unwrap_or_default();
    let slo_sums_by_name: BTreeMap<String, _> = config
        .slos
        .iter()
        .map(|s| s.name.clone())
        .zip(all)
        .collect();
    let n = math::WINDOWS.len();

    for cell in &config.cells {
        let mut headroom: Option<f64> = None;
        let mut paging = false;
        let mut any_data = false;
        for slo in config.slos.iter().filter(|s| s.cells.contains(&cell.name)) {
            let page_factor = crate::rules::burn_factor(
                0.02,
                3600,
                math::period_length(&slo.period, now).as_secs(),
            );
            let sums = slo_sums_by_name
                .get(&slo.name)
                .and_then(|m| m.get(&cell.name))
                .cloned()
                .unwrap_or_else(|| Sums {
                    windows: vec![[0.0; 5]; n],
                    ..Default::default()
                });
            let tally = |s: &[f64; 5]| math::Tally {
                good: s[0],
                total: s[1],
            };
            let tallies: Vec<math::Tally> = sums.windows.iter().map(tally).collect();
            let period = tally(&sums.period);
            let data_missing = !(sums.recent[1] > 0.0 || sums.recent[2] > 0.0);
            let mut windows = Vec::new();
            for ((name, _), t) in math::WINDOWS.iter().zip(&tallies) {
                let mut w = window_report(name, math::window_state(slo, *t));
                w.total = t.total;
                if *name == "1h" && w.burn_rate.is_some_and(|b| b >= page_factor) {
                    paging = true;
                }
                windows.push(w);
            }
            let mut w = window_report("period", math::window_state(slo, period));
            w.total = period.total;
            windows.push(w);
            any_data |= !data_missing;
            let budget = math::budget_from_tally(slo, period, now);
            if let Some(b) = budget {
                headroom = Some(headroom.map_or(b, |h: f64| h.min(b)));
            }
            report.slos.push(SloReport {
                cell: cell.name.clone(),
                slo: slo.name.clone(),
                objective: slo.objective,
                budget_remaining: budget,
                data_missing,
                windows,
            });
        }
        let sums = totals.get(&cell.name);
        let mut tpk = BTreeMap::new();
        let mut kpr = BTreeMap::new();
        for (i, (name, _)) in math::WINDOWS.iter().enumerate() {
            let s = sums.map(|s| s.windows[i]).unwrap_or_default();
            tpk.insert(name.to_string(), math::tokens_per_kwh(s[2], s[3]));
            kpr.insert(name.to_string(), math::kwh_per_1k_requests(s[3], s[4]));
        }
        let recent_totals = sums.is_some_and(|s| s.recent[2..].iter().any(|v| *v > 0.0));
        report.cells.push(CellReport {
            cell: cell.name.clone(),
            tokens_per_kwh: tpk,
            kwh_per_1k_requests: kpr,
            budget_headroom: headroom,
            healthy: (any_data || recent_totals) && !paging,
        });
    }
    Ok(report)
}

/// The longest fixed window (3 days), seconds.
const WINDOWS_MAX: i64 = 259_200;

/// How long minute rows of occurrence SLOs and cell totals are kept: windows up to 6h read them.
const MINUTE_RETENTION: i64 = 86_400;

/// The report as metrics.
pub fn samples(report: &Report) -> Vec<Sample> {
    let mut out = Vec::new();
    for s in &report.slos {
        let l = [s.cell.as_str(), s.slo.as_str()];
        out.push(Sample::new(&m::SLO_OBJECTIVE, &l, s.objective));
        out.push(Sample::new(
            &m::SLO_DATA_MISSING,
            &l,
            if s.data_missing { 1.0 } else { 0.0 },
        ));
        if let Some(b) = s.budget_remaining {
            out.push(Sample::new(&m::SLO_BUDGET_REMAINING, &l, b));
        }
        for w in &s.windows {
            let lw = [s.cell.as_str(), s.slo.as_str(), w.window.as_str()];
            if let Some(v) = w.sli {
                out.push(Sample::new(&m::SLO_SLI, &lw, v));
            }
            if let Some(v) = w.burn_rate {
                out.push(Sample::new(&m::SLO_BURN_RATE, &lw, v));
            }
        }
    }
    for c in &report.cells {
        for (w, v) in &c.tokens_per_kwh {
            if let Some(v) = v {
                out.push(Sample::new(&m::CELL_TOKENS_PER_KWH, &[&c.cell, w], *v));
            }
        }
        for (w, v) in &c.kwh_per_1k_requests {
            if let Some(v) = v {
                out.push(Sample::new(&m::CELL_KWH_PER_1K, &[&c.cell, w], *v));
            }
        }
    }
    out
}

/// The pending and firing alerts as metrics (as Prometheus' ALERTS).
pub fn alert_samples(state: &alerting::State) -> Vec<Sample> {
    state
        .alerts
        .values()
        .filter(|a| a.resolved_at.is_none())
        .map(|a| {
            let get = |k: &str| a.labels.get(k).map_or("", String::as_str);
            let st = if a.firing() { "firing" } else { "pending" };
            Sample::new(
                &m::SLO_ALERTS,
                &[
                    get("cell"),
                    get("alertname"),
                    get("slo"),
                    get("severity"),
                    st,
                ],
                1.0,
            )
        })
        .collect()
}

/// The scrape source's baselines as this engine last read or wrote them, by node (`cell/node`);
/// `None` until read from the ledger (at start, after standing by, after a conflict).
pub type Baselines = Option<std::collections::HashMap<String, scrape::Baseline>>;

/// Reads every node's baseline from the ledger; an unreadable one counts as a baseline too old
/// to compare with (the node's next reading replaces it).
async fn load_baselines(
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
/// ledger are recorded as slices of `now`, moving the baselines in the same transaction. A
/// write that fails moves nothing: the next one records the increases (once). A standby
/// (`record` false) records nothing and forgets its baselines: when it leads, it starts from
/// the ledger's, where the last leader left them.
///
/// The baselines are read before the nodes are scraped, so every reading is newer than the
/// baseline it is compared with; when another engine moved a baseline since (two engines that
/// both believe they lead, a leader that stalled), nothing is written
/// ([`LedgerError::Moved`]) and the next scrape starts from the ledger's baselines.
pub async fn scrape_once(
    config: &Config,
    ledger: &Ledger,
    client: &reqwest::Client,
    baselines: &mut Baselines,
    now: i64,
    max_gap: i64,
    record: bool,
) -> Result<Scraped, LedgerError> {
    if !record {
        *baselines = None;
    } else if baselines.is_none() {
        *baselines = Some(load_baselines(ledger).await?);
    }
    let mut problems = Vec::new();
    let mut down = std::collections::BTreeSet::new();
    let mut readings: Vec<(&str, Vec<(String, scrape::Reading)>)> = Vec::new();
    for cell in &config.cells {
        let auth = match &config.source {
            Source::Scrape {
                basic_auth: Some(b),
                ..
            } => Some((b.username.clone(), b.password())),
            _ => None,
        };
        let fetches = cell.nodes.iter().map(|n| {
            let auth = auth.clone();
            async move {
                // Credentials in a URL never reach the logs.
                let url = cellwatch_http::tls::without_credentials(&n.url);
                let r = async {
                    let mut req = client.get(&n.url);
                    if let Some((user, pass)) = auth {
                        req = req.basic_auth(user, Some(pass?));
                    }
                    let resp = req
                        .send()
                        .await
                        .map_err(|e| format!("{url}: {}", e.without_url()))?;
                    if !resp.status().is_success() {
                        return Err(format!("{url}: HTTP {}", resp.status()));
                    }
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| format!("{url}: {}", e.without_url()))?;
                    scrape::read(&text).map_err(|e| format!("{url}: {e}"))
                }
                .await;
                (n.name.clone(), r)
            }
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
        readings.push((&cell.name, ok));
    }
    let scraped = Scraped { problems, down };
    let Some(base) = baselines.as_mut() else {
        return Ok(scraped);
    };
    let mut rows: Vec<(String, String, SliceData)> = Vec::new();
    let mut moves = Vec::new();
    for (cell, nodes) in &readings {
        let mut incs = Vec::new();
        for (node, reading) in nodes {
            let key = format!("{cell}/{node}");
            let step = scrape::step(base.get(&key), now, reading, max_gap);
            incs.extend(step.increases);
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
        rows.extend(cell_rows(config, cell, now, &incs));
    }
    let written: Vec<(String, Option<i64>, i64, String)> = moves
        .iter()
        .map(|(k, g, at, json, _)| (k.clone(), *g, *at, json.clone()))
        .collect();
    match ledger.record_scrape(&rows, &written).await {
        Ok(()) => {
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
            Ok(scraped)
        }
        Err(e) => {
            if matches!(e, LedgerError::Moved { .. }) {
                *baselines = None;
            }
            Err(e)
        }
    }
}

/// What one scrape of every node found wrong.
#[derive(Debug, Default)]
pub struct Scraped {
    /// One line per node that did not answer.
    pub problems: Vec<String>,
    /// Cells none of whose nodes answered.
    pub down: std::collections::BTreeSet<String>,
}

/// The rows (per SLO, and the cell's totals under `""`) that increases of a cell's nodes at
/// `at` add; none without increases.
fn cell_rows(
    config: &Config,
    cell: &str,
    at: i64,
    incs: &[scrape::Reading],
) -> Vec<(String, String, SliceData)> {
    let mut rows = Vec::new();
    // A maintenance window that excludes its slices from the budget: nothing is recorded.
    let excluded = config
        .maintenance
        .iter()
        .any(|m| m.exclude_from_budget && m.active(cell, at));
    if incs.is_empty() || excluded {
        return rows;
    }
    for slo in config
        .slos
        .iter()
        .filter(|s| s.cells.iter().any(|c| c == cell) && !matches!(s.sli, Sli::Ratio(_)))
    {
        let len = match slo.budgeting {
            Budgeting::Timeslices { slice, .. } => slice,
            Budgeting::Occurrences => Duration::from_secs(SLICE as u64),
        };
        let s = scrape::slice(slo, math::slice_start(at, len), incs);
        rows.push((cell.to_string(), slo.name.clone(), s));
    }
    let mut t = SliceData {
        start: math::slice_start(at, Duration::from_secs(SLICE as u64)),
        ..Default::default()
    };
    for inc in incs {
        let x = scrape::totals(inc);
        t.tokens += x.tokens;
        t.joules += x.joules;
        t.requests += x.requests;
    }
    rows.push((cell.to_string(), String::new(), t));
    rows
}

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
    feed: promsource::Feed,
    ratios: promsource::RatioFeed,
    /// The step of PromQL ratio queries (ms): the interval, within 1s..=1m, points aligned to
    /// it.
    step: i64,
    cursor: Option<i64>,
    /// The feeds hold no readings yet (a start, or after a failed write).
    fresh: bool,
}

/// How far back before the cursor each query reaches, so that a fresh start finds every
/// node's last reading before the cursor as its baseline (Prometheus' lookback, 5 minutes).
const LOOKBACK_MS: i64 = 300_000;
/// The longest stretch read in one query while backfilling.
const CHUNK_MS: i64 = 1_800_000;

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
            feed: promsource::Feed::default(),
            ratios: promsource::RatioFeed::default(),
            step: interval.as_millis().clamp(1000, 60_000) as i64 / 1000 * 1000,
            cursor: None,
            fresh: true,
        }
    }

    async fn query(&self, expr: &str, at_ms: i64) -> Result<Vec<promsource::Series>, QueryError> {
        self.api("query", &[("query", expr), ("time", &secs(at_ms))])
            .await
    }

    async fn query_range(
        &self,
        expr: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<promsource::Series>, QueryError> {
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
    ) -> Result<Vec<promsource::Series>, QueryError> {
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
        match promsource::parse_matrix(&body) {
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
        let cells: Vec<String> = config
            .cells
            .iter()
            .map(|c| c.name.replace('.', "\\."))
            .collect();
        let series = self
            .query(&format!("up{{cell=~\"{}\"}}[5m]", cells.join("|")), at_ms)
            .await?;
        Ok(promsource::down_cells(&series))
    }

    /// Forgets what it read: when it leads again it starts from the ledger's cursor, which the
    /// leader moved meanwhile.
    pub fn stand_by(&mut self) {
        self.feed = promsource::Feed::default();
        self.ratios = promsource::RatioFeed::default();
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
        let cells: Vec<&str> = config.cells.iter().map(|c| c.name.as_str()).collect();
        while cursor < to {
            let end = (cursor + CHUNK_MS).min(to);
            // A fresh feed reaches back for every node's last reading before the cursor (its
            // baseline); afterwards the feed holds them, and a second of overlap is enough.
            let lookback = if self.fresh { LOOKBACK_MS } else { 1000 };
            let range = (end - cursor + lookback + 999) / 1000;
            // Every query first: a failed one leaves the feeds where they were.
            let series = self
                .query(&promsource::selector(&cells, range), end)
                .await?;
            // PromQL ratio SLIs: one point a step, the events of the step before it.
            let (first, last) = (
                (cursor - if self.fresh { LOOKBACK_MS } else { 0 }).div_euclid(self.step)
                    * self.step,
                end.div_euclid(self.step) * self.step,
            );
            let mut ratio_results = Vec::new();
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
                    let result = self.query_range(expr, first, last).await?;
                    ratio_results.push((slo, q.counter, expr, result, to_good, to_total));
                }
            }

            let incs = self.feed.feed(promsource::readings(&series), cursor, end);
            self.fresh = false;
            let mut sums: BTreeMap<(String, String, i64), SliceData> = BTreeMap::new();
            for i in &incs {
                // Configured nodes only, as the scrape source reads them.
                let known = config
                    .cells
                    .iter()
                    .any(|c| c.name == i.cell && c.nodes.iter().any(|n| n.name == i.node));
                if !known {
                    continue;
                }
                for (cell, slo, s) in cell_rows(config, &i.cell, i.at, std::slice::from_ref(&i.inc))
                {
                    let e = sums.entry((cell, slo, s.start)).or_insert(SliceData {
                        start: s.start,
                        ..Default::default()
                    });
                    e.good += s.good;
                    e.total += s.total;
                    e.tokens += s.tokens;
                    e.joules += s.joules;
                    e.requests += s.requests;
                }
            }
            for (slo, counter, expr, result, to_good, to_total) in ratio_results {
                let len = match slo.budgeting {
                    Budgeting::Timeslices { slice, .. } => slice,
                    Budgeting::Occurrences => Duration::from_secs(SLICE as u64),
                };
                let name = format!("{}\u{0}{expr}", slo.name);
                for e in self.ratios.feed(&name, &result, counter, last, cursor) {
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
                    row.good += to_good * e.events;
                    row.total += to_total * e.events;
                }
            }
            let rows: Vec<(String, String, SliceData)> = sums
                .into_iter()
                .map(|((cell, slo, _), s)| (cell, slo, s))
                .collect();
            // Only if the cursor is still where this engine read it: another engine that led
            // meanwhile recorded this stretch.
            if let Err(e) = ledger.record_chunk(&rows, &self.key, expected, end).await {
                // Start again from the ledger's cursor next time: the feed has moved on.
                self.feed = promsource::Feed::default();
                self.ratios = promsource::RatioFeed::default();
                self.cursor = None;
                self.fresh = true;
                return Err(e.into());
            }
            cursor = end;
            expected = Some(end);
            self.cursor = Some(cursor);
        }
        Ok(cursor.div_euclid(1000))
    }
}

#[derive(Clone)]
struct AppState {
    last: Arc<Mutex<(Report, String)>>,
    alerts: Arc<Mutex<alerting::State>>,
    silences: SilenceStore,
    ledger: Ledger,
    clock: Clock,
    token: Option<crate::config::TokenSource>,
    limits: Limits,
}

/// The engine's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most silences active or pending at once (`--silences.max-active`): a POST beyond it is
    /// refused.
    pub max_silences: usize,
    /// The listener's bounds (`--web.read-header-timeout`, `--web.read-timeout`,
    /// `--web.max-connections`).
    pub web: cellwatch_http::web::Limits,
}

/// The default bound on active and pending silences.
pub const DEFAULT_MAX_SILENCES: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_silences: DEFAULT_MAX_SILENCES,
            web: Default::default(),
        }
    }
}

type Compiled = Arc<alerting::CompiledSilence>;

/// The silences as the engine holds them: every silence of the ledger, newest first, each
/// compiled once (when created here or first read from the ledger). Requests and evaluations
/// read the snapshot; writes (a POST, an expiry, a refresh from the ledger) take turns.
#[derive(Clone, Default)]
struct SilenceStore {
    writes: Arc<tokio::sync::Mutex<()>>,
    all: Arc<Mutex<Arc<Vec<Compiled>>>>,
}

impl SilenceStore {
    fn snapshot(&self) -> Arc<Vec<Compiled>> {
        self.all.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Newest first, then by id: the ledger's order.
    fn order(a: &Compiled, b: &Compiled) -> std::cmp::Ordering {
        (b.silence.starts_at, &a.silence.id).cmp(&(a.silence.starts_at, &b.silence.id))
    }

    fn replace(&self, mut v: Vec<Compiled>) {
        v.sort_by(SilenceStore::order);
        *self.all.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
    }

    fn add(&self, c: Compiled) {
        let mut all = self.all.lock().unwrap_or_else(|e| e.into_inner());
        let v = Arc::make_mut(&mut all);
        let at = v.partition_point(|x| SilenceStore::order(x, &c).is_lt());
        v.insert(at, c);
    }

    /// Takes what the ledger holds (silences made or expired by other engines too), keeping
    /// the compiled matchers of the silences already known.
    async fn refresh(&self, ledger: &Ledger) -> Result<(), LedgerError> {
        let _turn = self.writes.lock().await;
        let fresh = ledger.silences().await?;
        let known: std::collections::HashMap<String, Compiled> = self
            .snapshot()
            .iter()
            .map(|c| (c.silence.id.clone(), c.clone()))
            .collect();
        let mut out = Vec::with_capacity(fresh.len());
        for s in fresh {
            match known.get(&s.id) {
                Some(c) if c.silence == s => out.push(c.clone()),
                Some(c) if c.silence.matchers == s.matchers => out.push(Arc::new(c.with(s))),
                _ => {
                    let id = s.id.clone();
                    match s.compile() {
                        Ok(c) => out.push(Arc::new(c)),
                        Err(e) => {
                            tracing::warn!(id = %id, error = %e, "a stored silence does not compile; it mutes nothing")
                        }
                    }
                }
            }
        }
        self.replace(out);
        Ok(())
    }
}

type ApiError = (axum::http::StatusCode, axum::Json<serde_json::Value>);

fn api_error(code: axum::http::StatusCode, message: impl Into<String>) -> ApiError {
    (
        code,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
}

/// Writes need `Authorization: Bearer <token>`, compared in constant time; without a configured
/// token the API is read-only.
fn authorize(s: &AppState, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
    use axum::http::StatusCode;
    let Some(want) = s.token.as_ref().and_then(|t| t.read()) else {
        return Err(api_error(
            StatusCode::FORBIDDEN,
            "writes are disabled: set alerting.api_token_file or alerting.api_token_env",
        ));
    };
    let got = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same = got.len() == want.len()
        && got
            .bytes()
            .zip(want.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        Ok(())
    } else {
        Err(api_error(
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is needed",
        ))
    }
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PostableSilence {
    matchers: Vec<alerting::Matcher>,
    #[serde(default)]
    starts_at: Option<String>,
    ends_at: String,
    created_by: String,
    comment: String,
}

fn parse_time(field: &str, v: &str) -> Result<i64, ApiError> {
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp())
        .map_err(|e| {
            api_error(
                axum::http::StatusCode::BAD_REQUEST,
                format!("{field} {v:?}: {e} (RFC 3339, e.g. 2026-11-25T10:00:00Z)"),
            )
        })
}

fn silence_json(x: &alerting::Silence, now: i64) -> serde_json::Value {
    let t = |s: i64| {
        chrono::DateTime::from_timestamp(s, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    serde_json::json!({
        "id": x.id,
        "matchers": x.matchers,
        "startsAt": t(x.starts_at),
        "endsAt": t(x.ends_at),
        "createdBy": x.created_by,
        "comment": x.comment,
        "status": { "state": x.state(now) },
    })
}

async fn list_silences(State(s): State<AppState>) -> axum::Json<serde_json::Value> {
    let now = s.clock.now_ms().div_euclid(1000);
    let all = s.silences.snapshot();
    axum::Json(serde_json::json!({
        "silences": all.iter().map(|x| silence_json(&x.silence, now)).collect::<Vec<_>>()
    }))
}

/// A new silence's id: a random UUID (version 4), as Alertmanager makes them.
fn silence_id() -> Result<String, getrandom::Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    ))
}

async fn post_silence(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use axum::http::StatusCode;
    authorize(&s, &headers)?;
    let p: PostableSilence = serde_json::from_slice(&body)
        .map_err(|e| api_error(StatusCode::BAD_REQUEST, format!("silence: {e}")))?;
    let now = s.clock.now_ms().div_euclid(1000);
    let starts_at = match &p.starts_at {
        Some(v) => parse_time("startsAt", v)?,
        None => now,
    };
    let ends_at = parse_time("endsAt", &p.ends_at)?;
    if ends_at <= starts_at || ends_at <= now {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "endsAt must be later than startsAt and than now",
        ));
    }
    if p.matchers.is_empty() || p.created_by.trim().is_empty() || p.comment.trim().is_empty() {
        return Err(api_error(
            StatusCode::BAD_REQUEST,
            "a silence needs matchers, createdBy and comment",
        ));
    }
    let id = silence_id().map_err(|e| {
        api_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("no random silence id: {e}"),
        )
    })?;
    let compiled = alerting::Silence {
        id: id.clone(),
        matchers: p.matchers,
        starts_at,
        ends_at,
        created_by: p.created_by,
        comment: p.comment,
    }
    .compile()
    .map_err(|e| api_error(StatusCode::BAD_REQUEST, format!("silence: {e}")))?;
    let max = s.limits.max_silences;
    {
        let _turn = s.silences.writes.lock().await;
        let added = s
            .ledger
            .add_silence(&compiled.silence, now, max)
            .await
            .map_err(|e| api_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        if !added {
            return Err(api_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "silence: {max} silences are active or pending, the limit (--silences.max-active): expire some first"
                ),
            ));
        }
        s.silences.add(Arc::new(compiled.clone()));
    }
    tracing::info!(id = %id, created_by = %compiled.silence.created_by, "silence created");
    Ok(axum::Json(serde_json::json!({ "silenceID": id })))
}

async fn expire_silence(
    State(s): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    use axum::http::StatusCode;
    authorize(&s, &headers)?;
    let now = s.clock.now_ms().div_euclid(1000);
    let _turn = s.silences.writes.lock().await;
    match s.ledger.expire_silence(&id, now).await {
        Ok(true) => {
            let all = s
                .silences
                .snapshot()
                .iter()
                .map(|c| {
                    if c.silence.id == id {
                        let mut x = c.silence.clone();
                        x.ends_at = now;
                        Arc::new(c.with(x))
                    } else {
                        c.clone()
                    }
                })
                .collect();
            s.silences.replace(all);
            tracing::info!(id = %id, "silence expired");
            Ok(axum::Json(serde_json::json!({ "expired": id })))
        }
        Ok(false) => Err(api_error(
            StatusCode::NOT_FOUND,
            format!("no active or pending silence {id:?}"),
        )),
        Err(e) => Err(api_error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn api_alerts(State(s): State<AppState>) -> impl IntoResponse {
    let a = s.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let alerts: Vec<serde_json::Value> = a
        .alerts
        .values()
        .map(|x| {
            serde_json::json!({
                "labels": x.labels,
                "annotations": x.annotations,
                "fingerprint": x.fingerprint,
                "state": if x.firing() { "firing" } else if x.resolved_at.is_some() { "resolved" } else { "pending" },
                "active_since": x.active_since,
                "fired_at": x.fired_at,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "alerts": alerts }))
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = s.last.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
    (
        [(
            header::CONTENT_TYPE,
            cellwatch_http::exposition::TEXT_FORMAT,
        )],
        text,
    )
}

async fn api_slos(State(s): State<AppState>) -> impl IntoResponse {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    axum::Json(serde_json::json!({ "at": r.at, "slos": r.slos }))
}

async fn status_page(State(s): State<AppState>) -> impl IntoResponse {
    let report = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    let alerts = s.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let silences = s.silences.snapshot();
    let now = s.clock.now_ms().div_euclid(1000);
    let silences: Vec<&alerting::Silence> = silences.iter().map(|c| &c.silence).collect();
    axum::response::Html(crate::status::page(&report, &alerts, &silences, now))
}

async fn api_cells(State(s): State<AppState>) -> impl IntoResponse {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    axum::Json(serde_json::json!({ "at": r.at, "cells": r.cells }))
}

/// One period plus a margin (a calendar month counts as its longest, 31 days), and never less
/// than the longest fixed window: how long the ledger keeps rows and how far a first start of
/// the `prometheus` source backfills.
pub fn retention(config: &Config) -> i64 {
    config
        .slos
        .iter()
        .map(|s| match s.period {
            crate::config::Period::Rolling(d) => d.as_secs() as i64,
            crate::config::Period::CalendarMonth(_) => 31 * 86400,
        })
        .max()
        .unwrap_or(0)
        .max(WINDOWS_MAX)
        + 86400
}

enum Feeder {
    Scrape {
        client: reqwest::Client,
        baselines: Baselines,
        max_gap: i64,
        last_problems: String,
    },
    Prometheus(Box<PromSource>),
}

/// Delivers due outbox rows until the process ends: woken when rows are queued, and every
/// second for retries. A failed attempt is retried with capped exponential backoff; rows
/// survive restarts in the ledger.
async fn deliver_forever(
    alerting: crate::config::Alerting,
    ledger: Ledger,
    wake: Arc<tokio::sync::Notify>,
    clock: Clock,
    is_leader: Arc<std::sync::atomic::AtomicBool>,
) {
    let client = cellwatch_http::tls::http_client()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        if !is_leader.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let now = clock.now_ms().div_euclid(1000);
        let rows = match ledger.due(now, 5).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                continue;
            }
        };
        for row in rows {
            if !is_leader.load(std::sync::atomic::Ordering::Relaxed) {
                break; // the claim lapses; the new leader delivers the rest
            }
            let outcome = notify::deliver(&alerting, &client, &row).await;
            let now = clock.now_ms().div_euclid(1000);
            let recorded = match &outcome {
                Ok(()) => {
                    tracing::info!(key = %row.key, receiver = %row.receiver, integration = %row.integration, attempts = row.attempts + 1, "notification delivered");
                    ledger.attempted(&row.key, now, Ok(())).await
                }
                Err(e) => {
                    let retry = now + notify::retry_after(row.attempts);
                    tracing::warn!(key = %row.key, receiver = %row.receiver, integration = %row.integration, attempts = row.attempts + 1, error = %e, "delivery failed; will retry");
                    ledger.attempted(&row.key, now, Err((e, retry))).await
                }
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, key = %row.key, "recording a delivery failed");
            }
        }
    }
}

/// Takes and renews the leader lease every quarter interval; the lease lasts 1.25 intervals, so
/// a standby holds it within 1.5 intervals of the leader's death, and evaluates as the leader
/// at once.
async fn hold_lease(
    ledger: Ledger,
    me: String,
    interval: Duration,
    clock: Clock,
    is_leader: Arc<std::sync::atomic::AtomicBool>,
    took: Arc<tokio::sync::Notify>,
) {
    let ttl = (interval.as_millis() as i64 * 5 / 4).max(100);
    let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(25)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = match ledger.lease("leader", &me, clock.now_ms(), ttl).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot reach the ledger for the leader lease; standing by");
                false
            }
        };
        let had = is_leader.swap(held, std::sync::atomic::Ordering::Relaxed);
        if held && !had {
            tracing::info!(engine = %me, "took the leader lease");
            // Evaluate now, not at the next tick.
            took.notify_one();
        } else if had && !held {
            tracing::warn!(engine = %me, "lost the leader lease; standing by");
        }
    }
}

/// The engine's clock: the system's, moved by the seconds in an offset file when one is given
/// (for end-to-end tests that skip hours).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// A file holding an offset in seconds.
    pub offset_file: Option<std::path::PathBuf>,
}

impl Clock {
    /// Now, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let offset = self
            .offset_file
            .as_ref()
            .and_then(|f| cellwatch_http::file::read_text(f, 64).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        now_ms().saturating_add(offset.saturating_mul(1000))
    }
}

/// Runs the engine until the process ends.
pub async fn run(config: Config, ledger: Ledger, listen: &str) -> std::io::Result<()> {
    run_with(config, ledger, listen, Clock::default()).await
}

/// Runs the engine with a given clock.
pub async fn run_with(
    config: Config,
    ledger: Ledger,
    listen: &str,
    clock: Clock,
) -> std::io::Result<()> {
    run_web(config, ledger, listen, clock, None, Limits::default()).await
}

/// As [`run_with`], serving over TLS and behind basic authentication when `web` says so
/// (`--web.config.file`); silence writes keep authenticating with the API's bearer token.
pub async fn run_web(
    config: Config,
    ledger: Ledger,
    listen: &str,
    clock: Clock,
    web: Option<cellwatch_http::web::WebConfig>,
    limits: Limits,
) -> std::io::Result<()> {
    let retention = retention(&config);
    let (interval, mut feeder) = match &config.source {
        Source::Scrape {
            interval, ca_pem, ..
        } => (
            *interval,
            Feeder::Scrape {
                client: {
                    let mut b = cellwatch_http::tls::http_client();
                    if let Some(pem) = ca_pem
                        && let Ok(tls) = cellwatch_http::tls::client_config(Some(pem))
                    {
                        b = b.use_preconfigured_tls(tls);
                    }
                    b.timeout((*interval).min(Duration::from_secs(10)))
                        .build()
                        .unwrap_or_default()
                },
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
            Feeder::Prometheus(Box::new(PromSource::new(
                url,
                *interval,
                *delay,
                *timeout,
                headers,
                Duration::from_secs(retention as u64),
            ))),
        ),
    };
    let state = AppState {
        last: Arc::new(Mutex::new((Report::default(), String::new()))),
        alerts: Arc::new(Mutex::new(alerting::State::default())),
        ledger: ledger.clone(),
        clock: clock.clone(),
        token: config.alerting.api_token.clone(),
        silences: SilenceStore::default(),
        limits,
    };
    let routes = alerting::Routes::new(&config.alerting.routes);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(address = %listener.local_addr()?, cells = config.cells.len(), slos = config.slos.len(), "listening");
    let app = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/api/v1/slos", get(api_slos))
        .route("/api/v1/cells", get(api_cells))
        .route("/api/v1/alerts", get(api_alerts))
        .route("/api/v1/silences", get(list_silences).post(post_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .with_state(state.clone());
    // Loaded from the ledger when this engine takes the lead (below).
    let mut alerts = alerting::State::default();
    let wake = Arc::new(tokio::sync::Notify::new());
    let is_leader = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // This engine's name in the leader lease, and the lease's length: a standby takes over
    // within two intervals of the leader's last renewal.
    let me = format!("{}-{}", std::process::id(), now_ms() % 1_000_000);
    let mut leader = false;
    let took_lease = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(hold_lease(
        ledger.clone(),
        me.clone(),
        interval,
        clock.clone(),
        is_leader.clone(),
        took_lease.clone(),
    ));
    tokio::spawn(deliver_forever(
        config.alerting.clone(),
        ledger.clone(),
        wake.clone(),
        clock.clone(),
        is_leader.clone(),
    ));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_error = String::new();
        let mut down_cells = std::collections::BTreeSet::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = took_lease.notified() => {}
            }
            let now_ms = clock.now_ms();
            let was_leader = leader;
            leader = is_leader.load(std::sync::atomic::Ordering::Relaxed);
            if leader && !was_leader {
                tracing::info!(engine = %me, "leading: recording, judging, alerting and delivering");
                // Carry on from what the last leader saved.
                match ledger.alert_state().await {
                    Ok(Some(json)) => match serde_json::from_str(&json) {
                        Ok(a) => alerts = a,
                        Err(e) => {
                            tracing::error!(error = %e, "the saved alert state is unreadable; starting with none")
                        }
                    },
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "reading the alert state failed"),
                }
            }
            // The time the ledger is complete up to: evaluation windows end there.
            let t = match &mut feeder {
                Feeder::Scrape {
                    client,
                    baselines,
                    max_gap,
                    last_problems,
                } => {
                    let t = now_ms.div_euclid(1000);
                    // A standby scrapes too (which cells are down), but records nothing: the
                    // ledger's baselines say where the leader's records reach.
                    match scrape_once(&config, &ledger, client, baselines, t, *max_gap, leader)
                        .await
                    {
                        Ok(p) => {
                            down_cells = p.down;
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
                    t
                }
                Feeder::Prometheus(src) if !leader => {
                    src.stand_by();
                    (now_ms - src.delay.as_millis() as i64).div_euclid(1000)
                }
                Feeder::Prometheus(src) => match src.pull(&config, &ledger, now_ms).await {
                    Ok(t) => {
                        match src.down_cells(&config, now_ms).await {
                            Ok(d) => down_cells = d,
                            Err(e) => {
                                tracing::warn!(error = %e, "reading up from Prometheus failed")
                            }
                        }
                        if !last_error.is_empty() {
                            tracing::info!(url = %src.url, "Prometheus answers again");
                            last_error.clear();
                        }
                        t
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        if msg != last_error {
                            tracing::error!(error = %msg, "reading from Prometheus failed; retrying every interval");
                            last_error = msg;
                        }
                        continue;
                    }
                },
            };
            // Silences made or expired through another engine's API: compiled once each.
            if let Err(e) = state.silences.refresh(&ledger).await {
                tracing::error!(error = %e, "reading silences failed; using the ones held");
            }
            let started = std::time::Instant::now();
            let took = |started: std::time::Instant| {
                Sample::new(
                    &m::SLO_EVALUATION_DURATION,
                    &[],
                    started.elapsed().as_secs_f64(),
                )
            };
            match evaluate_with(&config, &ledger, t, leader).await {
                Ok(r) if !leader => {
                    let mut all = samples(&r);
                    all.push(took(started));
                    let text = encode(&all);
                    *state.last.lock().unwrap_or_else(|e| e.into_inner()) = (r, text);
                }
                Ok(r) => {
                    let a = &config.alerting;
                    let wanted = alerting::wanted(&config, &r, &down_cells, &a.timing);
                    let mut next = alerts.clone();
                    next.step_alerts(&wanted, t);
                    let silences = state.silences.snapshot();
                    let active: Vec<&alerting::CompiledSilence> = silences
                        .iter()
                        .map(|c| c.as_ref())
                        .filter(|c| c.silence.state(t) == "active")
                        .collect();
                    let maintenance = &config.maintenance;
                    let muted = |l: &alerting::Labels| alerting::muted(&active, maintenance, l, t);
                    let notes = next.dispatch(&routes, &a.timing, &muted, t);
                    let duration = took(started);
                    let rows = notify::outbox_rows(a, &notes);
                    let json = serde_json::to_string(&next).unwrap_or_default();
                    // The state change and its notifications, in one transaction.
                    match ledger
                        .save_alerts(&json, t, &rows, Some((&me, clock.now_ms())))
                        .await
                    {
                        Ok(()) => {
                            for n in &notes {
                                tracing::info!(cell = %n.cell, receiver = %n.receiver, status = %n.status, reason = %n.reason, alerts = n.alerts.len(), key = %n.key, "notification queued");
                            }
                            alerts = next;
                            *state.alerts.lock().unwrap_or_else(|e| e.into_inner()) =
                                alerts.clone();
                            if !rows.is_empty() {
                                wake.notify_one();
                            }
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "saving the alert state failed; evaluated again next interval")
                        }
                    }
                    let mut all = samples(&r);
                    all.extend(alert_samples(&alerts));
                    all.push(duration);
                    let text = encode(&all);
                    *state.last.lock().unwrap_or_else(|e| e.into_inner()) = (r, text);
                    // Scheduled reports due since the last tick (a restart or a failover within
                    // two intervals still sends them; their keys make them once only).
                    let since = match ledger.cursor("reports").await {
                        Ok(Some(ms)) => ms.div_euclid(1000),
                        _ => t - (2 * interval.as_secs() as i64).max(2),
                    }
                    .max(t - 86_400);
                    for sched in &config.alerting.reports {
                        for at in notify::occurrences(sched, since, t) {
                            match crate::report::build(&config, &ledger, at - sched.range, at).await
                            {
                                Ok(rep) => {
                                    let mail = notify::ReportMail {
                                        subject: format!("cellwatch budget report: {}", sched.name),
                                        text: crate::report::table(&rep),
                                        csv: crate::report::csv(&rep),
                                    };
                                    let row = notify::report_row(sched, at, &mail);
                                    match ledger.queue(&[row]).await {
                                        Ok(()) => {
                                            tracing::info!(report = %sched.name, receiver = %sched.receiver, "report queued");
                                            wake.notify_one();
                                        }
                                        Err(e) => {
                                            tracing::error!(error = %e, report = %sched.name, "queueing a report failed")
                                        }
                                    }
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, report = %sched.name, "building a report failed")
                                }
                            }
                        }
                    }
                    if !config.alerting.reports.is_empty()
                        && let Err(e) = ledger.record_upto(&[], Some(("reports", t * 1000))).await
                    {
                        tracing::error!(error = %e, "saving the reports cursor failed");
                    }
                }
                Err(e) => tracing::error!(error = %e, "evaluation failed"),
            }
            if leader && t % 3600 < interval.as_secs() as i64 {
                // Minute rows: a day for the short windows (longer ones come from the rollups),
                // the whole period for time-slice SLOs (judged again from them when their
                // threshold changes); rollups: the period.
                for slo in &config.slos {
                    let keep = match slo.budgeting {
                        Budgeting::Timeslices { .. } => retention,
                        Budgeting::Occurrences => MINUTE_RETENTION,
                    };
                    let _ = ledger.prune_minutes(Some(&slo.name), t - keep).await;
                }
                let _ = ledger.prune_minutes(Some(""), t - MINUTE_RETENTION).await;
                // And rows of SLOs no longer configured.
                let _ = ledger.prune_minutes(None, t - retention).await;
                let _ = ledger.prune_hourly(t - retention).await;
                // Delivered notifications and ended silences: kept a period for the record.
                let _ = ledger.prune_delivered(t - retention).await;
            }
        }
    });
    let web = web.map(|mut w| {
        w.bearer_prefix = Some("/api/v1/silences");
        w
    });
    cellwatch_http::web::serve(
        listener,
        app,
        web.as_ref(),
        limits.web,
        std::future::pending(),
    )
    .await
}

/// Milliseconds as the API's decimal seconds.
fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_split_into_minutes_hours_and_days() {
        let mut v = Vec::new();
        // 6h ending at 10:30:00 on day 3: 04:30–05:00 in minutes, 05:00–10:00 in hours, then
        // 10:00–10:30 in minutes.
        let day = 3 * 86_400;
        pieces(day + 4 * 3600 + 1800, day + 10 * 3600 + 1800, 0, &mut v);
        assert_eq!(
            v,
            [
                (0, day + 4 * 3600 + 1800, day + 5 * 3600),
                (1, day + 5 * 3600, day + 10 * 3600),
                (0, day + 10 * 3600, day + 10 * 3600 + 1800),
            ]
        );
        // 30 days from the top of an hour: hours to midnight, whole days, hours of today.
        v.clear();
        pieces(day + 3600 * 20, day + 30 * 86_400 + 3600 * 2, 0, &mut v);
        assert_eq!(
            v,
            [
                (1, day + 3600 * 20, day + 86_400),
                (2, day + 86_400, day + 30 * 86_400),
                (1, day + 30 * 86_400, day + 30 * 86_400 + 7200),
            ]
        );
    }

    #[test]
    fn a_calendar_month_never_counts_the_previous_one() {
        let cfg = crate::config::parse(
            "cells:\n  - { name: a, nodes: [ { name: n, url: \"http://n:9817/metrics\" } ] }\n\
             slos:\n  - { name: m, objective: 0.99, period: calendar-month, timezone: Asia/Kolkata, sli: { availability: {} } }\n\
             \x20 - { name: r, objective: 0.99, period: 30d, sli: { availability: {} } }\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        // 2026-03-01 00:00 in Kolkata is 2026-02-28 18:30 UTC.
        let start = 1_772_303_400;
        assert_eq!(start % 3600, 1800);
        assert_eq!(period_hour(Some(&cfg.slos[0]), start), start + 1800);
        assert_eq!(period_hour(Some(&cfg.slos[1]), start), start - 1800);
    }
}
