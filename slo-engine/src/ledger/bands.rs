//! Sums of rows over bands of time (the windows), one range scan per run of bands.

use sqlx::Row;

use super::slices::Table;
use super::{Ledger, LedgerError};

/// One table's bands of one SLO: a part of [`Ledger::bands_of`]. Band `i` holds the rows that
/// start in `[bounds[i], bounds[i + 1])` (`bounds` ascending); only the bands with `keep[i]` are
/// read (the others stay zero). `cols` are the SQL expressions summed (columns, or verdicts of
/// [`Judge::sql`]); their placeholders are the query's first ones, bound from `params`.
///
/// [`Judge::sql`]: crate::math::Judge::sql
pub struct BandQuery<'a, const N: usize> {
    /// The table.
    pub table: Table,
    /// The SLO (`""`: the cells' totals).
    pub slo: &'a str,
    /// Band bounds.
    pub bounds: &'a [i64],
    /// Which bands to read.
    pub keep: &'a [bool],
    /// What to sum (an empty expression: not summed, zero); every part of one
    /// [`Ledger::bands_of`] leaves out the same ones.
    pub cols: &'a [String; N],
}

impl Ledger {
    /// Sums per cell and band of one SLO's rows (or `""`, the cells' totals) in `table` (see
    /// [`BandQuery`]), `params` the values of the columns' placeholders, numbered from `$1`.
    /// One query, one pass over the kept ranges of the covering index, summed in the database.
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
        let part = BandQuery {
            table,
            slo,
            bounds,
            keep,
            cols,
        };
        Ok(self
            .bands_of(&[part], params)
            .await?
            .pop()
            .unwrap_or_default())
    }

    /// The sums of several parts (tables of one SLO, whose columns share `params`) in one
    /// query: per part, per cell and band.
    pub async fn bands_of<const N: usize>(
        &self,
        parts: &[BandQuery<'_, N>],
        params: &[f64],
    ) -> Result<Vec<std::collections::HashMap<String, Vec<[f64; N]>>>, LedgerError> {
        let mut out = vec![std::collections::HashMap::new(); parts.len()];
        let mut selects = Vec::new();
        let mut base = params.len();
        for (i, p) in parts.iter().enumerate() {
            let last = p.bounds.len().saturating_sub(1);
            let runs = kept_runs(p.keep, last);
            if runs.is_empty() {
                continue;
            }
            selects.push(bands_sql(p.table, p.cols, base, last, &runs, i));
            base += 1 + p.bounds.len();
        }
        if selects.is_empty() {
            return Ok(out);
        }
        let sql = selects.join(" UNION ALL ");
        let mut q = sqlx::query(&sql);
        for v in params {
            q = q.bind(*v);
        }
        for p in parts {
            let last = p.bounds.len().saturating_sub(1);
            if kept_runs(p.keep, last).is_empty() {
                continue;
            }
            q = q.bind(p.slo);
            for b in p.bounds {
                q = q.bind(*b);
            }
        }
        let rows = q
            .fetch_all(&self.read)
            .await
            .map_err(|source| LedgerError::Query {
                what: "sum bands",
                source,
            })?;
        // Every part sums the same columns (one UNION ALL).
        let Some(first) = parts.first() else {
            return Ok(out);
        };
        for r in rows {
            let (part, cell, band, v) =
                decode_band(&r, first.cols).map_err(|source| LedgerError::Query {
                    what: "decode band sums",
                    source,
                })?;
            let Some(p) = usize::try_from(part).ok().and_then(|i| parts.get(i)) else {
                continue;
            };
            let last = p.bounds.len().saturating_sub(1);
            if let Ok(band) = usize::try_from(band)
                && band < last
                && let Some(map) = out.get_mut(part as usize)
            {
                map.entry(cell).or_insert_with(|| vec![[0.0; N]; last])[band] = v;
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

/// The query summing `cols` per cell and band over the kept runs, its rows tagged `part`.
/// Placeholders: `$1..` the columns' parameters, `$n+1` the SLO, `$n+2..` the bounds, every one
/// named in the CASE (SQLite counts placeholders by the highest one named).
fn bands_sql(
    table: Table,
    cols: &[String],
    n: usize,
    last: usize,
    runs: &[(usize, usize)],
    part: usize,
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
        .filter(|(_, c)| !c.is_empty())
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
        .filter(|i| !cols[*i].is_empty())
        .map(|i| format!("CAST(SUM(c{i}) AS DOUBLE PRECISION)"))
        .collect();
    format!(
        "SELECT CAST({part} AS BIGINT), cell, CAST(band AS BIGINT), {} FROM ({}) AS r GROUP BY cell, band",
        sums.join(", "),
        scans.join(" UNION ALL ")
    )
}

/// (part, cell, band, the sums) of one result row; `cols` says which sums it holds (an empty
/// expression is not summed: zero).
fn decode_band<const N: usize>(
    r: &sqlx::any::AnyRow,
    cols: &[String; N],
) -> Result<(i64, String, i64, [f64; N]), sqlx::Error> {
    let part: i64 = r.try_get(0)?;
    let cell: String = r.try_get(1)?;
    let band: i64 = r.try_get::<Option<i64>, _>(2)?.unwrap_or(-1);
    let mut v = [0.0; N];
    let mut at = 3;
    for (x, c) in v.iter_mut().zip(cols) {
        if !c.is_empty() {
            *x = r.try_get::<Option<f64>, _>(at)?.unwrap_or(0.0);
            at += 1;
        }
    }
    Ok((part, cell, band, v))
}
