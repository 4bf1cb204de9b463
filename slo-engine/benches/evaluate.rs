//! `cargo bench -p cellwatch-slo`: one evaluation of every SLO of every cell over every window,
//! from a ledger filled as the engine leaves it in steady state (SQLite, and PostgreSQL when
//! CELLWATCH_BENCH_POSTGRES_URL names an empty database).
//!
//! Cells × 4 SLOs with a 30-day period: latency, ttft and availability on minute rows (a day of
//! them, as retention keeps), tokens/kWh on 5-minute slices (the whole period, judged), hourly
//! and daily rollups for the period, and the cells' totals. Filled with bulk SQL (the same rows
//! the engine writes), then evaluated once to judge the time slices, as a running engine has.
//!
//! `tick_*`: the leader's evaluation a minute after the last one, from the sums it kept
//! (`Evaluator::keeping`): each iteration evaluates the next minute. `tick_postgres_10k`, when
//! `CELLWATCH_BENCH_10K` is set as well, fills 10,000 cells with only the rows evaluations read
//! (a steady-state fill of 10,000 cells needs ~65 GB of disk): the last 8 hours of minute rows
//! and time slices, hourly rollups of the last four days and of the period's first two, daily
//! rollups.
//!
//! `dispatch_with_regex_silences`: one alerting step of 20 firing alerts against 0 or 3,000
//! active regex silences that match none of them (each silence tried on each alert), their
//! matchers compiled once as the engine holds them.

use std::path::Path;

use cellwatch_slo::config::{self, Config};
use cellwatch_slo::eval::{Evaluator, evaluate};
use cellwatch_slo::ledger::Ledger;

fn main() {
    divan::main();
}

const DAY: i64 = 86_400;
/// The evaluation time: 31 days and a half hour after the epoch, so the period begins mid-hour.
const NOW: i64 = 31 * DAY + 1800;

fn config(cells: usize) -> Config {
    let mut yaml = String::from("cells:\n");
    for c in 0..cells {
        yaml.push_str(&format!(
            "  - {{ name: cell-{c}, nodes: [ {{ name: n, url: \"http://n{c}:9817/metrics\" }} ] }}\n"
        ));
    }
    yaml.push_str(
        "slos:\n\
         \x20 - { name: latency, objective: 0.99, period: 30d, sli: { latency: { threshold: 2s } } }\n\
         \x20 - { name: ttft, objective: 0.95, period: 30d, sli: { ttft: { threshold: 500ms } } }\n\
         \x20 - { name: availability, objective: 0.995, period: 30d, sli: { availability: {} } }\n\
         \x20 - { name: efficiency, objective: 0.95, period: 30d, slice: 5m, sli: { tokens_per_kwh: { threshold: 150000 } } }\n",
    );
    config::parse(&yaml, Path::new("bench.yaml")).unwrap()
}

/// Bulk-inserts `per_cell` rows per cell into `table`, `step` seconds apart, ending before
/// `end`.
#[allow(clippy::too_many_arguments)]
async fn fill_table(
    pool: &sqlx::AnyPool,
    table: &str,
    cells: usize,
    slo: &str,
    end: i64,
    step: i64,
    per_cell: i64,
    values: &str,
) {
    let sql = format!(
        "INSERT INTO {table} (cell, slo, start, good, total, tokens, joules, requests) \
         WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < {}), \
         m(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM m WHERE i < {}) \
         SELECT 'cell-' || CAST(c.i AS TEXT), '{slo}', {} + m.i * {step}, {values} FROM c CROSS JOIN m",
        cells - 1,
        per_cell - 1,
        end - per_cell * step,
    );
    sqlx::query(&sql).execute(pool).await.unwrap();
}

/// How far minute rows reach past `NOW`: the ticks evaluate the minutes after it.
const AHEAD: i64 = 3600;

