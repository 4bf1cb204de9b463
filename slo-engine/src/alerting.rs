//! Cell-scoped alerting, the pure part: which alerts an evaluation calls for (multiwindow,
//! multi-burn-rate pages and tickets, budget exhausted, no data, cell down), inhibition, the
//! alert state machine (pending, firing, resolved) and Alertmanager-style grouping per cell
//! (group_wait, group_interval, repeat_interval). No IO and no clock: every step takes the
//! time, so days of incidents are tested in milliseconds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::config::{Config, Slo};
use crate::engine::Report;
use crate::math;
use crate::rules::burn_factor;

/// An alert's labels: its identity.
pub type Labels = BTreeMap<String, String>;

/// The alert names.
pub mod names {
    /// An SLO burns its error budget too fast (`severity` page or ticket).
    pub const BURN: &str = "CellwatchErrorBudgetBurn";
    /// An SLO has no error budget left in its period.
    pub const EXHAUSTED: &str = "CellwatchErrorBudgetExhausted";
    /// An SLO of a cell has had no data for a while.
    pub const NO_DATA: &str = "CellwatchSLONoData";
    /// No exporter of a cell answers.
    pub const CELL_DOWN: &str = "CellwatchCellDown";
}

/// Prometheus' label-set fingerprint: FNV-1a 64 over the sorted names and values, each
/// followed by 0xFF; as Alertmanager prints it (16 hex digits).
pub fn fingerprint(labels: &Labels) -> String {
    use std::hash::Hasher;
    let mut h = fnv::FnvHasher::default();
    for (k, v) in labels {
        h.write(k.as_bytes());
        h.write_u8(0xFF);
        h.write(v.as_bytes());
        h.write_u8(0xFF);
    }
    format!("{:016x}", h.finish())
}

/// Timings, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Wait before the first notification of a new group.
    pub group_wait: i64,
    /// Wait between notifications of a group whose alerts changed.
    pub group_interval: i64,
    /// Send a still-firing group again after this long.
    pub repeat_interval: i64,
    /// An SLO without data for this long raises a no-data alert.
    pub no_data_for: i64,
    /// A cell whose exporters all fail for this long raises a cell-down page.
    pub cell_down_for: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            group_wait: 30,
            group_interval: 300,
            repeat_interval: 4 * 3600,
            no_data_for: 600,
            cell_down_for: 60,
        }
    }
}

/// An alert an evaluation calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// Identity.
    pub labels: Labels,
    /// Descriptions for people (not identity).
    pub annotations: Labels,
    /// How long the condition must hold before the alert fires (seconds).
    pub hold: i64,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn window<'a>(
    s: &'a crate::engine::SloReport,
    name: &str,
) -> Option<&'a crate::engine::WindowReport> {
    s.windows.iter().find(|w| w.window == name)
}

fn window_name(secs: u64) -> &'static str {
    math::WINDOWS
        .iter()
        .find(|(_, s)| *s == secs)
        .map_or("", |(n, _)| *n)
}

/// The burn tiers of an SLO that fire now: (severity, long window, factor, long burn).
fn burning<'a>(
    rates: &'a [crate::config::BurnRate],
    slo: &Slo,
    r: &crate::engine::SloReport,
    now: i64,
) -> Vec<(&'a str, u64, f64, f64)> {
    let period = math::period_length(&slo.period, now).as_secs();
    let mut out = Vec::new();
    for b in rates {
        let (severity, long, short) = (b.severity.as_str(), b.long, b.short);
        if long > period {
            continue;
        }
        let f = burn_factor(b.budget, long, period);
        let burn = |secs| window(r, window_name(secs)).and_then(|w| w.burn_rate);
        // Judged windows only: a window too thin for min_events has no burn rate.
        if let (Some(l), Some(s)) = (burn(long), burn(short))
            && l >= f
            && s >= f
        {
            out.push((severity, long, f, l));
        }
    }
    out
}

