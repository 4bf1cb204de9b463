//! End to end: the metering proxy of the real `cellwatch-exporter` binary in front of a real
//! in-test OpenAI-compatible upstream, and the adapters against real `/metrics` pages.

use std::sync::atomic::Ordering;
use std::time::Duration;

use cellwatch_e2e::upstream::{PROMPT_TOKENS, Upstream};
use cellwatch_e2e::{Exporter, Metrics, promtool_check_metrics, proxy_args, workspace};
use serde_json::json;

const SOON: Duration = Duration::from_secs(20);

struct Req {
    path: &'static str,
    body: serde_json::Value,
    x_test: Option<&'static str>,
}

fn chat(model: &str, tokens: u64, stream: bool, usage: bool) -> Req {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": format!("tokens:{tokens}")}], "stream": stream});
    if usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    Req {
        path: "/v1/chat/completions",
        body,
        x_test: None,
    }
}

async fn send(client: &reqwest::Client, base: &str, r: &Req) -> (u16, Vec<u8>) {
    let mut b = client
        .post(format!("{base}{}", r.path))
        .header("content-type", "application/json")
        .body(r.body.to_string());
    if let Some(x) = r.x_test {
        b = b.header("x-test", x);
    }
    let resp = b.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

fn v(m: &Metrics, series: &str) -> f64 {
    m.value(series).unwrap_or(0.0)
}

#[tokio::test]
async fn tokens_and_histogram_counts_match_the_upstream() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    // Mixed: streaming with and without usage, non-streaming, completions, Ollama NDJSON.
    let mut n = 0;
    for i in 0..8u64 {
        let reqs = [
            chat("llama-70b", 3 + i, true, true),
            chat("llama-70b", 2 + i, true, false),
            chat("llama-70b", 1 + i, false, false),
            Req {
                path: "/v1/completions",
                body: json!({"model": "llama-70b", "prompt": format!("tokens:{}", 4 + i), "stream": i % 2 == 0}),
                x_test: None,
            },
            Req {
                path: "/api/chat",
                body: json!({"model": "llama-70b", "messages": [{"role": "user", "content": format!("tokens:{i}")}]}),
                x_test: None,
            },
        ];
        for r in &reqs {
            let (status, _) = send(&client, &proxy, r).await;
            assert_eq!(status, 200);
            n += 1;
        }
    }
    let sent = up.counters.completion_tokens.load(Ordering::Relaxed) as f64;
    let m = e
        .wait_for("every request counted", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_requests_total{model="llama-70b",outcome="ok"}"#,
            ) == n as f64
        })
        .await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_tokens_total{model="llama-70b",kind="generated"}"#
        ),
        sent,
        "{}",
        m.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_tokens_total{model="llama-70b",kind="prompt"}"#
        ),
        (PROMPT_TOKENS * (n - 12)) as f64,
        "no prompt count from the 12 streams without usage (8 chat, 4 completions)"
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_request_duration_seconds_count{model="llama-70b"}"#
        ),
        n as f64
    );
    // The Ollama requests with tokens:0 carry no content, so no first token.
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_time_to_first_token_seconds_count{model="llama-70b"}"#
        ),
        (n - 1) as f64
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_in_flight{model="llama-70b"}"#
        ),
        0.0
    );
    assert_eq!(m.collector("up", "inference"), Some(1.0));
    assert_eq!(promtool_check_metrics(&m.0), "");
}

