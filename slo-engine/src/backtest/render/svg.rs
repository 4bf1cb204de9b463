//! The budget-and-burn plot of one cell and SLO, as inline SVG: the budget left (left axis,
//! 0–100 %, values outside drawn at the edge), the 1 h, 6 h and 3 d burn rates (right axis, log
//! scale, values below its first decade drawn on it), each tier's threshold dashed, alert
//! markers (fired, resolved) and the cell's notifications (triangles at the top, filled for
//! pages). A missing point breaks its line.

use std::fmt::Write as _;

use cellwatch_http::html::escape;

use super::rows::{burn, finite, percent};
use crate::backtest::result::{Backtest, Point, SloSeries};
use crate::util::time::rfc3339;

/// The picture's size.
const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 330.0;
/// The plot area: x from `LEFT` to `RIGHT`, y from `TOP` (100 %) to `BOTTOM` (0 %).
pub(super) const LEFT: f64 = 60.0;
pub(super) const RIGHT: f64 = 890.0;
pub(super) const TOP: f64 = 30.0;
pub(super) const BOTTOM: f64 = 250.0;

const PAGE: &str = "#d62728";
const TICKET: &str = "#ff7f0e";
const RESOLVED: &str = "#2ca02c";

/// The lines: what they show, their class, colour and width.
type Value = fn(&Point) -> Option<f64>;
const BUDGET: (&str, &str, &str, f64) = ("budget left", "budget", "#1f77b4", 2.0);
const BURNS: [(&str, &str, &str, f64, Value); 3] = [
    ("burn 1h", "burn-1h", "#9467bd", 1.2, |p| p.burn_1h),
    ("burn 6h", "burn-6h", "#8c564b", 1.2, |p| p.burn_6h),
    ("burn 3d", "burn-3d", "#17becf", 1.2, |p| p.burn_3d),
];

/// Where things go: time to x, budget to y, burn rate to y on a log scale of whole decades.
struct Frame {
    from: i64,
    span: f64,
    /// The burn axis' lowest and highest decade (log10).
    lo: i32,
    hi: i32,
}

impl Frame {
    fn new(b: &Backtest, s: &SloSeries) -> Frame {
        let values = s.points.iter().flat_map(|p| BURNS.map(|l| finite(l.4(p))));
        let top = values
            .flatten()
            .chain(s.thresholds.iter().map(|t| t.factor))
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(10.0, f64::max);
        Frame {
            from: b.from,
            span: (b.to - b.from).max(1) as f64,
            lo: -1,
            hi: (top.log10().ceil() as i32).clamp(1, 9),
        }
    }

    fn x(&self, t: i64) -> f64 {
        x_at(self.from, self.span, t)
    }

    fn y_budget(&self, v: f64) -> f64 {
        BOTTOM - v.clamp(0.0, 1.0) * (BOTTOM - TOP)
    }

    fn y_burn(&self, v: f64) -> f64 {
        let l = v.max(10f64.powi(self.lo)).log10().min(self.hi as f64);
        BOTTOM - (l - self.lo as f64) / (self.hi - self.lo) as f64 * (BOTTOM - TOP)
    }
}

/// The x of time `t` on a plot of `span` seconds from `from`.
pub(super) fn x_at(from: i64, span: f64, t: i64) -> f64 {
    LEFT + (t - from) as f64 / span * (RIGHT - LEFT)
}