/// The alerts an evaluation calls for, before inhibition: per cell and SLO, a page and a
/// ticket for the burn-rate tiers that fire, budget exhausted, no data; per cell, cell down
/// when every exporter of `down_cells` failed.
pub fn wanted(
    config: &Config,
    report: &Report,
    down_cells: &BTreeSet<String>,
    timing: &Timing,
) -> Vec<Wanted> {
    let mut out = Vec::new();
    for r in &report.slos {
        let Some(slo) = config.slos.iter().find(|s| s.name == r.slo) else {
            continue;
        };
        // An alert about this SLO of this cell, with its budget left.
        let slo_alert = |alertname: &str, severity: &str, summary: String, hold: i64| Wanted {
            labels: labels(&[
                ("alertname", alertname),
                ("cell", &r.cell),
                ("slo", &r.slo),
                ("severity", severity),
            ]),
            annotations: labels(&[
                ("summary", &summary),
                (
                    "budget_remaining",
                    &r.budget_remaining
                        .map_or("unknown".into(), |b| format!("{:.1} %", b * 100.0)),
                ),
            ]),
            hold,
        };
        let mut by_severity: BTreeMap<&str, Vec<(u64, f64, f64)>> = BTreeMap::new();
        for (severity, long, f, l) in burning(&config.alerting.burn_rates, slo, r, report.at) {
            by_severity.entry(severity).or_default().push((long, f, l));
        }
        for (severity, tiers) in by_severity {
            let detail: Vec<String> = tiers
                .iter()
                .map(|(long, f, l)| {
                    format!(
                        "{:.1}× over {} (threshold {:.1}×)",
                        l,
                        window_name(*long),
                        f
                    )
                })
                .collect();
            let mut w = slo_alert(
                names::BURN,
                severity,
                format!("Cell {} burns the {} error budget too fast", r.cell, r.slo),
                0,
            );
            w.annotations.insert("burn_rates".into(), detail.join("; "));
            out.push(w);
        }
        if r.budget_remaining.is_some_and(|b| b <= 0.0) {
            out.push(slo_alert(
                names::EXHAUSTED,
                "ticket",
                format!(
                    "Cell {} has spent the {} error budget of its period",
                    r.cell, r.slo
                ),
                0,
            ));
        }
        if r.data_missing {
            out.push(slo_alert(
                names::NO_DATA,
                "ticket",
                format!("SLO {} of cell {} has no data", r.slo, r.cell),
                timing.no_data_for,
            ));
        }
    }
    for cell in down_cells {
        out.push(Wanted {
            labels: labels(&[
                ("alertname", names::CELL_DOWN),
                ("cell", cell),
                ("severity", "page"),
            ]),
            annotations: labels(&[("summary", &format!("No exporter of cell {cell} answers"))]),
            hold: timing.cell_down_for,
        });
    }
    out
}

/// Whether an alert is inhibited by another active one: a page inhibits the ticket of the same
/// cell and SLO; a cell-down page inhibits every other alert of its cell.
pub fn inhibited(target: &Labels, firing: &[&Labels]) -> bool {
    let get = |l: &Labels, k: &str| l.get(k).cloned().unwrap_or_default();
    firing.iter().any(|src| {
        if *src == target {
            return false;
        }
        let same_cell = get(src, "cell") == get(target, "cell");
        (get(src, "alertname") == names::CELL_DOWN && same_cell)
            || (get(src, "alertname") == names::BURN
                && get(src, "severity") == "page"
                && get(target, "severity") == "ticket"
                && same_cell
                && get(src, "slo") == get(target, "slo")
                && get(target, "alertname") == names::BURN)
    })
}

/// A label matcher, as Alertmanager's API v2 writes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value, or a regular expression matched against the whole value.
    pub value: String,
    /// `value` is a regular expression.
    #[serde(default)]
    pub is_regex: bool,
    /// True: the label must match; false: it must not.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

/// The longest regular expression a matcher may hold (bytes): longer ones are refused.
pub const MAX_REGEX_LEN: usize = 1024;

/// The most memory one matcher's compiled regular expression may take (bytes, the `regex`
/// crate's `size_limit`): a pattern that compiles bigger is refused.
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;

impl Matcher {
    /// Compiles the matcher: a regular expression at most [`MAX_REGEX_LEN`] bytes long that
    /// compiles within [`REGEX_SIZE_LIMIT`]. Compile once, match many times.
    pub fn compile(&self) -> Result<CompiledMatcher, String> {
        if self.name.is_empty() {
            return Err("a matcher needs a label name".into());
        }
        let test = if self.is_regex {
            let name = crate::config::quote(&self.name);
            if self.value.len() > MAX_REGEX_LEN {
                return Err(format!(
                    "matcher {name}: the regular expression is {} bytes long, the limit is {MAX_REGEX_LEN}",
                    self.value.len()
                ));
            }
            let re = regex::RegexBuilder::new(&format!("^(?:{})$", self.value))
                .size_limit(REGEX_SIZE_LIMIT)
                .dfa_size_limit(REGEX_SIZE_LIMIT)
                .build()
                .map_err(|e| match e {
                    regex::Error::CompiledTooBig(limit) => format!(
                        "matcher {name}: the regular expression compiles to more than {limit} bytes"
                    ),
                    e => format!(
                        "matcher {name}: not a regular expression: {}",
                        crate::config::regex_error(&e)
                    ),
                })?;
            Test::Regex(re)
        } else {
            Test::Equal(self.value.clone())
        };
        Ok(CompiledMatcher {
            name: self.name.clone(),
            is_equal: self.is_equal,
            test,
        })
    }

