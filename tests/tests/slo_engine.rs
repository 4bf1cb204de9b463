//! End to end: the real `cellwatch-slo run` binary scraping exporter pages (served by the
//! in-test server), recording into a SQLite ledger, and exposing budgets that equal a hand
//! computation; a node that is down is no data; a restart keeps the history.

use std::time::Duration;

use cellwatch_e2e::upstream::Upstream;
use cellwatch_e2e::{Exporter, first_evaluation, promtool_check_metrics, slo_period, start_engine};
use serde_json::Value;

const SOON: Duration = Duration::from_secs(30);

fn page(fast: u64, all: u64, ok: u64, bad: u64, tokens: u64, joules: f64) -> String {
    format!(
        "# TYPE cellwatch_inference_request_duration_seconds histogram\n\
         cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"2\"}} {fast}\n\
         cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"+Inf\"}} {all}\n\
         cellwatch_inference_request_duration_seconds_sum{{model=\"m\"}} 1\n\
         cellwatch_inference_request_duration_seconds_count{{model=\"m\"}} {all}\n\
         # TYPE cellwatch_inference_requests_total counter\n\
         cellwatch_inference_requests_total{{model=\"m\",outcome=\"ok\"}} {ok}\n\
         cellwatch_inference_requests_total{{model=\"m\",outcome=\"server_error\"}} {bad}\n\
         # TYPE cellwatch_inference_tokens_total counter\n\
         cellwatch_inference_tokens_total{{model=\"m\",kind=\"generated\"}} {tokens}\n\
         # TYPE cellwatch_node_energy_joules_total counter\n\
         cellwatch_node_energy_joules_total{{source=\"soc\"}} {joules}\n"
    )
}

fn config(up: &Upstream) -> String {
    format!(
        "cells:\n  - name: studio-a\n    nodes:\n      - {{ name: n1, url: \"{0}/metrics/n1\" }}\n      - {{ name: n2, url: \"{0}/metrics/n2\" }}\n\
         source:\n  scrape: {{ interval: 1s }}\n\
         slos:\n  - name: latency-2s\n    objective: 0.9\n    period: 1d\n    sli: {{ latency: {{ threshold: 2s }} }}\n\
         \x20 - name: availability\n    objective: 0.99\n    period: 1d\n    sli: {{ availability: {{}} }}\n",
        up.base
    )
}

async fn api(e: &Exporter) -> Value {
    serde_json::from_str(&e.get("/api/v1/slos").await).unwrap()
}

async fn wait_total(e: &Exporter, slo: &str, total: f64) -> (f64, Option<f64>, Option<f64>) {
    let start = std::time::Instant::now();
    loop {
        let p = slo_period(&api(e).await, slo);
        if p.0 == total {
            return p;
        }
        assert!(
            start.elapsed() < SOON,
            "{slo}: period total stayed {} (want {total})\n{}",
            p.0,
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&format!(
        "sqlite://{}",
        dir.path().join("ledger.db").display()
    ))
    .await;
}

#[tokio::test]
async fn on_postgres() {
    if let Some(db) = cellwatch_e2e::fresh_postgres_db("cw_engine") {
        scenario(&db).await;
    }
}

/// Budgets equal the hand computation through the loss of a node and a restart of the engine.
async fn scenario(db: &str) {
    let up = Upstream::start().await;
    up.set_page("n1", &page(0, 0, 0, 0, 0, 0.0));
    up.set_page("n2", &page(0, 0, 0, 0, 0, 0.0));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(&cfg, config(&up)).unwrap();
    let e = start_engine(db, &cfg, &[]);
    // Let the engine take its baseline reading of both nodes.
    first_evaluation(&e).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // n1: 90 of 100 under 2 s, 99 ok; n2: 80 of 100 under 2 s, 98 ok.
    up.set_page("n1", &page(90, 100, 99, 1, 50_000, 1.8e6));
    up.set_page("n2", &page(80, 100, 98, 2, 25_000, 0.9e6));
    let (total, sli, budget) = wait_total(&e, "latency-2s", 200.0).await;
    assert_eq!(sli, Some(170.0 / 200.0));
    // 30 slow of 200 against an allowance of 10 % of 200 = 20: 1 − 30/20.
    assert!(
        (budget.unwrap() - (1.0 - 30.0 / 20.0)).abs() < 1e-9,
        "{budget:?}"
    );
    let (_, sli, budget) = wait_total(&e, "availability", 200.0).await;
    assert_eq!(sli, Some(197.0 / 200.0));
    assert!(
        (budget.unwrap() - (1.0 - 3.0 / 2.0)).abs() < 1e-9,
        "{budget:?}"
    );
    assert_eq!(total, 200.0);

    // Efficiency: 75,000 tokens on 2.7 MJ = 0.75 kWh: 100,000 tokens/kWh; 200 requests: 3.75 kWh/1k.
    let cells: Value = serde_json::from_str(&e.get("/api/v1/cells").await).unwrap();
    let c = &cells["cells"][0];
    assert!(
        (c["tokens_per_kwh"]["1h"].as_f64().unwrap() - 100_000.0).abs() < 1e-6,
        "{c}"
    );
    assert!(
        (c["kwh_per_1k_requests"]["1h"].as_f64().unwrap() - 3.75).abs() < 1e-9,
        "{c}"
    );

    // n2 goes down; n1 serves 100 more, all fast and ok. n2 adds nothing: no data, not bad.
    up.set_page("n2", "");
    up.set_page("n1", &page(190, 200, 199, 1, 60_000, 2.0e6));
    let (_, sli, _) = wait_total(&e, "latency-2s", 300.0).await;
    assert_eq!(sli, Some(270.0 / 300.0));
    let m = e.get("/metrics").await;
    assert_eq!(promtool_check_metrics(&m), "");
    assert!(
        m.contains(
            "cellwatch_slo_error_budget_remaining_ratio{cell=\"studio-a\",slo=\"latency-2s\"}"
        ),
        "{m}"
    );

    // A restart loses no slice history.
    drop(e);
    let e = start_engine(db, &cfg, &[]);
    let (_, sli, _) = wait_total(&e, "latency-2s", 300.0).await;
    assert_eq!(sli, Some(270.0 / 300.0));
}
