//! Adapters for inference servers that export Prometheus metrics (vLLM, llama.cpp, SGLang, TGI):
//! their `/metrics` page, parsed with the `prometheus-parse` crate, becomes the normalized
//! `cellwatch_inference_*` series. Counters stay monotonic across upstream restarts (a histogram
//! resets as a whole when its `_count` goes down). What a server does not export is not
//! invented: llama.cpp has no latency histograms and no outcomes, TGI no time to first token,
//! SGLang no outcomes.

use std::collections::HashMap;
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

/// Parses a `/metrics` page and maps it to normalized series. Metric-name colons (`vllm:…`) are
/// read as underscores. Model labels pass through `models` (bounded).
pub fn normalize(
    server: Server,
    page: &str,
    default_model: &str,
    models: &ModelLabels,
) -> Result<Vec<Normalized>, ParseError> {
    // prometheus-parse reads names as \w+; colons are only legal in recording-rule names, and the
    // servers that use them (vLLM, SGLang, llama.cpp) keep names unique without them.
    let lines = page.lines().map(|l| {
        let l = l.trim_start();
        let fixed = if let Some(rest) = l.strip_prefix('#') {
            let mut parts = rest.splitn(3, ' ').collect::<Vec<_>>();
            if parts.len() == 3 && (parts[1] == "HELP" || parts[1] == "TYPE") {
                let name = parts[2].split(' ').next().unwrap_or("").replace(':', "_");
                let tail = parts[2].split_once(' ').map_or("", |(_, t)| t).to_string();
                parts.truncate(2);
                format!("#{} {} {}", parts.join(" "), name, tail)
            } else {
                l.to_string()
            }
        } else {
            let end = l.find(['{', ' ', '\t']).unwrap_or(l.len());
            format!("{}{}", l[..end].replace(':', "_"), &l[end..])
        };
        Ok(fixed)
    });
    let scrape = Scrape::parse(lines).map_err(|e| ParseError::invalid(WHAT, e.to_string()))?;
    if scrape.samples.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    let prefix = match server {
        Server::Vllm => "vllm_",
        Server::LlamaCpp => "llamacpp_",
        Server::Sglang => "sglang_",
        Server::Tgi => "tgi_",
    };
    if !scrape.samples.iter().any(|s| s.metric.starts_with(prefix)) {
        return Err(ParseError::invalid(
            WHAT,
            format!("no {prefix}* metrics: is this a {} server?", server.name()),
        ));
    }
    // Only samples that map to a normalized series take a model label (a bounded resource).
    let model_of = |s: &prometheus_parse::Sample| {
        models.label(Some(s.labels.get("model_name").unwrap_or(default_model)))
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
    for s in &scrape.samples {
        let name = s.metric.strip_prefix(prefix).unwrap_or("");
        let v = scalar(&s.value);
        match (server, name, &s.value) {
            (Server::Vllm | Server::Sglang, "prompt_tokens_total", _)
            | (Server::LlamaCpp, "prompt_tokens_total", _) => {
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_TOKENS,
                        vec![model_of(s), "prompt".into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Vllm | Server::Sglang, "generation_tokens_total", _)
            | (Server::LlamaCpp, "tokens_predicted_total", _) => {
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_TOKENS,
                        vec![model_of(s), "generated".into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Vllm, "num_requests_running", _)
            | (Server::Sglang, "num_running_reqs", _)
            | (Server::LlamaCpp, "requests_processing", _)
            | (Server::Tgi, "batch_current_size", _) => {
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_IN_FLIGHT,
                        vec![model_of(s)],
                        Reading::Gauge(v),
                    );
                }
            }
            (Server::Vllm, "request_success_total", _) => {
                let outcome = if s.labels.get("finished_reason") == Some("abort") {
                    "cancelled"
                } else {
                    "ok"
                };
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_REQUESTS,
                        vec![model_of(s), outcome.into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Tgi, "request_success", _) => {
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_REQUESTS,
                        vec![model_of(s), "ok".into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Tgi, "request_failure", _) => {
                let outcome = if s.labels.get("err") == Some("validation") {
                    "client_error"
                } else {
                    "server_error"
                };
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_REQUESTS,
                        vec![model_of(s), outcome.into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Tgi, "request_input_length_sum", _) => {
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_TOKENS,
                        vec![model_of(s), "prompt".into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Tgi, "request_generated_tokens_sum", _) => {
                if let Some(v) = v {
                    add(
                        &m::INFERENCE_TOKENS,
                        vec![model_of(s), "generated".into()],
                        Reading::Counter(v),
                    );
                }
            }
            (Server::Vllm | Server::Sglang, "e2e_request_latency_seconds", Value::Histogram(h))
            | (Server::Vllm | Server::Sglang, "time_to_first_token_seconds", Value::Histogram(h))
            | (Server::Tgi, "request_duration", Value::Histogram(h)) => {
                let def = if name == "time_to_first_token_seconds" {
                    &m::INFERENCE_TTFT
                } else {
                    &m::INFERENCE_REQUEST_DURATION
                };
                let mut buckets: Vec<(f64, f64)> =
                    h.iter().map(|b| (b.less_than, b.count)).collect();
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                let count = side
                    .get(&(format!("{}_count", s.metric), series_key(s)))
                    .copied()
                    .or(buckets.last().map(|b| b.1))
                    .unwrap_or(0.0);
                let sum = side
                    .get(&(format!("{}_sum", s.metric), series_key(s)))
                    .copied()
                    .unwrap_or(0.0);
                add(
                    def,
                    vec![model_of(s)],
                    Reading::Histogram {
                        buckets,
                        sum,
                        count,
                    },
                );
            }
            _ => {}
        }
    }
    out.sort_by(|a, b| (a.def.name, &a.labels).cmp(&(b.def.name, &b.labels)));
    Ok(out)
}

/// Keeps normalized readings monotonic across upstream restarts and builds metric families.
#[derive(Debug, Default)]
pub struct Monotonize {
    counters: HashMap<String, Monotonic>,
}

impl Monotonize {
    fn key(n: &Normalized, part: &str) -> String {
        format!("{}|{}|{part}", n.def.name, n.labels.join("\u{1f}"))
    }

    /// Families for one page's readings.
    pub fn families(&mut self, readings: &[Normalized]) -> Vec<MetricFamily> {
        let mut by_name: HashMap<&'static str, MetricFamily> = HashMap::new();
        for n in readings {
            let mut metric = proto::Metric::default();
            metric.set_label(crate::store::label_pairs(n.def.labels, &n.labels));
            let kind = match &n.reading {
                Reading::Counter(v) => {
                    let mut c = proto::Counter::default();
                    c.set_value(
                        self.counters
                            .entry(Self::key(n, ""))
                            .or_default()
                            .observe(*v),
                    );
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
                    let count_state = self.counters.entry(Self::key(n, "count")).or_default();
                    let reset = count_state.last_raw().is_some_and(|last| *count < last);
                    let count = count_state.observe(*count);
                    let sum = self
                        .counters
                        .entry(Self::key(n, "sum"))
                        .or_default()
                        .observe_reset(*sum, reset);
                    let mut h = proto::Histogram::default();
                    h.set_sample_count(count.round() as u64);
                    h.set_sample_sum(sum);
                    h.set_bucket(
                        buckets
                            .iter()
                            .filter(|(le, _)| le.is_finite())
                            .map(|(le, c)| {
                                let v = self
                                    .counters
                                    .entry(Self::key(n, &le.to_string()))
                                    .or_default()
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
}
