//! Backtests as aligned text tables for a terminal.

use super::rows::{self, Table};
use crate::backtest::result::Backtest;

/// Text for a terminal: control characters written as escapes, never sent raw.
fn clean(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let e: Vec<char> = if c.is_control() {
                c.escape_debug().collect()
            } else {
                vec![c]
            };
            e
        })
        .collect()
}

/// A table with aligned columns, indented by two spaces; or what it says when it is empty.
fn aligned(t: &Table) -> String {
    if t.rows.is_empty() {
        return format!("  {}\n", t.empty);
    }
    let head: Vec<String> = t.head.iter().map(|h| h.to_string()).collect();
    let body: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let lines: Vec<&Vec<String>> = std::iter::once(&head).chain(&body).collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let cells: Vec<String> = l
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str("  ");
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// One backtest: its header, alerts, incidents and budgets.
fn one(b: &Backtest) -> String {
    let header = rows::header(b);
    let w = header.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("backtest of {}\n", clean(&b.config));
    for (k, v) in &header {
        out.push_str(&format!("  {k:<w$}  {}\n", clean(v)));
    }
    for (title, t) in [
        ("alerts", rows::alerts(b)),
        ("incidents", rows::incidents(b)),
        ("budget per cell and SLO", rows::budgets(b)),
    ] {
        out.push_str(&format!("\n{title}\n"));
        out.push_str(&aligned(&t));
    }
    out
}

/// Backtests as text tables: with two or more, a comparison first, one row per configuration;
/// then each backtest.
pub fn table(bs: &[Backtest]) -> String {
    if bs.is_empty() {
        return "no backtest\n".into();
    }
    let mut parts = Vec::new();
    if bs.len() > 1 {
        parts.push(format!(
            "comparison of {} configurations on the same history\n{}",
            bs.len(),
            aligned(&rows::comparison(bs))
        ));
    }
    parts.extend(bs.iter().map(one));
    parts.join("\n")
}

#[cfg(test)]
mod tests {
    use super::super::fixture;
    use super::table;

    /// The first line of `text` holding every one of `words`.
    fn line_with<'a>(text: &'a str, words: &[&str]) -> &'a str {
        text.lines()
            .find(|l| words.iter().all(|w| l.contains(w)))
            .unwrap_or_else(|| panic!("no line with {words:?} in\n{text}"))
    }

    #[test]
    fn the_page_is_listed_with_its_detection_and_reset_time_in_aligned_columns() {
        let t = table(&[fixture::backtest()]);
        let page = line_with(&t, &["CellwatchErrorBudgetBurn", "availability", "page"]);
        assert!(page.contains("2026-12-03T00:30:58Z"), "{page}");
        assert!(page.contains("58s  ") && page.contains("5m 0s"), "{page}");
        assert!(page.trim_end().ends_with("yes"), "{page}");
        let ticket = line_with(&t, &["CellwatchErrorBudgetBurn", "latency", "ticket"]);
        assert!(
            ticket.contains("(firing)") && ticket.contains("10m 0s"),
            "{ticket}"
        );
        let head = line_with(&t, &["alertname", "detection"]);
        assert_eq!(head.find("detection"), page.find("58s"), "\n{head}\n{page}");
        assert_eq!(head.find("notified"), page.find("yes"), "\n{head}\n{page}");
        assert!(!t.contains("comparison"), "one backtest, no comparison");
    }

    #[test]
    fn the_header_incidents_and_budgets_are_written() {
        let t = table(&[fixture::backtest()]);
        assert!(t.starts_with("backtest of a.yaml\n"), "{t}");
        line_with(
            &t,
            &[
                "range",
                "2026-12-03T00:00:00Z .. 2026-12-03T02:00:00Z (2h 0m)",
            ],
        );
        line_with(&t, &["interval", "30s"]);
        line_with(&t, &["evaluations", "240"]);
        line_with(&t, &["replay", "0.25 s"]);
        let k1 = line_with(&t, &["oncall", "2026-12-03T00:31:00Z"]);
        let cols: Vec<&str> = k1.split_whitespace().collect();
        assert_eq!(
            cols[..6],
            [
                "oncall",
                "studio-a",
                "2026-12-03T00:31:00Z",
                "2026-12-03T01:05:30Z",
                "2",
                "1"
            ]
        );
        let open = line_with(&t, &["tickets", "(open)"]);
        assert!(open.contains("{latency,ticket}"), "{open}");
        let avail = line_with(&t, &["studio-a", "availability", "99.90%"]);
        let cols: Vec<&str> = avail.split_whitespace().collect();
        assert_eq!(cols[3..], ["45.0%", "45.0%", "11.5×"]);
        let lat = line_with(&t, &["studio-a", "latency", "99.00%"]);
        assert_eq!(
            lat.split_whitespace().collect::<Vec<_>>()[3..],
            ["88.0%", "88.0%", "2.0×"]
        );
    }

    #[test]
    fn empty_lists_say_so() {
        let mut b = fixture::backtest();
        b.alerts.clear();
        b.incidents.clear();
        b.series.clear();
        let t = table(&[b]);
        assert!(t.contains("\nalerts\n  no alert fired\n"), "{t}");
        assert!(t.contains("  no incident\n"), "{t}");
        assert!(t.contains("  no SLO series\n"), "{t}");
        assert!(!t.contains("alertname"), "{t}");
        assert_eq!(table(&[]), "no backtest\n");
    }

    #[test]
    fn two_configs_are_compared_row_by_row() {
        let a = fixture::backtest();
        let mut b = fixture::backtest();
        b.config = "b.yaml".into();
        b.notifications.remove(1);
        b.incidents.remove(1);
        b.series[0].points[11].budget_remaining = Some(0.2);
        let t = table(&[a, b]);
        assert!(
            t.starts_with("comparison of 2 configurations on the same history\n"),
            "{t}"
        );
        let row = |config: &str| -> Vec<String> {
            let l = t
                .lines()
                .find(|l| l.trim_start().starts_with(config))
                .unwrap();
            l.split_whitespace().map(str::to_string).collect()
        };
        assert_eq!(
            row("a.yaml"),
            [
                "a.yaml",
                "2",
                "1",
                "3",
                "2",
                "2",
                "45.0%",
                "(studio-a",
                "availability)"
            ]
        );
        assert_eq!(
            row("b.yaml"),
            [
                "b.yaml",
                "2",
                "1",
                "2",
                "1",
                "2",
                "20.0%",
                "(studio-a",
                "availability)"
            ]
        );
        assert_eq!(t.matches("backtest of ").count(), 2, "{t}");
    }

    #[test]
    fn control_characters_do_not_reach_the_terminal() {
        let mut b = fixture::backtest();
        b.alerts[0].cell = "evil\u{1b}[2Jcell".into();
        let t = table(&[b]);
        assert!(!t.contains('\u{1b}'), "{t}");
        assert!(t.contains("evil\\u{1b}[2Jcell"), "{t}");
    }
}
