//! Histories as OpenMetrics text with timestamps: the format `promtool tsdb create-blocks-from
//! openmetrics` takes (`# TYPE`/`# HELP`/`# UNIT` lines, `name{labels} value timestamp` with the
//! timestamp in seconds, `# EOF` at the end). Parsed into the series the `prometheus` source
//! reads, and written back from them.

use std::collections::{BTreeMap, HashMap};

use fnv::FnvHashMap;
use std::fmt::Write as _;

use cellwatch_metrics::Kind;

use crate::source::prometheus::Series;
use crate::util::text::quote;

/// Why a history file cannot be read. Every variant names the file (`origin`) and the line
/// (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryError {
    /// A line that is not OpenMetrics text.
    #[error("{origin}:{line}: expected {expected}, found {found}")]
    Syntax {
        /// The file (or other origin) read.
        origin: String,
        /// Line number.
        line: usize,
        /// What the line should have held there.
        expected: &'static str,
        /// What it held (quoted, cut).
        found: String,
    },
    /// A sample without a timestamp: a history needs the time of every sample.
    #[error(
        "{origin}:{line}: {series} has no timestamp; every sample of a history needs one \
         (seconds since the epoch after the value)"
    )]
    NoTimestamp {
        /// The file.
        origin: String,
        /// Line number.
        line: usize,
        /// The series (quoted, cut).
        series: String,
    },
    /// A timestamp that reads as milliseconds (the Prometheus text format's unit).
    #[error(
        "{origin}:{line}: timestamp {found} is after the year 5000: milliseconds (the \
         Prometheus text format)? OpenMetrics timestamps are seconds"
    )]
    Milliseconds {
        /// The file.
        origin: String,
        /// Line number.
        line: usize,
        /// The timestamp as written.
        found: String,
    },
    /// A sample not later than the previous sample of its series.
    #[error(
        "{origin}:{line}: {series} at {at} s is not after its previous sample (line \
         {previous}); a series' samples must be in time order"
    )]
    OutOfOrder {
        /// The file.
        origin: String,
        /// Line number.
        line: usize,
        /// The series (quoted, cut).
        series: String,
        /// The sample's timestamp as written.
        at: String,
        /// The line of the previous sample.
        previous: usize,
    },
    /// Text after `# EOF`.
    #[error("{origin}:{line}: expected nothing after `# EOF`, found {found}")]
    AfterEof {
        /// The file.
        origin: String,
        /// Line number.
        line: usize,
        /// What followed (quoted, cut).
        found: String,
    },
    /// The text ends without `# EOF`: cut short?
    #[error("{origin}:{line}: expected `# EOF`, found the end of the file (cut short?)")]
    MissingEof {
        /// The file.
        origin: String,
        /// The line after the last one.
        line: usize,
    },
}

/// Timestamps from here on (seconds; the year 5138) read as milliseconds.
const MAX_SECONDS: f64 = 1e11;

/// One sample line, split: the series text (`name{labels}`), the value, the timestamp.
struct Line<'a> {
    series: &'a str,
    name_len: usize,
    value: &'a str,
    timestamp: Option<&'a str>,
}

/// A parse failure inside a line: what was expected, from which byte.
type Miss = (&'static str, usize);

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':'
}

fn is_name_char(b: u8) -> bool {
    is_name_start(b) || b.is_ascii_digit()
}

/// The end of the label set that opens at `open` (the byte after its `}`).
fn label_set_end(line: &str, open: usize) -> Result<usize, Miss> {
    let b = line.as_bytes();
    let mut i = open + 1;
    let mut quoted = false;
    while i < b.len() {
        match (quoted, b[i]) {
            (true, b'\\') => i += 1,
            (_, b'"') => quoted = !quoted,
            (false, b'}') => return Ok(i + 1),
            _ => {}
        }
        i += 1;
    }
    Err(("`}` closing the labels", line.len()))
}

