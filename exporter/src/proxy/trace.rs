//! Per-request traces of the metering proxy (`--otlp.traces`): one span per metered request,
//! sent over OTLP (`--otlp.endpoint`, `--otlp.protocol`, `--otlp.header`) through the
//! `opentelemetry` SDK and the `opentelemetry-otlp` exporter.
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
//! is not set: the proxy does not parse the response's `model`.
//!
//! **Why `CLIENT`:** the span stands for the call to the model server (the upstream), which is
//! what the conventions' inference span is, and it carries that server's address. The proxy
//! does not add a separate `SERVER` span for the client's connection: one span per request.
//!
//! **Propagation (W3C Trace Context):** a client's `traceparent`/`tracestate` make the span its
//! child; without them the span starts a new trace. Either way the client's headers are
//! replaced, on the request sent upstream, by the proxy span's own context, so the upstream's
//! spans are children of the proxy's.
//!
//! **Sampling:** parent-based with a trace-id ratio at the root (`--otlp.traces.sample-ratio`):
//! a sampled client parent is followed, an unsampled one too. A head sampler cannot know how a
//! request ends, so every span is recorded ([`RecordEveryone`] turns the ratio's "drop" into
//! "record only") and [`TailKeep`] decides when it ends: exported when head-sampled, when it
//! failed (status `Error`) or when it took at least `--otlp.traces.slow`; discarded otherwise.
//! A request that is not head-sampled goes upstream with the sampled flag off
//! (`traceparent: 00-…-00`), so an upstream that follows its parent records nothing for it,
//! even when the proxy's span is exported later for being failed or slow.
//!
//! **Batching never blocks the proxy:** an ended span is pushed to a bounded queue
//! ([`QUEUE_SIZE`]) under a short lock, without waiting; when the queue is full the span is
//! dropped and counted. The proxy wakes the exporter thread only when a batch is full, not per
//! span. That thread (at nice 10, below the proxy's threads) sends batches of up to
//! [`BATCH_SIZE`], at least every [`EXPORT_DELAY`],
//! and logs the dropped count (a warning when it grows, at most every 10 s, and at shutdown).
//! Shutdown flushes what is queued.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use cellwatch_metrics::genai as g;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{
    Link, Span as _, SpanKind, Status, TraceContextExt, TraceId, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    Sampler, SamplingDecision, SamplingResult, SdkTracer, SdkTracerProvider, ShouldSample,
    SpanData, SpanExporter, SpanProcessor,
};

use super::Outcome;
use super::meter::{Api, Summary};

/// Most ended spans waiting for export; more are dropped (and counted).
pub const QUEUE_SIZE: usize = 8192;
/// Most spans in one export request.
pub const BATCH_SIZE: usize = 2048;
/// Longest a span waits in the queue before its batch is sent.
pub const EXPORT_DELAY: Duration = Duration::from_secs(1);

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

/// Parent-based trace-id-ratio sampling that never drops: what the ratio would drop is
/// recorded only (not sampled), so [`TailKeep`] can still export it if it fails or is slow.
#[derive(Debug, Clone)]
pub struct RecordEveryone(Sampler);

impl RecordEveryone {
    /// Parent-based, with `ratio` of root traces sampled.
    pub fn new(ratio: f64) -> Self {
        RecordEveryone(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
    }
}

impl ShouldSample for RecordEveryone {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let mut r =
            self.0
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links);
        if r.decision == SamplingDecision::Drop {
            r.decision = SamplingDecision::RecordOnly;
        }
        r
    }
}

enum Control {
    Flush(std::sync::mpsc::Sender<()>),
    Shutdown(std::sync::mpsc::Sender<()>),
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Control")
    }
}

/// What the proxy's threads and the exporter thread share, under one lock.
#[derive(Debug, Default)]
struct Pending {
    spans: Vec<SpanData>,
    control: Option<Control>,
    /// The processor is gone: export what is left and stop.
    closed: bool,
    /// The exporter thread has stopped.
    stopped: bool,
}

