//! The Prometheus text exposition: [`Sample`]s encoded as families (grouped by name, sorted by
//! labels), families from several sources merged into one valid exposition, and the content
//! type it is served with.

use std::collections::{BTreeMap, HashSet};

use cellwatch_metrics::{Kind, MetricDef};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

/// The content type of the text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One sample of a family: label values in the order of `def.labels`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The family.
    pub def: &'static MetricDef,
    /// Label values, one per `def.labels`.
    pub labels: Vec<String>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// A sample with the given label values.
    pub fn new(def: &'static MetricDef, labels: &[&str], value: f64) -> Self {
        debug_assert_eq!(
            def.labels.len(),
            labels.len(),
            "label count of {}",
            def.name
        );
        Sample {
            def,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            value,
        }
    }
}

/// Families from samples: grouped by name, samples sorted by labels; one sample per label set.
pub fn families(samples: &[Sample]) -> Vec<MetricFamily> {
    let mut by_name: BTreeMap<&'static str, (&'static MetricDef, Vec<&Sample>)> = BTreeMap::new();
    for s in samples {
        by_name
            .entry(s.def.name)
            .or_insert_with(|| (s.def, Vec::new()))
            .1
            .push(s);
    }
    let mut out = Vec::with_capacity(by_name.len());
    for (_, (def, mut samples)) in by_name {
        let kind = match def.kind {
            Kind::Counter => MetricType::COUNTER,
            Kind::Gauge => MetricType::GAUGE,
            // Histograms come from live registries, never from samples.
            Kind::Histogram => continue,
        };
        samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        samples.dedup_by(|a, b| a.labels == b.labels);
        let mut family = MetricFamily::default();
        family.set_name(def.name.to_string());
        family.set_help(def.help.to_string());
        family.set_field_type(kind);
        let metrics = samples
            .into_iter()
            .map(|s| {
                let mut metric = proto::Metric::default();
                metric.set_label(label_pairs(def.labels, &s.labels));
                if def.kind == Kind::Counter {
                    let mut c = proto::Counter::default();
                    c.set_value(s.value);
                    metric.set_counter(c);
                } else {
                    let mut g = proto::Gauge::default();
                    g.set_value(s.value);
                    metric.set_gauge(g);
                }
                metric
            })
            .collect();
        family.set_metric(metrics);
        out.push(family);
    }
    out
}

/// Label pairs sorted by name, as Prometheus clients write them.
pub fn label_pairs(names: &[&str], values: &[String]) -> Vec<proto::LabelPair> {
    let mut pairs: Vec<proto::LabelPair> = names
        .iter()
        .zip(values)
        .map(|(n, v)| {
            let mut l = proto::LabelPair::default();
            l.set_name(n.to_string());
            l.set_value(v.clone());
            l
        })
        .collect();
    pairs.sort_by(|a, b| a.name().cmp(b.name()));
    pairs
}

type LabelKey = Vec<(String, String)>;

fn label_key(m: &proto::Metric) -> LabelKey {
    let mut k: Vec<(String, String)> = m
        .get_label()
        .iter()
        .map(|l| (l.name().to_string(), l.value().to_string()))
        .collect();
    k.sort();
    k
}

/// Encodes families in the text format, merged as [`merge_families`] does.
pub fn encode_families(families: Vec<MetricFamily>) -> String {
    let out = merge_families(families);
    let mut buf = Vec::new();
    // Encoding into a Vec only fails on inconsistent families, which are never built here.
    if let Err(e) = TextEncoder::new().encode(&out, &mut buf) {
        tracing::error!(error = %e, "encoding the metrics snapshot failed");
    }
    String::from_utf8(buf).unwrap_or_default()
}

/// Families of the same name (from different sources) merged, sorted by name, their series by
/// labels; a label set already present is dropped (first source wins, with one warning), so the
/// result is always a valid exposition.
pub fn merge_families(families: Vec<MetricFamily>) -> Vec<MetricFamily> {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let mut by_name: BTreeMap<String, (MetricFamily, HashSet<LabelKey>)> = BTreeMap::new();
    for mut f in families {
        let metrics = f.take_metric();
        if metrics.is_empty() {
            continue;
        }
        let (existing, seen) = by_name
            .entry(f.name().to_string())
            .or_insert_with(|| (f.clone(), HashSet::new()));
        if existing.get_field_type() != f.get_field_type() {
            tracing::debug!(family = f.name(), "dropped a family of a conflicting type");
            continue;
        }
        for metric in metrics {
            if seen.insert(label_key(&metric)) {
                existing.mut_metric().push(metric);
            } else if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::warn!(
                    family = f.name(),
                    "two sources export the same series (the metering proxy and an adapter for one model, or two adapters \
                     without ;model=); the first is kept"
                );
            }
        }
    }
    by_name
        .into_values()
        .map(|(mut f, _)| {
            f.mut_metric().sort_by_cached_key(|m| {
                m.get_label()
                    .iter()
                    .map(|l| l.value().to_string())
                    .collect::<Vec<_>>()
            });
            f
        })
        .collect()
}

/// Encodes samples in the Prometheus text format: families sorted by name, samples by labels.
pub fn encode(samples: &[Sample]) -> String {
    encode_families(families(samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cellwatch_metrics as m;

    #[test]
    fn families_are_grouped_sorted_and_typed() {
        let text = encode(&[
            Sample::new(&m::POWER_WATTS, &["gpu"], 2.5),
            Sample::new(&m::COLLECTOR_UP, &["vmstat"], 1.0),
            Sample::new(&m::POWER_WATTS, &["cpu"], 1.5),
        ]);
        let cpu = text
            .find("cellwatch_power_watts{component=\"cpu\"} 1.5")
            .unwrap();
        let gpu = text
            .find("cellwatch_power_watts{component=\"gpu\"} 2.5")
            .unwrap();
        assert!(cpu < gpu);
        assert_eq!(
            text.matches("# TYPE cellwatch_power_watts gauge").count(),
            1
        );
        assert!(text.find("cellwatch_collector_up").unwrap() < cpu);
    }

    #[test]
    fn duplicate_series_from_two_sources_are_dropped() {
        let a = families(&[Sample::new(&m::POWER_WATTS, &["gpu"], 1.0)]);
        let b = families(&[
            Sample::new(&m::POWER_WATTS, &["gpu"], 2.0),
            Sample::new(&m::POWER_WATTS, &["cpu"], 3.0),
        ]);
        let mut both = a.clone();
        both.extend(b);
        both.extend(a);
        let text = encode_families(both);
        assert_eq!(
            text.matches("cellwatch_power_watts{component=\"gpu\"}")
                .count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("cellwatch_power_watts{component=\"gpu\"} 1"),
            "the first source wins: {text}"
        );
        assert!(
            text.contains("cellwatch_power_watts{component=\"cpu\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let text = encode(&[Sample::new(&m::CPU_CLUSTER_FREQUENCY, &["a\"b\\c\nd"], 1.0)]);
        assert!(text.contains(r#"cluster="a\"b\\c\nd""#), "{text}");
    }
}
