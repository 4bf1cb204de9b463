//! Silences: added, listed, expired.

use sqlx::Row;

use super::{Ledger, LedgerError};

impl Ledger {
    /// Stores a silence unless `max_active` silences are already active or pending at `now`
    /// (they end later): false when refused. The count and the insert are one statement.
    pub async fn add_silence(
        &self,
        s: &crate::model::Silence,
        now: i64,
        max_active: usize,
    ) -> Result<bool, LedgerError> {
        let r = sqlx::query(
            "INSERT INTO silences (id, matchers, starts_at, ends_at, created_by, comment) \
             SELECT $1, $2, $3, $4, $5, $6 \
             WHERE (SELECT COUNT(*) FROM silences WHERE ends_at > $7) < $8",
        )
        .bind(s.id.as_str())
        .bind(serde_json::to_string(&s.matchers).unwrap_or_default())
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(s.created_by.as_str())
        .bind(s.comment.as_str())
        .bind(now)
        .bind(i64::try_from(max_active).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(|source| LedgerError::Query {
            what: "add silence",
            source,
        })?;
        Ok(r.rows_affected() == 1)
    }

    /// Every silence, newest first.
    pub async fn silences(&self) -> Result<Vec<crate::model::Silence>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, matchers, starts_at, ends_at, created_by, comment FROM silences \
             ORDER BY starts_at DESC, id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(|source| LedgerError::Query {
            what: "read silences",
            source,
        })?;
        rows.iter()
            .map(|r| {
                let matchers: String = r.try_get(1)?;
                Ok(crate::model::Silence {
                    id: r.try_get(0)?,
                    matchers: serde_json::from_str(&matchers)
                        .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
                    starts_at: r.try_get(2)?,
                    ends_at: r.try_get(3)?,
                    created_by: r.try_get(4)?,
                    comment: r.try_get(5)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode silences",
                source,
            })
    }

    /// Expires a silence at `now`; false when there is no such silence (or it had ended).
    pub async fn expire_silence(&self, id: &str, now: i64) -> Result<bool, LedgerError> {
        let r = sqlx::query("UPDATE silences SET ends_at = $2 WHERE id = $1 AND ends_at > $2")
            .bind(id)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|source| LedgerError::Query {
                what: "expire silence",
                source,
            })?;
        Ok(r.rows_affected() == 1)
    }
}
