//! A real, in-test OpenAI-compatible upstream (and a `/metrics` server for the adapters), for the
//! metering proxy's end-to-end tests and benchmarks. Deterministic: the same request always gets
//! the same bytes.
//!
//! The request steers it: the first message's content `tokens:N` asks for N generated tokens
//! (default 5); the `x-test` header asks for `slow-first-token:MS` (before the first content
//! chunk), `token-gap:MS` (before every later chunk), `usage:N` (N completion tokens reported in
//! `usage`) or `error`, several at once comma-separated (`slow-first-token:100,token-gap:20`).

use axum::serve::ListenerExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the upstream did, for assertions.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests to generation routes.
    pub requests: AtomicU64,
    /// Sum of `usage.completion_tokens` (or `eval_count`) of every response sent.
    pub completion_tokens: AtomicU64,
    /// Sum of prompt tokens of every response sent.
    pub prompt_tokens: AtomicU64,
    /// Streams whose receiver went away before the end.
    pub cancelled: AtomicU64,
    /// The `traceparent` header of each request to a generation route, in arrival order
    /// (empty when absent); the first 10,000 only, so that a benchmark's upstream stays small.
    pub traceparents: Mutex<Vec<String>>,
}

fn traceparent(counters: &Counters, headers: &HeaderMap) {
    let t = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut all = counters.traceparents.lock().unwrap();
    if all.len() < 10_000 {
        all.push(t.to_string());
    }
}

/// The running upstream.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// What it did.
    pub counters: Arc<Counters>,
    pages: Arc<Mutex<HashMap<String, String>>>,
}

#[derive(Clone)]
struct AppState {
    counters: Arc<Counters>,
    pages: Arc<Mutex<HashMap<String, String>>>,
}

/// Prompt tokens of every request.
pub const PROMPT_TOKENS: u64 = 10;

impl Upstream {
    /// Starts on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let counters = Arc::new(Counters::default());
        let pages = Arc::new(Mutex::new(HashMap::new()));
        let app = router(AppState {
            counters: counters.clone(),
            pages: pages.clone(),
        });
        tokio::spawn(async move {
            let _ = axum::serve(
                listener.tap_io(|tcp| {
                    let _ = tcp.set_nodelay(true);
                }),
                app,
            )
            .await;
        });
        Upstream {
            base,
            counters,
            pages,
        }
    }

    /// Serves `text` at `/metrics/NAME`.
    pub fn set_page(&self, name: &str, text: &str) {
        self.pages
            .lock()
            .unwrap()
            .insert(name.to_string(), text.to_string());
    }
}

/// The routes (usable on their own, e.g. by a benchmark binary).
fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(chat))
        .route("/api/chat", post(ollama))
        .route(
            "/v1/models",
            get(|| async {
                axum::Json(
                    json!({"object": "list", "data": [{"id": "test-model", "object": "model"}]}),
                )
            }),
        )
        .route("/metrics/{name}", get(page))
        .with_state(state)
}

/// Starts the upstream on `addr` and serves forever (for benchmarks).
pub async fn serve_forever(addr: &str) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let app = router(AppState {
        counters: Arc::new(Counters::default()),
        pages: Arc::new(Mutex::new(HashMap::new())),
    });
    axum::serve(
        listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        app,
    )
    .await
}

