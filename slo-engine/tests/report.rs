//! `cellwatch-slo report`: budgets over a range from a filled ledger, as a table, JSON and CSV;
//! the library on SQLite and PostgreSQL, the command on SQLite.

use std::process::Command;

use cellwatch_slo::config;
use cellwatch_slo::ledger::Ledger;
use cellwatch_slo::model::SliceData;

const CONFIG: &str = "cells:
  - { name: a, nodes: [ { name: n, url: \"http://a:9817/metrics\" } ] }
  - { name: b, nodes: [ { name: n, url: \"http://b:9817/metrics\" } ] }
slos:
  - { name: latency, objective: 0.99, period: 30d, sli: { latency: { threshold: 2s } } }
  - { name: efficiency, cells: [a], objective: 0.99, period: 30d, slice: 1h, sli: { tokens_per_kwh: { threshold: 100000, min_tokens: 1 } } }
";

/// 2026-03-02 00:00 UTC.
const DAY0: i64 = 1_772_409_600;

/// Two days of hourly rows: cell a 1,000 requests an hour, 5 slow; cell b 100, 2 slow.
/// Efficiency: 10 good hours in every 12 (100 kWh-worth of tokens), 2 bad.
fn rows() -> Vec<(String, String, SliceData)> {
    let mut v = Vec::new();
    for h in 0..48i64 {
        let start = DAY0 + h * 3600;
        for (cell, total, bad) in [("a", 1000.0, 5.0), ("b", 100.0, 2.0)] {
            v.push((
                cell.to_string(),
                "latency".to_string(),
                SliceData {
                    start,
                    good: total - bad,
                    total,
                    ..Default::default()
                },
            ));
            v.push((
                cell.to_string(),
                String::new(),
                SliceData {
                    start,
                    tokens: 360_000.0,
                    joules: 3.6e6 * 2.0,
                    requests: total,
                    ..Default::default()
                },
            ));
        }
        let tokens = if h % 12 < 10 { 300_000.0 } else { 50_000.0 };
        v.push((
            "a".into(),
            "efficiency".into(),
            SliceData {
                start,
                tokens,
                joules: 3.6e6,
                ..Default::default()
            },
        ));
    }
    v
}

async fn filled(url: &str) -> (config::Config, Ledger) {
    let cfg = config::parse(CONFIG, std::path::Path::new("report.yaml")).unwrap();
    let l = Ledger::open(url).await.unwrap();
    l.record_many(&rows()).await.unwrap();
    // Judge the time slices, as a running engine does.
    cellwatch_slo::eval::evaluate(&cfg, &l, DAY0 + 2 * 86_400)
        .await
        .unwrap();
    (cfg, l)
}

fn check(r: &cellwatch_slo::report::Report, name: &str) {
    let row = |cell: &str, slo: &str| {
        r.rows
            .iter()
            .find(|x| x.cell == cell && x.slo == slo)
            .unwrap_or_else(|| panic!("{name}: no row {cell} {slo}"))
    };
    // The first day, 06:30 to 18:10 widened to 06:00..19:00: 13 hours.
    let a = row("a", "latency");
    assert_eq!((a.good, a.total), (13.0 * 995.0, 13_000.0), "{name}");
    assert!(
        (a.budget_used.unwrap() - 0.5).abs() < 1e-12,
        "{name}: 5 bad of 10 allowed per 1,000"
    );
    let b = row("b", "latency");
    assert!(
        (b.budget_used.unwrap() - 2.0).abs() < 1e-12,
        "{name}: 2 bad of 1 allowed per 100"
    );
    let e = row("a", "efficiency");
    // Hours 6..19: h % 12 in 6..=11, 0..=6 → bad at 10, 11: 11 good of 13.
    assert_eq!((e.unit, e.good, e.total), ("slices", 11.0, 13.0), "{name}");
    assert!(
        r.rows
            .iter()
            .all(|x| !(x.cell == "b" && x.slo == "efficiency"))
    );
    // 360,000 tokens on 2 kWh an hour: 180,000 tokens/kWh.
    assert!(
        (a.tokens_per_kwh.unwrap() - 180_000.0).abs() < 1e-6,
        "{name}"
    );
}

#[tokio::test]
async fn reports_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!("sqlite://{}", dir.path().join("r.db").display())];
    if let Ok(admin) = std::env::var("CELLWATCH_TEST_POSTGRES_URL") {
        sqlx::any::install_default_drivers();
        let db = format!("cw_report_{}", std::process::id());
        let pool = sqlx::AnyPool::connect(&admin).await.unwrap();
        for q in [
            format!("DROP DATABASE IF EXISTS {db}"),
            format!("CREATE DATABASE {db}"),
        ] {
            sqlx::query(&q).execute(&pool).await.unwrap();
        }
        pool.close().await;
        urls.push(format!("{}/{db}", admin.rsplit_once('/').unwrap().0));
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs this on PostgreSQL too"
        );
    }
    for url in urls {
        let (cfg, l) = filled(&url).await;
        let r =
            cellwatch_slo::report::build(&cfg, &l, DAY0 + 6 * 3600 + 1800, DAY0 + 18 * 3600 + 600)
                .await
                .unwrap();
        assert_eq!((r.from, r.to), (DAY0 + 6 * 3600, DAY0 + 19 * 3600));
        check(&r, &url);
        l.close().await;
    }
}

#[tokio::test]
async fn the_command_prints_table_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    let (_, l) = filled(&url).await;
    l.close().await;
    let cfg = dir.path().join("report.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let run = |format: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_cellwatch-slo"))
            .args(["report", "--config"])
            .arg(&cfg)
            .args([
                "--database-url",
                &url,
                "--from",
                "2026-03-02T06:30:00Z",
                "--to",
                "2026-03-02T18:10:00Z",
                "--format",
                format,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = run("table");
    assert!(
        table.starts_with("cellwatch budget report 2026-03-02T06:00:00Z .. 2026-03-02T19:00:00Z\n"),
        "{table}"
    );
    assert!(
        table.contains("budget used") && table.contains("50.0%") && table.contains("200.0%"),
        "{table}"
    );
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(json["rows"][0]["cell"], "a");
    assert_eq!(json["rows"][0]["total"], 13000.0);
    let csv = run("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[0].starts_with("from,to,cell,slo,unit,objective,good,total,sli,budget_used"));
    assert!(
        lines[1].contains(",a,latency,events,0.99,12935,13000,"),
        "{csv}"
    );
    // A bad range is a usage error.
    let out = Command::new(env!("CARGO_BIN_EXE_cellwatch-slo"))
        .args(["report", "--config"])
        .arg(&cfg)
        .args(["--database-url", &url, "--from", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from \"yesterday\""));
}

#[test]
fn a_range_out_of_bounds_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("report.yaml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let url = format!("sqlite://{}", dir.path().join("r.db").display());
    for (flag, value) in [
        ("--from", "292277024626y"),
        ("--from", "99999999999999999999y"),
        ("--from", "11y"),
        ("--to", "400000000000y"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cellwatch-slo"))
            .args(["report", "--config"])
            .arg(&cfg)
            .args(["--database-url", &url, flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(&format!("{flag} \"{value}\": out of range"))
                && err.contains("at most 10 years")
                && !err.contains("must be before"),
            "{flag} {value}: {err}"
        );
    }
}
