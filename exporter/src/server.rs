//! HTTP: the metrics, a landing page and a health check.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use cellwatch_http::html::escape;

use crate::store::Store;

pub use cellwatch_http::exposition::TEXT_FORMAT;

#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    landing: Arc<String>,
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT))],
        s.store.render(),
    )
        .into_response()
}

async fn landing(State(s): State<AppState>) -> Html<String> {
    Html(s.landing.as_str().to_owned())
}

async fn healthy() -> impl IntoResponse {
    (StatusCode::OK, "Healthy\n")
}

/// The router: `GET <telemetry_path>`, `GET /`, `GET /-/healthy`.
pub fn router(store: Arc<Store>, telemetry_path: &str, collectors: &[&str]) -> Router {
    let path = escape(telemetry_path);
    let list: String = collectors
        .iter()
        .map(|c| format!("<li><code>{}</code></li>", escape(c)))
        .collect();
    let page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>cellwatch-exporter</title></head><body><h1>cellwatch-exporter {}</h1>\
         <p>Power, unified memory and Thunderbolt 5 / RDMA links of one node of an LLM inference cell.</p>\
         <ul><li><a href=\"{path}\">Metrics</a></li><li><a href=\"/-/healthy\">Health</a></li></ul>\
         <h2>Enabled collectors</h2><ul>{}</ul></body></html>\n",
        env!("CARGO_PKG_VERSION"),
        if list.is_empty() {
            "<li>none</li>".to_string()
        } else {
            list
        }
    );
    Router::new()
        .route(telemetry_path, get(metrics))
        .route("/", get(landing))
        .route("/-/healthy", get(healthy))
        .with_state(AppState {
            store,
            landing: Arc::new(page),
        })
}