#[tokio::test]
async fn responses_are_byte_identical_with_and_without_the_proxy() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    for r in [
        chat("m", 7, true, true),
        chat("m", 7, true, false),
        chat("m", 7, false, false),
        Req {
            path: "/api/chat",
            body: json!({"model": "m", "messages": [{"role": "user", "content": "tokens:4"}]}),
            x_test: None,
        },
        Req {
            path: "/v1/chat/completions",
            body: json!({"model": "m"}),
            x_test: Some("error"),
        },
    ] {
        let direct = send(&client, &up.base, &r).await;
        let proxied = send(&client, &proxy, &r).await;
        assert_eq!(direct, proxied, "{}", r.path);
    }
    // A route that is not metered passes through too.
    let direct = client
        .get(format!("{}/v1/models", up.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let proxied = client
        .get(format!("{proxy}/v1/models"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(direct, proxied);
    let m = e.metrics().await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_total{model="m",outcome="server_error"}"#
        ),
        1.0
    );
}

#[tokio::test]
async fn a_down_upstream_is_a_502_and_upstream_unavailable() {
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let e = Exporter::start_owned(&proxy_args(&dead));
    let proxy = e.proxy_base().await;
    let client = cellwatch_exporter::tls::http_client()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let (status, body) = send(&client, &proxy, &chat("m", 3, true, true)).await;
    assert_eq!(status, 502);
    assert!(String::from_utf8_lossy(&body).contains("unavailable"));
    let m = e
        .wait_for("the outcome", SOON, |m| {
            m.has("cellwatch_inference_requests_total")
        })
        .await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_total{model="m",outcome="upstream_unavailable"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_request_duration_seconds_count{model="m"}"#
        ),
        0.0,
        "failed requests are not latency samples"
    );
}

