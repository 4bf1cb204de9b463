//! What a backtest found: every alert episode, every notification, the incidents they made,
//! and each SLO's budget and burn over time. Plain data (serialised as the JSON output); the
//! table and HTML renderings read only this.

use serde::Serialize;

use crate::model::Labels;

/// One replay of a history through one configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Backtest {
    /// The configuration file replayed (as given on the command line).
    pub config: String,
    /// Where the history came from: a Prometheus URL (without credentials), OpenMetrics file
    /// names, or `scenario NAME`.
    pub history: String,
    /// The ledger the replay wrote: `sqlite` or `postgres`.
    pub ledger: String,
    /// Replayed range, Unix seconds: `[from, to)`.
    pub from: i64,
    /// End of the replayed range.
    pub to: i64,
    /// Seconds between evaluations (the source's interval).
    pub interval: i64,
    /// When the incident of a scenario began (None for a recorded history): detection times
    /// count from it.
    pub onset: Option<i64>,
    /// When the incident of a scenario ended (None: recorded history, or it never ends).
    pub recovery: Option<i64>,
    /// Every alert episode (pending alerts that never fired are left out), by time.
    pub alerts: Vec<Episode>,
    /// Every notification the routes would have sent, by time.
    pub notifications: Vec<Sent>,
    /// The incidents: one per receiver and cell from its first notification to its resolve.
    pub incidents: Vec<Incident>,
    /// Budget and burn over time, one series per cell and SLO.
    pub series: Vec<SloSeries>,
    /// Evaluations run.
    pub evaluations: u64,
    /// Wall-clock seconds the replay took (not part of any comparison).
    pub replay_seconds: f64,
}

/// One alert from the moment its condition held to its resolve.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Episode {
    /// `alertname`.
    pub alertname: String,
    /// `cell`.
    pub cell: String,
    /// `slo` (empty for a cell alert).
    pub slo: String,
    /// `severity`: `page` or `ticket`.
    pub severity: String,
    /// Every label.
    pub labels: Labels,
    /// When its condition began to hold (Unix seconds).
    pub active_since: i64,
    /// When it fired.
    pub fired_at: i64,
    /// When it resolved (None: still firing at the end of the range).
    pub resolved_at: Option<i64>,
    /// `fired_at − onset` when the history has an onset.
    pub detection_seconds: Option<i64>,
    /// `resolved_at − recovery` when the history has a recovery.
    pub reset_seconds: Option<i64>,
    /// Whether any notification carried it firing (false: muted, inhibited or unrouted).
    pub notified: bool,
}

/// One notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sent {
    /// When (Unix seconds).
    pub at: i64,
    /// Receiver.
    pub receiver: String,
    /// Cell.
    pub cell: String,
    /// `firing` or `resolved`.
    pub status: String,
    /// Why (`new_alerts`, `escalated`, `update`, `repeat`, `some_resolved`, `all_resolved`).
    pub reason: String,
    /// The incident's key.
    pub incident: String,
    /// Whether it pages (a firing notification that opens or escalates an incident with a
    /// `severity="page"` alert).
    pub page: bool,
    /// Its alerts, as `alertname{slo,severity} status`.
    pub alerts: Vec<String>,
}

/// One incident of one receiver and cell.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Incident {
    /// The incident's key.
    pub key: String,
    /// Receiver.
    pub receiver: String,
    /// Cell.
    pub cell: String,
    /// Its first notification.
    pub opened_at: i64,
    /// Its resolve notification (None: still open at the end of the range).
    pub resolved_at: Option<i64>,
    /// Notifications sent for it, the resolve included.
    pub notifications: u64,
    /// Of which pages.
    pub pages: u64,
    /// Every alert it carried, as `alertname{slo,severity}`.
    pub alerts: Vec<String>,
}

/// One cell and SLO over the range.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SloSeries {
    /// Cell.
    pub cell: String,
    /// SLO.
    pub slo: String,
    /// Objective.
    pub objective: f64,
    /// The burn-rate thresholds of its alert tiers, drawn on the plot.
    pub thresholds: Vec<Threshold>,
    /// Points, oldest first (at most one every `step` seconds, and at every alert change).
    pub points: Vec<Point>,
}

/// One burn-rate tier's threshold.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Threshold {
    /// The tier, e.g. `page 1h`.
    pub label: String,
    /// The burn rate at which it fires (14.4 for the Workbook's 1 h page).
    pub factor: f64,
}

/// An SLO of a cell at one evaluation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Point {
    /// Evaluation time (Unix seconds).
    pub at: i64,
    /// Budget left (1 untouched, 0 spent); None without data.
    pub budget_remaining: Option<f64>,
    /// Burn rate over 1 h (None: no data or too few events).
    pub burn_1h: Option<f64>,
    /// Burn rate over 6 h.
    pub burn_6h: Option<f64>,
    /// Burn rate over 3 d.
    pub burn_3d: Option<f64>,
}
