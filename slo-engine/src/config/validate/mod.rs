//! Validation: raw YAML types in, resolved types out. One function per section, called in the
//! order of the file, so the first error a user sees stays the one the file shows first.
//!
//! File I/O (the CA file, secret files, a Slack URL file, OpenSLO documents) happens only in
//! the named steps of `files.rs` and [`openslo`](super::openslo), at the same point of the
//! sequence as before; every other check is pure.

use std::collections::BTreeSet;
use std::path::Path;

use crate::config::check::{NAME_RULE, name_safe};
use crate::config::error::ConfigError;
use crate::config::locate::locate;
use crate::config::raw::RawConfig;
use crate::config::types::Config;
use crate::util::text::quote;

mod alerting;
mod budgeting;
mod burn_rates;
mod cells;
mod files;
mod maintenance;
mod receivers;
mod reports;
mod routes;
mod schedule;
mod sli;
mod slos;
mod source;

/// Makes the error of a field: `fail.at("cells[0].name", "…")`.
#[derive(Clone, Copy)]
pub(super) struct Fail<'a>(&'a dyn Fn(String, String) -> ConfigError);

impl Fail<'_> {
    pub(super) fn at(&self, field: impl Into<String>, message: impl Into<String>) -> ConfigError {
        (self.0)(field.into(), message.into())
    }
}

/// `{f}.name`: a name that PromQL strings, regexes and rule groups can hold.
pub(super) fn safe_name(name: &str, f: &str, fail: Fail<'_>) -> Result<(), ConfigError> {
    if name_safe(name) {
        return Ok(());
    }
    Err(fail.at(format!("{f}.name"), format!("{}: {NAME_RULE}", quote(name))))
}

/// The OpenSLO field that holds what one of our SLO fields was made from.
pub(super) fn openslo_field(ours: &str) -> &'static str {
    match ours.split('.').next().unwrap_or("") {
        "name" => "metadata.name",
        "cells" => "metadata.labels",
        "objective" => "spec.objectives[0]",
        "period" | "timezone" => "spec.timeWindow[0]",
        "budgeting" => "spec.budgetingMethod",
        "slice" => "spec.objectives[0].timeSliceWindow",
        "slice_target" => "spec.objectives[0].timeSliceTarget",
        _ => "spec",
    }
}

pub(super) fn validate(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
    let at = |field: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: locate(text, &field),
        field,
        message,
    };
    let fail = Fail(&at);
    let base = path.parent().unwrap_or(Path::new("."));
    let cells = cells::cells(&raw.cells, fail)?;
    let names: BTreeSet<String> = cells.iter().map(|c| c.name.clone()).collect();
    let source = source::source(raw.source.clone(), base, fail)?;
    source::buckets("buckets", &raw.buckets, fail)?;
    source::buckets("tpot_buckets", &raw.tpot_buckets, fail)?;
    let slos = slos::slos(&raw, &cells, &names, &source, base, fail)?;
    let alerting = alerting::alerting(&raw.alerting, base, fail)?;
    let maintenance = maintenance::windows(&raw.maintenance, &cells, &names, fail)?;
    let health = cells::health(&raw.health, fail)?;
    Ok(Config {
        cells,
        source,
        buckets: raw.buckets,
        tpot_buckets: raw.tpot_buckets,
        slos,
        alerting,
        maintenance,
        health,
    })
}
