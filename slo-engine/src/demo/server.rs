//! The simulated OpenAI-compatible servers the metering proxies front, and the demo's page
//! receiver, on one port.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::scenario::{ALL_NODES, GPU_NODE, MODEL};
use super::simulation::{SLOWDOWN, Sim};
use super::vllm::{Finished, Running};

/// The simulated server: time to first token, chunks of 4 tokens, the gap between chunks.
const TTFT: Duration = Duration::from_millis(250);
const CHUNKS: u64 = 12;
const TOKENS_PER_CHUNK: u64 = 4;
const CHUNK_GAP: Duration = Duration::from_millis(80);
/// The GPU node is faster: time to first token and the gap between chunks.
const GPU_TTFT: Duration = Duration::from_millis(120);
const GPU_CHUNK_GAP: Duration = Duration::from_millis(25);

/// The simulated OpenAI-compatible servers (`/node/N/v1/chat/completions`; the GPU node's is a
/// simulated vLLM with its `/node/N/metrics`) and the page sink.
pub(super) fn sim_router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/node/{n}/v1/chat/completions", post(chat))
        .route("/node/{n}/metrics", get(vllm_metrics))
        .route("/pages", post(page))
        .with_state(sim)
}

/// How a node answers: time to first token and the gap between chunks, both times `slow`.
#[derive(Clone, Copy)]
struct Pace {
    ttft: Duration,
    gap: Duration,
    slow: u32,
}

/// A chat completion from node `n`, streamed (server-sent events) or whole; now and then a 500.
async fn chat(State(sim): State<Arc<Sim>>, UrlPath(n): UrlPath<usize>, body: Bytes) -> Response {
    if !(1..=ALL_NODES).contains(&n) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = req["stream"].as_bool().unwrap_or(false);
    let usage_wanted = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let slow = if sim.slow.load(Ordering::Relaxed) == n {
        SLOWDOWN
    } else {
        1
    };
    let (ttft, gap) = if n == GPU_NODE {
        (GPU_TTFT, GPU_CHUNK_GAP)
    } else {
        (TTFT, CHUNK_GAP)
    };
    let pace = Pace { ttft, gap, slow };
    // Rare server errors, as any server has.
    if fastrand::u32(0..2000) == 0 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"error": {"message": "simulated server error", "type": "server_error"}}),
            ),
        )
            .into_response();
    }
    let prompt = 200 + fastrand::u64(0..200);
    let completion = CHUNKS * TOKENS_PER_CHUNK;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    // The GPU node's vLLM schedules at most MAX_NUM_SEQS requests; the rest wait.
    let gpu = if n == GPU_NODE {
        match sim.vllm.schedule().await {
            Some(running) => Some(GpuRequest {
                running,
                prompt,
                first: None,
            }),
            None => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
        }
    } else {
        None
    };
    if !stream {
        return whole(&sim, n, pace, usage, gpu).await;
    }
    streamed(sim, n, pace, usage_wanted, usage, gpu)
}

/// The simulated vLLM's `/metrics` (the GPU node only).
async fn vllm_metrics(State(sim): State<Arc<Sim>>, UrlPath(n): UrlPath<usize>) -> Response {
    if n != GPU_NODE {
        return StatusCode::NOT_FOUND.into_response();
    }
    (
        [("content-type", "text/plain; version=0.0.4")],
        sim.vllm.page(),
    )
        .into_response()
}

/// A request the GPU node's vLLM scheduled: its slot, and what its record needs.
struct GpuRequest {
    running: Running,
    prompt: u64,
    /// When its first generated token went out.
    first: Option<std::time::Instant>,
}

impl GpuRequest {
    /// Records the request as vLLM does when it finishes.
    fn finish(self, sim: &Sim, ttft: Option<Duration>) {
        let r = &self.running;
        let e2e = r.arrived.elapsed();
        sim.vllm.finished(Finished {
            queued: r.scheduled - r.arrived,
            ttft: ttft.or(self.first.map(|f| f - r.arrived)).unwrap_or(e2e),
            e2e,
            prompt: self.prompt,
            generated: CHUNKS * TOKENS_PER_CHUNK,
        });
    }
}

/// Up to 20 ms more, so requests do not move in lockstep.
fn jitter() -> Duration {
    Duration::from_millis(fastrand::u64(0..20))
}

