//! The ledger: every slice the engine recorded, per cell and SLO, in SQL. SQLite by default (a
//! file created on first start), PostgreSQL for HA deployments; the same migrations
//! (`migrations/`) and queries run on both.

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use thiserror::Error;

use crate::math::SliceData;

/// A ledger operation that failed.
#[derive(Debug, Error)]
pub enum LedgerError {
    /// The database could not be opened.
    #[error("opening the ledger at {url}: {source}")]
    Open {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The migrations failed.
    #[error("migrating the ledger at {url}: {source}")]
    Migrate {
        /// The URL, without its password.
        url: String,
        /// Why.
        source: sqlx::migrate::MigrateError,
    },
    /// A query failed.
    #[error("ledger query ({what}): {source}")]
    Query {
        /// Which query.
        what: &'static str,
        /// Why.
        source: sqlx::Error,
    },
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// The default ledger: a SQLite file in the working directory, created if missing.
pub const DEFAULT_URL: &str = "sqlite://cellwatch-slo.db?mode=rwc";

/// Reads a slice from columns `at..at + 6` (start, good, total, tokens, joules, requests).
fn slice_at(r: &sqlx::any::AnyRow, at: usize) -> Result<SliceData, sqlx::Error> {
    Ok(SliceData {
        start: r.try_get(at)?,
        good: r.try_get(at + 1)?,
        total: r.try_get(at + 2)?,
        tokens: r.try_get(at + 3)?,
        joules: r.try_get(at + 4)?,
        requests: r.try_get(at + 5)?,
    })
}

/// An open, migrated ledger.
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
}

impl Ledger {
    /// Opens (creating a SQLite file if needed) and migrates.
    pub async fn open(url: &str) -> Result<Ledger, LedgerError> {
        install_default_drivers();
        let url =
            if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
                format!("{url}{}mode=rwc", if url.contains('?') { "&" } else { "?" })
            } else {
                url.to_string()
            };
        // One connection for SQLite: writes serialize anyway, and an in-memory database is per
        // connection.
        let max = if url.starts_with("sqlite:") { 1 } else { 8 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(|source| LedgerError::Open {
                url: redact(&url),
                source,
            })?;
        sqlx::migrate!("../migrations")
            .run(&pool)
            .await
            .map_err(|source| LedgerError::Migrate {
                url: redact(&url),
                source,
            })?;
        Ok(Ledger { pool })
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
        for (cell, slo, s) in rows {
            for (table, start) in [
                ("slices", s.start),
                ("slices_hourly", s.start - s.start.rem_euclid(3600)),
            ] {
                sqlx::query(&format!(
                    "INSERT INTO {table} (cell, slo, start, good, total, tokens, joules, requests) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (cell, slo, start) DO UPDATE SET \
                       good = {table}.good + excluded.good, total = {table}.total + excluded.total, \
                       tokens = {table}.tokens + excluded.tokens, joules = {table}.joules + excluded.joules, \
                       requests = {table}.requests + excluded.requests"
                ))
                .bind(cell.as_str())
                .bind(slo.as_str())
                .bind(start)
                .bind(s.good)
                .bind(s.total)
                .bind(s.tokens)
                .bind(s.joules)
                .bind(s.requests)
                .execute(&mut *tx)
                .await
                .map_err(err)?;
            }
        }
        tx.commit().await.map_err(err)
    }

