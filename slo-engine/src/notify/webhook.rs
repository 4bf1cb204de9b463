//! The webhook integration: Alertmanager's webhook payload, and the one JSON POST every integration
//! uses.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::alerting::Notification;
use crate::config::Alerting;
use crate::util::time::rfc3339;

pub(super) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
) -> Result<(), String> {
    let resp = client.post(url).json(body).send().await.map_err(|e| {
        format!(
            "POST {}: {}",
            crate::util::redact::origin(url),
            e.without_url()
        )
    })?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!(
            "POST {}: HTTP {}",
            crate::util::redact::origin(url),
            resp.status()
        ))
    }
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
