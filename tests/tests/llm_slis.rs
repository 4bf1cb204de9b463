//! End to end: the LLM serving SLIs on real processes. A real `cellwatch-exporter` whose metering
//! proxy fronts the in-test OpenAI-compatible upstream (token cadence steered per request), a
//! real `cellwatch-slo` scraping it with a `tpot` SLO and a `throughput` SLO, and a webhook
//! receiver. Streams whose tokens come 100 ms apart burn the `tpot` SLO (threshold 50 ms):
//! exactly one page, naming it. A backlog of requests waiting for their first token through a
//! whole minute while the cell generates almost nothing burns `throughput`: one page. Fast
//! streams, and a cell nobody waits on, give none.

use std::time::{Duration, Instant};

use cellwatch_e2e::recorder::Recorder;
use cellwatch_e2e::upstream::Upstream;
use cellwatch_e2e::{Exporter, proxy_args, slo_period, start_engine_in};
use serde_json::{Value, json};

// A throughput minute is judged once it is complete: up to two minutes for a backlog.
const SOON: Duration = Duration::from_secs(150);

struct Cell {
    _up: Upstream,
    exporter: Exporter,
    proxy: String,
    engine: Exporter,
    hook: Recorder,
    _dir: tempfile::TempDir,
}

impl Cell {
    /// One node behind the metering proxy; SLOs `tpot-50ms` and `throughput` (at `floor`
    /// tokens/s) over a 1h period, paging when half of it would be spent in 30 minutes (both
    /// windows, 30m and 5m, above 1×, as the demo does): one bad minute pages, so the quiet
    /// cases are strict. `min_events: 10`: the automatic minimum (one bad request alone must
    /// stay under 1×) would want 100 requests in the window.
    async fn start(floor: f64) -> Cell {
        let up = Upstream::start().await;
        let exporter = Exporter::start_owned(&proxy_args(&up.base));
        let proxy = exporter.proxy_base().await;
        let (hook, base) = Recorder::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = format!(
            "cells:\n  - name: c1\n    nodes:\n      - {{ name: n1, url: \"{}/metrics\" }}\n\
             source:\n  scrape: {{ interval: 1s }}\n\
             slos:\n  - {{ name: tpot-50ms, objective: 0.99, period: 1h, min_events: 10, sli: {{ tpot: {{ threshold: 50ms }} }} }}\n\
             \x20 - {{ name: throughput, objective: 0.99, period: 1h, sli: {{ throughput: {{ floor: {floor} }} }} }}\n\
             alerting:\n  group_wait: 0s\n  group_interval: 2s\n  resolve_wait: 1s\n\
             \x20 burn_rates:\n    - {{ severity: page, long: 30m, short: 5m, budget: 0.5 }}\n\
             \x20 receivers:\n    - name: hook\n      webhook: {{ url: \"{base}/hook\" }}\n",
            exporter.base
        );
        let engine = start_engine_in(dir.path(), &cfg, &[]).await;
        Cell {
            _up: up,
            exporter,
            proxy,
            engine,
            hook,
            _dir: dir,
        }
    }

    /// `n` streamed chat completions of `tokens` tokens, `x-test` steering the upstream,
    /// `parallel` at a time; each read to its end.
    async fn streams(&self, n: usize, parallel: usize, tokens: u64, steer: &str) {
        let client = cellwatch_e2e::http();
        let body = json!({
            "model": "m", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": format!("tokens:{tokens}")}],
        });
        for round in 0..n.div_ceil(parallel) {
            let mut sends = tokio::task::JoinSet::new();
            for _ in 0..parallel.min(n - round * parallel) {
                let req = client
                    .post(format!("{}/v1/chat/completions", self.proxy))
                    .header("x-test", steer)
                    .json(&body);
                sends.spawn(async move {
                    let r = req.send().await.expect("a response");
                    assert_eq!(r.status(), 200);
                    r.bytes().await.expect("the stream");
                });
            }
            while let Some(done) = sends.join_next().await {
                done.expect("a request task");
            }
        }
    }

    async fn slos(&self) -> Value {
        serde_json::from_str(&self.engine.get("/api/v1/slos").await).expect("JSON")
    }

    /// Waits for the first notification, then 5 s more, and returns them all.
    async fn notifications(&self) -> Vec<Value> {
        let start = Instant::now();
        while self.hook.at("/hook").is_empty() {
            assert!(
                start.elapsed() < SOON,
                "no notification: {}\n{}\n{}",
                self.slos().await,
                self.engine.log(),
                self.exporter.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.hook.at("/hook")
    }
}

/// Exactly one notification, firing, every alert of it about `slo` in cell c1, a page among them.
fn one_page(notes: &[Value], slo: &str) {
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["status"], "firing", "{notes:#?}");
    let alerts = notes[0]["alerts"].as_array().expect("alerts");
    assert!(!alerts.is_empty(), "{notes:#?}");
    // The burn page, and with it (same cell, same notification) the exhausted budget's ticket.
    for a in alerts {
        assert_eq!(a["labels"]["slo"], slo, "{a:#}");
        assert_eq!(a["labels"]["cell"], "c1", "{a:#}");
    }
    assert!(
        alerts.iter().any(|a| a["labels"]["severity"] == "page"),
        "{notes:#?}"
    );
}

#[tokio::test]
async fn tokens_100ms_apart_page_once_for_tpot() {
    let c = Cell::start(1.0).await;
    // Five tokens, one per chunk, 100 ms apart: 100 ms per output token, over 50 ms.
    c.streams(16, 8, 5, "token-gap:100").await;
    let notes = c.notifications().await;
    one_page(&notes, "tpot-50ms");
    let (total, sli, _) = slo_period(&c.slos().await, "tpot-50ms");
    assert!(total >= 16.0, "{total}");
    assert_eq!(sli, Some(0.0));
}

#[tokio::test]
async fn requests_left_waiting_while_nothing_is_generated_page_once_for_throughput() {
    let c = std::sync::Arc::new(Cell::start(50.0).await);
    // A backlog that lasts: four requests at a time, each waiting 5 s for its first token, so
    // requests wait at every reading of the next whole minute while the cell generates about
    // 1.6 tokens/s, far under 50. That minute is bad (a minute is judged once complete).
    let backlog = tokio::spawn({
        let c = c.clone();
        async move {
            loop {
                c.streams(4, 4, 2, "slow-first-token:5000").await;
            }
        }
    });
    let notes = c.notifications().await;
    backlog.abort();
    one_page(&notes, "throughput");
}

#[tokio::test]
async fn fast_tokens_and_an_idle_cell_page_nothing() {
    let c = Cell::start(1.0).await;
    // Idle: no request waits, so no minute is judged.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (total, _, _) = slo_period(&c.slos().await, "throughput");
    assert_eq!(total, 0.0, "{}", c.slos().await);
    // Fast streams: 2 ms per output token.
    c.streams(40, 8, 5, "token-gap:2").await;
    let start = Instant::now();
    loop {
        let (total, sli, _) = slo_period(&c.slos().await, "tpot-50ms");
        if total >= 40.0 {
            assert_eq!(sli, Some(1.0));
            break;
        }
        assert!(start.elapsed() < SOON, "{}", c.slos().await);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(c.hook.at("/hook").is_empty(), "{:#?}", c.hook.at("/hook"));
}
