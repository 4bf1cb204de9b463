//! Each SLO's budget left and burn rate, hour by hour over its period, with the alerts sent for
//! it: computed from the ledger's hourly rollup once per evaluation and kept for the page.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::config::{Budgeting, MinEvents, Period, Slo};
use crate::ledger::{HourRow, Ledger, LedgerError};
use crate::math::{Tally, WindowState, budget_from_tally, period_bounds, window_state};

/// One hour of an SLO's period, as drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HourPoint {
    /// The end of the hour (or the evaluation time, for the hour in progress), Unix seconds.
    pub at: i64,
    /// Budget left at its end, over the period so far (None before the first data).
    pub budget: Option<f64>,
    /// The hour's burn rate (None: no data in the hour).
    pub burn: Option<f64>,
}

/// A notification sent for an SLO (or for its whole cell): an alert marker.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark {
    /// When it was queued (Unix seconds).
    pub at: i64,
    /// It carried a firing page (red); otherwise a ticket (orange).
    pub page: bool,
    /// The alerts it carried, for the tooltip.
    pub alerts: String,
}

/// One SLO of one cell over its period.
#[derive(Debug, Clone, PartialEq)]
pub struct SloHistory {
    /// The period's first hour (Unix seconds).
    pub from: i64,
    /// The plot's right edge: the evaluation, or a calendar month's end.
    pub to: i64,
    /// Every hour from `from` to the evaluation.
    pub points: Vec<HourPoint>,
    /// Alert markers, oldest first.
    pub marks: Vec<Mark>,
}

/// The histories of one evaluation, by (cell, SLO).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// The evaluation they were computed for (the report's `at`).
    pub at: i64,
    /// By cell, then SLO.
    pub slos: HashMap<(String, String), SloHistory>,
}

/// Where an SLO's plot starts and ends at `at`: the period's first whole hour (as the evaluation
/// sums it) and, for a calendar month, its end.
pub fn span(slo: &Slo, at: i64) -> (i64, i64) {
    let (start, end) = period_bounds(&slo.period, at);
    let hour = start - start.rem_euclid(3600);
    match slo.period {
        Period::CalendarMonth(_) if hour != start => (hour + 3600, end.max(at)),
        Period::CalendarMonth(_) => (hour, end.max(at)),
        Period::Rolling(_) => (hour, at),
    }
}

/// The hours of one SLO of one cell from `from` to `at`: the budget left over the period so far
/// (as [`budget_from_tally`]) and each hour's burn rate (as a window of an hour, judged
/// whatever `min_events` says); `rows` oldest first.
pub fn points(slo: &Slo, rows: &[HourRow], from: i64, at: i64) -> Vec<HourPoint> {
    let any = Slo {
        min_events: MinEvents::Fixed(0),
        ..slo.clone()
    };
    let mut rows = rows.iter().peekable();
    let mut so_far = Tally::default();
    let mut out = Vec::new();
    let mut h = from;
    while h < at {
        while rows.next_if(|r| r.start < h).is_some() {}
        let mut hour = Tally::default();
        while let Some(r) = rows.next_if(|r| r.start == h) {
            hour.good += r.good;
            hour.total += r.total;
        }
        so_far.good += hour.good;
        so_far.total += hour.total;
        let burn = match window_state(&any, hour, 3600) {
            WindowState::Judged { burn_rate, .. } => Some(burn_rate),
            _ => None,
        };
        out.push(HourPoint {
            at: (h + 3600).min(at),
            budget: budget_from_tally(slo, so_far, at),
            burn,
        });
        h += 3600;
    }
    out
}

/// The alert markers of every cell and SLO from the notifications' payloads: each firing
/// notification marks the SLOs of its firing alerts (an alert without an SLO, e.g. a cell
/// down, marks every SLO of its cell: `""`), red when one of them pages. A payload that does
/// not read as a notification is skipped.
pub fn marks(notifications: &[(i64, String)]) -> BTreeMap<(String, String), Vec<Mark>> {
    let mut out: BTreeMap<(String, String), Vec<Mark>> = BTreeMap::new();
    for (at, payload) in notifications {
        let Ok(n) = serde_json::from_str::<crate::alerting::Notification>(payload) else {
            continue;
        };
        if n.status != "firing" {
            continue;
        }
        let mut by_slo: BTreeMap<String, (bool, Vec<String>)> = BTreeMap::new();
        for a in n.alerts.iter().filter(|a| a.status == "firing") {
            let get = |k: &str| a.labels.get(k).cloned().unwrap_or_default();
            let e = by_slo.entry(get("slo")).or_default();
            e.0 |= get("severity") == "page";
            e.1.push(format!("{} ({})", get("alertname"), get("severity")));
        }
        for (slo, (page, alerts)) in by_slo {
            out.entry((n.cell.clone(), slo)).or_default().push(Mark {
                at: *at,
                page,
                alerts: alerts.join(", "),
            });
        }
    }
    for v in out.values_mut() {
        v.sort();
        v.dedup_by(|a, b| a.at == b.at && a.page == b.page);
    }
    out
}