/// The runs of consecutive points with a value: a missing value ends a run.
fn runs(points: &[Point], value: impl Fn(&Point) -> Option<f64>) -> Vec<Vec<(i64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for p in points {
        match finite(value(p)) {
            Some(v) => run.push((p.at, v)),
            None if !run.is_empty() => out.push(std::mem::take(&mut run)),
            None => {}
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// One line as polylines, one per run; a lone point also gets a dot, to be seen.
fn line(
    runs: &[Vec<(i64, f64)>],
    xy: impl Fn(i64, f64) -> (f64, f64),
    style: (&str, &str, f64),
) -> String {
    let (class, colour, width) = style;
    let mut out = String::new();
    for r in runs {
        let pts: Vec<String> = r
            .iter()
            .map(|&(t, v)| {
                let (x, y) = xy(t, v);
                format!("{x:.1},{y:.1}")
            })
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="{class}" fill="none" stroke="{colour}" stroke-width="{width}" points="{}"/>"#,
            pts.join(" ")
        );
        if let [(t, v)] = r[..] {
            let (x, y) = xy(t, v);
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="2" fill="{colour}"/>"#
            );
        }
    }
    out
}

/// The budget and burn lines.
fn lines(f: &Frame, s: &SloSeries) -> String {
    let (_, class, colour, width) = BUDGET;
    let mut out = line(
        &runs(&s.points, |p| p.budget_remaining),
        |t, v| (f.x(t), f.y_budget(v)),
        (class, colour, width),
    );
    for (_, class, colour, width, value) in BURNS {
        out += &line(
            &runs(&s.points, value),
            |t, v| (f.x(t), f.y_burn(v)),
            (class, colour, width),
        );
    }
    out
}

/// Each tier's threshold, dashed across the plot, with its label.
fn thresholds(f: &Frame, s: &SloSeries) -> String {
    let mut out = String::new();
    for t in s
        .thresholds
        .iter()
        .filter(|t| t.factor.is_finite() && t.factor > 0.0)
    {
        let y = f.y_burn(t.factor);
        let text = format!("{} {}", escape(&t.label), burn(t.factor));
        let _ = write!(
            out,
            r##"<line class="threshold" x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#555" stroke-dasharray="5 4"><title>{text}</title></line><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{text}</text>"##,
            RIGHT - 4.0,
            y - 3.0
        );
    }
    out
}

/// A vertical marker at `t`, if `t` lies in the plot.
fn marker(f: &Frame, t: i64, class: &str, colour: &str, title: &str) -> String {
    let x = f.x(t);
    if !(LEFT..=RIGHT).contains(&x) {
        return String::new();
    }
    format!(
        r#"<line class="{class}" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="{colour}" stroke-width="1.5"><title>{}</title></line>"#,
        escape(title)
    )
}

/// The alerts of this SLO and of its cell (no `slo`): fired and resolved.
fn markers(f: &Frame, b: &Backtest, s: &SloSeries) -> String {
    let mut out = String::new();
    for e in b
        .alerts
        .iter()
        .filter(|e| e.cell == s.cell && (e.slo == s.slo || e.slo.is_empty()))
    {
        let colour = if e.severity == "page" { PAGE } else { TICKET };
        let what = format!("{} ({})", e.alertname, e.severity);
        out += &marker(
            f,
            e.fired_at,
            "fired",
            colour,
            &format!("{what} fired {}", rfc3339(e.fired_at)),
        );
        if let Some(t) = e.resolved_at {
            out += &marker(
                f,
                t,
                "resolved",
                RESOLVED,
                &format!("{what} resolved {}", rfc3339(t)),
            );
        }
    }
    out
}

/// The cell's notifications: triangles at the top, filled for pages.
fn notifications(f: &Frame, b: &Backtest, s: &SloSeries) -> String {
    let mut out = String::new();
    for n in b.notifications.iter().filter(|n| n.cell == s.cell) {
        let x = f.x(n.at);
        if !(LEFT..=RIGHT).contains(&x) {
            continue;
        }
        let colour = match (n.status.as_str(), n.page) {
            ("resolved", _) => RESOLVED,
            (_, true) => PAGE,
            _ => TICKET,
        };
        let fill = if n.page { colour } else { "white" };
        let title = format!(
            "{} to {} ({}) {}: {}",
            n.status,
            n.receiver,
            n.reason,
            rfc3339(n.at),
            n.alerts.join(", ")
        );
        let _ = write!(
            out,
            r#"<polygon class="notification" points="{:.1},{:.1} {:.1},{:.1} {x:.1},{:.1}" fill="{fill}" stroke="{colour}"><title>{}</title></polygon>"#,
            x - 5.0,
            TOP - 14.0,
            x + 5.0,
            TOP - 14.0,
            TOP - 4.0,
            escape(&title)
        );
    }
    out
}

/// Time ticks: a whole step that gives at most 8 ticks, at multiples of it since the epoch
/// (whole UTC hours and days), and the format of their labels.
fn time_ticks(from: i64, to: i64) -> (Vec<i64>, &'static str) {
    const STEPS: [i64; 14] = [
        60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2419200,
    ];
    let span = (to - from).max(1);
    let step = STEPS
        .into_iter()
        .find(|s| span / s <= 8)
        .unwrap_or_else(|| (span / 8 / 86400 + 1) * 86400);
    let first = from.div_euclid(step) * step + if from.rem_euclid(step) == 0 { 0 } else { step };
    let ticks = (0..=8)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to)
        .collect();
    let format = if step >= 86400 {
        "%m-%d"
    } else if span > 86400 {
        "%m-%d %H:%M"
    } else {
        "%H:%M"
    };
    (ticks, format)
}