/// The bounded queue of ended spans. A proxy thread only takes the lock and pushes; it wakes
/// the exporter thread once per full batch, not per span (a wake-up per span cost a futex
/// syscall and a context switch on every request).
#[derive(Debug)]
struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
    capacity: usize,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Queue {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The span processor: keeps what [`keep`] keeps, queues it without blocking, and exports from
/// its own thread.
#[derive(Debug)]
pub struct TailKeep {
    slow: Duration,
    queue: Arc<Queue>,
    dropped: Arc<AtomicU64>,
}

impl TailKeep {
    /// A processor exporting to `exporter` from a new thread, with a queue of `capacity`.
    pub fn start<E: SpanExporter + 'static>(
        exporter: E,
        slow: Duration,
        capacity: usize,
    ) -> std::io::Result<TailKeep> {
        let queue = Arc::new(Queue::new(capacity));
        let dropped = Arc::new(AtomicU64::new(0));
        let (q, d) = (queue.clone(), dropped.clone());
        std::thread::Builder::new()
            .name("cellwatch-otlp-traces".into())
            .spawn(move || {
                lower_priority();
                export_loop(exporter, &q, &d);
                q.lock().stopped = true;
            })?;
        Ok(TailKeep {
            slow,
            queue,
            dropped,
        })
    }

    /// Offers a span to the queue; `false` when the queue was full (the span is dropped and
    /// counted) or the exporter has stopped.
    fn offer(&self, span: SpanData) -> bool {
        let mut p = self.queue.lock();
        if p.stopped || p.spans.len() >= self.queue.capacity {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        p.spans.push(span);
        let full = p.spans.len() == BATCH_SIZE;
        drop(p);
        if full {
            self.queue.ready.notify_one();
        }
        true
    }

    /// Spans dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn control(&self, make: fn(std::sync::mpsc::Sender<()>) -> Control, timeout: Duration) {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut p = self.queue.lock();
            if p.stopped {
                return;
            }
            p.control = Some(make(tx));
        }
        self.queue.ready.notify_one();
        let _ = rx.recv_timeout(timeout);
    }
}

impl Drop for TailKeep {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_one();
    }
}

