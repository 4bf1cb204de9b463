//! End to end, both data sources on the same cell: two real `cellwatch-exporter` processes
//! (stand-in powermetrics, the real metering proxy in front of an in-test OpenAI-compatible
//! upstream), one `cellwatch-slo` scraping them (`scrape` source), a real Prometheus scraping
//! them through the file_sd targets `cellwatch-slo targets` writes, and a second `cellwatch-slo`
//! reading that Prometheus (`prometheus` source). The second engine starts only after the first
//! load, so it has to backfill it. Tolerance: none. Once both have read past the last request,
//! both report the same events, SLIs and budgets as the hand count, to the event.

use std::process::Command;
use std::time::{Duration, Instant};

use cellwatch_e2e::prometheus::Prometheus;
use cellwatch_e2e::upstream::Upstream;
use cellwatch_e2e::{Exporter, binary, first_evaluation, slo_period, start_engine};
use serde_json::{Value, json};

/// Generous: Prometheus scrapes every second, the engines read every second.
const SOON: Duration = Duration::from_secs(30);

fn exporter(upstream: &str, node: &str) -> Exporter {
    Exporter::spawn(
        "cellwatch-exporter",
        &[
            "--collector.disable-defaults",
            "--collector.powermetrics",
            "--collector.inference",
            "--collector.inference.upstream",
            upstream,
            "--collector.inference.listen-address",
            "127.0.0.1:0",
            "--interval",
            "200ms",
            "--web.listen-address",
            "127.0.0.1:0",
            "--cell",
            "studio-a",
            "--node",
            node,
        ],
        tempfile::tempdir().unwrap(),
    )
}

const SLOS: &str = r#"slos:
  - name: latency-250ms
    objective: 0.9
    period: 1d
    sli: { latency: { threshold: 250ms } }
  - name: availability
    objective: 0.9
    period: 1d
    sli: { availability: {} }
"#;

/// The latency SLO again, as an OpenSLO v1 document of PromQL queries (one series per node and
/// model: no `sum`, so a node that goes away is not read as a counter reset).
const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLO
metadata:
  name: latency-openslo
  labels: { cell: studio-a }
spec:
  service: studio-a
  budgetingMethod: Occurrences
  timeWindow: [ { duration: 1d, isRolling: true } ]
  indicator:
    spec:
      ratioMetric:
        counter: true
        good: { metricSource: { type: Prometheus, spec: { query: 'cellwatch_inference_request_duration_seconds_bucket{le="0.25"}' } } }
        total: { metricSource: { type: Prometheus, spec: { query: cellwatch_inference_request_duration_seconds_count } } }
  objectives: [ { target: 0.9 } ]
"#;

fn config(n1: &str, n2: &str, source: &str) -> String {
    let openslo = if source.starts_with("prometheus") {
        "openslo: [latency.openslo.yaml]\n"
    } else {
        ""
    };
    format!(
        "cells:\n  - name: studio-a\n    nodes:\n      - {{ name: n1, url: \"{n1}/metrics\" }}\n      - {{ name: n2, url: \"{n2}/metrics\" }}\n\
         source:\n  {source}\n{SLOS}{openslo}"
    )
}

/// Waits until the engine's period totals are `want` (latency, availability; and for the
/// prometheus source, the OpenSLO latency too) and returns its SLO report.
async fn settled(
    e: &Exporter,
    what: &str,
    want: (f64, f64),
    extra_log: &dyn Fn() -> String,
) -> Value {
    let start = Instant::now();
    loop {
        let v: Value = serde_json::from_str(&e.get("/api/v1/slos").await).unwrap();
        let mut got = (
            slo_period(&v, "latency-250ms").0,
            slo_period(&v, "availability").0,
        );
        let has_openslo = v["slos"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s["slo"] == "latency-openslo"));
        if has_openslo && slo_period(&v, "latency-openslo").0 != want.0 {
            // Not settled yet: show the OpenSLO copy's total (negated) in the message.
            got.0 = -slo_period(&v, "latency-openslo").0;
        }
        if got == want {
            return v;
        }
        assert!(
            start.elapsed() < SOON,
            "{what}: period totals {got:?}, want {want:?}\n{v}\nengine log:\n{}\n{}",
            e.log(),
            extra_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends requests through a node's proxy: `fast` quick ones, `slow` ones whose first token
/// takes 600 ms, `errors` that the upstream answers with a 500.
async fn load(proxy: &str, fast: usize, slow: usize, errors: usize) {
    let client = cellwatch_e2e::http();
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "tokens:20"}],
                      "stream": true, "stream_options": {"include_usage": true}});
    let kinds = std::iter::repeat_n(None, fast)
        .chain(std::iter::repeat_n(Some("slow-first-token:600"), slow))
        .chain(std::iter::repeat_n(Some("error"), errors));
    for x in kinds {
        let mut r = client
            .post(format!("{proxy}/v1/chat/completions"))
            .json(&body);
        if let Some(x) = x {
            r = r.header("x-test", x);
        }
        let resp = r.send().await.expect("request through the proxy");
        let _ = resp.bytes().await;
    }
}