/// The markers of one SLO of a cell: its own and its cell's.
fn marks_of(all: &BTreeMap<(String, String), Vec<Mark>>, cell: &str, slo: &str) -> Vec<Mark> {
    let key = |s: &str| (cell.to_string(), s.to_string());
    let mut v: Vec<Mark> = [key(slo), key("")]
        .iter()
        .filter_map(|k| all.get(k))
        .flatten()
        .cloned()
        .collect();
    v.sort();
    v
}

/// Computes the histories of every (cell, SLO) of `pairs` at `at`: one query per SLO, one for
/// the notifications.
pub async fn compute(
    ledger: &Ledger,
    slos: &[Slo],
    pairs: &[(String, String)],
    at: i64,
) -> Result<History, LedgerError> {
    let mut out = History {
        at,
        slos: HashMap::new(),
    };
    let mut earliest = at;
    for slo in slos {
        let cells: Vec<&String> = pairs
            .iter()
            .filter(|(_, s)| *s == slo.name)
            .map(|(c, _)| c)
            .collect();
        if cells.is_empty() {
            continue;
        }
        let (from, to) = span(slo, at);
        earliest = earliest.min(from);
        let judged = matches!(slo.budgeting, Budgeting::Timeslices { .. });
        let rows = ledger.hourly_history(&slo.name, judged, from, at).await?;
        for cell in cells {
            let r = rows.get(cell).map_or(&[][..], Vec::as_slice);
            let h = SloHistory {
                from,
                to,
                points: points(slo, r, from, at),
                marks: Vec::new(),
            };
            out.slos.insert((cell.clone(), slo.name.clone()), h);
        }
    }
    let all = marks(&ledger.notifications_between(earliest, at + 1).await?);
    for ((cell, slo), h) in out.slos.iter_mut() {
        h.marks = marks_of(&all, cell, slo)
            .into_iter()
            .filter(|m| m.at >= h.from)
            .collect();
    }
    Ok(out)
}

/// The histories of the last evaluation, computed at most once per evaluation: the first page
/// view after it computes them (others wait for it), later ones reuse them.
#[derive(Clone, Default)]
pub struct HistoryCache {
    slos: Arc<RwLock<Arc<[Slo]>>>,
    held: Arc<tokio::sync::Mutex<Option<Arc<History>>>>,
}

impl HistoryCache {
    /// The SLOs whose histories are drawn (none: no plots).
    pub fn set_slos(&self, slos: &[Slo]) {
        *self.slos.write().unwrap_or_else(|e| e.into_inner()) = slos.into();
    }

