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