fn split_line(line: &str) -> Result<Line<'_>, Miss> {
    let b = line.as_bytes();
    if !b.first().copied().is_some_and(is_name_start) {
        return Err(("a metric name, `# TYPE`, `# HELP`, `# UNIT` or `# EOF`", 0));
    }
    let name_len = b.iter().take_while(|c| is_name_char(**c)).count();
    let series_end = match b.get(name_len) {
        Some(b'{') => label_set_end(line, name_len)?,
        Some(b' ' | b'\t') => name_len,
        _ => return Err(("`{` or a space after the metric name", name_len)),
    };
    let rest = &line[series_end..];
    // An exemplar (` # {…} value [timestamp]`) is not part of the history.
    let rest = rest.split_once(" # ").map_or(rest, |(r, _)| r);
    let mut fields = rest.split([' ', '\t']).filter(|f| !f.is_empty());
    let value = fields.next().ok_or(("a value", series_end))?;
    let timestamp = fields.next();
    if let Some(extra) = fields.next() {
        return Err((
            "the end of the line after the timestamp",
            offset(line, extra),
        ));
    }
    Ok(Line {
        series: &line[..series_end],
        name_len,
        value,
        timestamp,
    })
}

/// The labels of `series` (`name{…}`, whose label set [`label_set_end`] found closed),
/// `__name__` included.
fn labels(series: &str, name_len: usize) -> Result<BTreeMap<String, String>, Miss> {
    let mut out = BTreeMap::new();
    out.insert("__name__".to_string(), series[..name_len].to_string());
    if series.len() == name_len {
        return Ok(out);
    }
    let b = series.as_bytes();
    let mut i = name_len + 1;
    loop {
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        if b.get(i) == Some(&b'}') {
            return Ok(out);
        }
        let start = i;
        while b.get(i).is_some_and(|c| is_name_char(*c) && *c != b':') {
            i += 1;
        }
        if i == start || !is_name_start(b[start]) {
            return Err(("a label name", start));
        }
        let key = &series[start..i];
        if b.get(i) != Some(&b'=') || b.get(i + 1) != Some(&b'"') {
            return Err(("`=\"` after the label name", i));
        }
        i += 2;
        let mut value = String::new();
        loop {
            match b.get(i) {
                None => return Err(("`\"` closing the label value", i)),
                Some(b'"') => break,
                Some(b'\\') => {
                    match b.get(i + 1) {
                        Some(b'n') => value.push('\n'),
                        Some(b'\\') => value.push('\\'),
                        Some(b'"') => value.push('"'),
                        _ => return Err(("an escape: \\\\, \\\" or \\n", i)),
                    }
                    i += 2;
                }
                Some(_) => {
                    // Whole characters: `i` is always at a character boundary here.
                    let c = series[i..].chars().next().unwrap_or('\u{fffd}');
                    value.push(c);
                    i += c.len_utf8();
                }
            }
        }
        i += 1;
        if out.insert(key.to_string(), value).is_some() {
            return Err(("each label once", start));
        }
        while b.get(i) == Some(&b' ') {
            i += 1;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok(out),
            _ => return Err(("`,` or `}` after the label value", i)),
        }
    }
}

/// Where `part` (a slice of `line`) starts in it.
fn offset(line: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(line.as_ptr() as usize)
}

/// A number as OpenMetrics writes it: decimal, `NaN`, `+Inf`, `-Inf`.
fn number(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ if s
            .bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E')) =>
        {
            s.parse().ok()
        }
        _ => None,
    }
}

/// The series read so far, found by their text (`name{…}` as written) or, written another
/// way, by their labels.
#[derive(Default)]
struct Found<'a> {
    series: Vec<Series>,
    /// Per series: the line of its last sample.
    last_line: Vec<usize>,
    /// FNV: hashing every line's series text is much of the work; the input is a file the
    /// operator chose, not a request from the network.
    by_text: FnvHashMap<&'a str, usize>,
    by_labels: HashMap<BTreeMap<String, String>, usize>,
}

impl<'a> Found<'a> {
    /// The index of the series of `l`, added if new.
    fn index(&mut self, l: &Line<'a>) -> Result<usize, Miss> {
        if let Some(i) = self.by_text.get(l.series) {
            return Ok(*i);
        }
        let labels = labels(l.series, l.name_len).map_err(|(e, at)| (e, at.min(l.series.len())))?;
        let next = self.series.len();
        let i = *self.by_labels.entry(labels.clone()).or_insert(next);
        if i == next {
            self.series.push(Series {
                labels,
                samples: Vec::new(),
            });
            self.last_line.push(0);
        }
        self.by_text.insert(l.series, i);
        Ok(i)
    }
}

