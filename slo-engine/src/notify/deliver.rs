use crate::alerting::Notification;
use crate::config::Alerting;
use crate::ledger::OutboxRow;

use super::*;

pub(super) fn read_secret(
    file: &Option<std::path::PathBuf>,
    env: &Option<String>,
    what: &str,
) -> Result<String, String> {
    let v = match (file, env) {
        (Some(f), _) => {
            crate::config::read_secret_file(f).map_err(|e| format!("{what} file {e}"))?
        }
        (None, Some(v)) => {
            std::env::var(v).map_err(|_| format!("{what} variable {v} is not set"))?
        }
        (None, None) => return Err(format!("no {what}")),
    };
    Ok(v.trim().to_string())
}

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
            .email
            .as_ref()
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
    match row.integration.as_str() {
        "email" => send_mail(r.email.as_ref().ok_or_else(gone)?, alerting, &n).await,
        "webhook" => {
            let w = r.webhook.as_ref().ok_or_else(gone)?;
            post_json(client, &w.url, &webhook_payload(alerting, &n)).await
        }
        "pagerduty" => {
            let p = r.pagerduty.as_ref().ok_or_else(gone)?;
            let key = read_secret(&p.routing_key_file, &p.routing_key_env, "routing key")?;
            post_json(client, &p.url, &pagerduty_event(alerting, &n, &key)).await
        }
        "slack" => {
            let sl = r.slack.as_ref().ok_or_else(gone)?;
            let url = match &sl.url {
                Some(u) => u.clone(),
                None => read_secret(&sl.url_file, &None, "Slack URL")?,
            };
            post_json(client, &url, &slack_message(alerting, &n)).await
        }
        "alertmanager" => {
            let a = r.alertmanager.as_ref().ok_or_else(gone)?;
            let url = format!("{}/api/v2/alerts", a.url.trim_end_matches('/'));
            post_json(client, &url, &alertmanager_alerts(alerting, &n)).await
        }
        _ => Err(gone()),
    }
}
