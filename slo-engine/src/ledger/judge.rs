//! Judging time slices into the hourly and daily rollups, exactly once per slice.

use sqlx::Row;

use super::{Ledger, LedgerError};

pub use crate::math::Judge;

impl Ledger {
    /// Judges the complete time slices of one SLO that start in `[cursor, to)` and adds their
    /// verdicts to the hourly and daily rollups (`judged_good`, `judged_total`), moving the
    /// SLO's judging cursor in the same transaction, so each slice is judged exactly once.
    /// The judging cursor is named by how slices are judged (the SLO, its parameters and the
    /// slice length): under a new name (a changed threshold or slice), the rollups' verdicts are
    /// cleared and every slice from `from` is judged again. Returns how far slices are judged (Unix seconds).
    pub async fn judge(
        &self,
        slo: &str,
        judge: &Judge,
        slice_secs: i64,
        from: i64,
        to: i64,
    ) -> Result<i64, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "judge time slices",
            source,
        };
        let prefix = format!("judged {slo} ");
        let key = format!("{prefix}{} slice {slice_secs}", judge.key());
        let mut tx = self.pool.begin().await.map_err(err)?;
        let cursor: Option<i64> = sqlx::query("SELECT upto FROM source_cursors WHERE source = $1")
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(err)?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()
            .map_err(err)?;
        let (cursor, changed) = match cursor {
            Some(ms) => (ms.div_euclid(1000), ms.div_euclid(1000)),
            None => {
                // First judging under these parameters: start over.
                start_over(&mut tx, slo, &prefix).await.map_err(err)?;
                (from, i64::MIN)
            }
        };
        if to <= cursor {
            tx.rollback().await.map_err(err)?;
            return Ok(cursor);
        }
        let (good, total, params) = judge.sql(1);
        let n = params.len();
        for (table, unit) in [("slices_hourly", 3600), ("slices_daily", 86400)] {
            let sql = rollup_sql(table, unit, &good, &total, n);
            let mut q = sqlx::query(&sql);
            for v in &params {
                q = q.bind(*v);
            }
            q.bind(slo)
                .bind(cursor)
                .bind(to)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
        }
        sqlx::query(
            "INSERT INTO source_cursors (source, upto) VALUES ($1, $2) \
             ON CONFLICT (source) DO UPDATE SET upto = excluded.upto",
        )
        .bind(key.as_str())
        .bind(to * 1000)
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        tx.commit().await.map_err(err)?;
        // Verdicts from the cursor on (every verdict, when judging started over).
        self.changed([(slo, changed)]);
        Ok(to)
    }
}

/// Clears the verdicts of `slo` in the rollups and forgets its judging cursors (all named by
/// `prefix`): its slices are judged again from the start.
async fn start_over(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    slo: &str,
    prefix: &str,
) -> Result<(), sqlx::Error> {
    for table in ["slices_hourly", "slices_daily"] {
        sqlx::query(&format!(
            "UPDATE {table} SET judged_good = 0, judged_total = 0 WHERE slo = $1"
        ))
        .bind(slo)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM source_cursors WHERE substr(source, 1, CAST($1 AS INTEGER)) = $2")
        .bind(prefix.len() as i64)
        .bind(prefix)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Adds the verdicts of one SLO's slices in `[$n+2, $n+3)` to a rollup of `unit` seconds;
/// `$1..$n` are the verdict's parameters, `$n+1` the SLO.
fn rollup_sql(table: &str, unit: i64, good: &str, total: &str, n: usize) -> String {
    format!(
        "INSERT INTO {table} (cell, slo, start, judged_good, judged_total) \
         SELECT cell, slo, start - (start % {unit}), CAST(SUM({good}) AS DOUBLE PRECISION), CAST(SUM({total}) AS DOUBLE PRECISION) \
         FROM slices WHERE slo = ${} AND start >= ${} AND start < ${} \
         GROUP BY cell, slo, start - (start % {unit}) \
         ON CONFLICT (cell, slo, start) DO UPDATE SET \
           judged_good = {table}.judged_good + excluded.judged_good, \
           judged_total = {table}.judged_total + excluded.judged_total",
        n + 1,
        n + 2,
        n + 3
    )
}
