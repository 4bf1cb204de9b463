//! The metering proxy: a reverse proxy in front of one OpenAI-compatible server (EXO, mlx-lm,
//! Ollama, llama.cpp…) that passes every request and response through unchanged, streaming, and
//! meters the inference routes.
//!
//! Request bodies of metered routes are scanned for the model as they pass (see
//! [`meter::ModelScan`]): at most the first [`SCAN_PREFIX`] bytes are held until the model is
//! found, then they and the rest stream upstream, scanned on until the model turns up. Every
//! request body and every response body streams chunk by chunk, polled only as fast as the
//! receiver takes it (backpressure). A client that disconnects drops the upstream response,
//! which closes the upstream connection and so cancels the request. A client whose request
//! body stalls for `--collector.inference.body-read-timeout` gets 408 and is disconnected.

pub mod genai;
pub mod meter;
pub mod trace;
mod upstream;

use std::collections::HashSet;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Request, StatusCode, Uri, header};
use cellwatch_metrics as m;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::Either;
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
    /// Time-per-output-token histogram buckets, seconds.
    pub tpot_buckets: Vec<f64>,
    /// Bounds on client connections; `read_timeout` is the longest wait for the next chunk of a
    /// request body.
    pub limits: crate::web::Limits,
    /// The GenAI histograms to record into (`--otlp.semconv genai|both`), set by the binary.
    pub genai: Option<Arc<genai::GenAiMeters>>,
    /// The tracer of per-request spans (`--otlp.traces`), set by the binary.
    pub tracer: Option<trace::ProxyTracer>,
}

impl ProxyConfig {
    /// `server.address` and `server.port` of the upstream (port 80 when the URL has none).
    pub fn upstream_server(&self) -> (String, u16) {
        (
            self.upstream.host().unwrap_or("").to_string(),
            self.upstream
                .port_u16()
                .unwrap_or(if self.upstream.scheme_str() == Some("https") {
                    443
                } else {
                    80
                }),
        )
    }
}

/// The most of a metered request body held back while its model is looked for; past it the
/// body streams on (and is scanned as it passes).
pub const SCAN_PREFIX: usize = 64 << 10;

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

    /// The label for a request's model: its first 128 characters, `unknown` when none was
    /// named, `other` once `max` distinct names have labels.
    pub fn label<'a>(&self, model: Option<&'a str>) -> &'a str {
        let Some(model) = model else {
            return "unknown";
        };
        let model = match model.char_indices().nth(128) {
            Some((end, _)) => &model[..end],
            None => model,
        };
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(model) {
            return model;
        }
        if seen.len() < self.max {
            seen.insert(model.to_string());
            model
        } else {
            "other"
        }
    }

    /// How many distinct names get their own label.
    fn max(&self) -> usize {
        self.max
    }
}

/// The upstream's state as the proxy's requests see it, for its restarts: a connection that
/// fails after the upstream has served marks it down, and the next response from it (it came
/// back) is a restart. Lock-free and cheap: while the upstream serves, a response costs one
/// atomic load. A slow upstream (no response headers in time) is not down; one that is down when
/// the proxy starts and then comes up is not a restart.
#[derive(Debug)]
pub struct UpstreamState(AtomicU8);

impl Default for UpstreamState {
    fn default() -> Self {
        UpstreamState(AtomicU8::new(NEVER_SERVED))
    }
}

const NEVER_SERVED: u8 = 0;
const SERVING: u8 = 1;
const DOWN: u8 = 2;

impl UpstreamState {
    /// The upstream sent a response; `true` when it was down since it last served (a restart).
    /// Of racing responses after a restart, one gets `true`.
    pub fn served(&self) -> bool {
        if self.0.load(Ordering::Relaxed) == SERVING {
            return false;
        }
        self.0.swap(SERVING, Ordering::Relaxed) == DOWN
    }

