//! The API: alerts, SLOs, cells.

use axum::extract::State;
use axum::response::IntoResponse;

use crate::web::AppState;

pub(crate) async fn api_alerts(State(s): State<AppState>) -> impl IntoResponse {
    let a = s.alerts.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let alerts: Vec<serde_json::Value> = a
        .alerts
        .values()
        .map(|x| {
            serde_json::json!({
                "labels": x.labels,
                "annotations": x.annotations,
                "fingerprint": x.fingerprint,
                "state": if x.firing() { "firing" } else if x.resolved_at.is_some() { "resolved" } else { "pending" },
                "active_since": x.active_since,
                "fired_at": x.fired_at,
            })
        })
        .collect();
    axum::Json(serde_json::json!({ "alerts": alerts }))
}

pub(crate) async fn api_slos(State(s): State<AppState>) -> impl IntoResponse {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    axum::Json(serde_json::json!({ "at": r.at, "slos": r.slos }))
}

pub(crate) async fn api_cells(State(s): State<AppState>) -> impl IntoResponse {
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    axum::Json(serde_json::json!({ "at": r.at, "cells": r.cells }))
}

/// `GET /api/v1/cells/{cell}/health`: 200 when the cell should take traffic, 503 with the
/// reasons when it should be drained (and before the first evaluation), 404 for a cell the
/// configuration does not have. For load balancers' health checks (HAProxy `httpchk`, Envoy,
/// nginx, Traefik).
pub(crate) async fn api_cell_health(
    State(s): State<AppState>,
    axum::extract::Path(cell): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    let r = s.last.lock().unwrap_or_else(|e| e.into_inner()).0.clone();
    let Some(c) = r.cells.iter().find(|c| c.cell == cell) else {
        if r.at == 0 {
            let body = serde_json::json!({
                "cell": cell, "status": "drain", "at": r.at,
                "reasons": [{ "reason": "not_evaluated", "detail": "the engine has not evaluated yet" }],
            });
            return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response();
        }
        let msg = format!("no cell {cell:?} in the configuration");
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({ "error": msg })),
        )
            .into_response();
    };
    let code = if c.take_traffic {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "cell": c.cell,
        "status": if c.take_traffic { "take_traffic" } else { "drain" },
        "at": r.at,
        "reasons": c.drain,
        "power_watts": c.health.power_watts,
        "power_cap_watts": c.health.power_cap_watts,
        "power_headroom_watts": c.health.power_headroom_watts,
        "links_healthy": c.health.links_healthy,
        // What is wrong without draining the cell: links not up, restart loops.
        "unhealthy_links": c.health.links.iter()
            .filter(|l| !matches!(l.state, crate::health::LinkState::Up | crate::health::LinkState::Unknown))
            .collect::<Vec<_>>(),
        "restart_loops": c.health.restart_loops,
    });
    (code, axum::Json(body)).into_response()
}
