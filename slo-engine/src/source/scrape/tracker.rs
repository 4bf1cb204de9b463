//! Readings into exact increases: resets, new series, gaps (counted up to an hour); baselines.

use std::collections::{BTreeMap, HashMap};

/// One counter series: family and sorted label pairs.
pub type Key = (String, Vec<(String, String)>);

/// The counters of one page that the SLOs read.
pub type Reading = BTreeMap<Key, f64>;

/// Follows each node's counters across readings.
#[derive(Debug, Default)]
pub struct Tracker {
    last: HashMap<String, Baseline>,
}

impl Tracker {
    /// Takes a node's reading at `now` and returns the increases since its previous reading,
    /// or `None` for a first reading, or one more than [`CATCH_UP_LIMIT`] after the previous
    /// one. After a gap longer than `max_gap` seconds (and within the limit) the whole increase
    /// counts, in the reading's slice: see [`step`].
    pub fn increases(
        &mut self,
        node: &str,
        now: i64,
        reading: Reading,
        max_gap: i64,
    ) -> Option<Reading> {
        self.step(node, now, reading, max_gap).increases
    }

    /// [`Tracker::increases`], with the gap before the reading, if there was one.
    pub fn step(&mut self, node: &str, now: i64, reading: Reading, max_gap: i64) -> Step {
        let base = self.last.remove(node);
        let s = step(base.as_ref(), now, &reading, max_gap);
        self.last.insert(
            node.to_string(),
            Baseline {
                at: now,
                generation: None,
                reading,
            },
        );
        s
    }
}

/// The gauges among the families the engine reads ([`FAMILIES`](super::FAMILIES)): their
/// readings are kept as they are, never turned into increases.
pub static GAUGES: [&cellwatch_metrics::MetricDef; 1] = [&cellwatch_metrics::INFERENCE_WAITING];

/// Whether `family` (a series name of a reading) is one of the [`GAUGES`].
pub fn is_gauge(family: &str) -> bool {
    GAUGES.iter().any(|g| g.name == family)
}

/// The increases of a node's counters from reading `old` to reading `new`: a counter that went
/// down was reset (a histogram resets as a whole), a series that appeared counts in full. A
/// gauge ([`is_gauge`]: the waiting requests) is no counter: its value in `new`
/// is kept as it is.
pub fn increase(old: &Reading, new: &Reading) -> Reading {
    // A histogram resets as a whole: if any of its series went down, all of them did.
    let group = |(f, l): &Key| -> (String, Vec<(String, String)>) {
        let base = f
            .trim_end_matches("_bucket")
            .trim_end_matches("_count")
            .trim_end_matches("_sum")
            .to_string();
        (base, l.iter().filter(|(k, _)| k != "le").cloned().collect())
    };
    let reset: std::collections::HashSet<(String, Vec<(String, String)>)> = new
        .iter()
        .filter(|(k, v)| !is_gauge(&k.0) && old.get(*k).is_some_and(|o| *v < o))
        .map(|(k, _)| group(k))
        .collect();
    let mut inc = Reading::new();
    for (k, v) in new {
        let d = match old.get(k) {
            _ if is_gauge(&k.0) => *v,
            // (No reset, the common case: no key is grouped.)
            _ if !reset.is_empty() && reset.contains(&group(k)) => *v,
            Some(o) => v - o,
            // A series that appeared since the last reading (a model's first request, an
            // exporter that restarted): everything it counts happened since then.
            None => *v,
        };
        inc.insert(k.clone(), d);
    }
    inc
}

/// One series of a stored reading: family, labels, value.
pub(super) type Stored = (String, Vec<(String, String)>, f64);

/// A node's reading as the ledger stores it (JSON: `[[family, [[label, value], …], value], …]`).
pub fn encode_reading(r: &Reading) -> String {
    let v: Vec<Stored> = r
        .iter()
        .map(|((f, l), v)| (f.clone(), l.clone(), *v))
        .collect();
    serde_json::to_string(&v).unwrap_or_default()
}

/// A reading the ledger stored.
pub fn decode_reading(text: &str) -> Result<Reading, String> {
    let v: Vec<Stored> =
        serde_json::from_str(text).map_err(|e| format!("a stored reading: {e}"))?;
    Ok(v.into_iter().map(|(f, l, v)| ((f, l), v)).collect())
}

/// What the ledger's slices are recorded up to, per node (`cell/node`): the last recorded
/// reading, when it was taken, and its generation in the ledger. The leader computes a node's
/// increases against it and moves it in the same transaction as the slices they add; a failed
/// write leaves it where it was, so the increases are recorded by the next write that
/// succeeds (this engine's, or the next leader's, which starts from the ledger's baselines).
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// When the reading was taken (Unix seconds).
    pub at: i64,
    /// The ledger row's generation (None: not in the ledger yet).
    pub generation: Option<i64>,
    /// The counters.
    pub reading: Reading,
}

/// How old a baseline may be for a reading to count its increase over it (seconds: one hour).
/// An older one (the engine was stopped, a node was away for long) is only replaced: an hour of
/// history is never dumped into one slice.
pub const CATCH_UP_LIMIT: i64 = 3600;

/// A node's reading that came more than the source's `max_gap` after its baseline (a late
/// scrape, a stalled engine, a node that did not answer for a while).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// Seconds from the baseline to the reading.
    pub seconds: i64,
    /// Whether the increase over the gap was counted (false: the baseline was older than
    /// [`CATCH_UP_LIMIT`], and the reading only became the new baseline).
    pub counted: bool,
}

/// A gap of one node, as a source reports it once the increases are recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeGap {
    /// Cell.
    pub cell: String,
    /// Node (for the prometheus source, `node/job/instance`).
    pub node: String,
    /// The reading's time (Unix seconds): the slice the increase was recorded into.
    pub at: i64,
    /// How long, and whether it counted.
    pub gap: Gap,
}

/// What one node's new reading does: its increases (None: it only sets a baseline) and its
/// next baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The increases since the baseline; None for a first reading or one more than
    /// [`CATCH_UP_LIMIT`] after its baseline.
    pub increases: Option<Reading>,
    /// The baseline the increases were computed from (its generation is the one expected in
    /// the ledger).
    pub from: Option<(i64, Option<i64>)>,
    /// Set when the reading came more than `max_gap` after its baseline.
    pub gap: Option<Gap>,
}

/// Compares a node's new reading at `now` with its baseline.
///
/// A reading more than `max_gap` seconds after its baseline (a late scrape, a paused VM, a
/// node that did not answer for a while) still counts its whole increase, with the same
/// rules as any other (a counter that went down was reset, a histogram resets as a whole, a
/// new series counts in full): the counters say exactly what happened in the gap. The
/// increase is recorded into the slice of the new reading (`now`), not spread over the slices
/// the gap covered: which of them the events fell in is not known. The step says so in
/// [`Step::gap`]. Exception: a baseline more than [`CATCH_UP_LIMIT`] old is only replaced
/// (`increases` None, the gap not counted).
pub fn step(base: Option<&Baseline>, now: i64, reading: &Reading, max_gap: i64) -> Step {
    let Some(b) = base else {
        return Step {
            increases: None,
            from: None,
            gap: None,
        };
    };
    let seconds = now.saturating_sub(b.at);
    let counted = seconds <= CATCH_UP_LIMIT;
    Step {
        increases: counted.then(|| increase(&b.reading, reading)),
        from: Some((b.at, b.generation)),
        gap: (seconds > max_gap).then_some(Gap { seconds, counted }),
    }
}