    /// Checks the matcher: a regular expression must compile within the limits.
    pub fn validate(&self) -> Result<(), String> {
        self.compile().map(|_| ())
    }
}

/// A [`Matcher`] ready to match: its regular expression compiled.
#[derive(Debug, Clone)]
pub struct CompiledMatcher {
    name: String,
    is_equal: bool,
    test: Test,
}

#[derive(Debug, Clone)]
enum Test {
    Equal(String),
    Regex(regex::Regex),
}

impl CompiledMatcher {
    /// Whether `labels` match (a missing label is the empty string, as in Alertmanager).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        let hit = match &self.test {
            Test::Equal(want) => v == want,
            Test::Regex(re) => re.is_match(v),
        };
        hit == self.is_equal
    }
}

/// A silence: alerts matching every matcher send nothing from `starts_at` to `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Matchers, all of which must hold.
    pub matchers: Vec<Matcher>,
    /// Start (Unix seconds).
    pub starts_at: i64,
    /// End (Unix seconds).
    pub ends_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    /// Compiles its matchers.
    pub fn compile(self) -> Result<CompiledSilence, String> {
        let matchers = self
            .matchers
            .iter()
            .map(Matcher::compile)
            .collect::<Result<_, _>>()?;
        Ok(CompiledSilence {
            silence: self,
            matchers,
        })
    }
}

/// A silence with its matchers compiled: what the engine matches alerts against.
#[derive(Debug, Clone)]
pub struct CompiledSilence {
    /// The silence.
    pub silence: Silence,
    matchers: Vec<CompiledMatcher>,
}

impl CompiledSilence {
    /// The same silence, its compiled matchers reused, with another record (the same
    /// matchers, another end after an expiry).
    pub fn with(&self, silence: Silence) -> CompiledSilence {
        CompiledSilence {
            silence,
            matchers: self.matchers.clone(),
        }
    }

    /// Whether it mutes `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: i64) -> bool {
        self.silence.state(now) == "active" && self.matchers.iter().all(|m| m.matches(labels))
    }
}

/// A maintenance window: a cron schedule of starts, each lasting `duration`, for some cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Name.
    pub name: String,
    /// The cells it covers.
    pub cells: Vec<String>,
    /// Starts (the `cron` crate's syntax, seconds first: `0 0 3 * * Sun`).
    pub schedule: cron::Schedule,
    /// Time zone of the schedule.
    pub timezone: chrono_tz::Tz,
    /// Length of each window (seconds).
    pub duration: i64,
    /// Its slices are left out of the budgets too (not only its notifications).
    pub exclude_from_budget: bool,
}

impl Maintenance {
    /// Whether `cell` is in a window at `at` (Unix seconds): a start in `(at − duration, at]`.
    pub fn active(&self, cell: &str, at: i64) -> bool {
        use chrono::TimeZone;
        if !self.cells.iter().any(|c| c == cell) {
            return false;
        }
        let Some(from) = self.timezone.timestamp_opt(at - self.duration, 0).single() else {
            return false;
        };
        self.schedule
            .after(&from)
            .next()
            .is_some_and(|start| start.timestamp() <= at)
    }
}

/// Whether an alert sends nothing at `now`: a silence mutes it, or its cell is in a
/// maintenance window.
pub fn muted(
    silences: &[&CompiledSilence],
    maintenance: &[Maintenance],
    labels: &Labels,
    now: i64,
) -> bool {
    silences.iter().any(|s| s.mutes(labels, now))
        || labels
            .get("cell")
            .is_some_and(|c| maintenance.iter().any(|m| m.active(c, now)))
}

/// One alert's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identity.
    pub labels: Labels,
    /// Latest annotations.
    pub annotations: Labels,
    /// Its fingerprint.
    pub fingerprint: String,
    /// When its condition began to hold.
    pub active_since: i64,
    /// When it fired (None: pending).
    pub fired_at: Option<i64>,
    /// When it resolved (None: active).
    pub resolved_at: Option<i64>,
}

impl Alert {
    /// Firing (not pending, not resolved).
    pub fn firing(&self) -> bool {
        self.fired_at.is_some() && self.resolved_at.is_none()
    }
}

/// Every alert the engine tracks, by fingerprint, and the notification groups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Alerts: pending, firing, or resolved and not yet notified as such.
    pub alerts: BTreeMap<String, Alert>,
    /// Notification groups, by key.
    pub groups: BTreeMap<String, Group>,
}

/// A notification group: one cell for one receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Receiver.
    pub receiver: String,
    /// Cell.
    pub cell: String,
    /// Next time the group may notify.
    pub next_flush: i64,
    /// When it last notified with firing alerts.
    pub last_sent: Option<i64>,
    /// Fingerprints of the firing alerts of the last notification.
    pub notified: BTreeSet<String>,
    /// When the group (the incident) began: part of every notification key, so a cell's next
    /// incident never reuses a key.
    #[serde(default)]
    pub created: i64,
    /// Notifications sent for this group (the incident's sequence number).
    pub seq: u64,
    /// The incident's first notification's key (resolves thread to it).
    pub incident: Option<String>,
}

