//! End to end, issue 14's "no lost increases": a real `cellwatch-exporter` process (its metering
//! proxy in front of an in-test OpenAI-compatible upstream), scraped by the engine's own
//! `scrape_once` into a real ledger, with the engine's `max_gap` for a 15 s interval (45 s).
//! The second scrape comes 120 s (virtual time) after the first: every request sent between
//! them is recorded, once, in the slice of the later scrape, and the scrape reports one counted
//! gap. Before the fix, the later reading only became a new baseline and nothing was recorded.

use std::time::Duration;

use cellwatch_e2e::upstream::Upstream;
use cellwatch_e2e::{Exporter, first_evaluation, proxy_args, slo_period, start_engine};
use cellwatch_slo::ledger::Ledger;
use cellwatch_slo::model::SliceData;
use cellwatch_slo::source::scrape::{Baselines, scrape_once};
use serde_json::json;

/// The engine's scrape interval in this test, and its `max_gap`: max(3 × interval, 30 s).
const INTERVAL: i64 = 15;
const MAX_GAP: i64 = 45;
/// The stall between the two scrapes.
const STALL: i64 = 120;

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ledger.db").display());
    scenario(&db).await;
}

#[tokio::test]
async fn on_postgres() {
    if let Some(db) = cellwatch_e2e::fresh_postgres_db("cw_scrape_gap") {
        scenario(&db).await;
    }
}

/// Sends `n` requests through the proxy: `errors` of them answered with a 500 by the upstream.
async fn load(proxy: &str, n: usize, errors: usize) {
    let client = cellwatch_e2e::http();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "tokens:20"}],
                      "stream": true, "stream_options": {"include_usage": true}});
    for i in 0..n {
        let mut r = client
            .post(format!("{proxy}/v1/chat/completions"))
            .json(&body);
        if i < errors {
            r = r.header("x-test", "error");
        }
        let resp = r.send().await.expect("request through the proxy");
        let _ = resp.bytes().await;
    }
}

/// Waits until the exporter's page counts `want` finished requests of model m.
async fn exported(e: &Exporter, want: f64) {
    e.wait_for(
        &format!("{want} requests on the exporter's page"),
        Duration::from_secs(20),
        |m| {
            let ok = m
                .value("cellwatch_inference_requests_total{model=\"m\",outcome=\"ok\"}")
                .unwrap_or(0.0);
            let err = m
                .value("cellwatch_inference_requests_total{model=\"m\",outcome=\"server_error\"}")
                .unwrap_or(0.0);
            ok + err == want
        },
    )
    .await;
}

async fn scenario(db: &str) {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let cfg = cellwatch_slo::config::parse(
        &format!(
            "cells:\n  - {{ name: test-cell, nodes: [ {{ name: test-node, url: \"{}/metrics\" }} ] }}\n\
             source:\n  scrape: {{ interval: {INTERVAL}s }}\n\
             slos:\n  - {{ name: availability, objective: 0.99, period: 1d, sli: {{ availability: {{}} }} }}\n",
            e.base
        ),
        std::path::Path::new("gap.yaml"),
    )
    .expect("the test's config");
    let ledger = Ledger::open(db).await.expect("open the ledger");
    let client = cellwatch_e2e::http();
    let mut baselines: Baselines = None;
    let mut tracker = cellwatch_slo::health::Tracker::default();

    // Traffic before the first scrape: its series are in the baseline, so the counters that
    // grow over the stall neither appear nor reset (the case the old rule dropped).
    load(&proxy, 3, 1).await;
    exported(&e, 3.0).await;
    let t0 = 1_790_000_000;
    let first = scrape_once(
        &cfg,
        &ledger,
        &client,
        &mut baselines,
        &mut tracker,
        t0,
        MAX_GAP,
        true,
    )
    .await
    .expect("the first scrape");
    assert!(first.problems.is_empty(), "{:?}", first.problems);
    assert!(first.gaps.is_empty(), "a first reading is no gap");

    // 20 requests (2 failed) while the engine stalls for 120 s.
    load(&proxy, 20, 2).await;
    exported(&e, 23.0).await;
    let t1 = t0 + STALL;
    let second = scrape_once(
        &cfg,
        &ledger,
        &client,
        &mut baselines,
        &mut tracker,
        t1,
        MAX_GAP,
        true,
    )
    .await
    .expect("the scrape after the stall");
    assert!(second.problems.is_empty(), "{:?}", second.problems);
    let gaps: Vec<_> = second
        .gaps
        .iter()
        .map(|g| {
            (
                g.cell.as_str(),
                g.node.as_str(),
                g.at,
                g.gap.seconds,
                g.gap.counted,
            )
        })
        .collect();
    assert_eq!(
        gaps,
        [("test-cell", "test-node", t1, STALL, true)],
        "one gap, counted"
    );

    // Every request of the stall is in the ledger, once, in the slice of the later scrape.
    let slo = ledger
        .slices("test-cell", "availability", 0, t1 + 3600)
        .await
        .unwrap();
    let cell = ledger.slices("test-cell", "", 0, t1 + 3600).await.unwrap();
    type Field = fn(&SliceData) -> f64;
    let sum = |f: Field, v: &[SliceData]| -> f64 { v.iter().map(f).sum() };
    assert_eq!(
        (sum(|s| s.good, &slo), sum(|s| s.total, &slo)),
        (18.0, 20.0),
        "the availability SLO's events over the stall: {slo:?}"
    );
    assert_eq!(
        sum(|s| s.requests, &cell),
        20.0,
        "the cell's requests: {cell:?}"
    );
    assert!(
        slo.iter().all(|s| s.start == t1.div_euclid(60) * 60),
        "recorded in the later scrape's slice: {slo:?}"
    );

    // The next scrape within max_gap adds nothing and is no gap: nothing counted twice.
    let third = scrape_once(
        &cfg,
        &ledger,
        &client,
        &mut baselines,
        &mut tracker,
        t1 + INTERVAL,
        MAX_GAP,
        true,
    )
    .await
    .unwrap();
    assert!(third.gaps.is_empty());
    let slo = ledger
        .slices("test-cell", "availability", 0, t1 + 3600)
        .await
        .unwrap();
    assert_eq!(sum(|s| s.total, &slo), 20.0);
    ledger.close().await;
}