    /// The histories for the report of `at` holding `pairs` (cell, SLO); None before the first
    /// evaluation, without SLOs, or when the ledger fails (logged; tried again next view).
    pub async fn get(
        &self,
        ledger: &Ledger,
        pairs: &[(String, String)],
        at: i64,
    ) -> Option<Arc<History>> {
        let slos = self.slos.read().unwrap_or_else(|e| e.into_inner()).clone();
        if at <= 0 || slos.is_empty() {
            return None;
        }
        let mut held = self.held.lock().await;
        if let Some(h) = held.as_ref().filter(|h| h.at == at) {
            return Some(h.clone());
        }
        match compute(ledger, &slos, pairs, at).await {
            Ok(h) => {
                let h = Arc::new(h);
                *held = Some(h.clone());
                Some(h)
            }
            Err(e) => {
                tracing::error!(error = %e, "the status page's SLO history could not be read");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 20_000 * 86_400;

    fn slos() -> Vec<Slo> {
        crate::config::parse(
            "cells: [ { name: c, nodes: [ { name: n, url: \"http://n:9817/metrics\" } ] } ]
slos:
  - { name: avail, objective: 0.99, period: 1d, sli: { availability: {} } }
  - name: tpk
    objective: 0.95
    period: 1d
    budgeting: timeslices
    slice: 5m
    sli: { tokens_per_kwh: { threshold: 1000000, min_tokens: 10 } }
",
            std::path::Path::new("t.yaml"),
        )
        .unwrap()
        .slos
    }

    fn near(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn budget_accumulates_over_the_period_and_burn_is_per_hour() {
        let slo = &slos()[0];
        let at = DAY + 5 * 3600 + 1800;
        let (from, to) = span(slo, at);
        assert_eq!((from, to), (DAY - 86_400 + 5 * 3600, at));
        let row = |h: i64, good, total| HourRow {
            start: from + h * 3600,
            good,
            total,
        };
        let p = points(
            slo,
            &[row(0, 999.0, 1000.0), row(2, 980.0, 1000.0)],
            from,
            at,
        );
        assert_eq!(p.len(), 25, "24 whole hours and the one in progress");
        assert_eq!(p[0].at, from + 3600);
        assert_eq!(p[24].at, at, "the hour in progress ends at the evaluation");
        // 1 bad of 10 allowed; burn 0.1 % / 1 %.
        assert!(near(p[0].budget, 0.9) && near(p[0].burn, 0.1), "{:?}", p[0]);
        // No data: the budget holds, the burn line breaks.
        assert!(near(p[1].budget, 0.9) && p[1].burn.is_none(), "{:?}", p[1]);
        // 21 bad of 20 allowed (2,000 events): overspent by 5 %.
        assert!(
            near(p[2].budget, -0.05) && near(p[2].burn, 2.0),
            "{:?}",
            p[2]
        );
        assert!(near(p[24].budget, -0.05) && p[24].burn.is_none());
        assert!(
            points(slo, &[], from, at)
                .iter()
                .all(|p| p.budget.is_none())
        );
    }

    #[test]
    fn time_slices_count_judged_slices_against_the_whole_period() {
        let slo = &slos()[1];
        let at = DAY + 3 * 3600;
        let (from, _) = span(slo, at);
        let rows = [HourRow {
            start: from,
            good: 10.0,
            total: 12.0,
        }];
        let p = points(slo, &rows, from, at);
        assert_eq!(p.len(), 24);
        // 2 bad slices of the 12 in the hour, at 5 % allowed.
        assert!(near(p[0].burn, 2.0 / (0.05 * 12.0)), "{:?}", p[0]);
        // The budget is 5 % of the period's 288 slices.
        assert!(near(p[0].budget, 1.0 - 2.0 / 14.4), "{:?}", p[0]);
    }

    fn payload(cell: &str, status: &str, alerts: &[(&str, &str, &str, &str)]) -> String {
        let alerts: Vec<crate::alerting::Notified> = alerts
            .iter()
            .map(|(name, slo, severity, status)| crate::alerting::Notified {
                status: status.to_string(),
                labels: [
                    ("alertname".to_string(), name.to_string()),
                    ("slo".into(), slo.to_string()),
                    ("severity".into(), severity.to_string()),
                ]
                .into_iter()
                .filter(|(_, v)| !v.is_empty())
                .collect(),
                annotations: Default::default(),
                fingerprint: name.to_string(),
                starts_at: 0,
                ends_at: None,
            })
            .collect();
        serde_json::to_string(&crate::alerting::Notification {
            key: "k".into(),
            group_key: "g".into(),
            incident: "k".into(),
            receiver: "r".into(),
            cell: cell.into(),
            status: status.into(),
            reason: "new_alerts".into(),
            pages: false,
            at: 0,
            alerts,
        })
        .unwrap()
    }

    #[test]
    fn firing_notifications_mark_their_slos_and_their_cell() {
        let n = [
            (
                100,
                payload(
                    "c",
                    "firing",
                    &[
                        ("Burn", "avail", "page", "firing"),
                        ("Burn", "tpk", "ticket", "firing"),
                        ("Old", "lat", "page", "resolved"),
                    ],
                ),
            ),
            (
                150,
                payload("c", "firing", &[("Burn", "avail", "page", "firing")]),
            ),
            (
                150,
                payload("c", "firing", &[("Burn", "avail", "page", "firing")]),
            ),
            (
                200,
                payload("c", "resolved", &[("Burn", "avail", "page", "resolved")]),
            ),
            (
                300,
                payload("c", "firing", &[("CellDown", "", "page", "firing")]),
            ),
            (
                400,
                payload("d", "firing", &[("Burn", "avail", "ticket", "firing")]),
            ),
            (500, "not json".to_string()),
        ];
        let all = marks(&n);
        let at = |v: &[Mark]| v.iter().map(|m| (m.at, m.page)).collect::<Vec<_>>();
        let avail = marks_of(&all, "c", "avail");
        assert_eq!(at(&avail), [(100, true), (150, true), (300, true)]);
        assert_eq!(avail[0].alerts, "Burn (page)");
        assert_eq!(avail[2].alerts, "CellDown (page)");
        assert_eq!(at(&marks_of(&all, "c", "tpk")), [(100, false), (300, true)]);
        assert_eq!(
            at(&marks_of(&all, "c", "lat")),
            [(300, true)],
            "resolved alerts mark nothing"
        );
        assert_eq!(at(&marks_of(&all, "d", "avail")), [(400, false)]);
    }
}
