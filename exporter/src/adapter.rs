//! Adapters for inference servers that export Prometheus metrics (vLLM, llama.cpp, SGLang, TGI):
//! their `/metrics` page, parsed with the `prometheus-parse` crate, becomes the normalized
//! `cellwatch_inference_*` series. Counters stay monotonic across upstream restarts (a histogram
//! resets as a whole when its `_count` goes down). What a server does not export is not
//! invented: llama.cpp has no latency histograms and no outcomes, TGI no time to first token,
//! SGLang no outcomes.
//!
//! Time per output token: vLLM 0.11 and later export the per-request TPOT
//! (`vllm:request_time_per_output_token_seconds`: decode time / (generated tokens − 1), one
//! observation per finished request, as the metering proxy measures it, except that vLLM observes
//! 0 for a request with one generated token where the proxy observes nothing); it is taken when
//! the page has it. Older vLLM only export a per-token histogram (one observation per inter-token gap:
//! `vllm:time_per_output_token_seconds`, renamed `vllm:inter_token_latency_seconds` in 0.11), and
//! SGLang only ever exports one (`sglang:time_per_output_token_seconds`, renamed
//! `sglang:inter_token_latency_seconds`): without a per-request histogram that one is mapped, its
//! quantiles weighted by tokens rather than requests, rather than nothing. One source per page,
//! the first present of those orders, never a sum of two (vLLM 0.11 exports the per-token one
//! under both names). TGI's `tgi_request_mean_time_per_token_duration` is per request
//! (inference time, prefill included, over all generated tokens). Queue time: vLLM
//! `vllm:request_queue_time_seconds`, SGLang `sglang:queue_time_seconds`, TGI
//! `tgi_request_queue_duration`. Waiting requests: vLLM `vllm:num_requests_waiting`, SGLang
//! `sglang:num_queue_reqs`, llama.cpp `llamacpp:requests_deferred`, TGI `tgi_queue_size`.
//!
//! Bounded: a page is read line by line ([`PageFilter`]) and only the lines of the families we
//! map are kept, at most [`MAX_FAMILY_SERIES`] per family (a family with more is dropped whole
//! for that page); NaN, ±Inf and negative values are dropped, never summed. Every drop is
//! counted in `cellwatch_inference_adapter_dropped_samples_total` ([`DropCounter`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

use cellwatch_metrics::{self as m, MetricDef};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus_parse::{Scrape, Value};

use crate::counter::Monotonic;
use crate::parse::ParseError;
use crate::proxy::ModelLabels;

/// A server kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// vLLM (`vllm:` metrics, `model_name` label).
    Vllm,
    /// llama.cpp `llama-server --metrics` (`llamacpp:` metrics, no model label).
    LlamaCpp,
    /// SGLang `--enable-metrics` (`sglang:` metrics, `model_name` label).
    Sglang,
    /// Text Generation Inference (`tgi_` metrics, no model label).
    Tgi,
}

impl Server {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Server::Vllm => "vllm",
            Server::LlamaCpp => "llamacpp",
            Server::Sglang => "sglang",
            Server::Tgi => "tgi",
        }
    }
}

/// One `--collector.inference.adapter KIND=URL[;model=NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSpec {
    /// Server kind.
    pub server: Server,
    /// Its `/metrics` URL.
    pub url: String,
    /// Model label for servers whose metrics carry none (llama.cpp, TGI); default `unknown`.
    pub model: Option<String>,
}

impl fmt::Display for AdapterSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.server.name(), self.url)
    }
}

impl FromStr for AdapterSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, rest) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected KIND=URL (KIND: vllm, llamacpp, sglang, tgi)")
        })?;
        let server = match kind.trim() {
            "vllm" => Server::Vllm,
            "llamacpp" | "llama.cpp" => Server::LlamaCpp,
            "sglang" => Server::Sglang,
            "tgi" => Server::Tgi,
            k => {
                return Err(format!(
                    "{k:?} is not a server kind (vllm, llamacpp, sglang, tgi)"
                ));
            }
        };
        let (url, model) = match rest.split_once(";model=") {
            Some((u, m)) if !m.trim().is_empty() => (u, Some(m.trim().to_string())),
            Some(_) => return Err(format!("{s:?}: empty model name")),
            None => (rest, None),
        };
        let uri: axum::http::Uri = url.trim().parse().map_err(|e| format!("{url:?}: {e}"))?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(format!("{url:?}: an http:// URL is needed"));
        }
        Ok(AdapterSpec {
            server,
            url: url.trim().to_string(),
            model,
        })
    }
}

/// A normalized value read from a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A counter's raw value.
    Counter(f64),
    /// A gauge.
    Gauge(f64),
    /// A histogram: (upper bound, cumulative count) pairs, sum, count.
    Histogram {
        /// Buckets.
        buckets: Vec<(f64, f64)>,
        /// Sum of observations.
        sum: f64,
        /// Number of observations.
        count: f64,
    },
}

/// One normalized series: family, label values in `def.labels` order, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    /// The family.
    pub def: &'static MetricDef,
    /// Label values.
    pub labels: Vec<String>,
    /// The reading.
    pub reading: Reading,
}

const WHAT: &str = "inference server /metrics page";

/// Most sample lines of one upstream family on one page (each histogram bucket, sum and count is
/// a line). A family with more is dropped whole for that page (reason `series_limit`): real
/// servers export a few dozen buckets per model and engine.
pub const MAX_FAMILY_SERIES: usize = 2_000;

/// Default for `--collector.inference.adapter-max-page-size`.
pub const DEFAULT_MAX_PAGE: usize = 4 << 20;

/// Why an adapter sample was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// NaN or ±Inf.
    NonFinite,
    /// Below zero (a count or a level of requests cannot be).
    Negative,
    /// Its family had more than [`MAX_FAMILY_SERIES`] series on the page.
    SeriesLimit,
    /// A counter (or a histogram's count, sum or bucket) above [`MAX_COUNTER_VALUE`]: no real
    /// server counts so far, and past it a float cannot count one more.
    TooLarge,
}

/// The largest counter value an adapter takes: 2^53, past which a float no longer counts in
/// steps of one (a restart after 1e300 would lose every later increment).
pub const MAX_COUNTER_VALUE: f64 = 9_007_199_254_740_992.0;

impl DropReason {
    /// Every reason.
    pub const ALL: [DropReason; 4] = [
        DropReason::NonFinite,
        DropReason::Negative,
        DropReason::SeriesLimit,
        DropReason::TooLarge,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::NonFinite => "non_finite",
            DropReason::Negative => "negative",
            DropReason::SeriesLimit => "series_limit",
            DropReason::TooLarge => "too_large",
        }
    }
}

/// Samples dropped from one page: (upstream family, reason) → samples.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dropped(pub BTreeMap<(String, DropReason), u64>);

impl Dropped {
    fn add(&mut self, family: &str, reason: DropReason, n: u64) {
        *self.0.entry((family.to_string(), reason)).or_default() += n;
    }

    /// Samples dropped for `reason`.
    pub fn total(&self, reason: DropReason) -> u64 {
        self.0
            .iter()
            .filter(|((_, r), _)| *r == reason)
            .map(|(_, n)| n)
            .sum()
    }
}

/// One page, normalized.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The normalized series.
    pub readings: Vec<Normalized>,
    /// What was dropped.
    pub dropped: Dropped,
    /// The page's `process_start_time_seconds`, when it has one (the largest, if several).
    pub start_time: Option<f64>,
}