/// Where alerts go: the first route whose matchers all hold (`continue` goes on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Receiver name.
    pub receiver: String,
    /// Label equality matchers.
    pub matchers: Labels,
    /// Label regular-expression matchers (whole value), as Alertmanager's `match_re`.
    #[serde(default)]
    pub match_re: Vec<Matcher>,
    /// Keep matching later routes.
    #[serde(default)]
    pub continue_: bool,
}

/// The routes with their regular expressions compiled, once, when the engine starts.
#[derive(Debug, Clone, Default)]
pub struct Routes(Vec<(Route, Option<Vec<CompiledMatcher>>)>);

impl Routes {
    /// Compiles every route's matchers (the configuration checked them: one that does not
    /// compile never matches).
    pub fn new(routes: &[Route]) -> Routes {
        Routes(
            routes
                .iter()
                .map(|r| {
                    let re: Result<Vec<_>, _> = r.match_re.iter().map(Matcher::compile).collect();
                    (r.clone(), re.ok())
                })
                .collect(),
        )
    }
}

/// The receivers an alert goes to.
pub fn receivers<'a>(routes: &'a Routes, labels: &Labels) -> Vec<&'a str> {
    let mut out = Vec::new();
    for (r, re) in &routes.0 {
        if r.matchers.iter().all(|(k, v)| labels.get(k) == Some(v))
            && re
                .as_ref()
                .is_some_and(|re| re.iter().all(|m| m.matches(labels)))
        {
            out.push(r.receiver.as_str());
            if !r.continue_ {
                break;
            }
        }
    }
    out
}

/// One alert in a notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notified {
    /// Firing or resolved.
    pub status: String,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Labels,
    /// Fingerprint.
    pub fingerprint: String,
    /// When it began (Unix seconds).
    pub starts_at: i64,
    /// When it resolved.
    pub ends_at: Option<i64>,
}

/// A notification for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: group key and sequence number; receivers dedup on it.
    pub key: String,
    /// The group key (`{receiver}:{cell="…"}`, as Alertmanager's).
    pub group_key: String,
    /// The incident's first notification's key.
    pub incident: String,
    /// Receiver.
    pub receiver: String,
    /// Cell.
    pub cell: String,
    /// `firing` or `resolved` (the group as a whole).
    pub status: String,
    /// Why: `new_alerts`, `repeat`, `some_resolved` or `all_resolved`.
    pub reason: String,
    /// When (Unix seconds).
    pub at: i64,
    /// Its alerts, firing first.
    pub alerts: Vec<Notified>,
}

impl State {
    /// Moves every alert through pending, firing and resolved at `now`, given what the
    /// evaluation wants.
    pub fn step_alerts(&mut self, wanted: &[Wanted], now: i64) {
        let mut seen = BTreeSet::new();
        for w in wanted {
            let fp = fingerprint(&w.labels);
            seen.insert(fp.clone());
            let a = self.alerts.entry(fp.clone()).or_insert_with(|| Alert {
                labels: w.labels.clone(),
                annotations: w.annotations.clone(),
                fingerprint: fp.clone(),
                active_since: now,
                fired_at: None,
                resolved_at: None,
            });
            if a.resolved_at.is_some() {
                // Back before its resolve was notified: a new episode.
                *a = Alert {
                    labels: w.labels.clone(),
                    annotations: w.annotations.clone(),
                    fingerprint: fp.clone(),
                    active_since: now,
                    fired_at: None,
                    resolved_at: None,
                };
            }
            a.annotations = w.annotations.clone();
            if a.fired_at.is_none() && now - a.active_since >= w.hold {
                a.fired_at = Some(now);
            }
        }
        for (fp, a) in self.alerts.iter_mut() {
            if !seen.contains(fp) && a.resolved_at.is_none() {
                a.resolved_at = Some(now);
            }
        }
        // A pending alert that stopped never fired: forget it.
        self.alerts
            .retain(|_, a| a.fired_at.is_some() || a.resolved_at.is_none());
    }