/// Reads an OpenMetrics history (`origin` names it in errors): every sample with a timestamp,
/// each series' samples in time order, `# EOF` at the end. Series come out in the order of
/// their first sample; a series written in two places (label order aside) is one series.
pub fn parse(text: &str, origin: &str) -> Result<Vec<Series>, HistoryError> {
    let mut found = Found::default();
    let mut eof = false;
    let mut lines = 0;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        lines = n;
        let line = line.strip_suffix('\r').unwrap_or(line);
        if eof && !line.is_empty() {
            return Err(HistoryError::AfterEof {
                origin: origin.into(),
                line: n,
                found: quote(line),
            });
        }
        if eof || line.is_empty() || line == "# EOF" {
            eof |= line == "# EOF";
            continue;
        }
        if line.starts_with('#') {
            metadata(line, origin, n)?;
            continue;
        }
        let syntax = |(expected, at): Miss| HistoryError::Syntax {
            origin: origin.into(),
            line: n,
            expected,
            found: found_at(line, at),
        };
        let l = split_line(line).map_err(syntax)?;
        let index = found.index(&l).map_err(syntax)?;
        let value = number(l.value).ok_or_else(|| {
            syntax((
                "a number (or NaN, +Inf, -Inf) after the series",
                offset(line, l.value),
            ))
        })?;
        let at = timestamp(&l, line, origin, n)?;
        let series = &mut found.series[index];
        if series.samples.last().is_some_and(|(prev, _)| at <= *prev) {
            return Err(HistoryError::OutOfOrder {
                origin: origin.into(),
                line: n,
                series: quote(l.series),
                at: l.timestamp.unwrap_or_default().to_string(),
                previous: found.last_line[index],
            });
        }
        series.samples.push((at, value));
        found.last_line[index] = n;
    }
    if !eof {
        return Err(HistoryError::MissingEof {
            origin: origin.into(),
            line: lines + 1,
        });
    }
    Ok(found.series)
}

/// `found` for an error at byte `at` of `line`: the rest of the line from there.
fn found_at(line: &str, at: usize) -> String {
    let at = (0..=at.min(line.len()))
        .rev()
        .find(|i| line.is_char_boundary(*i))
        .unwrap_or(0);
    match &line[at..] {
        "" => "the end of the line".to_string(),
        rest => quote(rest),
    }
}

/// Checks a comment line: `# TYPE`, `# HELP` and `# UNIT` need a metric name; other comments
/// (the Prometheus text format has them) are read past.
fn metadata(line: &str, origin: &str, n: usize) -> Result<(), HistoryError> {
    let mut words = line.trim_start_matches('#').split_whitespace();
    let Some(kind @ ("TYPE" | "HELP" | "UNIT")) = words.next() else {
        return Ok(());
    };
    let name_ok = words.next().is_some_and(|w| {
        w.bytes().next().is_some_and(is_name_start) && w.bytes().all(is_name_char)
    });
    let type_ok = kind != "TYPE"
        || words.next().is_some_and(|t| {
            matches!(
                t,
                "counter"
                    | "gauge"
                    | "histogram"
                    | "gaugehistogram"
                    | "summary"
                    | "info"
                    | "stateset"
                    | "unknown"
                    | "untyped"
            )
        });
    if name_ok && type_ok {
        return Ok(());
    }
    Err(HistoryError::Syntax {
        origin: origin.into(),
        line: n,
        expected: if name_ok {
            "a metric type (counter, gauge, histogram, summary, info, stateset, unknown)"
        } else {
            "a metric name after the keyword"
        },
        found: quote(line),
    })
}

/// A sample's timestamp in milliseconds.
fn timestamp(l: &Line<'_>, line: &str, origin: &str, n: usize) -> Result<i64, HistoryError> {
    let Some(ts) = l.timestamp else {
        return Err(HistoryError::NoTimestamp {
            origin: origin.into(),
            line: n,
            series: quote(l.series),
        });
    };
    let secs = number(ts)
        .filter(|s| s.is_finite())
        .ok_or_else(|| HistoryError::Syntax {
            origin: origin.into(),
            line: n,
            expected: "a timestamp in seconds after the value",
            found: found_at(line, offset(line, ts)),
        })?;
    if secs.abs() >= MAX_SECONDS {
        return Err(HistoryError::Milliseconds {
            origin: origin.into(),
            line: n,
            found: quote(ts),
        });
    }
    Ok((secs * 1000.0).round() as i64)
}