    /// A connection to the upstream failed (refused, unreachable, connect timeout).
    pub fn unreachable(&self) {
        let _ = self
            .0
            .compare_exchange(SERVING, DOWN, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Whether the upstream is down (it served, then a connection failed).
    pub fn is_down(&self) -> bool {
        self.0.load(Ordering::Relaxed) == DOWN
    }
}

/// The proxy's instruments, registered in their own registry.
#[derive(Debug, Clone)]
pub struct Meters {
    /// The registry to gather.
    pub registry: Registry,
    duration: HistogramVec,
    ttft: HistogramVec,
    tpot: HistogramVec,
    tokens: IntCounterVec,
    requests: IntCounterVec,
    anomalies: IntCounterVec,
    in_flight: IntGaugeVec,
    waiting: IntGaugeVec,
    by_model: Arc<Mutex<std::collections::HashMap<String, Arc<ModelMeters>>>>,
    /// `cellwatch_inference_upstream_restarts_total{server="proxy"}`.
    restarts: prometheus::IntCounter,
    upstream: Arc<UpstreamState>,
}

impl Meters {
    /// Instruments with the given buckets (duration and time to first token), and
    /// `tpot_buckets` for the time per output token.
    pub fn new(buckets: &[f64], tpot_buckets: &[f64]) -> Result<Self, prometheus::Error> {
        let hist = |d: &m::MetricDef, buckets: &[f64]| {
            HistogramVec::new(
                HistogramOpts::new(d.name, d.help).buckets(buckets.to_vec()),
                d.labels,
            )
        };
        let counter = |d: &m::MetricDef| IntCounterVec::new(Opts::new(d.name, d.help), d.labels);
        let gauge = |d: &m::MetricDef| IntGaugeVec::new(Opts::new(d.name, d.help), d.labels);
        let restarts = counter(&m::INFERENCE_UPSTREAM_RESTARTS)?;
        let meters = Meters {
            registry: Registry::new(),
            duration: hist(&m::INFERENCE_REQUEST_DURATION, buckets)?,
            ttft: hist(&m::INFERENCE_TTFT, buckets)?,
            tpot: hist(&m::INFERENCE_TPOT, tpot_buckets)?,
            tokens: counter(&m::INFERENCE_TOKENS)?,
            requests: counter(&m::INFERENCE_REQUESTS)?,
            anomalies: counter(&m::INFERENCE_USAGE_ANOMALIES)?,
            by_model: Arc::default(),
            // At zero from the start, so increase() sees the first restart.
            restarts: restarts.with_label_values(&["proxy"]),
            upstream: Arc::default(),
            in_flight: gauge(&m::INFERENCE_IN_FLIGHT)?,
            waiting: gauge(&m::INFERENCE_WAITING)?,
        };
        meters
            .registry
            .register(Box::new(meters.duration.clone()))?;
        meters.registry.register(Box::new(meters.ttft.clone()))?;
        meters.registry.register(Box::new(meters.tpot.clone()))?;
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
        meters.registry.register(Box::new(Waiting::new(
            meters.waiting.clone(),
            meters.in_flight.clone(),
        )?))?;
        meters.registry.register(Box::new(restarts))?;
        Ok(meters)
    }

    /// The upstream sent a response: a restart is counted when it was down.
    fn upstream_served(&self, upstream: &Uri) {
        if self.upstream.served() {
            self.restarts.inc();
            tracing::warn!(%upstream, "the upstream answers again after refusing connections: counted as a restart in cellwatch_inference_upstream_restarts_total");
        }
    }

    /// Creates a model's series at zero, as its first request does (the replay uses it).
    pub fn prepare(&self, model: &str) {
        self.model(model);
    }
}

/// The description of a family collected by hand (a custom `Collector`).
pub(crate) fn desc(d: &m::MetricDef) -> Result<prometheus::core::Desc, prometheus::Error> {
    prometheus::core::Desc::new(
        d.name.into(),
        d.help.into(),
        d.labels.iter().map(|l| l.to_string()).collect(),
        Default::default(),
    )
}

/// `cellwatch_inference_requests_waiting`, derived when gathered from each model's requests in
/// flight and those of them with no generated content yet: the proxy cannot tell a request
/// queued in the server from one in prefill, so when none of a model's requests is generating,
/// one of those without content is taken to be in prefill and the rest to wait. A single long
/// prompt on an idle server is then not a backlog; a second request behind it is.
struct Waiting {
    no_content: IntGaugeVec,
    in_flight: IntGaugeVec,
    desc: prometheus::core::Desc,
}

impl Waiting {
    fn new(no_content: IntGaugeVec, in_flight: IntGaugeVec) -> Result<Self, prometheus::Error> {
        let desc = desc(&m::INFERENCE_WAITING)?;
        Ok(Waiting {
            no_content,
            in_flight,
            desc,
        })
    }

    /// Waiting requests of a model with `in_flight` requests, `no_content` of them without
    /// generated content yet.
    fn of(in_flight: i64, no_content: i64) -> i64 {
        let no_content = no_content.max(0);
        if no_content > 0 && in_flight <= no_content {
            no_content - 1
        } else {
            no_content
        }
    }
}

impl prometheus::core::Collector for Waiting {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let d = &m::INFERENCE_WAITING;
        let Ok(out) = IntGaugeVec::new(Opts::new(d.name, d.help), d.labels) else {
            return Vec::new();
        };
        let gauges = |v: &IntGaugeVec| -> std::collections::HashMap<String, i64> {
            v.collect()
                .iter()
                .flat_map(|f| f.get_metric().iter())
                .filter_map(|g| {
                    let model = g.get_label().first()?.value().to_string();
                    Some((model, g.get_gauge().get_value() as i64))
                })
                .collect()
        };
        let in_flight = gauges(&self.in_flight);
        for (model, no_content) in gauges(&self.no_content) {
            let busy = in_flight.get(&model).copied().unwrap_or(0);
            out.with_label_values(&[model.as_str()])
                .set(Waiting::of(busy, no_content));
        }
        out.collect()
    }
}

/// One model's instruments, looked up once per model rather than once per request.
#[derive(Debug, Clone)]
pub struct ModelMeters {
    duration: prometheus::Histogram,
    ttft: prometheus::Histogram,
    tpot: prometheus::Histogram,
    prompt: prometheus::IntCounter,
    generated: prometheus::IntCounter,
    in_flight: prometheus::IntGauge,
    /// In flight, with no generated content yet.
    waiting: prometheus::IntGauge,
    outcomes: [prometheus::IntCounter; 5],
    anomalies: prometheus::IntCounter,
    /// Whether an anomaly was logged at warn level already (later ones are logged at debug).
    warned: Arc<std::sync::atomic::AtomicBool>,
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
            tpot: self.tpot.with_label_values(&l),
            prompt: self.tokens.with_label_values(&[model, "prompt"]),
            generated: self.tokens.with_label_values(&[model, "generated"]),
            in_flight: self.in_flight.with_label_values(&l),
            waiting: self.waiting.with_label_values(&l),
            outcomes: OUTCOMES.map(|o| self.requests.with_label_values(&[model, o.label()])),
            anomalies: self.anomalies.with_label_values(&l),
            warned: Arc::default(),
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
    /// Counted in the waiting gauge: no generated content yet.
    waiting: bool,
    /// Generated tokens counted while the response streamed (one per content chunk).
    streamed: u64,
    /// The GenAI histograms and the span, when either is on.
    observe: Option<Box<Observe>>,
}

/// What a record reports beyond the cellwatch families: the GenAI histograms and the span.
struct Observe {
    api: Api,
    genai: Option<Arc<genai::GenAiMeters>>,
    span: Option<trace::RequestSpan>,
    /// The upstream's status, once it answered.
    status: Option<u16>,
}

/// The time per output token of a response, for the GenAI histogram and the span.
fn time_per_output_token(summary: &Summary) -> Option<Duration> {
    summary.tpot
}

impl Observe {
    fn finish(self, outcome: Outcome, summary: &Summary, duration: Duration, model: &str) {
        let tpot = time_per_output_token(summary);
        if let Some(g) = &self.genai {
            g.record(&genai::Finished {
                api: self.api,
                model,
                outcome,
                status: self.status,
                duration,
                ttft: summary.ttft,
                tpot,
                input_tokens: summary.prompt_tokens.map(|n| clamp_tokens(n).0),
                output_tokens: summary.generated_tokens.map(|n| clamp_tokens(n).0),
            });
        }
        if let Some(span) = self.span {
            span.end(outcome, self.status, summary, tpot);
        }
    }
}

impl Record {
    /// Moves an unfinished record to another model (found late in the request body).
    #[cfg(test)]
    fn relabel(&mut self, meters: &Meters, model: &str) {
        self.relabel_to(meters.model(model));
    }

    /// Moves an unfinished record to another model's meters.
    fn relabel_to(&mut self, new: Arc<ModelMeters>) {
        if self.done || Arc::ptr_eq(&new, &self.meters) {
            return;
        }
        new.in_flight.inc();
        self.meters.in_flight.dec();
        if self.waiting {
            new.waiting.inc();
            self.meters.waiting.dec();
        }
        self.meters = new;
    }

    /// A stream's content chunks so far: each new one counts a generated token now, so a long
    /// generation adds to the token counter while it streams (the throughput SLI reads it per
    /// minute), not only when it ends; `finish` adds what `usage` reports beyond them.
    fn streamed_to(&mut self, chunks: u64) {
        if chunks > self.streamed && !self.done {
            self.meters.generated.inc_by(chunks - self.streamed);
            self.streamed = chunks;
        }
    }

    /// The response carried its first generated content: no longer waiting.
    fn content_started(&mut self) {
        if std::mem::replace(&mut self.waiting, false) {
            self.meters.waiting.dec();
        }
    }

    #[cfg(test)]
    fn new(meters: &Meters, model: &str, started: Instant) -> Self {
        Record::with(meters.model(model), started)
    }

    /// A request under `meters`, in flight since `started`.
    fn with(meters: Arc<ModelMeters>, started: Instant) -> Self {
        meters.in_flight.inc();
        meters.waiting.inc();
        Record {
            meters,
            started,
            done: false,
            waiting: true,
            streamed: 0,
            observe: None,
        }
    }

    /// The request's model as the client named it, for the span.
    fn span_model(&mut self, model: &str) {
        if let Some(span) = self.observe.as_mut().and_then(|o| o.span.as_mut()) {
            span.set_model(model);
        }
    }

    /// The upstream's status.
    fn status(&mut self, status: StatusCode) {
        if let Some(o) = self.observe.as_mut() {
            o.status = Some(status.as_u16());
        }
    }