async fn page(State(s): State<AppState>, Path(name): Path<String>) -> Response {
    match s.pages.lock().unwrap().get(&name) {
        Some(p) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            p.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

struct Ask {
    model: String,
    tokens: u64,
    stream: bool,
    include_usage: bool,
    slow_first: Duration,
    gap: Duration,
    error: bool,
    /// `x-test: usage:N`: report N completion tokens in `usage`, whatever was generated.
    usage: Option<u64>,
}

fn ask(headers: &HeaderMap, body: &Value, stream_default: bool) -> Ask {
    let content = body
        .get("messages")
        .and_then(|m| m.get(0))
        .and_then(|m| m.get("content"))
        .or_else(|| body.get("prompt"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let tokens = content
        .strip_prefix("tokens:")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(5);
    let x = headers
        .get("x-test")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let directives = || x.split(',').map(str::trim);
    // The value of the first `NAME:VALUE` directive named `prefix` (`NAME:`) that parses.
    fn arg<T: std::str::FromStr>(d: &str, prefix: &str) -> Option<T> {
        d.strip_prefix(prefix).and_then(|n| n.trim().parse().ok())
    }
    let ms = |prefix: &str| {
        directives()
            .find_map(|d| arg::<u64>(d, prefix))
            .map(Duration::from_millis)
            .unwrap_or_default()
    };
    Ask {
        model: body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        tokens,
        stream: body
            .get("stream")
            .and_then(Value::as_bool)
            .unwrap_or(stream_default),
        include_usage: body
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        slow_first: ms("slow-first-token:"),
        gap: ms("token-gap:"),
        error: directives().any(|d| d == "error"),
        usage: directives().find_map(|d| arg(d, "usage:")),
    }
}

fn streamed(
    counters: Arc<Counters>,
    content_type: &'static str,
    a: &Ask,
    chunks: Vec<String>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let (slow_first, gap) = (a.slow_first, a.gap);
    tokio::spawn(async move {
        for (i, c) in chunks.into_iter().enumerate() {
            let wait = if i == 1 { slow_first } else { gap };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            if tx.send(Ok(Bytes::from(c))).await.is_err() {
                counters.cancelled.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn chat(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let a = ask(&headers, &body, false);
    traceparent(&s.counters, &headers);
    s.counters.requests.fetch_add(1, Ordering::Relaxed);
    if a.error {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error": {"message": "boom", "type": "server_error"}})),
        )
            .into_response();
    }
    s.counters
        .completion_tokens
        .fetch_add(a.tokens, Ordering::Relaxed);
    s.counters
        .prompt_tokens
        .fetch_add(PROMPT_TOKENS, Ordering::Relaxed);
    let chat = uri.path().ends_with("/chat/completions");
    let reported = a.usage.unwrap_or(a.tokens);
    let usage = json!({"prompt_tokens": PROMPT_TOKENS, "completion_tokens": reported, "total_tokens": PROMPT_TOKENS.saturating_add(reported)});
    if !a.stream {
        let text: String = (0..a.tokens).map(|i| format!("t{i} ")).collect();
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"})
        } else {
            json!({"index": 0, "text": text, "finish_reason": "stop"})
        };
        return axum::Json(json!({"id": "cmpl-1", "object": "chat.completion", "model": a.model, "choices": [choice], "usage": usage}))
            .into_response();
    }
    let mut chunks = vec![format!(
        "data: {}\n\n",
        json!({"id": "cmpl-1", "model": a.model, "choices": [{"index": 0, "delta": {"role": "assistant"}}]})
    )];
    for i in 0..a.tokens {
        let choice = if chat {
            json!({"index": 0, "delta": {"content": format!("t{i} ")}})
        } else {
            json!({"index": 0, "text": format!("t{i} ")})
        };
        chunks.push(format!(
            "data: {}\n\n",
            json!({"id": "cmpl-1", "model": a.model, "choices": [choice]})
        ));
    }
    if a.include_usage {
        chunks.push(format!(
            "data: {}\n\n",
            json!({"id": "cmpl-1", "model": a.model, "choices": [], "usage": usage})
        ));
    }
    chunks.push("data: [DONE]\n\n".to_string());
    streamed(s.counters.clone(), "text/event-stream", &a, chunks)
}

async fn ollama(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let a = ask(&headers, &body, true);
    traceparent(&s.counters, &headers);
    s.counters.requests.fetch_add(1, Ordering::Relaxed);
    s.counters
        .completion_tokens
        .fetch_add(a.tokens, Ordering::Relaxed);
    s.counters
        .prompt_tokens
        .fetch_add(PROMPT_TOKENS, Ordering::Relaxed);
    let done = json!({"model": a.model, "message": {"role": "assistant", "content": ""}, "done": true,
                      "prompt_eval_count": PROMPT_TOKENS, "eval_count": a.tokens});
    if !a.stream {
        let text: String = (0..a.tokens).map(|i| format!("t{i} ")).collect();
        let mut d = done.clone();
        d["message"]["content"] = json!(text);
        return axum::Json(d).into_response();
    }
    let mut chunks = vec![format!(
        "{}\n",
        json!({"model": a.model, "message": {"role": "assistant", "content": ""}, "done": false})
    )];
    for i in 0..a.tokens {
        chunks.push(format!("{}\n", json!({"model": a.model, "message": {"role": "assistant", "content": format!("t{i} ")}, "done": false})));
    }
    chunks.push(format!("{done}\n"));
    streamed(s.counters.clone(), "application/x-ndjson", &a, chunks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(x: &str) -> Ask {
        let mut h = HeaderMap::new();
        h.insert("x-test", x.parse().unwrap());
        ask(&h, &json!({"messages": [{"content": "tokens:3"}]}), false)
    }

    #[test]
    fn directives_combine_and_each_still_works_alone() {
        let a = asked("slow-first-token:100, token-gap:20,usage:7");
        assert_eq!(
            (a.slow_first, a.gap, a.usage, a.error, a.tokens),
            (
                Duration::from_millis(100),
                Duration::from_millis(20),
                Some(7),
                false,
                3
            )
        );
        assert_eq!(asked("token-gap:20").gap, Duration::from_millis(20));
        assert_eq!(asked("token-gap:20").slow_first, Duration::ZERO);
        assert_eq!(
            asked("slow-first-token:300").slow_first,
            Duration::from_millis(300)
        );
        assert!(asked("error").error);
        assert!(asked("token-gap:5,error").error);
        assert!(!asked("errors").error);
        assert_eq!(asked("usage:18446744073709551615").usage, Some(u64::MAX));
    }
}
