//! End to end: `--otlp.endpoint` pushes to in-test OTLP receivers that decode what arrives
//! (opentelemetry-proto): HTTP/protobuf on `/v1/metrics` and gRPC `MetricsService/Export`. The
//! pushed families are the ones `/metrics` serves, with the resource attributes service.name,
//! cell and node, and the headers given.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use cellwatch_e2e::Exporter;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value;
use prost::Message;

type Received = Arc<Mutex<Vec<(ExportMetricsServiceRequest, Vec<(String, String)>)>>>;

fn headers(h: &HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect()
}

async fn http_receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new().route(
        "/v1/metrics",
        axum::routing::post({
            let got = got.clone();
            move |h: HeaderMap, body: Bytes| async move {
                let req = ExportMetricsServiceRequest::decode(body).expect("an OTLP request");
                got.lock().unwrap().push((req, headers(&h)));
                (
                    [("content-type", "application/x-protobuf")],
                    ExportMetricsServiceResponse::default().encode_to_vec(),
                )
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, got)
}

struct Grpc(Received);

#[tonic::async_trait]
impl MetricsService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        let h = request
            .metadata()
            .iter()
            .filter_map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    Some((k.to_string(), v.to_str().unwrap_or("").to_string()))
                }
                _ => None,
            })
            .collect();
        self.0.lock().unwrap().push((request.into_inner(), h));
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

async fn grpc_receiver() -> (String, Received) {
    let got: Received = Arc::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let svc = MetricsServiceServer::new(Grpc(got.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
    });
    (url, got)
}

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

async fn pushes_the_metrics_page(protocol: &str, endpoint: String, got: Received) {
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
    let (url, got) = http_receiver().await;
    pushes_the_metrics_page("http/protobuf", url, got).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc() {
    let (url, got) = grpc_receiver().await;
    pushes_the_metrics_page("grpc", url, got).await;
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
