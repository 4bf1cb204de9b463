//! The ledger: every slice the engine recorded, per cell and SLO, in SQL. SQLite by default (a
//! file created on first start), PostgreSQL for HA deployments; the same migrations
//! (`migrations/`) and queries run on both.
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Row};
use thiserror::Error;

mod alerts;
mod bands;
pub use bands::BandQuery;
mod changes;
pub use changes::ChangeWatch;
mod cursors;
mod history;
mod judge;
mod outbox;
mod silences;
mod slices;
mod topology;

pub use history::HourRow;
pub use judge::*;
pub use outbox::*;
pub use slices::*;

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

/// The default ledger: a SQLite file in the working directory, created if missing.
pub const DEFAULT_URL: &str = "sqlite://cellwatch-slo.db?mode=rwc";

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
    /// Who watches what this process writes (see [`Ledger::watch`]).
    watches: std::sync::Arc<changes::Watches>,
}

/// Settings of every PostgreSQL connection, for the evaluation's sums (every cell of one SLO in
/// one query):
/// - no JIT compilation: its start-up (hundreds of milliseconds per worker at 10,000 cells)
///   outweighs what it saves on queries that run in well under a second;
/// - `work_mem` at least 16 MB: the per-cell sums of 10,000 cells (about 20 MB of hash table,
///   within twice `work_mem`) stay in memory instead of spilling to disk. A larger value the
///   operator set (for the role, the database or in the URL's `options`) is kept.
///
/// One statement, through `set_config` on what `pg_settings` lists: a server without one of
/// the settings (no `jit` before PostgreSQL 11) keeps its default rather than failing every
/// connection. Other databases are left as they are.
pub const POSTGRES_SESSION: &str = "SELECT set_config(name, CASE name WHEN 'jit' THEN 'off' \
     ELSE '16MB' END, false) FROM pg_settings \
     WHERE name = 'jit' OR (name = 'work_mem' AND unit = 'kB' AND CAST(setting AS BIGINT) < 16384)";

async fn session(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    if conn.backend_name() == "PostgreSQL" {
        sqlx::query(POSTGRES_SESSION).execute(&mut *conn).await?;
    }
    Ok(())
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
            url: crate::util::redact::password(&url),
            source,
        };
        // SQLite: one writer (writes serialize anyway); PostgreSQL: a few.
        // No ping before each use: a broken connection fails its query, which is retried at the
        // next tick; a ping per query doubled every round trip.
        let pool = AnyPoolOptions::new()
            .test_before_acquire(false)
            .after_connect(|conn, _| Box::pin(session(conn)))
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
                url: crate::util::redact::password(&url),
                source,
            })?;
        let read = if memory {
            pool.clone()
        } else {
            AnyPoolOptions::new()
                .test_before_acquire(false)
                .after_connect(|conn, _| Box::pin(session(conn)))
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
            watches: Default::default(),
        })
    }

    /// A run-time setting of PostgreSQL as the evaluation's connections see it (see
    /// [`POSTGRES_SESSION`]); `None` on SQLite.
    pub async fn postgres_setting(&self, name: &str) -> Result<Option<String>, LedgerError> {
        if !self.postgres {
            return Ok(None);
        }
        let row = sqlx::query("SELECT current_setting($1)")
            .bind(name)
            .fetch_one(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "read a setting",
                source,
            })?;
        row.try_get::<String, _>(0)
            .map(Some)
            .map_err(|source| LedgerError::Query {
                what: "read a setting",
                source,
            })
    }

    /// Closes the pools.
    pub async fn close(self) {
        self.read.close().await;
        self.pool.close().await;
    }
}
