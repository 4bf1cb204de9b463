//! Delivering one outbox row through its integration.

use super::alertmanager::alertmanager_alerts;
use super::email::{send_mail, send_report};
use super::outbox::ReportMail;
use super::pagerduty::pagerduty_event;
use super::slack::slack_message;
use super::webhook::{post_json, webhook_payload};
use crate::alerting::Notification;
use crate::config::{Alerting, Integration, SlackUrl};
use crate::ledger::OutboxRow;

/// Delivers one outbox row. `Err` says why (it is retried later).
pub async fn deliver(
    alerting: &Alerting,
    client: &reqwest::Client,
    row: &OutboxRow,
) -> Result<(), String> {
    let r = alerting
        .receivers
        .get(&row.receiver)
        .ok_or_else(|| format!("receiver {:?} is no longer configured", row.receiver))?;
    if row.integration == "report" {
        let mail: ReportMail =
            serde_json::from_str(&row.payload).map_err(|e| format!("undecodable report: {e}"))?;
        let e = r
            .email()
            .ok_or_else(|| format!("receiver {:?} has no email any more", row.receiver))?;
        return send_report(e, &mail, &row.key).await;
    }
    let n: Notification =
        serde_json::from_str(&row.payload).map_err(|e| format!("undecodable payload: {e}"))?;
    let gone = || {
        format!(
            "receiver {:?} has no {} integration any more",
            row.receiver, row.integration
        )
    };
    match r.integration(&row.integration).ok_or_else(gone)? {
        Integration::Email(e) => send_mail(e, alerting, &n).await,
        Integration::Webhook(w) => post_json(client, &w.url, &webhook_payload(alerting, &n)).await,
        Integration::PagerDuty(p) => {
            let key = p
                .routing_key
                .fetch("routing key file", "routing key variable")?;
            post_json(client, &p.url, &pagerduty_event(alerting, &n, &key)).await
        }
        Integration::Slack(sl) => {
            let url = match &sl.url {
                SlackUrl::Inline(u) => u.clone(),
                SlackUrl::File(f) => {
                    crate::util::secret::read_file(f).map_err(|e| format!("Slack URL file {e}"))?
                }
            };
            post_json(client, &url, &slack_message(alerting, &n)).await
        }
        Integration::Alertmanager(a) => {
            post_json(client, &a.alerts_url, &alertmanager_alerts(alerting, &n)).await
        }
    }
}