#[tokio::test]
async fn slow_first_token_is_measured() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    let mut r = chat("m", 3, true, true);
    r.x_test = Some("slow-first-token:300");
    assert_eq!(send(&client, &proxy, &r).await.0, 200);
    let m = e
        .wait_for("one TTFT sample", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_time_to_first_token_seconds_count{model="m"}"#,
            ) == 1.0
        })
        .await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_time_to_first_token_seconds_bucket{model="m",le="0.25"}"#
        ),
        0.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_time_to_first_token_seconds_bucket{model="m",le="0.5"}"#
        ),
        1.0
    );
    assert!(
        v(
            &m,
            r#"cellwatch_inference_time_to_first_token_seconds_sum{model="m"}"#
        ) >= 0.3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_token_cadence_gives_its_time_per_output_token() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    // Three streams of 5 tokens 120 ms apart after a 50 ms first token, with and without usage:
    // a TPOT of 120 ms (and a little more), in the (0.1, 0.15] bucket.
    let mut streams = Vec::new();
    for usage in [true, false, true] {
        let mut r = chat("cadence", 5, true, usage);
        r.x_test = Some("slow-first-token:50,token-gap:120");
        let (client, proxy) = (client.clone(), proxy.clone());
        streams.push(tokio::spawn(
            async move { send(&client, &proxy, &r).await.0 },
        ));
    }
    for s in streams {
        assert_eq!(s.await.unwrap(), 200);
    }
    // Non-streamed requests (however slow their tokens) and one-token streams add none.
    let mut r = chat("cadence", 5, false, false);
    r.x_test = Some("token-gap:120");
    assert_eq!(send(&client, &proxy, &r).await.0, 200);
    assert_eq!(
        send(&client, &proxy, &chat("cadence", 1, true, true))
            .await
            .0,
        200
    );
    let m = e
        .wait_for("every request counted", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_requests_total{model="cadence",outcome="ok"}"#,
            ) == 5.0
        })
        .await;
    let tpot = |s: &str| {
        v(
            &m,
            &format!("cellwatch_inference_time_per_output_token_seconds{s}"),
        )
    };
    assert_eq!(tpot(r#"_count{model="cadence"}"#), 3.0, "{}", m.0);
    assert_eq!(tpot(r#"_bucket{model="cadence",le="0.1"}"#), 0.0, "{}", m.0);
    assert_eq!(
        tpot(r#"_bucket{model="cadence",le="0.15"}"#),
        3.0,
        "{}",
        m.0
    );
    let mean = tpot(r#"_sum{model="cadence"}"#) / 3.0;
    assert!((0.12..0.15).contains(&mean), "mean TPOT {mean}");
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_waiting{model="cadence"}"#
        ),
        0.0
    );
    assert_eq!(promtool_check_metrics(&m.0), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_behind_one_in_prefill_waits_until_its_first_token() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    let waiting = r#"cellwatch_inference_requests_waiting{model="slow"}"#;
    let in_flight = r#"cellwatch_inference_requests_in_flight{model="slow"}"#;
    let r = chat("slow", 3, true, true);
    let send = || {
        client
            .post(format!("{proxy}/v1/chat/completions"))
            .header("x-test", "slow-first-token:3000,token-gap:10")
            .body(r.body.to_string())
            .send()
    };
    // One request whose role chunk has arrived and whose first token has not: alone, it is
    // taken to be in prefill, not waiting.
    let mut a = send().await.unwrap();
    assert_eq!(a.status(), 200);
    assert!(!a.chunk().await.unwrap().unwrap().is_empty());
    let m = e
        .wait_for("one in flight", SOON, |m| v(m, in_flight) == 1.0)
        .await;
    assert_eq!(v(&m, waiting), 0.0, "{}", m.0);
    // A second one behind it waits.
    let mut b = send().await.unwrap();
    assert!(!b.chunk().await.unwrap().unwrap().is_empty());
    let m = e
        .wait_for("one request waiting", SOON, |m| v(m, waiting) == 1.0)
        .await;
    assert_eq!(v(&m, in_flight), 2.0);
    while a.chunk().await.unwrap().is_some() {}
    while b.chunk().await.unwrap().is_some() {}
    let m = e
        .wait_for("done", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_requests_total{model="slow",outcome="ok"}"#,
            ) == 2.0
        })
        .await;
    assert_eq!(v(&m, waiting), 0.0, "{}", m.0);
    assert_eq!(v(&m, in_flight), 0.0);
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    let mut r = chat("m", 200, true, true);
    r.x_test = Some("token-gap:20");
    let mut resp = client
        .post(format!("{proxy}/v1/chat/completions"))
        .header("x-test", "token-gap:20")
        .body(r.body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap().unwrap();
    assert!(!first.is_empty());
    drop(resp);
    drop(client);
    let m = e
        .wait_for("cancelled", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_requests_total{model="m",outcome="cancelled"}"#,
            ) == 1.0
        })
        .await;
    assert_eq!(
        v(&m, r#"cellwatch_inference_requests_in_flight{model="m"}"#),
        0.0
    );
    let start = std::time::Instant::now();
    while up.counters.cancelled.load(Ordering::Relaxed) == 0 {
        assert!(
            start.elapsed() < SOON,
            "the upstream stream was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn model_labels_are_bounded_and_bodies_limited() {
    let up = Upstream::start().await;
    let mut args = proxy_args(&up.base);
    args.extend(
        [
            "--collector.inference.max-models",
            "2",
            "--collector.inference.max-body-size",
            "1KiB",
        ]
        .map(String::from),
    );
    let e = Exporter::start_owned(&args);
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    for model in ["a", "b", "c", "d"] {
        assert_eq!(
            send(&client, &proxy, &chat(model, 1, false, false)).await.0,
            200
        );
    }
    let big = Req {
        path: "/v1/chat/completions",
        body: json!({"model": "a", "messages": [{"content": "x".repeat(4096)}]}),
        x_test: None,
    };
    assert_eq!(send(&client, &proxy, &big).await.0, 413);
    let m = e
        .wait_for("all counted", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_requests_total{model="other",outcome="ok"}"#,
            ) == 2.0
        })
        .await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_total{model="a",outcome="ok"}"#
        ),
        1.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_total{model="unknown",outcome="client_error"}"#
        ),
        1.0
    );
    assert!(!m.0.contains(r#"model="c""#));
}

#[tokio::test]
async fn a_model_after_a_long_prompt_is_still_found() {
    // The OpenAI SDKs send `messages` before `model`: past the 64 KiB the proxy holds back, the
    // model is found as the body streams upstream.
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let proxy = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    let long = "x".repeat(200_000);
    let body = format!(
        r#"{{"messages":[{{"role":"user","content":"tokens:3"}},{{"role":"user","content":"{long}"}}],"model":"late-model","stream":true}}"#
    );
    let resp = client
        .post(format!("{proxy}/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    let m = e
        .wait_for("the request counted under its model", SOON, |m| {
            v(
                m,
                r#"cellwatch_inference_requests_total{model="late-model",outcome="ok"}"#,
            ) == 1.0
        })
        .await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_in_flight{model="unknown"}"#
        ),
        0.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_tokens_total{model="late-model",kind="generated"}"#
        ),
        3.0,
        "{}",
        m.0
    );
}

