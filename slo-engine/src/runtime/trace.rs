//! Traces (`--otlp.endpoint`): the engine's `tracing` spans (each evaluation, each delivery;
//! names in `util::trace`) exported over OTLP through tracing-opentelemetry. Batched on the
//! SDK's own thread (an evaluation or a delivery never waits on the collector; a full queue
//! drops spans), sampled parent-based at `--otlp.sample-ratio`, flushed by [`shutdown`].
//! Without an endpoint none of this is built, and the spans are disabled at their call sites.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanExporter};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::registry::LookupSpan;

/// The transport (`//` comments on the variants keep `--help` short).
#[allow(missing_docs)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    // Protobuf over HTTP: POST ENDPOINT/v1/traces.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    // gRPC (TraceService/Export).
    Grpc,
}

/// Where and how to export spans.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The collector: http://HOST:4318 (HTTP; `/v1/traces` is added when the URL has no path)
    /// or http://HOST:4317 (gRPC).
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// Longest one export may take.
    pub timeout: Duration,
    /// Headers sent with every export (tenant, token).
    pub headers: Vec<(String, String)>,
    /// Share of root spans (evaluations, deliveries) sampled, 0 to 1.
    pub sample_ratio: f64,
}

/// A flag the tracer provider cannot use; the message names it.
#[derive(Debug, thiserror::Error)]
#[error("--otlp.{flag} {value}: {message}")]
pub struct TraceError {
    /// The flag, after `--otlp.`.
    pub flag: &'static str,
    /// Its value (an endpoint without credentials; a header's name).
    pub value: String,
    /// Why.
    pub message: String,
}

/// The checked export target: the URL (HTTP with its path) and the headers.
fn target(s: &Settings) -> Result<(String, HeaderMap), TraceError> {
    let bad = |message: &str| TraceError {
        flag: "endpoint",
        value: cellwatch_http::tls::without_credentials(&s.endpoint),
        message: message.to_string(),
    };
    let mut url = reqwest::Url::parse(&s.endpoint).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err(bad("use an http:// or https:// URL with a host"));
    }
    if s.protocol == Protocol::Grpc {
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "gRPC endpoints take no credentials in the URL: use --otlp.header",
            ));
        }
        if url.scheme() != "http" {
            return Err(bad(
                "gRPC export takes an http:// endpoint (TLS: use http/protobuf over https://)",
            ));
        }
    } else if url.path() == "/" || url.path().is_empty() {
        url.set_path("/v1/traces");
    }
    let mut headers = HeaderMap::new();
    for (k, v) in &s.headers {
        let bad = |message: String| TraceError {
            flag: "header",
            value: k.clone(),
            message,
        };
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| bad("not a valid header name".into()))?;
        let value = HeaderValue::from_str(v).map_err(|_| bad("its value is not valid".into()))?;
        headers.insert(name, value);
    }
    let url = match s.protocol {
        Protocol::Grpc => s.endpoint.clone(),
        Protocol::HttpProtobuf => url.to_string(),
    };
    Ok((url, headers))
}

/// Checks the settings without building anything (the flags' errors, exit 2).
pub fn check(s: &Settings) -> Result<(), TraceError> {
    target(s).map(|_| ())
}

/// The OTLP span exporter of the settings. Call it within the tokio runtime (the gRPC channel
/// is bound to it); the HTTP client is a blocking one, built on its own thread, since the SDK
/// exports from its own thread.
fn exporter(s: &Settings) -> Result<opentelemetry_otlp::SpanExporter, TraceError> {
    let (url, headers) = target(s)?;
    let failed = |e: String| TraceError {
        flag: "endpoint",
        value: cellwatch_http::tls::without_credentials(&s.endpoint),
        message: e,
    };
    let built = match s.protocol {
        Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(url)
            .with_timeout(s.timeout)
            .with_metadata(
                opentelemetry_otlp::tonic_types::metadata::MetadataMap::from_headers(headers),
            )
            .build(),
        Protocol::HttpProtobuf => {
            let timeout = s.timeout;
            let client = std::thread::spawn(move || {
                let b = reqwest::blocking::Client::builder().timeout(timeout);
                match cellwatch_http::tls::client_config(None) {
                    Ok(c) => b.use_preconfigured_tls(c),
                    Err(_) => b,
                }
                .build()
            })
            .join()
            .map_err(|_| failed("building the HTTP client panicked".into()))?
            .map_err(|e| failed(format!("the HTTP client: {e}")))?;
            let headers = headers
                .iter()
                .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
                .collect();
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_http_client(client)
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(url)
                .with_timeout(s.timeout)
                .with_headers(headers)
                .build()
        }
    };
    built.map_err(|e| failed(e.to_string()))
}