    fn finish(&mut self, outcome: Outcome, summary: Summary) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        self.content_started();
        let m = &self.meters;
        m.in_flight.dec();
        if let Some(i) = OUTCOMES.iter().position(|o| *o == outcome) {
            m.outcomes[i].inc();
        }
        let mut anomaly = false;
        for (reported, counter, counted) in [
            (summary.prompt_tokens, &m.prompt, 0),
            (summary.generated_tokens, &m.generated, self.streamed),
        ] {
            if let Some(n) = reported {
                let (n, clamped) = clamp_tokens(n);
                anomaly |= clamped;
                counter.inc_by(n.saturating_sub(counted));
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
            if let Some(t) = summary.tpot {
                m.tpot.observe(t.as_secs_f64());
            }
        }
        if let Some(o) = self.observe.take() {
            o.finish(outcome, &summary, self.started.elapsed(), &m.model);
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
    inner: upstream::UpstreamBody,
    idle: Duration,
    /// Armed at the first wait for the upstream, moved forward only when it fires early (a
    /// timer reset per chunk would cost more than the chunk).
    timer: Option<Pin<Box<Sleep>>>,
    last_frame: Instant,
    metering: Option<(Meter, Record, Outcome)>,
    /// Where a model found in the request body after the response started is put, and how to
    /// relabel the record with it.
    late: Option<Late>,
    /// Upstream and path, for log lines.
    what: What,
    /// Data taken from the upstream and not yet passed on: the frames that arrive together go
    /// to the client in one write (see [`PassBody::poll_frame`]).
    batch: Vec<Bytes>,
    /// Bytes in `batch`.
    batched: usize,
    /// What came after the batch (the end, trailers or an error), passed on after it.
    after: Option<Option<Result<Frame<Bytes>, BoxError>>>,
}

/// A batch is passed on once it holds this much (a bound on what the proxy holds per stream).
const BATCH_BYTES: usize = 16 * 1024;

/// A model the request body may still reveal, and the labels to move the record to it.
struct Late {
    slot: Arc<std::sync::OnceLock<String>>,
}

impl PassBody {
    /// Records the request (`outcome`, or the one its status gave), under its model if the
    /// request body revealed it late.
    fn finish(&mut self, outcome: Option<Outcome>) {
        if let Some((meter, mut record, by_status)) = self.metering.take() {
            self.relabel(&mut record);
            record.finish(outcome.unwrap_or(by_status), meter.finish());
        }
    }

    /// The response was read to the end: its connection can take another request.
    fn release(&mut self) {
        if let Some(conn) = self.inner.take_reusable() {
            self.what.proxy.pool.put(conn);
        }
    }

    fn relabel(&mut self, record: &mut Record) {
        if let Some(late) = self.late.take()
            && let Some(m) = late.slot.get()
        {
            record.span_model(m);
            record.relabel_to(self.what.proxy.model_meters(Some(m)));
        }
    }
}

impl Drop for PassBody {
    fn drop(&mut self) {
        // The client went away: the record counts as cancelled (as it drops), under its model.
        if let Some((_, mut record, _)) = self.metering.take() {
            self.relabel(&mut record);
        }
    }
}

impl PassBody {
    fn new(inner: upstream::UpstreamBody, idle: Duration, what: What) -> Self {
        PassBody {
            inner,
            idle,
            timer: None,
            last_frame: Instant::now(),
            metering: None,
            late: None,
            what,
            batch: Vec::new(),
            batched: 0,
            after: None,
        }
    }

    /// The batch as one frame (a single frame as it came, several joined).
    fn take_batch(&mut self) -> Frame<Bytes> {
        self.batched = 0;
        if self.batch.len() == 1 {
            return Frame::data(self.batch.pop().unwrap_or_default());
        }
        let mut joined = Vec::with_capacity(self.batch.iter().map(Bytes::len).sum());
        for b in self.batch.drain(..) {
            joined.extend_from_slice(&b);
        }
        Frame::data(Bytes::from(joined))
    }

    /// One frame from the upstream, metered; the idle cut-off while none comes.
    fn poll_upstream(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.last_frame = Instant::now();
                if let (Some(data), Some((meter, record, _))) =
                    (frame.data_ref(), this.metering.as_mut())
                {
                    meter.feed(data, record.started.elapsed());
                    if record.waiting && meter.content_started() {
                        record.content_started();
                    }
                    record.streamed_to(meter.content_chunks());
                }
                // With a known length the server stops polling after the last byte, and after
                // trailers (always the last frame): finish here.
                if frame.is_trailers() || this.inner.is_end_stream() {
                    this.finish(None);
                    this.release();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                tracing::warn!(upstream = %this.what, error = %e, "the upstream response failed midway");
                this.finish(Some(Outcome::ServerError));
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(None);
                this.release();
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
                    this.finish(Some(Outcome::ServerError));
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
}

impl HttpBody for PassBody {
    type Data = Bytes;
    type Error = BoxError;

    /// Passes on what the upstream sends, batching the frames that are already there: a
    /// stream's events usually arrive several to one read of the upstream socket, and the
    /// upstream body hands them over a chunk at a time, so each one written on its own is a
    /// write to the client per event (nginx writes what one read gave). When the upstream
    /// socket has nothing more, the batch goes out: an event is never held for one that has
    /// not arrived. A batch is at most [`BATCH_BYTES`] plus one frame; a frame of that size or
    /// more goes on its own.
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.batch.is_empty()
            && let Some(after) = this.after.take()
        {
            return Poll::Ready(after);
        }
        loop {
            match this.poll_upstream(cx) {
                Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                    let data = frame.into_data().unwrap_or_default();
                    if this.batch.is_empty() && data.len() >= BATCH_BYTES {
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    this.batched += data.len();
                    this.batch.push(data);
                    if this.batched >= BATCH_BYTES || this.inner.is_end_stream() {
                        return Poll::Ready(Some(Ok(this.take_batch())));
                    }
                }
                Poll::Pending if this.batch.is_empty() => return Poll::Pending,
                Poll::Pending => return Poll::Ready(Some(Ok(this.take_batch()))),
                Poll::Ready(other) => {
                    if this.batch.is_empty() {
                        return Poll::Ready(other);
                    }
                    this.after = Some(other);
                    return Poll::Ready(Some(Ok(this.take_batch())));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.batch.is_empty() && self.after.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let held = self.batched as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + held);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + held);
        }
        hint
    }
}

use std::future::Future;

/// Why a client's request body was not passed on whole.
#[derive(Debug, thiserror::Error)]
enum ClientBodyError {
    #[error("request body over {0} bytes (--collector.inference.max-body-size)")]
    TooLarge(usize),
    #[error("no request body data for {0:?} (--collector.inference.body-read-timeout)")]
    Stalled(Duration),
    #[error("reading the request body failed: {0}")]
    Failed(BoxError),
}

impl ClientBodyError {
    /// The client-side error in an error's chain, if any.
    fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a ClientBodyError> {
        std::iter::successors(Some(e), |e| e.source()).find_map(|e| e.downcast_ref())
    }
}

/// A client's request body on its way upstream: the frames read while looking for the model,
/// then the rest as it arrives; limited in size, each chunk due within a time, and scanned for
/// the model while that is still unknown.
pub(crate) struct ReqBody {
    held: std::collections::VecDeque<Frame<Bytes>>,
    held_len: usize,
    inner: crate::web::TimedBody<ClientBody>,
    ended: bool,
    /// Bytes still allowed.
    left: usize,
    max: usize,
    scan: Option<meter::ModelScan>,
    /// Where a model found after the request went upstream is put.
    late: Option<Arc<std::sync::OnceLock<String>>>,
}

impl ReqBody {
    fn new(body: ClientBody, max: usize, timeout: Duration, scan: bool) -> Self {
        ReqBody {
            held: std::collections::VecDeque::new(),
            held_len: 0,
            inner: crate::web::TimedBody::new(body, timeout, true),
            ended: false,
            left: max,
            max,
            scan: scan.then(meter::ModelScan::default),
            late: None,
        }
    }

    /// The model, when the scan has decided.
    fn model(&self) -> Option<Option<&str>> {
        self.scan.as_ref().filter(|s| s.done()).map(|s| s.model())
    }

    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    if data.len() > self.left {
                        return Poll::Ready(Some(Err(Box::new(ClientBodyError::TooLarge(
                            self.max,
                        )))));
                    }
                    self.left -= data.len();
                    if let Some(scan) = self.scan.as_mut().filter(|s| !s.done()) {
                        scan.feed(data);
                        if let (Some(m), Some(late)) = (scan.model(), &self.late) {
                            let _ = late.set(m.to_string());
                        }
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let e = match e.downcast::<crate::web::BodyTimeout>() {
                    Ok(t) => ClientBodyError::Stalled(t.0),
                    Err(e) => ClientBodyError::Failed(e),
                };
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }
}

impl HttpBody for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(frame) = this.held.pop_front() {
            this.held_len -= frame.data_ref().map_or(0, |d| d.len());
            return Poll::Ready(Some(Ok(frame)));
        }
        this.poll_inner(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_empty() && (self.ended || self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            return SizeHint::with_exact(self.held_len as u64);
        }
        let inner = self.inner.size_hint();
        let held = self.held_len as u64;
        match inner.exact() {
            Some(n) => SizeHint::with_exact(n + held),
            None => {
                let mut h = SizeHint::new();
                h.set_lower(inner.lower() + held);
                h
            }
        }
    }
}

/// A client's request body as it came: hyper's, or (in tests) any other.
type ClientBody = Either<hyper::body::Incoming, Body>;

/// A request's body on its way upstream: the client's (timed, bounded, scanned), or none. Sent
/// by hyper as it is, without boxing.
pub(crate) type UpBody = Either<ReqBody, http_body_util::Empty<Bytes>>;

/// The answer to a request whose body failed, and its outcome.
fn body_failed(e: &ClientBodyError) -> (Response, Outcome) {
    match e {
        ClientBodyError::TooLarge(_) => (
            plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("cellwatch proxy: {e}\n"),
            ),
            Outcome::ClientError,
        ),
        ClientBodyError::Stalled(_) => {
            let mut r = plain(
                StatusCode::REQUEST_TIMEOUT,
                format!("cellwatch proxy: {e}\n"),
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            (r, Outcome::Cancelled)
        }
        // The client went away (or sent a broken body) before the request was complete.
        ClientBodyError::Failed(_) => (
            plain(StatusCode::BAD_REQUEST, format!("cellwatch proxy: {e}\n")),
            Outcome::Cancelled,
        ),
    }
}

/// The proxy: configuration, upstream client and instruments, shared by its requests (a
/// request takes one reference, not a copy of each part).
#[derive(Debug, Clone)]
pub struct Proxy(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    config: ProxyConfig,
    /// This thread's connections to the upstream.
    pool: Arc<upstream::Pool>,
    /// The upstream's `Host`.
    host: Option<HeaderValue>,
    meters: Meters,
    models: Arc<ModelLabels>,
    /// This thread's copies of the models' meters, by the name a request gave.
    local: Mutex<LocalMeters>,
}

/// A proxy thread's copies of the models' meters (the same series), by label and by the name a
/// request gave (its label resolved once): a request's path takes no lock and changes no
/// reference count that another proxy thread also takes (each such change moves a cache line
/// between the cores). Both bounded as the labels are (plus `unknown` and `other`): a name
/// past them has its label resolved each time.
#[derive(Debug, Default)]
struct LocalMeters {
    labelled: std::collections::HashMap<String, Arc<ModelMeters>>,
    named: std::collections::HashMap<String, Arc<ModelMeters>>,
}

impl Shared {
    /// The meters for a request's model (as the client named it; `None`: not named).
    fn model_meters(&self, model: Option<&str>) -> Arc<ModelMeters> {
        let mut local = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = model.and_then(|m| local.named.get(m)) {
            return m.clone();
        }
        let label = self.models.label(model);
        let meters = match local.labelled.get(label) {
            Some(m) => m.clone(),
            None => {
                let m = Arc::new(ModelMeters::clone(&self.meters.model(label)));
                local.labelled.insert(label.to_string(), m.clone());
                m
            }
        };
        if let Some(m) = model
            && local.named.len() < self.models.max() + 2
        {
            local.named.insert(m.to_string(), meters.clone());
        }
        meters
    }
}

/// Upstream and path of one request, for log lines (written only when one is).
struct What {
    proxy: Arc<Shared>,
    uri: Uri,
}

impl std::fmt::Display for What {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.proxy.config.upstream, self.uri.path())
    }
}

/// Removes hop-by-hop headers: the fixed ones and every header the `Connection` header names
/// (RFC 9110 §7.6.1).
fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Most messages carry none: one pass over the names present, not a lookup per name.
    if !h.keys().any(is_hop_by_hop) {
        return;
    }
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
    let fixed: Vec<header::HeaderName> = h.keys().filter(|n| is_hop_by_hop(n)).cloned().collect();
    for name in fixed {
        h.remove(name);
    }
}

