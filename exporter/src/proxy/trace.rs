//! Per-request traces of the metering proxy (`--otlp.traces`): one span per metered request,
//! sent over OTLP (`--otlp.endpoint`, `--otlp.protocol`, `--otlp.header`).
//!
//! **The span** follows the GenAI inference span of the semantic conventions v1.41.0
//! (`docs/gen-ai/gen-ai-spans.md`; names in [`cellwatch_metrics::genai`]): named
//! `{gen_ai.operation.name} {gen_ai.request.model}` (`chat llama-3`), kind `CLIENT`, with
//! `gen_ai.operation.name`, `gen_ai.provider.name`, `gen_ai.request.model` (as the client sent
//! it, cut at 128 characters), `server.address` and `server.port` of the upstream,
//! `gen_ai.usage.input_tokens`, `gen_ai.usage.output_tokens`,
//! `gen_ai.response.finish_reasons`, `gen_ai.response.time_to_first_chunk` (seconds; the
//! GenAI registry's newer name, none exists in v1.41) and
//! `cellwatch.gen_ai.time_per_output_token` (seconds; no convention has one). A failed request
//! has status `Error` and `error.type` (the values of [`super::genai::error_type`]); a
//! successful one leaves the status unset, as "Recording errors" asks. `gen_ai.response.model`
//! is not set: the proxy does not parse the response's `model`. The instrumentation scope is
//! `cellwatch-exporter` with the conventions' schema URL; the resource is the one the metrics
//! push carries (`service.name`, `service.version`, `cell`, `node`).
//!
//! **Why `CLIENT`:** the span stands for the call to the model server (the upstream), which is
//! what the conventions' inference span is, and it carries that server's address. The proxy
//! does not add a separate `SERVER` span for the client's connection: one span per request.
//!
//! **Propagation (W3C Trace Context, level 1):** a client's valid `traceparent` (and its
//! `tracestate`, passed on unchanged) makes the span its child; without one (or with an
//! invalid one, which is ignored as the recommendation says) the span starts a new trace.
//! Either way the client's headers are replaced, on the request sent upstream, by the proxy
//! span's own context, so the upstream's spans are children of the proxy's.
//!
//! **Sampling:** parent-based with a trace-id ratio at the root (`--otlp.traces.sample-ratio`,
//! the same rule as the OpenTelemetry SDK's `ParentBased(TraceIdRatioBased)`: the trace id's
//! low 63 bits against the ratio): a sampled client parent is followed, an unsampled one too.
//! A head sampler cannot know how a request ends, so every request is recorded and [`keep`]
//! decides when it ends: exported when head-sampled, when it failed (status `Error`) or when it
//! took at least `--otlp.traces.slow`; discarded otherwise. A request that is not head-sampled
//! goes upstream with the sampled flag off (`traceparent: 00-…-00`), so an upstream that
//! follows its parent records nothing for it, even when the proxy's span is exported later for
//! being failed or slow.
//!
//! **What a span costs the proxy:** a request's span is a plain record ([`RequestSpan`]: ids
//! from a thread-local generator, timestamps, the numbers the meter found); the `traceparent`
//! is parsed and written in place. The export thread writes the records straight to the OTLP
//! protobuf wire format (the `opentelemetry-proto` messages, checked by decoding them with that
//! crate in the tests) and sends them with the transport of the metrics push
//! ([`crate::otlp::Transport`]). The proxy used the `opentelemetry` SDK's spans and the
//! `opentelemetry-otlp` exporter before: at 100 % sampling they took 18 % of the proxy's
//! requests per second on plain requests (span building on the request path, then the
//! conversion of every span into protobuf structs), against the 5 % this module is held to
//! (`scripts/bench-proxy`). These records exported through the `opentelemetry-otlp` span
//! exporter (each converted to the SDK's `SpanData` on the export thread) still took 7.5 %, and
//! 45 % more p99, on a 2-core machine. The engine, which makes a few spans per evaluation,
//! still uses the SDK and that exporter.
//!
//! **Batching never blocks the proxy:** an ended span is pushed to a bounded queue
//! ([`QUEUE_SIZE`]) under a short lock, without waiting; when the queue is full the span is
//! dropped and counted. The proxy wakes the exporter thread only when a batch is full, not per
//! span. That thread (at nice 10, below the proxy's threads) sends batches of up to
//! [`BATCH_SIZE`], at least every [`EXPORT_DELAY`], and logs the dropped count (a warning when
//! it grows, at most every 10 s, and at shutdown). A failed export is logged once per change of
//! reason and its spans are lost (no retry queue to grow). Shutdown flushes what is queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use cellwatch_metrics::genai as g;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

use super::Outcome;
use super::meter::{Api, FinishReason, Summary};

/// Most ended spans waiting for export; more are dropped (and counted).
pub const QUEUE_SIZE: usize = 8192;
/// Most spans in one export request.
pub const BATCH_SIZE: usize = 512;
/// Longest a span waits in the queue before its batch is sent.
pub const EXPORT_DELAY: Duration = Duration::from_secs(1);
/// The W3C Trace Context headers (names made once: a lookup by `&str` parses it each time).
const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
/// Longest `gen_ai.request.model`, in characters.
const MODEL_CHARS: usize = 128;

/// Trace export settings.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The collector (as `--otlp.endpoint`).
    pub endpoint: String,
    /// The transport.
    pub protocol: crate::otlp::Protocol,
    /// Longest one export may take.
    pub timeout: Duration,
    /// Headers sent with every export.
    pub headers: Vec<(String, String)>,
    /// Share of root traces sampled at the head (0 to 1).
    pub sample_ratio: f64,
    /// Requests at least this long are exported whatever the head decided.
    pub slow: Duration,
}

/// Whether an ended span is exported: head-sampled, failed, or slow. Pure.
pub fn keep(sampled: bool, failed: bool, duration: Duration, slow: Duration) -> bool {
    sampled || failed || duration >= slow
}

/// The head sampler: parent-based, with a trace-id ratio at the root. Pure.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    /// Root traces whose low 63 bits are below this are sampled; `None`: every root is.
    below: Option<u64>,
}