/// The upstream families (names with colons as underscores, without the server prefix) a
/// server's adapter maps; every other line of a page is skipped as it is read.
fn mapped_families(server: Server) -> &'static [&'static str] {
    match server {
        Server::Vllm => &[
            "prompt_tokens_total",
            "generation_tokens_total",
            "num_requests_running",
            "request_success_total",
            "e2e_request_latency_seconds",
            "time_to_first_token_seconds",
            "request_time_per_output_token_seconds",
            "inter_token_latency_seconds",
            "time_per_output_token_seconds",
            "request_queue_time_seconds",
            "num_requests_waiting",
        ],
        Server::Sglang => &[
            "prompt_tokens_total",
            "generation_tokens_total",
            "num_running_reqs",
            "e2e_request_latency_seconds",
            "time_to_first_token_seconds",
            "inter_token_latency_seconds",
            "time_per_output_token_seconds",
            "queue_time_seconds",
            "num_queue_reqs",
        ],
        Server::LlamaCpp => &[
            "prompt_tokens_total",
            "tokens_predicted_total",
            "requests_processing",
            "requests_deferred",
        ],
        Server::Tgi => &[
            "batch_current_size",
            "request_success",
            "request_failure",
            "request_input_length",
            "request_generated_tokens",
            "request_duration",
            "request_mean_time_per_token_duration",
            "request_queue_duration",
            "queue_size",
        ],
    }
}

/// The upstream histograms a server's time per output token may come from, best first (see the
/// module documentation): a page's first present one is mapped, the others are not.
fn tpot_sources(server: Server) -> &'static [&'static str] {
    match server {
        Server::Vllm => &[
            "request_time_per_output_token_seconds",
            "inter_token_latency_seconds",
            "time_per_output_token_seconds",
        ],
        Server::Sglang => &[
            "inter_token_latency_seconds",
            "time_per_output_token_seconds",
        ],
        Server::Tgi => &["request_mean_time_per_token_duration"],
        Server::LlamaCpp => &[],
    }
}

/// The normalized histogram an upstream histogram (name without the server prefix) maps to;
/// `tpot` is the page's time-per-output-token source.
fn histogram_def(server: Server, name: &str, tpot: Option<&str>) -> Option<&'static MetricDef> {
    match (server, name) {
        (Server::Vllm | Server::Sglang, "e2e_request_latency_seconds")
        | (Server::Tgi, "request_duration") => Some(&m::INFERENCE_REQUEST_DURATION),
        (Server::Vllm | Server::Sglang, "time_to_first_token_seconds") => Some(&m::INFERENCE_TTFT),
        (Server::Vllm, "request_queue_time_seconds")
        | (Server::Sglang, "queue_time_seconds")
        | (Server::Tgi, "request_queue_duration") => Some(&m::INFERENCE_QUEUE_TIME),
        _ if tpot == Some(name) => Some(&m::INFERENCE_TPOT),
        _ => None,
    }
}

fn prefix(server: Server) -> &'static str {
    match server {
        Server::Vllm => "vllm_",
        Server::LlamaCpp => "llamacpp_",
        Server::Sglang => "sglang_",
        Server::Tgi => "tgi_",
    }
}

/// The mapped family a sample or `# TYPE` name belongs to (`_bucket`, `_sum`, `_count` lines
/// belong to their histogram).
fn family_of(server: Server, name: &str) -> Option<&'static str> {
    let rest = name.strip_prefix(prefix(server))?;
    let families = mapped_families(server);
    let find = |n: &str| families.iter().find(|f| **f == n).copied();
    find(rest).or_else(|| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| rest.strip_suffix(suffix).and_then(find))
    })
}

/// The standard process collector's start time, which every server kind exports (Python's
/// prometheus_client for vLLM and SGLang, the Rust and C++ process collectors): a change means
/// a new process.
const START_TIME: &str = "process_start_time_seconds";

/// The value of a sample line's rest after its name: `{labels} value [timestamp]`.
fn sample_value(rest: &str) -> Option<f64> {
    let rest = rest.trim_start();
    let rest = match rest.strip_prefix('{') {
        // Label values may hold `}` inside quotes; the value follows the last `}`.
        Some(_) => &rest[rest.rfind('}')? + 1..],
        None => rest,
    };
    rest.split_whitespace().next()?.parse().ok()
}

#[derive(Debug, Default)]
struct FamilyLines {
    type_line: String,
    lines: String,
    series: usize,
}

/// Reads a `/metrics` page as it arrives, keeping only the lines of the families the adapter
/// maps (metric-name colons read as underscores), at most [`MAX_FAMILY_SERIES`] per family:
/// it holds the kept lines and one unfinished line, never the whole page.
#[derive(Debug)]
pub struct PageFilter {
    server: Server,
    partial: Vec<u8>,
    families: HashMap<&'static str, FamilyLines>,
    samples: u64,
    prefixed: bool,
    start_time: Option<f64>,
    /// Bytes searched for a line end so far: each byte once, however the page is split.
    scanned: u64,
}

/// What [`PageFilter`] kept of a page.
#[derive(Debug)]
pub struct Filtered {
    text: String,
    samples: u64,
    prefixed: bool,
    start_time: Option<f64>,
    dropped: Dropped,
}

impl PageFilter {
    /// A filter for a page of `server`.
    pub fn new(server: Server) -> Self {
        PageFilter {
            server,
            partial: Vec::new(),
            families: HashMap::new(),
            samples: 0,
            prefixed: false,
            start_time: None,
            scanned: 0,
        }
    }

    /// The next bytes of the page. Lines are taken straight from the chunk; only an unfinished
    /// last line is kept, and since it holds no line end, only the new bytes are searched for
    /// one (a page of one giant line costs its length, not its length squared).
    pub fn push(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            let end = chunk.iter().position(|b| *b == b'\n');
            self.scanned += end.map_or(chunk.len(), |p| p + 1) as u64;
            let Some(p) = end else {
                self.partial.extend_from_slice(chunk);
                return;
            };
            let mut line = std::mem::take(&mut self.partial);
            line.extend_from_slice(&chunk[..p]);
            self.line(&line);
            line.clear();
            self.partial = line;
            rest = &chunk[p + 1..];
        }
        let consumed = self.lines(rest);
        self.partial.extend_from_slice(&rest[consumed..]);
    }

    /// Handles the complete lines of `bytes`; returns how many bytes they took.
    fn lines(&mut self, bytes: &[u8]) -> usize {
        let mut start = 0;
        while let Some(p) = bytes[start..].iter().position(|b| *b == b'\n') {
            self.line(&bytes[start..start + p]);
            start += p + 1;
        }
        self.scanned += bytes.len() as u64;
        start
    }

    fn line(&mut self, raw: &[u8]) {
        let text = String::from_utf8_lossy(raw);
        let l = text.trim();
        if l.is_empty() {
            return;
        }
        if let Some(rest) = l.strip_prefix('#') {
            // prometheus-parse reads names as \w+; colons are only legal in recording-rule
            // names, and the servers that use them keep names unique without them.
            let mut parts = rest.trim_start().splitn(3, ' ');
            if parts.next() == Some("TYPE") {
                let name = parts.next().unwrap_or("").replace(':', "_");
                let kind = parts.next().unwrap_or("").trim();
                if let Some(f) = family_of(self.server, &name) {
                    let lines = self.families.entry(f).or_default();
                    if lines.type_line.is_empty() {
                        lines.type_line = format!("# TYPE {name} {kind}\n");
                    }
                }
            }
            return;
        }
        self.samples += 1;
        let end = l.find(['{', ' ', '\t']).unwrap_or(l.len());
        let name = l[..end].replace(':', "_");
        if name == START_TIME {
            if let Some(v) = sample_value(&l[end..]).filter(|v| v.is_finite() && *v > 0.0) {
                self.start_time = Some(self.start_time.map_or(v, |t| t.max(v)));
            }
            return;
        }
        if !name.starts_with(prefix(self.server)) {
            return;
        }
        self.prefixed = true;
        let Some(f) = family_of(self.server, &name) else {
            return;
        };
        let lines = self.families.entry(f).or_default();
        lines.series += 1;
        if lines.series > MAX_FAMILY_SERIES {
            // Dropped whole: what was kept is freed at once.
            lines.lines = String::new();
            return;
        }
        lines.lines.push_str(&name);
        lines.lines.push_str(&l[end..]);
        lines.lines.push('\n');
    }

    /// The end of the page.
    pub fn finish(mut self) -> Filtered {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest);
        let mut dropped = Dropped::default();
        let mut families: Vec<_> = self.families.into_iter().collect();
        families.sort_by_key(|(f, _)| *f);
        let mut text = String::new();
        for (f, lines) in families {
            if lines.series > MAX_FAMILY_SERIES {
                dropped.add(
                    &format!("{}{f}", prefix(self.server)),
                    DropReason::SeriesLimit,
                    lines.series as u64,
                );
                continue;
            }
            text.push_str(&lines.type_line);
            text.push_str(&lines.lines);
        }
        Filtered {
            text,
            samples: self.samples,
            prefixed: self.prefixed,
            start_time: self.start_time,
            dropped,
        }
    }
}