/// The same numbers, to the event, from both engines and the hand count (and, from the
/// prometheus source, for the OpenSLO copy of the latency SLO).
fn assert_same(scrape: &Value, prom: &Value, latency: (f64, f64), availability: (f64, f64)) {
    for (slo, (good, total)) in [("latency-250ms", latency), ("availability", availability)] {
        let s = slo_period(scrape, slo);
        let p = slo_period(prom, slo);
        assert_eq!(s, p, "{slo}: scrape source {s:?}, prometheus source {p:?}");
        if slo == "latency-250ms" {
            assert_eq!(slo_period(prom, "latency-openslo"), p, "the OpenSLO copy");
        }
        assert_eq!(s.0, total, "{slo}");
        assert_eq!(s.1, Some(good / total), "{slo}");
        let allowed = 0.1 * total;
        let want = 1.0 - (total - good) / allowed;
        assert!(
            (s.2.unwrap() - want).abs() < 1e-9,
            "{slo}: {s:?}, want budget {want}"
        );
    }
}

#[tokio::test]
async fn on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = |n: &str| format!("sqlite://{}", dir.path().join(n).display());
    scenario(&url("scrape.db"), &url("prometheus.db")).await;
}

#[tokio::test]
async fn on_postgres() {
    if let (Some(a), Some(b)) = (
        cellwatch_e2e::fresh_postgres_db("cw_agree_scrape"),
        cellwatch_e2e::fresh_postgres_db("cw_agree_prom"),
    ) {
        scenario(&a, &b).await;
    }
}

async fn scenario(scrape_db: &str, prom_db: &str) {
    let up = Upstream::start().await;
    let n1 = exporter(&up.base, "n1");
    let n2 = exporter(&up.base, "n2");
    let (p1, p2) = (n1.proxy_base().await, n2.proxy_base().await);
    let dir = tempfile::tempdir().unwrap();

    // Prometheus scrapes both exporters through the targets the engine generates.
    let scrape_cfg = dir.path().join("scrape.yaml");
    std::fs::write(
        &scrape_cfg,
        config(&n1.base, &n2.base, "scrape: { interval: 1s }"),
    )
    .unwrap();
    let targets = Command::new(binary("cellwatch-slo"))
        .args(["targets", "--config", scrape_cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        targets.status.success(),
        "{}",
        String::from_utf8_lossy(&targets.stderr)
    );
    let prom = Prometheus::start(
        "global: { scrape_interval: 1s, scrape_timeout: 900ms }\n\
         scrape_configs:\n  - job_name: cellwatch\n    file_sd_configs: [ { files: [ DIR/targets.json ] } ]\n",
        &[("targets.json", &String::from_utf8_lossy(&targets.stdout))],
    )
    .await;
    let start = Instant::now();
    while prom
        .query("sum(up{job=\"cellwatch\",cell=\"studio-a\"})")
        .await
        .first()
        .and_then(|r| r["value"][1].as_str().map(str::to_string))
        != Some("2".into())
    {
        assert!(
            start.elapsed() < SOON,
            "Prometheus never scraped both exporters\n{}",
            prom.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The scrape-source engine takes its baseline of both nodes before any request.
    let s = start_engine(scrape_db, &scrape_cfg, &[]);
    first_evaluation(&s).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // n1: 30 fast, 5 slow, 3 errors; n2: 20 fast, 2 slow, 2 errors.
    load(&p1, 30, 5, 3).await;
    load(&p2, 20, 2, 2).await;
    let latency = (50.0, 57.0);
    let availability = (57.0, 62.0);
    let from_scrape = settled(&s, "scrape source", (57.0, 62.0), &|| String::new()).await;

    // The prometheus-source engine starts now: it backfills what happened before it.
    let prom_cfg = dir.path().join("prometheus.yaml");
    std::fs::write(dir.path().join("latency.openslo.yaml"), OPENSLO).unwrap();
    std::fs::write(
        &prom_cfg,
        config(
            &n1.base,
            &n2.base,
            &format!(
                "prometheus: {{ url: \"{}\", interval: 1s, delay: 3s }}",
                prom.base
            ),
        ),
    )
    .unwrap();
    let p = start_engine(prom_db, &prom_cfg, &[]);
    let plog = || prom.log();
    let from_prom = settled(&p, "prometheus source, backfilled", (57.0, 62.0), &plog).await;
    assert_same(&from_scrape, &from_prom, latency, availability);

    // A restart neither loses nor repeats anything: the cursor is in the ledger. While the
    // prometheus-source engine is down, n1 serves 5 more fast requests; restarted, it reads them.
    drop(p);
    load(&p1, 5, 0, 0).await;
    let latency = (55.0, 62.0);
    let availability = (62.0, 67.0);
    let from_scrape = settled(&s, "scrape source, more load", (62.0, 67.0), &|| {
        String::new()
    })
    .await;
    let p = start_engine(prom_db, &prom_cfg, &[]);
    let from_prom = settled(&p, "prometheus source, restarted", (62.0, 67.0), &plog).await;
    assert_same(&from_scrape, &from_prom, latency, availability);

    // n1 goes down; n2 serves 10 more fast requests. Both engines count n2's, nothing of n1.
    drop(n1);
    load(&p2, 10, 0, 0).await;
    let latency = (65.0, 72.0);
    let availability = (72.0, 77.0);
    let from_scrape = settled(&s, "scrape source, n1 down", (72.0, 77.0), &|| {
        String::new()
    })
    .await;
    let from_prom = settled(&p, "prometheus source, n1 down", (72.0, 77.0), &plog).await;
    assert_same(&from_scrape, &from_prom, latency, availability);
}