/// The frame, grid, ticks and axis labels.
fn axes(f: &Frame, b: &Backtest) -> String {
    let mut out = format!(
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    for q in 0..=4 {
        let v = q as f64 / 4.0;
        let y = f.y_budget(v);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{RIGHT}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            y + 4.0,
            percent(v).replace(".0%", "%")
        );
    }
    for d in f.lo..=f.hi {
        let y = f.y_burn(10f64.powi(d));
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="start">{}×</text>"#,
            RIGHT + 6.0,
            y + 4.0,
            10f64.powi(d)
        );
    }
    let (ticks, format) = time_ticks(b.from, b.to);
    for t in ticks {
        let x = f.x(t);
        let label = chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .format(format);
        let _ = write!(
            out,
            r##"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="#999"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            BOTTOM + 5.0,
            BOTTOM + 18.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" text-anchor="start">budget left</text><text x="{RIGHT}" y="{:.1}" text-anchor="end">burn rate (log)</text><text x="{:.1}" y="{:.1}" text-anchor="middle">time (UTC)</text>"#,
        TOP - 18.0,
        TOP - 18.0,
        (LEFT + RIGHT) / 2.0,
        BOTTOM + 34.0
    );
    out
}

/// The legend, in a row under the plot.
fn legend() -> String {
    let mut items: Vec<(&str, &str, &str)> = vec![(BUDGET.0, BUDGET.2, "")];
    items.extend(BURNS.iter().map(|l| (l.0, l.2, "")));
    items.extend([
        ("threshold", "#555", "5 4"),
        ("fired: page", PAGE, ""),
        ("fired: ticket", TICKET, ""),
        ("resolved", RESOLVED, ""),
    ]);
    let y = HEIGHT - 14.0;
    let mut x = LEFT;
    let mut out = String::new();
    for (label, colour, dash) in items {
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="{:.1}">{label}</text>"#,
            x + 18.0,
            x + 22.0,
            y + 4.0
        );
        x += 24.0 + 6.2 * label.chars().count() as f64;
    }
    let _ = write!(
        out,
        r##"<polygon points="{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="#888" stroke="#888"/><text x="{:.1}" y="{:.1}">notification (filled: page)</text>"##,
        x,
        y - 5.0,
        x + 10.0,
        y - 5.0,
        x + 5.0,
        y + 5.0,
        x + 14.0,
        y + 4.0
    );
    out
}

