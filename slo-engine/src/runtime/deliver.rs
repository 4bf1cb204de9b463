//! The delivery loop: due outbox rows, sent and marked.

use std::sync::Arc;
use std::time::Duration;

use crate::ledger::Ledger;
use crate::notify;
use crate::util::time::Clock;

/// Delivers due outbox rows until the process ends: woken when rows are queued, and every
/// second for retries. A failed attempt is retried with capped exponential backoff; rows
/// survive restarts in the ledger.
pub(super) async fn deliver_forever(
    alerting: crate::config::Alerting,
    ledger: Ledger,
    wake: Arc<tokio::sync::Notify>,
    clock: Clock,
    is_leader: Arc<std::sync::atomic::AtomicBool>,
) {
    let client = cellwatch_http::tls::http_client()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    loop {
        let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        if !is_leader.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let now = clock.now_ms().div_euclid(1000);
        let rows = match ledger.due(now, 5).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "reading the outbox failed");
                continue;
            }
        };
        for row in rows {
            if !is_leader.load(std::sync::atomic::Ordering::Relaxed) {
                break; // the claim lapses; the new leader delivers the rest
            }
            let outcome = notify::deliver(&alerting, &client, &row).await;
            let now = clock.now_ms().div_euclid(1000);
            let recorded = match &outcome {
                Ok(()) => {
                    tracing::info!(key = %row.key, receiver = %row.receiver, integration = %row.integration, attempts = row.attempts + 1, "notification delivered");
                    ledger.attempted(&row.key, now, Ok(())).await
                }
                Err(e) => {
                    let retry = now + notify::retry_after(row.attempts);
                    tracing::warn!(key = %row.key, receiver = %row.receiver, integration = %row.integration, attempts = row.attempts + 1, error = %e, "delivery failed; will retry");
                    ledger.attempted(&row.key, now, Err((e, retry))).await
                }
            };
            if let Err(e) = recorded {
                tracing::error!(error = %e, key = %row.key, "recording a delivery failed");
            }
        }
    }
}
