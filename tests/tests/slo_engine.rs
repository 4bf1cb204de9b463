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

/// An engine with an API token, scraping `nodes` (cell name, URL) every second; `extra`
/// arguments after the ledger's.
fn engine_with_api(
    dir: &std::path::Path,
    nodes: &[(&str, String)],
    extra: &[&str],
) -> (Exporter, String) {
    let token = dir.join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let cells: String = nodes
        .iter()
        .map(|(cell, url)| {
            format!("  - name: {cell}\n    nodes:\n      - {{ name: n1, url: \"{url}\" }}\n")
        })
        .collect();
    let cfg = dir.join("cells.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n{cells}\
             source:\n  scrape: {{ interval: 1s }}\n\
             slos:\n  - {{ name: availability, objective: 0.99, period: 1d, sli: {{ availability: {{}} }} }}\n\
             alerting:\n  cell_down_for: 0s\n  api_token_file: {}\n",
            token.display()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.join("ledger.db").display());
    (start_engine(&db, &cfg, extra), db)
}

/// POSTs a silence with one matcher `cell=~value` (or `=` when not a regex); the status and
/// the answer.
async fn post_silence(
    client: &reqwest::Client,
    base: &str,
    value: &str,
    is_regex: bool,
) -> (u16, Value) {
    let body = serde_json::json!({
        "matchers": [{"name": "cell", "value": value, "isRegex": is_regex, "isEqual": true}],
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "load",
    });
    let r = client
        .post(format!("{base}/api/v1/silences"))
        .header("Authorization", "Bearer s3cret")
        .json(&body)
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("POST /api/v1/silences");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Identical silences posted at once all get 200 and ids of their own; beyond the bound on
/// active silences, and with a regular expression too long or too big, a 400 that says why.
/// The evaluation's duration is on /metrics.
#[tokio::test]
async fn silences_get_unique_ids_and_are_bounded() {
    let up = Upstream::start().await;
    up.set_page("n1", &page(0, 0, 0, 0, 0, 0.0));
    let dir = tempfile::tempdir().unwrap();
    let (e, _) = engine_with_api(
        dir.path(),
        &[("studio-a", format!("{}/metrics/n1", up.base))],
        &["--silences.max-active", "200"],
    );
    first_evaluation(&e).await;
    let client = cellwatch_e2e::http();
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let (client, base) = (client.clone(), e.base.clone());
        posts.spawn(async move { post_silence(&client, &base, "studio-.*", true).await });
    }
    let answers = posts.join_all().await;
    let mut ids = std::collections::BTreeSet::new();
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        ids.insert(body["silenceID"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 200, "every silence has an id of its own");
    let list: Value = serde_json::from_str(&e.get("/api/v1/silences").await).unwrap();
    assert_eq!(list["silences"].as_array().unwrap().len(), 200);

    // The 201st active silence is refused.
    let (status, body) = post_silence(&client, &e.base, "studio-b", false).await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("200 silences are active or pending") && msg.contains("--silences.max-active"),
        "{msg}"
    );
    // An expired one makes room.
    let id = ids.iter().next().unwrap();
    let r = client
        .delete(format!("{}/api/v1/silences/{id}", e.base))
        .header("Authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, body) = post_silence(&client, &e.base, "studio-b", false).await;
    assert_eq!(status, 200, "{body}");

    // Regular expressions: too long, and short but compiling too big.
    let (status, body) = post_silence(&client, &e.base, &"a".repeat(1025), true).await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(msg.contains("1025 bytes long, the limit is 1024"), "{msg}");
    let (status, body) = post_silence(&client, &e.base, "(\\w{100}){100}", true).await;
    assert_eq!(status, 400, "{body}");
    let msg = body["error"].as_str().unwrap();
    assert!(
        msg.contains("matcher \"cell\": the regular expression compiles to more than"),
        "{msg}"
    );

    let m = e.get("/metrics").await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("cellwatch_slo_evaluation_duration_seconds ")),
        "{m}"
    );
    assert_eq!(promtool_check_metrics(&m), "");
}

