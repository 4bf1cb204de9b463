//! The API: alerts, SLOs, cells. Every answer is a typed value, so the OpenAPI document
//! ([`super::openapi`]) describes exactly what is served.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use schemars::JsonSchema;
use serde::Serialize;

use crate::eval::{CellReport, SloReport};
use crate::health::{CellHealth, DrainReason, LinkState, LinkStatus, RestartLoop};
use crate::web::{ApiErrorBody, AppState};

/// `GET /api/v1/alerts`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Alerts {
    /// Pending, firing, and resolved but not yet notified as such.
    pub alerts: Vec<AlertView>,
}

/// One alert.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AlertView {
    /// Its identity (`alertname`, `cell`, `slo`, `severity`…).
    pub labels: BTreeMap<String, String>,
    /// Latest annotations (`summary`, `description`, `runbook_url`…).
    pub annotations: BTreeMap<String, String>,
    /// A hash of the labels.
    pub fingerprint: String,
    /// Where it stands.
    pub state: AlertState,
    /// When its condition began to hold (Unix seconds).
    pub active_since: i64,
    /// When it fired (Unix seconds; null while pending).
    pub fired_at: Option<i64>,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AlertState {
    /// Its condition holds, not yet for its `for` duration.
    Pending,
    /// Fired and not resolved.
    Firing,
    /// Resolved; kept until the resolution is notified.
    Resolved,
}

/// `GET /api/v1/slos`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Slos {
    /// The evaluation's time (Unix seconds; 0 before the first).
    pub at: i64,
    /// Every SLO of every cell.
    pub slos: Vec<SloReport>,
}

/// `GET /api/v1/cells`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Cells {
    /// The evaluation's time (Unix seconds; 0 before the first).
    pub at: i64,
    /// Every cell.
    pub cells: Vec<CellReport>,
}

/// `GET /api/v1/cells/{cell}/health`: the drain decision of one cell.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CellHealthView {
    /// The cell.
    pub cell: String,
    /// `take_traffic` (HTTP 200) or `drain` (HTTP 503).
    pub status: Routing,
    /// The evaluation's time (Unix seconds; 0 before the first).
    pub at: i64,
    /// Why it should be drained (empty when it takes traffic).
    pub reasons: Vec<DrainReason>,
    /// Whole-cell power now, watts.
    pub power_watts: Option<f64>,
    /// The cell's power cap, watts.
    pub power_cap_watts: Option<f64>,
    /// Cap minus power now, watts (negative: over the cap).
    pub power_headroom_watts: Option<f64>,
    /// Every expected link is healthy (null without a topology, or while a link's state is
    /// unknown).
    pub links_healthy: Option<bool>,
    /// What is wrong without draining the cell: links that are not up.
    pub unhealthy_links: Vec<LinkStatus>,
    /// What is wrong without draining the cell: servers and collectors in a restart loop.
    pub restart_loops: Vec<RestartLoop>,
}

impl CellHealthView {
    /// The answer for `cell`, drained when there are `reasons`, from its `health` at `at`.
    fn new(cell: String, reasons: Vec<DrainReason>, at: i64, health: &CellHealth) -> Self {
        CellHealthView {
            cell,
            status: if reasons.is_empty() {
                Routing::TakeTraffic
            } else {
                Routing::Drain
            },
            at,
            reasons,
            power_watts: health.power_watts,
            power_cap_watts: health.power_cap_watts,
            power_headroom_watts: health.power_headroom_watts,
            links_healthy: health.links_healthy,
            unhealthy_links: health
                .links
                .iter()
                .filter(|l| !matches!(l.state, LinkState::Up | LinkState::Unknown))
                .cloned()
                .collect(),
            restart_loops: health.restart_loops.clone(),
        }
    }
}

/// A load balancer's instruction.
#[derive(Debug, Clone, Copy, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Routing {
    /// Send traffic.
    TakeTraffic,
    /// Send none.
    Drain,
}

pub(crate) async fn api_alerts(State(s): State<AppState>) -> axum::Json<Alerts> {
    let a = s.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let alerts = a
        .alerts
        .into_values()
        .map(|x| AlertView {
            state: if x.firing() {
                AlertState::Firing
            } else if x.resolved_at.is_some() {
                AlertState::Resolved
            } else {
                AlertState::Pending
            },
            labels: x.labels,
            annotations: x.annotations,
            fingerprint: x.fingerprint,
            active_since: x.active_since,
            fired_at: x.fired_at,
        })
        .collect();
    axum::Json(Alerts { alerts })
}

pub(crate) async fn api_slos(State(s): State<AppState>) -> axum::Json<Slos> {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    axum::Json(Slos {
        at: r.at,
        slos: r.slos,
    })
}

pub(crate) async fn api_cells(State(s): State<AppState>) -> axum::Json<Cells> {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    axum::Json(Cells {
        at: r.at,
        cells: r.cells,
    })
}

/// `GET /api/v1/cells/{cell}/health`: 200 when the cell should take traffic, 503 with the
/// reasons when it should be drained (and before the first evaluation), 404 for a cell the
/// configuration does not have. For load balancers' health checks (HAProxy `httpchk`, Envoy,
/// nginx, Traefik).
pub(crate) async fn api_cell_health(
    State(s): State<AppState>,
    axum::extract::Path(cell): axum::extract::Path<String>,
) -> axum::response::Response {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    let Some(c) = r.cells.iter().find(|c| c.cell == cell) else {
        if r.at == 0 {
            let reasons = vec![DrainReason {
                reason: "not_evaluated",
                detail: "the engine has not evaluated yet".into(),
            }];
            let body = CellHealthView::new(cell, reasons, r.at, &CellHealth::default());
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        }
        let error = format!("no cell {cell:?} in the configuration");
        return (StatusCode::NOT_FOUND, axum::Json(ApiErrorBody { error })).into_response();
    };
    let body = CellHealthView::new(c.cell.clone(), c.drain.clone(), r.at, &c.health);
    let code = match body.status {
        Routing::TakeTraffic => StatusCode::OK,
        Routing::Drain => StatusCode::SERVICE_UNAVAILABLE,
    };
    (code, axum::Json(body)).into_response()
}
