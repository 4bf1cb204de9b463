//! The alert state machine (pending, firing, resolved) and its grouping per cell and receiver.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::inhibit::inhibited;
use super::route::{Routes, receivers};
use super::rules::Wanted;
use crate::config::Timing;
use crate::model::{Labels, fingerprint};

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
            let fresh = || Alert {
                labels: w.labels.clone(),
                annotations: w.annotations.clone(),
                fingerprint: fp.clone(),
                active_since: now,
                fired_at: None,
                resolved_at: None,
            };
            let a = self.alerts.entry(fp.clone()).or_insert_with(fresh);
            if a.resolved_at.is_some() {
                // Back before its resolve was notified: a new episode.
                *a = fresh();
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
        let current = self.notifiable(routes, muted);
        self.open_groups(&current, timing, now);
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
            let (said, closes) = flush(key, g, &self.alerts, &now_firing, &all_firing, timing, now);
            out.extend(said);
            if closes {
                done.push(key.clone());
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

    /// Group key → (receiver, cell, fingerprints) of the firing alerts that may notify: not
    /// muted, not inhibited.
    fn notifiable(
        &self,
        routes: &Routes,
        muted: &dyn Fn(&Labels) -> bool,
    ) -> BTreeMap<String, (String, String, BTreeSet<String>)> {
        let firing: Vec<&Labels> = self
            .alerts
            .values()
            .filter(|a| a.firing())
            .map(|a| &a.labels)
            .collect();
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
        current
    }

    /// A group for each new group key, first flushed after `group_wait`.
    fn open_groups(
        &mut self,
        current: &BTreeMap<String, (String, String, BTreeSet<String>)>,
        timing: &Timing,
        now: i64,
    ) {
        for (key, (receiver, cell, _)) in current {
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
    }
}

/// One group's flush: what it says (if anything) and whether it closes.
fn flush(
    key: &str,
    g: &mut Group,
    alerts: &BTreeMap<String, Alert>,
    now_firing: &BTreeSet<String>,
    all_firing: &BTreeSet<&String>,
    timing: &Timing,
    now: i64,
) -> (Option<Notification>, bool) {
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
            return (None, true);
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
        return (None, false);
    };
    g.seq += 1;
    let nkey = format!("{key}@{}/{}", g.created, g.seq);
    let incident = g.incident.get_or_insert_with(|| nkey.clone()).clone();
    let all_resolved = reason == "all_resolved";
    let said = Notification {
        key: nkey,
        group_key: key.to_string(),
        incident,
        receiver: g.receiver.clone(),
        cell: g.cell.clone(),
        status: if all_resolved { "resolved" } else { "firing" }.into(),
        reason: reason.into(),
        at: now,
        alerts: notified(alerts, now_firing, &resolved, now),
    };
    if !all_resolved {
        g.last_sent = Some(now);
        g.notified = next;
        g.next_flush = now + timing.group_interval;
    }
    (Some(said), all_resolved)
}

/// The alerts a notification carries: the firing ones, then the resolved ones.
fn notified(
    alerts: &BTreeMap<String, Alert>,
    now_firing: &BTreeSet<String>,
    resolved: &BTreeSet<String>,
    now: i64,
) -> Vec<Notified> {
    let mut out = Vec::new();
    for fp in now_firing.iter().chain(resolved) {
        if let Some(a) = alerts.get(fp) {
            let firing = now_firing.contains(fp);
            out.push(Notified {
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
    out
}