impl SpanProcessor for TailKeep {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        let duration = span
            .end_time
            .duration_since(span.start_time)
            .unwrap_or_default();
        let failed = matches!(span.status, Status::Error { .. });
        if keep(span.span_context.is_sampled(), failed, duration, self.slow) {
            self.offer(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.control(Control::Flush, Duration::from_secs(10));
        Ok(())
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.control(Control::Shutdown, timeout);
        Ok(())
    }
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

/// Polls a future to completion on this (non-async) thread.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}

/// Waits until a batch is full, a control message or the close arrives, or `deadline`; then
/// takes what is queued (the lock is held only to swap the vector).
fn take(queue: &Queue, deadline: Instant) -> (Vec<SpanData>, Option<Control>, bool) {
    let mut p = queue.lock();
    loop {
        let now = Instant::now();
        if p.spans.len() >= BATCH_SIZE || p.control.is_some() || p.closed || now >= deadline {
            break;
        }
        p = match queue.ready.wait_timeout(p, deadline - now) {
            Ok((p, _)) => p,
            Err(e) => e.into_inner().0,
        };
    }
    // The next batch's room is allocated here, not by the proxy threads' pushes.
    let spans = std::mem::replace(&mut p.spans, Vec::with_capacity(BATCH_SIZE));
    (spans, p.control.take(), p.closed)
}

/// The exporter thread: batches of up to [`BATCH_SIZE`] from the queue, each span exported
/// within about [`EXPORT_DELAY`] of being queued.
fn export_loop<E: SpanExporter>(exporter: E, queue: &Queue, dropped: &AtomicU64) {
    let mut last_error = String::new();
    let mut logged = (0u64, Instant::now());
    let mut deadline = Instant::now() + EXPORT_DELAY;
    loop {
        let (mut spans, ctl, closed) = take(queue, deadline);
        if spans.len() < BATCH_SIZE {
            deadline = Instant::now() + EXPORT_DELAY;
        }
        while !spans.is_empty() {
            let rest = spans.split_off(spans.len().min(BATCH_SIZE));
            log_result(block_on(exporter.export(spans)), &mut last_error);
            spans = rest;
        }
        let n = dropped.load(Ordering::Relaxed);
        if n > logged.0 && logged.1.elapsed() >= Duration::from_secs(10) {
            tracing::warn!(
                dropped = n,
                queue = queue.capacity,
                "the span export queue was full: spans dropped since start (the proxy never waits for the export)"
            );
            logged = (n, Instant::now());
        }
        match ctl {
            Some(Control::Flush(ack)) => drop(ack.send(())),
            Some(Control::Shutdown(ack)) => {
                queue.lock().stopped = true;
                let _ = exporter.shutdown();
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

fn log_result(result: OTelSdkResult, last_error: &mut String) {
    match result {
        Ok(()) if !last_error.is_empty() => {
            tracing::info!("OTLP span export works again");
            last_error.clear();
        }
        Ok(()) => {}
        Err(e) => {
            let msg = e.to_string();
            if msg != *last_error {
                tracing::warn!(error = %msg, "OTLP span export failed; those spans are lost, the next batch tries again");
                *last_error = msg;
            }
        }
    }
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        // The SDK sets an empty `tracestate` on every root span: send none rather than "".
        if value.is_empty() {
            if let Ok(k) = HeaderName::from_bytes(key.as_bytes()) {
                self.0.remove(k);
            }
            return;
        }
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The tracer the proxy's threads share.
#[derive(Debug, Clone)]
pub struct ProxyTracer {
    tracer: SdkTracer,
    /// `server.address` (cloned per span without a copy) and `server.port`.
    server: (opentelemetry::StringValue, i64),
}

impl ProxyTracer {
    /// A tracer of `provider`, for a proxy in front of `server` (address, port).
    pub fn new(provider: &SdkTracerProvider, server: (String, u16)) -> Self {
        let scope = InstrumentationScope::builder("cellwatch-exporter")
            .with_version(env!("CARGO_PKG_VERSION"))
            .with_schema_url(g::SCHEMA_URL)
            .build();
        ProxyTracer {
            tracer: provider.tracer_with_scope(scope),
            server: (Arc::<str>::from(server.0).into(), i64::from(server.1)),
        }
    }

    /// Starts the span of a request that arrived at `started`, the child of the client's
    /// context in `headers` when there is one, and puts the span's context in `headers` (the
    /// client's `traceparent` and `tracestate` replaced) for the upstream.
    pub fn start(
        &self,
        headers: &mut HeaderMap,
        api: Api,
        model: Option<&str>,
        started: SystemTime,
    ) -> RequestSpan {
        let propagator = TraceContextPropagator::new();
        let parent = propagator.extract(&Headers(headers));
        let operation = super::genai::operation(api);
        // One copy of the model, shared by the attribute (the name is formatted from it).
        let model: Option<Arc<str>> = model.map(|m| m.chars().take(128).collect::<String>().into());
        let mut attributes = Vec::with_capacity(5);
        attributes.extend([
            KeyValue::new(g::OPERATION_NAME, operation),
            KeyValue::new(g::PROVIDER_NAME, super::genai::provider(api)),
            KeyValue::new(g::SERVER_ADDRESS, self.server.0.clone()),
            KeyValue::new(g::SERVER_PORT, self.server.1),
        ]);
        if let Some(m) = &model {
            attributes.push(KeyValue::new(
                g::REQUEST_MODEL,
                opentelemetry::StringValue::from(m.clone()),
            ));
        }
        let span = self
            .tracer
            .span_builder(span_name(operation, model.as_deref()))
            .with_kind(SpanKind::Client)
            .with_start_time(started)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        headers.remove("traceparent");
        headers.remove("tracestate");
        let cx = Context::new().with_remote_span_context(span.span_context().clone());
        propagator.inject_context(&cx, &mut HeadersMut(headers));
        RequestSpan {
            span,
            operation,
            named: model.is_some(),
        }
    }
}

fn span_name(operation: &'static str, model: Option<&str>) -> String {
    match model {
        Some(m) => format!("{operation} {m}"),
        None => operation.to_string(),
    }
}

/// The span of one metered request, ended once by [`RequestSpan::end`] (or as cancelled when
/// dropped: the SDK ends a dropped span).
#[derive(Debug)]
pub struct RequestSpan {
    span: opentelemetry_sdk::trace::Span,
    operation: &'static str,
    named: bool,
}

impl RequestSpan {
    /// The model, found in the request body after the span started.
    pub fn set_model(&mut self, model: &str) {
        if self.named {
            return;
        }
        let model: String = model.chars().take(128).collect();
        self.span
            .update_name(span_name(self.operation, Some(&model)));
        self.span
            .set_attribute(KeyValue::new(g::REQUEST_MODEL, model));
        self.named = true;
    }

    /// Ends the span with the request's outcome, the upstream's status and what the meter
    /// found; `tpot` is the time per output token when measured (the hook for the meter's
    /// TPOT).
    pub fn end(
        mut self,
        outcome: Outcome,
        status: Option<u16>,
        summary: &Summary,
        tpot: Option<Duration>,
    ) {
        let mut attrs = Vec::with_capacity(6);
        if let Some(n) = summary.prompt_tokens {
            attrs.push(KeyValue::new(g::USAGE_INPUT_TOKENS, clamp(n)));
        }
        if let Some(n) = summary.generated_tokens {
            attrs.push(KeyValue::new(g::USAGE_OUTPUT_TOKENS, clamp(n)));
        }
        if let Some(r) = summary.finish_reason {
            attrs.push(KeyValue::new(
                g::RESPONSE_FINISH_REASONS,
                opentelemetry::Value::Array(opentelemetry::Array::String(vec![
                    r.as_str().to_string().into(),
                ])),
            ));
        }
        if let Some(t) = summary.ttft {
            attrs.push(KeyValue::new(
                g::RESPONSE_TIME_TO_FIRST_CHUNK,
                t.as_secs_f64(),
            ));
        }
        if let Some(t) = tpot {
            attrs.push(KeyValue::new(
                g::CELLWATCH_TIME_PER_OUTPUT_TOKEN,
                t.as_secs_f64(),
            ));
        }
        if let Some(e) = super::genai::error_type(outcome, status) {
            self.span.set_status(Status::error(e.clone()));
            attrs.push(KeyValue::new(g::ERROR_TYPE, e));
        }
        self.span.set_attributes(attrs);
        self.span.end();
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(super::clamp_tokens(n).0).unwrap_or(i64::MAX)
}

/// The running trace pipeline: the provider whose tracer the proxy uses.
#[derive(Debug)]
pub struct Tracing {
    provider: SdkTracerProvider,
}

impl Tracing {
    /// Builds the OTLP span exporter and the pipeline. Call it within the tokio runtime but
    /// outside async code (`Runtime::enter`): the gRPC channel is bound to the runtime, and the
    /// HTTP exporter's blocking client must not be built on an async task.
    pub fn start(
        settings: &TraceSettings,
        resource: &[(String, String)],
    ) -> Result<Tracing, crate::otlp::PushError> {
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig, WithTonicConfig};
        let bad = |message: String| crate::otlp::PushError::Config {
            endpoint: crate::tls::without_credentials(&settings.endpoint),
            message,
        };
        let mut exporter = match settings.protocol {
            crate::otlp::Protocol::HttpProtobuf => {
                let url = crate::otlp::http_url_for(&settings.endpoint, "/v1/traces")?;
                opentelemetry_otlp::SpanExporter::builder()
                    .with_http()
                    .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                    .with_endpoint(url.to_string())
                    .with_timeout(settings.timeout)
                    .with_headers(settings.headers.iter().cloned().collect())
                    .build()
            }
            crate::otlp::Protocol::Grpc => {
                let mut metadata = tonic::metadata::MetadataMap::new();
                for (k, v) in &settings.headers {
                    let key =
                        tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
                            .map_err(|_| bad(format!("header name {k:?} is not valid")))?;
                    let value = v
                        .parse()
                        .map_err(|_| bad(format!("the value of header {k} is not valid")))?;
                    metadata.insert(key, value);
                }
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .with_endpoint(settings.endpoint.clone())
                    .with_timeout(settings.timeout)
                    .with_metadata(metadata)
                    .build()
            }
        }
        .map_err(|e| bad(e.to_string()))?;
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_attributes(
                resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            )
            .build();
        exporter.set_resource(&resource);
        let processor = TailKeep::start(exporter, settings.slow, QUEUE_SIZE)
            .map_err(|e| bad(format!("cannot start the export thread: {e}")))?;
        let provider = SdkTracerProvider::builder()
            .with_sampler(RecordEveryone::new(settings.sample_ratio))
            .with_span_processor(processor)
            .with_resource(resource)
            .build();
        Ok(Tracing { provider })
    }

    /// The tracer for a proxy in front of `server`.
    pub fn tracer(&self, server: (String, u16)) -> ProxyTracer {
        ProxyTracer::new(&self.provider, server)
    }

    /// Exports what is queued and stops (blocks: call it off the async threads).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceState};

    fn span(sampled: bool, status: Status, took: Duration) -> SpanData {
        // Virtual time: the span's own timestamps, no clock read.
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(7u128),
                SpanId::from(9u64),
                flags,
                false,
                TraceState::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: "chat m".into(),
            start_time: start,
            end_time: start + took,
            attributes: vec![],
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status,
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn sampled_failed_and_slow_spans_are_kept_the_rest_discarded() {
        let slow = Duration::from_secs(10);
        assert!(keep(true, false, Duration::ZERO, slow));
        assert!(keep(false, true, Duration::ZERO, slow));
        assert!(keep(false, false, slow, slow));
        assert!(!keep(false, false, slow - Duration::from_millis(1), slow));
        // The processor over a queue whose exporter never runs: decisions and the drop count.
        let p = TailKeep {
            slow,
            queue: Arc::new(Queue::new(2)),
            dropped: Arc::default(),
        };
        p.on_end(span(false, Status::Unset, Duration::from_secs(1)));
        assert!(
            p.queue.lock().spans.is_empty(),
            "fast, unsampled, fine: discarded"
        );
        p.on_end(span(false, Status::error("500"), Duration::from_millis(3)));
        p.on_end(span(false, Status::Unset, Duration::from_secs(11)));
        p.on_end(span(true, Status::Unset, Duration::from_millis(1)));
        assert_eq!(p.queue.lock().spans.len(), 2);
        assert_eq!(p.dropped(), 1, "the third kept span found the queue full");
    }

    #[derive(Debug, Clone, Default)]
    struct Batches(Arc<Mutex<Vec<usize>>>);

    impl SpanExporter for Batches {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    #[test]
    fn full_batches_go_at_once_flush_sends_the_rest_and_shutdown_stops_the_queue() {
        let batches = Batches::default();
        let p = TailKeep::start(batches.clone(), Duration::from_secs(10), BATCH_SIZE * 2).unwrap();
        for _ in 0..BATCH_SIZE + 3 {
            p.on_end(span(true, Status::Unset, Duration::from_millis(1)));
        }
        // The full batch wakes the exporter thread, long before EXPORT_DELAY.
        let start = Instant::now();
        while batches.0.lock().unwrap().is_empty() && start.elapsed() < EXPORT_DELAY / 2 {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(batches.0.lock().unwrap().first(), Some(&BATCH_SIZE));
        p.force_flush().unwrap();
        assert_eq!(*batches.0.lock().unwrap(), vec![BATCH_SIZE, 3]);
        p.shutdown_with_timeout(Duration::from_secs(5)).unwrap();
        p.on_end(span(true, Status::Unset, Duration::from_millis(1)));
        assert_eq!(
            p.dropped(),
            1,
            "after shutdown a span is dropped, not queued"
        );
        assert_eq!(batches.0.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_sampler_records_what_the_ratio_drops_and_follows_the_parent() {
        let decide = |ratio: f64, parent: Option<bool>| {
            let cx = parent.map(|sampled| {
                Context::new().with_remote_span_context(SpanContext::new(
                    TraceId::from(1u128),
                    SpanId::from(2u64),
                    if sampled {
                        TraceFlags::SAMPLED
                    } else {
                        TraceFlags::default()
                    },
                    true,
                    TraceState::default(),
                ))
            });
            RecordEveryone::new(ratio)
                .should_sample(
                    cx.as_ref(),
                    TraceId::from(u128::MAX / 3),
                    "chat m",
                    &SpanKind::Client,
                    &[],
                    &[],
                )
                .decision
        };
        assert_eq!(decide(0.0, None), SamplingDecision::RecordOnly);
        assert_eq!(decide(1.0, None), SamplingDecision::RecordAndSample);
        assert_eq!(decide(0.0, Some(true)), SamplingDecision::RecordAndSample);
        assert_eq!(decide(1.0, Some(false)), SamplingDecision::RecordOnly);
    }

    #[test]
    fn a_client_traceparent_is_the_parent_and_is_replaced_upstream() {
        #[derive(Debug)]
        struct Nothing;
        impl SpanProcessor for Nothing {
            fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}
            fn on_end(&self, _: SpanData) {}
            fn force_flush(&self) -> OTelSdkResult {
                Ok(())
            }
            fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
                Ok(())
            }
        }
        let provider = SdkTracerProvider::builder()
            .with_sampler(RecordEveryone::new(0.0))
            .with_span_processor(Nothing)
            .build();
        let t = ProxyTracer::new(&provider, ("127.0.0.1".into(), 8000));
        let mut h = HeaderMap::new();
        h.insert(
            "traceparent",
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        let mut s = t.start(&mut h, Api::ChatCompletions, None, SystemTime::now());
        s.set_model("llama");
        let sent = h["traceparent"].to_str().unwrap().to_string();
        let parts: Vec<&str> = sent.split('-').collect();
        assert_eq!(parts[1], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(
            parts[2], "00f067aa0ba902b7",
            "the proxy span is the upstream's parent"
        );
        assert_eq!(parts[3], "01", "the sampled parent is followed");
        assert_eq!(s.span.span_context().span_id().to_string(), parts[2]);
        s.end(Outcome::Ok, Some(200), &Summary::default(), None);
        // Without a traceparent: a new trace, not sampled at ratio 0.
        let mut h = HeaderMap::new();
        let s = t.start(&mut h, Api::Messages, Some("m"), SystemTime::now());
        let sent = h["traceparent"].to_str().unwrap().to_string();
        assert!(sent.ends_with("-00"), "{sent}");
        assert_eq!(
            sent.split('-').nth(1).unwrap(),
            s.span.span_context().trace_id().to_string()
        );
    }
}