/// Why a reading cannot be used, if it cannot.
fn invalid(reading: &Reading) -> Option<DropReason> {
    let gauge = |v: f64| {
        if !v.is_finite() {
            Some(DropReason::NonFinite)
        } else if v < 0.0 {
            Some(DropReason::Negative)
        } else {
            None
        }
    };
    let check =
        |v: f64| gauge(v).or_else(|| (v > MAX_COUNTER_VALUE).then_some(DropReason::TooLarge));
    match reading {
        Reading::Gauge(v) => gauge(*v),
        Reading::Counter(v) => check(*v),
        Reading::Histogram {
            buckets,
            sum,
            count,
        } => buckets
            .iter()
            .find_map(|(le, c)| {
                if le.is_nan() {
                    Some(DropReason::NonFinite)
                } else {
                    check(*c)
                }
            })
            .or_else(|| check(*sum))
            .or_else(|| check(*count)),
    }
}

/// A histogram's reading: its buckets sorted by bound, its count (else its largest bucket's) and
/// sum (else 0).
fn histogram_reading(
    h: &[prometheus_parse::HistogramCount],
    count: Option<f64>,
    sum: Option<f64>,
) -> Reading {
    let mut buckets: Vec<(f64, f64)> = h.iter().map(|b| (b.less_than, b.count)).collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = count.or(buckets.last().map(|b| b.1)).unwrap_or(0.0);
    Reading::Histogram {
        buckets,
        sum: sum.unwrap_or(0.0),
        count,
    }
}

/// Parses a `/metrics` page and maps it to normalized series. Metric-name colons (`vllm:…`) are
/// read as underscores. Model labels pass through `models` (bounded). Dropped samples are not
/// reported: see [`normalize_page`].
pub fn normalize(
    server: Server,
    page: &str,
    default_model: &str,
    models: &ModelLabels,
) -> Result<Vec<Normalized>, ParseError> {
    normalize_page(server, page, default_model, models).map(|p| p.readings)
}

/// [`normalize`], with what was dropped.
pub fn normalize_page(
    server: Server,
    page: &str,
    default_model: &str,
    models: &ModelLabels,
) -> Result<Page, ParseError> {
    let mut filter = PageFilter::new(server);
    filter.push(page.as_bytes());
    normalize_filtered(server, filter.finish(), default_model, models)
}

/// Maps what [`PageFilter`] kept of a page to normalized series.
pub fn normalize_filtered(
    server: Server,
    filtered: Filtered,
    default_model: &str,
    models: &ModelLabels,
) -> Result<Page, ParseError> {
    if filtered.samples == 0 {
        return Err(ParseError::Empty { what: WHAT });
    }
    let prefix = prefix(server);
    if !filtered.prefixed {
        return Err(ParseError::invalid(
            WHAT,
            format!("no {prefix}* metrics: is this a {} server?", server.name()),
        ));
    }
    let mut dropped = filtered.dropped;
    let scrape = Scrape::parse(filtered.text.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| ParseError::invalid(WHAT, e.to_string()))?;
    // Only samples that map to a normalized series take a model label (a bounded resource).
    let model_of = |s: &prometheus_parse::Sample| {
        models
            .label(Some(s.labels.get("model_name").unwrap_or(default_model)))
            .to_string()
    };
    let series_key = |s: &prometheus_parse::Sample| {
        let mut l: Vec<(&String, &String)> = s.labels.iter().collect();
        l.sort();
        l.into_iter()
            .map(|(k, v)| format!("{k}={v}\u{1f}"))
            .collect::<String>()
    };
    let scalar = |v: &Value| match v {
        Value::Counter(x) | Value::Gauge(x) | Value::Untyped(x) => Some(*x),
        _ => None,
    };
    // Sums and counts of histograms arrive as separate samples, with the same labels.
    let mut side: HashMap<(String, String), f64> = HashMap::new();
    for s in &scrape.samples {
        if let Some(v) = scalar(&s.value) {
            side.insert((s.metric.clone(), series_key(s)), v);
        }
    }
    let mut out: Vec<Normalized> = Vec::new();
    let mut add = |def: &'static MetricDef, labels: Vec<String>, reading: Reading| {
        // Several upstream series can map to one (vLLM finished_reason stop and length → ok): add.
        if let Some(n) = out.iter_mut().find(|n| n.def == def && n.labels == labels) {
            match (&mut n.reading, reading) {
                (Reading::Counter(a), Reading::Counter(b))
                | (Reading::Gauge(a), Reading::Gauge(b)) => *a += b,
                // Several histograms (data-parallel engines, models folded into `other`): add
                // the buckets both have, and sums and counts.
                (
                    Reading::Histogram {
                        buckets,
                        sum,
                        count,
                    },
                    Reading::Histogram {
                        buckets: b2,
                        sum: s2,
                        count: c2,
                    },
                ) => {
                    buckets.retain_mut(|(le, c)| match b2.iter().find(|(l2, _)| l2 == le) {
                        Some((_, c2)) => {
                            *c += c2;
                            true
                        }
                        None => false,
                    });
                    *sum += s2;
                    *count += c2;
                }
                _ => {}
            }
        } else {
            out.push(Normalized {
                def,
                labels,
                reading,
            });
        }
    };
    let tpot = tpot_sources(server).iter().copied().find(|f| {
        scrape.samples.iter().any(|s| {
            s.metric.strip_prefix(prefix) == Some(*f) && matches!(s.value, Value::Histogram(_))
        })
    });
    let mut poisoned: HashSet<(&'static str, Vec<String>)> = HashSet::new();
    for s in &scrape.samples {
        let name = s.metric.strip_prefix(prefix).unwrap_or("");
        let v = scalar(&s.value);
        let counter = |def: &'static MetricDef, labels: Vec<String>| {
            v.map(|v| (def, labels, Reading::Counter(v)))
        };
        let mapped: Option<(&'static MetricDef, Vec<String>, Reading)> =
            match (server, name, &s.value) {
                (Server::Vllm | Server::Sglang | Server::LlamaCpp, "prompt_tokens_total", _)
                | (Server::Tgi, "request_input_length_sum", _) => {
                    counter(&m::INFERENCE_TOKENS, vec![model_of(s), "prompt".into()])
                }
                (Server::Vllm | Server::Sglang, "generation_tokens_total", _)
                | (Server::LlamaCpp, "tokens_predicted_total", _)
                | (Server::Tgi, "request_generated_tokens_sum", _) => {
                    counter(&m::INFERENCE_TOKENS, vec![model_of(s), "generated".into()])
                }
                (Server::Vllm, "num_requests_running", _)
                | (Server::Sglang, "num_running_reqs", _)
                | (Server::LlamaCpp, "requests_processing", _)
                | (Server::Tgi, "batch_current_size", _) => v.map(|v| {
                    (
                        &m::INFERENCE_IN_FLIGHT,
                        vec![model_of(s)],
                        Reading::Gauge(v),
                    )
                }),
                (Server::Vllm, "num_requests_waiting", _)
                | (Server::Sglang, "num_queue_reqs", _)
                | (Server::LlamaCpp, "requests_deferred", _)
                | (Server::Tgi, "queue_size", _) => {
                    v.map(|v| (&m::INFERENCE_WAITING, vec![model_of(s)], Reading::Gauge(v)))
                }
                (Server::Vllm, "request_success_total", _) => {
                    let outcome = if s.labels.get("finished_reason") == Some("abort") {
                        "cancelled"
                    } else {
                        "ok"
                    };
                    counter(&m::INFERENCE_REQUESTS, vec![model_of(s), outcome.into()])
                }
                (Server::Tgi, "request_success", _) => {
                    counter(&m::INFERENCE_REQUESTS, vec![model_of(s), "ok".into()])
                }
                (Server::Tgi, "request_failure", _) => {
                    let outcome = if s.labels.get("err") == Some("validation") {
                        "client_error"
                    } else {
                        "server_error"
                    };
                    counter(&m::INFERENCE_REQUESTS, vec![model_of(s), outcome.into()])
                }
                (_, _, Value::Histogram(h)) => histogram_def(server, name, tpot).map(|def| {
                    let side = |part: &str| {
                        side.get(&(format!("{}_{part}", s.metric), series_key(s)))
                            .copied()
                    };
                    let reading = histogram_reading(h, side("count"), side("sum"));
                    (def, vec![model_of(s)], reading)
                }),
                _ => None,
            };
        let Some((def, labels, reading)) = mapped else {
            continue;
        };
        match invalid(&reading) {
            // A series one of whose parts is invalid is dropped whole for this page: the sum of
            // the valid parts alone would look like a counter reset.
            Some(reason) => {
                dropped.add(&s.metric, reason, 1);
                poisoned.insert((def.name, labels));
            }
            None => add(def, labels, reading),
        }
    }
    out.retain(|n| !poisoned.contains(&(n.def.name, n.labels.clone())));
    out.sort_by(|a, b| (a.def.name, &a.labels).cmp(&(b.def.name, &b.labels)));
    Ok(Page {
        readings: out,
        dropped,
        start_time: filtered.start_time,
    })
}

