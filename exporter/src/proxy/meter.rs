//! Metering of one response as its bytes pass through: time to the first chunk that carries
//! generated content, and token counts. Pure: bytes and elapsed times in, a [`Summary`] out.
//!
//! Formats: Server-Sent Events (OpenAI chat/completions/responses, Anthropic messages),
//! newline-delimited JSON (Ollama `/api/chat`, `/api/generate`), and plain JSON (any
//! non-streaming response). Token counts come from `usage` (`prompt_tokens`/`completion_tokens`
//! or `input_tokens`/`output_tokens`) or Ollama's `prompt_eval_count`/`eval_count`. A stream that
//! carries no usage counts one generated token per content chunk (what vLLM, llama.cpp, mlx-lm
//! and EXO send) and no prompt tokens.
//!
//! Time per output token (TPOT, inter-token latency) of a streamed response (SSE or NDJSON) is
//! the time from the first to the last chunk carrying generated content over the tokens that
//! came after the first chunk, and only when it generated at least two tokens in at least two
//! content chunks; a non-streaming JSON response has none (its tokens all arrive at once), and
//! neither has a stream whose content all came in one chunk (no cadence to see). A chunk's
//! arrival is that of the body bytes that complete its line. The meter sees chunks, not tokens:
//! every token of a chunk counts as arrived when the chunk arrives. With `usage` giving `n`
//! tokens over `k` content chunks, the chunks are taken to carry `n / k` tokens each, so the
//! tokens after the first chunk are `n − n / k` and TPOT = (last − first) × k / (n × (k − 1)),
//! exact for evenly filled chunks (a server sending 4 tokens per chunk gets the same TPOT as one
//! sending 1). Without usage each content chunk is one token, and the TPOT is the mean gap
//! between content chunks.

use std::time::Duration;

use serde_json::Value;

mod whole;

/// The API a metered route speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/chat/completions`.
    ChatCompletions,
    /// `/v1/completions`.
    Completions,
    /// `/v1/responses`.
    Responses,
    /// `/v1/messages` (Anthropic).
    Messages,
    /// Ollama `/api/chat`.
    OllamaChat,
    /// Ollama `/api/generate`.
    OllamaGenerate,
}

impl Api {
    /// The metered API of a request path (query excluded); `None` for every other path.
    /// Ollama paths match with any prefix (EXO serves them under `/ollama`).
    pub fn from_path(path: &str) -> Option<Api> {
        Some(match path.trim_end_matches('/') {
            "/v1/chat/completions" => Api::ChatCompletions,
            "/v1/completions" => Api::Completions,
            "/v1/responses" => Api::Responses,
            "/v1/messages" => Api::Messages,
            p if p.ends_with("/api/chat") => Api::OllamaChat,
            p if p.ends_with("/api/generate") => Api::OllamaGenerate,
            _ => return None,
        })
    }
}

/// What a request body says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// `model`, when present.
    pub model: Option<String>,
}

/// Reads the model from a request body (JSON); anything else gives no model (see
/// [`ModelScan`]).
pub fn request_info(body: &[u8]) -> RequestInfo {
    let mut scan = ModelScan::default();
    scan.feed(body);
    RequestInfo {
        model: scan.finish(),
    }
}

/// Longest `model` value kept (labels keep 128 characters).
const MODEL_MAX: usize = 1024;

/// Finds the top-level `"model"` string of a JSON object as the body's bytes pass, in pieces
/// of any size, keeping none of them but the value: the body streams on while it is scanned,
/// and the scan stops at the value. Anything that is not an object, or a `model` that is not a
/// non-empty string, gives no model. Pure.
#[derive(Debug, Default)]
pub struct ModelScan {
    /// Nesting depth; 0 before the opening brace.
    depth: u32,
    in_string: bool,
    escape: bool,
    /// At depth 1: the next string is a key (after `{` or `,`), else a value (after `:`).
    want_key: bool,
    /// The top-level key being read (only its first bytes, raw: it is compared with `model`).
    key: [u8; 6],
    key_len: u8,
    key_is_model: bool,
    /// The raw bytes of the `model` value being read.
    value: Option<Vec<u8>>,
    /// Decided: `Some(model)` or `None`.
    result: Option<Option<String>>,
}

impl ModelScan {
    /// Whether the model is decided (found, or known to be missing).
    pub fn done(&self) -> bool {
        self.result.is_some()
    }

    /// The model, once found.
    pub fn model(&self) -> Option<&str> {
        self.result.as_ref().and_then(|m| m.as_deref())
    }

    /// The model at the end of the body.
    pub fn finish(self) -> Option<String> {
        self.result.flatten()
    }

    fn decide(&mut self, model: Option<String>) {
        self.result = Some(model.filter(|m| !m.is_empty()));
        self.key_len = 0;
        self.value = None;
    }

    /// Keeps raw bytes of a string: of the `model` value (up to [`MODEL_MAX`]), or of a
    /// top-level key (its first six).
    fn keep(&mut self, raw: &[u8]) {
        if let Some(v) = self.value.as_mut() {
            let room = MODEL_MAX.saturating_sub(v.len());
            v.extend_from_slice(&raw[..raw.len().min(room)]);
        } else if self.depth == 1 && self.want_key {
            let at = usize::from(self.key_len);
            let n = raw.len().min(self.key.len() - at);
            self.key[at..at + n].copy_from_slice(&raw[..n]);
            self.key_len += n as u8;
        }
    }

    /// The `model` value's raw bytes, unescaped (as JSON would): as they are when they hold no
    /// escape or control character.
    fn decode(raw: Vec<u8>) -> Option<String> {
        if !raw.iter().any(|&b| b == b'\\' || b < 0x20) {
            return String::from_utf8(raw).ok();
        }
        let mut quoted = Vec::with_capacity(raw.len() + 2);
        quoted.push(b'"');
        quoted.extend_from_slice(&raw);
        quoted.push(b'"');
        serde_json::from_slice::<String>(&quoted).ok()
    }