/// Every request through the exporter's metering proxy reaches the ledger once, while
/// thousands of regex silences are posted and active, cells are down (their alerts matched
/// against every silence at every evaluation) and clients read the status page and the API
/// all along.
#[tokio::test]
async fn no_event_is_lost_under_api_load_and_thousands_of_silences() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const SILENCES: u64 = 2000;
    const REQUESTS: u64 = 400;
    let up = Upstream::start().await;
    let exporter = Exporter::start_owned(&cellwatch_e2e::proxy_args(&up.base));
    let proxy = exporter.proxy_base().await;
    let dir = tempfile::tempdir().unwrap();
    // Four cells whose only node refuses connections: four cell-down pages.
    let dead = format!("http://127.0.0.1:{}/metrics", cellwatch_e2e::free_port());
    let mut nodes = vec![("studio-a", format!("{}/metrics", exporter.base))];
    for c in ["down-1", "down-2", "down-3", "down-4"] {
        nodes.push((c, dead.clone()));
    }
    let (e, _) = engine_with_api(dir.path(), &nodes, &["--silences.max-active", "5000"]);
    first_evaluation(&e).await;
    // The engine's baseline of the exporter's page.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let client = cellwatch_e2e::http();

    // Readers for the whole run: the status page, the silences, the SLOs.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let mut readers = Vec::new();
    for path in ["/", "/", "/api/v1/silences", "/api/v1/slos"] {
        let (client, url, stop, reads) = (
            client.clone(),
            format!("{}{path}", e.base),
            stop.clone(),
            reads.clone(),
        );
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(r) = client
                    .get(&url)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                {
                    let _ = r.bytes().await;
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    // Silences that match none of the alerts, so every one is tried on each; posted while the
    // proxied requests flow.
    let posted = Arc::new(AtomicU64::new(0));
    let mut posters = Vec::new();
    for w in 0..8 {
        let (client, base, posted) = (client.clone(), e.base.clone(), posted.clone());
        posters.push(tokio::spawn(async move {
            for i in (w..SILENCES).step_by(8) {
                let (status, body) =
                    post_silence(&client, &base, &format!("nowhere-{i}-[a-z]+|x{i}y.*"), true)
                        .await;
                assert_eq!(status, 200, "{body}");
                posted.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // The proxied requests, a few at a time, until every silence is in and at least REQUESTS
    // went through.
    let sent = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for _ in 0..4 {
        let (client, url, sent, posted) = (
            client.clone(),
            format!("{proxy}/v1/chat/completions"),
            sent.clone(),
            posted.clone(),
        );
        senders.push(tokio::spawn(async move {
            while sent.load(Ordering::Relaxed) < REQUESTS || posted.load(Ordering::Relaxed) < SILENCES {
                let i = sent.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": format!("tokens:{}", 1 + i % 5)}]});
                let r = client.post(&url).json(&body).send().await.expect("proxied request");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    for t in posters.into_iter().chain(senders) {
        t.await.unwrap();
    }
    let proxied = sent.load(Ordering::Relaxed);
    assert_eq!(up.counters.requests.load(Ordering::Relaxed), proxied);

    // Every request is in the ledger once (a few scrapes later); the readers keep reading.
    let start = std::time::Instant::now();
    let mut total = 0.0;
    while start.elapsed() < Duration::from_secs(60) {
        total = slo_period(&api(&e).await, "availability").0;
        if total >= proxied as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        total,
        proxied as f64,
        "proxied {proxied}, recorded {total}\n{}",
        e.log()
    );
    // And stays there: nothing counted twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slo_period(&api(&e).await, "availability").0, proxied as f64);
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    let m = e.get("/metrics").await;
    let took = m
        .lines()
        .find_map(|l| l.strip_prefix("cellwatch_slo_evaluation_duration_seconds "))
        .unwrap_or("absent");
    eprintln!(
        "{SILENCES} regex silences, {} reads: last evaluation {took} s; proxied {proxied}, recorded {total}; lease lost {} times",
        reads.load(Ordering::Relaxed),
        e.log().matches("lost the leader lease").count()
    );
    assert!(
        m.contains(
            "cellwatch_slo_alerts{alertname=\"CellwatchCellDown\",cell=\"down-1\",severity=\"page\",slo=\"\",state=\"firing\"} 1"
        ),
        "the down cells page (their alerts are matched against every silence)\n{m}"
    );
}

/// Two engines on one ledger: the leader stalls (SIGSTOP) while requests flow, the standby
/// takes over, the old leader wakes up still believing it leads. Every proxied request is in
/// the ledger once: none lost in the handover, none counted twice by the two.
#[tokio::test]
async fn a_stalled_leader_hands_over_without_losing_or_doubling_events() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let up = Upstream::start().await;
    let exporter = Exporter::start_owned(&cellwatch_e2e::proxy_args(&up.base));
    let proxy = exporter.proxy_base().await;
    let dir = tempfile::tempdir().unwrap();
    let db = cellwatch_e2e::fresh_postgres_db("cw_handover")
        .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("ledger.db").display()));
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n  - name: studio-a\n    nodes:\n      - {{ name: n1, url: \"{}/metrics\" }}\n\
             source:\n  scrape: {{ interval: 1s }}\n\
             slos:\n  - {{ name: availability, objective: 0.99, period: 1d, sli: {{ availability: {{}} }} }}\n",
            exporter.base
        ),
    )
    .unwrap();
    let a = start_engine(&db, &cfg, &[]);
    first_evaluation(&a).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let b = start_engine(&db, &cfg, &[]);
    first_evaluation(&b).await;

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let (client, url, stop, sent) = (
            cellwatch_e2e::http(),
            format!("{proxy}/v1/chat/completions"),
            stop.clone(),
            sent.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "tokens:2"}]});
                let r = client
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .expect("proxied request");
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await;
                sent.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let signal = |sig: &str, pid: u32| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal("-STOP", a.pid());
    // The lease lasts 1.25 s: the standby leads well within 4 s.
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal("-CONT", a.pid());
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let proxied = sent.load(Ordering::Relaxed);
    assert_eq!(up.counters.requests.load(Ordering::Relaxed), proxied);
    assert!(
        b.log().contains("took the leader lease"),
        "the standby took over\n{}",
        b.log()
    );

    let start = std::time::Instant::now();
    let mut total = 0.0;
    while start.elapsed() < Duration::from_secs(60) {
        total = slo_period(&api(&b).await, "availability").0;
        if total >= proxied as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        total,
        proxied as f64,
        "proxied {proxied}, recorded {total}\nleader:\n{}\nstandby:\n{}",
        a.log(),
        b.log()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(slo_period(&api(&b).await, "availability").0, proxied as f64);
    eprintln!("handover: proxied {proxied}, recorded {total}");
}