async fn fill(url: &str, cells: usize, trimmed: bool) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.unwrap();
    let minute_end = NOW - NOW % 60 + AHEAD;
    let hour_end = NOW - NOW % 3600 + 3600;
    let day_end = NOW - NOW % DAY + DAY;
    // Minute rows: a day (as retention keeps), or what windows up to 6h read.
    let minutes = if trimmed { 8 * 60 } else { 1440 } + AHEAD / 60;
    for (slo, per_minute) in [
        ("latency", "99, 100, 0, 0, 0"),
        ("ttft", "97, 100, 0, 0, 0"),
        ("availability", "100, 100, 0, 0, 0"),
        ("", "0, 0, 2000, 40000, 100"),
    ] {
        fill_table(
            &pool, "slices", cells, slo, minute_end, 60, minutes, per_minute,
        )
        .await;
        let scale = |n: f64| {
            per_minute
                .split(", ")
                .map(|v| format!("{}", v.parse::<f64>().unwrap() * n))
                .collect::<Vec<_>>()
                .join(", ")
        };
        // Hourly rollups: the period, or the hours of the last four days and of the period's
        // first two (ends and counts).
        let first = NOW - 30 * DAY;
        let hours = if trimmed {
            vec![(hour_end, 4 * 24), (first - first % DAY + 2 * DAY, 2 * 24)]
        } else {
            vec![(hour_end, 31 * 24)]
        };
        for (end, n) in hours {
            fill_table(
                &pool,
                "slices_hourly",
                cells,
                slo,
                end,
                3600,
                n,
                &scale(60.0),
            )
            .await;
        }
        fill_table(
            &pool,
            "slices_daily",
            cells,
            slo,
            day_end,
            DAY,
            32,
            &scale(1440.0),
        )
        .await;
    }
    let slice = "0, 0, 10000, 200000, 500";
    let slices = if trimmed { 8 * 12 } else { 31 * 288 } + AHEAD / 300;
    fill_table(
        &pool,
        "slices",
        cells,
        "efficiency",
        NOW - NOW % 300 + AHEAD,
        300,
        slices,
        slice,
    )
    .await;
    if !url.starts_with("sqlite") {
        sqlx::query("VACUUM ANALYZE").execute(&pool).await.unwrap();
    }
    pool.close().await;
}

/// A filled ledger of `cells` at `url`, evaluated once (judging a month of time slices, as a
/// running engine already has): the runtime, the config, the ledger and that evaluator.
fn filled(
    cells: usize,
    url: &str,
    trimmed: bool,
) -> (tokio::runtime::Runtime, Config, Ledger, Evaluator) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = config(cells);
    let (ledger, ev) = rt.block_on(async {
        let l = Ledger::open(url).await.unwrap();
        let started = std::time::Instant::now();
        fill(url, cells, trimmed).await;
        eprintln!("filled {cells} cells in {:?}", started.elapsed());
        let mut ev = Evaluator::keeping(&l);
        let started = std::time::Instant::now();
        ev.evaluate(&cfg, &l, NOW - 60, true).await.unwrap();
        eprintln!(
            "first evaluation of {cells} cells in {:?}",
            started.elapsed()
        );
        (l, ev)
    });
    (rt, cfg, ledger, ev)
}

/// One evaluation at `NOW`, in full.
fn bench_on(b: divan::Bencher<'_, '_>, cells: usize, url: String) {
    let (rt, cfg, ledger, _) = filled(cells, &url, false);
    b.bench_local(|| rt.block_on(evaluate(&cfg, &ledger, NOW)).unwrap());
    rt.block_on(ledger.close());
}

/// The leader's ticks: each iteration evaluates the minute after the last, from kept sums.
fn tick_on(b: divan::Bencher<'_, '_>, cells: usize, url: String, trimmed: bool) {
    let (rt, cfg, ledger, mut ev) = filled(cells, &url, trimmed);
    let mut now = NOW - 60;
    b.bench_local(|| {
        now += 60;
        assert!(now < NOW + AHEAD - 60, "more ticks than minute rows filled");
        rt.block_on(ev.evaluate(&cfg, &ledger, now, true)).unwrap()
    });
    eprintln!("{cells} cells: {} series summed in full", ev.full_sums());
    rt.block_on(ledger.close());
}

