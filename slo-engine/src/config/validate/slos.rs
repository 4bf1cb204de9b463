//! Validation of `slos`, with those imported from OpenSLO files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Fail, budgeting, openslo_field, safe_name, schedule, sli};
use crate::config::error::ConfigError;
use crate::config::locate::locate;
use crate::config::message::parse_duration;
use crate::config::openslo::{Origin, import};
use crate::config::raw::{RawConfig, RawSlo};
use crate::config::types::{Cell, MinEvents, Period, Slo, Source};
use crate::util::text::{clip, quote};

/// `slos:` and the SLOs imported from `openslo:` files, validated alike, names unique.
pub(super) fn slos(
    raw: &RawConfig,
    cells: &[Cell],
    names: &BTreeSet<String>,
    source: &Source,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Vec<Slo>, ConfigError> {
    let imported = openslo(&raw.openslo, source, base, fail)?;
    let all = raw
        .slos
        .iter()
        .map(|s| (s, None))
        .chain(imported.iter().map(|(s, o)| (s, Some(o))));
    let mut slos = Vec::new();
    let mut slo_names = BTreeSet::new();
    for (i, (s, origin)) in all.enumerate() {
        let f = format!("slos[{i}]");
        let at = |field: String, message: String| match origin {
            None => fail.at(field, message),
            Some(o) => imported_error(o, &s.name, &f, field, message),
        };
        let fail = Fail(&at);
        safe_name(&s.name, &f, fail)?;
        if !slo_names.insert(s.name.clone()) {
            return Err(fail.at(
                format!("{f}.name"),
                format!("SLO {} is defined twice", quote(&s.name)),
            ));
        }
        let bounds = sli::Bounds {
            latency: &raw.buckets,
            tpot: &raw.tpot_buckets,
        };
        slos.push(slo(s, &f, cells, names, bounds, source, fail)?);
    }
    Ok(slos)
}

/// The OpenSLO files, read and converted; they need the prometheus source.
fn openslo(
    files: &[PathBuf],
    source: &Source,
    base: &Path,
    fail: Fail<'_>,
) -> Result<Vec<(RawSlo, Origin)>, ConfigError> {
    let files: Vec<PathBuf> = files.iter().map(|p| base.join(p)).collect();
    let imported = import(&files)?;
    if let (Some((_, o)), Source::Scrape { .. }) = (imported.first(), source) {
        return Err(fail.at(
            "openslo",
            format!(
                "{}: OpenSLO SLOs are PromQL queries, so they need source: prometheus",
                o.path.display()
            ),
        ));
    }
    Ok(imported)
}

/// An error in an imported SLO names the OpenSLO file, its line and its field.
fn imported_error(o: &Origin, name: &str, f: &str, field: String, message: String) -> ConfigError {
    let ours = field.strip_prefix(f).unwrap_or("").trim_start_matches('.');
    let theirs = openslo_field(ours);
    ConfigError::Invalid {
        path: o.path.clone(),
        line: locate(&o.doc, theirs) + o.line - 1,
        field: theirs.to_string(),
        message: format!("SLO {} (imported from OpenSLO): {message}", quote(name)),
    }
}

/// One SLO: name, objective, cells, period, indicator, budgeting.
fn slo(
    s: &RawSlo,
    f: &str,
    cells: &[Cell],
    names: &BTreeSet<String>,
    bounds: sli::Bounds<'_>,
    source: &Source,
    fail: Fail<'_>,
) -> Result<Slo, ConfigError> {
    if !(s.objective > 0.0 && s.objective < 1.0) {
        return Err(fail.at(
            format!("{f}.objective"),
            format!(
                "{} is not a ratio between 0 and 1 (write 0.99 for 99 %)",
                s.objective
            ),
        ));
    }
    let slo_cells = slo_cells(s, f, cells, names, fail)?;
    let period = period(s, f, fail)?;
    let sli = sli::sli(&s.sli, f, bounds, source, fail)?;
    let budgeting = budgeting::budgeting(s, f, &sli, &period, fail)?;
    Ok(Slo {
        name: s.name.clone(),
        description: s.description.clone(),
        cells: slo_cells,
        objective: s.objective,
        period,
        budgeting,
        min_events: s.min_events.map_or(MinEvents::Auto, MinEvents::Fixed),
        sli,
    })
}

fn slo_cells(
    s: &RawSlo,
    f: &str,
    cells: &[Cell],
    names: &BTreeSet<String>,
    fail: Fail<'_>,
) -> Result<Vec<String>, ConfigError> {
    match &s.cells {
        None => Ok(cells.iter().map(|c| c.name.clone()).collect()),
        Some(list) if list.is_empty() => Err(fail.at(
            format!("{f}.cells"),
            "an empty list: omit it to mean every cell",
        )),
        Some(list) => {
            if let Some(c) = list.iter().find(|c| !names.contains(*c)) {
                return Err(fail.at(
                    format!("{f}.cells"),
                    format!(
                        "no cell named {} (cells: {})",
                        quote(c),
                        clip(&names.iter().cloned().collect::<Vec<_>>().join(", "))
                    ),
                ));
            }
            Ok(list.clone())
        }
    }
}

/// `period:` a rolling duration in 1h..=400d, or `calendar-month` in a time zone.
fn period(s: &RawSlo, f: &str, fail: Fail<'_>) -> Result<Period, ConfigError> {
    if s.period.trim() == "calendar-month" {
        let tz = schedule::timezone(s.timezone.as_deref(), &format!("{f}.timezone"), fail)?;
        return Ok(Period::CalendarMonth(tz));
    }
    let d = parse_duration("period", &s.period)
        .map_err(|m| fail.at(format!("{f}.period"), format!("{m}; or calendar-month")))?;
    if d < Duration::from_secs(3600) || d > Duration::from_secs(400 * 86400) {
        return Err(fail.at(
            format!("{f}.period"),
            format!("{} is outside 1h..=400d", s.period),
        ));
    }
    if s.timezone.is_some() {
        return Err(fail.at(
            format!("{f}.timezone"),
            "a time zone applies to a calendar period only (period: calendar-month)",
        ));
    }
    Ok(Period::Rolling(d))
}