/// The plot of one cell and SLO of a backtest, as an `<svg>` element.
pub(super) fn plot(b: &Backtest, s: &SloSeries) -> String {
    let f = Frame::new(b, s);
    let title = escape(&format!("{} {}: budget left and burn rates", s.cell, s.slo));
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11" role="img"><title>{title}</title>{}{}{}{}{}{}</svg>"#,
        axes(&f, b),
        thresholds(&f, s),
        lines(&f, s),
        markers(&f, b, s),
        notifications(&f, b, s),
        legend()
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{self, FROM, ONSET, RECOVERY, TO};
    use super::{BOTTOM, LEFT, RIGHT, TOP, plot, time_ticks};

    /// The value of attribute `name` in tag text `tag`.
    fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let i = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &tag[i..i + tag[i..].find('"').unwrap()]
    }

    /// The elements `<kind class="class" ...>` of `svg`, as their opening tag.
    fn tags<'a>(svg: &'a str, kind: &str, class: &str) -> Vec<&'a str> {
        let start = format!("<{kind} class=\"{class}\"");
        svg.match_indices(&start)
            .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
            .collect()
    }

    /// Each polyline of a class as its points.
    fn polylines(svg: &str, class: &str) -> Vec<Vec<(f64, f64)>> {
        tags(svg, "polyline", class)
            .iter()
            .map(|t| {
                attr(t, "points")
                    .split(' ')
                    .map(|p| {
                        let (x, y) = p.split_once(',').unwrap();
                        (x.parse().unwrap(), y.parse().unwrap())
                    })
                    .collect()
            })
            .collect()
    }

    fn x(t: i64) -> f64 {
        LEFT + (t - FROM) as f64 / (TO - FROM) as f64 * (RIGHT - LEFT)
    }

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.06
    }

    #[test]
    fn a_missing_value_breaks_the_line_and_every_value_is_a_point() {
        let b = fixture::backtest();
        let svg = plot(&b, &b.series[0]);
        let lens = |class| {
            polylines(&svg, class)
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(lens("budget"), [12]);
        assert_eq!(lens("burn-1h"), [4, 6]);
        assert_eq!(lens("burn-6h"), [12]);
        assert_eq!(lens("burn-3d"), [11]);
        let burn = polylines(&svg, "burn-1h");
        assert!(near(burn[0][3].0, x(FROM + 3 * 600)), "{:?}", burn[0]);
        assert!(near(burn[1][0].0, x(FROM + 6 * 600)), "{:?}", burn[1]);
        let budget = &polylines(&svg, "budget")[0];
        assert!(
            near(budget[0].1, TOP) && near(budget[0].0, LEFT),
            "100 % at the top left"
        );
        assert!(near(budget[11].1, BOTTOM - 0.45 * (BOTTOM - TOP)));
        let latency = plot(&b, &b.series[1]);
        assert_eq!(
            polylines(&latency, "budget")
                .iter()
                .map(Vec::len)
                .collect::<Vec<_>>(),
            [3, 8]
        );
    }

    #[test]
    fn markers_stand_at_their_times_in_their_colours() {
        let b = fixture::backtest();
        let svg = plot(&b, &b.series[0]);
        let fired = tags(&svg, "line", "fired");
        assert_eq!(
            fired.len(),
            1,
            "the latency ticket is not on the availability plot"
        );
        assert!(
            near(attr(fired[0], "x1").parse().unwrap(), x(ONSET + 58)),
            "{}",
            fired[0]
        );
        assert_eq!(attr(fired[0], "stroke"), "#d62728");
        let resolved = tags(&svg, "line", "resolved");
        assert!(near(
            attr(resolved[0], "x1").parse().unwrap(),
            x(RECOVERY + 300)
        ));
        assert_eq!(attr(resolved[0], "stroke"), "#2ca02c");
        assert!(
            svg.contains(
                "<title>CellwatchErrorBudgetBurn (page) fired 2026-12-03T00:30:58Z</title>"
            )
        );
        let latency = plot(&b, &b.series[1]);
        let fired = tags(&latency, "line", "fired");
        assert_eq!(attr(fired[0], "stroke"), "#ff7f0e");
        assert!(
            tags(&latency, "line", "resolved").is_empty(),
            "still firing"
        );
        let marks = tags(&svg, "polygon", "notification");
        assert_eq!(marks.len(), 3);
        assert_eq!(attr(marks[0], "fill"), "#d62728", "the page is filled");
        assert_eq!(attr(marks[1], "fill"), "white");
        let tip = attr(marks[0], "points").split(' ').nth(2).unwrap();
        assert!(near(
            tip.split(',').next().unwrap().parse().unwrap(),
            x(ONSET + 60)
        ));
    }

    #[test]
    fn thresholds_are_dashed_on_the_log_axis() {
        let b = fixture::backtest();
        let svg = plot(&b, &b.series[0]);
        let lines = tags(&svg, "line", "threshold");
        assert_eq!(lines.len(), 3);
        // Decades 0.1× to 100× (the highest value, 14.4, rounded up).
        let y = |v: f64| BOTTOM - (v.log10() + 1.0) / 3.0 * (BOTTOM - TOP);
        assert!(
            near(attr(lines[0], "y1").parse().unwrap(), y(14.4)),
            "{}",
            lines[0]
        );
        assert!(near(attr(lines[2], "y1").parse().unwrap(), y(1.0)));
        assert_eq!(attr(lines[0], "stroke-dasharray"), "5 4");
        assert!(svg.contains(">page 1h 14.4×</text>") && svg.contains(">100×</text>"));
        assert!(!svg.contains(">1000×</text>"));
    }

    #[test]
    fn the_plot_is_well_formed_with_axes_and_legend() {
        let b = fixture::backtest();
        for s in &b.series {
            let svg = plot(&b, s);
            assert_eq!(fixture::unbalanced(&svg), None, "{svg}");
            assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"));
            for label in [
                "0%",
                "50%",
                "100%",
                "00:00",
                "01:00",
                "02:00",
                "time (UTC)",
                "burn 3d",
            ] {
                assert!(svg.contains(&format!(">{label}</text>")), "{label}");
            }
        }
        let mut empty = b.clone();
        empty.to = empty.from;
        empty.series[0].points.clear();
        assert_eq!(fixture::unbalanced(&plot(&empty, &empty.series[0])), None);
    }

    #[test]
    fn time_ticks_are_whole_utc_steps() {
        assert_eq!(
            time_ticks(FROM + 1, FROM + 7200),
            ((1..=8).map(|i| FROM + i * 900).collect(), "%H:%M")
        );
        let (ticks, format) = time_ticks(FROM, FROM + 30 * 86400);
        assert_eq!((ticks.len(), format), (5, "%m-%d"));
        assert!(ticks.iter().all(|t| t % (7 * 86400) == 0 || t % 86400 == 0));
    }
}