#[tokio::test]
async fn usage_above_the_bound_is_clamped_and_counted_not_wrapped() {
    let up = Upstream::start().await;
    let e = Exporter::start_owned(&proxy_args(&up.base));
    let base = e.proxy_base().await;
    let client = cellwatch_e2e::http();
    let mut r = chat("m", 3, false, false);
    r.x_test = Some("usage:18446744073709551615");
    assert_eq!(send(&client, &base, &r).await.0, 200);
    assert_eq!(
        send(&client, &base, &chat("m", 5, false, false)).await.0,
        200
    );
    let generated = r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#;
    let m = e
        .wait_for("both requests counted", SOON, |m| {
            m.value(r#"cellwatch_inference_requests_total{model="m",outcome="ok"}"#) == Some(2.0)
        })
        .await;
    // 2^64 − 1 + 5 would wrap to 4; the bound is 10^7 per response.
    assert_eq!(v(&m, generated), 10_000_005.0, "{}", m.0);
    assert_eq!(
        m.value(r#"cellwatch_inference_usage_anomalies_total{model="m"}"#),
        Some(1.0),
        "{}",
        m.0
    );
    assert_eq!(promtool_check_metrics(&m.0), "");
    assert!(
        e.log().contains("more tokens than one request"),
        "{}",
        e.log()
    );
}

#[tokio::test]
async fn adapter_values_that_are_not_counts_are_dropped_and_large_pages_refused() {
    let up = Upstream::start().await;
    let page = |tokens: &str, running: &str| {
        format!(
            "# TYPE vllm:generation_tokens_total counter\n\
             vllm:generation_tokens_total{{model_name=\"m\"}} {tokens}\n\
             # TYPE vllm:num_requests_running gauge\n\
             vllm:num_requests_running{{model_name=\"m\"}} {running}\n"
        )
    };
    up.set_page("vllm", &page("100", "2"));
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.adapter",
        &format!("vllm={}/metrics/vllm", up.base),
        "--collector.inference.adapter-interval",
        "200ms",
        "--collector.inference.adapter-max-page-size",
        "64KiB",
    ]);
    let tokens = r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#;
    let dropped = |m: &Metrics, reason: &str| {
        v(
            m,
            &format!(
                r#"cellwatch_inference_adapter_dropped_samples_total{{server="vllm",reason="{reason}"}}"#
            ),
        )
    };
    e.wait_for("the first page", SOON, |m| m.value(tokens) == Some(100.0))
        .await;
    up.set_page("vllm", &page("+Inf", "-3"));
    let m = e
        .wait_for("drops counted", SOON, |m| {
            dropped(m, "non_finite") >= 1.0 && dropped(m, "negative") >= 1.0
        })
        .await;
    assert!(
        m.0.lines()
            .filter(|l| l.starts_with("cellwatch_inference"))
            .all(|l| !l.ends_with("Inf") && !l.ends_with("NaN") && !l.contains(" -")),
        "{}",
        m.0
    );
    assert_eq!(promtool_check_metrics(&m.0), "");
    up.set_page("vllm", &page("NaN", "1"));
    e.wait_for("a NaN dropped", SOON, |m| dropped(m, "non_finite") >= 2.0)
        .await;
    // A restart of the server after the bad pages is still a reset: 100 + 20.
    up.set_page("vllm", &page("20", "1"));
    e.wait_for("counting on", SOON, |m| m.value(tokens) == Some(120.0))
        .await;
    assert_eq!(
        e.log()
            .matches("dropped samples of an inference server's page")
            .count(),
        2,
        "one warning per family and reason:\n{}",
        e.log()
    );
    // A page over the cap is an error that says so; the counter keeps its value.
    up.set_page("vllm", &(page("30", "1") + &"# padding\n".repeat(10_000)));
    let m = e
        .wait_for("the large page refused", SOON, |m| {
            m.collector("up", "inference") == Some(0.0)
        })
        .await;
    assert_eq!(m.value(tokens), Some(120.0));
    assert!(e.log().contains("larger than 65536 bytes"), "{}", e.log());
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(workspace().join("exporter/testdata/inference").join(name)).unwrap()
}

