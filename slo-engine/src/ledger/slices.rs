//! Slices: recorded (with their rollups), read, pruned.

use sqlx::Row;

use super::{Ledger, LedgerError};
use crate::model::SliceData;

/// Reads a slice from columns `at..at + 6` (start, good, total, tokens, joules, requests).
pub(super) fn slice_at(r: &sqlx::any::AnyRow, at: usize) -> Result<SliceData, sqlx::Error> {
    Ok(SliceData {
        start: r.try_get(at)?,
        good: r.try_get(at + 1)?,
        total: r.try_get(at + 2)?,
        tokens: r.try_get(at + 3)?,
        joules: r.try_get(at + 4)?,
        requests: r.try_get(at + 5)?,
    })
}

/// The tables of recorded slices, by resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// One row per minute (or per time slice).
    Minutes,
    /// The hourly rollup (and verdicts of time slices).
    Hours,
    /// The daily rollup (and verdicts of time slices).
    Days,
}

impl Table {
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Minutes => "slices",
            Table::Hours => "slices_hourly",
            Table::Days => "slices_daily",
        }
    }
}

/// Rows per multi-row statement: 8 placeholders each (SQLite finds a placeholder by scanning
/// the names, so a statement of thousands costs more than several of hundreds).
const ROWS_PER_STATEMENT: usize = 50;

/// Adds slices to the minute rows and the hourly and daily rollups, in a transaction: the rows
/// summed per table and key first (a multi-row upsert may not touch a row twice), then one
/// statement per table and 50 rows.
pub(super) async fn insert_slices(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(String, String, SliceData)],
) -> Result<(), sqlx::Error> {
    for (table, unit) in [
        ("slices", 0),
        ("slices_hourly", 3600),
        ("slices_daily", 86400),
    ] {
        let mut summed: std::collections::BTreeMap<(&str, &str, i64), SliceData> =
            std::collections::BTreeMap::new();
        for (cell, slo, s) in rows {
            let start = if unit == 0 {
                s.start
            } else {
                s.start - s.start.rem_euclid(unit)
            };
            summed.entry((cell, slo, start)).or_default().add(s);
        }
        let summed: Vec<_> = summed.into_iter().collect();
        for chunk in summed.chunks(ROWS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p: Vec<String> = (1..=8).map(|k| format!("${}", i * 8 + k)).collect();
                    format!("({})", p.join(", "))
                })
                .collect();
            let sql = format!(
                "INSERT INTO {table} (cell, slo, start, good, total, tokens, joules, requests) \
                 VALUES {} \
                 ON CONFLICT (cell, slo, start) DO UPDATE SET \
                   good = {table}.good + excluded.good, total = {table}.total + excluded.total, \
                   tokens = {table}.tokens + excluded.tokens, joules = {table}.joules + excluded.joules, \
                   requests = {table}.requests + excluded.requests",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for ((cell, slo, start), s) in chunk {
                q = q
                    .bind(*cell)
                    .bind(*slo)
                    .bind(*start)
                    .bind(s.good)
                    .bind(s.total)
                    .bind(s.tokens)
                    .bind(s.joules)
                    .bind(s.requests);
            }
            q.execute(&mut **tx).await?;
        }
    }
    Ok(())
}

impl Ledger {
    /// Tells the watches what `rows` changed (after their commit).
    pub(super) fn wrote(&self, rows: &[(String, String, SliceData)]) {
        let mut earliest: std::collections::HashMap<&str, i64> = std::collections::HashMap::new();
        for (_, slo, s) in rows {
            let e = earliest.entry(slo.as_str()).or_insert(s.start);
            *e = (*e).min(s.start);
        }
        self.changed(earliest.iter().map(|(slo, t)| (*slo, *t)));
    }

