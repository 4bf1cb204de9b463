//! The metering proxy: a reverse proxy in front of one OpenAI-compatible server (EXO, mlx-lm,
//! Ollama, llama.cpp…) that passes every request and response through unchanged, streaming, and
//! meters the inference routes.
//!
//! Request bodies of metered routes are read whole (up to `--collector.inference.max-body-size`)
//! to learn the model; every other request body and every response body streams chunk by chunk,
//! polled only as fast as the receiver takes it (backpressure). A client that disconnects drops
//! the upstream response, which closes the upstream connection and so cancels the request.

pub mod meter;

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use cellwatch_metrics as m;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use tokio::time::{Instant, Sleep};

use meter::{Api, Format, Meter, Summary};

/// Default histogram buckets (seconds), shared with the SLO engine.
pub const DEFAULT_BUCKETS: &[f64] = m::DEFAULT_LATENCY_BUCKETS;

/// Most tokens (prompt, and generated, each) one response may report. A larger `usage` (a
/// broken or hostile upstream: 2^64−1 would wrap the counter) is clamped to this bound and
/// counted in `cellwatch_inference_usage_anomalies_total`. The largest context windows are
/// around 10^6 tokens, so 10^7 leaves a factor of ten.
pub const MAX_TOKENS_PER_REQUEST: u64 = 10_000_000;

/// A reported token count, clamped to [`MAX_TOKENS_PER_REQUEST`]; `true` when it was clamped.
pub fn clamp_tokens(reported: u64) -> (u64, bool) {
    if reported > MAX_TOKENS_PER_REQUEST {
        (MAX_TOKENS_PER_REQUEST, true)
    } else {
        (reported, false)
    }
}

/// Proxy settings.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Upstream base URL (`http://host:port`).
    pub upstream: Uri,
    /// Largest request body of a metered route.
    pub max_body: usize,
    /// Longest wait for the upstream's connection.
    pub connect_timeout: Duration,
    /// Longest wait for the upstream's response headers.
    pub header_timeout: Duration,
    /// Longest gap between two chunks of a response body.
    pub idle_timeout: Duration,
    /// Histogram buckets, seconds.
    pub buckets: Vec<f64>,
}

/// Outcome label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx/3xx and a complete body.
    Ok,
    /// 4xx.
    ClientError,
    /// 5xx, or the upstream body failed midway.
    ServerError,
    /// No response from the upstream (refused, unreachable, timed out).
    UpstreamUnavailable,
    /// The client went away first.
    Cancelled,
}

impl Outcome {
    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::UpstreamUnavailable => "upstream_unavailable",
            Outcome::Cancelled => "cancelled",
        }
    }

    fn of_status(s: StatusCode) -> Outcome {
        if s.is_server_error() {
            Outcome::ServerError
        } else if s.is_client_error() {
            Outcome::ClientError
        } else {
            Outcome::Ok
        }
    }
}

