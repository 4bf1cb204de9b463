//! The `Report` of an evaluation: windows, SLOs, cells.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::math::WindowState;

/// One window of one SLO, for the API.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct WindowReport {
    /// `5m` … `3d`, or `period`.
    pub window: String,
    /// `ok`, `no_data` or `too_thin`.
    #[schemars(extend("enum" = ["ok", "no_data", "too_thin"]))]
    pub state: &'static str,
    /// Good / total, when there is data.
    pub sli: Option<f64>,
    /// Burn rate, when judged.
    pub burn_rate: Option<f64>,
    /// Units (events or judged slices) in the window.
    pub total: f64,
}

/// One SLO of one cell, for the API.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct SloReport {
    /// Cell.
    pub cell: String,
    /// SLO.
    pub slo: String,
    /// Objective.
    pub objective: f64,
    /// Budget left in the period (None without data).
    pub budget_remaining: Option<f64>,
    /// No data in the last 5 minutes.
    pub data_missing: bool,
    /// Windows, shortest first, then the period.
    pub windows: Vec<WindowReport>,
}

/// A cell's efficiency and routing signal, for the API.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct CellReport {
    /// Cell.
    pub cell: String,
    /// Tokens per kWh by window.
    pub tokens_per_kwh: BTreeMap<String, Option<f64>>,
    /// kWh per 1,000 requests by window.
    pub kwh_per_1k_requests: BTreeMap<String, Option<f64>>,
    /// The smallest budget left over the cell's SLOs (None without data).
    pub budget_headroom: Option<f64>,
    /// No SLO of the cell burns at the page rate (14.4× over 1h) and the cell has data: a gateway
    /// may route "fast-enough" calls here, preferring the highest tokens/kWh.
    pub healthy: bool,
    /// Power, links, latency and restart loops now.
    pub health: crate::health::CellHealth,
    /// The cell should take traffic: no drain reason (`GET /api/v1/cells/{cell}/health`).
    pub take_traffic: bool,
    /// Why it should be drained, when it should.
    pub drain: Vec<crate::health::DrainReason>,
}

/// The last evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Evaluation time (Unix seconds).
    pub at: i64,
    /// Every SLO of every cell.
    pub slos: Vec<SloReport>,
    /// Every cell.
    pub cells: Vec<CellReport>,
}

pub(super) fn window_report(name: &str, state: WindowState) -> WindowReport {
    match state {
        WindowState::NoData => WindowReport {
            window: name.into(),
            state: "no_data",
            sli: None,
            burn_rate: None,
            total: 0.0,
        },
        WindowState::TooThin { sli, total } => WindowReport {
            window: name.into(),
            state: "too_thin",
            sli: Some(sli),
            burn_rate: None,
            total,
        },
        WindowState::Judged { sli, burn_rate } => WindowReport {
            window: name.into(),
            state: "ok",
            sli: Some(sli),
            burn_rate: Some(burn_rate),
            total: 0.0,
        },
    }
}
