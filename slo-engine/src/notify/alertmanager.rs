//! The Alertmanager integration: alerts posted to its API v2.

use serde_json::{Value, json};

use crate::alerting::Notification;
use crate::config::Alerting;
use crate::util::time::rfc3339;

/// Alertmanager's `POST /api/v2/alerts` body. Firing alerts carry an `endsAt` past the next
/// repeat (we send again at least that often); resolved ones end when they resolved.
pub fn alertmanager_alerts(alerting: &Alerting, n: &Notification) -> Value {
    let t = &alerting.timing;
    let until = n.at + t.repeat_interval + 2 * t.group_interval;
    Value::Array(
        n.alerts
            .iter()
            .map(|a| {
                json!({
                    "labels": a.labels,
                    "annotations": a.annotations,
                    "startsAt": rfc3339(a.starts_at),
                    "endsAt": rfc3339(a.ends_at.unwrap_or(until)),
                    "generatorURL": alerting.external_url.clone().unwrap_or_default(),
                })
            })
            .collect(),
    )
}