impl Sampler {
    /// `ratio` of root traces sampled (clamped to 0..=1).
    pub fn new(ratio: f64) -> Self {
        if ratio >= 1.0 {
            return Sampler { below: None };
        }
        // As the SDK's TraceIdRatioBased: ratio × 2^63 against the id's low 63 bits.
        let below = (ratio.max(0.0) * (1u64 << 63) as f64) as u64;
        Sampler { below: Some(below) }
    }

    /// Whether a span of `trace_id` is sampled, given its parent's sampled flag when it has
    /// a parent.
    pub fn sampled(&self, trace_id: u128, parent: Option<bool>) -> bool {
        if let Some(p) = parent {
            return p;
        }
        match self.below {
            None => true,
            Some(below) => ((trace_id as u64) >> 1) < below,
        }
    }
}

/// A valid W3C `traceparent`: the caller's trace and span, and whether it sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Traceparent {
    /// The trace id (not zero).
    pub trace_id: u128,
    /// The caller's span id (not zero).
    pub span_id: u64,
    /// The `sampled` flag.
    pub sampled: bool,
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex digits as a number (at most 32 of them).
fn hex(s: &[u8]) -> Option<u128> {
    s.iter()
        .try_fold(0u128, |n, &c| Some(n << 4 | u128::from(hex_digit(c)?)))
}

/// Parses a `traceparent` header value as W3C Trace Context level 1 says: version, trace id,
/// parent id and flags in lowercase hex; version `ff` and all-zero ids are invalid; a later
/// version may carry more fields after a `-`. `None` when it is not valid (the header is then
/// ignored). Pure.
pub fn parse_traceparent(value: &[u8]) -> Option<Traceparent> {
    let v = value.trim_ascii();
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let version = hex(&v[..2])?;
    if version == 0xff || (version == 0 && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    let trace_id = hex(&v[3..35])?;
    let span_id = u64::try_from(hex(&v[36..52])?).ok()?;
    let flags = hex(&v[53..55])?;
    if trace_id == 0 || span_id == 0 {
        return None;
    }
    Some(Traceparent {
        trace_id,
        span_id,
        sampled: flags & 1 == 1,
    })
}

/// The `traceparent` of a span (version 00). Pure.
pub fn write_traceparent(trace_id: u128, span_id: u64, sampled: bool) -> [u8; 55] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for i in 0..32 {
        out[3 + i] = DIGITS[((trace_id >> (124 - 4 * i)) & 0xf) as usize];
    }
    for i in 0..16 {
        out[36 + i] = DIGITS[((span_id >> (60 - 4 * i)) & 0xf) as usize];
    }
    if sampled {
        out[54] = b'1';
    }
    out
}

/// A non-zero random id of the thread-local generator.
fn random_u128() -> u128 {
    loop {
        let id = fastrand::u128(..);
        if id != 0 {
            return id;
        }
    }
}

fn random_u64() -> u64 {
    loop {
        let id = fastrand::u64(..);
        if id != 0 {
            return id;
        }
    }
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// One request's span as the export thread reads it.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    trace_id: u128,
    span_id: u64,
    /// The client's span, when the client sent a valid `traceparent`.
    parent: Option<u64>,
    sampled: bool,
    /// The client's `tracestate`, passed on.
    trace_state: Option<HeaderValue>,
    start_ns: u64,
    end_ns: u64,
    operation: &'static str,
    provider: &'static str,
    model: Option<Box<str>>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    finish_reason: Option<FinishReason>,
    ttft: Option<f64>,
    tpot: Option<f64>,
    /// `error.type` of a failed request.
    error: Option<String>,
}

/// A request to the exporter thread: export what is queued, stop, and say so.
struct Shutdown(std::sync::mpsc::Sender<()>);

/// What the proxy's threads and the exporter thread share, under one lock.
#[derive(Default)]
struct Pending {
    spans: Vec<SpanRecord>,
    shutdown: Option<Shutdown>,
    /// The pipeline is gone: export what is left and stop.
    closed: bool,
    /// The exporter thread has stopped.
    stopped: bool,
}

/// The bounded queue of ended spans. A proxy thread only takes the lock and pushes; it wakes
/// the exporter thread once per full batch, not per span (a wake-up per span cost a futex
/// syscall and a context switch on every request).
struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
    capacity: usize,
    /// Spans dropped because the queue was full.
    dropped: AtomicU64,
    /// Spans lost in failed exports.
    failed: AtomicU64,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("capacity", &self.capacity)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            capacity,
            dropped: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Offers a span; `false` when the queue was full (the span is dropped and counted) or the
    /// exporter has stopped.
    fn offer(&self, span: SpanRecord) -> bool {
        let mut p = self.lock();
        if p.stopped || p.spans.len() >= self.capacity {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        p.spans.push(span);
        let full = p.spans.len() == BATCH_SIZE;
        drop(p);
        if full {
            self.ready.notify_one();
        }
        true
    }

    /// Asks the exporter thread to export what is queued and stop, and waits for it (at most
    /// `timeout`).
    fn shutdown(&self, timeout: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut p = self.lock();
            if p.stopped {
                return;
            }
            p.shutdown = Some(Shutdown(tx));
        }
        self.ready.notify_one();
        let _ = rx.recv_timeout(timeout);
    }

    /// Waits until a batch is full, a shutdown or the close arrives, or `deadline`; then
    /// swaps what is queued with `spare` (emptied, its room kept). The lock is held only for
    /// the swap: nothing is allocated or freed under it, so a proxy thread never waits on the
    /// exporter thread (which runs at a lower priority) for longer than that.
    fn take(&self, deadline: Instant, spare: &mut Vec<SpanRecord>) -> (Option<Shutdown>, bool) {
        let mut p = self.lock();
        loop {
            let now = Instant::now();
            if p.spans.len() >= BATCH_SIZE || p.shutdown.is_some() || p.closed || now >= deadline {
                break;
            }
            p = match self.ready.wait_timeout(p, deadline - now) {
                Ok((p, _)) => p,
                Err(e) => e.into_inner().0,
            };
        }
        spare.clear();
        std::mem::swap(&mut p.spans, spare);
        (p.shutdown.take(), p.closed)
    }
}

/// `cellwatch_inference_spans_dropped_total`, read from the queue's counters when gathered.
struct SpansDropped {
    queue: Arc<Queue>,
    desc: prometheus::core::Desc,
}

