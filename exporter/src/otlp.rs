//! OTLP push (`--otlp.endpoint`): the same families `/metrics` serves, converted to OTLP and
//! sent every `--otlp.interval` over HTTP/protobuf or gRPC.
//!
//! The request is built straight from the snapshot `/metrics` renders (counters as cumulative
//! monotonic sums, gauges as gauges, histograms as cumulative explicit-bucket histograms with
//! their own bounds), so both outputs carry the same names, labels and values. The OpenTelemetry
//! SDK's instruments could not: an adapter's histograms arrive already aggregated from another
//! process. Names stay the Prometheus names; units are UCUM; the resource carries
//! `service.name`, `service.version`, `cell` and `node`.
//!
//! **GenAI semantic conventions** (`--otlp.semconv`): `cellwatch` pushes the families above
//! (the default: what existing OTLP dashboards read, unchanged), `genai` pushes the OpenTelemetry
//! GenAI histograms instead, `both` pushes both, each in its own instrumentation scope (the
//! GenAI one with the conventions' schema URL). The GenAI histograms are the metering proxy's
//! own per-request instruments ([`crate::proxy::genai`]): `gen_ai.server.request.duration`,
//! `gen_ai.server.time_to_first_token`, `gen_ai.server.time_per_output_token` and
//! `gen_ai.client.token.usage`, with the recommended bounds, UCUM units (`s`, `{token}`) and
//! the conventions' attributes; the adapters contribute none (see that module). The version is
//! semantic conventions v1.41.0 (`cellwatch_metrics::genai`). Following the conventions'
//! transition advice, the default does not change what is emitted; setting
//! `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` (without `--otlp.semconv`) opts in
//! to the latest experimental GenAI conventions, which cellwatch emits beside its own names
//! (`both`): it never emitted an older GenAI version to drop.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, metric, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prometheus::proto::{MetricFamily, MetricType};
use prost::Message;
use thiserror::Error;

use crate::store::Store;

/// The transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Protocol {
    /// Protobuf over HTTP: POST ENDPOINT/v1/metrics.
    #[value(name = "http/protobuf")]
    HttpProtobuf,
    /// gRPC (MetricsService/Export).
    Grpc,
}

/// Which names the push uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Semconv {
    /// cellwatch's own families, as /metrics serves them.
    Cellwatch,
    /// The OpenTelemetry GenAI semantic conventions' histograms (from the metering proxy).
    Genai,
    /// Both.
    Both,
}

impl Semconv {
    /// Whether the cellwatch families are pushed.
    pub fn cellwatch(self) -> bool {
        self != Semconv::Genai
    }

    /// Whether the GenAI histograms are pushed.
    pub fn genai(self) -> bool {
        self != Semconv::Cellwatch
    }
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The collector: http://HOST:4318 (HTTP; `/v1/metrics` is added when the URL has no path)
    /// or http://HOST:4317 (gRPC).
    pub endpoint: String,
    /// The transport.
    pub protocol: Protocol,
    /// How often.
    pub interval: Duration,
    /// Longest one export may take.
    pub timeout: Duration,
    /// Headers sent with every export (tenant, token).
    pub headers: Vec<(String, String)>,
    /// Which names.
    pub semconv: Semconv,
}

/// An export that failed.
#[derive(Debug, Error)]
pub enum PushError {
    /// The endpoint or a header is unusable.
    #[error("--otlp.endpoint {endpoint}: {message}")]
    Config {
        /// The endpoint.
        endpoint: String,
        /// Why.
        message: String,
    },
    /// The collector could not be reached or refused the data.
    #[error("OTLP export to {endpoint}: {message}")]
    Export {
        /// The endpoint (without credentials).
        endpoint: String,
        /// Why.
        message: String,
    },
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// UCUM unit of a cellwatch metric unit.
fn ucum(unit: &str) -> &'static str {
    match unit {
        "watts" => "W",
        "joules" => "J",
        "bytes" => "By",
        "seconds" => "s",
        "hertz" => "Hz",
        "ratio" => "1",
        "bytes_per_second" => "By/s",
        _ => "",
    }
}

