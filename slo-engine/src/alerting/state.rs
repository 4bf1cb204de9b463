//! The alert state machine (pending, firing, resolved) and its grouping per cell and receiver.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::inhibit::inhibited;
use super::route::{Routes, matching};
use super::wanted::Wanted;
use crate::config::{NotifyPolicy, Timing};
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
    /// How the group notifies (from the first route that made it).
    #[serde(default)]
    pub policy: NotifyPolicy,
    /// Seconds between digests of a paging incident (0: none).
    #[serde(default)]
    pub update_interval: i64,
    /// Whether the incident has paged (its later alerts join it without a new page).
    #[serde(default)]
    pub paged: bool,
    /// Since when none of a paging incident's alerts fires (its resolve waits `resolve_wait`).
    #[serde(default)]
    pub quiet_since: Option<i64>,
    /// Every alert a paging incident carried firing (its resolve lists them).
    #[serde(default)]
    pub carried: BTreeSet<String>,
}

/// What the group of one key may notify now: receiver, cell, the firing alerts not muted or
/// inhibited, and the policy of the first route that led there.
#[derive(Debug, Clone)]
struct Current {
    receiver: String,
    cell: String,
    firing: BTreeSet<String>,
    policy: NotifyPolicy,
    update_interval: i64,
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
    /// Why: `new_alerts`, `escalated` (a ticket-only incident gained a page: a new incident),
    /// `superseded` (the ticket incident it grew from, resolved), `update` (a digest of a paging
    /// incident), `repeat`, `some_resolved` or `all_resolved`.
    pub reason: String,
    /// Whether it wakes someone: firing with a page among its firing alerts, not a digest.
    #[serde(default)]
    pub pages: bool,
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
        // A pending alert that stopped never fired: forget it, unless an incident carries it
        // (it fired before, and the incident's resolve lists it).
        let carried: BTreeSet<&String> = self
            .groups
            .values()
            .flat_map(|g| g.carried.iter().chain(&g.notified))
            .collect();
        self.alerts.retain(|fp, a| {
            a.fired_at.is_some() || a.resolved_at.is_none() || carried.contains(fp)
        });
    }

    /// Groups the firing alerts per receiver and cell and returns the notifications due at
    /// `now`. A new group waits `group_wait`. Under a route's `incident` policy (the default) a
    /// group is a cell incident: it opens with one notification, alerts that join a paging
    /// incident send nothing (or a digest every `update_interval`), a ticket-only incident that
    /// gains a page escalates with a new page, and the one resolve goes out once every alert
    /// stayed resolved for `resolve_wait`, listing what fired. Ticket-only incidents, and every
    /// group under the `grouped` policy, follow Alertmanager: again after `group_interval` when
    /// alerts were added or resolved, after `repeat_interval` when nothing changed, and once when
    /// all resolved. `muted` alerts (silenced, in a maintenance window) and inhibited ones are
    /// left out.
    pub fn dispatch(
        &mut self,
        routes: &Routes,
        timing: &Timing,
        muted: &dyn Fn(&Labels) -> bool,
        now: i64,
    ) -> Vec<Notification> {
        let current = self.notifiable(routes, muted, now);
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
            let now_firing = current
                .get(key)
                .map(|c| c.firing.clone())
                .unwrap_or_default();
            // A page that joins a ticket-only incident escalates at once, not after the
            // tickets' group_interval.
            let escalates = g.policy == NotifyPolicy::Incident
                && !g.paged
                && g.seq > 0
                && now_firing.iter().any(|fp| is_page(&self.alerts, fp));
            if now < g.next_flush && !escalates {
                continue;
            }
            let at = Flush {
                key,
                alerts: &self.alerts,
                now_firing: &now_firing,
                all_firing: &all_firing,
                timing,
                now,
            };
            let (said, closes) = match g.policy {
                NotifyPolicy::Incident => at.incident(g),
                NotifyPolicy::Grouped => {
                    let (n, closes) = at.grouped(g);
                    (n.into_iter().collect(), closes)
                }
            };
            out.extend(said);
            if closes {
                done.push(key.clone());
            }
        }
        for key in done {
            self.groups.remove(&key);
        }
        // Resolved alerts no group still reports can go.
        let reported: BTreeSet<&String> = self
            .groups
            .values()
            .flat_map(|g| g.notified.iter().chain(&g.carried))
            .collect();
        self.alerts
            .retain(|fp, a| a.resolved_at.is_none() || reported.contains(fp));
        out
    }

    /// Group key → what it may notify: the firing alerts not muted and not inhibited. A pending
    /// alert (its condition holds, its hold not yet over) inhibits too: a mesh split whose last
    /// link went down a scrape after the first holds back that link's ticket, whose own hold
    /// ends first. An alert that stopped at `now` still inhibits in this evaluation, so what it
    /// held back never notifies in the evaluation that ends it.
    fn notifiable(
        &self,
        routes: &Routes,
        muted: &dyn Fn(&Labels) -> bool,
        now: i64,
    ) -> BTreeMap<String, Current> {
        let inhibitors: Vec<&Labels> = self
            .alerts
            .values()
            .filter(|a| {
                a.resolved_at.is_none() || (a.fired_at.is_some() && a.resolved_at == Some(now))
            })
            .map(|a| &a.labels)
            .collect();
        let mut current: BTreeMap<String, Current> = BTreeMap::new();
        for a in self.alerts.values().filter(|a| a.firing()) {
            if muted(&a.labels) || inhibited(&a.labels, &inhibitors) {
                continue;
            }
            let cell = a.labels.get("cell").cloned().unwrap_or_default();
            for r in matching(routes, &a.labels) {
                let key = format!("{}:{{cell=\"{cell}\"}}", r.receiver);
                current
                    .entry(key)
                    .or_insert_with(|| Current {
                        receiver: r.receiver.clone(),
                        cell: cell.clone(),
                        firing: BTreeSet::new(),
                        policy: r.notify,
                        update_interval: r.update_interval,
                    })
                    .firing
                    .insert(a.fingerprint.clone());
            }
        }
        current
    }

    /// A group for each new group key, first flushed after `group_wait`.
    fn open_groups(&mut self, current: &BTreeMap<String, Current>, timing: &Timing, now: i64) {
        for (key, c) in current {
            self.groups.entry(key.clone()).or_insert_with(|| Group {
                receiver: c.receiver.clone(),
                cell: c.cell.clone(),
                next_flush: now + timing.group_wait,
                last_sent: None,
                notified: BTreeSet::new(),
                created: now,
                seq: 0,
                incident: None,
                policy: c.policy,
                update_interval: c.update_interval,
                paged: false,
                quiet_since: None,
                carried: BTreeSet::new(),
            });
        }
    }
}

