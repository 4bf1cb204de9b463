//! The alert state and its outbox rows, saved in one transaction.

use sqlx::Row;

use super::outbox::{OutboxRow, insert_outbox};
use super::{Ledger, LedgerError};

impl Ledger {
    /// The alerting state saved last (JSON), if any.
    pub async fn alert_state(&self) -> Result<Option<String>, LedgerError> {
        let row = sqlx::query("SELECT state FROM alert_state WHERE id = 1")
            .fetch_optional(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "read alert state",
                source,
            })?;
        row.map(|r| r.try_get::<String, _>(0))
            .transpose()
            .map_err(|source| LedgerError::Query {
                what: "decode alert state",
                source,
            })
    }

    /// Saves the alerting state and queues its notifications, in one transaction: a crash keeps
    /// both or neither. A row whose key is already queued is left alone (idempotent).
    pub async fn save_alerts(
        &self,
        state: &str,
        at: i64,
        outbox: &[OutboxRow],
        fence: Option<(&str, i64)>,
    ) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Query {
            what: "save alert state",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        // Fencing: a leader that lost its lease (stalled past it) writes nothing.
        if let Some((holder, now_ms)) = fence {
            let held = sqlx::query(
                "SELECT holder FROM leases WHERE name = 'leader' AND holder = $1 AND expires_at >= $2",
            )
            .bind(holder)
            .bind(now_ms)
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .is_some();
            if !held {
                tx.rollback().await.map_err(err)?;
                return Err(LedgerError::NotLeader {
                    what: "the alert state",
                });
            }
        }
        sqlx::query(
            "INSERT INTO alert_state (id, state, at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET state = excluded.state, at = excluded.at",
        )
        .bind(state)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        insert_outbox(&mut tx, outbox).await.map_err(err)?;
        tx.commit().await.map_err(err)
    }
}