/// The OTLP request for a snapshot's families, stamped `now_ns`, counting from `start_ns`.
pub fn request(
    families: &[MetricFamily],
    resource: &[(&str, &str)],
    start_ns: u64,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let metrics = families
        .iter()
        .filter_map(|f| {
            let attrs = |m: &prometheus::proto::Metric| -> Vec<KeyValue> {
                m.get_label()
                    .iter()
                    .map(|l| kv(l.name(), l.value()))
                    .collect()
            };
            let number = |m: &prometheus::proto::Metric, v: f64| NumberDataPoint {
                attributes: attrs(m),
                start_time_unix_nano: start_ns,
                time_unix_nano: now_ns,
                value: Some(number_data_point::Value::AsDouble(v)),
                ..Default::default()
            };
            let data = match f.get_field_type() {
                MetricType::COUNTER => metric::Data::Sum(Sum {
                    data_points: f
                        .get_metric()
                        .iter()
                        .map(|m| number(m, m.get_counter().get_value()))
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
                MetricType::GAUGE => metric::Data::Gauge(Gauge {
                    data_points: f
                        .get_metric()
                        .iter()
                        .map(|m| number(m, m.get_gauge().get_value()))
                        .collect(),
                }),
                MetricType::HISTOGRAM => metric::Data::Histogram(Histogram {
                    data_points: f
                        .get_metric()
                        .iter()
                        .map(|m| {
                            let h = m.get_histogram();
                            let buckets: Vec<_> = h
                                .get_bucket()
                                .iter()
                                .filter(|b| b.upper_bound().is_finite())
                                .collect();
                            // Prometheus buckets are cumulative; OTLP's are per bucket, with one
                            // more for the overflow.
                            let mut counts = Vec::with_capacity(buckets.len() + 1);
                            let mut below = 0u64;
                            for b in &buckets {
                                let c = b.cumulative_count();
                                counts.push(c.saturating_sub(below));
                                below = c;
                            }
                            counts.push(h.get_sample_count().saturating_sub(below));
                            HistogramDataPoint {
                                attributes: attrs(m),
                                start_time_unix_nano: start_ns,
                                time_unix_nano: now_ns,
                                count: h.get_sample_count(),
                                sum: Some(h.get_sample_sum()),
                                bucket_counts: counts,
                                explicit_bounds: buckets.iter().map(|b| b.upper_bound()).collect(),
                                ..Default::default()
                            }
                        })
                        .collect(),
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
                _ => return None,
            };
            let unit = cellwatch_metrics::by_name(f.name()).map_or("", |d| ucum(d.unit));
            Some(Metric {
                name: f.name().to_string(),
                description: f.help().to_string(),
                unit: unit.to_string(),
                data: Some(data),
                ..Default::default()
            })
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: resource.iter().map(|(k, v)| kv(k, v)).collect(),
                ..Default::default()
            }),
            scope_metrics: vec![scope("cellwatch-exporter", metrics, "")],
            schema_url: String::new(),
        }],
    }
}

fn scope(name: &str, metrics: Vec<Metric>, schema_url: &str) -> ScopeMetrics {
    ScopeMetrics {
        scope: Some(InstrumentationScope {
            name: name.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        }),
        metrics,
        schema_url: schema_url.into(),
    }
}

/// The GenAI histograms of a proxy in front of `server` as an OTLP scope, with the conventions'
/// schema URL: one metric per histogram, one point per attribute set.
pub fn genai_scope(
    series: &[(crate::proxy::genai::SeriesKey, crate::proxy::genai::Series)],
    server: &(String, u16),
    start_ns: u64,
    now_ns: u64,
) -> ScopeMetrics {
    use cellwatch_metrics::genai as g;
    let metrics = g::HISTOGRAMS
        .iter()
        .filter_map(|h| {
            let points: Vec<HistogramDataPoint> = series
                .iter()
                .filter(|(k, _)| k.metric == h.name)
                .map(|(k, s)| {
                    let mut attributes = vec![
                        kv(g::OPERATION_NAME, k.operation),
                        kv(g::PROVIDER_NAME, k.provider),
                        kv(g::REQUEST_MODEL, &k.model),
                        kv(g::SERVER_ADDRESS, &server.0),
                        KeyValue {
                            key: g::SERVER_PORT.into(),
                            value: Some(AnyValue {
                                value: Some(any_value::Value::IntValue(i64::from(server.1))),
                            }),
                            ..Default::default()
                        },
                    ];
                    if let Some(e) = &k.error_type {
                        attributes.push(kv(g::ERROR_TYPE, e));
                    }
                    if let Some(t) = k.token_type {
                        attributes.push(kv(g::TOKEN_TYPE, t));
                    }
                    HistogramDataPoint {
                        attributes,
                        start_time_unix_nano: start_ns,
                        time_unix_nano: now_ns,
                        count: s.count,
                        sum: Some(s.sum),
                        bucket_counts: s.counts.clone(),
                        explicit_bounds: s.bounds.to_vec(),
                        min: (s.count > 0).then_some(s.min),
                        max: (s.count > 0).then_some(s.max),
                        ..Default::default()
                    }
                })
                .collect();
            (!points.is_empty()).then(|| Metric {
                name: h.name.into(),
                description: h.description.into(),
                unit: h.unit.into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                })),
                ..Default::default()
            })
        })
        .collect();
    scope("cellwatch-exporter/gen_ai", metrics, g::SCHEMA_URL)
}

fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The HTTP URL: `/v1/metrics` added when the endpoint has no path.
pub fn http_url(endpoint: &str) -> Result<reqwest::Url, PushError> {
    http_url_for(endpoint, "/v1/metrics")
}

/// The HTTP URL of a signal: `path` (`/v1/metrics`, `/v1/traces`) added when the endpoint has
/// no path.
pub fn http_url_for(endpoint: &str, path: &str) -> Result<reqwest::Url, PushError> {
    let mut u = reqwest::Url::parse(endpoint).map_err(|e| PushError::Config {
        endpoint: crate::tls::without_credentials(endpoint),
        message: e.to_string(),
    })?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(PushError::Config {
            endpoint: crate::tls::without_credentials(endpoint),
            message: "use an http:// or https:// URL".into(),
        });
    }
    if u.path() == "/" || u.path().is_empty() {
        u.set_path(path);
    }
    Ok(u)
}

/// Which signal a [`Transport`] carries: its HTTP path and gRPC method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `/v1/metrics`, `MetricsService/Export`.
    Metrics,
    /// `/v1/traces`, `TraceService/Export`.
    Traces,
}

impl Signal {
    fn http_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Traces => "/v1/traces",
        }
    }

    fn grpc_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        }
    }
}

/// The connection to the collector for one signal: HTTP/protobuf or gRPC, with the configured
/// headers. It sends requests already encoded as protobuf (the proxy's spans are written
/// straight to bytes, see [`crate::proxy::trace`]).
#[derive(Debug)]
pub struct Transport {
    /// The endpoint, without credentials, for messages.
    endpoint: String,
    http: Option<(reqwest::Client, reqwest::Url)>,
    grpc: Option<(
        tonic::transport::Channel,
        tonic::metadata::MetadataMap,
        Signal,
    )>,
}