    /// How far a query source has recorded (Unix milliseconds), if it ever did.
    pub async fn cursor(&self, source: &str) -> Result<Option<i64>, LedgerError> {
        let row = sqlx::query("SELECT upto FROM source_cursors WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.pool)
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

    /// The slices of one cell and SLO that start in `[from, to)`, oldest first.
    pub async fn slices(
        &self,
        cell: &str,
        slo: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<SliceData>, LedgerError> {
        let rows = sqlx::query(
            "SELECT start, good, total, tokens, joules, requests FROM slices \
             WHERE cell = $1 AND slo = $2 AND start >= $3 AND start < $4 ORDER BY start",
        )
        .bind(cell)
        .bind(slo)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await
        .map_err(|source| LedgerError::Query {
            what: "read slices",
            source,
        })?;
        rows.iter()
            .map(|r| slice_at(r, 0))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode slices",
                source,
            })
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
        .fetch_all(&self.pool)
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

    /// For one SLO (or `""`, the cells' totals), the sums of every column over the rows that
    /// start at or after each of `bounds` (and before `to`), per cell: one query, summed in the
    /// database. `result[cell][i]` holds the sums from `bounds[i]`.
    pub async fn window_sums(
        &self,
        slo: &str,
        bounds: &[i64],
        to: i64,
    ) -> Result<std::collections::HashMap<String, Vec<SliceData>>, LedgerError> {
        self.sums("slices", slo, bounds, to).await
    }

    /// As [`Ledger::window_sums`], from the hourly rollup: each bound is moved back to the start
    /// of its hour, so a window may reach up to 59 minutes further back than asked.
    pub async fn hourly_window_sums(
        &self,
        slo: &str,
        bounds: &[i64],
        to: i64,
    ) -> Result<std::collections::HashMap<String, Vec<SliceData>>, LedgerError> {
        let hours: Vec<i64> = bounds.iter().map(|b| b - b.rem_euclid(3600)).collect();
        self.sums("slices_hourly", slo, &hours, to).await
    }

    async fn sums(
        &self,
        table: &str,
        slo: &str,
        bounds: &[i64],
        to: i64,
    ) -> Result<std::collections::HashMap<String, Vec<SliceData>>, LedgerError> {
        let from = bounds.iter().copied().min().unwrap_or(to);
        let mut cols = String::new();
        for (i, _) in bounds.iter().enumerate() {
            let p = i + 4;
            for c in ["good", "total", "tokens", "joules", "requests"] {
                cols.push_str(&format!(
                    ", SUM(CASE WHEN start >= ${p} THEN {c} ELSE 0 END)"
                ));
            }
        }
        let sql = format!(
            "SELECT cell{cols} FROM {table} WHERE slo = $1 AND start >= $2 AND start < $3 GROUP BY cell"
        );
        let mut q = sqlx::query(&sql).bind(slo).bind(from).bind(to);
        for b in bounds {
            q = q.bind(*b);
        }
        let rows = q
            .fetch_all(&self.pool)
            .await
            .map_err(|source| LedgerError::Query {
                what: "sum windows",
                source,
            })?;
        let mut out = std::collections::HashMap::new();
        for r in rows {
            let decode = || -> Result<(String, Vec<SliceData>), sqlx::Error> {
                let cell: String = r.try_get(0)?;
                let mut sums = Vec::with_capacity(bounds.len());
                for (i, b) in bounds.iter().enumerate() {
                    let at = 1 + i * 5;
                    let get = |k: usize| -> Result<f64, sqlx::Error> {
                        Ok(r.try_get::<Option<f64>, _>(at + k)?.unwrap_or(0.0))
                    };
                    sums.push(SliceData {
                        start: *b,
                        good: get(0)?,
                        total: get(1)?,
                        tokens: get(2)?,
                        joules: get(3)?,
                        requests: get(4)?,
                    });
                }
                Ok((cell, sums))
            };
            let (cell, sums) = decode().map_err(|source| LedgerError::Query {
                what: "decode window sums",
                source,
            })?;
            out.insert(cell, sums);
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

    /// Deletes hourly rollups that start before `before`.
    pub async fn prune_hourly(&self, before: i64) -> Result<u64, LedgerError> {
        let err = |source| LedgerError::Query {
            what: "prune hourly rollups",
            source,
        };
        let r = sqlx::query("DELETE FROM slices_hourly WHERE start < $1")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(err)?;
        Ok(r.rows_affected())
    }

    /// Closes the pool.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://cw:secret@db:5432/cw"),
            "postgres://cw:***@db:5432/cw"
        );
        assert_eq!(redact("postgres://cw@db/cw"), "postgres://cw@db/cw");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
