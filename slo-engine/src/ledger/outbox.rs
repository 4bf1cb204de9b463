//! The outbox: notifications queued, taken when due, retried.

use sqlx::Row;

use super::{Ledger, LedgerError};

/// Inserts outbox rows in a transaction; a key already queued is left alone.
pub(super) async fn insert_outbox(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[OutboxRow],
) -> Result<(), sqlx::Error> {
    for r in rows {
        sqlx::query(
            "INSERT INTO outbox (key, receiver, integration, payload, created_at, next_attempt) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (key) DO NOTHING",
        )
        .bind(r.key.as_str())
        .bind(r.receiver.as_str())
        .bind(r.integration.as_str())
        .bind(r.payload.as_str())
        .bind(r.created_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One notification for one integration of a receiver, queued for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    /// Idempotency key (the notification's key and the integration).
    pub key: String,
    /// Receiver name.
    pub receiver: String,
    /// `email`, `webhook`, `pagerduty`, `slack` or `alertmanager`.
    pub integration: String,
    /// The notification, JSON.
    pub payload: String,
    /// When it was queued (Unix seconds).
    pub created_at: i64,
    /// Attempts so far.
    pub attempts: i64,
}

impl Ledger {
    /// Queues outbox rows; a row whose key is already queued is left alone (idempotent).
    pub async fn queue(&self, outbox: &[OutboxRow]) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Query {
            what: "queue outbox rows",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        insert_outbox(&mut tx, outbox).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }

    /// Claims up to `limit` undelivered outbox rows due at `now` for `hold` seconds, oldest
    /// first, and returns them: no other deliverer gets them while claimed. On PostgreSQL the
    /// claim skips rows another transaction has locked (`FOR UPDATE SKIP LOCKED`).
    pub async fn due(&self, now: i64, limit: i64) -> Result<Vec<OutboxRow>, LedgerError> {
        // Longer than one delivery attempt (10 s timeouts); a deliverer that dies leaves its
        // claimed row to others after this.
        const HOLD: i64 = 30;
        let err = |source| LedgerError::Query {
            what: "claim outbox rows",
            source,
        };
        let pick = "SELECT key FROM outbox WHERE delivered_at IS NULL AND next_attempt <= $1 \
                    AND (claimed_until IS NULL OR claimed_until < $1) ORDER BY created_at, key LIMIT $2";
        let lock = if self.postgres {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        let keys: Vec<String> = sqlx::query(&format!("{pick}{lock}"))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.try_get::<String, _>(0))
            .collect::<Result<_, _>>()
            .map_err(err)?;
        let mut rows = Vec::new();
        for key in &keys {
            sqlx::query("UPDATE outbox SET claimed_until = $2 WHERE key = $1")
                .bind(key.as_str())
                .bind(now + HOLD)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            rows.extend(
                sqlx::query(
                    "SELECT key, receiver, integration, payload, created_at, attempts FROM outbox WHERE key = $1",
                )
                .bind(key.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(err)?,
            );
        }
        tx.commit().await.map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok(OutboxRow {
                    key: r.try_get(0)?,
                    receiver: r.try_get(1)?,
                    integration: r.try_get(2)?,
                    payload: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode outbox",
                source,
            })
    }

    /// Records a delivery attempt: delivered at `now`, or failed with `error` and due again at
    /// `retry_at`.
    pub async fn attempted(
        &self,
        key: &str,
        now: i64,
        outcome: Result<(), (&str, i64)>,
    ) -> Result<(), LedgerError> {
        let q = match outcome {
            Ok(()) => sqlx::query(
                "UPDATE outbox SET delivered_at = $2, attempts = attempts + 1, last_error = NULL, claimed_until = NULL WHERE key = $1",
            )
            .bind(key)
            .bind(now),
            Err((error, retry_at)) => sqlx::query(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt = $3, claimed_until = NULL WHERE key = $1",
            )
            .bind(key)
            .bind(error.chars().take(1000).collect::<String>())
            .bind(retry_at),
        };
        q.execute(&self.pool)
            .await
            .map_err(|source| LedgerError::Query {
                what: "record delivery",
                source,
            })?;
        Ok(())
    }

    /// Deletes outbox rows delivered before `before` and silences that ended before it; returns
    /// how many outbox rows went.
    pub async fn prune_delivered(&self, before: i64) -> Result<u64, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "prune outbox and silences",
            source,
        };
        let r =
            sqlx::query("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await
                .map_err(err)?;
        sqlx::query("DELETE FROM silences WHERE ends_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected())
    }
}