/// Most counter states [`Monotonize`] keeps. Pages are bounded (models by `--max-models`,
/// series by [`MAX_FAMILY_SERIES`]), but a server that changes its histogram buckets or models
/// page after page would add states without end: past this many, the states not seen for the
/// longest are forgotten, down to three quarters of the bound (such a series, should it come
/// back, starts over). A series missing from a page or two (a value dropped as invalid, say)
/// is forgotten only after every state older than it; one on the current page never.
pub const MAX_COUNTER_STATES: usize = 10 * MAX_FAMILY_SERIES;

/// Keeps normalized readings monotonic across upstream restarts and builds metric families.
#[derive(Debug, Default)]
pub struct Monotonize {
    /// Per series part: its state and the page that last had it.
    counters: HashMap<String, (Monotonic, u64)>,
    page: u64,
    /// Whether the last page had a counter (or a histogram's count) below its previous value.
    reset: bool,
}

impl Monotonize {
    fn key(n: &Normalized, part: &str) -> String {
        format!("{}|{}|{part}", n.def.name, n.labels.join("\u{1f}"))
    }

    fn state(&mut self, key: String) -> &mut Monotonic {
        let page = self.page;
        let (state, seen) = self.counters.entry(key).or_default();
        *seen = page;
        state
    }

    /// Whether the last page given to [`Monotonize::families`] had a counter, or a histogram's
    /// count, below its value on an earlier page: the server restarted (or a series it summed
    /// vanished). One flag per page, however many counters went down.
    pub fn reset_seen(&self) -> bool {
        self.reset
    }

    /// Families for one page's readings.
    pub fn families(&mut self, readings: &[Normalized]) -> Vec<MetricFamily> {
        self.page += 1;
        self.reset = false;
        let families = self.build(readings);
        if self.counters.len() > MAX_COUNTER_STATES {
            self.prune(MAX_COUNTER_STATES * 3 / 4);
        }
        families
    }

    /// Forgets the least recently seen states (never one of the current page) until at most
    /// `keep` are left.
    fn prune(&mut self, keep: usize) {
        let page = self.page;
        let mut ages: Vec<u64> = self
            .counters
            .values()
            .map(|(_, seen)| *seen)
            .filter(|seen| *seen != page)
            .collect();
        let excess = self.counters.len().saturating_sub(keep).min(ages.len());
        if excess == 0 {
            return;
        }
        // The page seen last by the `excess`-th oldest state: states seen then or before go
        // (ties at that page go too, so slightly more than `excess` may be forgotten).
        let (_, cutoff, _) = ages.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        self.counters.retain(|_, (_, seen)| *seen > cutoff);
    }

    fn build(&mut self, readings: &[Normalized]) -> Vec<MetricFamily> {
        let mut by_name: HashMap<&'static str, MetricFamily> = HashMap::new();
        for n in readings {
            let mut metric = proto::Metric::default();
            metric.set_label(crate::store::label_pairs(n.def.labels, &n.labels));
            let kind = match &n.reading {
                Reading::Counter(v) => {
                    let mut c = proto::Counter::default();
                    let state = self.state(Self::key(n, ""));
                    let went_down = state.last_raw().is_some_and(|last| *v < last);
                    c.set_value(state.observe(*v));
                    self.reset |= went_down;
                    metric.set_counter(c);
                    MetricType::COUNTER
                }
                Reading::Gauge(v) => {
                    let mut g = proto::Gauge::default();
                    g.set_value(*v);
                    metric.set_gauge(g);
                    MetricType::GAUGE
                }
                Reading::Histogram {
                    buckets,
                    sum,
                    count,
                } => {
                    // The whole histogram resets when its count goes down.
                    let count_state = self.state(Self::key(n, "count"));
                    let reset = count_state.last_raw().is_some_and(|last| *count < last);
                    let count = count_state.observe(*count);
                    self.reset |= reset;
                    let sum = self.state(Self::key(n, "sum")).observe_reset(*sum, reset);
                    let mut h = proto::Histogram::default();
                    h.set_sample_count(count.round() as u64);
                    h.set_sample_sum(sum);
                    h.set_bucket(
                        buckets
                            .iter()
                            .filter(|(le, _)| le.is_finite())
                            .map(|(le, c)| {
                                let v = self
                                    .state(Self::key(n, &le.to_string()))
                                    .observe_reset(*c, reset);
                                let mut b = proto::Bucket::default();
                                b.set_upper_bound(*le);
                                b.set_cumulative_count(v.round() as u64);
                                b
                            })
                            .collect(),
                    );
                    metric.set_histogram(h);
                    MetricType::HISTOGRAM
                }
            };
            let f = by_name.entry(n.def.name).or_insert_with(|| {
                let mut f = MetricFamily::default();
                f.set_name(n.def.name.to_string());
                f.set_help(n.def.help.to_string());
                f.set_field_type(kind);
                f
            });
            f.mut_metric().push(metric);
        }
        by_name.into_values().collect()
    }
}