/// A non-streamed completion, after the whole generation time.
async fn whole(sim: &Sim, n: usize, pace: Pace, usage: Value, gpu: Option<GpuRequest>) -> Response {
    let completion = CHUNKS * TOKENS_PER_CHUNK;
    let ttft = pace.ttft * pace.slow + jitter();
    tokio::time::sleep(ttft + pace.gap * CHUNKS as u32 * pace.slow).await;
    sim.tokens[n - 1].fetch_add(completion, Ordering::Relaxed);
    if let Some(g) = gpu {
        let queued = g.running.scheduled - g.running.arrived;
        g.finish(sim, Some(ttft + queued));
    }
    let text = "tok ".repeat(completion as usize);
    axum::Json(json!({
        "id": "sim-1", "object": "chat.completion", "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": usage,
    }))
    .into_response()
}

/// A streamed completion: the role, `CHUNKS` chunks of content, the usage when asked, `[DONE]`.
fn streamed(
    sim: Arc<Sim>,
    n: usize,
    pace: Pace,
    usage_wanted: bool,
    usage: Value,
    gpu: Option<GpuRequest>,
) -> Response {
    // The GPU request's slot is held until the stream ends or the client goes away.
    let steps = futures_util::stream::unfold((0u64, gpu), move |(step, mut gpu)| {
        let sim = sim.clone();
        let usage = usage.clone();
        async move {
            let out = stream_step(step, &sim, n, pace, usage_wanted, &usage).await;
            if let Some(g) = gpu.as_mut()
                && step == 1
            {
                g.first = Some(std::time::Instant::now());
            }
            let Some(out) = out else {
                if let Some(g) = gpu.take() {
                    g.finish(&sim, None);
                }
                return None;
            };
            Some((Ok::<_, std::convert::Infallible>(out), (step + 1, gpu)))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(steps))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The bytes of one step of a stream, None after the last: step 0 waits the time to first
/// token, then one chunk per gap.
async fn stream_step(
    step: u64,
    sim: &Sim,
    n: usize,
    pace: Pace,
    usage_wanted: bool,
    usage: &Value,
) -> Option<Bytes> {
    let chunk = |v: Value| Bytes::from(format!("data: {v}\n\n"));
    let out = if step == 0 {
        tokio::time::sleep(pace.ttft * pace.slow + jitter()).await;
        chunk(
            json!({"id": "sim-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
        )
    } else if step <= CHUNKS {
        if step > 1 {
            tokio::time::sleep(pace.gap * pace.slow).await;
        }
        sim.tokens[n - 1].fetch_add(TOKENS_PER_CHUNK, Ordering::Relaxed);
        chunk(
            json!({"id": "sim-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [{"index": 0, "delta": {"content": "tok tok tok tok "}}]}),
        )
    } else if step == CHUNKS + 1 {
        if usage_wanted {
            chunk(
                json!({"id": "sim-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [], "usage": usage}),
            )
        } else {
            Bytes::new()
        }
    } else if step == CHUNKS + 2 {
        Bytes::from_static(b"data: [DONE]\n\n")
    } else {
        return None;
    };
    Some(out)
}

/// The demo's receiver: an Alertmanager v4 webhook payload (a page or a ticket), printed and
/// appended to pages.log.
async fn page(State(sim): State<Arc<Sim>>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = v["status"].as_str().unwrap_or("?").to_uppercase();
    let cell = v["groupLabels"]["cell"]
        .as_str()
        .or_else(|| v["commonLabels"]["cell"].as_str())
        .unwrap_or("?");
    let alerts = v["alerts"].as_array().into_iter().flatten();
    let is_page = alerts.clone().any(|a| a["labels"]["severity"] == "page");
    let kind = if is_page { "PAGE" } else { "TICKET" };
    let mut text = format!(
        "\n===== {kind} ({status}) for cell {cell} at {} — SIMULATED incident =====\n",
        chrono::Utc::now().format("%H:%M:%S")
    );
    for a in v["alerts"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  [{}] {} {} {}: {}\n",
            a["status"].as_str().unwrap_or(""),
            a["labels"]["alertname"].as_str().unwrap_or(""),
            a["labels"]["slo"].as_str().unwrap_or(""),
            a["labels"]["severity"].as_str().unwrap_or(""),
            a["annotations"]["summary"].as_str().unwrap_or(""),
        ));
    }
    text.push_str(&format!(
        "  status page: {}\n",
        v["externalURL"].as_str().unwrap_or("")
    ));
    print!("{text}");
    let line = format!("{}\n", serde_json::to_string(&v).unwrap_or_default());
    use std::io::Write;
    let ok = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&sim.pages_log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = ok {
        eprintln!("demo: {}: {e}", sim.pages_log.display());
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    if is_page {
        sim.pages.fetch_add(1, Ordering::Relaxed);
    }
    StatusCode::OK
}