/// The `model` label, bounded: the first `max` distinct models keep their name, later ones are
/// `other`; a request without a model is `unknown`.
#[derive(Debug)]
pub struct ModelLabels {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl ModelLabels {
    /// At most `max` distinct names.
    pub fn new(max: usize) -> Self {
        ModelLabels {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The label for a request's model.
    pub fn label(&self, model: Option<&str>) -> String {
        let Some(model) = model else {
            return "unknown".into();
        };
        let model: String = model.chars().take(128).collect();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(&model) {
            return model;
        }
        if seen.len() < self.max {
            seen.insert(model.clone());
            model
        } else {
            "other".into()
        }
    }
}

/// The proxy's instruments, registered in their own registry.
#[derive(Debug, Clone)]
pub struct Meters {
    /// The registry to gather.
    pub registry: Registry,
    duration: HistogramVec,
    ttft: HistogramVec,
    tokens: IntCounterVec,
    requests: IntCounterVec,
    anomalies: IntCounterVec,
    in_flight: IntGaugeVec,
    by_model: Arc<Mutex<std::collections::HashMap<String, Arc<ModelMeters>>>>,
}

impl Meters {
    /// Instruments with the given buckets.
    pub fn new(buckets: &[f64]) -> Result<Self, prometheus::Error> {
        let hist = |d: &m::MetricDef| {
            HistogramVec::new(
                HistogramOpts::new(d.name, d.help).buckets(buckets.to_vec()),
                d.labels,
            )
        };
        let counter = |d: &m::MetricDef| IntCounterVec::new(Opts::new(d.name, d.help), d.labels);
        let meters = Meters {
            registry: Registry::new(),
            duration: hist(&m::INFERENCE_REQUEST_DURATION)?,
            ttft: hist(&m::INFERENCE_TTFT)?,
            tokens: counter(&m::INFERENCE_TOKENS)?,
            requests: counter(&m::INFERENCE_REQUESTS)?,
            anomalies: counter(&m::INFERENCE_USAGE_ANOMALIES)?,
            by_model: Arc::default(),
            in_flight: IntGaugeVec::new(
                Opts::new(m::INFERENCE_IN_FLIGHT.name, m::INFERENCE_IN_FLIGHT.help),
                m::INFERENCE_IN_FLIGHT.labels,
            )?,
        };
        meters
            .registry
            .register(Box::new(meters.duration.clone()))?;
        meters.registry.register(Box::new(meters.ttft.clone()))?;
        meters.registry.register(Box::new(meters.tokens.clone()))?;
        meters
            .registry
            .register(Box::new(meters.requests.clone()))?;
        meters
            .registry
            .register(Box::new(meters.anomalies.clone()))?;
        meters
            .registry
            .register(Box::new(meters.in_flight.clone()))?;
        Ok(meters)
    }

    /// Creates a model's series at zero, as its first request does (the replay uses it).
    pub fn prepare(&self, model: &str) {
        self.model(model);
    }
}

/// One model's instruments, looked up once per model rather than once per request.
#[derive(Debug)]
pub struct ModelMeters {
    duration: prometheus::Histogram,
    ttft: prometheus::Histogram,
    prompt: prometheus::IntCounter,
    generated: prometheus::IntCounter,
    in_flight: prometheus::IntGauge,
    outcomes: [prometheus::IntCounter; 5],
    anomalies: prometheus::IntCounter,
    /// Whether an anomaly was logged at warn level already (later ones are logged at debug).
    warned: std::sync::atomic::AtomicBool,
    model: String,
}

const OUTCOMES: [Outcome; 5] = [
    Outcome::Ok,
    Outcome::ClientError,
    Outcome::ServerError,
    Outcome::UpstreamUnavailable,
    Outcome::Cancelled,
];

impl Meters {
    fn model(&self, model: &str) -> Arc<ModelMeters> {
        let mut cache = self.by_model.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = cache.get(model) {
            return m.clone();
        }
        let l = [model];
        let m = Arc::new(ModelMeters {
            duration: self.duration.with_label_values(&l),
            ttft: self.ttft.with_label_values(&l),
            prompt: self.tokens.with_label_values(&[model, "prompt"]),
            generated: self.tokens.with_label_values(&[model, "generated"]),
            in_flight: self.in_flight.with_label_values(&l),
            outcomes: OUTCOMES.map(|o| self.requests.with_label_values(&[model, o.label()])),
            anomalies: self.anomalies.with_label_values(&l),
            warned: std::sync::atomic::AtomicBool::new(false),
            model: model.to_string(),
        });
        cache.insert(model.to_string(), m.clone());
        m
    }
}

/// One metered request, from arrival to its end; records exactly once (at `finish`, or as
/// cancelled when dropped unfinished).
struct Record {
    meters: Arc<ModelMeters>,
    started: Instant,
    done: bool,
}

impl Record {
    fn new(meters: &Meters, model: &str, started: Instant) -> Self {
        let meters = meters.model(model);
        meters.in_flight.inc();
        Record {
            meters,
            started,
            done: false,
        }
    }

    fn finish(&mut self, outcome: Outcome, summary: Summary) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let m = &self.meters;
        m.in_flight.dec();
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            m.outcomes[i].inc();
        }
        let mut anomaly = false;
        for (reported, counter) in [
            (summary.prompt_tokens, &m.prompt),
            (summary.generated_tokens, &m.generated),
        ] {
            if let Some(n) = reported {
                let (n, clamped) = clamp_tokens(n);
                anomaly |= clamped;
                counter.inc_by(n);
            }
        }
        if anomaly {
            m.anomalies.inc();
            let first = !m.warned.swap(true, std::sync::atomic::Ordering::Relaxed);
            let (prompt, generated) = (summary.prompt_tokens, summary.generated_tokens);
            if first {
                tracing::warn!(model = %m.model, ?prompt, ?generated, bound = MAX_TOKENS_PER_REQUEST, "the upstream reported more tokens than one request can have; counted the bound (further anomalies of this model are logged at debug level)");
            } else {
                tracing::debug!(model = %m.model, ?prompt, ?generated, bound = MAX_TOKENS_PER_REQUEST, "token usage above the bound clamped");
            }
        }
        if outcome == Outcome::Ok {
            m.duration.observe(self.started.elapsed().as_secs_f64());
            if let Some(t) = summary.ttft {
                m.ttft.observe(t.as_secs_f64());
            }
        }
    }
}

impl Drop for Record {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled, Summary::default());
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body passed through chunk by chunk; metered when `meter` is set; an error when the
/// upstream sends nothing for `idle`.
struct PassBody {
    inner: hyper::body::Incoming,
    idle: Duration,
    /// Armed at the first wait for the upstream, moved forward only when it fires early (a
    /// timer reset per chunk would cost more than the chunk).
    timer: Option<Pin<Box<Sleep>>>,
    last_frame: Instant,
    metering: Option<(Meter, Record, Outcome)>,
    /// Upstream and path, for log lines.
    what: Arc<str>,
}

impl HttpBody for PassBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last_frame = Instant::now();
                if let (Some(data), Some((meter, record, _))) =
                    (frame.data_ref(), this.metering.as_mut())
                {
                    meter.feed(data, record.started.elapsed());
                }
                // With a known length the server stops polling after the last byte: finish here.
                if this.inner.is_end_stream()
                    && let Some((meter, mut record, outcome)) = this.metering.take()
                {
                    record.finish(outcome, meter.finish());
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(upstream = %this.what, error = %e, "the upstream response failed midway");
                if let Some((meter, mut record, _)) = this.metering.take() {
                    record.finish(Outcome::ServerError, meter.finish());
                }
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                if let Some((meter, mut record, outcome)) = this.metering.take() {
                    record.finish(outcome, meter.finish());
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                let deadline = this.last_frame + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.deadline() < deadline {
                    timer.as_mut().reset(deadline);
                }
                if timer.as_mut().poll(cx).is_ready() {
                    tracing::warn!(upstream = %this.what, idle = ?this.idle, "the upstream response stalled; cut off");
                    if let Some((meter, mut record, _)) = this.metering.take() {
                        record.finish(Outcome::ServerError, meter.finish());
                    }
                    return Poll::Ready(Some(Err(format!(
                        "upstream sent nothing for {:?}",
                        this.idle
                    )
                    .into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future;

/// The proxy: configuration, upstream client and instruments.
#[derive(Debug, Clone)]
pub struct Proxy {
    config: Arc<ProxyConfig>,
    client: Client<HttpConnector, Body>,
    meters: Meters,
    models: Arc<ModelLabels>,
}

const HOP_BY_HOP: &[header::HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers: the fixed ones and every header the `Connection` header names
/// (RFC 9110 §7.6.1).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<String> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty())
        .collect();
    for name in named {
        h.remove(name.as_str());
    }
    for name in HOP_BY_HOP {
        h.remove(name);
    }
    h.remove("keep-alive");
    h.remove("proxy-connection");
}

fn plain(status: StatusCode, msg: String) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        msg,
    )
        .into_response()
}

impl Proxy {
    /// A proxy for `config`, metering into `meters`, with bounded `models` labels.
    pub fn new(config: ProxyConfig, meters: Meters, models: Arc<ModelLabels>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        Proxy {
            config: Arc::new(config),
            client,
            meters,
            models,
        }
    }

    /// The axum router: everything is proxied.
    pub fn router(self) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self)
    }

    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, axum::http::Error> {
        let base = &self.config.upstream;
        let prefix = base.path().trim_end_matches('/');
        let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
        Uri::builder()
            .scheme(base.scheme_str().unwrap_or("http"))
            .authority(base.authority().map_or("", |a| a.as_str()))
            .path_and_query(format!("{prefix}{pq}"))
            .build()
    }
}

/// Serves the proxy on `threads` threads, each with its own single-threaded runtime, listening
/// socket (`SO_REUSEPORT`, so the kernel spreads connections evenly) and upstream connection
/// pool, as nginx runs one event loop per worker: a request's tasks never wake another thread.
/// The address is first bound once without `SO_REUSEPORT`, so a port another process holds
/// (another exporter included) is an error rather than silently shared. Returns the bound
/// address.
pub fn serve_on_threads(
    listen: &str,
    threads: usize,
    proxy: Proxy,
) -> std::io::Result<std::net::SocketAddr> {
    let probe = std::net::TcpListener::bind(listen)?;
    let addr = probe.local_addr()?;
    drop(probe);
    for i in 0..threads.max(1) {
        let (tx, rx) = std::sync::mpsc::channel();
        let proxy = proxy.clone();
        std::thread::Builder::new()
            .name(format!("cellwatch-proxy-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => return drop(tx.send(Err(e))),
                };
                runtime.block_on(async move {
                    let bound = (|| {
                        let socket = if addr.is_ipv4() {
                            tokio::net::TcpSocket::new_v4()?
                        } else {
                            tokio::net::TcpSocket::new_v6()?
                        };
                        socket.set_reuseaddr(true)?;
                        #[cfg(unix)]
                        socket.set_reuseport(true)?;
                        socket.bind(addr)?;
                        socket.listen(1024)
                    })();
                    let listener = match bound {
                        Ok(l) => l,
                        Err(e) => return drop(tx.send(Err(e))),
                    };
                    let _ = tx.send(Ok(()));
                    // A fresh client per thread: its connections live on this thread's runtime.
                    let proxy = Proxy::new(
                        (*proxy.config).clone(),
                        proxy.meters.clone(),
                        proxy.models.clone(),
                    );
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    if let Err(e) = axum::serve(listener, proxy.router()).await {
                        tracing::error!(error = %e, "a metering proxy thread stopped");
                    }
                });
            })?;
        rx.recv()
            .map_err(|_| std::io::Error::other("a proxy thread died while starting"))??;
    }
    Ok(addr)
}

async fn handle(State(p): State<Proxy>, req: Request) -> Response {
    let started = Instant::now();
    let api = if req.method() == axum::http::Method::POST {
        Api::from_path(req.uri().path())
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let uri = match p.upstream_uri(&parts.uri) {
        Ok(u) => u,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cellwatch proxy: bad request URI: {e}\n"),
            );
        }
    };
    let (body, mut record) = match api {
        None => (body, None),
        Some(_) => match axum::body::to_bytes(body, p.config.max_body).await {
            Ok(bytes) => {
                let model = p.models.label(meter::request_info(&bytes).model.as_deref());
                (
                    Body::from(bytes),
                    Some(Record::new(&p.meters, &model, started)),
                )
            }
            Err(e) => {
                let mut r = Record::new(&p.meters, "unknown", started);
                let too_large =
                    std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                        e.source()
                    })
                    .any(|e| e.is::<http_body_util::LengthLimitError>());
                if too_large {
                    r.finish(Outcome::ClientError, Summary::default());
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!(
                            "cellwatch proxy: request body over {} bytes (--collector.inference.max-body-size)\n",
                            p.config.max_body
                        ),
                    );
                }
                // The client went away (or sent a broken body) before the request was complete.
                r.finish(Outcome::Cancelled, Summary::default());
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("cellwatch proxy: reading the request body failed: {e}\n"),
                );
            }
        },
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Some(host) = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, host);
    }
    parts.uri = uri;
    let upstream_req = Request::from_parts(parts, body);
    let unavailable = |status: StatusCode, msg: String, record: Option<Record>| {
        if let Some(mut r) = record {
            r.finish(Outcome::UpstreamUnavailable, Summary::default());
        }
        tracing::warn!(upstream = %p.config.upstream, error = %msg, "upstream unavailable");
        plain(
            status,
            format!(
                "cellwatch proxy: upstream {} unavailable: {msg}\n",
                p.config.upstream
            ),
        )
    };
    let resp =
        match tokio::time::timeout(p.config.header_timeout, p.client.request(upstream_req)).await {
            Err(_) => {
                return unavailable(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!("no response within {:?}", p.config.header_timeout),
                    record.take(),
                );
            }
            Ok(Err(e)) => {
                let msg = std::error::Error::source(&e)
                    .map_or_else(|| e.to_string(), |s| format!("{e}: {s}"));
                return unavailable(StatusCode::BAD_GATEWAY, msg, record.take());
            }
            Ok(Ok(r)) => r,
        };
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let metering = match (api, record) {
        (Some(api), Some(record)) => {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            Some((
                Meter::new(api, Format::from_content_type(ct)),
                record,
                Outcome::of_status(parts.status),
            ))
        }
        _ => None,
    };
    // An empty body (204, or Content-Length: 0) is never polled: finish it now.
    let metering = match metering {
        Some((meter, mut record, outcome)) if body.is_end_stream() => {
            record.finish(outcome, meter.finish());
            None
        }
        m => m,
    };
    let idle = p.config.idle_timeout;
    let body = PassBody {
        inner: body,
        idle,
        timer: None,
        last_frame: Instant::now(),
        metering,
        what: Arc::from(format!("{} {}", p.config.upstream, path)),
    };
    Response::from_parts(parts, Body::new(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_named_by_connection_are_hop_by_hop() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, X-Session"),
        );
        h.insert("x-session", HeaderValue::from_static("1"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer t"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key(header::AUTHORIZATION));
    }

    #[test]
    fn model_labels_are_bounded() {
        let l = ModelLabels::new(2);
        assert_eq!(l.label(Some("a")), "a");
        assert_eq!(l.label(Some("b")), "b");
        assert_eq!(l.label(Some("c")), "other");
        assert_eq!(l.label(Some("a")), "a");
        assert_eq!(l.label(None), "unknown");
    }

    #[test]
    fn a_dropped_record_is_cancelled_and_counts_once() {
        let meters = Meters::new(DEFAULT_BUCKETS).unwrap();
        {
            let mut r = Record::new(&meters, "m", Instant::now());
            r.finish(
                Outcome::Ok,
                Summary {
                    ttft: Some(Duration::from_millis(5)),
                    prompt_tokens: Some(3),
                    generated_tokens: Some(4),
                },
            );
        }
        drop(Record::new(&meters, "m", Instant::now()));
        let text = crate::store::encode_families(meters.registry.gather());
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_requests_total{model="m",outcome="ok"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_requests_total{model="m",outcome="cancelled"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#
            ),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_request_duration_seconds_count{model="m"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_requests_in_flight{model="m"}"#
            ),
            Some(0.0),
            "{text}"
        );
    }

    #[test]
    fn usage_above_the_bound_is_clamped_and_counted_as_an_anomaly() {
        assert_eq!(clamp_tokens(7), (7, false));
        assert_eq!(
            clamp_tokens(MAX_TOKENS_PER_REQUEST),
            (MAX_TOKENS_PER_REQUEST, false)
        );
        assert_eq!(clamp_tokens(u64::MAX), (MAX_TOKENS_PER_REQUEST, true));
        let meters = Meters::new(DEFAULT_BUCKETS).unwrap();
        for generated in [5, u64::MAX, u64::MAX] {
            let mut r = Record::new(&meters, "m", Instant::now());
            r.finish(
                Outcome::Ok,
                Summary {
                    ttft: None,
                    prompt_tokens: Some(3),
                    generated_tokens: Some(generated),
                },
            );
        }
        let text = crate::store::encode_families(meters.registry.gather());
        let v = |s: &str| cellwatch_metrics::exposition::value(&text, s);
        // Without the clamp, 5 + 2 × (2^64 − 1) wraps to 3.
        assert_eq!(
            v(r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#),
            Some((5 + 2 * MAX_TOKENS_PER_REQUEST) as f64),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_tokens_total{model="m",kind="prompt"}"#),
            Some(9.0),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_usage_anomalies_total{model="m"}"#),
            Some(2.0),
            "{text}"
        );
    }

    #[test]
    fn upstream_uri_keeps_path_and_query_under_the_base() {
        let meters = Meters::new(DEFAULT_BUCKETS).unwrap();
        let cfg = ProxyConfig {
            upstream: "http://127.0.0.1:52415/base/".parse().unwrap(),
            max_body: 1,
            connect_timeout: Duration::from_secs(1),
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            buckets: DEFAULT_BUCKETS.to_vec(),
        };
        let p = Proxy::new(cfg, meters, Arc::new(ModelLabels::new(1)));
        let u = p
            .upstream_uri(&"/v1/chat/completions?x=1".parse().unwrap())
            .unwrap();
        assert_eq!(
            u.to_string(),
            "http://127.0.0.1:52415/base/v1/chat/completions?x=1"
        );
    }
}
