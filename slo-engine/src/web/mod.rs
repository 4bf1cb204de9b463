//! The HTTP outputs: the API (`/api/v1/…`: alerts, SLOs, cells, silences), `/metrics` and the
//! status page.
use crate::eval::Report;
use crate::util::time::Clock;

mod api;
mod metrics;
mod silences;
pub mod status;

pub(crate) use api::*;
pub(crate) use metrics::*;
pub(crate) use silences::*;

use crate::alerting;
use crate::ledger::Ledger;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) last: Arc<Mutex<(Report, String)>>,
    pub(crate) alerts: Arc<Mutex<alerting::State>>,
    pub(crate) silences: SilenceStore,
    pub(crate) ledger: Ledger,
    pub(crate) clock: Clock,
    pub(crate) token: Option<crate::config::TokenSource>,
    pub(crate) limits: Limits,
}

/// The engine's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most silences active or pending at once (`--silences.max-active`): a POST beyond it is
    /// refused.
    pub max_silences: usize,
    /// The listener's bounds (`--web.read-header-timeout`, `--web.read-timeout`,
    /// `--web.max-connections`).
    pub web: cellwatch_http::web::Limits,
}

/// The default bound on active and pending silences.
pub const DEFAULT_MAX_SILENCES: usize = 1000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_silences: DEFAULT_MAX_SILENCES,
            web: Default::default(),
        }
    }
}

type ApiError = (axum::http::StatusCode, axum::Json<serde_json::Value>);

fn api_error(code: axum::http::StatusCode, message: impl Into<String>) -> ApiError {
    (
        code,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
}
