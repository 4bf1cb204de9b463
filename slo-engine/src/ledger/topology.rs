//! Links learned by `topology: learn`.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{Ledger, LedgerError};

impl Ledger {
    /// Every cell's learned links: (node a, node b) pairs by cell.
    pub async fn learned_links(
        &self,
    ) -> Result<BTreeMap<String, Vec<(String, String)>>, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "read learned links",
            source,
        };
        let rows = sqlx::query(
            "SELECT cell, node_a, node_b FROM learned_links ORDER BY cell, node_a, node_b",
        )
        .fetch_all(&self.read)
        .await
        .map_err(err)?;
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for r in rows {
            let (cell, a, b): (String, String, String) = (
                r.try_get(0).map_err(err)?,
                r.try_get(1).map_err(err)?,
                r.try_get(2).map_err(err)?,
            );
            out.entry(cell).or_default().push((a, b));
        }
        Ok(out)
    }

    /// Stores a cell's learned links at `at`, replacing what was stored for it.
    pub async fn save_learned_links(
        &self,
        cell: &str,
        links: &[(String, String)],
        at: i64,
    ) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Query {
            what: "store learned links",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        sqlx::query("DELETE FROM learned_links WHERE cell = $1")
            .bind(cell)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        for (a, b) in links {
            sqlx::query("INSERT INTO learned_links (cell, node_a, node_b, learned_at) VALUES ($1, $2, $3, $4)")
                .bind(cell)
                .bind(a)
                .bind(b)
                .bind(at)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }
}