impl prometheus::core::Collector for SpansDropped {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        vec![&self.desc]
    }

    fn collect(&self) -> Vec<prometheus::proto::MetricFamily> {
        let d = &cellwatch_metrics::INFERENCE_SPANS_DROPPED;
        let Ok(v) = prometheus::IntCounterVec::new(prometheus::Opts::new(d.name, d.help), d.labels)
        else {
            return Vec::new();
        };
        for (reason, n) in [
            ("queue_full", &self.queue.dropped),
            ("export_failed", &self.queue.failed),
        ] {
            v.with_label_values(&[reason])
                .inc_by(n.load(Ordering::Relaxed));
        }
        prometheus::core::Collector::collect(&v)
    }
}

/// Where the exporter thread sends batches.
pub trait Export: Send + 'static {
    /// Sends one batch; the error says why it was lost.
    fn export(&mut self, spans: &[SpanRecord]) -> Result<(), String>;
}

/// The tracer the proxy's threads share.
#[derive(Debug, Clone)]
pub struct ProxyTracer {
    queue: Arc<Queue>,
    sampler: Sampler,
    slow: Duration,
}

impl ProxyTracer {
    /// Starts the span of a request that arrived at `started`, the child of the client's
    /// context in `headers` when there is a valid one, and puts the span's context in
    /// `headers` (the client's `traceparent` and `tracestate` replaced) for the upstream.
    pub fn start(
        &self,
        headers: &mut HeaderMap,
        api: Api,
        model: Option<&str>,
        started: SystemTime,
    ) -> RequestSpan {
        let parent = headers
            .get(&TRACEPARENT)
            .and_then(|v| parse_traceparent(v.as_bytes()));
        let trace_state = parent.and_then(|_| trace_state(headers));
        let trace_id = parent.map_or_else(random_u128, |p| p.trace_id);
        let span_id = random_u64();
        let sampled = self.sampler.sampled(trace_id, parent.map(|p| p.sampled));
        if trace_state.is_some() || headers.contains_key(&TRACESTATE) {
            headers.remove(&TRACESTATE);
        }
        let tp = write_traceparent(trace_id, span_id, sampled);
        if let Ok(v) = HeaderValue::from_bytes(&tp) {
            headers.insert(TRACEPARENT, v);
        }
        if let Some(ts) = &trace_state {
            headers.insert(TRACESTATE, ts.clone());
        }
        RequestSpan {
            queue: self.queue.clone(),
            slow: self.slow,
            record: Some(SpanRecord {
                trace_id,
                span_id,
                parent: parent.map(|p| p.span_id),
                sampled,
                trace_state,
                start_ns: unix_ns(started),
                end_ns: 0,
                operation: super::genai::operation(api),
                provider: super::genai::provider(api),
                model: model.map(cut_model),
                input_tokens: None,
                output_tokens: None,
                finish_reason: None,
                ttft: None,
                tpot: None,
                error: None,
            }),
        }
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped.load(Ordering::Relaxed)
    }

    /// `cellwatch_inference_spans_dropped_total`, to register with the proxy's metrics.
    pub fn dropped_collector(
        &self,
    ) -> Result<Box<dyn prometheus::core::Collector>, prometheus::Error> {
        spans_dropped(self.queue.clone())
    }
}

/// `cellwatch_inference_spans_dropped_total` of a tracer that has lost nothing yet (both
/// reasons at 0), for snapshots of the proxy without an exporter thread.
pub fn idle_dropped_collector() -> Result<Box<dyn prometheus::core::Collector>, prometheus::Error> {
    spans_dropped(Arc::new(Queue::new(QUEUE_SIZE)))
}

fn spans_dropped(
    queue: Arc<Queue>,
) -> Result<Box<dyn prometheus::core::Collector>, prometheus::Error> {
    let desc = super::desc(&cellwatch_metrics::INFERENCE_SPANS_DROPPED)?;
    Ok(Box::new(SpansDropped { queue, desc }))
}

/// The client's `tracestate` lines joined with `,`; `None` when empty.
fn trace_state(headers: &HeaderMap) -> Option<HeaderValue> {
    let mut values = headers
        .get_all(&TRACESTATE)
        .iter()
        .filter(|v| !v.as_bytes().trim_ascii().is_empty());
    let first = values.next()?;
    let Some(second) = values.next() else {
        return Some(first.clone());
    };
    let mut joined = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        joined.push(b',');
        joined.extend_from_slice(v.as_bytes());
    }
    HeaderValue::from_bytes(&joined).ok()
}

fn cut_model(model: &str) -> Box<str> {
    match model.char_indices().nth(MODEL_CHARS) {
        Some((at, _)) => model[..at].into(),
        None => model.into(),
    }
}

/// The span of one metered request, ended once by [`RequestSpan::end`] (or as it is when
/// dropped unended).
#[derive(Debug)]
pub struct RequestSpan {
    queue: Arc<Queue>,
    slow: Duration,
    /// `None` once ended.
    record: Option<SpanRecord>,
}

impl RequestSpan {
    /// The model, found in the request body after the span started.
    pub fn set_model(&mut self, model: &str) {
        if let Some(r) = self.record.as_mut().filter(|r| r.model.is_none()) {
            r.model = Some(cut_model(model));
        }
    }

    /// The span's trace id and span id (what went upstream in `traceparent`).
    pub fn ids(&self) -> Option<(u128, u64)> {
        self.record.as_ref().map(|r| (r.trace_id, r.span_id))
    }

    /// Ends the span with the request's outcome, the upstream's status and what the meter
    /// found; `tpot` is the time per output token when measured.
    pub fn end(
        mut self,
        outcome: Outcome,
        status: Option<u16>,
        summary: &Summary,
        tpot: Option<Duration>,
    ) {
        if let Some(r) = self.record.as_mut() {
            r.input_tokens = summary.prompt_tokens.map(clamp);
            r.output_tokens = summary.generated_tokens.map(clamp);
            r.finish_reason = summary.finish_reason;
            r.ttft = summary.ttft.map(|t| t.as_secs_f64());
            r.tpot = tpot.map(|t| t.as_secs_f64());
            r.error = super::genai::error_type(outcome, status);
        }
        self.finish(SystemTime::now());
    }

