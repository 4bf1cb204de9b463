//! `cargo bench -p cellwatch-slo`: one evaluation of every SLO of every cell over every window,
//! from a filled ledger (SQLite, and PostgreSQL when CELLWATCH_BENCH_POSTGRES_URL is set).
//! Cells × 4 SLOs (latency, ttft, availability on minute slices; tokens/kWh on 5-minute
//! slices), a 1-day period filled with one slice per minute.

use std::path::Path;

use cellwatch_slo::config::{self, Config};
use cellwatch_slo::engine::evaluate;
use cellwatch_slo::ledger::Ledger;
use cellwatch_slo::math::SliceData;

fn main() {
    divan::main();
}

const DAY: i64 = 86400;

fn config(cells: usize) -> Config {
    let mut yaml = String::from("cells:\n");
    for c in 0..cells {
        yaml.push_str(&format!("  - name: cell-{c}\n    nodes:\n      - {{ name: n, url: \"http://n{c}:9817/metrics\" }}\n"));
    }
    yaml.push_str(
        "slos:\n\
         \x20 - { name: latency, objective: 0.99, period: 1d, sli: { latency: { threshold: 2s } } }\n\
         \x20 - { name: ttft, objective: 0.95, period: 1d, sli: { ttft: { threshold: 500ms } } }\n\
         \x20 - { name: availability, objective: 0.995, period: 1d, sli: { availability: {} } }\n\
         \x20 - { name: efficiency, objective: 0.95, period: 1d, slice: 5m, sli: { tokens_per_kwh: { threshold: 150000 } } }\n",
    );
    config::parse(&yaml, Path::new("bench.yaml")).unwrap()
}

async fn fill(ledger: &Ledger, cfg: &Config) {
    for cell in &cfg.cells {
        let mut rows = Vec::new();
        for m in 0..(DAY / 60) {
            let start = m * 60;
            for slo in ["latency", "ttft", "availability"] {
                rows.push((
                    cell.name.clone(),
                    slo.to_string(),
                    SliceData {
                        start,
                        good: 99.0,
                        total: 100.0,
                        ..Default::default()
                    },
                ));
            }
            if m % 5 == 0 {
                let s = SliceData {
                    start,
                    tokens: 10_000.0,
                    joules: 2e5,
                    requests: 500.0,
                    ..Default::default()
                };
                rows.push((cell.name.clone(), "efficiency".into(), s));
            }
            rows.push((
                cell.name.clone(),
                String::new(),
                SliceData {
                    start,
                    tokens: 2000.0,
                    joules: 4e4,
                    requests: 100.0,
                    ..Default::default()
                },
            ));
        }
        ledger.record_many(&rows).await.unwrap();
    }
}

fn bench_on(b: divan::Bencher<'_, '_>, cells: usize, url: String) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cfg = config(cells);
    let ledger = rt.block_on(async {
        let l = Ledger::open(&url).await.unwrap();
        fill(&l, &cfg).await;
        l
    });
    b.bench_local(|| rt.block_on(evaluate(&cfg, &ledger, DAY)).unwrap());
}

#[divan::bench(args = [10, 100], sample_count = 3, sample_size = 1)]
fn evaluate_sqlite(b: divan::Bencher<'_, '_>, cells: usize) {
    let dir = tempfile::tempdir().unwrap();
    bench_on(
        b,
        cells,
        format!("sqlite://{}", dir.path().join("bench.db").display()),
    );
}

#[divan::bench(args = [10, 100], sample_count = 3, sample_size = 1)]
fn evaluate_postgres(b: divan::Bencher<'_, '_>, cells: usize) {
    let Ok(url) = std::env::var("CELLWATCH_BENCH_POSTGRES_URL") else {
        eprintln!("CELLWATCH_BENCH_POSTGRES_URL is not set: PostgreSQL not measured");
        return;
    };
    bench_on(b, cells, url);
}
