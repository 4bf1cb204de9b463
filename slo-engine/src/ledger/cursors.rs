//! Source cursors, scrape baselines and the leader lease.

use sqlx::Row;

use super::slices::insert_slices;
use super::{Ledger, LedgerError};
use crate::model::SliceData;

impl Ledger {
    /// Every node's scrape baseline: (when, generation, reading as JSON), by node.
    pub async fn baselines(
        &self,
    ) -> Result<std::collections::HashMap<String, (i64, i64, String)>, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "read scrape baselines",
            source,
        };
        let rows = sqlx::query("SELECT node, at, generation, reading FROM scrape_baselines")
            .fetch_all(&self.read)
            .await
            .map_err(err)?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, (r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(err)
    }

    /// Records one scrape: its slices and its nodes' new baselines, in one transaction, only if
    /// every baseline is still at the generation it was read at (`None`: not in the ledger
    /// yet). Otherwise nothing is written ([`LedgerError::Moved`]): another engine recorded
    /// these increases. Each move is `(node, expected generation, at, reading JSON)`.
    pub async fn record_scrape(
        &self,
        rows: &[(String, String, SliceData)],
        moves: &[(String, Option<i64>, i64, String)],
    ) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Query {
            what: "record a scrape",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        for (node, generation, at, reading) in moves {
            let r = match generation {
                Some(generation) => sqlx::query(
                    "UPDATE scrape_baselines SET at = $3, generation = generation + 1, reading = $4 \
                     WHERE node = $1 AND generation = $2",
                )
                .bind(node.as_str())
                .bind(*generation),
                None => sqlx::query(
                    "INSERT INTO scrape_baselines (node, at, generation, reading) VALUES ($1, $2, 0, $3) \
                     ON CONFLICT (node) DO NOTHING",
                )
                .bind(node.as_str()),
            }
            .bind(*at)
            .bind(reading.as_str())
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            if r.rows_affected() != 1 {
                tx.rollback().await.map_err(err)?;
                return Err(LedgerError::Moved { node: node.clone() });
            }
        }
        insert_slices(&mut tx, rows).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        self.wrote(rows);
        Ok(())
    }

    /// How far a query source has recorded (Unix milliseconds), if it ever did.
    pub async fn cursor(&self, source: &str) -> Result<Option<i64>, LedgerError> {
        let row = sqlx::query("SELECT upto FROM source_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "read source cursor",
                source,
            })?;
        row.map(|r| r.try_get::<i64, _>(0))
            .transpose()
            .map_err(|source| LedgerError::Query {
                what: "decode source cursor",
                source,
            })
    }

    /// Takes or renews the lease `name` for `holder` until `now + ttl` (milliseconds); true
    /// when `holder` holds it (it held it already, or the last holder's lease expired).
    pub async fn lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        ttl: i64,
    ) -> Result<bool, LedgerError> {
        let r = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|source| LedgerError::Query {
            what: "take the lease",
            source,
        })?;
        Ok(r.rows_affected() == 1)
    }
}