    /// Ends the span at `at` and queues it if [`keep`] keeps it.
    fn finish(&mut self, at: SystemTime) {
        let Some(mut r) = self.record.take() else {
            return;
        };
        r.end_ns = unix_ns(at).max(r.start_ns);
        let took = Duration::from_nanos(r.end_ns - r.start_ns);
        if keep(r.sampled, r.error.is_some(), took, self.slow) {
            self.queue.offer(r);
        }
    }
}

impl Drop for RequestSpan {
    fn drop(&mut self) {
        self.finish(SystemTime::now());
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(super::clamp_tokens(n).0).unwrap_or(i64::MAX)
}

/// Writes span records as an OTLP `ExportTraceServiceRequest`, straight to protobuf bytes:
/// one resource, one scope, the batch's spans. Its buffers are reused from batch to batch.
#[derive(Debug)]
pub struct Encoder {
    /// The `resource` field of `ResourceSpans`, encoded once.
    resource: Vec<u8>,
    /// The `scope` and `schema_url` fields of `ScopeSpans`, encoded once.
    scope: Vec<u8>,
    schema: Vec<u8>,
    /// `server.address` and `server.port`, as span attribute fields, encoded once.
    server: Vec<u8>,
    spans: Vec<u8>,
    span: Vec<u8>,
    value: Vec<u8>,
}

/// An attribute value.
enum Value<'a> {
    Str(&'a [&'a str]),
    Int(i64),
    Double(f64),
    /// An array of one string.
    StrList(&'a str),
}

// Field numbers of opentelemetry/proto (trace/v1/trace.proto, common/v1/common.proto).
const SPAN_TRACE_ID: u32 = 1;
const SPAN_SPAN_ID: u32 = 2;
const SPAN_TRACE_STATE: u32 = 3;
const SPAN_PARENT_SPAN_ID: u32 = 4;
const SPAN_NAME: u32 = 5;
const SPAN_KIND: u32 = 6;
const SPAN_START: u32 = 7;
const SPAN_END: u32 = 8;
const SPAN_ATTRIBUTES: u32 = 9;
const SPAN_STATUS: u32 = 15;
const SPAN_FLAGS: u32 = 16;
const SPAN_KIND_CLIENT: u64 = 3;
const STATUS_MESSAGE: u32 = 2;
const STATUS_CODE: u32 = 3;
const STATUS_CODE_ERROR: u64 = 2;
/// `SpanFlags`: the trace flags' sampled bit, "has is-remote" and "is remote".
const FLAG_SAMPLED: u32 = 0x1;
const FLAG_HAS_IS_REMOTE: u32 = 0x100;
const FLAG_IS_REMOTE: u32 = 0x200;

fn len_key(tag: u32, len: usize, buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
}

fn bytes_field(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    len_key(tag, bytes.len(), buf);
    buf.extend_from_slice(bytes);
}

fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