/// A synthetic vLLM page of about `size` bytes for tests and benchmarks: half a latency
/// histogram with thousands of engines (over [`MAX_FAMILY_SERIES`]), half a family no adapter
/// maps.
#[doc(hidden)]
pub fn synthetic_vllm_page(size: usize) -> String {
    let mut p = String::with_capacity(size + 4096);
    p.push_str("# TYPE vllm:e2e_request_latency_seconds histogram\n");
    let mut engine = 0;
    while p.len() < size / 2 {
        for le in ["0.3", "1.0", "2.5", "5.0", "10.0", "+Inf"] {
            p.push_str(&format!(
                "vllm:e2e_request_latency_seconds_bucket{{engine=\"{engine}\",le=\"{le}\",model_name=\"m\"}} 7\n"
            ));
        }
        p.push_str(&format!(
            "vllm:e2e_request_latency_seconds_count{{engine=\"{engine}\",model_name=\"m\"}} 7\n\
             vllm:e2e_request_latency_seconds_sum{{engine=\"{engine}\",model_name=\"m\"}} 3.5\n"
        ));
        engine += 1;
    }
    p.push_str("# TYPE vllm:cache_config_info gauge\n");
    let mut i = 0;
    while p.len() < size {
        p.push_str(&format!(
            "vllm:cache_config_info{{block_size=\"{i}\",engine=\"0\",model_name=\"m\"}} 1\n"
        ));
        i += 1;
    }
    p
}

/// Dropped adapter samples of every adapter, by server and reason
/// (`cellwatch_inference_adapter_dropped_samples_total`, at zero from the start). Logs a warning
/// the first time a (server, upstream family, reason) drops, and only counts after that.
#[derive(Debug, Default)]
pub struct DropCounter {
    totals: BTreeMap<(&'static str, DropReason), u64>,
    warned: HashSet<(&'static str, String, DropReason)>,
}

impl DropCounter {
    /// Series at zero for a server's reasons.
    pub fn register(&mut self, server: Server) {
        for r in DropReason::ALL {
            self.totals.entry((server.name(), r)).or_default();
        }
    }

    /// Counts one page's drops.
    pub fn record(&mut self, server: Server, url: &str, dropped: &Dropped) {
        for ((family, reason), n) in &dropped.0 {
            *self.totals.entry((server.name(), *reason)).or_default() += n;
            if self.warned.insert((server.name(), family.clone(), *reason)) {
                tracing::warn!(
                    server = server.name(),
                    url,
                    family = %family,
                    reason = reason.label(),
                    samples = n,
                    limit = MAX_FAMILY_SERIES,
                    "dropped samples of an inference server's page (counted in cellwatch_inference_adapter_dropped_samples_total; further drops of this family are not logged)"
                );
            }
        }
    }

    /// The family.
    pub fn family(&self) -> MetricFamily {
        let def = &m::INFERENCE_ADAPTER_DROPPED;
        let mut f = MetricFamily::default();
        f.set_name(def.name.to_string());
        f.set_help(def.help.to_string());
        f.set_field_type(MetricType::COUNTER);
        for ((server, reason), n) in &self.totals {
            let mut metric = proto::Metric::default();
            metric.set_label(crate::store::label_pairs(
                def.labels,
                &[server.to_string(), reason.label().to_string()],
            ));
            let mut c = proto::Counter::default();
            c.set_value(*n as f64);
            metric.set_counter(c);
            f.mut_metric().push(metric);
        }
        f
    }
}

/// What one scrape of an adapter's server showed, for [`RestartWatch`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scraped {
    /// A page was read and normalized.
    Page {
        /// A counter it maps (or a histogram's count) went down ([`Monotonize::reset_seen`]).
        reset: bool,
        /// Its `process_start_time_seconds`, when it has one.
        start_time: Option<f64>,
    },
    /// No connection to the server (refused, unreachable): it is not running.
    Unreachable,
    /// Anything else failed (no answer in time, an HTTP error status, a page too large or
    /// unparsable): the server runs, so this says nothing about restarts.
    Failed,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
enum Seen {
    /// No page yet.
    #[default]
    Never,
    /// The last reach succeeded; the last start time known.
    Up(Option<f64>),
    /// Connections failed after a page had been read.
    Down(Option<f64>),
}

/// Restarts of one adapter's server, from what its scrapes showed. A restart is counted when a
/// page follows failed connections (the server came back), or when a page shows a counter gone
/// down or a changed `process_start_time_seconds` since the page before; one restart counts
/// once, whichever of these (and however many counters) show it. Not counted: a server that is
/// down when the exporter starts and then comes up, slow or failing pages of a running server,
/// and a restart that both keeps every counter above its old value and happens between two
/// scrapes of a server without `process_start_time_seconds`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RestartWatch {
    seen: Seen,
    restarts: u64,
}

impl RestartWatch {
    /// Takes one scrape's result; returns whether it showed a restart.
    pub fn observe(&mut self, scraped: Scraped) -> bool {
        let (next, restarted) = match (self.seen, scraped) {
            (Seen::Never, Scraped::Page { start_time, .. }) => (Seen::Up(start_time), false),
            (Seen::Up(before), Scraped::Page { reset, start_time }) => {
                let moved =
                    matches!((before, start_time), (Some(a), Some(b)) if (a - b).abs() > 1e-3);
                (Seen::Up(start_time.or(before)), reset || moved)
            }
            (Seen::Down(before), Scraped::Page { start_time, .. }) => {
                (Seen::Up(start_time.or(before)), true)
            }
            (Seen::Up(t) | Seen::Down(t), Scraped::Unreachable) => (Seen::Down(t), false),
            (seen, _) => (seen, false),
        };
        self.seen = next;
        self.restarts += u64::from(restarted);
        restarted
    }