    /// Groups the firing alerts per receiver and cell and returns the notifications due at
    /// `now`, with Alertmanager's semantics: a new group waits `group_wait`; a group notifies
    /// again after `group_interval` when alerts were added or resolved, after
    /// `repeat_interval` when nothing changed, and once when all its alerts resolved. `muted`
    /// alerts (silenced, in a maintenance window) and inhibited ones are left out.
    pub fn dispatch(
        &mut self,
        routes: &Routes,
        timing: &Timing,
        muted: &dyn Fn(&Labels) -> bool,
        now: i64,
    ) -> Vec<Notification> {
        let firing: Vec<&Labels> = self
            .alerts
            .values()
            .filter(|a| a.firing())
            .map(|a| &a.labels)
            .collect();
        // Group key → fingerprints of the notifiable firing alerts.
        let mut current: BTreeMap<String, (String, String, BTreeSet<String>)> = BTreeMap::new();
        for a in self.alerts.values().filter(|a| a.firing()) {
            if muted(&a.labels) || inhibited(&a.labels, &firing) {
                continue;
            }
            let cell = a.labels.get("cell").cloned().unwrap_or_default();
            for r in receivers(routes, &a.labels) {
                let key = format!("{r}:{{cell=\"{cell}\"}}");
                current
                    .entry(key)
                    .or_insert_with(|| (r.to_string(), cell.clone(), BTreeSet::new()))
                    .2
                    .insert(a.fingerprint.clone());
            }
        }
        for (key, (receiver, cell, _)) in &current {
            self.groups.entry(key.clone()).or_insert_with(|| Group {
                receiver: receiver.clone(),
                cell: cell.clone(),
                next_flush: now + timing.group_wait,
                last_sent: None,
                notified: BTreeSet::new(),
                created: now,
                seq: 0,
                incident: None,
            });
        }
        let all_firing: BTreeSet<&String> = self
            .alerts
            .values()
            .filter(|a| a.firing())
            .map(|a| &a.fingerprint)
            .collect();
        let mut out = Vec::new();
        let mut done = Vec::new();
        for (key, g) in self.groups.iter_mut() {
            if now < g.next_flush {
                continue;
            }
            let now_firing = current.get(key).map(|c| c.2.clone()).unwrap_or_default();
            // Notified alerts that still fire but are muted or inhibited now are not resolved:
            // they stay in the group, unsaid, until they resolve.
            let (still, resolved): (BTreeSet<String>, BTreeSet<String>) = g
                .notified
                .iter()
                .cloned()
                .partition(|fp| all_firing.contains(fp));
            let next: BTreeSet<String> = now_firing.union(&still).cloned().collect();
            let added = !now_firing.is_subset(&g.notified);
            let reason = if now_firing.is_empty() && still.is_empty() {
                if resolved.is_empty() {
                    // Flapped within group_wait, or muted throughout: nothing was ever said.
                    done.push(key.clone());
                    continue;
                }
                "all_resolved"
            } else if added {
                "new_alerts"
            } else if !resolved.is_empty() {
                "some_resolved"
            } else if !now_firing.is_empty()
                && g.last_sent
                    .is_some_and(|t| now - t >= timing.repeat_interval)
            {
                "repeat"
            } else {
                g.notified = next;
                continue;
            };
            g.seq += 1;
            let nkey = format!("{key}@{}/{}", g.created, g.seq);
            let incident = g.incident.get_or_insert_with(|| nkey.clone()).clone();
            let mut alerts: Vec<Notified> = Vec::new();
            for fp in now_firing.iter().chain(&resolved) {
                if let Some(a) = self.alerts.get(fp) {
                    let firing = now_firing.contains(fp);
                    alerts.push(Notified {
                        status: if firing { "firing" } else { "resolved" }.into(),
                        labels: a.labels.clone(),
                        annotations: a.annotations.clone(),
                        fingerprint: fp.clone(),
                        starts_at: a.active_since,
                        ends_at: if firing {
                            None
                        } else {
                            a.resolved_at.or(Some(now))
                        },
                    });
                }
            }
            let all_resolved = reason == "all_resolved";
            out.push(Notification {
                key: nkey,
                group_key: key.clone(),
                incident,
                receiver: g.receiver.clone(),
                cell: g.cell.clone(),
                status: if all_resolved { "resolved" } else { "firing" }.into(),
                reason: reason.into(),
                at: now,
                alerts,
            });
            if all_resolved {
                done.push(key.clone());
            } else {
                g.last_sent = Some(now);
                g.notified = next;
                g.next_flush = now + timing.group_interval;
            }
        }
        for key in done {
            self.groups.remove(&key);
        }
        // Resolved alerts no group still reports can go.
        let reported: BTreeSet<&String> = self.groups.values().flat_map(|g| &g.notified).collect();
        self.alerts
            .retain(|fp, a| a.resolved_at.is_none() || reported.contains(fp));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SloReport, WindowReport};