/// The real engine, paused (SIGSTOP, as a stalled VM would be) for longer than its `max_gap`
/// (30 s for a 1 s interval) while requests go through the proxy: after SIGCONT it counts them
/// all, logs the gap and serves `cellwatch_slo_scrape_gaps_total`.
#[tokio::test]
async fn a_paused_engine_counts_what_happened_meanwhile() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    load(&proxy, 2, 0).await;
    exported(&e, 2.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let cfg = dir.path().join("gap.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n  - {{ name: test-cell, nodes: [ {{ name: test-node, url: \"{}/metrics\" }} ] }}\n\
             source:\n  scrape: {{ interval: 1s }}\n\
             slos:\n  - {{ name: availability, objective: 0.99, period: 1d, sli: {{ availability: {{}} }} }}\n",
            e.base
        ),
    )
    .unwrap();
    let engine = start_engine(&db, &cfg, &[]);
    first_evaluation(&engine).await;
    // A few scrapes after the first: the baseline holds the 2 requests sent before.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &engine.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let paused = std::time::Instant::now();
    load(&proxy, 10, 1).await;
    exported(&e, 12.0).await;
    tokio::time::sleep(Duration::from_secs(33).saturating_sub(paused.elapsed())).await;
    signal("-CONT");

    // A fresh client: the pooled connections went stale while the engine was stopped.
    let client = cellwatch_e2e::http();
    let get = async |path: &str| -> String {
        match client.get(format!("{}{path}", engine.base)).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let start = std::time::Instant::now();
    loop {
        let v: serde_json::Value =
            serde_json::from_str(&get("/api/v1/slos").await).unwrap_or_default();
        let m = cellwatch_e2e::Metrics(get("/metrics").await);
        let gaps = m.value("cellwatch_slo_scrape_gaps_total{cell=\"test-cell\",counted=\"true\"}");
        if slo_period(&v, "availability").0 == 10.0 && gaps == Some(1.0) {
            assert_eq!(slo_period(&v, "availability").1, Some(0.9));
            assert_eq!(
                m.value("cellwatch_slo_scrape_gaps_total{cell=\"test-cell\",counted=\"false\"}"),
                Some(0.0)
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "period {:?}, gaps {gaps:?}\n{}\nengine log:\n{}",
            slo_period(&v, "availability"),
            m.0,
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = engine.log();
    let line = log
        .lines()
        .find(|l| l.contains("gap_seconds="))
        .unwrap_or_else(|| panic!("no gap logged:\n{log}"));
    assert!(
        line.contains("WARN") && line.contains("counted=true") && line.contains("node=test-node"),
        "{line}"
    );
}
