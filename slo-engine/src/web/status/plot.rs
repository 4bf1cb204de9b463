//! The small plot of one SLO of one cell over its period, as inline SVG (a 320×90 view box
//! that scales to the page's width): the budget left (left axis, 0–100 %, values outside drawn
//! at the edge), the hourly burn rate (right axis, log scale of whole decades, 1× dashed) and
//! the alerts sent (red: page, orange: ticket). A missing hour breaks the burn line. In the
//! style of the backtest's plot (`backtest::render::svg`), smaller.

use std::fmt::Write as _;

use cellwatch_http::html::escape;

use super::history::{HourPoint, SloHistory};
use crate::util::time::rfc3339;

/// The view box.
const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 90.0;
/// The plot area: x from `LEFT` to `RIGHT`, y from `TOP` (100 %) to `BOTTOM` (0 %).
pub(super) const LEFT: f64 = 30.0;
pub(super) const RIGHT: f64 = 290.0;
pub(super) const TOP: f64 = 6.0;
pub(super) const BOTTOM: f64 = 72.0;

pub(super) const BUDGET: &str = "#1f77b4";
pub(super) const BURN: &str = "#9467bd";
pub(super) const PAGE: &str = "#d62728";
pub(super) const TICKET: &str = "#ff7f0e";

/// Where things go: time to x, budget to y, burn rate to y on a log scale of whole decades.
pub(super) struct Frame {
    from: i64,
    span: f64,
    /// The burn axis' lowest and highest decade (log10).
    pub(super) lo: i32,
    pub(super) hi: i32,
}

impl Frame {
    pub(super) fn new(h: &SloHistory) -> Frame {
        let top = h
            .points
            .iter()
            .filter_map(|p| p.burn)
            .filter(|v| v.is_finite() && *v > 0.0)
            .fold(10.0, f64::max);
        Frame {
            from: h.from,
            span: (h.to - h.from).max(1) as f64,
            lo: -1,
            hi: (top.log10().ceil() as i32).clamp(1, 9),
        }
    }

    pub(super) fn x(&self, t: i64) -> f64 {
        LEFT + (t - self.from) as f64 / self.span * (RIGHT - LEFT)
    }

    pub(super) fn y_budget(&self, v: f64) -> f64 {
        BOTTOM - v.clamp(0.0, 1.0) * (BOTTOM - TOP)
    }

    pub(super) fn y_burn(&self, v: f64) -> f64 {
        let l = v.max(10f64.powi(self.lo)).log10().min(self.hi as f64);
        BOTTOM - (l - self.lo as f64) / (self.hi - self.lo) as f64 * (BOTTOM - TOP)
    }
}

/// The runs of consecutive points with a finite value: a missing one ends a run.
fn runs(points: &[HourPoint], value: impl Fn(&HourPoint) -> Option<f64>) -> Vec<Vec<(i64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for p in points {
        match value(p).filter(|v| v.is_finite()) {
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
    class: &str,
    colour: &str,
) -> String {
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
            r#"<polyline class="{class}" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            pts.join(" ")
        );
        if let [(t, v)] = r[..] {
            let (x, y) = xy(t, v);
            let _ = write!(
                out,
                r#"<circle cx="{x:.1}" cy="{y:.1}" r="1.5" fill="{colour}"/>"#
            );
        }
    }
    out
}

/// The frame, the 1× burn line, the axes' labels and the period's ends.
fn axes(f: &Frame, h: &SloHistory) -> String {
    let one = f.y_burn(1.0);
    let mut out = format!(
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#bbb"/><line class="one" x1="{LEFT}" y1="{one:.1}" x2="{RIGHT}" y2="{one:.1}" stroke="#999" stroke-dasharray="3 3"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    for (v, label) in [(1.0, "100%"), (0.0, "0%")] {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end" fill="{BUDGET}">{label}</text>"#,
            LEFT - 3.0,
            f.y_budget(v) + 3.0
        );
    }
    for d in [f.lo, 0, f.hi] {
        let v = 10f64.powi(d);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="start" fill="{BURN}">{v}×</text>"#,
            RIGHT + 3.0,
            f.y_burn(v) + 3.0
        );
    }
    let day = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap_or_default()
            .format("%m-%d %H:%M")
            .to_string()
    };
    let _ = write!(
        out,
        r#"<text x="{LEFT}" y="{:.1}" text-anchor="start">{}</text><text x="{RIGHT}" y="{:.1}" text-anchor="end">{} UTC</text>"#,
        BOTTOM + 11.0,
        day(h.from),
        BOTTOM + 11.0,
        day(h.to)
    );
    out
}

/// A vertical line per alert sent, in the plot.
fn marks(f: &Frame, h: &SloHistory) -> String {
    let mut out = String::new();
    for m in &h.marks {
        let x = f.x(m.at);
        if !(LEFT..=RIGHT).contains(&x) {
            continue;
        }
        let (class, colour) = if m.page {
            ("page", PAGE)
        } else {
            ("ticket", TICKET)
        };
        let _ = write!(
            out,
            r#"<line class="{class}" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="{colour}" stroke-width="1.5"><title>{} {}</title></line>"#,
            rfc3339(m.at),
            escape(&m.alerts)
        );
    }
    out
}

