//! The API's contract: an OpenAPI 3.1 document of `/api/v1`, served at
//! `/api/v1/openapi.json` and committed as `docs/openapi.json`.
//!
//! The paths are written here, one entry per route of [`super::api_routes`] (a test checks
//! both ways). The schemas are derived by schemars from the very types the handlers serialize
//! and parse, so they cannot drift from what is served. They are JSON Schema 2020-12, the
//! dialect of OpenAPI 3.1. Response schemas follow serialization: every field is always
//! present, `null` where a value is missing. The request body's schema follows
//! deserialization: fields with defaults may be left out.

use schemars::generate::{Contract, SchemaSettings};
use serde_json::{Map, Value, json};

use super::ApiErrorBody;
use super::api::{Alerts, CellHealthView, Cells, Slos};
use super::silences::{PostableSilence, SilenceCreated, SilenceExpired, Silences};

/// The OpenAPI document.
pub(crate) fn document() -> Value {
    // Responses: shared schemas under components; the request body's schema inline (its
    // matchers' `isRegex` and `isEqual` are optional there, required in responses).
    let mut out = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
            s.contract = Contract::Serialize;
        })
        .into_generator();
    let mut input = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
            s.contract = Contract::Deserialize;
        })
        .into_generator();
    let error = out.subschema_for::<ApiErrorBody>();
    let answer = |description: &str, schema: &schemars::Schema| json!({ "description": description, "content": { "application/json": { "schema": schema } } });
    let failed = |description: &str| answer(description, &error);
    let writes = |mut responses: Map<String, Value>| {
        responses.insert(
            "401".into(),
            failed("Writes are enabled and the bearer token is missing or wrong."),
        );
        responses.insert(
            "403".into(),
            failed("Writes are disabled: no API token is configured."),
        );
        responses.insert(
            "503".into(),
            failed("The ledger cannot be written now; try again."),
        );
        Value::Object(responses)
    };
    let alerts = out.subschema_for::<Alerts>();
    let slos = out.subschema_for::<Slos>();
    let cells = out.subschema_for::<Cells>();
    let health = out.subschema_for::<CellHealthView>();
    let silences = out.subschema_for::<Silences>();
    let created = out.subschema_for::<SilenceCreated>();
    let expired = out.subschema_for::<SilenceExpired>();
    let postable = input.subschema_for::<PostableSilence>();
    let path_param = |name: &str, description: &str| {
        json!([{ "name": name, "in": "path", "required": true, "description": description,
                 "schema": { "type": "string" } }])
    };
    let mut post_responses = Map::new();
    post_responses.insert("200".into(), answer("The silence was made.", &created));
    post_responses.insert(
        "400".into(),
        failed("The silence is not valid (the message says which field), or the limit of active and pending silences is reached."),
    );
    let mut delete_responses = Map::new();
    delete_responses.insert("200".into(), answer("The silence ends now.", &expired));
    delete_responses.insert(
        "404".into(),
        failed("No active or pending silence has this id."),
    );
    let paths = json!({
        "/api/v1/alerts": { "get": {
            "operationId": "listAlerts",
            "summary": "The alerts the engine tracks: pending, firing, and resolved not yet notified.",
            "responses": { "200": answer("The alerts.", &alerts) },
        }},
        "/api/v1/slos": { "get": {
            "operationId": "listSlos",
            "summary": "Every SLO of every cell at the last evaluation: budget left and the SLI and burn rate by window.",
            "responses": { "200": answer("The SLOs.", &slos) },
        }},
        "/api/v1/cells": { "get": {
            "operationId": "listCells",
            "summary": "Every cell at the last evaluation: tokens/kWh, kWh per 1,000 requests, budget headroom, health and the drain decision.",
            "responses": { "200": answer("The cells.", &cells) },
        }},
        "/api/v1/cells/{cell}/health": { "get": {
            "operationId": "getCellHealth",
            "summary": "Whether a load balancer should send the cell traffic (for HTTP health checks).",
            "parameters": path_param("cell", "The cell's name, as in the configuration."),
            "responses": {
                "200": answer("The cell takes traffic.", &health),
                "503": answer("The cell should be drained (the reasons say why), or the engine has not evaluated yet (reason `not_evaluated`).", &health),
                "404": failed("The configuration has no such cell."),
            },
        }},
        "/api/v1/silences": {
            "get": {
                "operationId": "listSilences",
                "summary": "Every silence, newest first (Alertmanager's API v2 shape).",
                "responses": { "200": answer("The silences.", &silences) },
            },
            "post": {
                "operationId": "postSilence",
                "summary": "Makes a silence: alerts matching all its matchers are not notified between startsAt and endsAt.",
                "security": [{ "bearer": [] }],
                "requestBody": { "required": true, "content": { "application/json": { "schema": postable } } },
                "responses": writes(post_responses),
            },
        },
        "/api/v1/silences/{id}": { "delete": {
            "operationId": "expireSilence",
            "summary": "Ends an active or pending silence now.",
            "security": [{ "bearer": [] }],
            "parameters": path_param("id", "The silence's id."),
            "responses": writes(delete_responses),
        }},
        "/api/v1/openapi.json": { "get": {
            "operationId": "getOpenApi",
            "summary": "This document.",
            "responses": { "200": {
                "description": "The OpenAPI 3.1 document of the API.",
                "content": { "application/json": { "schema": { "type": "object" } } },
            }},
        }},
    });
    let schemas: Map<String, Value> = out.take_definitions(true);
    json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "cellwatch-slo API",
            "version": env!("CARGO_PKG_VERSION"),
            "summary": "Cell-level SLOs, alerts, drain decisions and silences of LLM inference cells.",
            "description": "Reads are open (or behind the basic auth of --web.config.file). Writes (silences) need `Authorization: Bearer <token>` with the token of alerting.api_token_file or alerting.api_token_env; without one they are refused with 403. Times in bodies are Unix seconds, except silences' RFC 3339 times.",
            "license": { "name": "Apache-2.0", "identifier": "Apache-2.0" },
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
        },
    })
}