#[tokio::test]
async fn adapters_normalize_vllm_and_llamacpp_and_stay_monotonic() {
    let up = Upstream::start().await;
    up.set_page("vllm", &fixture("vllm.prom"));
    up.set_page("llamacpp", &fixture("llamacpp.prom"));
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.adapter",
        &format!("vllm={}/metrics/vllm", up.base),
        "--collector.inference.adapter",
        &format!("llamacpp={}/metrics/llamacpp;model=llama-3.3-70b", up.base),
        "--collector.inference.adapter-interval",
        "200ms",
    ]);
    let m = e
        .wait_for("adapted series", SOON, |m| {
            m.collector("up", "inference") == Some(1.0) && m.has("cellwatch_inference_tokens_total")
        })
        .await;
    let model = "meta-llama/Llama-3.1-8B-Instruct";
    assert_eq!(
        v(
            &m,
            &format!(r#"cellwatch_inference_tokens_total{{model="{model}",kind="prompt"}}"#)
        ),
        51234.0
    );
    assert_eq!(
        v(
            &m,
            &format!(r#"cellwatch_inference_tokens_total{{model="{model}",kind="generated"}}"#)
        ),
        98765.0
    );
    assert_eq!(
        v(
            &m,
            &format!(r#"cellwatch_inference_request_duration_seconds_count{{model="{model}"}}"#)
        ),
        420.0
    );
    assert_eq!(
        v(
            &m,
            &format!(
                r#"cellwatch_inference_time_to_first_token_seconds_bucket{{model="{model}",le="0.5"}}"#
            )
        ),
        400.0
    );
    assert_eq!(
        v(
            &m,
            &format!(r#"cellwatch_inference_requests_total{{model="{model}",outcome="ok"}}"#)
        ),
        415.0
    );
    assert_eq!(
        v(
            &m,
            &format!(
                r#"cellwatch_inference_requests_total{{model="{model}",outcome="cancelled"}}"#
            )
        ),
        5.0
    );
    assert_eq!(
        v(
            &m,
            &format!(r#"cellwatch_inference_requests_in_flight{{model="{model}"}}"#)
        ),
        3.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_tokens_total{model="llama-3.3-70b",kind="generated"}"#
        ),
        3469.0
    );
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_requests_in_flight{model="llama-3.3-70b"}"#
        ),
        1.0
    );
    assert!(
        !m.0.contains(
            r#"cellwatch_inference_request_duration_seconds_count{model="llama-3.3-70b"}"#
        ),
        "llama.cpp has no latency histogram"
    );
    assert_eq!(promtool_check_metrics(&m.0), "");

    // llama.cpp restarts: its counters start again from small values; ours keep counting up.
    up.set_page(
        "llamacpp",
        &fixture("llamacpp.prom").replace(
            "llamacpp:tokens_predicted_total 3469",
            "llamacpp:tokens_predicted_total 31",
        ),
    );
    e.wait_for("the restart absorbed", SOON, |m| {
        v(
            m,
            r#"cellwatch_inference_tokens_total{model="llama-3.3-70b",kind="generated"}"#,
        ) == 3500.0
    })
    .await;

    // A server that stops answering: up 0, counters kept.
    up.set_page("llamacpp", "<html>gone</html>");
    let m = e
        .wait_for("the failure counted", SOON, |m| {
            m.collector("up", "inference") == Some(0.0)
        })
        .await;
    assert_eq!(
        v(
            &m,
            r#"cellwatch_inference_tokens_total{model="llama-3.3-70b",kind="generated"}"#
        ),
        3500.0
    );
}

#[tokio::test]
async fn a_proxy_port_in_use_is_an_error_not_a_shared_port() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let e = Exporter::start(&[
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.upstream",
        "http://127.0.0.1:9",
        "--collector.inference.listen-address",
        &addr,
    ]);
    let m = e
        .wait_for("the failure reported", SOON, |m| {
            m.collector("errors_total", "inference") >= Some(1.0)
        })
        .await;
    assert_eq!(m.collector("up", "inference"), Some(0.0));
    assert!(
        e.log().contains("the metering proxy cannot listen"),
        "{}",
        e.log()
    );
    drop(busy);
}

