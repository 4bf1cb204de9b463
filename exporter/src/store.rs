//! The latest snapshot of every collector, and its text exposition.
//!
//! Collectors sample in the background and publish into their [`Slot`]; a scrape only encodes
//! what is there (and reuses the encoded text while nothing changed), so it never waits for a
//! command.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use cellwatch_metrics::{self as m, Kind, MetricDef};
use prometheus::proto::{self, MetricFamily, MetricType};
use prometheus::{Encoder, Registry, TextEncoder};

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

#[derive(Debug, Default)]
struct SlotState {
    samples: Vec<Sample>,
    up: bool,
    duration: f64,
    errors: u64,
    restarts: Option<u64>,
}

/// A collector's place in the store.
#[derive(Debug)]
pub struct Slot {
    name: &'static str,
    state: Mutex<SlotState>,
    generation: Arc<AtomicU64>,
    live: Arc<Mutex<Vec<Registry>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind; keep serving it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Slot {
    /// The collector's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    fn update(&self, f: impl FnOnce(&mut SlotState)) {
        f(&mut lock(&self.state));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Publishes a sample; `up` false means it is partial (some source failed; count that
    /// with [`Slot::error`]). Non-finite values are dropped: no NaN is ever exported.
    pub fn publish(&self, mut samples: Vec<Sample>, duration: Duration, up: bool) {
        samples.retain(|s| s.value.is_finite());
        self.update(|st| {
            st.samples = samples;
            st.duration = duration.as_secs_f64();
            st.up = up;
        });
    }

    /// Marks the source as down (a gap while a child process is restarted) without counting
    /// an error. Gauges go (they describe a present the source no longer reports); counters
    /// stay at their totals, so `increase()` sees no gap.
    pub fn down(&self) {
        self.update(|st| {
            st.samples.retain(|s| s.def.kind == Kind::Counter);
            st.up = false;
        });
    }

    /// Counts an error without changing the published samples.
    pub fn error(&self) {
        self.update(|st| st.errors += 1);
    }

    /// Declares that this collector runs a child process, so it reports restarts.
    pub fn supervised(&self) {
        self.update(|st| {
            st.restarts.get_or_insert(0);
        });
    }

    /// Counts a restart of the collector's child process.
    pub fn restarted(&self) {
        self.update(|st| *st.restarts.get_or_insert(0) += 1);
    }

    /// Adds a live registry (instrumentation updated as events happen), gathered at every scrape.
    pub fn register_live(&self, registry: Registry) {
        lock(&self.live).push(registry);
    }

    /// Whether the last sample succeeded.
    pub fn is_up(&self) -> bool {
        lock(&self.state).up
    }
}

/// Every collector's slot, the exporter's own series, and live registries (instrumentation
/// updated as events happen, such as the metering proxy's request histograms).
#[derive(Debug)]
pub struct Store {
    slots: Mutex<Vec<Arc<Slot>>>,
    info: Mutex<Vec<Sample>>,
    live: Arc<Mutex<Vec<Registry>>>,
    generation: Arc<AtomicU64>,
    cache: Mutex<Cache>,
}

#[derive(Debug, Default)]
struct Cache {
    generation: u64,
    families: Vec<MetricFamily>,
    text: Bytes,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            slots: Mutex::new(Vec::new()),
            info: Mutex::new(Vec::new()),
            live: Arc::new(Mutex::new(Vec::new())),
            generation: Arc::new(AtomicU64::new(1)),
            cache: Mutex::new(Cache::default()),
        }
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Arc<Self> {
        Arc::new(Store::default())
    }

    /// Adds a collector.
    pub fn slot(&self, name: &'static str) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            name,
            state: Mutex::default(),
            generation: self.generation.clone(),
            live: self.live.clone(),
        });
        lock(&self.slots).push(slot.clone());
        self.generation.fetch_add(1, Ordering::Release);
        slot
    }

    /// Replaces the exporter's own info series (build and node info).
    pub fn set_info(&self, samples: Vec<Sample>) {
        *lock(&self.info) = samples;
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Every sample, the collectors' and the per-collector meta series.
    pub fn samples(&self) -> Vec<Sample> {
        let mut all = lock(&self.info).clone();
        for slot in lock(&self.slots).iter() {
            let st = lock(&slot.state);
            let c = [slot.name];
            all.push(Sample::new(
                &m::COLLECTOR_UP,
                &c,
                if st.up { 1.0 } else { 0.0 },
            ));
            all.push(Sample::new(&m::COLLECTOR_DURATION, &c, st.duration));
            all.push(Sample::new(&m::COLLECTOR_ERRORS, &c, st.errors as f64));
            if let Some(r) = st.restarts {
                all.push(Sample::new(&m::COLLECTOR_RESTARTS, &c, r as f64));
            }
            all.extend(st.samples.iter().cloned());
        }
        all
    }

    /// The text exposition of the current snapshot. The collectors' part is encoded again only
    /// when something changed (the bytes are shared, not copied, by every scrape in between);
    /// live registries are gathered at every scrape and merged in.
    pub fn render(&self) -> Bytes {
        let live: Vec<Registry> = lock(&self.live).clone();
        let generation = self.generation.load(Ordering::Acquire);
        let mut cache = lock(&self.cache);
        if cache.generation != generation {
            let families = families(&self.samples());
            let text = Bytes::from(encode_families(families.clone()));
            *cache = Cache {
                generation,
                families,
                text,
            };
        }
        if live.is_empty() {
            return cache.text.clone();
        }
        let mut all = cache.families.clone();
        drop(cache);
        for r in &live {
            all.extend(r.gather());
        }
        Bytes::from(encode_families(all))
    }
}