/// The document as served and committed: pretty JSON, ending with a newline.
pub(crate) fn text() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

/// `GET /api/v1/openapi.json`.
pub(crate) async fn serve() -> impl axum::response::IntoResponse {
    static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(text);
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        TEXT.as_str(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::web::AppState;

    const TOKEN: &str = "test-token-for-writes";

    /// An engine's web state after an evaluation (three cells, one drained), with a firing
    /// alert, writes enabled by a token file, and its ledger's directory.
    async fn state(token: bool) -> (AppState, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = crate::ledger::Ledger::open(&url).await.unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, TOKEN).unwrap();
        let token = token.then_some(crate::config::TokenSource::File(path));
        let clock = crate::util::time::Clock::default();
        let s = AppState::new(ledger, clock, token, Default::default());
        s.publish(crate::web::status::fixture::report(), String::new());
        let mut alerts = crate::alerting::State::default();
        let labels: crate::model::Labels = [
            ("alertname", "CellwatchErrorBudgetBurn"),
            ("cell", "a"),
            ("slo", "avail"),
            ("severity", "page"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        alerts.alerts.insert(
            "f1".into(),
            crate::alerting::Alert {
                labels,
                annotations: [("summary".to_string(), "burning".to_string())].into(),
                fingerprint: "f1".into(),
                active_since: 35_000,
                fired_at: Some(35_100),
                resolved_at: None,
            },
        );
        s.set_alerts(alerts);
        (s, dir)
    }

    async fn call(
        s: &AppState,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if body.is_some() {
            req = req
                .header("content-type", "application/json")
                .header("authorization", format!("Bearer {TOKEN}"));
        }
        let body = body.map_or(Body::empty(), |b| Body::from(b.to_string()));
        let resp = crate::web::router(s.clone())
            .oneshot(req.body(body).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// The schema of `path` `method` `status`'s answer, resolvable on its own.
    fn response_schema(doc: &Value, path: &str, method: &str, status: u16) -> Value {
        let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
            ["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} does not document {status}"
        );
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [schema],
            "components": doc["components"],
        })
    }

    fn check(doc: &Value, path: &str, method: &str, status: StatusCode, body: &Value) {
        let schema = response_schema(doc, path, method, status.as_u16());
        let v = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = v
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: {errors:?}\n{body:#}"
        );
    }

    /// The route's template with its parameters filled.
    fn concrete(path: &str) -> String {
        path.replace("{cell}", "a")
            .replace("{id}", "no-such-silence")
    }

    #[tokio::test]
    async fn the_document_has_every_route_and_each_answers_only_its_methods() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: BTreeSet<String> =
            doc["paths"].as_object().unwrap().keys().cloned().collect();
        let routed: BTreeSet<String> = crate::web::api_routes()
            .into_iter()
            .map(|(p, _)| p.to_string())
            .collect();
        assert_eq!(documented, routed, "documented paths vs routes");

        let (s, _dir) = state(false).await;
        for path in &routed {
            for method in [
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ] {
                let m = method.as_str().to_ascii_lowercase();
                let op = &doc["paths"][path][&m];
                let (status, _) = call(&s, method.clone(), &concrete(path), None).await;
                if op.is_object() {
                    let codes = op["responses"].as_object().unwrap();
                    assert!(
                        codes.contains_key(status.as_str()),
                        "{method} {path}: {status} is not documented ({:?})",
                        codes.keys().collect::<Vec<_>>()
                    );
                } else {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {path} answers but is not documented"
                    );
                }
            }
        }
    }

    #[tokio::test]
    async fn every_answer_matches_its_schema() {
        let doc = document();
        let (s, _dir) = state(true).await;
        // Reads, with a drained cell (503), a cell taking traffic (200) and an unknown one.
        for (path, want) in [
            ("/api/v1/alerts", StatusCode::OK),
            ("/api/v1/slos", StatusCode::OK),
            ("/api/v1/cells", StatusCode::OK),
            (
                "/api/v1/cells/{cell}/health",
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            ("/api/v1/silences", StatusCode::OK),
        ] {
            let (status, body) = call(&s, Method::GET, &concrete(path), None).await;
            assert_eq!(status, want, "GET {path}: {body}");
            check(&doc, path, "get", status, &body);
        }
        let (status, body) = call(&s, Method::GET, "/api/v1/cells/b/health", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        check(&doc, "/api/v1/cells/{cell}/health", "get", status, &body);
        let (status, body) = call(&s, Method::GET, "/api/v1/cells/zz/health", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        check(&doc, "/api/v1/cells/{cell}/health", "get", status, &body);

        // A silence made, listed, expired, and a bad one refused.
        let silence = json!({
            "matchers": [{ "name": "cell", "value": "a" }],
            "endsAt": "2999-01-01T00:00:00Z",
            "createdBy": "sre",
            "comment": "maintenance",
        });
        let (status, body) = call(&s, Method::POST, "/api/v1/silences", Some(silence)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        check(&doc, "/api/v1/silences", "post", status, &body);
        let id = body["silenceID"].as_str().unwrap().to_string();
        let (status, body) = call(&s, Method::GET, "/api/v1/silences", None).await;
        assert_eq!(body["silences"][0]["status"]["state"], "active");
        check(&doc, "/api/v1/silences", "get", status, &body);
        let bad = json!({ "matchers": [], "endsAt": "yesterday", "createdBy": "", "comment": "" });
        let (status, body) = call(&s, Method::POST, "/api/v1/silences", Some(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        check(&doc, "/api/v1/silences", "post", status, &body);
        let path = format!("/api/v1/silences/{id}");
        let (status, body) = call(&s, Method::DELETE, &path, Some(Value::Null)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        check(&doc, "/api/v1/silences/{id}", "delete", status, &body);
        let (status, body) = call(&s, Method::DELETE, &path, Some(Value::Null)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        check(&doc, "/api/v1/silences/{id}", "delete", status, &body);

        // The document serves itself.
        let (status, body) = call(&s, Method::GET, "/api/v1/openapi.json", None).await;
        assert_eq!((status, &body), (StatusCode::OK, &doc));
    }

    #[tokio::test]
    async fn before_the_first_evaluation_health_has_the_same_shape() {
        let doc = document();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = crate::ledger::Ledger::open(&url).await.unwrap();
        let s = AppState::new(ledger, Default::default(), None, Default::default());
        let (status, body) = call(&s, Method::GET, "/api/v1/cells/a/health", None).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["reasons"][0]["reason"], "not_evaluated");
        check(&doc, "/api/v1/cells/{cell}/health", "get", status, &body);
    }

    #[test]
    fn the_request_body_takes_what_the_handler_takes() {
        let doc = document();
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "allOf": [doc["paths"]["/api/v1/silences"]["post"]["requestBody"]["content"]
                ["application/json"]["schema"]],
        });
        let v = jsonschema::validator_for(&schema).unwrap();
        let minimal = json!({
            "matchers": [{ "name": "cell", "value": "a" }],
            "endsAt": "2999-01-01T00:00:00Z", "createdBy": "sre", "comment": "c",
        });
        assert!(
            v.is_valid(&minimal),
            "matchers' isRegex and isEqual are optional"
        );
        let unknown = json!({
            "matchers": [], "endsAt": "x", "createdBy": "sre", "comment": "c", "id": "x",
        });
        assert!(
            !v.is_valid(&unknown),
            "unknown fields are refused, as the handler does"
        );
        assert!(
            !v.is_valid(&json!({ "matchers": [] })),
            "endsAt, createdBy, comment are required"
        );
    }

    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        let have = text();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &have).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/openapi.json drifted from the API's types (UPDATE_GOLDEN=1 cargo test -p cellwatch-slo openapi rewrites it)"
        );
    }
}
