//! Import of OpenSLO v1 documents (<https://github.com/OpenSLO/OpenSLO>): `SLO` documents with an
//! inline indicator or an `indicatorRef` to an `SLI` document, ratio metrics whose sources are
//! Prometheus queries, occurrences or timeslices budgeting, rolling or calendar-month windows.
//! Each becomes an SLO of our own configuration (with a [`RawSli::Ratio`] indicator) and is
//! validated like one; an error names the OpenSLO file, the line and the field.
//!
//! Mapping: `metadata.name` → name; `metadata.labels.cell` (a string or a list) → cells (every
//! cell when absent); `spec.description` → description; `objectives[0].target` (or
//! `targetPercent`) → objective; `timeSliceTarget` and `timeSliceWindow` → slice_target and
//! slice; `timeWindow[0]` → period (`isRolling: true` and a duration, or a calendar window of
//! `1M` with its `timeZone`); `ratioMetric.good`/`bad`/`total` `metricSource.spec.query` →
//! the ratio's queries, `ratioMetric.counter` → counter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::{
    ConfigError, MAX_CONFIG_BYTES, RawSli, RawSlo, locate, quote, read_text, syntax_error,
};

/// The most bytes of OpenSLO documents one configuration imports, all files together.
pub const MAX_OPENSLO_TOTAL_BYTES: usize = 16 << 20;