impl Encoder {
    /// An encoder for spans of a proxy in front of `server` (address, port), under `resource`.
    pub fn new(resource: &[(String, String)], server: (&str, u16)) -> Encoder {
        use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
        use prost::Message;
        let resource = opentelemetry_proto::tonic::resource::v1::Resource {
            attributes: resource
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: Some(AnyValue {
                        value: Some(
                            opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(
                                v.clone(),
                            ),
                        ),
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "cellwatch-exporter".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let mut e = Encoder {
            resource: Vec::new(),
            scope: Vec::new(),
            schema: Vec::new(),
            server: Vec::new(),
            spans: Vec::new(),
            span: Vec::new(),
            value: Vec::new(),
        };
        bytes_field(1, &resource.encode_to_vec(), &mut e.resource);
        bytes_field(1, &scope.encode_to_vec(), &mut e.scope);
        bytes_field(3, g::SCHEMA_URL.as_bytes(), &mut e.schema);
        let mut server_fields = Vec::new();
        e.attribute(
            g::SERVER_ADDRESS,
            &Value::Str(&[server.0]),
            &mut server_fields,
        );
        e.attribute(
            g::SERVER_PORT,
            &Value::Int(i64::from(server.1)),
            &mut server_fields,
        );
        e.server = server_fields;
        e
    }

    /// Appends one `attributes` field (a `KeyValue`) to `buf`.
    fn attribute(&mut self, key: &str, value: &Value<'_>, buf: &mut Vec<u8>) {
        let v = &mut self.value;
        v.clear();
        match value {
            Value::Str(parts) => {
                let len = parts.iter().map(|p| p.len()).sum();
                len_key(1, len, v);
                for p in *parts {
                    v.extend_from_slice(p.as_bytes());
                }
            }
            Value::Int(n) => {
                encode_key(3, WireType::Varint, v);
                encode_varint(*n as u64, v);
            }
            Value::Double(x) => {
                encode_key(4, WireType::SixtyFourBit, v);
                v.extend_from_slice(&x.to_le_bytes());
            }
            Value::StrList(s) => {
                // AnyValue.array_value { values: [AnyValue.string_value] }
                let any = field_len(1, s.len());
                let array = field_len(1, any);
                len_key(5, array, v);
                len_key(1, any, v);
                bytes_field(1, s.as_bytes(), v);
            }
        }
        let kv = field_len(1, key.len()) + field_len(2, v.len());
        len_key(SPAN_ATTRIBUTES, kv, buf);
        bytes_field(1, key.as_bytes(), buf);
        bytes_field(2, v, buf);
    }

    /// Writes one span into `self.span`.
    fn span(&mut self, r: &SpanRecord) {
        let mut s = std::mem::take(&mut self.span);
        s.clear();
        bytes_field(SPAN_TRACE_ID, &r.trace_id.to_be_bytes(), &mut s);
        bytes_field(SPAN_SPAN_ID, &r.span_id.to_be_bytes(), &mut s);
        if let Some(ts) = r.trace_state.as_ref().and_then(|v| v.to_str().ok()) {
            bytes_field(SPAN_TRACE_STATE, ts.as_bytes(), &mut s);
        }
        if let Some(p) = r.parent {
            bytes_field(SPAN_PARENT_SPAN_ID, &p.to_be_bytes(), &mut s);
        }
        let model = r.model.as_deref();
        let name: &[&str] = match model {
            Some(m) => &[r.operation, " ", m],
            None => &[r.operation],
        };
        len_key(SPAN_NAME, name.iter().map(|p| p.len()).sum(), &mut s);
        for p in name {
            s.extend_from_slice(p.as_bytes());
        }
        encode_key(SPAN_KIND, WireType::Varint, &mut s);
        encode_varint(SPAN_KIND_CLIENT, &mut s);
        for (tag, ns) in [(SPAN_START, r.start_ns), (SPAN_END, r.end_ns)] {
            encode_key(tag, WireType::SixtyFourBit, &mut s);
            s.extend_from_slice(&ns.to_le_bytes());
        }
        self.attribute(g::OPERATION_NAME, &Value::Str(&[r.operation]), &mut s);
        self.attribute(g::PROVIDER_NAME, &Value::Str(&[r.provider]), &mut s);
        s.extend_from_slice(&self.server);
        if let Some(m) = model {
            self.attribute(g::REQUEST_MODEL, &Value::Str(&[m]), &mut s);
        }
        if let Some(n) = r.input_tokens {
            self.attribute(g::USAGE_INPUT_TOKENS, &Value::Int(n), &mut s);
        }
        if let Some(n) = r.output_tokens {
            self.attribute(g::USAGE_OUTPUT_TOKENS, &Value::Int(n), &mut s);
        }
        if let Some(f) = &r.finish_reason {
            self.attribute(
                g::RESPONSE_FINISH_REASONS,
                &Value::StrList(f.as_str()),
                &mut s,
            );
        }
        if let Some(t) = r.ttft {
            self.attribute(g::RESPONSE_TIME_TO_FIRST_CHUNK, &Value::Double(t), &mut s);
        }
        if let Some(t) = r.tpot {
            self.attribute(
                g::CELLWATCH_TIME_PER_OUTPUT_TOKEN,
                &Value::Double(t),
                &mut s,
            );
        }
        if let Some(e) = &r.error {
            self.attribute(g::ERROR_TYPE, &Value::Str(&[e]), &mut s);
            let status = field_len(STATUS_MESSAGE, e.len()) + 2;
            len_key(SPAN_STATUS, status, &mut s);
            bytes_field(STATUS_MESSAGE, e.as_bytes(), &mut s);
            encode_key(STATUS_CODE, WireType::Varint, &mut s);
            encode_varint(STATUS_CODE_ERROR, &mut s);
        }
        let mut flags = FLAG_HAS_IS_REMOTE;
        if r.sampled {
            flags |= FLAG_SAMPLED;
        }
        if r.parent.is_some() {
            flags |= FLAG_IS_REMOTE;
        }
        encode_key(SPAN_FLAGS, WireType::ThirtyTwoBit, &mut s);
        s.extend_from_slice(&flags.to_le_bytes());
        self.span = s;
    }

    /// The export request of `records`.
    pub fn encode(&mut self, records: &[SpanRecord]) -> Vec<u8> {
        self.spans.clear();
        for r in records {
            self.span(r);
            let mut spans = std::mem::take(&mut self.spans);
            bytes_field(2, &self.span, &mut spans);
            self.spans = spans;
        }
        // ExportTraceServiceRequest { resource_spans: [ResourceSpans { resource, scope_spans:
        // [ScopeSpans { scope, spans, schema_url }] }] }
        let scope_spans = self.scope.len() + self.spans.len() + self.schema.len();
        let resource_spans = self.resource.len() + field_len(2, scope_spans);
        let mut out = Vec::with_capacity(field_len(1, resource_spans));
        len_key(1, resource_spans, &mut out);
        out.extend_from_slice(&self.resource);
        len_key(2, scope_spans, &mut out);
        out.extend_from_slice(&self.scope);
        out.extend_from_slice(&self.spans);
        out.extend_from_slice(&self.schema);
        out
    }
}

/// The OTLP export: the encoder and the transport, on the exporter thread's own
/// single-threaded runtime.
struct Otlp {
    runtime: tokio::runtime::Runtime,
    transport: crate::otlp::Transport,
    encoder: Encoder,
}

impl Export for Otlp {
    fn export(&mut self, spans: &[SpanRecord]) -> Result<(), String> {
        let body = self.encoder.encode(spans);
        self.runtime
            .block_on(self.transport.send(body))
            .map_err(|e| e.to_string())
    }
}

/// The running trace pipeline: the queue, and the exporter thread draining it.
#[derive(Debug)]
pub struct Tracing {
    tracer: ProxyTracer,
}

impl Tracing {
    /// Prepares the OTLP transport and starts the exporter thread, for a proxy in front of
    /// `server` (address, port), with the spans under `resource`.
    pub fn start(
        settings: &TraceSettings,
        resource: &[(String, String)],
        server: (&str, u16),
    ) -> Result<Tracing, crate::otlp::PushError> {
        let bad = |message: String| crate::otlp::PushError::Config {
            endpoint: crate::tls::without_credentials(&settings.endpoint),
            message,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| bad(format!("cannot start the export runtime: {e}")))?;
        let transport = {
            let _in = runtime.enter();
            crate::otlp::Transport::new(
                &settings.endpoint,
                settings.protocol,
                settings.timeout,
                &settings.headers,
                crate::otlp::Signal::Traces,
            )?
        };
        let export = Otlp {
            runtime,
            transport,
            encoder: Encoder::new(resource, server),
        };
        let queue = start_thread(export, QUEUE_SIZE)
            .map_err(|e| bad(format!("cannot start the export thread: {e}")))?;
        Ok(Tracing {
            tracer: ProxyTracer {
                queue,
                sampler: Sampler::new(settings.sample_ratio),
                slow: settings.slow,
            },
        })
    }

    /// The tracer the proxy uses.
    pub fn tracer(&self) -> ProxyTracer {
        self.tracer.clone()
    }

    /// Exports what is queued and stops (blocks up to 5 s: call it off the async threads).
    pub fn shutdown(&self) {
        self.tracer.queue.shutdown(Duration::from_secs(5));
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        self.tracer.queue.lock().closed = true;
        self.tracer.queue.ready.notify_one();
    }
}

/// Starts the exporter thread over a new queue of `capacity`.
fn start_thread<E: Export>(export: E, capacity: usize) -> std::io::Result<Arc<Queue>> {
    let queue = Arc::new(Queue::new(capacity));
    let q = queue.clone();
    std::thread::Builder::new()
        .name("cellwatch-otlp-traces".into())
        .spawn(move || {
            lower_priority();
            export_loop(export, &q);
            q.lock().stopped = true;
        })?;
    Ok(queue)
}

/// Makes this thread (the exporter's) yield the CPU to the proxy's threads: nice 10 (Linux's
/// nice value is per thread). When the CPUs are saturated the export falls behind rather than
/// the requests (a full queue drops and counts spans), and the export's bursts of encoding
/// do not stretch the requests' tail latency.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, EXPORT_NICE) {
        tracing::debug!(error = %e, "cannot lower the span exporter thread's priority");
    }
}

/// The exporter thread's nice value.
#[cfg(target_os = "linux")]
const EXPORT_NICE: i32 = 10;

/// The exporter thread: batches of up to [`BATCH_SIZE`] from the queue, each span exported
/// within about [`EXPORT_DELAY`] of being queued.
fn export_loop<E: Export>(mut export: E, queue: &Queue) {
    let mut last_error = String::new();
    let mut logged = (0u64, Instant::now());
    let mut deadline = Instant::now() + EXPORT_DELAY;
    // Two buffers, swapped with the queue's: the proxy threads push into room allocated once.
    queue.lock().spans.reserve(BATCH_SIZE);
    let mut spans = Vec::with_capacity(BATCH_SIZE);
    loop {
        let (ctl, closed) = queue.take(deadline, &mut spans);
        if spans.len() < BATCH_SIZE {
            deadline = Instant::now() + EXPORT_DELAY;
        }
        for batch in spans.chunks(BATCH_SIZE) {
            let result = export.export(batch);
            if result.is_err() {
                queue
                    .failed
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            log_result(result, &mut last_error);
        }
        let n = queue.dropped.load(Ordering::Relaxed);
        if n > logged.0 && logged.1.elapsed() >= Duration::from_secs(10) {
            tracing::warn!(
                dropped = n,
                queue = queue.capacity,
                "the span export queue was full: spans dropped since start (the proxy never waits for the export)"
            );
            logged = (n, Instant::now());
        }
        match ctl {
            Some(Shutdown(ack)) => {
                queue.lock().stopped = true;
                if n > 0 {
                    tracing::warn!(
                        dropped = n,
                        "spans dropped since start because the export queue was full"
                    );
                }
                let _ = ack.send(());
                return;
            }
            None if closed => return,
            None => {}
        }
    }
}

fn log_result(result: Result<(), String>, last_error: &mut String) {
    match result {
        Ok(()) if !last_error.is_empty() => {
            tracing::info!("OTLP span export works again");
            last_error.clear();
        }
        Ok(()) => {}
        Err(msg) => {
            if msg != *last_error {
                tracing::warn!(error = %msg, "OTLP span export failed; those spans are lost, the next batch tries again");
                *last_error = msg;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind, status::StatusCode};
    use prost::Message;

    const CLIENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn tracer(ratio: f64, capacity: usize) -> ProxyTracer {
        ProxyTracer {
            queue: Arc::new(Queue::new(capacity)),
            sampler: Sampler::new(ratio),
            slow: Duration::from_secs(10),
        }
    }

    fn queued(t: &ProxyTracer) -> Vec<SpanRecord> {
        std::mem::take(&mut t.queue.lock().spans)
    }

    #[test]
    fn sampled_failed_and_slow_spans_are_kept_the_rest_discarded() {
        let slow = Duration::from_secs(10);
        assert!(keep(true, false, Duration::ZERO, slow));
        assert!(keep(false, true, Duration::ZERO, slow));
        assert!(keep(false, false, slow, slow));
        assert!(!keep(false, false, slow - Duration::from_millis(1), slow));
        // Through the tracer at ratio 0 over a queue of 2 that no thread drains.
        let t = tracer(0.0, 2);
        let now = SystemTime::now();
        let fine = Summary::default();
        t.start(&mut HeaderMap::new(), Api::ChatCompletions, None, now)
            .end(Outcome::Ok, Some(200), &fine, None);
        assert!(queued(&t).is_empty(), "fast, unsampled, fine: discarded");
        t.start(&mut HeaderMap::new(), Api::ChatCompletions, None, now)
            .end(Outcome::ServerError, Some(500), &fine, None);
        let long_ago = now - Duration::from_secs(11);
        t.start(&mut HeaderMap::new(), Api::ChatCompletions, None, long_ago)
            .end(Outcome::Ok, Some(200), &fine, None);
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(CLIENT));
        t.start(&mut h, Api::ChatCompletions, None, now)
            .end(Outcome::Ok, Some(200), &fine, None);
        let kept = queued(&t);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].error.as_deref(), Some("500"));
        assert!(kept[1].end_ns - kept[1].start_ns >= 11_000_000_000);
        assert_eq!(t.dropped(), 1, "the sampled span found the queue full");
        // A span dropped unended (the request's future went away) ends as it is.
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(CLIENT));
        drop(t.start(&mut h, Api::Messages, Some("m"), now));
        assert_eq!(queued(&t).len(), 1);
    }

