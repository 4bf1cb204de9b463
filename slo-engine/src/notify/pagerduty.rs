//! The PagerDuty integration: Events API v2.

use serde_json::{Value, json};

use super::email::mail_text;
use super::outbox::digest;
use crate::alerting::Notification;
use crate::config::Alerting;
use crate::util::time::rfc3339;

/// PagerDuty Events API v2: one event per notification; the incident's key (SHA-256) is the
/// `dedup_key`, so a resolve closes the incident its page opened.
pub fn pagerduty_event(alerting: &Alerting, n: &Notification, routing_key: &str) -> Value {
    let (subject, text, _) = mail_text(alerting, n);
    let page = n
        .alerts
        .iter()
        .any(|a| a.labels.get("severity").is_some_and(|s| s == "page"));
    let mut links = Vec::new();
    if let Some(d) = &alerting.dashboard_url {
        links.push(json!({"href": d.replace("{cell}", &n.cell), "text": "Dashboard"}));
    }
    if let Some(e) = &alerting.external_url {
        links.push(json!({"href": format!("{e}/"), "text": "Status page"}));
    }
    json!({
        "routing_key": routing_key,
        "event_action": if n.status == "resolved" { "resolve" } else { "trigger" },
        "dedup_key": digest(&n.incident),
        "payload": {
            "summary": subject.chars().take(1024).collect::<String>(),
            "source": "cellwatch",
            "severity": if page { "critical" } else { "warning" },
            "timestamp": rfc3339(n.at),
            "component": n.cell,
            "group": n.cell,
            "class": n.alerts.first().and_then(|a| a.labels.get("alertname")).cloned().unwrap_or_default(),
            "custom_details": { "details": text, "alerts": n.alerts.iter().map(|a| &a.labels).collect::<Vec<_>>() },
        },
        "links": links,
    })
}