/// One of the fixed hop-by-hop headers (or `Connection`, which may name more).
fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    // One match on the (lower-case) name: a switch on its length, then one comparison.
    matches!(
        name.as_str(),
        "connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "keep-alive"
            | "proxy-connection"
    )
}

fn plain(status: StatusCode, msg: String) -> Response {
    let mut r = Response::new(Either::Right(http_body_util::Full::new(Bytes::from(msg))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A response of the proxy.
type Response = axum::http::Response<RespBody>;

/// A response's body: the upstream's, passed through, or the proxy's own short answer (an
/// error). The pass-through body is boxed: a pointer, not its 900 bytes, moves from the handler
/// through hyper's states (measured: 700 instructions a request less).
type RespBody = Either<Box<PassBody>, http_body_util::Full<Bytes>>;

impl Proxy {
    /// A proxy for `config`, metering into `meters`, with bounded `models` labels.
    pub fn new(config: ProxyConfig, meters: Meters, models: Arc<ModelLabels>) -> Self {
        let pool = Arc::new(upstream::Pool::new(
            &config.upstream,
            config.connect_timeout,
        ));
        let host = config
            .upstream
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
        Proxy(Arc::new(Shared {
            config,
            pool,
            host,
            meters,
            models,
            local: Mutex::default(),
        }))
    }

    #[cfg(test)]
    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, axum::http::Error> {
        self.0.upstream_uri(uri)
    }
}

impl Shared {
    /// The request target upstream, in origin form (path and query under the upstream's base
    /// path; the authority goes in `Host`).
    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, axum::http::Error> {
        let base = &self.config.upstream;
        let prefix = base.path().trim_end_matches('/');
        let pq = match uri.path_and_query() {
            // Under the root (the usual case) the path and query pass as they are.
            Some(pq) if prefix.is_empty() => pq.clone(),
            pq => {
                let pq = pq.map_or("/", |pq| pq.as_str());
                axum::http::uri::PathAndQuery::try_from(format!("{prefix}{pq}"))?
            }
        };
        Ok(Uri::from(pq))
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
    // One limit for all threads: a connection takes a slot from any thread's share.
    let slots = Arc::new(tokio::sync::Semaphore::new(
        proxy.0.config.limits.max_connections.max(1),
    ));
    for i in 0..threads.max(1) {
        let (tx, rx) = std::sync::mpsc::channel();
        let proxy = proxy.clone();
        let slots = slots.clone();
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
                    // A fresh pool per thread: its connections live on this thread's runtime.
                    let proxy = Proxy::new(
                        proxy.0.config.clone(),
                        proxy.0.meters.clone(),
                        proxy.0.models.clone(),
                    );
                    // Every second, closes the upstream connections idle for a minute. The
                    // tick also keeps the timer driver's next wake-up within a second: tokio
                    // wakes its driver (an eventfd write, then an extra turn of epoll) whenever
                    // a timer is armed to fire before the wake-up it last planned, which with
                    // the tick is never so for the requests' timers (header, response and idle
                    // timeouts, all longer) that a busy proxy arms several times a request.
                    // Measured: 0.2 to 0.3 eventfd writes per plain request without, none with.
                    let pool = proxy.0.pool.clone();
                    tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                        loop {
                            tick.tick().await;
                            pool.reap(std::time::Instant::now());
                        }
                    });
                    let header_timeout = proxy.0.config.limits.read_header_timeout;
                    // A client that stops reading a response (an SSE stream) is cut off after
                    // as long as an upstream that stops sending: slow but steady readers never.
                    let write_timeout = proxy.0.config.idle_timeout;
                    // Every request is proxied: hyper calls the handler itself, with no router,
                    // boxed future or boxed response body in between.
                    let service = hyper::service::service_fn(move |req| {
                        let proxy = proxy.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(proxy, req.map(Either::Left)).await,
                            )
                        }
                    });
                    crate::web::accept_loop(
                        &listener,
                        &slots,
                        std::future::pending(),
                        |tcp, peer, permit| {
                            let service = service.clone();
                            tokio::spawn(async move {
                                crate::web::serve_connection(
                                    tcp,
                                    peer,
                                    None,
                                    crate::web::ConnOptions {
                                        read_header_timeout: header_timeout,
                                        write_timeout,
                                        // Small responses and stream batches: one write each.
                                        flatten: true,
                                    },
                                    service,
                                    // The proxy runs until the process ends: its
                                    // connections are never told to stop.
                                    None,
                                )
                                .await;
                                drop(permit);
                            });
                        },
                    )
                    .await;
                });
            })?;
        rx.recv()
            .map_err(|_| std::io::Error::other("a proxy thread died while starting"))??;
    }
    Ok(addr)
}

