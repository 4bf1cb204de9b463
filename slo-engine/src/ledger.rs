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
    /// This engine no longer holds the leader lease: nothing was written.
    #[error("not the leader any more: {what} was not written")]
    NotLeader {
        /// What was not written.
        what: &'static str,
    },
    /// Another engine moved a node's scrape baseline (or a query source's cursor) since it was
    /// read: nothing was written.
    #[error("the baseline of {node} was moved by another engine: nothing was written")]
    Moved {
        /// The node (`cell/node`) or the query source.
        node: String,
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
    fn name(self) -> &'static str {
        match self {
            Table::Minutes => "slices",
            Table::Hours => "slices_hourly",
            Table::Days => "slices_daily",
        }
    }
}

/// How a time slice is judged, as SQL: the same comparisons as [`crate::math::judge`], on the
/// same IEEE doubles, so the database and the pure math agree to the slice.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judge {
    /// Good when good / total reaches the slice target; idle without events.
    Ratio {
        /// Share of good events that makes a slice good.
        slice_target: f64,
    },
    /// Good when tokens per kWh reach the threshold; idle under `min_tokens` tokens or without
    /// an energy reading.
    TokensPerKwh {
        /// Tokens per kWh.
        threshold: f64,
        /// Fewest tokens.
        min_tokens: f64,
    },
}

impl Judge {
    /// (good, judged) SQL expressions of a row's verdict (1 or 0), and the values of their
    /// placeholders, numbered from `$first`.
    pub fn sql(&self, first: usize) -> (String, String, Vec<f64>) {
        let p = |i: usize| format!("${}", first + i);
        match *self {
            Judge::Ratio { slice_target } => (
                format!(
                    "CASE WHEN total > 0 AND good / total >= {} THEN 1 ELSE 0 END",
                    p(0)
                ),
                "CASE WHEN total > 0 THEN 1 ELSE 0 END".into(),
                vec![slice_target],
            ),
            Judge::TokensPerKwh {
                threshold,
                min_tokens,
            } => {
                let judged = format!("tokens >= {} AND tokens > 0 AND joules > 0", p(0));
                (
                    format!(
                        "CASE WHEN {judged} AND tokens / (joules / {}) >= {} THEN 1 ELSE 0 END",
                        p(1),
                        p(2)
                    ),
                    format!("CASE WHEN {judged} THEN 1 ELSE 0 END"),
                    vec![min_tokens, 3.6e6, threshold],
                )
            }
        }
    }

    /// The parameters, as the judging cursor's name.
    fn key(&self) -> String {
        match self {
            Judge::Ratio { slice_target } => format!("ratio {slice_target:?}"),
            Judge::TokensPerKwh {
                threshold,
                min_tokens,
            } => format!("tokens_per_kwh {threshold:?} {min_tokens:?}"),
        }
    }
}

