//! Sums of rows over bands of time (the windows), one range scan per run of bands.

use sqlx::Row;

use super::slices::Table;
use super::{Ledger, LedgerError};

impl Ledger {
    /// Sums per cell and band of one SLO's rows (or `""`, the cells' totals) in `table`: band
    /// `i` holds the rows that start in `[bounds[i], bounds[i + 1])` (`bounds` ascending); only
    /// the bands with `keep[i]` are read (the others stay zero). `cols` are the SQL
    /// expressions summed (columns, or verdicts of [`Judge::sql`]) and `params` the values of
    /// their placeholders, numbered from `$1`: the query's own placeholders follow them. One
    /// query, one pass over the kept ranges of the covering index, summed in the database.
    /// `result[cell][band][col]`.
    pub async fn bands<const N: usize>(
        &self,
        table: Table,
        slo: &str,
        bounds: &[i64],
        keep: &[bool],
        cols: &[String; N],
        params: &[f64],
    ) -> Result<std::collections::HashMap<String, Vec<[f64; N]>>, LedgerError> {
        let mut out = std::collections::HashMap::new();
        let last = bounds.len().saturating_sub(1);
        let runs = kept_runs(keep, last);
        if runs.is_empty() {
            return Ok(out);
        }
        let sql = bands_sql(table, cols, params.len(), last, &runs);
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
            let (cell, band, v) = decode_band(&r).map_err(|source| LedgerError::Query {
                what: "decode band sums",
                source,
            })?;
            if let Ok(band) = usize::try_from(band)
                && band < last
            {
                out.entry(cell).or_insert_with(|| vec![[0.0; N]; last])[band] = v;
            }
        }
        Ok(out)
    }
}

/// Maximal runs of kept bands among the first `last`: each one range scan.
fn kept_runs(keep: &[bool], last: usize) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for i in (0..last).filter(|&i| keep.get(i).copied().unwrap_or(false)) {
        match runs.last_mut() {
            Some((_, end)) if *end == i => *end = i + 1,
            _ => runs.push((i, i + 1)),
        }
    }
    runs
}

/// The query summing `cols` per cell and band over the kept runs. Placeholders: `$1..$n` the
/// columns' parameters, `$n+1` the SLO, `$n+2..` the bounds, every one named in the CASE
/// (SQLite counts placeholders by the highest one named).
fn bands_sql(
    table: Table,
    cols: &[String],
    n: usize,
    last: usize,
    runs: &[(usize, usize)],
) -> String {
    let p = |i: usize| format!("${}", n + i);
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
    let sums: Vec<String> = (0..cols.len())
        .map(|i| format!("CAST(SUM(c{i}) AS DOUBLE PRECISION)"))
        .collect();
    format!(
        "SELECT cell, CAST(band AS BIGINT), {} FROM ({}) AS r GROUP BY cell, band",
        sums.join(", "),
        scans.join(" UNION ALL ")
    )
}

/// (cell, band, the sums) of one result row.
fn decode_band<const N: usize>(
    r: &sqlx::any::AnyRow,
) -> Result<(String, i64, [f64; N]), sqlx::Error> {
    let cell: String = r.try_get(0)?;
    let band: i64 = r.try_get::<Option<i64>, _>(1)?.unwrap_or(-1);
    let mut v = [0.0; N];
    for (i, x) in v.iter_mut().enumerate() {
        *x = r.try_get::<Option<f64>, _>(2 + i)?.unwrap_or(0.0);
    }
    Ok((cell, band, v))
}