    #[derive(Debug, Clone, Default)]
    struct Batches(Arc<Mutex<Vec<usize>>>);

    impl Export for Batches {
        fn export(&mut self, spans: &[SpanRecord]) -> Result<(), String> {
            self.0.lock().unwrap().push(spans.len());
            Ok(())
        }
    }

    #[test]
    fn full_batches_go_at_once_shutdown_sends_the_rest_and_stops_the_queue() {
        let batches = Batches::default();
        let queue = start_thread(batches.clone(), BATCH_SIZE * 2).unwrap();
        let t = ProxyTracer {
            queue: queue.clone(),
            sampler: Sampler::new(1.0),
            slow: Duration::from_secs(10),
        };
        let now = SystemTime::now();
        for _ in 0..BATCH_SIZE + 3 {
            t.start(&mut HeaderMap::new(), Api::ChatCompletions, Some("m"), now)
                .end(Outcome::Ok, Some(200), &Summary::default(), None);
        }
        // The full batch wakes the exporter thread, long before EXPORT_DELAY.
        let start = Instant::now();
        while batches.0.lock().unwrap().is_empty() && start.elapsed() < EXPORT_DELAY / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(batches.0.lock().unwrap().first(), Some(&BATCH_SIZE));
        queue.shutdown(Duration::from_secs(5));
        // The rest after the full batch: at shutdown, or (when the thread woke to more than a
        // batch already queued) partly with it; every span once, no batch above the size.
        let sent = batches.0.lock().unwrap().clone();
        assert_eq!(sent.iter().sum::<usize>(), BATCH_SIZE + 3, "{sent:?}");
        assert!(
            sent.len() <= 3 && sent.iter().all(|&n| n <= BATCH_SIZE),
            "{sent:?}"
        );
        t.start(&mut HeaderMap::new(), Api::ChatCompletions, None, now)
            .end(Outcome::Ok, Some(200), &Summary::default(), None);
        assert_eq!(
            t.dropped(),
            1,
            "after shutdown a span is dropped, not queued"
        );
        assert_eq!(*batches.0.lock().unwrap(), sent);
    }