/// A fresh PostgreSQL database next to the one `CELLWATCH_BENCH_POSTGRES_URL` names (None:
/// not set), dropped when this goes (a 1,000-cell fill is ~7 GB).
struct Database {
    base: String,
    name: String,
    url: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            if let Ok(pool) = sqlx::AnyPool::connect(&self.base).await {
                let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
                if let Err(e) = sqlx::query(&drop).execute(&pool).await {
                    eprintln!("dropping {}: {e}", self.name);
                }
                pool.close().await;
            }
        });
    }
}

fn postgres_db(name: &str) -> Option<Database> {
    let Ok(base) = std::env::var("CELLWATCH_BENCH_POSTGRES_URL") else {
        eprintln!("CELLWATCH_BENCH_POSTGRES_URL is not set: PostgreSQL not measured");
        return None;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = format!("cw_bench_{name}_{}", std::process::id());
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&base).await.unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    });
    let url = format!(
        "{}/{db}",
        base.rsplit_once('/').map_or(base.as_str(), |(b, _)| b)
    );
    Some(Database {
        base,
        name: db,
        url,
    })
}

#[divan::bench(args = [100, 1000], sample_count = 5, sample_size = 1)]
fn evaluate_sqlite(b: divan::Bencher<'_, '_>, cells: usize) {
    let dir = tempfile::tempdir().unwrap();
    bench_on(
        b,
        cells,
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    );
}

#[divan::bench(args = [100, 1000], sample_count = 5, sample_size = 1)]
fn evaluate_postgres(b: divan::Bencher<'_, '_>, cells: usize) {
    if let Some(db) = postgres_db(&format!("full_{cells}")) {
        bench_on(b, cells, db.url.clone());
    }
}

#[divan::bench(args = [100, 1000], sample_count = 10, sample_size = 1)]
fn tick_sqlite(b: divan::Bencher<'_, '_>, cells: usize) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    tick_on(b, cells, url, false);
}

#[divan::bench(args = [100, 1000], sample_count = 10, sample_size = 1)]
fn tick_postgres(b: divan::Bencher<'_, '_>, cells: usize) {
    if let Some(db) = postgres_db(&format!("tick_{cells}")) {
        tick_on(b, cells, db.url.clone(), false);
    }
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn tick_postgres_10k(b: divan::Bencher<'_, '_>) {
    if std::env::var_os("CELLWATCH_BENCH_10K").is_none() {
        eprintln!("CELLWATCH_BENCH_10K is not set: 10,000 cells not measured");
        return;
    }
    if let Some(db) = postgres_db("tick_10000") {
        tick_on(b, 10_000, db.url.clone(), true);
    }
}

#[divan::bench(args = [0, 3000], sample_count = 10)]
fn dispatch_with_regex_silences(b: divan::Bencher<'_, '_>, silences: usize) {
    use cellwatch_slo::alerting::{self, Routes, State, Wanted};
    use cellwatch_slo::config::Timing;
    use cellwatch_slo::model::{Labels, Matcher, Silence};
    let wanted: Vec<Wanted> = (0..20)
        .map(|c| Wanted {
            labels: Labels::from([
                ("alertname".to_string(), "CellwatchCellDown".to_string()),
                ("cell".to_string(), format!("cell-{c}")),
                ("severity".to_string(), "page".to_string()),
            ]),
            annotations: Labels::new(),
            hold: 0,
        })
        .collect();
    let compiled: Vec<cellwatch_slo::model::CompiledSilence> = (0..silences)
        .map(|i| {
            Silence {
                id: format!("s{i}"),
                matchers: vec![Matcher {
                    name: "cell".into(),
                    value: format!("nowhere-{i}-[a-z]+|x{i}y.*"),
                    is_regex: true,
                    is_equal: true,
                }],
                starts_at: 0,
                ends_at: 10 * NOW,
                created_by: "bench".into(),
                comment: "load".into(),
            }
            .compile()
            .unwrap()
        })
        .collect();
    let active: Vec<&cellwatch_slo::model::CompiledSilence> = compiled.iter().collect();
    let routes = Routes::new(&config(1).alerting.routes);
    let timing = Timing::default();
    b.bench_local(|| {
        let mut state = State::default();
        state.step_alerts(&wanted, NOW);
        let muted = |l: &Labels| alerting::muted(&active, &[], l, NOW);
        state.dispatch(&routes, &timing, &muted, NOW)
    });
}