/// One group's flush at `now`: what it says (if anything) and whether it closes.
struct Flush<'a> {
    key: &'a str,
    alerts: &'a BTreeMap<String, Alert>,
    /// The group's firing alerts that may notify now.
    now_firing: &'a BTreeSet<String>,
    /// Every firing alert (muted and inhibited ones too).
    all_firing: &'a BTreeSet<&'a String>,
    timing: &'a Timing,
    now: i64,
}

impl Flush<'_> {
    /// The `incident` policy (see [`State::dispatch`]).
    fn incident(&self, g: &mut Group) -> (Vec<Notification>, bool) {
        if !g.paged {
            if !self.now_firing.iter().any(|fp| is_page(self.alerts, fp)) {
                // Ticket-only so far: Alertmanager's grouping.
                let (n, closes) = self.grouped(g);
                return (n.into_iter().collect(), closes);
            }
            // The incident opens with a page, or a ticket-only one escalates: a new page, with
            // a new incident key (a pager deduplicates on it). The ticket incident it grew
            // from is closed first (`superseded`), its tickets carried into the page's.
            let mut out = Vec::new();
            let reason = if g.seq == 0 {
                "new_alerts"
            } else {
                "escalated"
            };
            if g.incident.is_some() {
                let told = g.notified.clone();
                out.push(self.say(g, "superseded", &told));
                g.carried.extend(told);
            }
            g.incident = None;
            g.paged = true;
            g.carried.extend(self.now_firing.iter().cloned());
            out.push(self.say(g, reason, &BTreeSet::new()));
            // From now on the incident is looked at every evaluation.
            g.next_flush = self.now;
            return (out, false);
        }
        g.next_flush = self.now;
        g.carried.extend(self.now_firing.iter().cloned());
        // Alerts that still fire but are muted or inhibited keep the incident open.
        let still = g.carried.iter().any(|fp| self.all_firing.contains(fp));
        if self.now_firing.is_empty() && !still {
            let since = *g.quiet_since.get_or_insert(self.now);
            if self.now - since < self.timing.resolve_wait {
                return (Vec::new(), false);
            }
            let all = g.carried.clone();
            let said = self.say(g, "all_resolved", &all);
            return (vec![said], true);
        }
        g.quiet_since = None;
        let changed = *self.now_firing != g.notified;
        let due = g
            .last_sent
            .is_some_and(|t| self.now - t >= g.update_interval);
        if g.update_interval > 0 && changed && due {
            let resolved: BTreeSet<String> = g
                .notified
                .difference(self.now_firing)
                .filter(|fp| !self.all_firing.contains(fp))
                .cloned()
                .collect();
            let said = self.say(g, "update", &resolved);
            return (vec![said], false);
        }
        (Vec::new(), false)
    }

    /// Alertmanager's grouping (see [`State::dispatch`]).
    fn grouped(&self, g: &mut Group) -> (Option<Notification>, bool) {
        // Notified alerts that still fire but are muted or inhibited now are not resolved:
        // they stay in the group, unsaid, until they resolve.
        let (still, resolved): (BTreeSet<String>, BTreeSet<String>) = g
            .notified
            .iter()
            .cloned()
            .partition(|fp| self.all_firing.contains(fp));
        let next: BTreeSet<String> = self.now_firing.union(&still).cloned().collect();
        let added = !self.now_firing.is_subset(&g.notified);
        let reason = if self.now_firing.is_empty() && still.is_empty() {
            if resolved.is_empty() {
                // Flapped within group_wait, or muted throughout: nothing was ever said.
                return (None, true);
            }
            "all_resolved"
        } else if added {
            "new_alerts"
        } else if !resolved.is_empty() {
            "some_resolved"
        } else if !self.now_firing.is_empty()
            && g.last_sent
                .is_some_and(|t| self.now - t >= self.timing.repeat_interval)
        {
            "repeat"
        } else {
            g.notified = next;
            return (None, false);
        };
        let said = self.say(g, reason, &resolved);
        let all_resolved = reason == "all_resolved";
        if !all_resolved {
            g.notified = next;
        }
        (Some(said), all_resolved)
    }

    /// The notification of `reason`, with the firing alerts and `resolved` (`all_resolved` and
    /// `superseded` resolve their incident and carry only `resolved`); moves the group's
    /// sequence, incident key and (unless it resolves) last_sent, notified and next flush.
    fn say(&self, g: &mut Group, reason: &str, resolved: &BTreeSet<String>) -> Notification {
        g.seq += 1;
        let nkey = format!("{}@{}/{}", self.key, g.created, g.seq);
        let incident = g.incident.get_or_insert_with(|| nkey.clone()).clone();
        // A resolve, or a ticket incident closed into the page incident it became: the group's
        // state moves on with the notification that follows, or ends.
        let all_resolved = matches!(reason, "all_resolved" | "superseded");
        let firing: &BTreeSet<String> = if all_resolved {
            &BTreeSet::new()
        } else {
            self.now_firing
        };
        let alerts = notified(self.alerts, firing, resolved, self.now);
        let pages = !all_resolved
            && reason != "update"
            && alerts.iter().any(|a| {
                a.status == "firing" && a.labels.get("severity").map(String::as_str) == Some("page")
            });
        if !all_resolved {
            g.last_sent = Some(self.now);
            g.notified = self.now_firing.clone();
            g.next_flush = self.now + self.timing.group_interval;
        }
        Notification {
            key: nkey,
            group_key: self.key.to_string(),
            incident,
            receiver: g.receiver.clone(),
            cell: g.cell.clone(),
            status: if all_resolved { "resolved" } else { "firing" }.into(),
            reason: reason.into(),
            pages,
            at: self.now,
            alerts,
        }
    }
}

/// Whether the alert `fp` is a page.
fn is_page(alerts: &BTreeMap<String, Alert>, fp: &String) -> bool {
    alerts
        .get(fp)
        .is_some_and(|a| a.labels.get("severity").map(String::as_str) == Some("page"))
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