/// The resource: `service.name` cellwatch-slo, `service.version`, and `service.instance.id`,
/// the engine's name in the leader lease.
pub fn resource(instance: &str) -> Resource {
    Resource::builder_empty()
        .with_service_name("cellwatch-slo")
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", instance.to_string()),
        ])
        .build()
}

/// Parent-based: a root span is sampled at `ratio`, a child as its parent was.
pub fn sampler(ratio: f64) -> Sampler {
    Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
}

/// The tracer provider exporting to the settings' collector in batches. Call it within the
/// tokio runtime; shut it down with [`shutdown`] outside of it.
pub fn provider(s: &Settings, instance: &str) -> Result<SdkTracerProvider, TraceError> {
    Ok(provider_with(exporter(s)?, s.sample_ratio, instance))
}

/// As [`provider`], with any exporter (tests: the SDK's in-memory one).
pub fn provider_with(
    exporter: impl SpanExporter + 'static,
    ratio: f64,
    instance: &str,
) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler(ratio))
        .with_resource(resource(instance))
        .build()
}

/// The layer turning the engine's spans into OpenTelemetry spans (with warnings and errors
/// as their events), and the W3C trace-context propagator deliveries inject with. Other
/// crates' spans and the engine's logs below warn are left out.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
{
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let scope = opentelemetry::InstrumentationScope::builder("cellwatch-slo")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer_with_scope(scope))
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_target(false)
        .with_filter(filter_fn(|m| {
            m.target().starts_with("cellwatch_slo")
                && if m.is_span() {
                    *m.level() <= tracing::Level::INFO
                } else {
                    *m.level() <= tracing::Level::WARN
                }
        }))
}

/// The logs' filter: `env` for events; spans are never logged (so, without the OpenTelemetry
/// layer, every span is disabled at its call site and costs nothing).
pub fn log_filter<S>(
    env: tracing_subscriber::EnvFilter,
) -> impl tracing_subscriber::layer::Filter<S> + Send + Sync + 'static
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    env.and(filter_fn(|m| m.is_event()))
}

/// Exports what is left and stops the exporter (blocking: call it outside the runtime, while
/// the runtime still exists).
pub fn shutdown(provider: SdkTracerProvider) {
    if let Err(e) = provider.shutdown_with_timeout(Duration::from_secs(5)) {
        tracing::warn!(error = %e, "flushing the last spans failed");
    }
}

#[cfg(test)]
mod tests {
    use super::{Protocol, Settings, TraceError, check, layer, log_filter, provider_with};
    use crate::util::trace as attr;
    use opentelemetry::trace::{SpanKind, Status};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use std::time::Duration;
    use tracing_subscriber::prelude::*;

    /// Spans of the engine, exported to memory. The subscriber is the global default, as in
    /// the binary: a span's parent is closed through the default subscriber of the thread its
    /// last child closes on (the SQLite driver's worker thread), so a thread-local one would
    /// leave an evaluation open for ever. Tests tell their spans apart by their attributes.
    struct Capture {
        exporter: InMemorySpanExporter,
        provider: SdkTracerProvider,
    }

