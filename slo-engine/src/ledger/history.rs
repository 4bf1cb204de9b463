//! The history of an SLO for the status page: its hourly rollup rows over a period, and the
//! notifications queued over it (the alert markers).

use sqlx::Row;

use super::{Ledger, LedgerError};

/// One hour of one SLO of one cell: good and total events, or judged slices.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourRow {
    /// Start of the hour (Unix seconds).
    pub start: i64,
    /// Good events (or good judged slices).
    pub good: f64,
    /// Events (or judged slices).
    pub total: f64,
}

impl Ledger {
    /// The hourly rows of one SLO for every cell that start in `[from, to)`, oldest first, by
    /// cell: events, or with `judged` the verdicts of its time slices (`judged_good`,
    /// `judged_total`). One query on the covering index of `slices_hourly`; a 30-day period is
    /// at most 720 rows per cell.
    pub async fn hourly_history(
        &self,
        slo: &str,
        judged: bool,
        from: i64,
        to: i64,
    ) -> Result<std::collections::HashMap<String, Vec<HourRow>>, LedgerError> {
        let (good, total) = if judged {
            ("judged_good", "judged_total")
        } else {
            ("good", "total")
        };
        let sql = format!(
            "SELECT cell, start, {good}, {total} FROM slices_hourly \
             WHERE slo = $1 AND start >= $2 AND start < $3 ORDER BY cell, start"
        );
        let rows = sqlx::query(&sql)
            .bind(slo)
            .bind(from)
            .bind(to)
            .fetch_all(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "read the hourly history",
                source,
            })?;
        let mut out: std::collections::HashMap<String, Vec<HourRow>> =
            std::collections::HashMap::new();
        for r in &rows {
            let decode = || -> Result<(String, HourRow), sqlx::Error> {
                Ok((
                    r.try_get(0)?,
                    HourRow {
                        start: r.try_get(1)?,
                        good: r.try_get(2)?,
                        total: r.try_get(3)?,
                    },
                ))
            };
            let (cell, h) = decode().map_err(|source| LedgerError::Query {
                what: "decode the hourly history",
                source,
            })?;
            out.entry(cell).or_default().push(h);
        }
        Ok(out)
    }

    /// The notifications queued in `[from, to)` (reports left out): `(queued at, payload)`,
    /// oldest first, one row per notification however many integrations its receiver has
    /// (they share the payload). Delivered or not: a marker shows the alert was raised.
    pub async fn notifications_between(
        &self,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, String)>, LedgerError> {
        let rows = sqlx::query(
            "SELECT DISTINCT created_at, payload FROM outbox \
             WHERE integration <> 'report' AND created_at >= $1 AND created_at < $2 \
             ORDER BY created_at, payload",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await
        .map_err(|source| LedgerError::Query {
            what: "read the notifications",
            source,
        })?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|source| LedgerError::Query {
                what: "decode the notifications",
                source,
            })
    }
}