/// Reads `bytes` as an upstream's answer fed in pieces of `piece` bytes, as the proxy's
/// upstream connections read one (for the fuzz target): `Ok` with a description of what was
/// read, or the error's text. The same bytes read whole give the same answer.
#[doc(hidden)]
pub fn read_upstream_response(
    bytes: &[u8],
    piece: usize,
    head_request: bool,
) -> Result<String, String> {
    upstream::read_pieces(bytes, piece, head_request)
        .map(|r| format!("{r:?}"))
        .map_err(|e| upstream::chain(&e))
}

/// Proxies one request (its body hyper's, or a test's).
async fn handle(Proxy(shared): Proxy, req: Request<ClientBody>) -> Response {
    let p = &*shared;
    let started = Instant::now();
    let started_wall = p.config.tracer.is_some().then(std::time::SystemTime::now);
    if req.method() == axum::http::Method::CONNECT {
        let mut r = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "cellwatch proxy: CONNECT is not supported (this is a reverse proxy)\n".into(),
        );
        r.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return r;
    }
    let api = if req.method() == axum::http::Method::POST {
        Api::from_path(req.uri().path())
    } else {
        None
    };
    let (mut parts, body) = req.into_parts();
    let uri = match p.upstream_uri(&parts.uri) {
        Ok(u) => u,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cellwatch proxy: bad request URI: {e}\n"),
            );
        }
    };
    let body_timeout = p.config.limits.read_timeout;
    let mut late = None;
    let (body, mut record) = match api {
        None if body.is_end_stream() => (Either::Right(http_body_util::Empty::new()), None),
        None => (
            Either::Left(ReqBody::new(body, usize::MAX, body_timeout, false)),
            None,
        ),
        Some(api) => {
            // Counted from the start, as `unknown` until the model is known: created as such
            // when the model is not in the body's first frames at hand (a client that goes
            // away while it is looked for is cancelled), else under the model at once.
            let mut observe = None;
            if p.config.genai.is_some() || p.config.tracer.is_some() {
                observe = Some(Box::new(Observe {
                    api,
                    genai: p.config.genai.clone(),
                    span: p
                        .config
                        .tracer
                        .as_ref()
                        .zip(started_wall)
                        .map(|(t, at)| t.start(&mut parts.headers, api, None, at)),
                    status: None,
                }));
            }
            let mut record: Option<Record> = None;
            let unknown = |observe: &mut Option<Box<Observe>>| {
                let mut r = Record::with(p.model_meters(None), started);
                r.observe = observe.take();
                r
            };
            let declared = parts
                .headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            let mut body = ReqBody::new(body, p.config.max_body, body_timeout, true);
            let failed = if declared.is_some_and(|n| n > p.config.max_body as u64) {
                Some(ClientBodyError::TooLarge(p.config.max_body))
            } else {
                // Hold the first frames until the model is known (or the prefix is full).
                let mut failed = None;
                while body.model().is_none() && body.held_len < SCAN_PREFIX && !body.ended {
                    let next = std::future::poll_fn(|cx| {
                        let next = body.poll_inner(cx);
                        if next.is_pending() && record.is_none() {
                            record = Some(unknown(&mut observe));
                        }
                        next
                    });
                    match next.await {
                        Some(Ok(frame)) => {
                            body.held_len += frame.data_ref().map_or(0, |d| d.len());
                            body.held.push_back(frame);
                        }
                        None => {}
                        Some(Err(e)) => {
                            failed = Some(match e.downcast::<ClientBodyError>() {
                                Ok(e) => *e,
                                Err(e) => ClientBodyError::Failed(e),
                            });
                            break;
                        }
                    }
                }
                failed
            };
            if let Some(e) = failed {
                let (resp, outcome) = body_failed(&e);
                record
                    .unwrap_or_else(|| unknown(&mut observe))
                    .finish(outcome, Summary::default());
                return resp;
            }
            let meters = match body.model() {
                Some(m) => p.model_meters(m),
                None if body.ended => p.model_meters(None),
                None => {
                    // Not in the prefix: look on as the rest passes.
                    let slot = Arc::new(std::sync::OnceLock::new());
                    body.late = Some(slot.clone());
                    late = Some(slot);
                    p.model_meters(None)
                }
            };
            let mut record = match record {
                Some(mut r) => {
                    r.relabel_to(meters);
                    r
                }
                None => {
                    let mut r = Record::with(meters, started);
                    r.observe = observe.take();
                    r
                }
            };
            if let Some(Some(m)) = body.model() {
                record.span_model(m);
            }
            (Either::Left(body), Some(record))
        }
    };
    strip_hop_by_hop(&mut parts.headers);
    let asked = std::mem::replace(&mut parts.uri, uri);
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
    let resp = match tokio::time::timeout(
        p.config.header_timeout,
        p.pool.send(upstream_req, p.host.as_ref()),
    )
    .await
    {
        Err(_) => {
            return unavailable(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no response within {:?}", p.config.header_timeout),
                record.take(),
            );
        }
        Ok(Err(e)) => {
            if let Some(client) = ClientBodyError::find(&e) {
                let (resp, outcome) = body_failed(client);
                if let Some(mut r) = record.take() {
                    r.finish(outcome, Summary::default());
                }
                return resp;
            }
            if e.is_connect() {
                p.meters.upstream.unreachable();
            }
            let msg = upstream::chain(&e);
            return unavailable(StatusCode::BAD_GATEWAY, msg, record.take());
        }
        Ok(Ok(sent)) => {
            p.meters.upstream_served(&p.config.upstream);
            sent
        }
    };
    if let (Some(r), Some(m)) = (record.as_mut(), late.as_ref().and_then(|l| l.get())) {
        r.span_model(m);
        r.relabel_to(p.model_meters(Some(m)));
    }
    if let Some(r) = record.as_mut() {
        r.status(resp.status());
    }
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
    let idle = p.config.idle_timeout;
    let mut body = Box::new(PassBody::new(
        body,
        idle,
        What {
            proxy: shared.clone(),
            uri: asked,
        },
    ));
    body.metering = metering;
    body.late = late.map(|slot| Late { slot });
    // An empty body (204, or Content-Length: 0) is never polled: finish it now.
    if body.inner.is_end_stream() {
        body.finish(None);
        body.release();
    }
    Response::from_parts(parts, Either::Left(body))
}

