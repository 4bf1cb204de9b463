//! Holding the leader lease.

use std::sync::Arc;
use std::time::Duration;

use crate::ledger::Ledger;
use crate::util::time::Clock;

/// Takes and renews the leader lease every quarter interval; the lease lasts 1.25 intervals, so
/// a standby holds it within 1.5 intervals of the leader's death, and evaluates as the leader
/// at once.
pub(super) async fn hold_lease(
    ledger: Ledger,
    me: String,
    interval: Duration,
    clock: Clock,
    is_leader: Arc<std::sync::atomic::AtomicBool>,
    took: Arc<tokio::sync::Notify>,
) {
    let ttl = (interval.as_millis() as i64 * 5 / 4).max(100);
    let mut tick = tokio::time::interval((interval / 4).max(Duration::from_millis(25)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let held = match ledger.lease("leader", &me, clock.now_ms(), ttl).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot reach the ledger for the leader lease; standing by");
                false
            }
        };
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