    /// Restarts counted so far.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
}

/// `cellwatch_inference_upstream_restarts_total` of the adapters: one series per server kind
/// (servers of one kind add up), each present from the start.
pub fn restarts_family<'a>(
    servers: impl IntoIterator<Item = (Server, &'a RestartWatch)>,
) -> MetricFamily {
    let def = &m::INFERENCE_UPSTREAM_RESTARTS;
    let mut totals: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (server, watch) in servers {
        *totals.entry(server.name()).or_default() += watch.restarts();
    }
    let mut f = MetricFamily::default();
    f.set_name(def.name.to_string());
    f.set_help(def.help.to_string());
    f.set_field_type(MetricType::COUNTER);
    for (server, n) in totals {
        let mut metric = proto::Metric::default();
        metric.set_label(crate::store::label_pairs(def.labels, &[server.to_string()]));
        let mut c = proto::Counter::default();
        c.set_value(n as f64);
        metric.set_counter(c);
        f.mut_metric().push(metric);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let s: AdapterSpec = "llamacpp=http://127.0.0.1:8080/metrics;model=llama-70b"
            .parse()
            .unwrap();
        assert_eq!(
            (s.server, s.url.as_str(), s.model.as_deref()),
            (
                Server::LlamaCpp,
                "http://127.0.0.1:8080/metrics",
                Some("llama-70b")
            )
        );
        assert!(
            "nope=http://x/metrics"
                .parse::<AdapterSpec>()
                .unwrap_err()
                .contains("not a server kind")
        );
        assert!("vllm".parse::<AdapterSpec>().is_err());
        assert!(
            "vllm=https://x/metrics"
                .parse::<AdapterSpec>()
                .unwrap_err()
                .contains("http://")
        );
    }

    /// A one-bucket histogram family `name` of `count` observations, model `m`.
    fn hist(name: &str, count: u32) -> String {
        format!(
            "# TYPE {name} histogram\n{name}_bucket{{le=\"0.05\",model_name=\"m\"}} {count}\n{name}_bucket{{le=\"+Inf\",model_name=\"m\"}} {count}\n{name}_sum{{model_name=\"m\"}} 1\n{name}_count{{model_name=\"m\"}} {count}\n"
        )
    }

    fn tpot_count(server: Server, page: &str) -> Option<f64> {
        let models = ModelLabels::new(4);
        let r = normalize(server, page, "m", &models).unwrap();
        let text = crate::store::encode_families(Monotonize::default().families(&r));
        cellwatch_metrics::exposition::value(
            &text,
            r#"cellwatch_inference_time_per_output_token_seconds_count{model="m"}"#,
        )
    }

    #[test]
    fn the_time_per_output_token_comes_from_one_source_per_page_best_first() {
        let per_request = hist("vllm:request_time_per_output_token_seconds", 3);
        let itl = hist("vllm:inter_token_latency_seconds", 500);
        let old = hist("vllm:time_per_output_token_seconds", 500);
        // vLLM 0.11+: the per-request histogram, whatever else the page has.
        assert_eq!(
            tpot_count(Server::Vllm, &format!("{itl}{old}{per_request}")),
            Some(3.0)
        );
        // vLLM 0.11 without the per-request one: the per-token histogram once, not under both
        // of its names.
        assert_eq!(
            tpot_count(Server::Vllm, &format!("{old}{itl}")),
            Some(500.0)
        );
        // vLLM before 0.11: the old name.
        assert_eq!(tpot_count(Server::Vllm, &old), Some(500.0));
        // SGLang: the renamed histogram first, the old name alone otherwise.
        let s_itl = hist("sglang:inter_token_latency_seconds", 70);
        let s_old = hist("sglang:time_per_output_token_seconds", 9);
        assert_eq!(
            tpot_count(Server::Sglang, &format!("{s_old}{s_itl}")),
            Some(70.0)
        );
        assert_eq!(tpot_count(Server::Sglang, &s_old), Some(9.0));
        // A page with none: no TPOT series.
        assert_eq!(
            tpot_count(Server::Vllm, &hist("vllm:e2e_request_latency_seconds", 2)),
            None
        );
    }

    #[test]
    fn counters_and_histograms_survive_a_restart() {
        let models = ModelLabels::new(4);
        let page = |tokens: u64, count: u64, b1: u64| {
            format!(
                "# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total{{model_name=\"m\"}} {tokens}\n\
                 # TYPE vllm:e2e_request_latency_seconds histogram\n\
                 vllm:e2e_request_latency_seconds_bucket{{le=\"1.0\",model_name=\"m\"}} {b1}\n\
                 vllm:e2e_request_latency_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} {count}\n\
                 vllm:e2e_request_latency_seconds_sum{{model_name=\"m\"}} {count}.5\n\
                 vllm:e2e_request_latency_seconds_count{{model_name=\"m\"}} {count}\n"
            )
        };
        let mut mono = Monotonize::default();
        let text = |mono: &mut Monotonize, p: &str| {
            crate::store::encode_families(
                mono.families(&normalize(Server::Vllm, p, "unknown", &models).unwrap()),
            )
        };
        text(&mut mono, &page(100, 10, 4));
        let after = text(&mut mono, &page(5, 2, 1));
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &after,
                r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#
            ),
            Some(105.0),
            "{after}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &after,
                r#"cellwatch_inference_request_duration_seconds_count{model="m"}"#
            ),
            Some(12.0),
            "{after}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &after,
                r#"cellwatch_inference_request_duration_seconds_bucket{model="m",le="1"}"#
            ),
            Some(5.0),
            "{after}"
        );
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &after,
                r#"cellwatch_inference_request_duration_seconds_sum{model="m"}"#
            ),
            Some(13.0),
            "{after}"
        );
    }

    #[test]
    fn data_parallel_histograms_add_up_and_unmapped_series_take_no_model_slot() {
        let models = ModelLabels::new(1);
        let page = "# TYPE python_gc_objects_collected_total counter\npython_gc_objects_collected_total{generation=\"0\"} 5\n\
            # TYPE vllm:e2e_request_latency_seconds histogram\n\
            vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"1.0\",model_name=\"m\"} 3\n\
            vllm:e2e_request_latency_seconds_bucket{engine=\"0\",le=\"+Inf\",model_name=\"m\"} 4\n\
            vllm:e2e_request_latency_seconds_count{engine=\"0\",model_name=\"m\"} 4\n\
            vllm:e2e_request_latency_seconds_sum{engine=\"0\",model_name=\"m\"} 2.5\n\
            vllm:e2e_request_latency_seconds_bucket{engine=\"1\",le=\"1.0\",model_name=\"m\"} 5\n\
            vllm:e2e_request_latency_seconds_bucket{engine=\"1\",le=\"+Inf\",model_name=\"m\"} 6\n\
            vllm:e2e_request_latency_seconds_count{engine=\"1\",model_name=\"m\"} 6\n\
            vllm:e2e_request_latency_seconds_sum{engine=\"1\",model_name=\"m\"} 1.5\n";
        let text = crate::store::encode_families(
            Monotonize::default()
                .families(&normalize(Server::Vllm, page, "unknown", &models).unwrap()),
        );
        let v = |s: &str| cellwatch_metrics::exposition::value(&text, s);
        assert_eq!(
            v(r#"cellwatch_inference_request_duration_seconds_count{model="m"}"#),
            Some(10.0),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_request_duration_seconds_sum{model="m"}"#),
            Some(4.0),
            "{text}"
        );
        assert_eq!(
            v(r#"cellwatch_inference_request_duration_seconds_bucket{model="m",le="1"}"#),
            Some(8.0),
            "{text}"
        );
    }

    fn tokens_page(value: &str) -> String {
        format!(
            "# TYPE vllm:generation_tokens_total counter\n\
             vllm:generation_tokens_total{{finished_reason=\"stop\",model_name=\"m\"}} {value}\n\
             vllm:generation_tokens_total{{finished_reason=\"length\",model_name=\"m\"}} 10\n\
             # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{{model_name=\"m\"}} {value}\n"
        )
    }

    fn render(mono: &mut Monotonize, page: &Page) -> String {
        crate::store::encode_families(mono.families(&page.readings))
    }

    const TOKENS: &str = r#"cellwatch_inference_tokens_total{model="m",kind="generated"}"#;

    #[test]
    fn non_finite_and_negative_values_are_dropped_and_counted() {
        let models = ModelLabels::new(4);
        let mut mono = Monotonize::default();
        let mut drops = DropCounter::default();
        drops.register(Server::Vllm);
        let mut seen = Vec::new();
        for value in ["100", "+Inf", "NaN", "-Inf", "-5", "120"] {
            let page = normalize_page(Server::Vllm, &tokens_page(value), "x", &models).unwrap();
            drops.record(Server::Vllm, "http://test", &page.dropped);
            let text = render(&mut mono, &page);
            let v = cellwatch_metrics::exposition::value(&text, TOKENS);
            if value
                .parse::<f64>()
                .is_ok_and(|v| v.is_finite() && v >= 0.0)
            {
                assert!(v.is_some(), "{value}: {text}");
            } else {
                // The whole series (stop + length) is left out: 10 alone would look like a reset.
                assert_eq!(v, None, "{value}: {text}");
                assert!(
                    !text.contains("in_flight"),
                    "{value}: the gauge too: {text}"
                );
            }
            seen.extend(v);
        }
        assert_eq!(seen, [110.0, 130.0], "never inf, never backwards");
        let text = crate::store::encode_families(vec![drops.family()]);
        let v = |r: &str| {
            cellwatch_metrics::exposition::value(
                &text,
                &format!(
                    r#"cellwatch_inference_adapter_dropped_samples_total{{server="vllm",reason="{r}"}}"#
                ),
            )
        };
        assert_eq!(v("non_finite"), Some(6.0), "{text}");
        assert_eq!(v("negative"), Some(2.0), "{text}");
        assert_eq!(v("series_limit"), Some(0.0), "{text}");
        assert_eq!(v("too_large"), Some(0.0), "{text}");
    }

    #[test]
    fn counter_states_are_pruned_least_recently_seen_first() {
        let def = &m::INFERENCE_TOKENS;
        let counter = |model: String, v: f64| Normalized {
            def,
            labels: vec![model, "generated".into()],
            reading: Reading::Counter(v),
        };
        let fillers = |batch: &str| -> Vec<Normalized> {
            (0..MAX_COUNTER_STATES / 2 + 1)
                .map(|i| counter(format!("{batch}{i}"), 1.0))
                .collect()
        };
        let value = |families: &[MetricFamily]| {
            families
                .iter()
                .flat_map(|f| f.get_metric())
                .find(|m| m.get_label().iter().any(|l| l.value() == "a"))
                .map(|m| m.get_counter().get_value())
        };
        let mut mono = Monotonize::default();
        mono.families(&fillers("old"));
        mono.families(&[counter("a".into(), 100.0)]);
        // A restart: 100 counted, 10 since.
        assert_eq!(
            value(&mono.families(&[counter("a".into(), 10.0)])),
            Some(110.0)
        );
        // A page without `a` (its value invalid, say) and with many new series: past the
        // bound, the older fillers are forgotten, not `a`.
        mono.families(&fillers("new"));
        assert!(mono.counters.len() <= MAX_COUNTER_STATES);
        assert_eq!(
            value(&mono.families(&[counter("a".into(), 20.0)])),
            Some(120.0),
            "the counter went backwards"
        );
    }

    #[test]
    fn a_giant_line_arriving_in_small_chunks_is_searched_once() {
        let line = format!(
            "vllm:num_requests_running{{model_name=\"{}\"}} 1\n",
            "m".repeat(256 << 10)
        );
        let page = format!("# TYPE vllm:num_requests_running gauge\n{line}{line}");
        let mut whole = PageFilter::new(Server::Vllm);
        whole.push(page.as_bytes());
        let mut split = PageFilter::new(Server::Vllm);
        for c in page.as_bytes().chunks(64) {
            split.push(c);
        }
        // Every byte searched once: the old filter searched the unfinished line again with
        // each chunk (about 4,000 times here).
        assert!(
            split.scanned <= page.len() as u64,
            "{} bytes searched for a page of {}",
            split.scanned,
            page.len()
        );
        assert_eq!(split.samples, 2);
        assert_eq!(split.samples, whole.samples);
        assert_eq!(split.families.len(), whole.families.len());
    }

    #[test]
    fn counter_values_above_2_pow_53_are_dropped_and_counted() {
        let models = ModelLabels::new(4);
        let mut mono = Monotonize::default();
        let mut drops = DropCounter::default();
        drops.register(Server::Vllm);
        let mut seen = Vec::new();
        for value in ["100", "1e300", "9007199254740994", "1e308", "120"] {
            let page = normalize_page(Server::Vllm, &tokens_page(value), "x", &models).unwrap();
            drops.record(Server::Vllm, "http://test", &page.dropped);
            let text = render(&mut mono, &page);
            seen.extend(cellwatch_metrics::exposition::value(&text, TOKENS));
        }
        // 1e300 taken would make 120 a reset on top of 1e300, where 20 more tokens are lost.
        assert_eq!(seen, [110.0, 130.0], "never lost, never infinite");
        let text = crate::store::encode_families(vec![drops.family()]);
        assert_eq!(
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_adapter_dropped_samples_total{server="vllm",reason="too_large"}"#
            ),
            Some(3.0),
            "{text}"
        );
    }

    #[test]
    fn a_restart_after_a_dropped_page_is_still_a_reset() {
        let models = ModelLabels::new(4);
        let mut mono = Monotonize::default();
        let mut last = None;
        for value in ["100", "NaN", "5", "+Inf", "7"] {
            let page = normalize_page(Server::Vllm, &tokens_page(value), "x", &models).unwrap();
            if let Some(v) = cellwatch_metrics::exposition::value(&render(&mut mono, &page), TOKENS)
            {
                last = Some(v);
            }
        }
        // 110, then a restart at 15 (+15), then 17 (+2).
        assert_eq!(last, Some(127.0));
    }

    #[test]
    fn a_histogram_with_a_negative_or_infinite_count_is_dropped_whole() {
        let models = ModelLabels::new(4);
        for bad in ["-1", "+Inf", "NaN"] {
            let page = format!(
                "# TYPE vllm:e2e_request_latency_seconds histogram\n\
                 vllm:e2e_request_latency_seconds_bucket{{le=\"1.0\",model_name=\"m\"}} {bad}\n\
                 vllm:e2e_request_latency_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} 4\n\
                 vllm:e2e_request_latency_seconds_sum{{model_name=\"m\"}} 2\n\
                 vllm:e2e_request_latency_seconds_count{{model_name=\"m\"}} 4\n"
            );
            let page = normalize_page(Server::Vllm, &page, "x", &models).unwrap();
            assert!(page.readings.is_empty(), "{bad}: {:?}", page.readings);
            assert_eq!(page.dropped.0.values().sum::<u64>(), 1, "{bad}");
        }
    }

    #[test]
    fn a_histogram_with_100000_buckets_is_dropped_not_passed_through() {
        let models = ModelLabels::new(4);
        let mut page = String::from("# TYPE vllm:time_to_first_token_seconds histogram\n");
        for i in 0..100_000 {
            page.push_str(&format!(
                "vllm:time_to_first_token_seconds_bucket{{le=\"{i}.5\",model_name=\"m\"}} {i}\n"
            ));
        }
        page.push_str(
            "vllm:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 100000\n\
             vllm:time_to_first_token_seconds_count{model_name=\"m\"} 100000\n\
             vllm:time_to_first_token_seconds_sum{model_name=\"m\"} 1\n\
             # TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{model_name=\"m\"} 2\n",
        );
        let page = normalize_page(Server::Vllm, &page, "x", &models).unwrap();
        let text = render(&mut Monotonize::default(), &page);
        let series = text.lines().filter(|l| !l.starts_with('#')).count();
        assert!(series <= 10, "{series} series");
        assert!(
            text.contains("cellwatch_inference_requests_in_flight{model=\"m\"} 2"),
            "{text}"
        );
        assert_eq!(page.dropped.total(DropReason::SeriesLimit), 100_003);
        assert!(page.dropped.0.contains_key(&(
            "vllm_time_to_first_token_seconds".into(),
            DropReason::SeriesLimit
        )));
    }

    #[test]
    fn counter_states_stay_bounded_when_buckets_change_every_page() {
        let models = ModelLabels::new(4);
        let mut mono = Monotonize::default();
        for round in 0..50 {
            let mut page = String::from("# TYPE vllm:e2e_request_latency_seconds histogram\n");
            for i in 0..1_000 {
                page.push_str(&format!(
                    "vllm:e2e_request_latency_seconds_bucket{{le=\"{round}.{i}\",model_name=\"m\"}} 1\n"
                ));
            }
            page.push_str(
                "vllm:e2e_request_latency_seconds_bucket{le=\"+Inf\",model_name=\"m\"} 1\n",
            );
            let page = normalize_page(Server::Vllm, &page, "x", &models).unwrap();
            assert_eq!(page.readings.len(), 1);
            mono.families(&page.readings);
            assert!(
                mono.counters.len() <= MAX_COUNTER_STATES + 1_003,
                "{} states after page {round}",
                mono.counters.len()
            );
        }
        // A series the pages keep stays counted across a pruning.
        let mut mono = Monotonize::default();
        let text = |mono: &mut Monotonize, extra: usize, tokens: u64| {
            let mut page = tokens_page(&tokens.to_string());
            page.push_str("# TYPE vllm:e2e_request_latency_seconds histogram\n");
            for i in 0..1_900 {
                page.push_str(&format!(
                    "vllm:e2e_request_latency_seconds_bucket{{le=\"{extra}.{i}\",model_name=\"m\"}} 1\n"
                ));
            }
            let page = normalize_page(Server::Vllm, &page, "x", &models).unwrap();
            render(mono, &page)
        };
        text(&mut mono, 0, 100);
        for round in 1..20 {
            text(&mut mono, round, 5);
        }
        let last = text(&mut mono, 20, 7);
        assert_eq!(
            cellwatch_metrics::exposition::value(&last, TOKENS),
            Some(127.0),
            "110, a restart (+15), then +2"
        );
    }

    #[test]
    fn the_filter_keeps_lines_split_across_chunks() {
        let page = tokens_page("42");
        let whole = normalize_page(Server::Vllm, &page, "x", &ModelLabels::new(4)).unwrap();
        for size in [1, 3, 17] {
            let mut f = PageFilter::new(Server::Vllm);
            for chunk in page.as_bytes().chunks(size) {
                f.push(chunk);
            }
            let p = normalize_filtered(Server::Vllm, f.finish(), "x", &ModelLabels::new(4));
            assert_eq!(p.unwrap(), whole, "chunks of {size}");
        }
    }

    #[test]
    fn wrong_server_or_garbage_is_an_error() {
        let models = ModelLabels::new(4);
        assert!(
            normalize(Server::Tgi, "vllm:num_requests_running 1\n", "x", &models)
                .unwrap_err()
                .to_string()
                .contains("tgi")
        );
        assert!(normalize(Server::Vllm, "", "x", &models).is_err());
        assert!(normalize(Server::Vllm, "<html>not metrics</html>", "x", &models).is_err());
    }

    #[test]
    fn a_restart_is_counted_once_whichever_signs_show_it() {
        let page = |reset, start_time| Scraped::Page { reset, start_time };
        let run = |steps: &[Scraped]| {
            let mut w = RestartWatch::default();
            let seen: Vec<bool> = steps.iter().map(|s| w.observe(*s)).collect();
            (seen, w.restarts())
        };
        // Counters reset: one restart, however many counters (one flag per page).
        assert_eq!(
            run(&[page(false, None), page(true, None), page(false, None)]),
            (vec![false, true, false], 1)
        );
        // Refused, then back with its counters reset and a new start time: once.
        assert_eq!(
            run(&[
                page(false, Some(100.0)),
                Scraped::Unreachable,
                Scraped::Unreachable,
                page(true, Some(200.0)),
                page(false, Some(200.0)),
            ]),
            (vec![false, false, false, true, false], 1)
        );
        // Back with counters above their old values: still a restart (it was not reachable).
        assert_eq!(
            run(&[page(false, None), Scraped::Unreachable, page(false, None)]),
            (vec![false, false, true], 1)
        );
        // A new start time alone (a restart between two scrapes, counters grown past).
        assert_eq!(
            run(&[
                page(false, Some(100.0)),
                page(false, Some(100.0)),
                page(false, Some(160.0))
            ]),
            (vec![false, false, true], 1)
        );
        // A page without the start time keeps the one known: the next change still counts.
        assert_eq!(
            run(&[
                page(false, Some(100.0)),
                page(false, None),
                page(false, Some(160.0))
            ]),
            (vec![false, false, true], 1)
        );
        // Down at the exporter's start, then up: no restart seen. Slow or failing pages of a
        // running server: none either.
        assert_eq!(
            run(&[
                Scraped::Unreachable,
                page(false, Some(1.0)),
                Scraped::Failed,
                page(false, Some(1.0)),
            ]),
            (vec![false, false, false, false], 0)
        );
        // A restart loop: every come-back counts.
        let mut w = RestartWatch::default();
        w.observe(page(false, None));
        for _ in 0..3 {
            w.observe(Scraped::Unreachable);
            w.observe(page(true, None));
        }
        assert_eq!(w.restarts(), 3);
    }

    #[test]
    fn resets_are_seen_per_page_and_the_start_time_is_read() {
        let models = ModelLabels::new(4);
        let mut mono = Monotonize::default();
        let mut resets = Vec::new();
        for (tokens, extra) in [
            (100, ""),
            (120, ""),
            (5, ""),
            (7, "process_start_time_seconds 1.7e9\n"),
        ] {
            let text = format!("{extra}{}", tokens_page(&tokens.to_string()));
            let page = normalize_page(Server::Vllm, &text, "x", &models).unwrap();
            mono.families(&page.readings);
            resets.push((mono.reset_seen(), page.start_time));
        }
        assert_eq!(
            resets,
            [
                (false, None),
                (false, None),
                (true, None),
                (false, Some(1.7e9))
            ]
        );
        // Labels, a timestamp, several processes (the newest counts), garbage.
        let page = "# TYPE process_start_time_seconds gauge\n\
            process_start_time_seconds{pid=\"1\",x=\"}\"} 100.5 1700000000000\n\
            process_start_time_seconds{pid=\"2\"} 200\n\
            process_start_time_seconds NaN\n\
            vllm:num_requests_running 1\n";
        let page = normalize_page(Server::Vllm, page, "x", &models).unwrap();
        assert_eq!(page.start_time, Some(200.0));
        // A histogram whose count goes down is a reset too.
        let hist = |count: u64| {
            format!(
                "# TYPE vllm:e2e_request_latency_seconds histogram\n\
                 vllm:e2e_request_latency_seconds_bucket{{le=\"+Inf\",model_name=\"m\"}} {count}\n\
                 vllm:e2e_request_latency_seconds_count{{model_name=\"m\"}} {count}\n"
            )
        };
        let mut mono = Monotonize::default();
        let mut seen = Vec::new();
        for c in [10, 12, 3] {
            let page = normalize_page(Server::Vllm, &hist(c), "x", &models).unwrap();
            assert_eq!(page.readings.len(), 1);
            mono.families(&page.readings);
            seen.push(mono.reset_seen());
        }
        assert_eq!(seen, [false, false, true]);
    }

    #[test]
    fn the_restarts_family_has_every_server_at_zero_and_adds_up_one_kind() {
        let mut a = RestartWatch::default();
        a.observe(Scraped::Page {
            reset: false,
            start_time: None,
        });
        a.observe(Scraped::Page {
            reset: true,
            start_time: None,
        });
        let b = a.clone();
        let idle = RestartWatch::default();
        let text = crate::store::encode_families(vec![restarts_family([
            (Server::Vllm, &a),
            (Server::Vllm, &b),
            (Server::Tgi, &idle),
        ])]);
        let v = |s: &str| {
            cellwatch_metrics::exposition::value(
                &text,
                &format!(r#"cellwatch_inference_upstream_restarts_total{{server="{s}"}}"#),
            )
        };
        assert_eq!(
            (v("vllm"), v("tgi"), v("sglang")),
            (Some(2.0), Some(0.0), None),
            "{text}"
        );
    }
}
