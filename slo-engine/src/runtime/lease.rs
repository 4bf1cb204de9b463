//! Holding the leader lease, and the lease's own timeline that fences the leader's writes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::ledger::Ledger;
use crate::util::time::Clock;

/// The lease's own timeline: the wall time (milliseconds) at which this engine last renewed the
/// leader lease, and the monotonic instant at which it read that time. Its [`now_ms`] is that
/// wall time plus the monotonic time elapsed since, the time the leader's writes are fenced with:
/// the ledger refuses them once the lease's expiry (that same wall time plus the lease's length)
/// is past, so a leader that really stalled past its lease writes nothing, and a wall clock that
/// steps (NTP) in between neither fails a leader that holds the lease nor extends a stalled one.
///
/// [`now_ms`]: LeaseTimeline::now_ms
#[derive(Debug, Clone, Default)]
pub(super) struct LeaseTimeline(Arc<Mutex<Option<(i64, Instant)>>>);

impl LeaseTimeline {
    /// This engine renewed the lease with the wall time `wall_ms`, read at `at`.
    fn renewed(&self, wall_ms: i64, at: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((wall_ms, at));
    }

    /// Another engine holds the lease.
    fn lost(&self) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Now on the lease's timeline (Unix milliseconds); `None` when this engine has not renewed
    /// the lease or lost it.
    pub(super) fn now_ms(&self) -> Option<i64> {
        self.at(Instant::now())
    }

    /// The lease's time at the instant `now`.
    fn at(&self, now: Instant) -> Option<i64> {
        let held = *self.0.lock().unwrap_or_else(|e| e.into_inner());
        held.map(|(wall_ms, at)| {
            let since = now.saturating_duration_since(at).as_millis();
            wall_ms.saturating_add(i64::try_from(since).unwrap_or(i64::MAX))
        })
    }
}

/// Takes and renews the leader lease every quarter interval; the lease lasts 1.25 intervals, so
/// a standby holds it within 1.5 intervals of the leader's death, and evaluates as the leader
/// at once.
pub(super) async fn hold_lease(
    ledger: Ledger,
    me: String,
    interval: Duration,
    clock: Clock,
    timeline: LeaseTimeline,
    is_leader: Arc<std::sync::atomic::AtomicBool>,
    took: Arc<tokio::sync::Notify>,
) {
    let ttl = (interval.as_millis() as i64 * 5 / 4).max(100);
    let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(25)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = renew(&ledger, &me, &clock, ttl, &timeline).await;
        let had = is_leader.swap(held, std::sync::atomic::Ordering::Relaxed);
        if held && !had {
            tracing::info!(engine = %me, "took the leader lease");
            // Evaluate now, not at the next tick.
            took.notify_one();
        } else if had && !held {
            tracing::warn!(engine = %me, "lost the leader lease; standing by");
        }
    }
}

/// Takes or renews the lease for `ttl` milliseconds from the wall time now, and moves the
/// timeline with it. True when this engine holds the lease. When the ledger cannot be reached,
/// the timeline stays: the lease taken last runs out on it.
async fn renew(
    ledger: &Ledger,
    me: &str,
    clock: &Clock,
    ttl: i64,
    timeline: &LeaseTimeline,
) -> bool {
    // Read before the write: the lease then never runs longer on the timeline than in the ledger.
    let (wall_ms, at) = (clock.now_ms(), Instant::now());
    match ledger.lease("leader", me, wall_ms, ttl).await {
        Ok(true) => {
            timeline.renewed(wall_ms, at);
            true
        }
        Ok(false) => {
            timeline.lost();
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot reach the ledger for the leader lease; standing by");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LeaseTimeline, renew};
    use crate::ledger::{Ledger, LedgerError};
    use crate::util::time::Clock;
    use std::time::{Duration, Instant};

    #[test]
    fn the_timeline_runs_on_the_monotonic_clock_from_the_last_renewal() {
        let t = LeaseTimeline::default();
        let at = Instant::now();
        assert_eq!(t.at(at), None, "never renewed");
        t.renewed(1_000_000, at);
        assert_eq!(t.at(at), Some(1_000_000));
        assert_eq!(t.at(at + Duration::from_millis(1_500)), Some(1_001_500));
        assert_eq!(t.clone().at(at), Some(1_000_000), "clones share it");
        t.lost();
        assert_eq!(t.at(at + Duration::from_millis(10)), None);
    }

    /// The leader's save (`Leader::save_alerts`: the alert state fenced with the timeline) while
    /// the wall clock steps an hour forward, then back, during a tick; and after a real stall.
    #[tokio::test]
    async fn a_stepping_wall_clock_keeps_the_lease_and_a_stall_loses_it() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = Ledger::open(&url).await.unwrap();
        let offset = dir.path().join("offset");
        let step = |secs: i64| std::fs::write(&offset, secs.to_string()).unwrap();
        step(0);
        let clock = Clock {
            offset_file: Some(offset.clone()),
        };
        let timeline = LeaseTimeline::default();
        let ttl = 10_000;
        assert!(renew(&ledger, "me", &clock, ttl, &timeline).await);
        let save = |fence: i64| ledger.save_alerts("{}", 1, &[], Some(("me", fence)));
        // Mid-tick, NTP steps the wall clock an hour forward: the wall time says the lease ran
        // out, the lease's own timeline says it holds.
        step(3600);
        assert!(
            matches!(
                save(clock.now_ms()).await,
                Err(LedgerError::NotLeader { .. })
            ),
            "fenced with the wall clock, the save fails"
        );
        save(timeline.now_ms().unwrap()).await.unwrap();
        // The next renewal takes the stepped time; then the clock steps back an hour.
        assert!(renew(&ledger, "me", &clock, ttl, &timeline).await);
        step(0);
        save(timeline.now_ms().unwrap()).await.unwrap();
        assert!(renew(&ledger, "me", &clock, ttl, &timeline).await);
        save(timeline.now_ms().unwrap()).await.unwrap();
        // A leader that stalled past its lease (renewed 11 s ago on the monotonic clock, the
        // wall clock stepped back so that it reads a time inside the lease) writes nothing.
        let wall = clock.now_ms();
        let long_ago = Instant::now().checked_sub(Duration::from_millis(11_000));
        let Some(long_ago) = long_ago else {
            return; // a monotonic clock younger than 11 s: nothing to stall on
        };
        assert!(ledger.lease("leader", "me", wall, ttl).await.unwrap());
        timeline.renewed(wall, long_ago);
        step(-3600);
        save(clock.now_ms()).await.unwrap(); // the wall clock would have let it write
        assert!(matches!(
            save(timeline.now_ms().unwrap()).await,
            Err(LedgerError::NotLeader { .. })
        ));
        // Another engine took the lease: the timeline is gone.
        step(0);
        assert!(
            ledger
                .lease("leader", "other", clock.now_ms() + 20_000, ttl)
                .await
                .unwrap()
        );
        assert!(!renew(&ledger, "me", &clock, ttl, &timeline).await);
        assert_eq!(timeline.now_ms(), None);
        ledger.close().await;
    }
}
