//! The webhook integration: Alertmanager's webhook payload, and the one JSON POST every integration
//! uses.

use std::collections::BTreeMap;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{Value, json};

use crate::alerting::Notification;
use crate::config::Alerting;
use crate::util::time::rfc3339;
use crate::util::trace;

/// A failed delivery: its class (the span's `error.type`: an HTTP status code, `timeout`,
/// `connect`...) and what to log and retry on.
#[derive(Debug)]
pub(super) struct Failed {
    pub(super) kind: String,
    pub(super) message: String,
}

impl Failed {
    pub(super) fn new(kind: &str, message: String) -> Failed {
        Failed {
            kind: kind.to_string(),
            message,
        }
    }
}

/// POSTs `body` as JSON with the W3C `traceparent` of the current span (the delivery's; none
/// when tracing is off), and records the receiver's address and status on that span.
pub(super) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(), Failed> {
    let span = tracing::Span::current();
    span.record(trace::HTTP_METHOD, "POST");
    if let Ok(u) = reqwest::Url::parse(url) {
        if let Some(host) = u.host_str() {
            span.record(trace::SERVER_ADDRESS, host);
        }
        if let Some(port) = u.port_or_known_default() {
            span.record(trace::SERVER_PORT, port);
        }
    }
    let origin = crate::util::redact::origin(url);
    let resp = client
        .post(url)
        .headers(trace_context())
        .json(body)
        .send()
        .await
        .map_err(|e| {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            Failed::new(kind, format!("POST {origin}: {}", e.without_url()))
        })?;
    let status = resp.status();
    span.record(trace::HTTP_STATUS, status.as_u16());
    if status.is_success() {
        Ok(())
    } else {
        Err(Failed::new(
            status.as_str(),
            format!("POST {origin}: HTTP {status}"),
        ))
    }
}

/// The current span's context as W3C trace-context headers, through the global propagator
/// (set with the tracer provider; the default one injects nothing).
fn trace_context() -> HeaderMap {
    use opentelemetry::propagation::Injector;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    struct Headers<'a>(&'a mut HeaderMap);
    impl Injector for Headers<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(k), Ok(v)) = (
                HeaderName::from_bytes(key.as_bytes()),
                HeaderValue::from_str(&value),
            ) {
                self.0.insert(k, v);
            }
        }
    }
    let mut headers = HeaderMap::new();
    let cx = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&cx, &mut Headers(&mut headers))
    });
    headers
}

/// Alertmanager's webhook payload, version 4, so existing receivers work.
pub fn webhook_payload(alerting: &Alerting, n: &Notification) -> Value {
    let common = |f: fn(&crate::alerting::Notified) -> &BTreeMap<String, String>| {
        let mut it = n.alerts.iter().map(f);
        let first = it.next().cloned().unwrap_or_default();
        it.fold(first, |acc, l| {
            acc.into_iter()
                .filter(|(k, v)| l.get(k) == Some(v))
                .collect()
        })
    };
    let generator = alerting.external_url.clone().unwrap_or_default();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": { "cell": n.cell },
        "commonLabels": common(|a| &a.labels),
        "commonAnnotations": common(|a| &a.annotations),
        "externalURL": generator,
        "notification_reason": n.reason,
        "alerts": n.alerts.iter().map(|a| json!({
            "status": a.status,
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": rfc3339(a.starts_at),
            "endsAt": a.ends_at.map_or("0001-01-01T00:00:00Z".to_string(), rfc3339),
            "generatorURL": generator,
            "fingerprint": a.fingerprint,
        })).collect::<Vec<_>>(),
    })
}