/// The plot of one SLO of one cell, as an `<svg>` element titled `title`.
pub(super) fn plot(h: &SloHistory, title: &str) -> String {
    let f = Frame::new(h);
    let budget = line(
        &runs(&h.points, |p| p.budget),
        |t, v| (f.x(t), f.y_budget(v)),
        "budget",
        BUDGET,
    );
    let burn = line(
        &runs(&h.points, |p| p.burn),
        |t, v| (f.x(t), f.y_burn(v)),
        "burn",
        BURN,
    );
    format!(
        r#"<svg class="plot" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="8" role="img"><title>{}</title>{}{budget}{burn}{}</svg>"#,
        escape(title),
        axes(&f, h),
        marks(&f, h)
    )
}

#[cfg(test)]
mod tests {
    use super::fixture::{attr, history, polylines, tags};
    use super::*;

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 0.06
    }

    #[test]
    fn lines_follow_the_hours() {
        let svg = plot(&history(), "c avail");
        let x = |t: f64| LEFT + t / 36_000.0 * (RIGHT - LEFT);
        let budget = polylines(&svg, "budget");
        assert_eq!(budget.len(), 1);
        assert_eq!(budget[0].len(), 10);
        for (i, &(px, py)) in budget[0].iter().enumerate() {
            let h = (i + 1) as f64;
            assert!(near(px, x(h * 3600.0)), "{i}: {px}");
            assert!(
                near(py, BOTTOM - (1.0 - 0.1 * h) * (BOTTOM - TOP)),
                "{i}: {py}"
            );
        }
        // The burn: broken at hour 3; log decades 0.1× to 10×: 1× in the middle, 10× on top.
        let burn = polylines(&svg, "burn");
        assert_eq!(burn.iter().map(Vec::len).collect::<Vec<_>>(), [2, 7]);
        let mid = (TOP + BOTTOM) / 2.0;
        assert!(near(burn[0][0].1, mid) && near(burn[0][0].0, x(3600.0)));
        assert!(near(burn[1][0].0, x(4.0 * 3600.0)));
        assert!(near(burn[1][1].1, TOP), "{:?}", burn[1]);
        assert!(svg.contains(">10×</text>") && svg.contains(">0.1×</text>"));
        let one = tags(&svg, "line", "one");
        assert!(near(attr(one[0], "y1").parse().unwrap(), mid));
    }

    #[test]
    fn alerts_stand_at_their_times_in_their_colours() {
        let svg = plot(&history(), "c <avail>");
        let pages = tags(&svg, "line", "page");
        let tickets = tags(&svg, "line", "ticket");
        assert_eq!(
            (pages.len(), tickets.len()),
            (1, 1),
            "the early one is left out"
        );
        assert!(near(
            attr(pages[0], "x1").parse().unwrap(),
            (LEFT + RIGHT) / 2.0
        ));
        assert_eq!(attr(pages[0], "stroke"), PAGE);
        assert!(near(
            attr(tickets[0], "x1").parse().unwrap(),
            LEFT + 0.75 * (RIGHT - LEFT)
        ));
        assert_eq!(attr(tickets[0], "stroke"), TICKET);
        assert!(
            svg.contains("<title>1970-01-01T05:00:00Z Burn &lt;x&gt;</title>"),
            "{svg}"
        );
        assert!(svg.contains("<title>c &lt;avail&gt;</title>"));
        let open = &svg[..svg.find('>').unwrap()];
        assert!(
            open.contains("viewBox=\"0 0 320 90\"") && !open.contains(" width="),
            "{open}"
        );
    }

    #[test]
    fn a_lone_point_is_a_dot_and_an_empty_history_still_draws() {
        let mut h = history();
        h.points.truncate(1);
        let svg = plot(&h, "t");
        assert_eq!(polylines(&svg, "budget")[0].len(), 1);
        assert_eq!(svg.matches("<circle").count(), 2);
        h.points.clear();
        let svg = plot(&h, "t");
        assert!(polylines(&svg, "budget").is_empty() && svg.ends_with("</svg>"));
    }
}

/// What the page's tests share with the plot's: a history, and reading the SVG back.
#[cfg(test)]
pub(super) mod fixture {
    use super::super::history::{HourPoint, Mark, SloHistory};

    /// The value of attribute `name` in tag text `tag`.
    pub(in crate::web::status) fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
        let i = tag.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        &tag[i..i + tag[i..].find('"').unwrap()]
    }

    /// The elements `<kind class="class" ...>` of `svg`, as their opening tag.
    pub(in crate::web::status) fn tags<'a>(svg: &'a str, kind: &str, class: &str) -> Vec<&'a str> {
        let start = format!("<{kind} class=\"{class}\"");
        svg.match_indices(&start)
            .map(|(i, _)| &svg[i..i + svg[i..].find('>').unwrap()])
            .collect()
    }

    /// Each polyline of a class as its points.
    pub(in crate::web::status) fn polylines(svg: &str, class: &str) -> Vec<Vec<(f64, f64)>> {
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

    /// Ten hours; the budget falls by a tenth an hour; the burn is 1× but 10× in hour 5 and
    /// missing in hour 3; a page at 5 h, a ticket at 7.5 h and one before the plot.
    pub(in crate::web::status) fn history() -> SloHistory {
        SloHistory {
            from: 0,
            to: 36_000,
            points: (1..=10)
                .map(|h| HourPoint {
                    at: h * 3600,
                    budget: Some(1.0 - 0.1 * h as f64),
                    burn: match h {
                        3 => None,
                        5 => Some(10.0),
                        _ => Some(1.0),
                    },
                })
                .collect(),
            marks: [(18_000, true), (27_000, false), (-10, true)]
                .map(|(at, page)| Mark {
                    at,
                    page,
                    alerts: "Burn <x>".into(),
                })
                .to_vec(),
        }
    }
}
