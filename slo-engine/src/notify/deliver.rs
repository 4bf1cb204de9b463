//! Delivering one outbox row through its integration, in its own span.

use tracing::Instrument;
use tracing::field::Empty;

use super::alertmanager::alertmanager_alerts;
use super::email::{send_mail, send_report};
use super::outbox::ReportMail;
use super::pagerduty::pagerduty_event;
use super::slack::slack_message;
use super::webhook::{Failed, post_json, webhook_payload};
use crate::alerting::Notification;
use crate::config::{Alerting, Integration, SlackUrl};
use crate::ledger::OutboxRow;
use crate::util::trace;

/// Delivers one outbox row. `Err` says why (it is retried later). The attempt is a
/// [`trace::DELIVER`] span: receiver, cell, alert, attempt, outcome, the HTTP status where
/// there is one; a failure sets its error status and `error.type`.
pub async fn deliver(
    alerting: &Alerting,
    client: &reqwest::Client,
    row: &OutboxRow,
) -> Result<(), String> {
    let span = tracing::info_span!(
        trace::DELIVER,
        otel.kind = "client",
        { trace::RECEIVER_KIND } = %row.integration,
        { trace::RECEIVER_NAME } = %row.receiver,
        { trace::NOTIFICATION_KEY } = %row.key,
        { trace::ATTEMPT } = row.attempts + 1,
        { trace::CELL } = Empty,
        { trace::ALERT_NAME } = Empty,
        { trace::ALERT_SEVERITY } = Empty,
        { trace::NOTIFICATION_STATUS } = Empty,
        { trace::HTTP_METHOD } = Empty,
        { trace::SERVER_ADDRESS } = Empty,
        { trace::SERVER_PORT } = Empty,
        { trace::HTTP_STATUS } = Empty,
        { trace::OUTCOME } = Empty,
        { trace::ERROR_TYPE } = Empty,
        { trace::STATUS_CODE } = Empty,
        { trace::STATUS_DESCRIPTION } = Empty,
    );
    let outcome = send(alerting, client, row).instrument(span.clone()).await;
    match outcome {
        Ok(()) => {
            span.record(trace::OUTCOME, "delivered");
            Ok(())
        }
        Err(Failed { kind, message }) => {
            span.record(trace::OUTCOME, "failed");
            span.record(trace::ERROR_TYPE, kind.as_str());
            span.record(trace::STATUS_CODE, "ERROR");
            span.record(trace::STATUS_DESCRIPTION, message.as_str());
            Err(message)
        }
    }
}

/// Sends one row (within its span).
async fn send(
    alerting: &Alerting,
    client: &reqwest::Client,
    row: &OutboxRow,
) -> Result<(), Failed> {
    let gone = |what: String| Failed::new("receiver_gone", what);
    let r = alerting.receivers.get(&row.receiver).ok_or_else(|| {
        gone(format!(
            "receiver {:?} is no longer configured",
            row.receiver
        ))
    })?;
    if row.integration == "report" {
        let mail: ReportMail = serde_json::from_str(&row.payload)
            .map_err(|e| Failed::new("payload", format!("undecodable report: {e}")))?;
        let e = r
            .email()
            .ok_or_else(|| gone(format!("receiver {:?} has no email any more", row.receiver)))?;
        return send_report(e, &mail, &row.key)
            .await
            .map_err(|m| Failed::new("smtp", m));
    }
    let n: Notification = serde_json::from_str(&row.payload)
        .map_err(|e| Failed::new("payload", format!("undecodable payload: {e}")))?;
    describe(&tracing::Span::current(), &n);
    let integration = r.integration(&row.integration).ok_or_else(|| {
        gone(format!(
            "receiver {:?} has no {} integration any more",
            row.receiver, row.integration
        ))
    })?;
    match integration {
        Integration::Email(e) => send_mail(e, alerting, &n)
            .await
            .map_err(|m| Failed::new("smtp", m)),
        Integration::Webhook(w) => post_json(client, &w.url, &webhook_payload(alerting, &n)).await,
        Integration::PagerDuty(p) => {
            let key = p
                .routing_key
                .fetch("routing key file", "routing key variable")
                .map_err(|m| Failed::new("secret", m))?;
            post_json(client, &p.url, &pagerduty_event(alerting, &n, &key)).await
        }
        Integration::Slack(sl) => {
            let url = match &sl.url {
                SlackUrl::Inline(u) => u.clone(),
                SlackUrl::File(f) => crate::util::secret::read_file(f)
                    .map_err(|e| Failed::new("secret", format!("Slack URL file {e}")))?,
            };
            post_json(client, &url, &slack_message(alerting, &n)).await
        }
        Integration::Alertmanager(a) => {
            post_json(client, &a.alerts_url, &alertmanager_alerts(alerting, &n)).await
        }
    }
}

/// Records what a notification is about on its delivery span: the cell, the first alert's
/// name, the most severe severity (`page` first), firing or resolved.
fn describe(span: &tracing::Span, n: &Notification) {
    span.record(trace::CELL, n.cell.as_str());
    span.record(trace::NOTIFICATION_STATUS, n.status.as_str());
    let label = |name: &'static str| n.alerts.iter().filter_map(move |a| a.labels.get(name));
    if let Some(a) = label("alertname").next() {
        span.record(trace::ALERT_NAME, a.as_str());
    }
    let severity = label("severity")
        .find(|s| *s == "page")
        .or(label("severity").next());
    if let Some(s) = severity {
        span.record(trace::ALERT_SEVERITY, s.as_str());
    }
}
