//! The engine's `/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use crate::web::AppState;

pub(crate) async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let text = s.last.lock().unwrap_or_else(|e| e.into_inner()).1.clone();
    (
        [(
            header::CONTENT_TYPE,
            cellwatch_http::exposition::TEXT_FORMAT,
        )],
        text,
    )
}
