//! The metering proxy's OpenTelemetry GenAI histograms (`--otlp.semconv genai|both`), recorded
//! per request with the bounds the conventions recommend and pushed over OTLP only: they are
//! not served on `/metrics` (Prometheus label names cannot hold the conventions' dots, and
//! `/metrics` already has the same data under cellwatch's names).
//!
//! Names, units, bounds and attribute keys come from [`cellwatch_metrics::genai`] (semantic
//! conventions v1.41.0, `docs/gen-ai/gen-ai-metrics.md`):
//! - `gen_ai.server.request.duration` (`s`): every finished request, with `error.type` when it
//!   failed (see [`error_type`]);
//! - `gen_ai.server.time_to_first_token` (`s`): successful responses with content;
//! - `gen_ai.server.time_per_output_token` (`s`): successful streamed responses, when the
//!   meter measured it;
//! - `gen_ai.client.token.usage` (`{token}`, with `gen_ai.token.type` `input`/`output`): every
//!   response that reported usage (the proxy counts what its clients spent, as the AI gateways
//!   do).
//!
//! Every point carries `gen_ai.operation.name`, `gen_ai.provider.name` (the API flavour:
//! `openai`, `anthropic`, or `ollama`), `gen_ai.request.model` (the bounded `model` label:
//! `other` past `--collector.inference.max-models`, `unknown` without a model) and the
//! upstream's `server.address` and `server.port`.
//!
//! The adapters (vLLM, llama.cpp, SGLang, TGI) contribute nothing here: their histograms arrive
//! aggregated with the server's own bounds, and re-bucketing them into the recommended bounds
//! would invent counts. Their data stays in the cellwatch families (`--otlp.semconv cellwatch`
//! or `both`), with their own bounds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use cellwatch_metrics::genai as g;

use super::Outcome;
use super::meter::Api;

/// `gen_ai.operation.name` of an API.
pub fn operation(api: Api) -> &'static str {
    match api {
        Api::Completions | Api::OllamaGenerate => g::OPERATION_TEXT_COMPLETION,
        Api::ChatCompletions | Api::Responses | Api::Messages | Api::OllamaChat => {
            g::OPERATION_CHAT
        }
    }
}

/// `gen_ai.provider.name` of an API: the telemetry flavour of the route.
pub fn provider(api: Api) -> &'static str {
    match api {
        Api::ChatCompletions | Api::Completions | Api::Responses => g::PROVIDER_OPENAI,
        Api::Messages => g::PROVIDER_ANTHROPIC,
        Api::OllamaChat | Api::OllamaGenerate => g::PROVIDER_OLLAMA,
    }
}

/// `error.type` of a finished request; `None` when it succeeded. The values: the HTTP status
/// code for a 4xx/5xx answer (`404`, `500`…), `response_failed` when a 2xx response broke off
/// or stalled midway, `upstream_unavailable` when the upstream gave no response (refused,
/// unreachable, timed out), `cancelled` when the client went away first, `client_error` for a
/// request the proxy refused itself (body too large).
pub fn error_type(outcome: Outcome, status: Option<u16>) -> Option<String> {
    let code = status.filter(|s| *s >= 400).map(|s| s.to_string());
    match outcome {
        Outcome::Ok => None,
        Outcome::ClientError => Some(code.unwrap_or_else(|| "client_error".into())),
        Outcome::ServerError => Some(code.unwrap_or_else(|| "response_failed".into())),
        Outcome::UpstreamUnavailable => Some("upstream_unavailable".into()),
        Outcome::Cancelled => Some("cancelled".into()),
    }
}

/// One series: a histogram and its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    /// The histogram.
    pub metric: &'static str,
    /// `gen_ai.operation.name`.
    pub operation: &'static str,
    /// `gen_ai.provider.name`.
    pub provider: &'static str,
    /// `gen_ai.request.model`.
    pub model: String,
    /// `error.type`, on failures.
    pub error_type: Option<String>,
    /// `gen_ai.token.type`, for token usage.
    pub token_type: Option<&'static str>,
}

/// A cumulative explicit-bucket histogram.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Upper bounds.
    pub bounds: &'static [f64],
    /// Count per bucket, one more than bounds (the overflow).
    pub counts: Vec<u64>,
    /// Sum of the values.
    pub sum: f64,
    /// Number of values.
    pub count: u64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
}

impl Series {
    fn new(bounds: &'static [f64]) -> Series {
        Series {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    /// Adds a value (a bucket's bound is inclusive, as OTLP's are).
    pub fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }
}

/// What one finished request reports.
#[derive(Debug, Clone, Copy)]
pub struct Finished<'a> {
    /// The API.
    pub api: Api,
    /// The `model` label.
    pub model: &'a str,
    /// How it ended.
    pub outcome: Outcome,
    /// The upstream's status, when it answered.
    pub status: Option<u16>,
    /// From arrival to the end of the response.
    pub duration: Duration,
    /// Time to the first content.
    pub ttft: Option<Duration>,
    /// Time per output token after the first.
    pub tpot: Option<Duration>,
    /// Prompt tokens (clamped).
    pub input_tokens: Option<u64>,
    /// Generated tokens (clamped).
    pub output_tokens: Option<u64>,
}

/// The GenAI histograms of one proxy, shared by its threads and read by the OTLP push.
#[derive(Debug)]
pub struct GenAiMeters {
    series: Mutex<HashMap<SeriesKey, Series>>,
    /// `server.address` and `server.port` of the upstream.
    pub server: (String, u16),
}