    /// Scans the next bytes of the body.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut i = 0;
        while i < bytes.len() {
            if self.result.is_some() {
                return;
            }
            if self.in_string {
                if self.escape {
                    self.escape = false;
                    self.keep(&bytes[i..=i]);
                    i += 1;
                    continue;
                }
                // The run up to the next quote or backslash, at once.
                let run = bytes[i..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .unwrap_or(bytes.len() - i);
                self.keep(&bytes[i..i + run]);
                i += run;
                let Some(&b) = bytes.get(i) else {
                    return;
                };
                i += 1;
                if b == b'\\' {
                    self.escape = true;
                    self.keep(b"\\");
                    continue;
                }
                self.in_string = false;
                if let Some(raw) = self.value.take() {
                    self.decide(Self::decode(raw));
                } else if self.depth == 1 && self.want_key {
                    self.key_is_model = &self.key[..usize::from(self.key_len)] == b"model";
                    self.want_key = false;
                }
                continue;
            }
            let b = bytes[i];
            i += 1;
            match b {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'{' if self.depth == 0 => {
                    self.depth = 1;
                    self.want_key = true;
                }
                _ if self.depth == 0 => self.decide(None),
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.want_key {
                        self.key_len = 0;
                        self.key_is_model = false;
                    } else if self.depth == 1 && self.key_is_model {
                        self.value = Some(Vec::new());
                    }
                }
                b':' if self.depth == 1 => {}
                b',' if self.depth == 1 => {
                    self.want_key = true;
                    self.key_is_model = false;
                }
                b'{' | b'[' => {
                    if self.depth == 1 && self.key_is_model {
                        return self.decide(None);
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    self.depth -= 1;
                    if self.depth == 0 {
                        return self.decide(None);
                    }
                }
                // A number, true, false or null as the model's value.
                _ if self.depth == 1 && self.key_is_model => return self.decide(None),
                _ => {}
            }
        }
    }
}

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/event-stream`.
    Sse,
    /// Newline-delimited JSON.
    Ndjson,
    /// One JSON document.
    Json,
}

impl Format {
    /// From the response's content type.
    pub fn from_content_type(content_type: &str) -> Format {
        let ct = content_type.as_bytes();
        // The usual case first.
        if ct.eq_ignore_ascii_case(b"application/json") {
            return Format::Json;
        }
        let has = |part: &[u8]| ct.windows(part.len()).any(|w| w.eq_ignore_ascii_case(part));
        let sse = b"text/event-stream";
        if ct
            .get(..sse.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(sse))
        {
            Format::Sse
        } else if has(b"ndjson") || has(b"jsonl") || has(b"json-seq") {
            Format::Ndjson
        } else {
            Format::Json
        }
    }
}

/// Why the model stopped, as the response says (`stop`, `length`, `end_turn`, `completed`…):
/// its first 31 bytes, kept inline so that a [`Summary`] stays `Copy`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FinishReason {
    bytes: [u8; 31],
    len: u8,
}

impl FinishReason {
    /// The reason, cut at 31 bytes (at a character boundary); `None` when empty.
    pub fn new(reason: &str) -> Option<FinishReason> {
        let mut end = reason.len().min(31);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0u8; 31];
        bytes[..end].copy_from_slice(&reason.as_bytes()[..end]);
        (end > 0).then_some(FinishReason {
            bytes,
            len: end as u8,
        })
    }

    /// The reason.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Debug for FinishReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// The result for one response.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    /// Time to the first chunk with generated content.
    pub ttft: Option<Duration>,
    /// Prompt tokens, when known.
    pub prompt_tokens: Option<u64>,
    /// Generated tokens, when known (from usage, else content chunks of a stream).
    pub generated_tokens: Option<u64>,
    /// Time per output token after the first, for a streamed response with at least two
    /// generated tokens (see the module documentation).
    pub tpot: Option<Duration>,
    /// Why generation stopped, when the response says (the last reason seen).
    pub finish_reason: Option<FinishReason>,
}

/// The parts of one streamed chunk (an SSE `data:` line or an NDJSON line) the meter reads, for
/// every metered API; everything else is skipped without being built. Fields whose type differs
/// between APIs stay generic.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct Chunk {
    choices: Vec<ChunkChoice>,
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Responses: a string; Messages: an object.
    delta: Option<Value>,
    usage: Option<Usage>,
    /// Responses: an object with `usage`; Ollama generate: the generated text.
    response: Option<Value>,
    /// Messages (message_start): an object with `usage`; Ollama chat: `content`, `thinking`.
    message: Option<Value>,
    thinking: Option<Value>,
    prompt_eval_count: Option<u64>,
    eval_count: Option<u64>,
    /// Ollama's final object.
    done_reason: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ChunkChoice {
    delta: Option<ChunkDelta>,
    text: Option<Value>,
    message: Option<Value>,
    finish_reason: Option<String>,
}

/// The finish reason a chunk or a whole response carries, per API: chat/completions
/// `choices[].finish_reason` (the last non-null one), Responses `status` (`completed`,
/// `incomplete`, `failed`: of `response` when streamed), Anthropic `stop_reason` (in
/// `message_delta`'s `delta` when streamed), Ollama `done_reason`.
fn finish_reason_of(
    api: Api,
    choices: &mut dyn Iterator<Item = Option<&str>>,
    status: Option<&Value>,
    stop_reason: Option<&Value>,
    done_reason: Option<&str>,
) -> Option<FinishReason> {
    match api {
        Api::ChatCompletions | Api::Completions => choices.flatten().last(),
        Api::Responses => status.and_then(Value::as_str),
        Api::Messages => stop_reason.and_then(Value::as_str),
        Api::OllamaChat | Api::OllamaGenerate => done_reason,
    }
    .and_then(FinishReason::new)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct ChunkDelta {
    content: Option<Value>,
    reasoning_content: Option<Value>,
    reasoning: Option<Value>,
    tool_calls: Option<Value>,
}

impl Chunk {
    fn finish_reason(&self, api: Api) -> Option<FinishReason> {
        finish_reason_of(
            api,
            &mut self.choices.iter().map(|c| c.finish_reason.as_deref()),
            self.response.as_ref().and_then(|r| r.get("status")),
            self.delta.as_ref().and_then(|d| d.get("stop_reason")),
            self.done_reason.as_deref(),
        )
    }

    fn has_content(&self, api: Api) -> bool {
        match api {
            Api::ChatCompletions => self.choices.iter().any(|c| {
                c.delta.as_ref().is_some_and(|d| {
                    [
                        &d.content,
                        &d.reasoning_content,
                        &d.reasoning,
                        &d.tool_calls,
                    ]
                    .iter()
                    .any(|v| non_empty(v.as_ref()))
                }) || non_empty(c.message.as_ref())
            }),
            Api::Completions => self.choices.iter().any(|c| non_empty(c.text.as_ref())),
            Api::Responses => {
                self.kind.as_deref().is_some_and(|t| t.ends_with(".delta"))
                    && non_empty(self.delta.as_ref())
            }
            Api::Messages => {
                self.kind.as_deref() == Some("content_block_delta")
                    && self.delta.as_ref().is_some_and(|d| {
                        ["text", "thinking", "partial_json"]
                            .iter()
                            .any(|k| non_empty(d.get(*k)))
                    })
            }
            Api::OllamaChat => self
                .message
                .as_ref()
                .is_some_and(|m| non_empty(m.get("content")) || non_empty(m.get("thinking"))),
            Api::OllamaGenerate => {
                non_empty(self.response.as_ref()) || non_empty(self.thinking.as_ref())
            }
        }
    }

    fn usage(&self, m: &mut Meter) {
        // Ollama: counts on the final object.
        m.prompt = self.prompt_eval_count.or(m.prompt);
        m.generated = self.eval_count.or(m.generated);
        // OpenAI `usage`, Anthropic message_delta `usage` (cumulative).
        if let Some(u) = &self.usage {
            m.prompt = u.prompt_tokens.or(m.prompt);
            m.generated = u.completion_tokens.or(m.generated);
        }
        // Responses `response.usage`; Anthropic message_start `message.usage`.
        for v in [&self.response, &self.message].into_iter().flatten() {
            if let Some(u) = v.get("usage") {
                if let Some(p) =
                    count(u.get("prompt_tokens")).or_else(|| count(u.get("input_tokens")))
                {
                    m.prompt = Some(p);
                }
                if let Some(g) =
                    count(u.get("completion_tokens")).or_else(|| count(u.get("output_tokens")))
                {
                    m.generated = Some(g);
                }
            }
        }
    }
}

/// The parts of a whole (non-streaming) JSON response the meter reads; everything else is
/// skipped without being built.
#[derive(Debug, serde::Deserialize)]
struct Whole {
    #[serde(default)]
    usage: Option<Usage>,
    #[serde(default)]
    prompt_eval_count: Option<u64>,
    #[serde(default)]
    eval_count: Option<u64>,
    #[serde(default)]
    choices: Option<Vec<WholeChoice>>,
    #[serde(default)]
    content: Option<Value>,
    #[serde(default)]
    output: Option<Value>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    response: Option<Value>,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    stop_reason: Option<Value>,
    #[serde(default)]
    done_reason: Option<String>,
}

/// A choice of a whole response: only its finish reason is read (the message, however long,
/// is skipped, not built); a choice that is not an object has none.
#[derive(Debug, Default)]
struct WholeChoice {
    finish_reason: Option<Value>,
}

impl<'de> serde::Deserialize<'de> for WholeChoice {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = WholeChoice;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a choice")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<WholeChoice, A::Error> {
                let mut choice = WholeChoice::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "finish_reason" {
                        choice.finish_reason = Some(map.next_value()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(choice)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<WholeChoice, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(WholeChoice::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<WholeChoice, E> {
                Ok(WholeChoice::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<WholeChoice, E> {
                Ok(WholeChoice::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<WholeChoice, E> {
                Ok(WholeChoice::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<WholeChoice, E> {
                Ok(WholeChoice::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<WholeChoice, E> {
                Ok(WholeChoice::default())
            }
            fn visit_unit<E>(self) -> Result<WholeChoice, E> {
                Ok(WholeChoice::default())
            }
        }
        d.deserialize_any(Visit)
    }
}

#[derive(Debug, serde::Deserialize)]
struct Usage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Option<u64>,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Option<u64>,
}

impl Whole {
    fn finish_reason(&self, api: Api) -> Option<FinishReason> {
        finish_reason_of(
            api,
            &mut self
                .choices
                .iter()
                .flatten()
                .map(|c| c.finish_reason.as_ref().and_then(Value::as_str)),
            self.status.as_ref(),
            self.stop_reason.as_ref(),
            self.done_reason.as_deref(),
        )
    }

    fn has_content(&self, api: Api) -> bool {
        match api {
            Api::ChatCompletions | Api::Completions => {
                self.choices.as_ref().is_some_and(|c| !c.is_empty())
            }
            Api::Responses => non_empty(self.output.as_ref()),
            Api::Messages => non_empty(self.content.as_ref()),
            Api::OllamaChat => self
                .message
                .as_ref()
                .is_some_and(|m| non_empty(m.get("content"))),
            Api::OllamaGenerate => non_empty(self.response.as_ref()),
        }
    }
}

/// The general reading of a whole response (serde): any valid JSON; `None` when it is not
/// (or not of the shape read). [`whole::read`] answers first for the usual documents.
fn read_whole(api: Api, json: &[u8]) -> Option<whole::WholeRead> {
    let v = serde_json::from_slice::<Whole>(json).ok()?;
    let usage = v.usage.as_ref();
    Some(whole::WholeRead {
        finish: v.finish_reason(api),
        prompt: v.prompt_eval_count.or(usage.and_then(|u| u.prompt_tokens)),
        generated: v.eval_count.or(usage.and_then(|u| u.completion_tokens)),
        has_content: v.has_content(api),
    })
}

/// Whether the fast reading of a whole response, when it answers, answers as the general one
/// (for the `proxy_metering` fuzz target).
#[doc(hidden)]
pub fn whole_readings_agree(api: Api, json: &[u8]) -> bool {
    whole::read(api, json).is_none_or(|fast| Some(fast) == read_whole(api, json))
}

/// Most bytes of a non-streaming JSON response kept to read its usage; a longer one still
/// passes through, uncounted.
pub const MAX_JSON: usize = 8 << 20;

/// Meters one response.
#[derive(Debug)]
pub struct Meter {
    api: Api,
    format: Format,
    line: Vec<u8>,
    json: Vec<u8>,
    json_overflow: bool,
    first_byte: Option<Duration>,
    /// When the last body bytes arrived (for a last line without a line end).
    last_feed: Duration,
    ttft: Option<Duration>,
    /// When the last chunk carrying generated content arrived.
    last_content: Option<Duration>,
    prompt: Option<u64>,
    generated: Option<u64>,
    chunks: u64,
    finish: Option<FinishReason>,
}

/// Time per output token after the first: the time from the first to the last content chunk
/// over the tokens after the first chunk (`generated` tokens in `chunks` content chunks, each
/// taken to carry `generated / chunks`), when at least two tokens came in at least two chunks.
/// Pure.
pub fn time_per_output_token(
    first: Duration,
    last: Duration,
    generated: u64,
    chunks: u64,
) -> Option<Duration> {
    if generated < 2 || chunks < 2 {
        return None;
    }
    let (n, k) = (generated as f64, chunks as f64);
    Duration::try_from_secs_f64(last.saturating_sub(first).as_secs_f64() * k / (n * (k - 1.0))).ok()
}

fn count(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

fn non_empty(v: Option<&Value>) -> bool {
    match v {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
        _ => false,
    }
}

impl Meter {
    /// A meter for a response of `api` framed as `format`.
    pub fn new(api: Api, format: Format) -> Self {
        Meter {
            api,
            format,
            line: Vec::new(),
            json: Vec::new(),
            json_overflow: false,
            first_byte: None,
            last_feed: Duration::ZERO,
            ttft: None,
            last_content: None,
            prompt: None,
            generated: None,
            chunks: 0,
            finish: None,
        }
    }

    /// Takes the next body chunk, received `elapsed` after the request arrived.
    pub fn feed(&mut self, chunk: &[u8], elapsed: Duration) {
        if chunk.is_empty() {
            return;
        }
        self.first_byte.get_or_insert(elapsed);
        self.last_feed = elapsed;
        match self.format {
            Format::Json => {
                if self.json.len() + chunk.len() > MAX_JSON {
                    self.json_overflow = true;
                    self.json = Vec::new();
                } else if !self.json_overflow {
                    self.json.extend_from_slice(chunk);
                }
            }
            Format::Sse | Format::Ndjson => {
                let mut rest = chunk;
                while let Some(i) = rest.iter().position(|b| *b == b'\n') {
                    self.line.extend_from_slice(&rest[..i]);
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&line, elapsed);
                    rest = &rest[i + 1..];
                }
                // A line longer than a JSON document may be is not metered.
                if self.line.len() + rest.len() <= MAX_JSON {
                    self.line.extend_from_slice(rest);
                }
            }
        }
    }

    fn line_done(&mut self, line: &[u8], elapsed: Duration) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let payload = match self.format {
            Format::Sse => match line.strip_prefix(b"data:") {
                Some(p) => p.strip_prefix(b" ").unwrap_or(p),
                None => return, // event:, id:, comments, blank separators
            },
            _ => line,
        };
        if payload.is_empty() || payload == b"[DONE]" {
            return;
        }
        let Ok(c) = serde_json::from_slice::<Chunk>(payload) else {
            return;
        };
        if let Some(r) = c.finish_reason(self.api) {
            self.finish = Some(r);
        }
        if c.has_content(self.api) {
            self.chunks += 1;
            self.ttft.get_or_insert(elapsed);
            self.last_content = Some(elapsed);
        }
        c.usage(self);
    }

    /// Content chunks of a stream so far (0 for a non-streaming response).
    pub fn content_chunks(&self) -> u64 {
        self.chunks
    }

    /// Whether the response has carried generated content yet: a content chunk of a stream, or
    /// any byte of a non-streaming response (whole, it is generated before it is sent).
    pub fn content_started(&self) -> bool {
        match self.format {
            Format::Json => self.first_byte.is_some(),
            Format::Sse | Format::Ndjson => self.ttft.is_some(),
        }
    }

    /// The result, once the body has ended.
    pub fn finish(mut self) -> Summary {
        if self.format != Format::Json && !self.line.is_empty() {
            // A last line without a line end arrived with the last bytes.
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, self.last_feed);
        }
        if self.format == Format::Json {
            let read =
                whole::read(self.api, &self.json).or_else(|| read_whole(self.api, &self.json));
            if let Some(r) = read {
                self.finish = r.finish;
                self.prompt = r.prompt.or(self.prompt);
                self.generated = r.generated.or(self.generated);
                if r.has_content || self.generated.is_some_and(|g| g > 0) {
                    self.ttft = self.first_byte;
                }
            }
            return Summary {
                ttft: self.ttft,
                prompt_tokens: self.prompt,
                generated_tokens: self.generated,
                tpot: None,
                finish_reason: self.finish,
            };
        }
        let generated = self.generated.or((self.chunks > 0).then_some(self.chunks));
        let tpot = match (self.ttft, self.last_content, generated) {
            (Some(first), Some(last), Some(n)) => {
                time_per_output_token(first, last, n, self.chunks)
            }
            _ => None,
        };
        Summary {
            ttft: self.ttft,
            prompt_tokens: self.prompt,
            generated_tokens: generated,
            tpot,
            finish_reason: self.finish,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn run(api: Api, format: Format, chunks: &[(&str, u64)]) -> Summary {
        let mut m = Meter::new(api, format);
        for (c, at) in chunks {
            m.feed(c.as_bytes(), ms(*at));
        }
        m.finish()
    }

    #[test]
    fn openai_sse_with_usage_split_across_chunks() {
        let s = run(
            Api::ChatCompletions,
            Format::Sse,
            &[
                (
                    "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
                    10,
                ),
                (
                    "data: {\"choices\":[{\"delta\":{\"content\":\"He\"}}]}\n",
                    40,
                ),
                ("\ndata: {\"choices\":[{\"delta\":{\"cont", 50),
                (
                    "ent\":\"llo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n",
                    60,
                ),
            ],
        );
        assert_eq!(
            s,
            Summary {
                ttft: Some(ms(40)),
                prompt_tokens: Some(7),
                generated_tokens: Some(2),
                tpot: Some(ms(20)),
                ..Default::default()
            }
        );
    }

    #[test]
    fn stream_without_usage_counts_content_chunks() {
        let s = run(
            Api::Completions,
            Format::Sse,
            &[
                ("data: {\"choices\":[{\"text\":\"\"}]}\r\n\r\n", 5),
                (
                    "data: {\"choices\":[{\"text\":\"a\"}]}\r\n\r\ndata: {\"choices\":[{\"text\":\"b\"}]}\r\n\r\n",
                    9,
                ),
            ],
        );
        assert_eq!(
            s,
            Summary {
                ttft: Some(ms(9)),
                prompt_tokens: None,
                generated_tokens: Some(2),
                tpot: Some(ms(0)),
                ..Default::default()
            }
        );
    }

    #[test]
    fn anthropic_messages_and_responses_api() {
        let s = run(
            Api::Messages,
            Format::Sse,
            &[(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n\
                 event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
                 event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
                30,
            )],
        );
        assert_eq!(
            s,
            Summary {
                ttft: Some(ms(30)),
                prompt_tokens: Some(25),
                generated_tokens: Some(15),
                tpot: None,
                ..Default::default()
            }
        );
        let s = run(
            Api::Responses,
            Format::Sse,
            &[
                (
                    "event: response.created\ndata: {\"type\":\"response.created\"}\n\n",
                    1,
                ),
                (
                    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n",
                    20,
                ),
                (
                    "data: {\"type\":\"response.completed\",\"response\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}}\n\n",
                    30,
                ),
            ],
        );
        assert_eq!(
            s,
            Summary {
                ttft: Some(ms(20)),
                prompt_tokens: Some(3),
                generated_tokens: Some(4),
                tpot: None,
                ..Default::default()
            }
        );
    }

    #[test]
    fn ollama_ndjson_and_last_line_without_newline() {
        let s = run(
            Api::OllamaChat,
            Format::Ndjson,
            &[
                (
                    "{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}\n",
                    3,
                ),
                ("{\"message\":{\"content\":\"Hi\"},\"done\":false}\n", 12),
                (
                    "{\"message\":{\"content\":\"\"},\"done\":true,\"prompt_eval_count\":26,\"eval_count\":290}",
                    90,
                ),
            ],
        );
        assert_eq!(
            s,
            Summary {
                ttft: Some(ms(12)),
                prompt_tokens: Some(26),
                generated_tokens: Some(290),
                tpot: None,
                ..Default::default()
            }
        );
    }

    #[test]
    fn non_streaming_json() {
        let body = "{\"choices\":[{\"message\":{\"content\":\"Hello\"}}],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12}}";
        let s = run(
            Api::ChatCompletions,
            Format::Json,
            &[(&body[..20], 100), (&body[20..], 101)],
        );
        assert_eq!(
            s,
            Summary {
                ttft: Some(ms(100)),
                prompt_tokens: Some(9),
                generated_tokens: Some(12),
                tpot: None,
                ..Default::default()
            }
        );
        let s = run(
            Api::OllamaGenerate,
            Format::Json,
            &[(
                "{\"response\":\"x\",\"prompt_eval_count\":1,\"eval_count\":2}",
                5,
            )],
        );
        assert_eq!(s.generated_tokens, Some(2));
        let s = run(
            Api::ChatCompletions,
            Format::Json,
            &[("{\"error\":\"bad\"}", 5)],
        );
        assert_eq!(s, Summary::default());
        let s = run(
            Api::ChatCompletions,
            Format::Json,
            &[("not json at all", 5)],
        );
        assert_eq!(s, Summary::default());
    }

    #[test]
    fn a_whole_response_reads_each_choice_s_finish_reason_whatever_else_the_choices_hold() {
        // Choices that are not objects, escaped keys, a finish reason that is not a string: the
        // usage and the last string reason are still read.
        let body = "{\"choices\":[\"odd\",null,7,[1,{\"finish_reason\":\"x\"}],                    {\"message\":{\"content\":\"a \\\"long\\\" text\",\"tool_calls\":[{}]},\"finish_reason\":9},                    {\"fin\\u0069sh_reason\":\"length\",\"index\":1}],                    \"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}";
        assert!(
            serde_json::from_str::<serde_json::Value>(body).is_ok(),
            "{body}"
        );
        let s = run(Api::ChatCompletions, Format::Json, &[(body, 7)]);
        assert_eq!(s.prompt_tokens, Some(3));
        assert_eq!(s.generated_tokens, Some(4));
        assert_eq!(s.ttft, Some(ms(7)));
        assert_eq!(
            s.finish_reason.map(|r| r.as_str().to_string()).as_deref(),
            Some("length")
        );
    }

    #[test]
    fn routes_formats_and_request_model() {
        assert_eq!(
            Api::from_path("/v1/chat/completions"),
            Some(Api::ChatCompletions)
        );
        assert_eq!(Api::from_path("/ollama/api/chat"), Some(Api::OllamaChat));
        assert_eq!(Api::from_path("/v1/models"), None);
        assert_eq!(
            Format::from_content_type("text/event-stream; charset=utf-8"),
            Format::Sse
        );
        assert_eq!(
            Format::from_content_type("application/x-ndjson"),
            Format::Ndjson
        );
        assert_eq!(Format::from_content_type("application/json"), Format::Json);
        // Media types are case-insensitive; a short or empty one is JSON.
        for (ct, format) in [
            ("Text/Event-Stream", Format::Sse),
            ("text/event-strea", Format::Json),
            ("application/X-NDJSON; charset=utf-8", Format::Ndjson),
            ("application/jsonl", Format::Ndjson),
            ("application/JSON-seq", Format::Ndjson),
            ("application/json; charset=UTF-8", Format::Json),
            ("Application/Json", Format::Json),
            ("application/json; profile=ndjson", Format::Ndjson),
            ("te", Format::Json),
            ("", Format::Json),
        ] {
            assert_eq!(Format::from_content_type(ct), format, "{ct}");
        }
        assert_eq!(
            request_info(br#"{"model":"llama","stream":true}"#)
                .model
                .as_deref(),
            Some("llama")
        );
        assert_eq!(request_info(b"garbage").model, None);
        assert_eq!(request_info(br#"{"model":""}"#).model, None);
    }

    /// A chat completions SSE content chunk carrying `text`.
    fn chat(text: &str) -> String {
        format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{text}\"}}}}]}}\n\n")
    }

    #[test]
    fn a_known_token_cadence_gives_its_exact_time_per_output_token() {
        // A role chunk (no content), then 11 one-token chunks 20 ms apart from 100 ms, each split
        // across two reads: the second half arrives at the chunk's time.
        let mut m = Meter::new(Api::ChatCompletions, Format::Sse);
        m.feed(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            ms(5),
        );
        for i in 0..11u64 {
            let c = chat("tok");
            let (a, b) = c.split_at(10);
            m.feed(a.as_bytes(), ms(90 + 20 * i));
            m.feed(b.as_bytes(), ms(100 + 20 * i));
        }
        m.feed(b"data: [DONE]\n\n", ms(400));
        let s = m.finish();
        assert_eq!(s.ttft, Some(ms(100)));
        assert_eq!(s.generated_tokens, Some(11));
        // (300 - 100) / (11 - 1)
        assert_eq!(s.tpot, Some(ms(20)));
        // NDJSON (Ollama): three content lines 25 ms apart, the count on the last line.
        let s = run(
            Api::OllamaGenerate,
            Format::Ndjson,
            &[
                ("{\"response\":\"a\",\"done\":false}\n", 10),
                ("{\"response\":\"b\",\"done\":false}\n", 35),
                ("{\"response\":\"c\",\"done\":false}\n", 60),
                ("{\"response\":\"\",\"done\":true,\"eval_count\":3}\n", 61),
            ],
        );
        assert_eq!(s.tpot, Some(ms(25)));
    }

    #[test]
    fn several_tokens_per_chunk_count_at_the_chunk_and_usage_beats_chunks() {
        // Three content chunks 100 ms apart that carry 9 tokens in all (usage).
        let body = [
            (chat("one two three"), 100),
            (chat("four five six"), 200),
            (chat("seven eight nine"), 300),
            (
                "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":9}}\n\n"
                    .to_string(),
                301,
            ),
        ];
        let with_usage: Vec<(&str, u64)> = body.iter().map(|(c, t)| (c.as_str(), *t)).collect();
        let s = run(Api::ChatCompletions, Format::Sse, &with_usage);
        assert_eq!(s.generated_tokens, Some(9));
        // Three tokens a chunk: the 6 after the first chunk arrive over 200 ms.
        let tpot = s.tpot.unwrap().as_secs_f64();
        assert!((tpot - 0.2 / 6.0).abs() < 1e-9, "{tpot}");
        // The same chunks without usage: one token each, so the mean gap between chunks.
        let s = run(Api::ChatCompletions, Format::Sse, &with_usage[..3]);
        assert_eq!(s.generated_tokens, Some(3));
        assert_eq!(s.tpot, Some(ms(100)));
        // Everything in one chunk: no cadence to see.
        let s = run(
            Api::ChatCompletions,
            Format::Sse,
            &[(format!("{}{}", chat("all of it"), &body[3].0).as_str(), 50)],
        );
        assert_eq!((s.generated_tokens, s.tpot), (Some(9), None));
    }

    #[test]
    fn one_token_and_non_streaming_responses_have_no_time_per_output_token() {
        // One content chunk, no usage: one token.
        let s = run(
            Api::ChatCompletions,
            Format::Sse,
            &[(chat("x").as_str(), 10)],
        );
        assert_eq!((s.generated_tokens, s.tpot), (Some(1), None));
        // Two chunks, but usage says one token.
        let one = "data: {\"choices\":[],\"usage\":{\"completion_tokens\":1}}\n\n";
        let s = run(
            Api::ChatCompletions,
            Format::Sse,
            &[
                (chat("x").as_str(), 10),
                (chat("y").as_str(), 30),
                (one, 31),
            ],
        );
        assert_eq!((s.generated_tokens, s.tpot), (Some(1), None));
        // Usage without any content chunk: no first token to start from.
        let s = run(Api::ChatCompletions, Format::Sse, &[(one, 31)]);
        assert_eq!(s.tpot, None);
        // A whole JSON response, however many tokens.
        let s = run(
            Api::ChatCompletions,
            Format::Json,
            &[(
                "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":{\"completion_tokens\":12}}",
                100,
            )],
        );
        assert_eq!((s.generated_tokens, s.tpot), (Some(12), None));
        // The arithmetic: exact, and no overflow with an absurd count.
        assert_eq!(time_per_output_token(ms(10), ms(40), 4, 4), Some(ms(10)));
        assert_eq!(time_per_output_token(ms(10), ms(40), 1, 2), None);
        assert_eq!(time_per_output_token(ms(10), ms(40), 0, 0), None);
        assert_eq!(time_per_output_token(ms(10), ms(40), 8, 1), None);
        assert!(time_per_output_token(ms(0), ms(1000), u64::MAX, u64::MAX).unwrap() < ms(1));
    }

    #[test]
    fn content_starts_at_the_first_content_chunk_or_the_first_json_byte() {
        let mut m = Meter::new(Api::ChatCompletions, Format::Sse);
        assert!(!m.content_started());
        m.feed(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
            ms(5),
        );
        assert!(!m.content_started(), "a role chunk carries no content");
        m.feed(chat("x").as_bytes(), ms(9));
        assert!(m.content_started());
        let mut m = Meter::new(Api::ChatCompletions, Format::Json);
        assert!(!m.content_started());
        m.feed(b"{\"choi", ms(5));
        assert!(m.content_started());
    }

    #[test]
    fn finish_reasons_per_api() {
        let reason = |api, format, body: &str| {
            run(api, format, &[(body, 1)])
                .finish_reason
                .map(|r| r.as_str().to_string())
        };
        assert_eq!(
            reason(
                Api::ChatCompletions,
                Format::Sse,
                "data: {\"choices\":[{\"delta\":{\"content\":\"a\"},\"finish_reason\":null}]}\n\n\
                 data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"length\"}]}\n\ndata: [DONE]\n\n"
            )
            .as_deref(),
            Some("length")
        );
        assert_eq!(
            reason(
                Api::Completions,
                Format::Json,
                "{\"choices\":[{\"text\":\"x\",\"finish_reason\":\"stop\"}]}"
            )
            .as_deref(),
            Some("stop")
        );
        assert_eq!(
            reason(
                Api::Responses,
                Format::Sse,
                "data: {\"type\":\"response.completed\",\"response\":{\"status\":\"incomplete\"}}\n\n"
            )
            .as_deref(),
            Some("incomplete")
        );
        assert_eq!(
            reason(
                Api::Responses,
                Format::Json,
                "{\"status\":\"completed\",\"output\":[1]}"
            )
            .as_deref(),
            Some("completed")
        );
        assert_eq!(
            reason(
                Api::Messages,
                Format::Sse,
                "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n"
            )
            .as_deref(),
            Some("end_turn")
        );
        assert_eq!(
            reason(
                Api::Messages,
                Format::Json,
                "{\"content\":[1],\"stop_reason\":\"max_tokens\"}"
            )
            .as_deref(),
            Some("max_tokens")
        );
        assert_eq!(
            reason(
                Api::OllamaChat,
                Format::Ndjson,
                "{\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\"}\n"
            )
            .as_deref(),
            Some("stop")
        );
        assert_eq!(reason(Api::ChatCompletions, Format::Json, "{}"), None);
        // Long reasons are cut at a character boundary; empty ones are none.
        let long = "é".repeat(20);
        assert_eq!(FinishReason::new(&long).unwrap().as_str(), "é".repeat(15));
        assert!(FinishReason::new("").is_none());
    }

    /// The scan in every split of the body into two pieces.
    fn scan_split(body: &str) -> Option<String> {
        let b = body.as_bytes();
        let whole = request_info(b).model;
        for i in 0..=b.len() {
            let mut s = ModelScan::default();
            s.feed(&b[..i]);
            s.feed(&b[i..]);
            assert_eq!(s.finish(), whole, "{body:?} split at {i}");
        }
        whole
    }

    /// A fixed xorshift generator, and documents mangled with it: the tests that hold a fast
    /// reading to a reference feed both the same mangled inputs.
    pub(super) struct Mangler(pub(super) u64);

    impl Mangler {
        pub(super) fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        /// `doc` with one to three bytes dropped, inserted or replaced (by bytes of `pick`).
        pub(super) fn mangle(&mut self, doc: &[u8], pick: &[u8]) -> Vec<u8> {
            let mut d = doc.to_vec();
            for _ in 0..(self.next() % 3 + 1) {
                let at = (self.next() as usize) % d.len().max(1);
                match self.next() % 3 {
                    0 if !d.is_empty() => {
                        d.remove(at);
                    }
                    1 => d.insert(at, pick[self.next() as usize % pick.len()]),
                    _ if !d.is_empty() => d[at] = pick[self.next() as usize % pick.len()],
                    _ => {}
                }
            }
            d
        }
    }

    /// The scan as it was before it moved through strings by runs: the reference the test below
    /// holds the scan to.
    #[derive(Debug, Default)]
    struct OldScan {
        /// Nesting depth; 0 before the opening brace.
        depth: u32,
        in_string: bool,
        escape: bool,
        /// At depth 1: the next string is a key (after `{` or `,`), else a value (after `:`).
        want_key: bool,
        /// The top-level key being read (only its first bytes: it is compared with `model`).
        key: Vec<u8>,
        key_is_model: bool,
        /// The raw bytes of the `model` value being read.
        value: Option<Vec<u8>>,
        /// Decided: `Some(model)` or `None`.
        result: Option<Option<String>>,
    }

    impl OldScan {
        /// Whether the model is decided (found, or known to be missing).
        fn done(&self) -> bool {
            self.result.is_some()
        }

        /// The model at the end of the body.
        fn finish(self) -> Option<String> {
            self.result.flatten()
        }

        fn decide(&mut self, model: Option<String>) {
            self.result = Some(model.filter(|m| !m.is_empty()));
            self.key = Vec::new();
            self.value = None;
        }

        /// Scans the next bytes of the body.
        fn feed(&mut self, bytes: &[u8]) {
            for &b in bytes {
                if self.result.is_some() {
                    return;
                }
                if self.in_string {
                    if self.escape {
                        self.escape = false;
                    } else if b == b'\\' {
                        self.escape = true;
                    } else if b == b'"' {
                        self.in_string = false;
                        if let Some(raw) = self.value.take() {
                            let mut quoted = Vec::with_capacity(raw.len() + 2);
                            quoted.push(b'"');
                            quoted.extend_from_slice(&raw);
                            quoted.push(b'"');
                            self.decide(serde_json::from_slice::<String>(&quoted).ok());
                        } else if self.depth == 1 && self.want_key {
                            self.key_is_model = self.key == b"model";
                            self.want_key = false;
                        }
                        continue;
                    }
                    if let Some(v) = self.value.as_mut() {
                        if v.len() < MODEL_MAX {
                            v.push(b);
                        }
                    } else if self.depth == 1 && self.want_key && self.key.len() <= 5 {
                        self.key.push(b);
                    }
                    continue;
                }
                match b {
                    b' ' | b'\t' | b'\r' | b'\n' => {}
                    b'{' if self.depth == 0 => {
                        self.depth = 1;
                        self.want_key = true;
                    }
                    _ if self.depth == 0 => self.decide(None),
                    b'"' => {
                        self.in_string = true;
                        if self.depth == 1 && self.want_key {
                            self.key.clear();
                            self.key_is_model = false;
                        } else if self.depth == 1 && self.key_is_model {
                            self.value = Some(Vec::new());
                        }
                    }
                    b':' if self.depth == 1 => {}
                    b',' if self.depth == 1 => {
                        self.want_key = true;
                        self.key_is_model = false;
                    }
                    b'{' | b'[' => {
                        if self.depth == 1 && self.key_is_model {
                            return self.decide(None);
                        }
                        self.depth += 1;
                    }
                    b'}' | b']' => {
                        self.depth -= 1;
                        if self.depth == 0 {
                            return self.decide(None);
                        }
                    }
                    // A number, true, false or null as the model's value.
                    _ if self.depth == 1 && self.key_is_model => return self.decide(None),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn the_model_scan_reads_as_the_byte_by_byte_scan_did_in_any_pieces() {
        let docs = [
            r#"{"model":"bench","stream":false,"messages":[{"role":"user","content":"tokens:20"}]}"#,
            r#" { "messages" : [{"content":"say \"model\": \"x\"","model":"inner"}], "model" : "gpt-4o" }"#,
            r#"{"options":{"model":"nested"},"models":"no","mode":"no","model":"a\"b\u00e9\n"}"#,
            r#"{"mod\u0065l":"x","model":"模型","model":"second"}"#,
            r#"{"model":"","model":"y"}"#,
        ];
        let mut m = Mangler(0x1234_5678_9ABC_DEF1);
        let bytes = b"{}[]\":,\\ m\x01\xff";
        for doc in docs {
            for round in 0..300 {
                let d = if round == 0 {
                    doc.as_bytes().to_vec()
                } else {
                    m.mangle(doc.as_bytes(), bytes)
                };
                let piece = (m.next() % 9 + 1) as usize;
                let (mut new, mut old) = (ModelScan::default(), OldScan::default());
                for c in d.chunks(piece) {
                    new.feed(c);
                    old.feed(c);
                    assert_eq!(new.done(), old.done());
                }
                assert_eq!(
                    new.finish(),
                    old.finish(),
                    "{}",
                    String::from_utf8_lossy(&d)
                );
            }
        }
        // A model longer than the bound is cut as before (and so read as the JSON it becomes).
        let long = format!(r#"{{"model":"{}"}}"#, "x".repeat(MODEL_MAX + 10));
        let (mut new, mut old) = (ModelScan::default(), OldScan::default());
        new.feed(long.as_bytes());
        old.feed(long.as_bytes());
        assert_eq!(new.finish().map(|m| m.len()), Some(MODEL_MAX));
        assert_eq!(old.finish().map(|m| m.len()), Some(MODEL_MAX));
    }

    #[test]
    fn the_model_scan_finds_the_top_level_model_anywhere_in_pieces() {
        let m = |s: &str| scan_split(s);
        assert_eq!(
            m(r#"{"model":"llama","stream":true}"#).as_deref(),
            Some("llama")
        );
        assert_eq!(
            m(r#" { "messages" : [{"role":"user","content":"say \"model\": \"x\"","model":"inner"}], "model" : "gpt-4o" }"#).as_deref(),
            Some("gpt-4o")
        );
        assert_eq!(
            m(r#"{"options":{"model":"nested"},"models":"no","mode":"no","model":"a\"b\u00e9"}"#)
                .as_deref(),
            Some("a\"bé")
        );
        assert_eq!(m(r#"{"messages":[],"stream":true}"#), None);
        assert_eq!(m(r#"{"model":null}"#), None);
        assert_eq!(m(r#"{"model":42,"x":"model"}"#), None);
        assert_eq!(m(r#"{"model":{"name":"x"}}"#), None);
        assert_eq!(m(r#"["model","x"]"#), None);
        assert_eq!(m(""), None);
        // The scan stops at the value: what follows is never looked at.
        let mut s = ModelScan::default();
        s.feed(br#"{"model":"m","#);
        assert!(s.done());
        assert_eq!(s.model(), Some("m"));
        s.feed(b"garbage that is not JSON");
        assert_eq!(s.finish().as_deref(), Some("m"));
        // A model split at a byte of a multi-byte character.
        assert_eq!(m(r#"{"model":"模型"}"#).as_deref(), Some("模型"));
    }
}