/// The metric family a series belongs to, its type, and its definition when cellwatch has one.
fn family(
    name: &str,
) -> (
    String,
    &'static str,
    Option<&'static cellwatch_metrics::MetricDef>,
) {
    if let Some(def) = cellwatch_metrics::by_name(name) {
        let fam = match def.kind {
            Kind::Counter => name.trim_end_matches("_total"),
            _ => name,
        };
        return (fam.to_string(), def.kind.as_str(), Some(def));
    }
    for suffix in ["_bucket", "_count", "_sum"] {
        if let Some(base) = name.strip_suffix(suffix)
            && let Some(def) = cellwatch_metrics::by_name(base)
            && def.kind == Kind::Histogram
        {
            return (base.to_string(), "histogram", Some(def));
        }
    }
    let kind = if name == "up" { "gauge" } else { "unknown" };
    (name.to_string(), kind, None)
}

fn escape(v: &str, quotes: bool) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// A value as OpenMetrics writes it.
fn write_number(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        let _ = write!(out, "{}", v as i64);
    } else {
        // Shortest text that reads back to the same double, with an exponent when long.
        let _ = write!(out, "{v:?}");
    }
}

/// Milliseconds as decimal seconds, exact: `1767571200`, `1767571200.25`.
fn write_seconds(out: &mut String, ms: i64) {
    let sign = if ms < 0 { "-" } else { "" };
    let abs = ms.unsigned_abs();
    let (s, frac) = (abs / 1000, abs % 1000);
    let _ = write!(out, "{sign}{s}");
    if frac != 0 {
        let f = format!("{frac:03}");
        let _ = write!(out, ".{}", f.trim_end_matches('0'));
    }
}

