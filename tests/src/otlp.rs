//! In-test OTLP receivers that decode what arrives (opentelemetry-proto): HTTP/protobuf on
//! `/v1/metrics` and `/v1/traces`, and gRPC `MetricsService/Export` and `TraceService/Export`,
//! each on a free loopback port of the current tokio runtime. Every request is kept with its
//! headers (HTTP) or ASCII metadata (gRPC).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

/// Requests received, each with its headers.
pub type Received<T> = Arc<Mutex<Vec<(T, Vec<(String, String)>)>>>;

/// A running receiver: its base URL and what it received.
#[derive(Clone, Default)]
pub struct Receiver {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Metrics export requests.
    pub metrics: Received<ExportMetricsServiceRequest>,
    /// Trace export requests.
    pub traces: Received<ExportTraceServiceRequest>,
}

fn headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

fn metadata(m: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    m.iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                Some((k.to_string(), v.to_str().unwrap_or("").to_string()))
            }
            _ => None,
        })
        .collect()
}

fn protobuf(body: Vec<u8>) -> ([(&'static str, &'static str); 1], Vec<u8>) {
    ([("content-type", "application/x-protobuf")], body)
}

/// An HTTP/protobuf receiver (`POST /v1/metrics`, `POST /v1/traces`).
pub async fn http() -> Receiver {
    let r = Receiver::default();
    let (metrics, traces) = (r.metrics.clone(), r.traces.clone());
    let app = axum::Router::new()
        .route(
            "/v1/metrics",
            axum::routing::post(move |h: HeaderMap, body: Bytes| async move {
                let req = ExportMetricsServiceRequest::decode(body).expect("an OTLP request");
                metrics.lock().unwrap().push((req, headers(&h)));
                protobuf(ExportMetricsServiceResponse::default().encode_to_vec())
            }),
        )
        .route(
            "/v1/traces",
            axum::routing::post(move |h: HeaderMap, body: Bytes| async move {
                let req = ExportTraceServiceRequest::decode(body).expect("an OTLP request");
                traces.lock().unwrap().push((req, headers(&h)));
                protobuf(ExportTraceServiceResponse::default().encode_to_vec())
            }),
        );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await });
    Receiver { url, ..r }
}

struct Grpc(Receiver);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let h = metadata(request.metadata());
        self.0
            .metrics
            .lock()
            .unwrap()
            .push((request.into_inner(), h));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let h = metadata(request.metadata());
        self.0
            .traces
            .lock()
            .unwrap()
            .push((request.into_inner(), h));
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// A gRPC receiver (MetricsService and TraceService).
pub async fn grpc() -> Receiver {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let r = Receiver {
        url: format!("http://{}", l.local_addr().expect("addr")),
        ..Receiver::default()
    };
    let metrics = MetricsServiceServer::new(Grpc(r.clone()));
    let traces = TraceServiceServer::new(Grpc(r.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(metrics)
            .add_service(traces)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
    });
    r
}

impl Receiver {
    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.traces
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(r, _)| r.resource_spans.iter())
            .flat_map(|rs| rs.scope_spans.iter())
            .flat_map(|ss| ss.spans.iter().cloned())
            .collect()
    }

    /// Waits (up to `timeout`) until `pick` finds something in the spans received.
    pub async fn wait_span(
        &self,
        timeout: Duration,
        pick: impl Fn(&Span) -> bool,
        log: impl Fn() -> String,
    ) -> Span {
        let start = Instant::now();
        loop {
            if let Some(s) = self.spans().into_iter().find(|s| pick(s)) {
                return s;
            }
            assert!(
                start.elapsed() < timeout,
                "no such span; received {:?}\n{}",
                self.spans().iter().map(|s| &s.name).collect::<Vec<_>>(),
                log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// An attribute's value as text (strings, integers, doubles, booleans; arrays as their items
/// joined by `,`).
pub fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    fn text(v: &any_value::Value) -> String {
        match v {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::IntValue(i) => i.to_string(),
            any_value::Value::DoubleValue(d) => d.to_string(),
            any_value::Value::BoolValue(b) => b.to_string(),
            any_value::Value::ArrayValue(a) => a
                .values
                .iter()
                .filter_map(|v| v.value.as_ref().map(text))
                .collect::<Vec<_>>()
                .join(","),
            other => format!("{other:?}"),
        }
    }
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref().map(text))
}

/// Lower-case hex of an id.
pub fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}