    fn capture() -> &'static Capture {
        static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
        CAPTURE.get_or_init(|| {
            let exporter = InMemorySpanExporter::default();
            let provider = provider_with(exporter.clone(), 1.0, "engine-1");
            let subscriber = tracing_subscriber::registry().with(layer(&provider));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            Capture { exporter, provider }
        })
    }

    impl Capture {
        /// The finished spans named `name`.
        fn named(&self, name: &str) -> Vec<SpanData> {
            self.provider.force_flush().unwrap();
            let all = self.exporter.get_finished_spans().unwrap();
            all.into_iter().filter(|s| s.name == name).collect()
        }

        /// The finished spans named `name` whose attribute `key` is `value`.
        fn spans(&self, name: &str, key: &str, value: &str) -> Vec<SpanData> {
            self.provider.force_flush().unwrap();
            let all = self.exporter.get_finished_spans().unwrap();
            all.into_iter()
                .filter(|s| s.name == name && attribute(s, key).as_deref() == Some(value))
                .collect()
        }
    }

    fn attribute(s: &SpanData, key: &str) -> Option<String> {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }

    const CONFIG: &str = "cells:\n  - { name: studio-a, nodes: [ { name: n1, url: \"http://127.0.0.1:1/metrics\" } ] }\n  \
        - { name: studio-b, nodes: [ { name: n1, url: \"http://127.0.0.1:1/metrics\" } ] }\n\
        slos:\n  - { name: availability, objective: 0.99, period: 1d, sli: { availability: {} } }\n  \
        - { name: latency, objective: 0.99, period: 1d, sli: { latency: { threshold: 1s } } }\n";

    /// A leader's tick: one evaluation span, with its counts, role and outcome, and its
    /// phases as children.
    #[tokio::test]
    async fn an_evaluation_is_one_span_with_its_counts_and_phases() {
        use super::super::feeder::Feeder;
        use super::super::leader::Leader;
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let capture = capture();
        let config = crate::config::parse(CONFIG, std::path::Path::new("t.yaml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = crate::ledger::Ledger::open(&url).await.unwrap();
        let clock = crate::util::time::Clock::default();
        let retention = crate::eval::retention(&config);
        let (interval, feeder) = Feeder::new(&config.source, retention);
        let web =
            crate::web::AppState::new(ledger.clone(), clock.clone(), None, Default::default());
        let mut leader = Leader {
            routes: crate::alerting::Routes::new(&config.alerting.routes),
            config,
            ledger: ledger.clone(),
            clock,
            web,
            me: "engine-1".into(),
            lease: Default::default(),
            is_leader: Arc::new(AtomicBool::new(true)),
            wake: Default::default(),
            interval,
            retention,
            feeder,
            leading: false,
            alerts: Default::default(),
            down_cells: Default::default(),
            evaluator: crate::eval::Evaluator::keeping(&ledger),
        };
        leader.tick().await;
        drop(leader);
        ledger.close().await;
        // A background task of the ledger's pool may hold a child span a little longer (a
        // span ends when its last handle goes).
        let mut evaluations = capture.spans(attr::EVALUATE, attr::ENGINE_ROLE, "leader");
        for _ in 0..100 {
            if !evaluations.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            evaluations = capture.spans(attr::EVALUATE, attr::ENGINE_ROLE, "leader");
        }
        assert_eq!(evaluations.len(), 1, "{evaluations:?}");
        let e = &evaluations[0];
        assert_eq!(attribute(e, attr::CELLS).as_deref(), Some("2"), "{e:?}");
        assert_eq!(attribute(e, attr::SLOS).as_deref(), Some("2"));
        assert_eq!(attribute(e, attr::ENGINE_ROLE).as_deref(), Some("leader"));
        assert_eq!(attribute(e, attr::NOTIFICATIONS).as_deref(), Some("0"));
        // The lease was never taken: the stepped state is not saved.
        assert_eq!(attribute(e, attr::OUTCOME).as_deref(), Some("lease_lost"));
        assert_eq!(e.status, Status::Unset);
        assert_eq!(e.span_kind, SpanKind::Internal);
        for phase in [attr::READ_SOURCE, attr::JUDGE, attr::ALERTS] {
            let p: Vec<SpanData> = capture
                .named(phase)
                .into_iter()
                .filter(|p| p.parent_span_id == e.span_context.span_id())
                .collect();
            assert_eq!(p.len(), 1, "{phase}");
            assert_eq!(p[0].parent_span_id, e.span_context.span_id(), "{phase}");
            assert_eq!(p[0].span_context.trace_id(), e.span_context.trace_id());
        }
        let resource = super::resource("engine-1");
        let get = |k: &'static str| resource.get(&opentelemetry::Key::from_static_str(k));
        assert_eq!(
            get("service.name").map(|v| v.to_string()).as_deref(),
            Some("cellwatch-slo")
        );
        assert_eq!(
            get("service.instance.id").map(|v| v.to_string()).as_deref(),
            Some("engine-1")
        );
        assert!(get("service.version").is_some());
    }

    /// A webhook receiver on a real socket: it answers `status` and keeps the `traceparent`
    /// headers it got.
    async fn receiver(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = got.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap| {
                let seen = seen.clone();
                async move {
                    let tp = headers.get("traceparent").and_then(|v| v.to_str().ok());
                    seen.lock().unwrap().push(tp.unwrap_or("").to_string());
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, got)
    }

    /// A webhook notification's outbox row, keyed `key`.
    fn webhook_row(url: &str, key: &str) -> (crate::config::Alerting, crate::ledger::OutboxRow) {
        let text = format!(
            "{CONFIG}alerting:\n  receivers:\n    - name: hook\n      webhook: {{ url: \"{url}\" }}\n"
        );
        let config = crate::config::parse(&text, std::path::Path::new("t.yaml")).unwrap();
        let payload = serde_json::json!({
            "key": "k/1", "group_key": "hook:{cell=\"studio-a\"}", "incident": "k/1",
            "receiver": "hook", "cell": "studio-a", "status": "firing", "reason": "new_alerts",
            "pages": true, "at": 1_700_000_000,
            "alerts": [
                { "status": "firing", "labels": { "alertname": "CellwatchErrorBudgetBurn", "severity": "ticket", "cell": "studio-a" },
                  "annotations": {}, "fingerprint": "f1", "starts_at": 1_699_999_000, "ends_at": null },
                { "status": "firing", "labels": { "alertname": "CellwatchErrorBudgetBurn", "severity": "page", "cell": "studio-a" },
                  "annotations": {}, "fingerprint": "f2", "starts_at": 1_699_999_000, "ends_at": null },
            ],
        });
        let row = crate::ledger::OutboxRow {
            key: key.into(),
            receiver: "hook".into(),
            integration: "webhook".into(),
            payload: payload.to_string(),
            created_at: 1_700_000_000,
            attempts: 2,
        };
        (config.alerting, row)
    }

    #[tokio::test]
    async fn a_delivery_is_a_client_span_whose_traceparent_the_receiver_gets() {
        let capture = capture();
        let (url, got) = receiver(200).await;
        let (alerting, row) = webhook_row(&url, "ok/1#webhook");
        let client = cellwatch_http::tls::http_client().build().unwrap();
        crate::notify::deliver(&alerting, &client, &row)
            .await
            .unwrap();
        let spans = capture.spans(attr::DELIVER, attr::NOTIFICATION_KEY, "ok/1#webhook");
        assert_eq!(spans.len(), 1, "{spans:?}");
        let d = &spans[0];
        assert_eq!(d.span_kind, SpanKind::Client);
        assert_eq!(d.status, Status::Unset);
        for (k, v) in [
            (attr::RECEIVER_KIND, "webhook"),
            (attr::RECEIVER_NAME, "hook"),
            (attr::CELL, "studio-a"),
            (attr::ALERT_NAME, "CellwatchErrorBudgetBurn"),
            (attr::ALERT_SEVERITY, "page"),
            (attr::NOTIFICATION_STATUS, "firing"),
            (attr::ATTEMPT, "3"),
            (attr::OUTCOME, "delivered"),
            (attr::HTTP_METHOD, "POST"),
            (attr::HTTP_STATUS, "200"),
            (attr::SERVER_ADDRESS, "127.0.0.1"),
        ] {
            assert_eq!(attribute(d, k).as_deref(), Some(v), "{k} in {d:?}");
        }
        assert_eq!(attribute(d, attr::ERROR_TYPE), None);
        // traceparent: 00-<trace id>-<parent span id>-<flags>, the parent being the delivery.
        let got = got.lock().unwrap().clone();
        assert_eq!(
            got,
            [format!(
                "00-{}-{}-01",
                d.span_context.trace_id(),
                d.span_context.span_id()
            )]
        );
    }

    #[tokio::test]
    async fn a_failed_delivery_has_an_error_status_and_type() {
        let capture = capture();
        let (url, got) = receiver(503).await;
        let (alerting, row) = webhook_row(&url, "refused/1#webhook");
        let client = cellwatch_http::tls::http_client().build().unwrap();
        let e = crate::notify::deliver(&alerting, &client, &row)
            .await
            .unwrap_err();
        assert!(e.contains("HTTP 503"), "{e}");
        let spans = capture.spans(attr::DELIVER, attr::NOTIFICATION_KEY, "refused/1#webhook");
        assert_eq!(spans.len(), 1, "{spans:?}");
        let d = &spans[0];
        assert_eq!(d.status, Status::error(e.clone()));
        assert_eq!(attribute(d, attr::ERROR_TYPE).as_deref(), Some("503"));
        assert_eq!(attribute(d, attr::HTTP_STATUS).as_deref(), Some("503"));
        assert_eq!(attribute(d, attr::OUTCOME).as_deref(), Some("failed"));
        assert_eq!(got.lock().unwrap().len(), 1);
        // Nobody listening: a connection error.
        let (alerting, row) = webhook_row("http://127.0.0.1:1/hook", "nobody/1#webhook");
        let client = cellwatch_http::tls::http_client()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        crate::notify::deliver(&alerting, &client, &row)
            .await
            .unwrap_err();
        let spans = capture.spans(attr::DELIVER, attr::NOTIFICATION_KEY, "nobody/1#webhook");
        assert_eq!(spans.len(), 1, "{spans:?}");
        assert_eq!(
            attribute(&spans[0], attr::ERROR_TYPE).as_deref(),
            Some("connect")
        );
        assert!(matches!(spans[0].status, Status::Error { .. }));
        assert_eq!(attribute(&spans[0], attr::HTTP_STATUS), None);
    }

    #[test]
    fn without_the_layer_the_spans_are_disabled_at_their_call_site() {
        use tracing::Subscriber;
        // The spans' metadata, from the call sites (enabled with the layer).
        capture();
        let deliver = tracing::info_span!(attr::DELIVER);
        let evaluate = tracing::info_span!(attr::EVALUATE);
        let metadata = [deliver.metadata().unwrap(), evaluate.metadata().unwrap()];
        // The logs alone, even at trace: never interested in a span, so the macros skip them.
        let logs = tracing_subscriber::fmt::layer()
            .with_writer(std::io::sink)
            .with_filter(log_filter(tracing_subscriber::EnvFilter::new("trace")));
        let subscriber = tracing_subscriber::registry().with(logs);
        for m in metadata {
            // The first call takes what the capture's registrations left in this thread's
            // per-layer filter state.
            let _ = subscriber.register_callsite(m);
            assert!(subscriber.register_callsite(m).is_never(), "{m:?}");
        }
        // The layer's filter, for contrast: interested in the engine's spans.
        assert!(!deliver.is_disabled() && !evaluate.is_disabled());
    }

    #[test]
    fn bad_trace_flags_are_named() {
        let s = |protocol, endpoint: &str, headers: Vec<(String, String)>| Settings {
            endpoint: endpoint.into(),
            protocol,
            timeout: Duration::from_secs(1),
            headers,
            sample_ratio: 1.0,
        };
        let err = |s: Settings| check(&s).unwrap_err().to_string();
        assert!(check(&s(Protocol::Grpc, "http://c:4317", vec![])).is_ok());
        assert!(check(&s(Protocol::HttpProtobuf, "https://c/otlp", vec![])).is_ok());
        let e = err(s(Protocol::HttpProtobuf, "collector:4318", vec![]));
        assert!(e.starts_with("--otlp.endpoint collector:4318: "), "{e}");
        let e = err(s(Protocol::Grpc, "https://c:4317", vec![]));
        assert!(
            e.starts_with("--otlp.endpoint ") && e.contains("http://"),
            "{e}"
        );
        let e = err(s(Protocol::Grpc, "http://u:secret@c:4317", vec![]));
        assert!(e.contains("--otlp.header") && !e.contains("secret"), "{e}");
        let e = err(s(
            Protocol::HttpProtobuf,
            "http://c:4318",
            vec![("bad header".into(), "x".into())],
        ));
        assert!(e.starts_with("--otlp.header bad header: "), "{e}");
        let TraceError { flag, .. } =
            check(&s(Protocol::HttpProtobuf, "ftp://c", vec![])).unwrap_err();
        assert_eq!(flag, "endpoint");
    }
}
