//! The latest snapshot of every collector, and its text exposition.
//!
//! Collectors sample in the background and publish into their [`Slot`]; a scrape only encodes
//! what is there (and reuses the encoded text while nothing changed), so it never waits for a
//! command.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use cellwatch_metrics::{self as m, Kind};
use prometheus::Registry;
use prometheus::proto::MetricFamily;

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
}
