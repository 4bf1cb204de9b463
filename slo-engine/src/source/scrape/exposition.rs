//! Reading an exporter's `/metrics` page: the families the engine reads.

use prometheus_parse::{Scrape, Value};

use super::tracker::Reading;

/// The families the engine reads from an exporter: latency and time to first token
/// (histograms), requests, tokens and energy (counters).
pub static FAMILIES: [&cellwatch_metrics::MetricDef; 5] = [
    &cellwatch_metrics::INFERENCE_REQUEST_DURATION,
    &cellwatch_metrics::INFERENCE_TTFT,
    &cellwatch_metrics::INFERENCE_REQUESTS,
    &cellwatch_metrics::INFERENCE_TOKENS,
    &cellwatch_metrics::NODE_ENERGY_JOULES,
];

pub(super) fn le(x: f64) -> String {
    if x.is_infinite() {
        "+Inf".into()
    } else {
        format!("{x}")
    }
}

/// Parses an exporter's `/metrics` page into the counters the SLOs read.
pub fn read(page: &str) -> Result<Reading, String> {
    let scrape = Scrape::parse(page.lines().map(|l| Ok(l.to_string())))
        .map_err(|e| format!("not a metrics page: {e}"))?;
    if scrape.samples.is_empty() {
        return Err("no samples on the page".into());
    }
    let mut out = Reading::new();
    for s in &scrape.samples {
        let base = s
            .metric
            .trim_end_matches("_count")
            .trim_end_matches("_bucket");
        if !FAMILIES.iter().any(|f| f.name == base) {
            continue;
        }
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        match &s.value {
            Value::Histogram(buckets) => {
                for b in buckets.iter().filter(|b| b.count.is_finite()) {
                    let mut l = labels.clone();
                    l.push(("le".into(), le(b.less_than)));
                    l.sort();
                    out.insert((format!("{base}_bucket"), l), b.count);
                }
            }
            Value::Counter(v) | Value::Untyped(v) | Value::Gauge(v) if v.is_finite() => {
                out.insert((s.metric.clone(), labels), *v);
            }
            _ => {}
        }
    }
    Ok(out)
}