impl Store {
    /// What `/metrics` serves, as merged families: the collectors' and the live registries'.
    pub fn gather(&self) -> Vec<MetricFamily> {
        let live: Vec<Registry> = lock(&self.live).clone();
        let mut all = families(&self.samples());
        for r in &live {
            all.extend(r.gather());
        }
        merge_families(all)
    }
}

/// A prometheus collector that serves families set from outside (an adapter's last scrape, a
/// replayed recording). It declares no descriptors: the names are checked where the families are
/// built, and [`encode_families`] merges them with other sources.
#[derive(Debug, Clone, Default)]
pub struct SharedFamilies(Arc<Mutex<Vec<MetricFamily>>>);

impl SharedFamilies {
    /// Replaces the families.
    pub fn set(&self, families: Vec<MetricFamily>) {
        *lock(&self.0) = families;
    }

    /// A registry that gathers these families.
    pub fn registry(&self) -> Result<Registry, prometheus::Error> {
        let r = Registry::new();
        r.register(Box::new(self.clone()))?;
        Ok(r)
    }
}

impl prometheus::core::Collector for SharedFamilies {
    fn desc(&self) -> Vec<&prometheus::core::Desc> {
        Vec::new()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        lock(&self.0).clone()
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

    #[test]
    fn meta_series_follow_the_slot_and_the_cache_refreshes() {
        let store = Store::new();
        let slot = store.slot("vmstat");
        let first = String::from_utf8(store.render().to_vec()).unwrap();
        assert!(first.contains("cellwatch_collector_up{collector=\"vmstat\"} 0"));
        assert!(!first.contains("cellwatch_collector_restarts_total"));
        assert_eq!(
            store.render().as_ptr(),
            store.render().as_ptr(),
            "unchanged snapshot is re-encoded"
        );

        slot.publish(
            vec![
                Sample::new(&m::MEMORY_TOTAL, &[], 8.0),
                Sample::new(&m::GPU_ACTIVE, &[], f64::NAN),
            ],
            Duration::from_millis(5),
            true,
        );
        let second = String::from_utf8(store.render().to_vec()).unwrap();
        assert!(second.contains("cellwatch_collector_up{collector=\"vmstat\"} 1"));
        assert!(second.contains("cellwatch_memory_total_bytes 8"));
        assert!(
            !second.contains("NaN") && !second.contains("gpu_active"),
            "{second}"
        );

        slot.publish(
            vec![
                Sample::new(&m::MEMORY_TOTAL, &[], 8.0),
                Sample::new(&m::ENERGY_JOULES, &["gpu"], 3.0),
            ],
            Duration::ZERO,
            true,
        );
        slot.down();
        slot.error();
        slot.supervised();
        slot.restarted();
        let third = String::from_utf8(store.render().to_vec()).unwrap();
        assert!(third.contains("cellwatch_collector_errors_total{collector=\"vmstat\"} 1"));
        assert!(third.contains("cellwatch_collector_restarts_total{collector=\"vmstat\"} 1"));
        assert!(
            !third.contains("cellwatch_memory_total_bytes"),
            "gauges go while down"
        );
        assert!(
            third.contains("cellwatch_energy_joules_total{component=\"gpu\"} 3"),
            "counters stay"
        );
    }
}
