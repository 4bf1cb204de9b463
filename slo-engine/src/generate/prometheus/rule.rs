//! The parts of a Prometheus rule file, and the PromQL text the rule builders share.

use std::collections::BTreeMap;

use serde::Serialize;

/// A rule file.
#[derive(Debug, Serialize)]
pub(super) struct RuleFile {
    pub(super) groups: Vec<Group>,
}

/// A rule group: its rules are evaluated in order, apart from other groups.
#[derive(Debug, Serialize)]
pub(super) struct Group {
    pub(super) name: String,
    pub(super) rules: Vec<Rule>,
}

/// A recording or alerting rule.
#[derive(Debug, Serialize)]
pub(super) struct Rule {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) record: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) alert: Option<String>,
    pub(super) expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub(super) for_: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) annotations: BTreeMap<String, String>,
}

/// A recording rule.
pub(super) fn record(name: &str, expr: String, labels: BTreeMap<String, String>) -> Rule {
    Rule {
        record: Some(name.into()),
        alert: None,
        expr,
        for_: None,
        labels,
        annotations: BTreeMap::new(),
    }
}

/// A Prometheus duration one millisecond short of `secs` seconds (`4m59s999ms` for 5m).
pub(super) fn just_under(secs: u64) -> String {
    let ms = (secs * 1000).saturating_sub(1);
    let parts = [
        (ms / 86_400_000, "d"),
        (ms / 3_600_000 % 24, "h"),
        (ms / 60_000 % 60, "m"),
        (ms / 1000 % 60, "s"),
        (ms % 1000, "ms"),
    ];
    let text: String = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if text.is_empty() { "0s".into() } else { text }
}