impl GenAiMeters {
    /// Histograms for a proxy in front of `server` (address, port).
    pub fn new(server: (String, u16)) -> Self {
        GenAiMeters {
            series: Mutex::default(),
            server,
        }
    }

    /// Records one finished request.
    pub fn record(&self, f: &Finished<'_>) {
        let key =
            |metric: &'static str, error_type: Option<String>, token: Option<&'static str>| {
                SeriesKey {
                    metric,
                    operation: operation(f.api),
                    provider: provider(f.api),
                    model: f.model.to_string(),
                    error_type,
                    token_type: token,
                }
            };
        let ok = f.outcome == Outcome::Ok;
        let mut values = vec![(
            &g::SERVER_REQUEST_DURATION,
            key(
                g::SERVER_REQUEST_DURATION.name,
                error_type(f.outcome, f.status),
                None,
            ),
            f.duration.as_secs_f64(),
        )];
        if ok {
            for (h, v) in [(&g::SERVER_TTFT, f.ttft), (&g::SERVER_TPOT, f.tpot)] {
                if let Some(v) = v {
                    values.push((h, key(h.name, None, None), v.as_secs_f64()));
                }
            }
        }
        for (token, n) in [
            (g::TOKEN_INPUT, f.input_tokens),
            (g::TOKEN_OUTPUT, f.output_tokens),
        ] {
            if let Some(n) = n {
                let h = &g::CLIENT_TOKEN_USAGE;
                values.push((h, key(h.name, None, Some(token)), n as f64));
            }
        }
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        for (h, k, v) in values {
            series
                .entry(k)
                .or_insert_with(|| Series::new(h.bounds))
                .observe(v);
        }
    }

    /// Every series so far, in a stable order.
    pub fn snapshot(&self) -> Vec<(SeriesKey, Series)> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let mut all: Vec<_> = series.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        drop(series);
        all.sort_by(|a, b| {
            (a.0.metric, &a.0.model, &a.0.error_type, a.0.token_type).cmp(&(
                b.0.metric,
                &b.0.model,
                &b.0.error_type,
                b.0.token_type,
            ))
        });
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_fill_the_recommended_buckets_with_their_attributes() {
        let m = GenAiMeters::new(("127.0.0.1".into(), 8000));
        let ok = Finished {
            api: Api::ChatCompletions,
            model: "m",
            outcome: Outcome::Ok,
            status: Some(200),
            duration: Duration::from_millis(300),
            ttft: Some(Duration::from_millis(20)),
            tpot: Some(Duration::from_millis(50)),
            input_tokens: Some(10),
            output_tokens: Some(5),
        };
        m.record(&ok);
        m.record(&Finished {
            outcome: Outcome::ServerError,
            status: Some(500),
            ttft: None,
            tpot: None,
            input_tokens: None,
            output_tokens: None,
            ..ok
        });
        let s = m.snapshot();
        let get = |metric: &str, err: Option<&str>, tok: Option<&str>| {
            s.iter()
                .find(|(k, _)| {
                    k.metric == metric && k.error_type.as_deref() == err && k.token_type == tok
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .unwrap_or_else(|| panic!("{metric} {err:?} {tok:?} in {s:?}"))
        };
        let (k, d) = get(g::SERVER_REQUEST_DURATION.name, None, None);
        assert_eq!((k.operation, k.provider), ("chat", "openai"));
        assert_eq!(d.bounds, g::DURATION_BOUNDS);
        // 0.3 s is in (0.16, 0.32].
        assert_eq!(d.counts[5], 1, "{d:?}");
        let (_, e) = get(g::SERVER_REQUEST_DURATION.name, Some("500"), None);
        assert_eq!(e.count, 1);
        // 20 ms is on a bound: in (0.01, 0.02].
        let (_, t) = get(g::SERVER_TTFT.name, None, None);
        assert_eq!(t.counts[3], 1, "{t:?}");
        let (_, p) = get(g::SERVER_TPOT.name, None, None);
        assert_eq!(p.counts[2], 1, "{p:?}");
        let (_, i) = get(g::CLIENT_TOKEN_USAGE.name, None, Some("input"));
        // 10 tokens in (4, 16].
        assert_eq!((i.counts[2], i.sum), (1, 10.0));
        // A failure records no TTFT, TPOT or usage.
        assert_eq!(s.len(), 6, "{s:?}");
    }

    #[test]
    fn error_types_name_the_failure() {
        assert_eq!(error_type(Outcome::Ok, Some(200)), None);
        assert_eq!(
            error_type(Outcome::ClientError, Some(429)).as_deref(),
            Some("429")
        );
        assert_eq!(
            error_type(Outcome::ClientError, None).as_deref(),
            Some("client_error")
        );
        assert_eq!(
            error_type(Outcome::ServerError, Some(200)).as_deref(),
            Some("response_failed")
        );
        assert_eq!(
            error_type(Outcome::UpstreamUnavailable, None).as_deref(),
            Some("upstream_unavailable")
        );
        assert_eq!(
            error_type(Outcome::Cancelled, Some(200)).as_deref(),
            Some("cancelled")
        );
        assert_eq!(operation(Api::OllamaGenerate), "text_completion");
        assert_eq!(provider(Api::Messages), "anthropic");
    }
}