    const CONFIG: &str = "cells:
  - { name: studio-a, nodes: [ { name: n1, url: \"http://n1:9817/metrics\" } ] }
  - { name: studio-b, nodes: [ { name: n1, url: \"http://m1:9817/metrics\" } ] }
slos:
  - { name: latency, objective: 0.99, period: 30d, sli: { latency: { threshold: 2s } } }
  - { name: availability, objective: 0.99, period: 30d, sli: { availability: {} } }
";

    fn config() -> Config {
        crate::config::parse(CONFIG, std::path::Path::new("t.yaml")).unwrap()
    }

    /// A report in which every window of the given (cell, slo) burns at `burn`.
    fn report(at: i64, burns: &[(&str, &str, f64)]) -> Report {
        let mut r = Report {
            at,
            ..Default::default()
        };
        for cell in ["studio-a", "studio-b"] {
            for slo in ["latency", "availability"] {
                let burn = burns
                    .iter()
                    .find(|(c, s, _)| *c == cell && *s == slo)
                    .map_or(0.1, |b| b.2);
                r.slos.push(SloReport {
                    cell: cell.into(),
                    slo: slo.into(),
                    objective: 0.99,
                    budget_remaining: Some(0.5),
                    data_missing: false,
                    windows: math::WINDOWS
                        .iter()
                        .map(|(w, _)| WindowReport {
                            window: w.to_string(),
                            state: "ok",
                            sli: Some(1.0 - burn * 0.01),
                            burn_rate: Some(burn),
                            total: 1000.0,
                        })
                        .collect(),
                });
            }
        }
        r
    }

    fn route() -> Vec<Route> {
        vec![Route {
            receiver: "oncall".into(),
            matchers: Labels::new(),
            match_re: Vec::new(),
            continue_: false,
        }]
    }

    /// Runs evaluations every 15 s from `from` to `to` with `burns` and returns the
    /// notifications.
    fn run(
        state: &mut State,
        from: i64,
        to: i64,
        burns: &[(&str, &str, f64)],
        down: &[&str],
        muted: &dyn Fn(&Labels) -> bool,
    ) -> Vec<Notification> {
        let cfg = config();
        let timing = Timing::default();
        let down: BTreeSet<String> = down.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            let w = wanted(&cfg, &report(t, burns), &down, &timing);
            state.step_alerts(&w, t);
            out.extend(state.dispatch(&Routes::new(&route()), &timing, muted, t));
            t += 15;
        }
        out
    }

    #[test]
    fn fingerprints_are_prometheus_label_set_fingerprints() {
        // prometheus/common model's test vectors.
        assert_eq!(
            fingerprint(&Labels::new()),
            format!("{:016x}", 14695981039346656037u64)
        );
        assert_eq!(
            fingerprint(&labels(&[("first-label", "first-label-value")])),
            format!("{:016x}", 5146282821936882169u64)
        );
        assert_eq!(
            fingerprint(&labels(&[
                ("first-label", "first-label-value"),
                ("second-label", "second-label-value")
            ])),
            format!("{:016x}", 3195800080984914717u64)
        );
    }

    #[test]
    fn an_incident_on_two_slos_of_a_cell_is_one_page_then_one_resolve() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        // Quiet for 10 minutes, then both SLOs burn at 20× (above 14.4×) for 3 hours.
        assert!(run(&mut s, 0, 600, &[], &[], &never).is_empty());
        let burns = [
            ("studio-a", "latency", 20.0),
            ("studio-a", "availability", 20.0),
        ];
        let during = run(&mut s, 600, 600 + 3 * 3600, &burns, &[], &never);
        assert_eq!(during.len(), 1, "{during:#?}");
        let page = &during[0];
        assert_eq!(
            (page.status.as_str(), page.reason.as_str()),
            ("firing", "new_alerts")
        );
        assert_eq!(page.cell, "studio-a");
        assert_eq!(page.at, 600 + 30, "after group_wait");
        // Two SLOs at page and ticket severity: the tickets are inhibited by the pages.
        let severities: Vec<&str> = page
            .alerts
            .iter()
            .map(|a| a.labels["severity"].as_str())
            .collect();
        assert_eq!(severities, ["page", "page"], "{page:#?}");
        // Over: one resolve, for the same incident, then nothing.
        let after = run(&mut s, 600 + 3 * 3600, 600 + 6 * 3600, &[], &[], &never);
        assert_eq!(after.len(), 1, "{after:#?}");
        assert_eq!(
            (after[0].status.as_str(), after[0].reason.as_str()),
            ("resolved", "all_resolved")
        );
        assert_eq!(after[0].incident, page.key);
        assert!(
            after[0]
                .alerts
                .iter()
                .all(|a| a.status == "resolved" && a.ends_at.is_some())
        );
        assert!(s.alerts.is_empty() && s.groups.is_empty(), "{s:#?}");
    }

    #[test]
    fn a_cells_next_incident_has_keys_of_its_own() {
        let mut s = State::default();
        let never = |_: &Labels| false;
        let burns = [("studio-a", "latency", 20.0)];
        let mut keys = Vec::new();
        for (from, to, b) in [
            (0, 3600, &burns[..]),
            (3600, 3 * 3600, &[][..]),
            (3 * 3600, 4 * 3600, &burns[..]),
            (4 * 3600, 6 * 3600, &[][..]),
        ] {
            for n in run(&mut s, from, to, b, &[], &never) {
                keys.push((n.status.clone(), n.key.clone(), n.incident.clone()));
            }
        }
        assert_eq!(keys.len(), 4, "{keys:#?}");
        let unique: BTreeSet<&String> = keys.iter().map(|k| &k.1).collect();
        assert_eq!(unique.len(), 4, "{keys:#?}");
        assert_eq!(keys[1].2, keys[0].1, "the resolve threads to its own page");
        assert_eq!(keys[3].2, keys[2].1);
        assert_ne!(keys[2].2, keys[0].2, "a new incident");
    }

    #[test]
    fn a_long_incident_repeats_after_repeat_interval() {
        let mut s = State::default();
        let burns = [("studio-a", "latency", 20.0)];
        let n = run(&mut s, 0, 5 * 3600, &burns, &[], &|_| false);
        let reasons: Vec<(&str, i64)> = n.iter().map(|n| (n.reason.as_str(), n.at)).collect();
        assert_eq!(reasons, [("new_alerts", 30), ("repeat", 30 + 4 * 3600)]);
    }

    #[test]
    fn a_cell_down_inhibits_its_slo_alerts_and_other_cells_page_apart() {
        let mut s = State::default();
        let burns = [("studio-a", "latency", 20.0), ("studio-b", "latency", 20.0)];
        let n = run(&mut s, 0, 600, &burns, &["studio-a"], &|_| false);
        let a: Vec<&Notification> = n.iter().filter(|n| n.cell == "studio-a").collect();
        let b: Vec<&Notification> = n.iter().filter(|n| n.cell == "studio-b").collect();
        // studio-a: the burn page goes out first; the cell-down page (after 1 minute)
        // inhibits it from then on.
        assert_eq!(b.len(), 1);
        let last = a.last().unwrap();
        let names: Vec<&str> = last
            .alerts
            .iter()
            .filter(|x| x.status == "firing")
            .map(|x| x.labels["alertname"].as_str())
            .collect();
        assert_eq!(names, [names::CELL_DOWN], "{a:#?}");
        // Inhibited is not resolved: the burn page still burns, it is only not said again.
        assert!(
            a.iter()
                .flat_map(|n| &n.alerts)
                .all(|x| x.status == "firing"),
            "{a:#?}"
        );
    }

    #[test]
    fn muted_alerts_send_nothing_and_no_data_waits_its_hold() {
        let mut s = State::default();
        let n = run(
            &mut s,
            0,
            3600,
            &[("studio-a", "latency", 20.0)],
            &[],
            &|l| l.get("cell").is_some_and(|c| c == "studio-a"),
        );
        assert!(n.is_empty(), "{n:#?}");
        // No data: pending for no_data_for (10 minutes), then firing.
        let cfg = config();
        let timing = Timing::default();
        let mut r = report(0, &[]);
        r.slos[0].data_missing = true;
        let mut s = State::default();
        for t in [0, 300, 599] {
            r.at = t;
            s.step_alerts(&wanted(&cfg, &r, &BTreeSet::new(), &timing), t);
            assert!(s.alerts.values().all(|a| !a.firing()), "{t}");
        }
        s.step_alerts(&wanted(&cfg, &r, &BTreeSet::new(), &timing), 600);
        assert!(
            s.alerts
                .values()
                .any(|a| a.firing() && a.labels["alertname"] == names::NO_DATA)
        );
    }

    #[test]
    fn silences_and_maintenance_windows_mute() {
        let l = labels(&[
            ("alertname", names::BURN),
            ("cell", "studio-a"),
            ("severity", "page"),
        ]);
        let m = |name: &str, value: &str, is_regex: bool, is_equal: bool| Matcher {
            name: name.into(),
            value: value.into(),
            is_regex,
            is_equal,
        };
        let s = Silence {
            id: "x".into(),
            matchers: vec![
                m("cell", "studio-.*", true, true),
                m("severity", "ticket", false, false),
            ],
            starts_at: 100,
            ends_at: 200,
            created_by: "me".into(),
            comment: "work".into(),
        }
        .compile()
        .unwrap();
        assert!(!s.mutes(&l, 99) && s.mutes(&l, 100) && s.mutes(&l, 199) && !s.mutes(&l, 200));
        assert_eq!(
            (
                s.silence.state(50),
                s.silence.state(150),
                s.silence.state(250)
            ),
            ("pending", "active", "expired")
        );
        let mut other = l.clone();
        other.insert("cell".into(), "gpu-pool".into());
        assert!(!s.mutes(&other, 150));
        assert!(m("x", "(", true, true).validate().is_err());
        // Sundays 03:00 in Berlin for 2 hours.
        let w = Maintenance {
            name: "weekly".into(),
            cells: vec!["studio-a".into()],
            schedule: "0 0 3 * * Sun".parse().unwrap(),
            timezone: chrono_tz::Europe::Berlin,
            duration: 7200,
            exclude_from_budget: false,
        };
        // 2026-03-01 was a Sunday; 03:00 CET is 02:00 UTC.
        let start = 1_772_330_400;
        assert!(!w.active("studio-a", start - 1));
        assert!(w.active("studio-a", start));
        assert!(w.active("studio-a", start + 7199));
        assert!(!w.active("studio-a", start + 7200));
        assert!(!w.active("gpu-pool", start + 60));
        assert!(muted(&[], std::slice::from_ref(&w), &l, start + 60));
        assert!(!muted(&[], &[w], &l, start + 7200));
    }

    #[test]
    fn burn_rates_are_configurable() {
        let cfg = crate::config::parse(
            &format!(
                "{CONFIG}alerting:\n  burn_rates:\n    - {{ severity: page, long: 1h, short: 5m, budget: 0.5 }}\n"
            ),
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        // 50 % of a 30-day budget in an hour: a factor of 360.
        let w = |burn: f64| {
            wanted(
                &cfg,
                &report(0, &[("studio-a", "latency", burn)]),
                &BTreeSet::new(),
                &Timing::default(),
            )
        };
        assert!(w(20.0).is_empty());
        let hit = w(400.0);
        assert_eq!(hit.len(), 1);
        assert_eq!(hit[0].labels["severity"], "page");
        let bad = crate::config::parse(
            &format!("{CONFIG}alerting:\n  burn_rates:\n    - {{ severity: page, long: 4h, short: 5m, budget: 0.1 }}\n"),
            std::path::Path::new("t.yaml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            bad.contains("alerting.burn_rates[0].long") && bad.contains("5m, 30m"),
            "{bad}"
        );
    }

    #[test]
    fn routes_match_labels_and_regexes_in_order() {
        let re = |name: &str, value: &str| Matcher {
            name: name.into(),
            value: value.into(),
            is_regex: true,
            is_equal: true,
        };
        let routes = vec![
            Route {
                receiver: "studios".into(),
                matchers: labels(&[("severity", "page")]),
                match_re: vec![re("cell", "studio-.*")],
                continue_: true,
            },
            Route {
                receiver: "pager".into(),
                matchers: labels(&[("severity", "page")]),
                match_re: Vec::new(),
                continue_: false,
            },
            Route {
                receiver: "rest".into(),
                matchers: Labels::new(),
                match_re: Vec::new(),
                continue_: false,
            },
        ];
        let routes = Routes::new(&routes);
        let page = |cell: &str| labels(&[("cell", cell), ("severity", "page")]);
        assert_eq!(receivers(&routes, &page("studio-a")), ["studios", "pager"]);
        assert_eq!(receivers(&routes, &page("gpu-pool")), ["pager"]);
        assert_eq!(
            receivers(
                &routes,
                &labels(&[("cell", "studio-a"), ("severity", "ticket")])
            ),
            ["rest"]
        );
    }

    #[test]
    fn regular_expressions_are_bounded_in_length_and_compiled_size() {
        let re = |value: String| Matcher {
            name: "cell".into(),
            value,
            is_regex: true,
            is_equal: true,
        };
        let long = re("a".repeat(MAX_REGEX_LEN + 1)).compile().unwrap_err();
        assert_eq!(
            long,
            "matcher \"cell\": the regular expression is 1025 bytes long, the limit is 1024"
        );
        assert!(re("a".repeat(MAX_REGEX_LEN)).compile().is_ok());
        let big = re("(\\w{100}){100}".into()).compile().unwrap_err();
        assert!(
            big.starts_with("matcher \"cell\": the regular expression compiles to more than"),
            "{big}"
        );
        let bad = re("(".into()).compile().unwrap_err();
        // One line, saying what is wrong, not the pattern with a caret under it.
        assert_eq!(
            bad,
            "matcher \"cell\": not a regular expression: unclosed group"
        );
        let ok = re("studio-.*".into()).compile().unwrap();
        assert!(ok.matches(&labels(&[("cell", "studio-a")])));
        assert!(!ok.matches(&labels(&[("cell", "x-studio-a")])), "anchored");
    }

    #[test]
    fn thin_windows_never_page() {
        let mut r = report(0, &[("studio-a", "latency", 100.0)]);
        for w in &mut r.slos[0].windows {
            w.burn_rate = None; // too thin for min_events
            w.state = "too_thin";
        }
        assert!(wanted(&config(), &r, &BTreeSet::new(), &Timing::default()).is_empty());
    }
}
