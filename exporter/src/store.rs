//! The latest snapshot of every collector, and its text exposition.
//!
//! Collectors sample in the background and publish into their [`Slot`]; a scrape only encodes
//! what is there (and reuses the encoded text while nothing changed), so it never waits for a
//! command.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use cellwatch_metrics::{self as m, Kind};
use prometheus::proto::MetricFamily;
use prometheus::{Encoder, Registry, TextEncoder};

/// The samples and their encoding live in [`cellwatch_http::exposition`] (the engine serves
/// them too); re-exported here at their old paths.
pub use cellwatch_http::exposition::{
    Sample, encode, encode_families, families, label_pairs, merge_families,
};

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
    /// The collectors' families, merged (one per name, sorted by name).
    families: Vec<MetricFamily>,
    /// Where each of `families` is in `text`.
    spans: Vec<Range<usize>>,
    text: Bytes,
}

impl Cache {
    fn new(generation: u64, samples: &[Sample]) -> Self {
        let families = merge_families(families(samples));
        let mut text = Vec::new();
        let spans = families
            .iter()
            .map(|f| {
                let start = text.len();
                encode_one(f, &mut text);
                start..text.len()
            })
            .collect();
        Cache {
            generation,
            families,
            spans,
            text: Bytes::from(text),
        }
    }
}

/// Appends one family in the text format.
fn encode_one(family: &MetricFamily, out: &mut Vec<u8>) {
    // Encoding into a Vec only fails on inconsistent families, which are never built here.
    if let Err(e) = TextEncoder::new().encode(std::slice::from_ref(family), out) {
        tracing::error!(error = %e, family = family.name(), "encoding a metric family failed");
    }
}

/// Appends families of one name from several sources, merged as [`merge_families`] does.
fn encode_merged(sources: Vec<MetricFamily>, out: &mut Vec<u8>) {
    for f in merge_families(sources) {
        encode_one(&f, out);
    }
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
    /// when something changed (the bytes are shared, not copied, by every scrape in between).
    /// Live registries are gathered at every scrape: a family only they export is encoded, one
    /// the collectors export too is merged with the collectors' and encoded, and every other
    /// family is copied from the cached text. The result is what [`encode_families`] makes of
    /// all of them, without building and merging the collectors' families again per scrape.
    pub fn render(&self) -> Bytes {
        let live: Vec<Registry> = lock(&self.live).clone();
        let generation = self.generation.load(Ordering::Acquire);
        let mut cache = lock(&self.cache);
        if cache.generation != generation {
            *cache = Cache::new(generation, &self.samples());
        }
        if live.is_empty() {
            return cache.text.clone();
        }
        let mut by_name: BTreeMap<String, Vec<MetricFamily>> = BTreeMap::new();
        for r in &live {
            for f in r.gather() {
                by_name.entry(f.name().to_string()).or_default().push(f);
            }
        }
        let mut out = Vec::with_capacity(cache.text.len() + 512 * by_name.len());
        let mut live = by_name.into_iter().peekable();
        for (family, span) in cache.families.iter().zip(&cache.spans) {
            while let Some((_, sources)) = live.next_if(|(name, _)| name.as_str() < family.name()) {
                encode_merged(sources, &mut out);
            }
            match live.next_if(|(name, _)| name == family.name()) {
                Some((_, sources)) => {
                    let mut all = Vec::with_capacity(sources.len() + 1);
                    all.push(family.clone());
                    all.extend(sources);
                    encode_merged(all, &mut out);
                }
                None => out.extend_from_slice(&cache.text[span.clone()]),
            }
        }
        for (_, sources) in live {
            encode_merged(sources, &mut out);
        }
        Bytes::from(out)
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

#[cfg(test)]
mod tests {
    use super::*;

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

    /// A scrape with live registries is exactly what merging every source at once encodes:
    /// families only the live registries export (before, between and after the collectors'),
    /// one both export (a new series added, a duplicate dropped), one of a conflicting type,
    /// and one name from two live registries.
    #[test]
    fn a_scrape_with_live_registries_encodes_what_merging_every_source_does() {
        use prometheus::{Counter, CounterVec, Gauge, GaugeVec, Opts};
        let store = Store::new();
        let slot = store.slot("vmstat");
        let publish = |gpu: f64| {
            slot.publish(
                vec![
                    Sample::new(&m::MEMORY_TOTAL, &[], 8.0),
                    Sample::new(&m::ENERGY_JOULES, &["gpu"], gpu),
                    Sample::new(&m::ENERGY_JOULES, &["cpu"], 2.0),
                ],
                Duration::ZERO,
                true,
            )
        };
        publish(3.0);
        let a = Registry::new();
        let first = Gauge::new("a_first", "sorts before every collector family").unwrap();
        first.set(1.0);
        a.register(Box::new(first)).unwrap();
        let energy = CounterVec::new(
            Opts::new("cellwatch_energy_joules_total", "also the collectors'"),
            &["component"],
        )
        .unwrap();
        energy.with_label_values(&["ane"]).inc_by(1.0);
        energy.with_label_values(&["gpu"]).inc_by(99.0);
        a.register(Box::new(energy.clone())).unwrap();
        let b = Registry::new();
        let conflicting = Counter::new("cellwatch_memory_total_bytes", "not a gauge").unwrap();
        conflicting.inc();
        b.register(Box::new(conflicting)).unwrap();
        let first_again = GaugeVec::new(Opts::new("a_first", "again"), &["x"]).unwrap();
        first_again.with_label_values(&["y"]).set(2.0);
        b.register(Box::new(first_again)).unwrap();
        for name in ["cellwatch_collector_v_between", "zz_last"] {
            let g = Gauge::new(name, "live only").unwrap();
            g.set(4.0);
            b.register(Box::new(g)).unwrap();
        }
        slot.register_live(a.clone());
        slot.register_live(b.clone());

        let merged_at_once = || {
            let mut all = families(&store.samples());
            all.extend(a.gather());
            all.extend(b.gather());
            encode_families(all)
        };
        let text = String::from_utf8(store.render().to_vec()).unwrap();
        assert_eq!(text, merged_at_once());
        for present in [
            "a_first 1\n",
            "a_first{x=\"y\"} 2\n",
            "cellwatch_energy_joules_total{component=\"ane\"} 1\n",
            "cellwatch_energy_joules_total{component=\"gpu\"} 3\n",
            "cellwatch_collector_v_between 4\n",
            "zz_last 4\n",
            "cellwatch_memory_total_bytes 8\n",
        ] {
            assert!(text.contains(present), "{present:?} missing from\n{text}");
        }
        assert!(
            !text.contains(" 99\n") && !text.contains("not a gauge"),
            "{text}"
        );

        // Both parts change: still the same as merging at once.
        energy.with_label_values(&["ane"]).inc_by(1.0);
        publish(5.0);
        let text = String::from_utf8(store.render().to_vec()).unwrap();
        assert_eq!(text, merged_at_once());
        assert!(text.contains("cellwatch_energy_joules_total{component=\"ane\"} 2\n"));
        assert!(text.contains("cellwatch_energy_joules_total{component=\"gpu\"} 5\n"));
    }
}