    /// Whether the ledger holds any slice (a backtest replays into an empty one).
    pub async fn holds_slices(&self) -> Result<bool, LedgerError> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM slices LIMIT 1")
            .fetch_optional(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "look for slices",
                source,
            })?;
        Ok(row.is_some())
    }

    /// Adds a slice's counts to what the ledger holds for it (a slice may be recorded in parts).
    pub async fn record(&self, cell: &str, slo: &str, s: &SliceData) -> Result<(), LedgerError> {
        self.record_many(&[(cell.to_string(), slo.to_string(), *s)])
            .await
    }

    /// Records many slices in one transaction: all or none (one scrape of every cell is one
    /// transaction, so a crash never leaves half a scrape behind).
    pub async fn record_many(
        &self,
        rows: &[(String, String, SliceData)],
    ) -> Result<(), LedgerError> {
        self.record_upto(rows, None).await
    }

    /// Records slices and, in the same transaction, moves a source's cursor (`(source, upto)`,
    /// see [`Ledger::cursor`]): a crash keeps both or neither.
    pub async fn record_upto(
        &self,
        rows: &[(String, String, SliceData)],
        cursor: Option<(&str, i64)>,
    ) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Query {
            what: "record slices",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        if let Some((source, upto)) = cursor {
            sqlx::query(
                "INSERT INTO source_cursors (source, upto) VALUES ($1, $2) \
                 ON CONFLICT (source) DO UPDATE SET upto = excluded.upto",
            )
            .bind(source)
            .bind(upto)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
        }
        insert_slices(&mut tx, rows).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        self.wrote(rows);
        Ok(())
    }

    /// Records a query source's slices of `(expected, upto]` and moves its cursor to `upto`, in
    /// one transaction, only if the cursor is still at `expected` (`None`: never written):
    /// otherwise nothing is written ([`LedgerError::Moved`]), as another engine recorded the
    /// stretch. Two engines that both believe they lead never record it twice.
    pub async fn record_chunk(
        &self,
        rows: &[(String, String, SliceData)],
        source: &str,
        expected: Option<i64>,
        upto: i64,
    ) -> Result<(), LedgerError> {
        let err = |source| LedgerError::Query {
            what: "record slices",
            source,
        };
        let mut tx = self.pool.begin().await.map_err(err)?;
        let r = match expected {
            Some(from) => {
                sqlx::query("UPDATE source_cursors SET upto = $2 WHERE source = $1 AND upto = $3")
                    .bind(source)
                    .bind(upto)
                    .bind(from)
            }
            None => sqlx::query(
                "INSERT INTO source_cursors (source, upto) VALUES ($1, $2) \
                 ON CONFLICT (source) DO NOTHING",
            )
            .bind(source)
            .bind(upto),
        }
        .execute(&mut *tx)
        .await
        .map_err(err)?;
        if r.rows_affected() != 1 {
            tx.rollback().await.map_err(err)?;
            return Err(LedgerError::Moved {
                node: source.to_string(),
            });
        }
        insert_slices(&mut tx, rows).await.map_err(err)?;
        tx.commit().await.map_err(err)?;
        self.wrote(rows);
        Ok(())
    }

    /// The slices of one cell and SLO that start in `[from, to)`, oldest first.
    pub async fn slices(
        &self,
        cell: &str,
        slo: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<SliceData>, LedgerError> {
        Ok(self
            .slices_by_cell(slo, from, to)
            .await?
            .remove(cell)
            .unwrap_or_default())
    }

    /// The slices of one SLO for every cell that start in `[from, to)`, oldest first, by cell.
    pub async fn slices_by_cell(
        &self,
        slo: &str,
        from: i64,
        to: i64,
    ) -> Result<std::collections::HashMap<String, Vec<SliceData>>, LedgerError> {
        let rows = sqlx::query(
            "SELECT cell, start, good, total, tokens, joules, requests FROM slices \
             WHERE slo = $1 AND start >= $2 AND start < $3 ORDER BY cell, start",
        )
        .bind(slo)
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await
        .map_err(|source| LedgerError::Query {
            what: "read slices",
            source,
        })?;
        let mut out: std::collections::HashMap<String, Vec<SliceData>> =
            std::collections::HashMap::new();
        for r in &rows {
            let decode = || -> Result<(String, SliceData), sqlx::Error> {
                Ok((r.try_get(0)?, slice_at(r, 1)?))
            };
            let (cell, s) = decode().map_err(|source| LedgerError::Query {
                what: "decode slices",
                source,
            })?;
            out.entry(cell).or_default().push(s);
        }
        Ok(out)
    }

    /// Deletes minute slices and hourly rollups that start before `before` (retention);
    /// returns how many minute slices went.
    pub async fn prune(&self, before: i64) -> Result<u64, LedgerError> {
        let n = self.prune_minutes(None, before).await?;
        self.prune_hourly(before).await?;
        Ok(n)
    }

    /// Deletes minute slices (of one SLO, or all) that start before `before`.
    pub async fn prune_minutes(&self, slo: Option<&str>, before: i64) -> Result<u64, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "prune slices",
            source,
        };
        let r = match slo {
            Some(slo) => sqlx::query("DELETE FROM slices WHERE slo = $1 AND start < $2")
                .bind(slo)
                .bind(before),
            None => sqlx::query("DELETE FROM slices WHERE start < $1").bind(before),
        }
        .execute(&self.pool)
        .await
        .map_err(err)?;
        Ok(r.rows_affected())
    }

    /// Deletes hourly and daily rollups that start before `before`; returns how many hourly
    /// rows went.
    pub async fn prune_hourly(&self, before: i64) -> Result<u64, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "prune rollups",
            source,
        };
        let r = sqlx::query("DELETE FROM slices_hourly WHERE start < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        // A day is dropped once all of it is older than `before`.
        sqlx::query("DELETE FROM slices_daily WHERE start < $1")
            .bind(before - 86400)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected())
    }
}