/// A bare HTTP/1.1 server that answers every request with `body` and closes the connection
/// (so no pooled connection outlives the server), until the task is aborted.
#[cfg(test)]
pub(crate) async fn serve_until_aborted(listener: tokio::net::TcpListener, body: String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((mut tcp, _)) = listener.accept().await {
        let mut buf = vec![0u8; 4096];
        let mut read = 0;
        while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
            match tcp.read(&mut buf[read..]).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = tcp.write_all(resp.as_bytes()).await;
        let _ = tcp.shutdown().await;
    }
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
        // Without a Connection header each fixed one still goes, and only those.
        for name in [
            "transfer-encoding",
            "te",
            "trailer",
            "upgrade",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            h.insert(name, HeaderValue::from_static("x"));
            strip_hop_by_hop(&mut h);
            assert_eq!(
                h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                ["content-type"],
                "{name}"
            );
        }
    }

    #[test]
    fn model_labels_are_bounded() {
        let l = ModelLabels::new(2);
        assert_eq!(l.label(Some("a")), "a");
        assert_eq!(l.label(Some("b")), "b");
        assert_eq!(l.label(Some("c")), "other");
        assert_eq!(l.label(Some("a")), "a");
        assert_eq!(l.label(None), "unknown");
        // A long name is cut at 128 characters (not bytes).
        let long = "é".repeat(200);
        assert_eq!(ModelLabels::new(2).label(Some(&long)), "é".repeat(128));
    }

    #[test]
    fn a_threads_model_meters_are_its_own_copies_of_the_same_series_and_bounded() {
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let models = Arc::new(ModelLabels::new(2));
        let config = test_config("http://127.0.0.1:9");
        let one = Proxy::new(config.clone(), meters.clone(), models.clone());
        let two = Proxy::new(config, meters.clone(), models);
        let a1 = one.0.model_meters(Some("a"));
        assert!(Arc::ptr_eq(&a1, &one.0.model_meters(Some("a"))), "kept");
        let a2 = two.0.model_meters(Some("a"));
        assert!(!Arc::ptr_eq(&a1, &a2), "each thread its own copy");
        // The same series: a request on each thread is two in flight.
        drop(Record::with(a1.clone(), Instant::now()));
        let mut r = Record::with(a2, Instant::now());
        r.finish(Outcome::Ok, Summary::default());
        let text = crate::store::encode_families(meters.registry.gather());
        let count = |outcome: &str| {
            cellwatch_metrics::exposition::value(
                &text,
                &format!(r#"cellwatch_inference_requests_total{{model="a",outcome="{outcome}"}}"#),
            )
        };
        assert_eq!(count("ok"), Some(1.0), "{text}");
        assert_eq!(count("cancelled"), Some(1.0), "{text}");
        assert_eq!(one.0.model_meters(None).model, "unknown");
        assert_eq!(one.0.model_meters(Some("b")).model, "b");
        // Past the labels, names go to `other`; the copies kept stay within the labels plus
        // `unknown` and `other`, however many names clients send.
        let other = one.0.model_meters(Some("n0"));
        assert_eq!(other.model, "other");
        for i in 0..100 {
            let m = one.0.model_meters(Some(&format!("n{i}")));
            assert!(Arc::ptr_eq(&m, &other), "one copy per label");
        }
        let local = one.0.local.lock().unwrap();
        assert_eq!(local.named.len(), 4, "{:?}", local.named.keys());
        let mut labels: Vec<_> = local.labelled.keys().map(String::as_str).collect();
        labels.sort();
        assert_eq!(labels, ["a", "b", "other", "unknown"]);
    }

    #[test]
    fn a_dropped_record_is_cancelled_and_counts_once() {
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        {
            let mut r = Record::new(&meters, "m", Instant::now());
            r.finish(
                Outcome::Ok,
                Summary {
                    ttft: Some(Duration::from_millis(5)),
                    prompt_tokens: Some(3),
                    generated_tokens: Some(4),
                    tpot: Some(Duration::from_millis(20)),
                    ..Default::default()
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
        // TPOT of the ok request only; nothing waits once both ended.
        let v = |k: &str| cellwatch_metrics::exposition::value(&text, k);
        assert_eq!(
            v(r#"cellwatch_inference_time_per_output_token_seconds_count{model="m"}"#),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_time_per_output_token_seconds_bucket{model="m",le="0.025"}"#),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_time_per_output_token_seconds_bucket{model="m",le="0.01"}"#),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_requests_waiting{model="m"}"#),
            Some(0.0),
            "{text}"
        );
    }

    fn gauge(meters: &Meters, key: &str) -> Option<f64> {
        let text = crate::store::encode_families(meters.registry.gather());
        cellwatch_metrics::exposition::value(&text, key)
    }

    #[test]
    fn one_request_without_content_is_in_prefill_when_none_generates() {
        // (in flight, without content) → waiting.
        for ((in_flight, no_content), want) in [
            ((0, 0), 0),
            ((1, 0), 0),
            ((1, 1), 0),
            ((2, 2), 1),
            ((2, 1), 1),
            ((3, 1), 1),
            ((5, 3), 3),
            ((0, -1), 0),
        ] {
            assert_eq!(
                Waiting::of(in_flight, no_content),
                want,
                "{in_flight} {no_content}"
            );
        }
    }

    #[test]
    fn a_request_waits_until_its_first_content_or_its_end_however_it_ends() {
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let waiting = |model: &str| {
            gauge(
                &meters,
                &format!(r#"cellwatch_inference_requests_waiting{{model="{model}"}}"#),
            )
        };
        // Two requests, nothing generating: one is taken to be in prefill, the other waits.
        let mut a = Record::new(&meters, "m", Instant::now());
        let mut b = Record::new(&meters, "m", Instant::now());
        assert_eq!(waiting("m"), Some(1.0));
        // Content arrives for one: the other waits behind it.
        a.content_started();
        a.content_started();
        assert_eq!(waiting("m"), Some(1.0), "counted down once");
        // The generating one ends: the other is now the one in prefill.
        a.finish(Outcome::Ok, Summary::default());
        assert_eq!(waiting("m"), Some(0.0));
        // Ended with no content (an error), or dropped (cancelled): no longer waiting.
        let c = Record::new(&meters, "m", Instant::now());
        b.finish(Outcome::ServerError, Summary::default());
        drop(c);
        assert_eq!(waiting("m"), Some(0.0));
        assert_eq!(meters.waiting.with_label_values(&["m"]).get(), 0);
        // Relabelled by a late model while waiting: the wait moves with it (behind a request
        // of that model that is generating).
        let mut e = Record::new(&meters, "late", Instant::now());
        e.content_started();
        let mut c = Record::new(&meters, "unknown", Instant::now());
        c.relabel(&meters, "late");
        assert_eq!(
            (waiting("unknown"), waiting("late")),
            (Some(0.0), Some(1.0))
        );
        drop(c);
        assert_eq!(waiting("late"), Some(0.0));
        drop(e);
        // Relabelled after its content started: nothing to move, nothing goes negative.
        let mut d = Record::new(&meters, "unknown", Instant::now());
        d.content_started();
        d.relabel(&meters, "late");
        drop(d);
        assert_eq!(
            (waiting("unknown"), waiting("late")),
            (Some(0.0), Some(0.0))
        );
        assert_eq!(
            gauge(
                &meters,
                r#"cellwatch_inference_requests_in_flight{model="late"}"#
            ),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn an_upstream_that_never_answers_is_a_504_after_the_header_timeout() {
        use http_body_util::BodyExt;
        use tokio::io::AsyncReadExt;
        // Reads requests, answers none.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        });
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let mut cfg = test_config(&format!("http://{addr}"));
        cfg.header_timeout = Duration::from_millis(300);
        let p = Proxy::new(cfg, meters.clone(), Arc::new(ModelLabels::new(4)));
        let req = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"model":"m"}"#))
            .unwrap();
        let started = std::time::Instant::now();
        let resp = tokio::time::timeout(Duration::from_secs(10), handle(p, req.map(Either::Right)))
            .await
            .expect("answered");
        let waited = started.elapsed();
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        assert!(waited >= Duration::from_millis(300), "{waited:?}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("no response within 300ms"),
            "{body:?}"
        );
        assert_eq!(
            gauge(
                &meters,
                r#"cellwatch_inference_requests_total{model="m",outcome="upstream_unavailable"}"#
            ),
            Some(1.0)
        );
    }

    #[tokio::test]
    async fn a_streamed_response_stops_waiting_at_its_first_content_chunk() {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // An upstream that sends a role chunk, then waits for a signal, then content.
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let upstream = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                read += tcp.read(&mut buf[read..]).await.unwrap();
            }
            let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            let role = chunk("data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n");
            tcp.write_all(format!("{head}{role}").as_bytes())
                .await
                .unwrap();
            let _ = gate.await;
            let content = chunk("data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n");
            tcp.write_all(format!("{content}0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let _ = tcp.shutdown().await;
        });
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let cfg = test_config(&format!("http://{addr}"));
        let p = Proxy::new(cfg, meters.clone(), Arc::new(ModelLabels::new(4)));
        let req = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"model":"m","stream":true}"#))
            .unwrap();
        let waiting = || {
            gauge(
                &meters,
                r#"cellwatch_inference_requests_waiting{model="m"}"#,
            )
        };
        let mut body = handle(p, req.map(Either::Right)).await.into_body();
        let first = body.frame().await.unwrap().unwrap();
        assert!(first.data_ref().is_some());
        // Alone, it is taken to be in prefill (exported 0); without content it still counts.
        let no_content = || meters.waiting.with_label_values(&["m"]).get();
        assert_eq!(waiting(), Some(0.0));
        assert_eq!(no_content(), 1, "a role chunk is not content");
        go.send(()).unwrap();
        let _ = body.frame().await.unwrap().unwrap();
        assert_eq!(no_content(), 0, "the first content chunk ends the wait");
        assert_eq!(waiting(), Some(0.0));
        while let Some(f) = body.frame().await {
            f.unwrap();
        }
        drop(body);
        upstream.await.unwrap();
        assert_eq!(waiting(), Some(0.0));
        assert_eq!(
            gauge(
                &meters,
                r#"cellwatch_inference_requests_in_flight{model="m"}"#
            ),
            Some(0.0)
        );
    }

    #[tokio::test]
    async fn events_at_hand_pass_in_one_write_and_a_late_one_is_not_waited_for() {
        use http_body_util::BodyExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let event = |i: usize| {
            format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}]}}\n\n")
        };
        let chunk = |s: &str| format!("{:x}\r\n{s}\r\n", s.len());
        // An upstream that sends five events in one write, then waits, then sends a sixth.
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let upstream = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let mut read = 0;
            while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                read += tcp.read(&mut buf[read..]).await.unwrap();
            }
            let mut first = String::from(
                "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            );
            for i in 0..5 {
                first.push_str(&chunk(&event(i)));
            }
            tcp.write_all(first.as_bytes()).await.unwrap();
            let _ = gate.await;
            let last = format!("{}0\r\n\r\n", chunk(&event(5)));
            tcp.write_all(last.as_bytes()).await.unwrap();
            let _ = tcp.shutdown().await;
        });
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let cfg = test_config(&format!("http://{addr}"));
        let p = Proxy::new(cfg, meters.clone(), Arc::new(ModelLabels::new(4)));
        let req = Request::builder()
            .method("POST")
            .uri("/v1/chat/completions")
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"model":"m","stream":true}"#))
            .unwrap();
        let mut body = handle(p, req.map(Either::Right)).await.into_body();
        // The five pass while the upstream still holds the sixth, in fewer frames than events.
        let early: String = (0..5).map(event).collect();
        let (mut got, mut frames) = (Vec::new(), 0);
        while got.len() < early.len() {
            let f = tokio::time::timeout(Duration::from_secs(10), body.frame())
                .await
                .expect("the events at hand pass without waiting for the next")
                .unwrap()
                .unwrap();
            got.extend_from_slice(f.data_ref().unwrap());
            frames += 1;
        }
        assert_eq!(String::from_utf8_lossy(&got), early);
        assert!(
            frames <= 2,
            "five events sent in one write went on in {frames} frames"
        );
        go.send(()).unwrap();
        let last = body.frame().await.unwrap().unwrap();
        assert_eq!(last.data_ref().unwrap(), event(5).as_bytes());
        assert!(body.frame().await.is_none());
        drop(body);
        upstream.await.unwrap();
        // Metered as frames came, not as batches: six content chunks, six tokens.
        assert_eq!(
            gauge(
                &meters,
                r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#
            ),
            Some(6.0)
        );
    }

    /// A client's body: `chunks`, one frame each, then its end, or nothing more ever (`hang`).
    pub(super) struct Chunks(
        pub(super) std::collections::VecDeque<&'static str>,
        pub(super) bool,
    );

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            let this = self.get_mut();
            match this.0.pop_front() {
                Some(c) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(c.as_bytes()))))),
                None if this.1 => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn streamed(chunks: &[&'static str]) -> ClientBody {
        Either::Right(Body::new(Chunks(chunks.iter().copied().collect(), false)))
    }

    #[tokio::test]
    async fn a_request_body_streams_on_with_its_model_found_late_and_its_size_bounded() {
        use http_body_util::BodyExt;
        // The model after the prefix: found as the rest passes, every byte passed in order.
        let mut b = ReqBody::new(
            streamed(&[r#"{"messages":["#, r#""hi"],"#, r#""model":"late"}"#]),
            1 << 20,
            Duration::from_secs(5),
            true,
        );
        let first = std::future::poll_fn(|cx| b.poll_inner(cx))
            .await
            .unwrap()
            .unwrap();
        b.held_len += first.data_ref().unwrap().len();
        b.held.push_back(first);
        assert_eq!(b.model(), None);
        let slot = Arc::new(std::sync::OnceLock::new());
        b.late = Some(slot.clone());
        assert_eq!(b.size_hint().lower(), 13);
        let all = b.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], br#"{"messages":["hi"],"model":"late"}"#);
        assert_eq!(slot.get().map(String::as_str), Some("late"));
        // Over the limit midway: an error the handler answers with 413.
        let b = ReqBody::new(
            streamed(&["0123456789", "0123456789"]),
            15,
            Duration::from_secs(5),
            false,
        );
        let e = b.collect().await.unwrap_err();
        assert!(
            matches!(
                ClientBodyError::find(&*e),
                Some(ClientBodyError::TooLarge(15))
            ),
            "{e}"
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
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        for generated in [5, u64::MAX, u64::MAX] {
            let mut r = Record::new(&meters, "m", Instant::now());
            r.finish(
                Outcome::Ok,
                Summary {
                    ttft: None,
                    prompt_tokens: Some(3),
                    generated_tokens: Some(generated),
                    ..Default::default()
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

    /// A proxy configuration for tests: `upstream`, a 1 MiB body limit, short timeouts,
    /// default buckets, no GenAI histograms or traces.
    fn test_config(upstream: &str) -> ProxyConfig {
        ProxyConfig {
            upstream: upstream.parse().unwrap(),
            max_body: 1 << 20,
            connect_timeout: Duration::from_secs(2),
            header_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            buckets: DEFAULT_BUCKETS.to_vec(),
            tpot_buckets: m::DEFAULT_TPOT_BUCKETS.to_vec(),
            limits: crate::web::Limits::default(),
            genai: None,
            tracer: None,
        }
    }

    #[tokio::test]
    async fn a_response_ending_in_trailers_frees_its_connection_once_they_pass() {
        use http_body_util::BodyExt;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // A keep-alive upstream answering every request with a chunked body and a trailer.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n) = tcp.read(&mut chunk).await {
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            let resp = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
                                        Trailer: x-t\r\n\r\n1\r\nx\r\n0\r\nx-t: 1\r\n\r\n";
                            if tcp.write_all(resp.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let p = Proxy::new(
            test_config(&format!("http://{addr}")),
            meters,
            Arc::new(ModelLabels::new(1)),
        );
        for round in 1..=2 {
            let req = Request::builder().uri("/t").body(Body::empty()).unwrap();
            let mut body = handle(p.clone(), req.map(Either::Right)).await.into_body();
            // As hyper's server does: no poll after the trailers.
            loop {
                let frame = body.frame().await.expect("a frame").expect("no error");
                if let Ok(trailers) = frame.into_trailers() {
                    assert_eq!(trailers["x-t"], "1");
                    break;
                }
            }
            for _ in 0..1000 {
                if p.0.pool.idle() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(p.0.pool.idle(), 1, "round {round}: the connection is kept");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for both"
        );
    }

    #[test]
    fn upstream_uri_keeps_path_and_query_under_the_base() {
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let cfg = test_config("http://127.0.0.1:52415/base/");
        let p = Proxy::new(cfg, meters, Arc::new(ModelLabels::new(1)));
        let u = p
            .upstream_uri(&"/v1/chat/completions?x=1".parse().unwrap())
            .unwrap();
        assert_eq!(u.to_string(), "/base/v1/chat/completions?x=1");
        // At the root: path and query as they came.
        for (base, path, want) in [
            (
                "http://127.0.0.1:52415",
                "/v1/models?a=b&c",
                "/v1/models?a=b&c",
            ),
            ("http://127.0.0.1:52415/", "/", "/"),
            ("http://gpu.example:8443/", "/x%20y", "/x%20y"),
            ("http://h:1/base", "/", "/base/"),
        ] {
            let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
            let p = Proxy::new(
                super::tests::test_config(base),
                meters,
                Arc::new(ModelLabels::new(1)),
            );
            let u = p.upstream_uri(&path.parse().unwrap()).unwrap();
            assert_eq!(u.to_string(), want, "{base} {path}");
        }
    }

    #[test]
    fn the_upstream_state_counts_a_come_back_once() {
        let s = UpstreamState::default();
        // Refused before it ever served (it starts after the proxy): not down, no restart.
        s.unreachable();
        assert!(!s.is_down());
        assert!(!s.served());
        assert!(!s.served());
        s.unreachable();
        assert!(s.is_down());
        s.unreachable();
        // Back: one restart, however many requests it then serves.
        assert!(s.served());
        assert!(!s.served());
        assert!(!s.is_down());
        // Racing responses after a restart: exactly one counts.
        s.unreachable();
        let s = Arc::new(s);
        let counted: usize = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || usize::from(s.served()))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .sum();
        assert_eq!(counted, 1);
    }

    #[tokio::test]
    async fn an_upstream_stopped_and_started_again_is_one_restart() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = tokio::spawn(serve_until_aborted(listener, "{}".into()));
        let meters = Meters::new(DEFAULT_BUCKETS, m::DEFAULT_TPOT_BUCKETS).unwrap();
        let cfg = test_config(&format!("http://{addr}"));
        let p = Proxy::new(cfg, meters.clone(), Arc::new(ModelLabels::new(1)));
        let restarts = || {
            let text = crate::store::encode_families(meters.registry.gather());
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_upstream_restarts_total{server="proxy"}"#,
            )
        };
        let get = async |path: &str| {
            let req = Request::builder().uri(path).body(Body::empty()).unwrap();
            handle(p.clone(), req.map(Either::Right)).await.status()
        };
        assert_eq!(restarts(), Some(0.0), "0 from the start");
        assert_eq!(get("/v1/models").await, StatusCode::OK);
        upstream.abort();
        let _ = upstream.await;
        assert_eq!(get("/v1/models").await, StatusCode::BAD_GATEWAY);
        assert_eq!(get("/health").await, StatusCode::BAD_GATEWAY);
        assert_eq!(restarts(), Some(0.0), "down is not yet a restart");
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let upstream = tokio::spawn(serve_until_aborted(listener, "{}".into()));
        assert_eq!(get("/v1/models").await, StatusCode::OK);
        assert_eq!(get("/v1/models").await, StatusCode::OK);
        upstream.abort();
        assert_eq!(restarts(), Some(1.0));
    }
}