/// Adds slices to the minute rows and the hourly and daily rollups, in a transaction.
async fn insert_slices(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(String, String, SliceData)],
) -> Result<(), sqlx::Error> {
    for (cell, slo, s) in rows {
        for (table, start) in [
            ("slices", s.start),
            ("slices_hourly", s.start - s.start.rem_euclid(3600)),
            ("slices_daily", s.start - s.start.rem_euclid(86400)),
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
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Inserts outbox rows in a transaction; a key already queued is left alone.
async fn insert_outbox(
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

/// An open, migrated ledger.
///
/// Writes and reads go through separate pools, so that readers (the API, the evaluation, a
/// report) never starve the writes (slices, the leader lease, the alert state): on SQLite the
/// database is in WAL mode, one connection writes and four read beside it without blocking
/// it; on PostgreSQL four connections write and eight read. An in-memory SQLite database is
/// one connection for both (it exists per connection).
#[derive(Debug, Clone)]
pub struct Ledger {
    pool: AnyPool,
    read: AnyPool,
    postgres: bool,
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
        let sqlite = url.starts_with("sqlite:");
        let memory = sqlite && (url.contains(":memory:") || url.contains("mode=memory"));
        let open_err = |source| LedgerError::Open {
            url: redact(&url),
            source,
        };
        // SQLite: one writer (writes serialize anyway); PostgreSQL: a few.
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 1 } else { 4 })
            .acquire_timeout(std::time::Duration::from_secs(5))
            .connect(&url)
            .await
            .map_err(open_err)?;
        if sqlite && !memory {
            // Readers beside the writer, neither blocking the other (kept in the file).
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await
                .map_err(open_err)?;
        }
        sqlx::migrate!("../migrations")
            .run(&pool)
            .await
            .map_err(|source| LedgerError::Migrate {
                url: redact(&url),
                source,
            })?;
        let read = if memory {
            pool.clone()
        } else {
            AnyPoolOptions::new()
                .max_connections(if sqlite { 4 } else { 8 })
                .acquire_timeout(std::time::Duration::from_secs(10))
                .connect(&url)
                .await
                .map_err(open_err)?
        };
        Ok(Ledger {
            pool,
            read,
            postgres: url.starts_with("postgres"),
        })
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
        tx.commit().await.map_err(err)
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
        tx.commit().await.map_err(err)
    }

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
        tx.commit().await.map_err(err)
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
        .fetch_all(&self.read)
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

    /// Sums per cell and band of one SLO's rows (or `""`, the cells' totals) in `table`: band
    /// `i` holds the rows that start in `[bounds[i], bounds[i + 1])` (`bounds` ascending); only
    /// the bands with `keep[i]` are read (the others stay zero). `cols` are the five SQL
    /// expressions summed (columns, or verdicts of [`Judge::sql`]) and `params` the values of
    /// their placeholders, numbered from `$1`: the query's own placeholders follow them. One
    /// query, one pass over the kept ranges of the covering index, summed in the database.
    /// `result[cell][band][col]`.
    pub async fn bands(
        &self,
        table: Table,
        slo: &str,
        bounds: &[i64],
        keep: &[bool],
        cols: &[String; 5],
        params: &[f64],
    ) -> Result<std::collections::HashMap<String, Vec<[f64; 5]>>, LedgerError> {
        let mut out = std::collections::HashMap::new();
        let last = bounds.len().saturating_sub(1);
        // Maximal runs of kept bands: each one range scan.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in (0..last).filter(|&i| keep.get(i).copied().unwrap_or(false)) {
            match runs.last_mut() {
                Some((_, end)) if *end == i => *end = i + 1,
                _ => runs.push((i, i + 1)),
            }
        }
        if runs.is_empty() {
            return Ok(out);
        }
        let n = params.len();
        let p = |i: usize| format!("${}", n + i);
        // $n+1: slo; $n+2..: bounds, every one named in the CASE (SQLite counts placeholders
        // by the highest one named).
        let mut case = format!("CASE WHEN start >= {} THEN {last}", p(2 + last));
        for i in (0..last).rev() {
            case.push_str(&format!(" WHEN start >= {} THEN {i}", p(2 + i)));
        }
        case.push_str(" END");
        let inner: Vec<String> = cols
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} AS c{i}"))
            .collect();
        let scans: Vec<String> = runs
            .iter()
            .map(|(from, to)| {
                format!(
                    "SELECT cell, {case} AS band, {} FROM {} WHERE slo = {} AND start >= {} AND start < {}",
                    inner.join(", "),
                    table.name(),
                    p(1),
                    p(2 + from),
                    p(2 + to)
                )
            })
            .collect();
        let sums: Vec<String> = (0..5)
            .map(|i| format!("CAST(SUM(c{i}) AS DOUBLE PRECISION)"))
            .collect();
        let sql = format!(
            "SELECT cell, CAST(band AS BIGINT), {} FROM ({}) AS r GROUP BY cell, band",
            sums.join(", "),
            scans.join(" UNION ALL ")
        );
        let mut q = sqlx::query(&sql);
        for v in params {
            q = q.bind(*v);
        }
        q = q.bind(slo);
        for b in bounds {
            q = q.bind(*b);
        }
        let rows = q
            .fetch_all(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "sum bands",
                source,
            })?;
        for r in rows {
            let decode = || -> Result<(String, i64, [f64; 5]), sqlx::Error> {
                let cell: String = r.try_get(0)?;
                let band: i64 = r.try_get::<Option<i64>, _>(1)?.unwrap_or(-1);
                let mut v = [0.0; 5];
                for (i, x) in v.iter_mut().enumerate() {
                    *x = r.try_get::<Option<f64>, _>(2 + i)?.unwrap_or(0.0);
                }
                Ok((cell, band, v))
            };
            let (cell, band, v) = decode().map_err(|source| LedgerError::Query {
                what: "decode band sums",
                source,
            })?;
            if let Ok(band) = usize::try_from(band)
                && band < last
            {
                out.entry(cell).or_insert_with(|| vec![[0.0; 5]; last])[band] = v;
            }
        }
        Ok(out)
    }

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
        let cursor = match cursor {
            Some(ms) => ms.div_euclid(1000),
            None => {
                // First judging under these parameters: start over.
                for table in ["slices_hourly", "slices_daily"] {
                    sqlx::query(&format!(
                        "UPDATE {table} SET judged_good = 0, judged_total = 0 WHERE slo = $1"
                    ))
                    .bind(slo)
                    .execute(&mut *tx)
                    .await
                    .map_err(err)?;
                }
                sqlx::query(
                    "DELETE FROM source_cursors WHERE substr(source, 1, CAST($1 AS INTEGER)) = $2",
                )
                .bind(prefix.len() as i64)
                .bind(prefix.as_str())
                .execute(&mut *tx)
                .await
                .map_err(err)?;
                from
            }
        };
        if to <= cursor {
            tx.rollback().await.map_err(err)?;
            return Ok(cursor);
        }
        let (good, total, params) = judge.sql(1);
        let n = params.len();
        for (table, unit) in [("slices_hourly", 3600), ("slices_daily", 86400)] {
            let sql = format!(
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
            );
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
        Ok(to)
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

    /// Stores a silence unless `max_active` silences are already active or pending at `now`
    /// (they end later): false when refused. The count and the insert are one statement.
    pub async fn add_silence(
        &self,
        s: &crate::alerting::Silence,
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
    pub async fn silences(&self) -> Result<Vec<crate::alerting::Silence>, LedgerError> {
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
                Ok(crate::alerting::Silence {
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

    /// Closes the pools.
    pub async fn close(self) {
        self.read.close().await;
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