impl Transport {
    /// Checks the endpoint and headers and prepares the transport (no connection yet). Call
    /// it within a tokio runtime: the gRPC channel and the HTTP client are bound to it.
    pub fn new(
        endpoint: &str,
        protocol: Protocol,
        timeout: Duration,
        headers: &[(String, String)],
        signal: Signal,
    ) -> Result<Transport, PushError> {
        let bad = |m: String| PushError::Config {
            endpoint: crate::tls::without_credentials(endpoint),
            message: m,
        };
        let (http, grpc) = match protocol {
            Protocol::HttpProtobuf => {
                let mut map = reqwest::header::HeaderMap::new();
                for (k, v) in headers {
                    let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
                        .map_err(|_| bad(format!("header name {k:?} is not valid")))?;
                    let value = reqwest::header::HeaderValue::from_str(v)
                        .map_err(|_| bad(format!("the value of header {k} is not valid")))?;
                    map.insert(name, value);
                }
                map.insert(
                    reqwest::header::CONTENT_TYPE,
                    reqwest::header::HeaderValue::from_static("application/x-protobuf"),
                );
                let client = crate::tls::http_client()
                    .default_headers(map)
                    .timeout(timeout)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                let url = http_url_for(endpoint, signal.http_path())?;
                (Some((client, url)), None)
            }
            Protocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in headers {
                    let key = tonic::metadata::MetadataKey::<tonic::metadata::Ascii>::from_bytes(
                        k.to_ascii_lowercase().as_bytes(),
                    )
                    .map_err(|_| bad(format!("header name {k:?} is not valid")))?;
                    let value = tonic::metadata::MetadataValue::<tonic::metadata::Ascii>::try_from(
                        v.as_str(),
                    )
                    .map_err(|_| bad(format!("the value of header {k} is not valid")))?;
                    metadata.insert(key, value);
                }
                if endpoint.contains('@') {
                    return Err(bad(
                        "gRPC endpoints take no credentials in the URL: use --otlp.header".into(),
                    ));
                }
                if !endpoint.starts_with("http://") {
                    return Err(bad(
                        "gRPC export takes an http:// endpoint (TLS: use http/protobuf over https://)"
                            .into(),
                    ));
                }
                let ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
                    .map_err(|e| bad(e.to_string()))?
                    .timeout(timeout)
                    .connect_timeout(timeout);
                // One channel, connected on first use and reconnected as needed.
                (None, Some((ep.connect_lazy(), metadata, signal)))
            }
        };
        Ok(Transport {
            endpoint: crate::tls::without_credentials(endpoint),
            http,
            grpc,
        })
    }

    /// Sends one export request, already encoded.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), PushError> {
        let failed = |message: String| PushError::Export {
            endpoint: self.endpoint.clone(),
            message,
        };
        if let Some((client, url)) = &self.http {
            let resp = client
                .post(url.clone())
                .body(body)
                .send()
                .await
                .map_err(|e| failed(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(failed(format!("HTTP {}", resp.status())));
            }
            return Ok(());
        }
        if let Some((channel, metadata, signal)) = &self.grpc {
            let mut grpc = tonic::client::Grpc::new(channel.clone());
            grpc.ready()
                .await
                .map_err(|e| failed(format!("Unavailable: {e}")))?;
            let mut request = tonic::Request::new(body);
            *request.metadata_mut() = metadata.clone();
            grpc.unary(
                request,
                tonic::codegen::http::uri::PathAndQuery::from_static(signal.grpc_path()),
                Encoded,
            )
            .await
            .map_err(|s| failed(format!("{:?}: {}", s.code(), s.message())))?;
        }
        Ok(())
    }
}

/// A gRPC codec for requests already encoded as protobuf; the response (an empty message or a
/// partial success, which OTLP says not to retry) is read and discarded.
#[derive(Debug, Clone, Copy)]
struct Encoded;

impl tonic::codec::Codec for Encoded {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = Encoded;
    type Decoder = Encoded;

    fn encoder(&mut self) -> Encoded {
        Encoded
    }

    fn decoder(&mut self) -> Encoded {
        Encoded
    }
}