    struct Failing;

    impl Export for Failing {
        fn export(&mut self, _: &[SpanRecord]) -> Result<(), String> {
            Err("connection refused".into())
        }
    }

    #[test]
    fn lost_spans_are_counted_by_reason_on_the_proxys_metrics() {
        let queue = start_thread(Failing, 16).unwrap();
        let t = ProxyTracer {
            queue: queue.clone(),
            sampler: Sampler::new(1.0),
            slow: Duration::from_secs(10),
        };
        let end = |t: &ProxyTracer| {
            t.start(
                &mut HeaderMap::new(),
                Api::ChatCompletions,
                None,
                SystemTime::now(),
            )
            .end(Outcome::Ok, Some(200), &Summary::default(), None)
        };
        for _ in 0..3 {
            end(&t);
        }
        queue.shutdown(Duration::from_secs(5));
        end(&t);
        let registry = prometheus::Registry::new();
        registry.register(t.dropped_collector().unwrap()).unwrap();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        let name = cellwatch_metrics::INFERENCE_SPANS_DROPPED.name;
        assert!(
            text.contains(&format!("{name}{{reason=\"export_failed\"}} 3\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}{{reason=\"queue_full\"}} 1\n")),
            "{text}"
        );
        assert!(text.contains(&format!("# TYPE {name} counter")), "{text}");
    }

    #[test]
    fn the_sampler_follows_the_parent_and_samples_its_ratio_of_roots() {
        let (none, all) = (Sampler::new(0.0), Sampler::new(1.0));
        assert!(!none.sampled(u128::MAX, None));
        assert!(all.sampled(u128::MAX, None));
        assert!(none.sampled(1, Some(true)), "a sampled parent is followed");
        assert!(!all.sampled(1, Some(false)), "an unsampled one too");
        // The SDK's TraceIdRatioBased rule: the low 63 bits of the id against ratio × 2^63.
        let quarter = Sampler::new(0.25);
        assert!(quarter.sampled((1u128 << 64) - 1 - (3 << 62), None));
        assert!(!quarter.sampled(1u128 << 62 | 1 << 61, None));
        let mut rng = fastrand::Rng::with_seed(7);
        let n = 100_000;
        let hits = (0..n)
            .filter(|_| quarter.sampled(rng.u128(..), None))
            .count();
        assert!((24_000..26_000).contains(&hits), "{hits} of {n}");
    }

