//! Writing a report: table, JSON, CSV.

use super::build::Report;
use crate::util::time::rfc3339 as time;

pub(super) fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// The report as an aligned text table.
pub fn table(r: &Report) -> String {
    let mut lines = vec![[
        "cell".to_string(),
        "slo".into(),
        "objective".into(),
        "good".into(),
        "total".into(),
        "sli".into(),
        "budget used".into(),
        "tokens/kWh".into(),
        "kWh/1k req".into(),
    ]];
    for x in &r.rows {
        lines.push([
            x.cell.clone(),
            x.slo.clone(),
            format!("{:.2}%", x.objective * 100.0),
            format!("{} {}", x.good, x.unit),
            format!("{}", x.total),
            opt(x.sli, |v| format!("{:.4}%", v * 100.0)),
            opt(x.budget_used, |v| format!("{:.1}%", v * 100.0)),
            opt(x.tokens_per_kwh, |v| format!("{v:.0}")),
            opt(x.kwh_per_1k_requests, |v| format!("{v:.4}")),
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = format!(
        "cellwatch budget report {} .. {}\n",
        time(r.from),
        time(r.to)
    );
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// The report as JSON.
pub fn json(r: &Report) -> String {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["from"] = time(r.from).into();
    v["to"] = time(r.to).into();
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// The report as CSV (RFC 4180; empty fields for missing values).
pub fn csv(r: &Report) -> String {
    let q = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    let mut out = String::from(
        "from,to,cell,slo,unit,objective,good,total,sli,budget_used,tokens_per_kwh,kwh_per_1k_requests\n",
    );
    for x in &r.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{}\n",
            time(r.from),
            time(r.to),
            q(&x.cell),
            q(&x.slo),
            x.unit,
            x.objective,
            x.good,
            x.total,
            o(x.sli),
            o(x.budget_used),
            o(x.tokens_per_kwh),
            o(x.kwh_per_1k_requests)
        ));
    }
    out
}
