//! Backtests as one self-contained HTML page: no script, font or style sheet from elsewhere;
//! every text escaped.

use std::fmt::Write as _;

use cellwatch_http::html::escape;

use super::rows::{self, Table};
use super::svg;
use crate::backtest::result::Backtest;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #ddd;padding:.25em .75em;text-align:left;vertical-align:top;white-space:nowrap}\
th{background:#f4f4f4}table.header th{background:none;font-weight:normal;color:#666}\
section{border-top:2px solid #ccc;margin-top:2em}figure{margin:1em 0}\
figcaption{font-weight:bold}.empty{color:#666;font-style:italic}";

/// A table as HTML, or what it says when it is empty.
fn table_html(t: &Table) -> String {
    if t.rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>\n", escape(t.empty));
    }
    let mut out = String::from("<table>\n<tr>");
    for h in &t.head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>\n");
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
    out
}

/// One backtest: header, tables and a plot per cell and SLO.
fn section(b: &Backtest) -> String {
    let mut out = format!(
        "<section>\n<h2>backtest of {}</h2>\n<table class=\"header\">\n",
        escape(&b.config)
    );
    for (k, v) in rows::header(b) {
        let _ = writeln!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            escape(k),
            escape(&v)
        );
    }
    out.push_str("</table>\n");
    for (title, t) in [
        ("Alerts", rows::alerts(b)),
        ("Incidents", rows::incidents(b)),
        ("Budget per cell and SLO", rows::budgets(b)),
    ] {
        let _ = write!(out, "<h3>{}</h3>\n{}", escape(title), table_html(&t));
    }
    out.push_str("<h3>Budget and burn</h3>\n");
    if b.series.is_empty() {
        out.push_str("<p class=\"empty\">no SLO series</p>\n");
    }
    for s in &b.series {
        let _ = writeln!(
            out,
            "<figure>\n<figcaption>{} {}</figcaption>\n{}\n</figure>",
            escape(&s.cell),
            escape(&s.slo),
            svg::plot(b, s)
        );
    }
    out.push_str("</section>\n");
    out
}

/// Backtests as one HTML page: with two or more, a comparison first; then a section per
/// backtest with its tables and plots.
pub fn html(bs: &[Backtest]) -> String {
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>cellwatch backtest</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
         <h1>cellwatch backtest</h1>\n"
    );
    if bs.is_empty() {
        out.push_str("<p class=\"empty\">no backtest</p>\n");
    }
    if bs.len() > 1 {
        let _ = write!(
            out,
            "<h2>comparison of {} configurations on the same history</h2>\n{}",
            bs.len(),
            table_html(&rows::comparison(bs))
        );
    }
    for b in bs {
        out.push_str(&section(b));
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::html;

    #[test]
    fn every_text_is_escaped() {
        let evil = "<script>alert(1)</script>";
        let mut b = fixture::backtest();
        b.config = format!("{evil}.yaml");
        b.alerts[0].cell = evil.into();
        b.incidents[0].cell = evil.into();
        b.series[0].cell = evil.into();
        b.series[0].thresholds[0].label = evil.into();
        b.notifications[0].alerts = vec![evil.into()];
        let page = html(&[b]);
        assert!(!page.contains("<script"), "a raw <script> in the page");
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert_eq!(fixture::unbalanced(&page), None);
    }

    #[test]
    fn the_page_stands_alone_with_a_section_and_plots_per_backtest() {
        let mut b = fixture::backtest();
        b.config = "b.yaml".into();
        let page = html(&[fixture::backtest(), b]);
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert_eq!(fixture::unbalanced(&page), None);
        for outside in ["src=", "<link", "@import", "url(", "<script"] {
            assert!(!page.contains(outside), "{outside} in the page");
        }
        assert_eq!(page.matches("http").count(), 4, "only the SVG namespace");
        assert_eq!(page.matches("<section>").count(), 2);
        assert_eq!(page.matches("<svg ").count(), 4);
        assert!(page.contains("<h2>comparison of 2 configurations on the same history</h2>"));
        assert!(
            page.contains("<tr><td>a.yaml</td><td>2</td><td>1</td><td>3</td><td>2</td><td>2</td>")
        );
        assert!(page.contains("<td>58s</td><td>5m 0s</td><td>yes</td>"));
    }

    #[test]
    fn empty_lists_say_so() {
        let mut b = fixture::backtest();
        b.alerts.clear();
        b.series.clear();
        let page = html(&[b]);
        assert!(page.contains("<p class=\"empty\">no alert fired</p>"));
        assert!(page.contains("<p class=\"empty\">no SLO series</p>"));
        assert!(!page.contains("<th>alertname</th>"));
        assert!(!page.contains("comparison"));
        assert_eq!(fixture::unbalanced(&page), None);
    }
}