    #[test]
    fn traceparent_is_read_as_w3c_trace_context_says() {
        let ok = parse_traceparent(CLIENT.as_bytes()).unwrap();
        assert_eq!(ok.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(ok.span_id, 0x00f067aa0ba902b7);
        assert!(ok.sampled);
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert!(!parse_traceparent(unsampled.as_bytes()).unwrap().sampled);
        // Flags other than sampled are ignored; a later version may carry more fields.
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03-extra";
        assert_eq!(parse_traceparent(v1.as_bytes()), Some(ok));
        assert_eq!(
            parse_traceparent(format!(" {CLIENT} ").as_bytes()),
            Some(ok)
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad.as_bytes()), None, "{bad:?}");
        }
        let written = write_traceparent(ok.trace_id, ok.span_id, true);
        assert_eq!(&written[..], CLIENT.as_bytes());
        let root = write_traceparent(1, u64::MAX, false);
        assert_eq!(
            std::str::from_utf8(&root).unwrap(),
            "00-00000000000000000000000000000001-ffffffffffffffff-00"
        );
    }

    #[test]
    fn a_client_traceparent_is_the_parent_and_is_replaced_upstream() {
        let t = tracer(0.0, 16);
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(CLIENT));
        h.append("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        h.append("tracestate", HeaderValue::from_static(""));
        h.append(
            "tracestate",
            HeaderValue::from_static("rojo=00f067aa0ba902b7"),
        );
        let mut s = t.start(&mut h, Api::ChatCompletions, None, SystemTime::now());
        s.set_model("llama");
        s.set_model("other: the first model named stays");
        let sent = h["traceparent"].to_str().unwrap().to_string();
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            parts[2], "00f067aa0ba902b7",
            "the proxy span is the upstream's parent"
        );
        assert_eq!(parts[3], "01", "the sampled parent is followed");
        assert_eq!(
            Some(format!("{:016x}", s.ids().unwrap().1)),
            Some(parts[2].into())
        );
        assert_eq!(
            h.get_all("tracestate").iter().collect::<Vec<_>>(),
            ["congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"]
        );
        s.end(Outcome::Ok, Some(200), &Summary::default(), None);
        let r = &queued(&t)[0];
        assert_eq!(r.parent, Some(0x00f067aa0ba902b7));
        assert_eq!(r.model.as_deref(), Some("llama"));
        // Without a traceparent (or with an invalid one): a new trace, not sampled at ratio
        // 0, and no tracestate at all (never an empty one).
        for client in [None, Some("00-zz-00f067aa0ba902b7-01")] {
            let mut h = HeaderMap::new();
            if let Some(c) = client {
                h.insert("traceparent", HeaderValue::from_static(c));
                h.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
            }
            let s = t.start(&mut h, Api::Messages, Some("m"), SystemTime::now());
            let sent = h["traceparent"].to_str().unwrap().to_string();
            assert!(sent.ends_with("-00"), "{sent}");
            let (trace, span) = s.ids().unwrap();
            assert_eq!(sent, format!("00-{trace:032x}-{span:016x}-00"));
            assert!(h.get("tracestate").is_none(), "{h:?}");
        }
        // A model name is cut at 128 characters.
        let long = "é".repeat(200);
        let s = t.start(
            &mut HeaderMap::new(),
            Api::Messages,
            Some(&long),
            SystemTime::now(),
        );
        assert_eq!(
            s.record
                .as_ref()
                .unwrap()
                .model
                .as_ref()
                .unwrap()
                .chars()
                .count(),
            128
        );
    }

    fn attr(span: &Span, key: &str) -> Option<Any> {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.clone()?.value)
    }

    /// The hand-written wire format decodes, with `opentelemetry-proto`'s own messages, to
    /// the span and request the conventions describe.
    #[test]
    fn spans_encode_to_the_otlp_messages() {
        let t = tracer(0.0, 16);
        let start = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
        let mut h = HeaderMap::new();
        h.insert("traceparent", HeaderValue::from_static(CLIENT));
        h.insert("tracestate", HeaderValue::from_static("congo=t61rcWkgMzE"));
        let summary = Summary {
            ttft: Some(Duration::from_millis(250)),
            prompt_tokens: Some(12),
            generated_tokens: Some(u64::MAX),
            tpot: None,
            finish_reason: FinishReason::new("length"),
        };
        let mut s = t.start(&mut h, Api::ChatCompletions, None, start);
        s.set_model("llama-3");
        s.end(
            Outcome::Ok,
            Some(200),
            &summary,
            Some(Duration::from_millis(20)),
        );
        let s = t.start(&mut HeaderMap::new(), Api::OllamaGenerate, None, start);
        s.end(Outcome::ServerError, Some(503), &Summary::default(), None);
        let records = queued(&t);
        assert_eq!(records.len(), 2);
        let resource = [("service.name".to_string(), "cellwatch-exporter".to_string())];
        let mut enc = Encoder::new(&resource, ("10.0.0.7", 8080));
        let bytes = enc.encode(&records);
        // The buffers are reused: the same batch gives the same bytes.
        assert_eq!(enc.encode(&records), bytes);
        let req = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        assert_eq!(req.resource_spans.len(), 1);
        let rs = &req.resource_spans[0];
        let res = &rs.resource.as_ref().unwrap().attributes;
        assert_eq!(res[0].key, "service.name");
        assert_eq!(
            res[0].value.clone().unwrap().value,
            Some(Any::StringValue("cellwatch-exporter".into()))
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.schema_url, g::SCHEMA_URL);
        let scope = ss.scope.as_ref().unwrap();
        assert_eq!(scope.name, "cellwatch-exporter");
        assert_eq!(scope.version, env!("CARGO_PKG_VERSION"));
        let [ok, failed] = &ss.spans[..] else {
            panic!("{:?}", ss.spans)
        };
        // The request a sampled client sent.
        assert_eq!(ok.name, "chat llama-3");
        assert_eq!(ok.kind, SpanKind::Client as i32);
        assert_eq!(
            ok.trace_id,
            0x4bf92f3577b34da6a3ce929d0e0e4736u128.to_be_bytes()
        );
        assert_eq!(ok.span_id, records[0].span_id.to_be_bytes());
        assert_eq!(ok.parent_span_id, 0x00f067aa0ba902b7u64.to_be_bytes());
        assert_eq!(ok.trace_state, "congo=t61rcWkgMzE");
        assert_eq!(ok.flags, 0x301, "sampled, with a remote parent");
        assert_eq!(ok.start_time_unix_nano, 1_750_000_000_000_000_000);
        assert!(ok.end_time_unix_nano > ok.start_time_unix_nano);
        assert_eq!(ok.status, None, "success leaves the status unset");
        let a = |k| attr(ok, k);
        assert_eq!(a(g::OPERATION_NAME), Some(Any::StringValue("chat".into())));
        assert_eq!(a(g::PROVIDER_NAME), Some(Any::StringValue("openai".into())));
        assert_eq!(
            a(g::REQUEST_MODEL),
            Some(Any::StringValue("llama-3".into()))
        );
        assert_eq!(
            a(g::SERVER_ADDRESS),
            Some(Any::StringValue("10.0.0.7".into()))
        );
        assert_eq!(a(g::SERVER_PORT), Some(Any::IntValue(8080)));
        assert_eq!(a(g::USAGE_INPUT_TOKENS), Some(Any::IntValue(12)));
        let clamped = i64::try_from(crate::proxy::clamp_tokens(u64::MAX).0).unwrap();
        assert_eq!(a(g::USAGE_OUTPUT_TOKENS), Some(Any::IntValue(clamped)));
        let Some(Any::ArrayValue(reasons)) = a(g::RESPONSE_FINISH_REASONS) else {
            panic!("{ok:?}")
        };
        assert_eq!(
            reasons.values[0].value,
            Some(Any::StringValue("length".into()))
        );
        assert_eq!(reasons.values.len(), 1);
        assert_eq!(
            a(g::RESPONSE_TIME_TO_FIRST_CHUNK),
            Some(Any::DoubleValue(0.25))
        );
        assert_eq!(
            a(g::CELLWATCH_TIME_PER_OUTPUT_TOKEN),
            Some(Any::DoubleValue(0.02))
        );
        assert_eq!(a(g::ERROR_TYPE), None);
        assert_eq!(ok.attributes.len(), 10, "{:?}", ok.attributes);
        // The failed root request: no parent, no model, error status and type.
        assert_eq!(failed.name, "text_completion");
        assert!(failed.parent_span_id.is_empty());
        assert!(failed.trace_state.is_empty());
        assert_eq!(failed.flags, 0x100, "not sampled, no remote parent");
        let status = failed.status.as_ref().unwrap();
        assert_eq!(status.code, StatusCode::Error as i32);
        assert_eq!(status.message, "503");
        assert_eq!(
            attr(failed, g::ERROR_TYPE),
            Some(Any::StringValue("503".into()))
        );
        assert_eq!(
            attr(failed, g::PROVIDER_NAME),
            Some(Any::StringValue("ollama".into()))
        );
        assert_eq!(attr(failed, g::REQUEST_MODEL), None);
        assert_eq!(failed.attributes.len(), 5, "{:?}", failed.attributes);
        // An empty batch is a valid request with no spans.
        let empty = ExportTraceServiceRequest::decode(&enc.encode(&[])[..]).unwrap();
        assert!(empty.resource_spans[0].scope_spans[0].spans.is_empty());
    }
}
