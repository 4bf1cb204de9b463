//! What this process wrote to the slices since a reader last looked: per SLO (`""`: the cells'
//! totals), the earliest time of data changed. A reader that keeps sums of settled time (the
//! incremental evaluation) starts a series over when data older than what it settled changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// Per SLO, the earliest data time changed.
pub type Changes = HashMap<String, i64>;

/// The watches of one ledger (shared by its clones).
#[derive(Debug, Default)]
pub(super) struct Watches(Mutex<Vec<Weak<Mutex<Changes>>>>);

impl Watches {
    /// Records that data of `slo` from `earliest` on (Unix seconds: the start of the earliest
    /// slice written, or of the earliest slice judged) changed, for every live watch. Called
    /// after the write committed, so a reader that took its watch before reading never misses
    /// it.
    pub(super) fn changed<'a>(&self, changes: impl IntoIterator<Item = (&'a str, i64)> + Clone) {
        // A poisoned lock (a panic while noting) still holds whole entries: go on with it.
        let mut watches = self.0.lock().unwrap_or_else(|p| p.into_inner());
        watches.retain(|w| match w.upgrade() {
            Some(a) => {
                let mut seen = a.lock().unwrap_or_else(|p| p.into_inner());
                for (slo, t) in changes.clone() {
                    seen.entry(slo.to_string())
                        .and_modify(|e| *e = (*e).min(t))
                        .or_insert(t);
                }
                true
            }
            None => false,
        });
    }

    fn watch(&self) -> ChangeWatch {
        let a = Arc::new(Mutex::new(Changes::new()));
        let mut watches = self.0.lock().unwrap_or_else(|p| p.into_inner());
        watches.push(Arc::downgrade(&a));
        ChangeWatch(a)
    }
}

/// One reader's view of the changes (see [`super::Ledger::watch`]).
#[derive(Debug)]
pub struct ChangeWatch(Arc<Mutex<Changes>>);

impl ChangeWatch {
    /// Per SLO, the earliest data time changed since the last call (or since the watch
    /// began).
    pub fn take(&self) -> Changes {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl super::Ledger {
    /// A watch on the slices this process writes through this ledger (or a clone of it): what
    /// another process writes is not seen.
    pub fn watch(&self) -> ChangeWatch {
        self.watches.watch()
    }

    pub(super) fn changed<'a>(&self, changes: impl IntoIterator<Item = (&'a str, i64)> + Clone) {
        self.watches.changed(changes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_watch_sees_the_earliest_change_of_each_slo_once() {
        let w = Watches::default();
        let a = w.watch();
        w.changed([("x", 120)]);
        let b = w.watch();
        w.changed([("x", 60), ("", 200)]);
        w.changed([("x", 180)]);
        let want =
            |v: &[(&str, i64)]| -> Changes { v.iter().map(|(s, t)| (s.to_string(), *t)).collect() };
        assert_eq!(a.take(), want(&[("x", 60), ("", 200)]));
        assert_eq!(a.take(), Changes::new());
        assert_eq!(b.take(), want(&[("x", 60), ("", 200)]));
        drop(b);
        w.changed([("y", 30)]);
        assert_eq!(w.0.lock().unwrap().len(), 1);
        assert_eq!(a.take(), want(&[("y", 30)]));
    }
}
