//! Readings into exact increases: resets, new series, gaps; baselines.

use std::collections::{BTreeMap, HashMap};

/// One counter series: family and sorted label pairs.
pub type Key = (String, Vec<(String, String)>);

/// The counters of one page that the SLOs read.
pub type Reading = BTreeMap<Key, f64>;

/// Follows each node's counters across readings.
#[derive(Debug, Default)]
pub struct Tracker {
    last: HashMap<String, (i64, Reading)>,
}

impl Tracker {
    /// Takes a node's reading at `now` and returns the increases since its previous reading,
    /// or `None` for a first reading, or one after a gap longer than `max_gap` seconds (the
    /// node was down: its events in the gap are not attributed to the slice it came back in).
    pub fn increases(
        &mut self,
        node: &str,
        now: i64,
        reading: Reading,
        max_gap: i64,
    ) -> Option<Reading> {
        let prev = self.last.insert(node.to_string(), (now, reading));
        let (then, old) = prev?;
        if now - then > max_gap {
            return None;
        }
        Some(increase(&old, &self.last[node].1))
    }
}

/// The increases of a node's counters from reading `old` to reading `new`: a counter that went
/// down was reset (a histogram resets as a whole), a series that appeared counts in full.
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
        .filter(|(k, v)| old.get(*k).is_some_and(|o| *v < o))
        .map(|(k, _)| group(k))
        .collect();
    let mut inc = Reading::new();
    for (k, v) in new {
        let d = match old.get(k) {
            _ if reset.contains(&group(k)) => *v,
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

/// What one node's new reading does: its increases (None: it only sets a baseline) and its
/// next baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The increases since the baseline; None for a first reading or one after a gap longer
    /// than `max_gap` (the node was down: its events in the gap are not attributed to the
    /// slice it came back in).
    pub increases: Option<Reading>,
    /// The baseline the increases were computed from (its generation is the one expected in
    /// the ledger).
    pub from: Option<(i64, Option<i64>)>,
}

/// Compares a node's new reading at `now` with its baseline.
pub fn step(base: Option<&Baseline>, now: i64, reading: &Reading, max_gap: i64) -> Step {
    match base {
        None => Step {
            increases: None,
            from: None,
        },
        Some(b) => Step {
            increases: (now - b.at <= max_gap).then(|| increase(&b.reading, reading)),
            from: Some((b.at, b.generation)),
        },
    }
}
