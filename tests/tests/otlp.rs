//! End to end: `--otlp.endpoint` pushes to in-test OTLP receivers that decode what arrives
//! (`cellwatch_e2e::otlp`): HTTP/protobuf on `/v1/metrics` and `/v1/traces`, gRPC
//! `MetricsService/Export` and `TraceService/Export`. The pushed families are the ones
//! `/metrics` serves, with the resource attributes service.name, cell and node, and the headers
//! given; with `--otlp.semconv genai|both` the proxy's GenAI histograms; with `--otlp.traces`
//! one span per metered request, linked to the client's and the upstream's traces. The engine
//! (`cellwatch-slo run --otlp.endpoint`) sends a span per evaluation and per delivery, and its
//! webhook requests carry the delivery span's `traceparent`.

use std::time::{Duration, Instant};

use cellwatch_e2e::Exporter;
use cellwatch_e2e::otlp::{Received, Receiver};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value;

fn resource(req: &ExportMetricsServiceRequest) -> Vec<(String, String)> {
    req.resource_metrics[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                _ => String::new(),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

async fn pushes_the_metrics_page(
    protocol: &str,
    endpoint: String,
    got: Received<ExportMetricsServiceRequest>,
) {
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--collector.vmstat",
            "--collector.powermetrics",
            "--otlp.endpoint",
            &endpoint,
            "--otlp.protocol",
            protocol,
            "--otlp.interval",
            "300ms",
            "--otlp.header",
            "X-Scope-OrgID=inference",
        ],
    );
    // Wait until the page has power, then for a push after that.
    let page = e
        .wait_for("power on /metrics", Duration::from_secs(20), |m| {
            m.has("cellwatch_power_watts{")
        })
        .await;
    let seen = got.lock().unwrap().len();
    let start = Instant::now();
    let (req, hdrs) = loop {
        if let Some(r) = got.lock().unwrap().get(seen).cloned() {
            break r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nothing pushed\n{}",
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attrs = resource(&req);
    for (k, v) in [
        ("service.name", "cellwatch-exporter"),
        ("cell", "test-cell"),
        ("node", "test-node"),
    ] {
        assert!(attrs.contains(&(k.into(), v.into())), "{attrs:?}");
    }
    assert!(
        hdrs.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-scope-orgid") && v == "inference"),
        "{hdrs:?}"
    );
    let metrics = &req.resource_metrics[0].scope_metrics[0].metrics;
    let pushed: std::collections::BTreeSet<&str> =
        metrics.iter().map(|m| m.name.as_str()).collect();
    let served: std::collections::BTreeSet<&str> = page
        .0
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(pushed, served, "the same families as /metrics");
    // A value that does not move: the installed memory.
    let total = metrics
        .iter()
        .find(|m| m.name == "cellwatch_memory_total_bytes")
        .unwrap();
    use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point::Value};
    let Some(Data::Gauge(g)) = &total.data else {
        panic!("{total:?}")
    };
    assert_eq!(
        g.data_points[0].value,
        Some(Value::AsDouble(
            page.value("cellwatch_memory_total_bytes").unwrap()
        ))
    );
    assert_eq!(total.unit, "By");
    let energy = metrics
        .iter()
        .find(|m| m.name == "cellwatch_energy_joules_total")
        .unwrap();
    let Some(Data::Sum(s)) = &energy.data else {
        panic!("{energy:?}")
    };
    assert!(
        s.is_monotonic
            && s.data_points
                .iter()
                .any(|p| p.attributes[0].key == "component")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http_protobuf() {
    let Receiver { url, metrics, .. } = cellwatch_e2e::otlp::http().await;
    pushes_the_metrics_page("http/protobuf", url, metrics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc() {
    let Receiver { url, metrics, .. } = cellwatch_e2e::otlp::grpc().await;
    pushes_the_metrics_page("grpc", url, metrics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_collector_is_logged_once_and_metrics_are_still_served() {
    let port = cellwatch_e2e::free_port();
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--collector.vmstat",
            "--otlp.endpoint",
            &format!("http://user:s3cret@127.0.0.1:{port}"),
            "--otlp.interval",
            "100ms",
        ],
    );
    let start = Instant::now();
    while !e.log().contains("OTLP export failed") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", e.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = e.log();
    assert_eq!(log.matches("OTLP export failed").count(), 1, "{log}");
    assert!(!log.contains("s3cret"), "{log}");
    assert!(e.metrics().await.has("cellwatch_memory_total_bytes"));
}

use cellwatch_e2e::otlp::{attr, hex};
use cellwatch_e2e::upstream::{PROMPT_TOKENS, Upstream};
use cellwatch_metrics::genai as g;
use opentelemetry_proto::tonic::metrics::v1::{Metric, metric::Data};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};

/// Sends a chat request through the proxy; `stream` asks for SSE with usage; `headers` are
/// extra headers (`x-test`, `traceparent`). Returns the status.
async fn chat(proxy: &str, stream: bool, tokens: u64, headers: &[(&str, &str)]) -> u16 {
    let body = serde_json::json!({
        "model": "test-model",
        "stream": stream,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": format!("tokens:{tokens}")}],
    });
    let mut b = cellwatch_e2e::http()
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&body);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let r = b.send().await.expect("the proxy answers");
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    status
}

/// Starts an exporter with the metering proxy in front of a fresh upstream, pushing to
/// `endpoint` with `extra` flags.
async fn proxy_exporter(endpoint: &str, extra: &[&str]) -> (Exporter, Upstream, String) {
    let up = Upstream::start().await;
    let mut args = cellwatch_e2e::proxy_args(&up.base);
    args.extend(
        ["--otlp.endpoint", endpoint, "--otlp.interval", "300ms"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
    );
    let e = Exporter::start_owned(&args);
    let proxy = e.proxy_base().await;
    (e, up, proxy)
}

/// The GenAI metrics of the latest push whose request-duration count is at least `requests`.
async fn genai_push(r: &Receiver, requests: u64, e: &Exporter) -> ExportMetricsServiceRequest {
    let start = Instant::now();
    loop {
        let got = r.metrics.lock().unwrap().last().map(|(m, _)| m.clone());
        if let Some(req) = got {
            let n: u64 = req.resource_metrics[0]
                .scope_metrics
                .iter()
                .flat_map(|s| s.metrics.iter())
                .filter(|m| m.name == g::SERVER_REQUEST_DURATION.name)
                .flat_map(|m| match &m.data {
                    Some(Data::Histogram(h)) => h.data_points.iter().map(|p| p.count).collect(),
                    _ => vec![],
                })
                .sum();
            if n >= requests {
                return req;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no push with {requests} requests\n{}",
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn genai_metric<'a>(req: &'a ExportMetricsServiceRequest, name: &str) -> &'a Metric {
    let scope = req.resource_metrics[0]
        .scope_metrics
        .iter()
        .find(|s| s.schema_url == g::SCHEMA_URL)
        .expect("a scope with the GenAI schema URL");
    scope
        .metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{name} in {:?}", scope.metrics))
}

fn histogram(m: &Metric) -> &opentelemetry_proto::tonic::metrics::v1::Histogram {
    match &m.data {
        Some(Data::Histogram(h)) => h,
        other => panic!("{} is not a histogram: {other:?}", m.name),
    }
}

/// Three streamed requests and one failing one through the proxy: the GenAI histograms arrive
/// with the conventions' names, units, bounds and attributes.
async fn genai_histograms(r: Receiver, protocol: &str, semconv: &str) {
    let (e, _up, proxy) = proxy_exporter(
        &r.url,
        &["--otlp.protocol", protocol, "--otlp.semconv", semconv],
    )
    .await;
    for _ in 0..3 {
        assert_eq!(chat(&proxy, true, 5, &[]).await, 200);
    }
    assert_eq!(chat(&proxy, false, 5, &[("x-test", "error")]).await, 500);
    let req = genai_push(&r, 4, &e).await;
    let names: std::collections::BTreeSet<&str> = req.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| s.metrics.iter().map(|m| m.name.as_str()))
        .collect();
    assert_eq!(
        names.iter().any(|n| n.starts_with("cellwatch_")),
        semconv == "both",
        "{names:?}"
    );
    let point_attr = |p: &[opentelemetry_proto::tonic::common::v1::KeyValue], k: &str| attr(p, k);
    // Request duration: 3 successes and one failure with error.type, recommended bounds.
    let d = genai_metric(&req, g::SERVER_REQUEST_DURATION.name);
    assert_eq!(d.unit, "s");
    let h = histogram(d);
    for p in &h.data_points {
        assert_eq!(p.explicit_bounds, g::DURATION_BOUNDS);
        assert_eq!(p.bucket_counts.len(), g::DURATION_BOUNDS.len() + 1);
        for (k, v) in [
            (g::OPERATION_NAME, "chat"),
            (g::PROVIDER_NAME, "openai"),
            (g::REQUEST_MODEL, "test-model"),
            (g::SERVER_ADDRESS, "127.0.0.1"),
        ] {
            assert_eq!(point_attr(&p.attributes, k).as_deref(), Some(v), "{p:?}");
        }
        assert!(point_attr(&p.attributes, g::SERVER_PORT).is_some());
    }
    let failed: Vec<_> = h
        .data_points
        .iter()
        .filter(|p| point_attr(&p.attributes, g::ERROR_TYPE).as_deref() == Some("500"))
        .collect();
    assert_eq!(failed.len(), 1, "{h:?}");
    assert_eq!(failed[0].count, 1);
    let ok: u64 = h
        .data_points
        .iter()
        .filter(|p| point_attr(&p.attributes, g::ERROR_TYPE).is_none())
        .map(|p| p.count)
        .sum();
    assert_eq!(ok, 3);
    // Time to first token: the successes only.
    let t = genai_metric(&req, g::SERVER_TTFT.name);
    assert_eq!(t.unit, "s");
    let th = histogram(t);
    assert_eq!(th.data_points.len(), 1);
    assert_eq!(th.data_points[0].count, 3);
    assert_eq!(th.data_points[0].explicit_bounds, g::TTFT_BOUNDS);
    // Token usage by type: 3 × 10 input, 3 × 5 output.
    let u = genai_metric(&req, g::CLIENT_TOKEN_USAGE.name);
    assert_eq!(u.unit, "{token}");
    for (kind, sum) in [
        (g::TOKEN_INPUT, 3.0 * PROMPT_TOKENS as f64),
        (g::TOKEN_OUTPUT, 15.0),
    ] {
        let p = histogram(u)
            .data_points
            .iter()
            .find(|p| point_attr(&p.attributes, g::TOKEN_TYPE).as_deref() == Some(kind))
            .unwrap_or_else(|| panic!("{kind} in {u:?}"));
        assert_eq!((p.count, p.sum), (3, Some(sum)));
        assert_eq!(p.explicit_bounds, g::TOKEN_BOUNDS);
    }
    // Time per output token, once the meter measures it: its own bounds.
    if let Some(p) = req.resource_metrics[0]
        .scope_metrics
        .iter()
        .flat_map(|s| s.metrics.iter())
        .find(|m| m.name == g::SERVER_TPOT.name)
    {
        assert_eq!(p.unit, "s");
        assert_eq!(histogram(p).data_points[0].explicit_bounds, g::TPOT_BOUNDS);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_semconv_over_http_protobuf() {
    genai_histograms(cellwatch_e2e::otlp::http().await, "http/protobuf", "genai").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_and_cellwatch_names_over_grpc() {
    genai_histograms(cellwatch_e2e::otlp::grpc().await, "grpc", "both").await;
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// At sample ratio 0: a request whose client sampled its trace is exported as the client
/// span's child and is the parent of what the upstream receives; a failing request without a
/// traceparent starts its own trace and is exported anyway; a fine one without is not.
async fn traces(r: Receiver, protocol: &str) {
    let (e, up, proxy) = proxy_exporter(
        &r.url,
        &[
            "--otlp.protocol",
            protocol,
            "--otlp.traces",
            "--otlp.traces.sample-ratio",
            "0",
            "--otlp.header",
            "X-Scope-OrgID=inference",
        ],
    )
    .await;
    let parent = format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01");
    assert_eq!(
        chat(&proxy, false, 5, &[("traceparent", &parent)]).await,
        200
    );
    assert_eq!(chat(&proxy, true, 3, &[]).await, 200);
    assert_eq!(chat(&proxy, false, 5, &[("x-test", "error")]).await, 500);
    let sent: Vec<String> = up.counters.traceparents.lock().unwrap().clone();
    assert_eq!(sent.len(), 3, "{sent:?}");
    let span = r
        .wait_span(
            Duration::from_secs(20),
            |s| hex(&s.trace_id) == CLIENT_TRACE,
            || e.log(),
        )
        .await;
    // Name, kind, parent, attributes.
    assert_eq!(span.name, "chat test-model");
    assert_eq!(span.kind, SpanKind::Client as i32);
    assert_eq!(hex(&span.parent_span_id), CLIENT_SPAN);
    let a = |k: &str| attr(&span.attributes, k);
    assert_eq!(a(g::OPERATION_NAME).as_deref(), Some("chat"));
    assert_eq!(a(g::PROVIDER_NAME).as_deref(), Some("openai"));
    assert_eq!(a(g::REQUEST_MODEL).as_deref(), Some("test-model"));
    assert_eq!(a(g::SERVER_ADDRESS).as_deref(), Some("127.0.0.1"));
    assert_eq!(
        a(g::SERVER_PORT),
        up.base.rsplit(':').next().map(String::from)
    );
    assert_eq!(a(g::USAGE_INPUT_TOKENS), Some(PROMPT_TOKENS.to_string()));
    assert_eq!(a(g::USAGE_OUTPUT_TOKENS).as_deref(), Some("5"));
    assert_eq!(a(g::RESPONSE_FINISH_REASONS).as_deref(), Some("stop"));
    assert!(a(g::RESPONSE_TIME_TO_FIRST_CHUNK).is_some(), "{span:?}");
    assert!(a(g::ERROR_TYPE).is_none());
    // The upstream's traceparent: the same trace, the proxy's span as parent, sampled.
    let up_parts: Vec<&str> = sent[0].split('-').collect();
    assert_eq!(up_parts[1], CLIENT_TRACE, "{sent:?}");
    assert_eq!(up_parts[2], hex(&span.span_id), "{sent:?}");
    assert_eq!(up_parts[3], "01");
    // The failing request: its own new trace, exported at ratio 0, status error.
    let failed_trace = sent[2].split('-').nth(1).unwrap().to_string();
    assert_ne!(failed_trace, CLIENT_TRACE);
    assert!(sent[2].ends_with("-00"), "not head-sampled: {sent:?}");
    let failed = r
        .wait_span(
            Duration::from_secs(20),
            |s| hex(&s.trace_id) == failed_trace,
            || e.log(),
        )
        .await;
    assert!(failed.parent_span_id.is_empty(), "a root: {failed:?}");
    assert_eq!(hex(&failed.span_id), sent[2].split('-').nth(2).unwrap());
    assert_eq!(
        failed.status.as_ref().map(|s| s.code),
        Some(StatusCode::Error as i32)
    );
    assert_eq!(
        attr(&failed.attributes, g::ERROR_TYPE).as_deref(),
        Some("500")
    );
    // The fine request without a traceparent: a new trace, not sampled, not exported (it ended
    // before the failing one, which has arrived).
    let fine_trace = sent[1].split('-').nth(1).unwrap();
    assert!(![CLIENT_TRACE, failed_trace.as_str()].contains(&fine_trace));
    let spans: Vec<Span> = r.spans();
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) != fine_trace),
        "{spans:?}"
    );
    assert_eq!(spans.len(), 2, "{spans:?}");
    // Nothing lost, and the proxy's metrics say so.
    let m = e.metrics().await;
    let dropped = cellwatch_metrics::INFERENCE_SPANS_DROPPED.name;
    for reason in ["queue_full", "export_failed"] {
        assert_eq!(
            m.value(&format!("{dropped}{{reason=\"{reason}\"}}")),
            Some(0.0),
            "{reason}"
        );
    }
    // Resource and headers.
    let (req, hdrs) = r.traces.lock().unwrap()[0].clone();
    let res = &req.resource_spans[0].resource.as_ref().unwrap().attributes;
    assert_eq!(
        attr(res, "service.name").as_deref(),
        Some("cellwatch-exporter")
    );
    assert_eq!(
        req.resource_spans[0].scope_spans[0].schema_url,
        g::SCHEMA_URL
    );
    assert!(
        hdrs.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-scope-orgid") && v == "inference"),
        "{hdrs:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_over_grpc() {
    traces(cellwatch_e2e::otlp::grpc().await, "grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_over_http_protobuf() {
    traces(cellwatch_e2e::otlp::http().await, "http/protobuf").await;
}

/// The engine's own spans through the real binary: each evaluation and each delivery reach a
/// real OTLP/HTTP receiver, and the webhook request carries the delivery span's `traceparent`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_traces_its_evaluations_and_deliveries() {
    let r = cellwatch_e2e::otlp::http().await;
    // A node whose every request failed: the availability SLO pages at the first evaluations.
    let up = Upstream::start().await;
    up.set_page(
        "n1",
        "# TYPE cellwatch_inference_requests_total counter\n\
         cellwatch_inference_requests_total{model=\"m\",outcome=\"server_error\"} 500\n",
    );
    // A webhook receiver that keeps each request's traceparent.
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let app = axum::Router::new().fallback({
        let seen = seen.clone();
        move |h: axum::http::HeaderMap| async move {
            let tp = h.get("traceparent").and_then(|v| v.to_str().ok());
            seen.lock().unwrap().push(tp.unwrap_or("").to_string());
            "ok"
        }
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hook", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "cells:\n  - name: c1\n    nodes:\n      - {{ name: n1, url: \"{}/metrics/n1\" }}\n\
         source:\n  scrape: {{ interval: 1s }}\n\
         slos:\n  - {{ name: availability, objective: 0.99, period: 30d, min_events: 1, sli: {{ availability: {{}} }} }}\n\
         alerting:\n  group_wait: 0s\n  group_interval: 2s\n  resolve_wait: 1s\n\
         \x20 receivers:\n    - name: hook\n      webhook: {{ url: \"{hook}\" }}\n",
        up.base
    );
    let e = cellwatch_e2e::start_engine_in(dir.path(), &cfg, &["--otlp.endpoint", &r.url]).await;
    // More failures once the baseline is read: the page.
    tokio::time::sleep(Duration::from_secs(2)).await;
    up.set_page(
        "n1",
        "# TYPE cellwatch_inference_requests_total counter\n\
         cellwatch_inference_requests_total{model=\"m\",outcome=\"server_error\"} 900\n",
    );
    // The first tick may run before the lease is taken (standby); then the leader's.
    let eval = r
        .wait_span(
            Duration::from_secs(30),
            |s| {
                s.name == "cellwatch.evaluate"
                    && attr(&s.attributes, "cellwatch.engine.role").as_deref() == Some("leader")
            },
            || e.log(),
        )
        .await;
    assert_eq!(eval.kind, SpanKind::Internal as i32);
    assert_eq!(
        attr(&eval.attributes, "cellwatch.evaluation.cells").as_deref(),
        Some("1")
    );
    // Its phases are its children, in its trace.
    let child = r
        .wait_span(
            Duration::from_secs(30),
            |s| s.name == "cellwatch.evaluate.judge" && s.trace_id == eval.trace_id,
            || e.log(),
        )
        .await;
    assert_eq!(child.parent_span_id, eval.span_id);
    let deliver = r
        .wait_span(
            Duration::from_secs(40),
            |s| s.name == "cellwatch.deliver",
            || e.log(),
        )
        .await;
    assert_eq!(deliver.kind, SpanKind::Client as i32);
    let a = |k: &str| attr(&deliver.attributes, k);
    assert_eq!(a("cellwatch.receiver.kind").as_deref(), Some("webhook"));
    assert_eq!(a("cellwatch.cell").as_deref(), Some("c1"));
    assert_eq!(a("cellwatch.outcome").as_deref(), Some("delivered"));
    assert_eq!(a("http.response.status_code").as_deref(), Some("200"));
    let want = format!("00-{}-{}-01", hex(&deliver.trace_id), hex(&deliver.span_id));
    let seen = seen.lock().unwrap().clone();
    assert!(seen.contains(&want), "{want} not in {seen:?}");
    // The resource names the engine.
    let resource: Vec<(String, String)> = r
        .traces
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(req, _)| req.resource_spans.iter())
        .flat_map(|rs| rs.resource.iter())
        .flat_map(|res| res.attributes.iter())
        .filter_map(|kv| Some((kv.key.clone(), attr(std::slice::from_ref(kv), &kv.key)?)))
        .collect();
    assert!(
        resource.contains(&("service.name".into(), "cellwatch-slo".into())),
        "{resource:?}"
    );
}
