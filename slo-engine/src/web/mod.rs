//! The HTTP outputs: the API (`/api/v1/…`: alerts, SLOs, cells, silences, and its OpenAPI
//! document), `/metrics` and the status page, behind one [`router`].

mod api;
mod metrics;
pub(crate) mod openapi;
mod silences;
pub mod status;

use api::*;
use metrics::*;
use silences::*;

pub use silences::checked_silence;
use status::status_page;

use crate::alerting;
use crate::eval::Report;
use crate::ledger::Ledger;
use crate::util::time::Clock;
use axum::Router;
use axum::routing::{MethodRouter, delete, get};
use std::sync::{Arc, Mutex};

/// What the handlers read: the last evaluation and its `/metrics` text, the alerts, the
/// silences; the ledger and clock for silence writes, the API token, the limits; the SLO
/// histories the status page draws (read from the ledger once per evaluation).
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) last: Arc<Mutex<(Report, String)>>,
    pub(crate) alerts: Arc<Mutex<alerting::State>>,
    pub(crate) silences: SilenceStore,
    pub(crate) ledger: Ledger,
    pub(crate) clock: Clock,
    pub(crate) token: Option<crate::config::TokenSource>,
    pub(crate) limits: Limits,
    pub(crate) history: status::HistoryCache,
}

impl AppState {
    /// Nothing evaluated yet, no alerts, no silences (read at the first tick).
    pub(crate) fn new(
        ledger: Ledger,
        clock: Clock,
        token: Option<crate::config::TokenSource>,
        limits: Limits,
    ) -> AppState {
        AppState {
            last: Arc::new(Mutex::new((Report::default(), String::new()))),
            alerts: Arc::new(Mutex::new(alerting::State::default())),
            ledger,
            clock,
            token,
            silences: SilenceStore::default(),
            limits,
            history: Default::default(),
        }
    }

    /// The SLOs whose budget and burn the status page plots (their periods and budgeting).
    pub(crate) fn with_slos(self, slos: &[crate::config::Slo]) -> AppState {
        self.history.set_slos(slos);
        self
    }

    /// Serves an evaluation: its report on the API and the status page, `text` on `/metrics`.
    pub(crate) fn publish(&self, report: Report, text: String) {
        *self.last.lock().unwrap_or_else(|e| e.into_inner()) = (report, text);
    }

    /// Serves the alert state on the API and the status page.
    pub(crate) fn set_alerts(&self, alerts: alerting::State) {
        *self.alerts.lock().unwrap_or_else(|e| e.into_inner()) = alerts;
    }
}

/// Every route: the status page, `/metrics`, the API and the health check.
pub(crate) fn router(state: AppState) -> Router {
    let mut router = Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "Healthy\n" }));
    for (path, methods) in api_routes() {
        router = router.route(path, methods);
    }
    router.with_state(state)
}

/// The API's routes, each described in the OpenAPI document ([`openapi`]).
fn api_routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/api/v1/alerts", get(api_alerts)),
        ("/api/v1/slos", get(api_slos)),
        ("/api/v1/cells", get(api_cells)),
        ("/api/v1/cells/{cell}/health", get(api_cell_health)),
        ("/api/v1/silences", get(list_silences).post(post_silence)),
        ("/api/v1/silences/{id}", delete(expire_silence)),
        ("/api/v1/openapi.json", get(openapi::serve)),
    ]
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

/// An API error's body.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct ApiErrorBody {
    /// What went wrong, for people.
    pub error: String,
}

type ApiError = (axum::http::StatusCode, axum::Json<ApiErrorBody>);

fn api_error(code: axum::http::StatusCode, message: impl Into<String>) -> ApiError {
    (
        code,
        axum::Json(ApiErrorBody {
            error: message.into(),
        }),
    )
}