/// Writes `series` as an OpenMetrics history that [`parse`] and `promtool tsdb
/// create-blocks-from openmetrics` read: one block per metric family (`# TYPE`, and `# HELP` and
/// `# UNIT` for cellwatch's families), families and series in label order, each series'
/// samples in time order, `# EOF` at the end. Series without `__name__` are left out.
pub fn write(series: &[Series]) -> String {
    let mut families: BTreeMap<String, Vec<&Series>> = BTreeMap::new();
    for s in series {
        if let Some(name) = s.labels.get("__name__") {
            families.entry(family(name).0).or_default().push(s);
        }
    }
    let samples: usize = series.iter().map(|s| s.samples.len()).sum();
    let mut out = String::with_capacity(samples * 96);
    for (fam, mut members) in families {
        members.sort_by(|a, b| a.labels.cmp(&b.labels));
        let (_, kind, def) = family(&members[0].labels["__name__"]);
        let _ = writeln!(out, "# TYPE {fam} {kind}");
        if let Some(def) = def {
            if !def.unit.is_empty() && fam.ends_with(&format!("_{}", def.unit)) {
                let _ = writeln!(out, "# UNIT {fam} {}", def.unit);
            }
            let _ = writeln!(out, "# HELP {fam} {}", escape(def.help, false));
        }
        for s in members {
            let mut head = s.labels["__name__"].clone();
            let labels: Vec<String> = s
                .labels
                .iter()
                .filter(|(k, _)| *k != "__name__")
                .map(|(k, v)| format!("{k}=\"{}\"", escape(v, true)))
                .collect();
            if !labels.is_empty() {
                let _ = write!(head, "{{{}}}", labels.join(","));
            }
            for (t, v) in &s.samples {
                out.push_str(&head);
                out.push(' ');
                write_number(&mut out, *v);
                out.push(' ');
                write_seconds(&mut out, *t);
                out.push('\n');
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::{HistoryError, parse, write};
    use crate::source::prometheus::Series;

    fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> Series {
        Series {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            samples: samples.to_vec(),
        }
    }

    fn small() -> Vec<Series> {
        fn with<'a>(name: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
            let mut l = vec![
                ("__name__", name),
                ("cell", "cell-a"),
                ("node", "n1"),
                ("instance", "n1:9817"),
                ("job", "cellwatch"),
            ];
            l.extend_from_slice(extra);
            l
        }
        let t0 = 1_767_571_200_000;
        let times = |vals: &[f64]| -> Vec<(i64, f64)> {
            vals.iter()
                .enumerate()
                .map(|(k, v)| (t0 + k as i64 * 15_000 + 250, *v))
                .collect()
        };
        vec![
            series(
                &with(
                    "cellwatch_inference_requests_total",
                    &[("model", "m"), ("outcome", "ok")],
                ),
                &times(&[10.0, 40.0, 70.5]),
            ),
            series(
                &with(
                    "cellwatch_inference_request_duration_seconds_bucket",
                    &[("model", "m"), ("le", "2")],
                ),
                &times(&[9.0, 38.0, 66.0]),
            ),
            series(
                &with(
                    "cellwatch_inference_request_duration_seconds_bucket",
                    &[("model", "m"), ("le", "+Inf")],
                ),
                &times(&[10.0, 40.0, 70.0]),
            ),
            series(
                &with("cellwatch_node_energy_joules_total", &[("source", "smc")]),
                &times(&[1e9, 1.0000037e9, f64::NAN]),
            ),
            series(&with("up", &[]), &times(&[1.0, 0.0, 1.0])),
            series(
                &[("__name__", "odd_metric"), ("path", "a\"b\\c\nd é")],
                &[(-1500, 1e-300), (0, f64::INFINITY), (1, f64::NEG_INFINITY)],
            ),
        ]
    }

    fn same(a: &[Series], b: &[Series]) -> bool {
        let key = |s: &Series| format!("{:?}", s.labels);
        let mut a = a.to_vec();
        let mut b = b.to_vec();
        a.sort_by_key(key);
        b.sort_by_key(key);
        a.len() == b.len()
            && a.iter().zip(&b).all(|(x, y)| {
                x.labels == y.labels
                    && x.samples.len() == y.samples.len()
                    && x.samples
                        .iter()
                        .zip(&y.samples)
                        .all(|(p, q)| p.0 == q.0 && (p.1 == q.1 || (p.1.is_nan() && q.1.is_nan())))
            })
    }

    #[test]
    fn round_trip() {
        let text = write(&small());
        assert!(text.ends_with("# EOF\n"));
        assert!(
            text.contains("# TYPE cellwatch_inference_requests counter\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE cellwatch_inference_request_duration_seconds histogram\n"));
        assert!(text.contains("# UNIT cellwatch_node_energy_joules joules\n"));
        assert!(text.contains("# TYPE up gauge\n"));
        assert!(
            text.contains(" 1767571200.25\n"),
            "fractional seconds: {text}"
        );
        assert!(
            text.contains("odd_metric{path=\"a\\\"b\\\\c\\nd é\"} 1e-300 -1.5\n"),
            "{text}"
        );
        let back = parse(&text, "small.om").unwrap();
        assert!(same(&back, &small()), "{back:?}");
        assert_eq!(write(&back), text);
    }

    #[test]
    fn reads_what_others_write() {
        let text = "# HELP x_total A counter.\n# TYPE x counter\n\
                    x_total{b=\"2\", a=\"1\",} 1 100 # {trace_id=\"abc\"} 1 99\n\
                    x_total{a=\"1\",b=\"2\"} 2.5e0 100.5\n\
                    # a plain comment\n\n\
                    y 3 101\n# EOF\n\n";
        let got = parse(text, "o").unwrap();
        assert_eq!(got.len(), 2, "one series whatever the label order: {got:?}");
        assert_eq!(got[0].labels["a"], "1");
        assert_eq!(got[0].samples, vec![(100_000, 1.0), (100_500, 2.5)]);
        assert_eq!(got[1].samples, vec![(101_000, 3.0)]);
        assert_eq!(parse("# EOF", "o").unwrap(), vec![]);
    }

    #[test]
    fn errors_name_origin_line_and_what_was_expected() {
        let cases: &[(&str, &str)] = &[
            ("x 1\n# EOF\n", "h.om:1: \"x\" has no timestamp"),
            (
                "x 1 2\nx 1 2\n# EOF\n",
                "h.om:2: \"x\" at 2 s is not after its previous sample (line 1)",
            ),
            (
                "\nx 1 1767571200000\n# EOF\n",
                "h.om:2: timestamp \"1767571200000\" is after the year 5000",
            ),
            (
                "x 1 2\n",
                "h.om:2: expected `# EOF`, found the end of the file",
            ),
            (
                "# EOF\nx 1 2\n",
                "h.om:2: expected nothing after `# EOF`, found \"x 1 2\"",
            ),
            (
                "x{a=\"1\" 1 2\n# EOF\n",
                "h.om:1: expected `}` closing the labels",
            ),
            (
                "x{a=1} 1 2\n# EOF\n",
                "h.om:1: expected `=\"` after the label name, found \"=1} 1 2\"",
            ),
            (
                "x{a=\"1\",a=\"2\"} 1 2\n# EOF\n",
                "h.om:1: expected each label once",
            ),
            (
                "x one 2\n# EOF\n",
                "h.om:1: expected a number (or NaN, +Inf, -Inf) after the series, found \"one 2\"",
            ),
            (
                "x 1 two\n# EOF\n",
                "h.om:1: expected a timestamp in seconds after the value, found \"two\"",
            ),
            (
                "x 1 2 3\n# EOF\n",
                "h.om:1: expected the end of the line after the timestamp, found \"3\"",
            ),
            ("9x 1 2\n# EOF\n", "h.om:1: expected a metric name"),
            (
                "x\n# EOF\n",
                "h.om:1: expected `{` or a space after the metric name, found the end of the line",
            ),
            (
                "# TYPE x kounter\n# EOF\n",
                "h.om:1: expected a metric type",
            ),
            (
                "# HELP\n# EOF\n",
                "h.om:1: expected a metric name after the keyword",
            ),
            ("x{a=\"\\q\"} 1 2\n# EOF\n", "h.om:1: expected an escape"),
        ];
        for (text, want) in cases {
            let e = parse(text, "h.om").unwrap_err().to_string();
            assert!(e.starts_with(want), "{text:?}: {e}");
        }
        assert!(matches!(
            parse("x 1\n", "h.om"),
            Err(HistoryError::NoTimestamp { line: 1, .. })
        ));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet: Vec<char> = "ab_:{}=\",\\ #\n\t0123456789.e+-InfNaNé\u{0}EOFTYPE"
            .chars()
            .collect();
        let good = write(&small());
        for round in 0..3000 {
            let text: String = if round % 2 == 0 {
                (0..rng.usize(0..200))
                    .map(|_| alphabet[rng.usize(0..alphabet.len())])
                    .collect()
            } else {
                // A valid history with a few characters changed, cut or inserted.
                let mut chars: Vec<char> = good.chars().collect();
                for _ in 0..rng.usize(1..6) {
                    let at = rng.usize(0..chars.len());
                    match rng.u8(0..3) {
                        0 => chars[at] = alphabet[rng.usize(0..alphabet.len())],
                        1 => chars.truncate(at),
                        _ => chars.insert(at, alphabet[rng.usize(0..alphabet.len())]),
                    }
                    if chars.is_empty() {
                        break;
                    }
                }
                chars.into_iter().collect()
            };
            if let Err(e) = parse(&text, "fuzz") {
                let m = e.to_string();
                assert!(m.starts_with("fuzz:"), "{m}");
                assert!(!m.contains('\n'), "one line: {m}");
            }
        }
    }

    #[test]
    fn promtool_reads_a_written_history() {
        let Some(promtool) = std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("promtool"))
                .find(|f| f.is_file())
        }) else {
            eprintln!("promtool is not on PATH: skipped");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.om");
        let history: Vec<Series> = small()
            .into_iter()
            .filter(|s| s.labels["__name__"] != "odd_metric")
            .collect();
        std::fs::write(&file, write(&history)).unwrap();
        let blocks = dir.path().join("blocks");
        let out = std::process::Command::new(&promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&file)
            .arg(&blocks)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // `tsdb dump` opens the directory as a database, which has a WAL.
        std::fs::create_dir_all(blocks.join("wal")).unwrap();
        let dump = std::process::Command::new(&promtool)
            .args(["tsdb", "dump"])
            .arg(&blocks)
            .output()
            .unwrap();
        let dump = String::from_utf8_lossy(&dump.stdout);
        let samples: usize = history.iter().map(|s| s.samples.len()).sum();
        assert_eq!(
            dump.lines().filter(|l| l.starts_with('{')).count(),
            samples,
            "{dump}"
        );
        assert!(dump.contains("1767571200250"), "{dump}");
    }
}
