//! The ledger on SQLite and on a real PostgreSQL (`CELLWATCH_TEST_POSTGRES_URL`, which
//! `./scripts/test` starts; under CI it must be set).

use std::time::Duration;

use cellwatch_slo::config::{Budgeting, Period, Sli, Slo};
use cellwatch_slo::ledger::Ledger;
use cellwatch_slo::math::{SliceData, budget_remaining};

struct Backend {
    name: &'static str,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let mut v = vec![Backend {
        name: "sqlite",
        url: format!("sqlite://{}", dir.path().join("ledger.db").display()),
        _dir: Some(dir),
    }];
    match std::env::var("CELLWATCH_TEST_POSTGRES_URL") {
        Ok(admin) => {
            // A fresh database per test.
            sqlx::any::install_default_drivers();
            let db = format!("cw_{test}_{}", std::process::id());
            let pool = sqlx::AnyPool::connect(&admin)
                .await
                .expect("connect to the test PostgreSQL");
            sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(&format!("CREATE DATABASE {db}"))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            let base = admin
                .rsplit_once('/')
                .map_or(admin.as_str(), |(b, _)| b)
                .to_string();
            v.push(Backend {
                name: "postgres",
                url: format!("{base}/{db}"),
                _dir: None,
            });
        }
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the ledger tests on PostgreSQL: set CELLWATCH_TEST_POSTGRES_URL (./scripts/test does)"
            );
            eprintln!(
                "CELLWATCH_TEST_POSTGRES_URL is not set: this run covers SQLite only (./scripts/test starts PostgreSQL)"
            );
        }
    }
    v
}

fn slice(start: i64, good: f64, total: f64) -> SliceData {
    SliceData {
        start,
        good,
        total,
        tokens: 10.0,
        joules: 20.0,
        requests: total,
    }
}

#[tokio::test]
async fn records_add_up_survive_a_restart_and_prune() {
    for b in backends("records").await {
        let l = Ledger::open(&b.url)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
        l.record("studio-a", "latency", &slice(60, 9.0, 10.0))
            .await
            .unwrap();
        l.record("studio-a", "latency", &slice(60, 5.0, 5.0))
            .await
            .unwrap();
        l.record("studio-a", "latency", &slice(120, 1.0, 2.0))
            .await
            .unwrap();
        l.record("studio-b", "latency", &slice(60, 1.0, 1.0))
            .await
            .unwrap();
        l.close().await;

        // A restart: the same URL, the same history.
        let l = Ledger::open(&b.url).await.unwrap();
        let got = l.slices("studio-a", "latency", 0, 1000).await.unwrap();
        assert_eq!(got.len(), 2, "{}", b.name);
        assert_eq!(
            (got[0].good, got[0].total, got[0].tokens, got[0].requests),
            (14.0, 15.0, 20.0, 15.0),
            "{}",
            b.name
        );
        assert_eq!(got[1].start, 120);
        assert_eq!(
            l.slices("studio-a", "latency", 61, 1000)
                .await
                .unwrap()
                .len(),
            1,
            "{}: [from, to)",
            b.name
        );
        assert_eq!(l.prune(100).await.unwrap(), 2, "{}", b.name);
        assert_eq!(
            l.slices("studio-a", "latency", 0, 1000)
                .await
                .unwrap()
                .len(),
            1
        );
        l.close().await;
    }
}

#[tokio::test]
async fn budgets_from_the_ledger_match_the_hand_computation() {
    let slo = Slo {
        name: "latency".into(),
        description: None,
        cells: vec!["studio-a".into()],
        objective: 0.99,
        period: Period::Rolling(Duration::from_secs(86400)),
        budgeting: Budgeting::Occurrences,
        min_events: 0,
        sli: Sli::Latency(2.0),
    };
    for b in backends("budgets").await {
        let l = Ledger::open(&b.url).await.unwrap();
        // A day of minutes: 200 requests each, 1 slow; the last hour 10 slow a minute.
        for m in 0..1440i64 {
            let bad = if m >= 1380 { 10.0 } else { 1.0 };
            l.record("studio-a", "latency", &slice(m * 60, 200.0 - bad, 200.0))
                .await
                .unwrap();
        }
        let slices = l.slices("studio-a", "latency", 0, 86400).await.unwrap();
        let remaining = budget_remaining(&slo, &slices, 86400).unwrap();
        let (total, bad) = (1440.0 * 200.0, 1380.0 + 600.0);
        assert!(
            (remaining - (1.0 - bad / (0.01 * total))).abs() < 1e-12,
            "{}: {remaining}",
            b.name
        );
        l.close().await;
    }
}

#[tokio::test]
async fn a_bad_url_is_a_clear_error_without_the_password() {
    let e = Ledger::open("postgres://cw:hunter2@127.0.0.1:1/cw")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("opening the ledger") && e.contains("127.0.0.1:1") && !e.contains("hunter2"),
        "{e}"
    );
}

#[tokio::test]
async fn window_sums_in_the_database_match_the_rows() {
    for b in backends("sums").await {
        let l = Ledger::open(&b.url).await.unwrap();
        // Two cells, 3 hours of minutes; cell b has twice a's traffic.
        let mut rows = Vec::new();
        for m in 0..180i64 {
            rows.push(("a".to_string(), "lat".to_string(), slice(m * 60, 9.0, 10.0)));
            rows.push((
                "b".to_string(),
                "lat".to_string(),
                slice(m * 60, 18.0, 20.0),
            ));
        }
        l.record_many(&rows).await.unwrap();
        let now = 180 * 60;
        let minute = l
            .window_sums("lat", &[now - 3600, now - 300], now + 1)
            .await
            .unwrap();
        assert_eq!(
            (minute["a"][0].good, minute["a"][0].total),
            (540.0, 600.0),
            "{}",
            b.name
        );
        assert_eq!(
            (minute["b"][1].good, minute["b"][1].total),
            (90.0, 100.0),
            "{}",
            b.name
        );
        // The hourly rollup, bounds moved back to the hour: 2.5 hours ago → 3 full hours.
        let hourly = l
            .hourly_window_sums("lat", &[now - 9000], now + 1)
            .await
            .unwrap();
        assert_eq!(
            (
                hourly["a"][0].good,
                hourly["a"][0].total,
                hourly["a"][0].requests
            ),
            (1620.0, 1800.0, 1800.0),
            "{}",
            b.name
        );
        assert!(l.window_sums("nope", &[0], now).await.unwrap().is_empty());
        l.close().await;
    }
}