/// Where an imported SLO came from, for messages.
#[derive(Debug, Clone, PartialEq)]
pub struct Origin {
    /// The OpenSLO file.
    pub path: PathBuf,
    /// The line of the SLO document's first line.
    pub line: usize,
    /// The document's text and its first line's number, to locate fields.
    pub doc: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Doc {
    api_version: String,
    kind: String,
    metadata: Metadata,
    #[serde(default)]
    spec: yaml_serde::Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Metadata {
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, LabelValue>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
pub(super) enum LabelValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SloSpec {
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    indicator: Option<InlineSli>,
    #[serde(default)]
    indicator_ref: Option<String>,
    #[serde(default)]
    time_window: Vec<TimeWindow>,
    budgeting_method: String,
    objectives: Vec<Objective>,
}

#[derive(Deserialize)]
pub(super) struct InlineSli {
    #[serde(default)]
    metadata: Option<Metadata>,
    spec: SliSpec,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct TimeWindow {
    duration: String,
    #[serde(default)]
    is_rolling: bool,
    #[serde(default)]
    calendar: Option<Calendar>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Calendar {
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Objective {
    #[serde(default)]
    target: Option<f64>,
    #[serde(default)]
    target_percent: Option<f64>,
    #[serde(default)]
    time_slice_target: Option<f64>,
    #[serde(default, deserialize_with = "string_or_number")]
    time_slice_window: Option<String>,
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    value: Option<f64>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct SliSpec {
    #[serde(default)]
    threshold_metric: Option<yaml_serde::Value>,
    #[serde(default)]
    ratio_metric: Option<RatioMetric>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct RatioMetric {
    counter: bool,
    #[serde(default)]
    good: Option<MetricHolder>,
    #[serde(default)]
    bad: Option<MetricHolder>,
    #[serde(default)]
    total: Option<MetricHolder>,
    #[serde(default)]
    raw: Option<yaml_serde::Value>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricHolder {
    metric_source: MetricSource,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(super) struct MetricSource {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    spec: BTreeMap<String, yaml_serde::Value>,
}

pub(super) fn string_or_number<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(u64),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    }))
}

/// The documents of a multi-document YAML text, each with the 1-based line it starts on.
pub(super) fn documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" || line.starts_with("--- ") {
            if !cur.trim().is_empty() {
                out.push((start, std::mem::take(&mut cur)));
            }
            cur.clear();
            start = i + 2;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    if !cur.trim().is_empty() {
        out.push((start, cur));
    }
    out
}

pub(super) fn typed<T: for<'de> Deserialize<'de>>(
    path: &Path,
    doc: &str,
    first: usize,
    prefix: &str,
    value: Option<yaml_serde::Value>,
) -> Result<T, ConfigError> {
    let result = match value {
        None => serde_path_to_error::deserialize(yaml_serde::Deserializer::from_str(doc)),
        Some(v) => serde_path_to_error::deserialize(v),
    };
    result.map_err(|e| syntax_error(path, doc, first, prefix, e))
}

/// An SLO document, read but not yet converted.
struct Parsed {
    path: PathBuf,
    first: usize,
    doc: String,
    name: String,
    labels: BTreeMap<String, LabelValue>,
    spec: yaml_serde::Value,
}

/// The SLI documents, by name, for `indicatorRef`.
type Slis = BTreeMap<String, SliSpec>;

/// Reads OpenSLO files and returns their SLOs as configuration SLOs, in file order.
pub fn import(paths: &[PathBuf]) -> Result<Vec<(RawSlo, Origin)>, ConfigError> {
    let (slos, slis) = read_documents(paths)?;
    slos.iter().map(|p| convert(p, &slis)).collect()
}

/// Every file's SLO and SLI documents (other kinds are skipped), all of them read before any
/// is converted, so that an `indicatorRef` may point to a later file.
fn read_documents(paths: &[PathBuf]) -> Result<(Vec<Parsed>, Slis), ConfigError> {
    let mut slos = Vec::new();
    let mut slis = Slis::new();
    // Every document is kept until all are read: a bound on the whole, not only on each file.
    let mut total = 0usize;
    for path in paths {
        let text = read_file(path, &mut total)?;
        file_documents(path, &text, &mut slos, &mut slis)?;
    }
    Ok((slos, slis))
}

/// The SLOs of one OpenSLO file's text (as [`import`] reads a file named `path`).
pub fn import_text(path: &Path, text: &str) -> Result<Vec<(RawSlo, Origin)>, ConfigError> {
    let (mut slos, mut slis) = (Vec::new(), Slis::new());
    file_documents(path, text, &mut slos, &mut slis)?;
    slos.iter().map(|p| convert(p, &slis)).collect()
}

/// Adds one file's SLO and SLI documents.
fn file_documents(
    path: &Path,
    text: &str,
    slos: &mut Vec<Parsed>,
    slis: &mut Slis,
) -> Result<(), ConfigError> {
    let path = path.to_path_buf();
    let text = crate::config::prepare(text, &path)?;
    for (first, doc) in documents(text) {
        let d: Doc = typed(&path, &doc, first, "", None)?;
        if d.api_version != "openslo/v1" {
            return Err(ConfigError::Invalid {
                path,
                line: locate(&doc, "apiVersion") + first - 1,
                field: "apiVersion".to_string(),
                message: format!(
                    "{}: only openslo/v1 documents can be imported",
                    quote(&d.api_version)
                ),
            });
        }
        match d.kind.as_str() {
            "SLO" => slos.push(Parsed {
                path: path.clone(),
                first,
                doc,
                name: d.metadata.name,
                labels: d.metadata.labels,
                spec: d.spec,
            }),
            "SLI" => {
                let spec: SliSpec = typed(&path, &doc, first, "spec.", Some(d.spec))?;
                slis.insert(d.metadata.name, spec);
            }
            // Services, data sources, alert policies…: nothing to import.
            _ => {}
        }
    }
    Ok(())
}

/// One file's text, counted against [`MAX_OPENSLO_TOTAL_BYTES`].
fn read_file(path: &Path, total: &mut usize) -> Result<String, ConfigError> {
    let text = read_text(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    *total += text.len();
    if *total > MAX_OPENSLO_TOTAL_BYTES {
        return Err(ConfigError::Read {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the OpenSLO files together pass the limit of {} MiB",
                    MAX_OPENSLO_TOTAL_BYTES >> 20
                ),
            ),
        });
    }
    Ok(text)
}

impl Parsed {
    /// An error at a field of this SLO document.
    fn invalid(&self, field: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: locate(&self.doc, field) + self.first - 1,
            field: field.to_string(),
            message: format!("SLO {}: {message}", quote(&self.name)),
        }
    }
}

/// One SLO document as one of our SLOs: indicator, objective, window, budgeting, cells.
fn convert(p: &Parsed, slis: &Slis) -> Result<(RawSlo, Origin), ConfigError> {
    let spec: SloSpec = typed(&p.path, &p.doc, p.first, "spec.", Some(p.spec.clone()))?;
    let (sli, sli_field) = indicator(p, &spec, slis)?;
    let sli = ratio(p, sli, &sli_field)?;
    let (o, objective) = objective(p, &spec)?;
    let (period, timezone) = window(p, &spec)?;
    let budgeting = budgeting(p, &spec)?;
    let cells = match p.labels.get("cell") {
        None => None,
        Some(LabelValue::One(c)) => Some(vec![c.clone()]),
        Some(LabelValue::Many(c)) => Some(c.clone()),
    };
    let slo = RawSlo {
        name: p.name.clone(),
        description: spec.description.clone(),
        cells,
        objective,
        period,
        timezone,
        budgeting: Some(budgeting.to_string()),
        // A bare number means minutes.
        slice: o.time_slice_window.as_ref().map(|w| {
            if w.trim().chars().all(|c| c.is_ascii_digit()) {
                format!("{}m", w.trim())
            } else {
                w.clone()
            }
        }),
        slice_target: o.time_slice_target,
        // The automatic low-traffic guard, as for a YAML SLO without `min_events`.
        min_events: None,
        sli,
    };
    let origin = Origin {
        path: p.path.clone(),
        line: p.first,
        doc: p.doc.clone(),
    };
    Ok((slo, origin))
}

/// The inline indicator or the SLI document it refers to, and the field to blame for it.
fn indicator(p: &Parsed, spec: &SloSpec, slis: &Slis) -> Result<(SliSpec, String), ConfigError> {
    match (&spec.indicator, &spec.indicator_ref) {
        (Some(i), None) => {
            let _ = &i.metadata;
            Ok((i.spec.clone(), "spec.indicator.spec".to_string()))
        }
        (None, Some(r)) => match slis.get(r) {
            Some(s) => Ok((s.clone(), "spec.indicatorRef".to_string())),
            None => Err(p.invalid(
                "spec.indicatorRef",
                format!("no SLI document named {} in the imported files", quote(r)),
            )),
        },
        _ => Err(p.invalid("spec", "needs exactly one of indicator and indicatorRef")),
    }
}

/// A ratioMetric's Prometheus queries, as our ratio indicator.
fn ratio(p: &Parsed, sli: SliSpec, sli_field: &str) -> Result<RawSli, ConfigError> {
    if sli.threshold_metric.is_some() {
        return Err(p.invalid(
            sli_field,
            "thresholdMetric indicators cannot be imported: use a ratioMetric",
        ));
    }
    let Some(ratio) = sli.ratio_metric else {
        return Err(p.invalid(sli_field, "needs a ratioMetric"));
    };
    if ratio.raw.is_some() {
        return Err(p.invalid(
            sli_field,
            "ratioMetric.raw (a precomputed ratio) cannot be imported: give good (or bad) and total",
        ));
    }
    let good = query(p, sli_field, "good", &ratio.good)?;
    let bad = query(p, sli_field, "bad", &ratio.bad)?;
    let Some(total) = query(p, sli_field, "total", &ratio.total)? else {
        return Err(p.invalid(&format!("{sli_field}.ratioMetric"), "needs total"));
    };
    Ok(RawSli::Ratio {
        good,
        bad,
        total,
        counter: ratio.counter,
    })
}

/// One of a ratio's metric sources: a Prometheus query, trimmed.
fn query(
    p: &Parsed,
    sli_field: &str,
    which: &str,
    h: &Option<MetricHolder>,
) -> Result<Option<String>, ConfigError> {
    let Some(h) = h else { return Ok(None) };
    let f = format!("{sli_field}.ratioMetric.{which}.metricSource");
    if let Some(k) = &h.metric_source.kind
        && !k.eq_ignore_ascii_case("prometheus")
    {
        return Err(p.invalid(
            &f,
            format!(
                "type {}: only Prometheus metric sources can be imported",
                quote(k)
            ),
        ));
    }
    match h.metric_source.spec.get("query").and_then(|q| q.as_str()) {
        Some(q) if !q.trim().is_empty() => Ok(Some(q.trim().to_string())),
        _ => Err(p.invalid(
            &format!("{f}.spec"),
            "needs spec.query, a PromQL expression",
        )),
    }
}

/// The one objective, and its target as a ratio.
fn objective<'a>(p: &Parsed, spec: &'a SloSpec) -> Result<(&'a Objective, f64), ConfigError> {
    if spec.objectives.len() != 1 {
        return Err(p.invalid(
            "spec.objectives",
            format!(
                "has {} objectives; cellwatch takes one per SLO: split it into one SLO per objective",
                spec.objectives.len()
            ),
        ));
    }
    let o = &spec.objectives[0];
    if o.op.is_some() || o.value.is_some() {
        return Err(p.invalid(
            "spec.objectives[0]",
            "op and value belong to thresholdMetric indicators, which cannot be imported",
        ));
    }
    match (o.target, o.target_percent) {
        (Some(t), None) => Ok((o, t)),
        (None, Some(pc)) => Ok((o, pc / 100.0)),
        _ => Err(p.invalid(
            "spec.objectives[0]",
            "needs exactly one of target and targetPercent",
        )),
    }
}

/// The one time window, as our period and time zone: rolling (weeks become days) or one
/// calendar month.
fn window(p: &Parsed, spec: &SloSpec) -> Result<(String, Option<String>), ConfigError> {
    if spec.time_window.len() != 1 {
        return Err(p.invalid("spec.timeWindow", "needs exactly one time window"));
    }
    let w = &spec.time_window[0];
    let field = "spec.timeWindow[0].duration";
    if !w.is_rolling {
        if w.duration == "1M" {
            let tz = w.calendar.as_ref().and_then(|c| c.time_zone.clone());
            return Ok(("calendar-month".to_string(), tz));
        }
        return Err(p.invalid(
            field,
            format!(
                "{}: a calendar window must be one month (1M); rolling windows take any duration",
                quote(&w.duration)
            ),
        ));
    }
    match w.duration.trim().strip_suffix('w').map(str::parse::<u64>) {
        Some(Ok(weeks)) => match weeks.checked_mul(7) {
            Some(days) => Ok((format!("{days}d"), None)),
            None => Err(p.invalid(field, format!("{} is too long", quote(&w.duration)))),
        },
        _ if w.duration.ends_with(['M', 'Q', 'Y']) => Err(p.invalid(
            field,
            format!(
                "{}: a rolling window of months, quarters or years has no fixed length: give it in days (30d), \
                 or use a calendar window of 1M",
                quote(&w.duration)
            ),
        )),
        _ => Ok((w.duration.clone(), None)),
    }
}

fn budgeting(p: &Parsed, spec: &SloSpec) -> Result<&'static str, ConfigError> {
    match spec.budgeting_method.as_str() {
        "Occurrences" => Ok("occurrences"),
        "Timeslices" => Ok("timeslices"),
        "RatioTimeslices" => Err(p.invalid(
            "spec.budgetingMethod",
            "RatioTimeslices (an average of per-slice ratios) is not supported: use Occurrences or Timeslices",
        )),
        other => Err(p.invalid(
            "spec.budgetingMethod",
            format!("{}: use Occurrences or Timeslices", quote(other)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_text_imports_as_the_file_does() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openslo/slos.openslo.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let from_text = import_text(&path, &text).unwrap();
        assert!(!from_text.is_empty());
        assert_eq!(
            format!("{from_text:?}"),
            format!("{:?}", import(std::slice::from_ref(&path)).unwrap())
        );
        let e = import_text(
            &path,
            "apiVersion: openslo/v2\nkind: SLO\nmetadata: { name: x }\nspec: {}\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("only openslo/v1"), "{e}");
    }

    #[test]
    fn documents_keep_their_lines() {
        let d = documents("a: 1\n---\nb: 2\nc: 3\n--- \n---\nd: 4\n");
        assert_eq!(
            d,
            vec![
                (1, "a: 1\n".to_string()),
                (3, "b: 2\nc: 3\n".to_string()),
                (7, "d: 4\n".to_string())
            ]
        );
    }
}