/// An upstream that answers a request's headers at once and its body only once the whole
/// request body has arrived.
async fn early_answering_upstream() -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut c, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 64 << 10];
                let head_end = loop {
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match c.read(&mut buf).await {
                        Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                        _ => return,
                    }
                };
                let head = String::from_utf8_lossy(&got[..head_end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                let body = "{\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}";
                let headers = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if c.write_all(headers.as_bytes()).await.is_err() {
                    return;
                }
                let mut have = got.len() - head_end;
                while have < length {
                    match c.read(&mut buf).await {
                        Ok(n) if n > 0 => have += n,
                        _ => return,
                    }
                }
                let _ = c.write_all(body.as_bytes()).await;
            });
        }
    });
    format!("http://{a}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_found_after_the_response_started_is_counted_under_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = early_answering_upstream().await;
    let e = Exporter::start_owned(&proxy_args(&upstream));
    let proxy = e.proxy_base().await;
    let mut c = tokio::net::TcpStream::connect(proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    // 100 KiB of messages (past the 64 KiB the proxy holds back), then, once the response has
    // started, the model.
    let first = format!(
        "{{\"messages\":[{{\"role\":\"user\",\"content\":\"{}\"}}],",
        "x".repeat(100 << 10)
    );
    let last = "\"model\":\"late-model\"}";
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        first.len() + last.len()
    );
    c.write_all(head.as_bytes()).await.unwrap();
    c.write_all(first.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(SOON, c.read(&mut buf))
            .await
            .expect("response headers before the end of the request body")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 200"));
    c.write_all(last.as_bytes()).await.unwrap();
    while !got.ends_with(b"}}") {
        let n = tokio::time::timeout(SOON, c.read(&mut buf))
            .await
            .expect("the response body")
            .unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let m = e
        .wait_for("the request counted", SOON, |m| {
            m.value(r#"cellwatch_inference_requests_total{model="late-model",outcome="ok"}"#)
                .is_some()
                || m.value(r#"cellwatch_inference_requests_total{model="unknown",outcome="ok"}"#)
                    .is_some()
        })
        .await;
    assert_eq!(
        m.value(r#"cellwatch_inference_requests_total{model="late-model",outcome="ok"}"#),
        Some(1.0),
        "counted as unknown"
    );
    assert_eq!(
        m.value(r#"cellwatch_inference_requests_in_flight{model="unknown"}"#)
            .unwrap_or(0.0),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_while_the_model_is_looked_for_is_counted_as_cancelled() {
    use tokio::io::AsyncWriteExt;
    let upstream = early_answering_upstream().await;
    let e = Exporter::start_owned(&proxy_args(&upstream));
    let proxy = e.proxy_base().await;
    let mut c = tokio::net::TcpStream::connect(proxy.trim_start_matches("http://"))
        .await
        .unwrap();
    // Part of the messages, no model yet; then the client goes away.
    c.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100000\r\n\r\n{\"messages\":[{\"role\":\"user\",\"content\":\"xxxxxxxx",
    )
    .await
    .unwrap();
    c.flush().await.unwrap();
    e.wait_for("the request in flight", SOON, |m| {
        m.value(r#"cellwatch_inference_requests_in_flight{model="unknown"}"#) == Some(1.0)
    })
    .await;
    drop(c);
    e.wait_for("the request counted as cancelled", SOON, |m| {
        m.value(r#"cellwatch_inference_requests_total{model="unknown",outcome="cancelled"}"#)
            == Some(1.0)
            && m.value(r#"cellwatch_inference_requests_in_flight{model="unknown"}"#) == Some(0.0)
    })
    .await;
}