impl tonic::codec::Encoder for Encoded {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use prost::bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for Encoded {
    type Item = ();
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<()>, tonic::Status> {
        use prost::bytes::Buf;
        src.advance(src.remaining());
        Ok(Some(()))
    }
}

/// A pusher bound to its transport.
pub struct Pusher {
    settings: Settings,
    transport: Transport,
    start_ns: u64,
}

impl Pusher {
    /// Checks the settings and prepares the transport (no connection yet). Call it within the
    /// tokio runtime: the gRPC channel is bound to it.
    pub fn new(settings: Settings) -> Result<Pusher, PushError> {
        let transport = Transport::new(
            &settings.endpoint,
            settings.protocol,
            settings.timeout,
            &settings.headers,
            Signal::Metrics,
        )?;
        Ok(Pusher {
            settings,
            transport,
            start_ns: unix_ns(),
        })
    }

    /// Exports one request.
    pub async fn export(&self, req: ExportMetricsServiceRequest) -> Result<(), PushError> {
        self.transport.send(req.encode_to_vec()).await
    }

    /// Pushes the store's snapshot (and the proxy's GenAI histograms, as `--otlp.semconv` says)
    /// every interval, until the process ends. Failures are logged once per change of reason;
    /// the next interval tries again.
    pub async fn run(
        self,
        store: Arc<Store>,
        genai: Option<Arc<crate::proxy::genai::GenAiMeters>>,
        resource: Vec<(String, String)>,
    ) {
        let mut tick = crate::collector::ticker(self.settings.interval);
        tick.tick().await;
        let mut last_error = String::new();
        loop {
            tick.tick().await;
            let attrs: Vec<(&str, &str)> = resource
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let now = unix_ns();
            let families = if self.settings.semconv.cellwatch() {
                store.gather()
            } else {
                Vec::new()
            };
            let mut req = request(&families, &attrs, self.start_ns, now);
            if let Some(g) = genai.as_ref().filter(|_| self.settings.semconv.genai()) {
                let scope = genai_scope(&g.snapshot(), &g.server, self.start_ns, now);
                let scopes = &mut req.resource_metrics[0].scope_metrics;
                if self.settings.semconv.cellwatch() {
                    scopes.push(scope);
                } else {
                    *scopes = vec![scope];
                }
            }
            match self.export(req).await {
                Ok(()) => {
                    if !last_error.is_empty() {
                        tracing::info!(endpoint = %crate::tls::without_credentials(&self.settings.endpoint), "OTLP export works again");
                        last_error.clear();
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    if msg != last_error {
                        tracing::warn!(error = %msg, "OTLP export failed; retrying every interval");
                        last_error = msg;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Sample, families};
    use cellwatch_metrics as m;

    #[test]
    fn counters_gauges_and_histograms_keep_names_labels_and_values() {
        let mut fams = families(&[
            Sample::new(&m::ENERGY_JOULES, &["gpu"], 364.0),
            Sample::new(&m::POWER_WATTS, &["gpu"], 182.0),
        ]);
        let h = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new("cellwatch_inference_request_duration_seconds", "d")
                .buckets(vec![1.0, 2.0]),
        )
        .unwrap();
        for v in [0.5, 1.5, 1.7, 9.0] {
            h.observe(v);
        }
        use prometheus::core::Collector;
        fams.extend(h.collect());
        let req = request(
            &fams,
            &[("service.name", "cellwatch-exporter"), ("cell", "c")],
            1,
            2,
        );
        let rm = &req.resource_metrics[0];
        let res = rm.resource.as_ref().unwrap();
        assert_eq!(res.attributes[1].key, "cell");
        let metrics = &rm.scope_metrics[0].metrics;
        let get = |n: &str| metrics.iter().find(|m| m.name == n).unwrap();
        let e = get("cellwatch_energy_joules_total");
        assert_eq!(e.unit, "J");
        let Some(metric::Data::Sum(s)) = &e.data else {
            panic!("{e:?}")
        };
        assert!(s.is_monotonic);
        assert_eq!(
            s.data_points[0].value,
            Some(number_data_point::Value::AsDouble(364.0))
        );
        assert_eq!(s.data_points[0].attributes[0].key, "component");
        let Some(metric::Data::Gauge(g)) = &get("cellwatch_power_watts").data else {
            panic!()
        };
        assert_eq!(g.data_points[0].time_unix_nano, 2);
        let Some(metric::Data::Histogram(h)) =
            &get("cellwatch_inference_request_duration_seconds").data
        else {
            panic!()
        };
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, vec![1.0, 2.0]);
        assert_eq!(p.bucket_counts, vec![1, 2, 1]);
        assert_eq!((p.count, p.sum), (4, Some(12.7)));
    }

    #[test]
    fn genai_histograms_carry_the_conventions_names_units_bounds_and_schema() {
        use crate::proxy::genai::{Finished, GenAiMeters};
        use crate::proxy::{Outcome, meter::Api};
        use cellwatch_metrics::genai as g;
        let meters = GenAiMeters::new(("up".into(), 8080));
        meters.record(&Finished {
            api: Api::Messages,
            model: "claude",
            outcome: Outcome::Ok,
            status: Some(200),
            duration: Duration::from_millis(500),
            ttft: Some(Duration::from_millis(30)),
            tpot: None,
            input_tokens: Some(7),
            output_tokens: None,
        });
        let s = genai_scope(&meters.snapshot(), &meters.server, 1, 2);
        assert_eq!(s.schema_url, g::SCHEMA_URL);
        let names: Vec<&str> = s.metrics.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                g::SERVER_REQUEST_DURATION.name,
                g::SERVER_TTFT.name,
                g::CLIENT_TOKEN_USAGE.name
            ]
        );
        let usage = &s.metrics[2];
        assert_eq!(usage.unit, "{token}");
        let Some(metric::Data::Histogram(h)) = &usage.data else {
            panic!("{usage:?}")
        };
        let p = &h.data_points[0];
        assert_eq!(p.explicit_bounds, g::TOKEN_BOUNDS);
        assert_eq!(
            (p.count, p.sum, p.min, p.max),
            (1, Some(7.0), Some(7.0), Some(7.0))
        );
        let attr = |k: &str| {
            p.attributes
                .iter()
                .find(|a| a.key == k)
                .and_then(|a| a.value.clone())
                .and_then(|v| v.value)
        };
        let s = |v: &str| Some(any_value::Value::StringValue(v.into()));
        assert_eq!(attr(g::TOKEN_TYPE), s("input"));
        assert_eq!(attr(g::PROVIDER_NAME), s("anthropic"));
        assert_eq!(attr(g::OPERATION_NAME), s("chat"));
        assert_eq!(attr(g::REQUEST_MODEL), s("claude"));
        assert_eq!(attr(g::SERVER_PORT), Some(any_value::Value::IntValue(8080)));
        assert_eq!(attr(g::ERROR_TYPE), None);
    }

    #[tokio::test]
    async fn endpoints_and_headers_are_checked() {
        assert_eq!(
            http_url("http://collector:4318").unwrap().as_str(),
            "http://collector:4318/v1/metrics"
        );
        assert_eq!(
            http_url("https://otlp.example/otlp/v1/metrics")
                .unwrap()
                .path(),
            "/otlp/v1/metrics"
        );
        assert!(http_url("collector:4318").is_err());
        let s = |protocol, endpoint: &str, headers: Vec<(String, String)>| Settings {
            endpoint: endpoint.into(),
            protocol,
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            headers,
            semconv: Semconv::Cellwatch,
        };
        assert!(Pusher::new(s(Protocol::Grpc, "http://c:4317", vec![])).is_ok());
        let e = Pusher::new(s(Protocol::Grpc, "https://c:4317", vec![]))
            .err()
            .unwrap();
        assert!(e.to_string().contains("http://"), "{e}");
        let e = Pusher::new(s(
            Protocol::HttpProtobuf,
            "http://user:secret@c:4318",
            vec![("bad header".into(), "x".into())],
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("bad header") && !e.contains("secret"), "{e}");
    }
}
