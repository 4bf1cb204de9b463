//! Delivery of notifications: outbox rows from notifications, and the integrations (SMTP mail,
//! Alertmanager-compatible webhook). Every row carries an idempotency key that receivers can
//! dedup on: the webhook's `groupKey` and each alert's `fingerprint`, and a stable mail
//! `Message-ID` (a resolve is threaded to the incident's first page with `In-Reply-To`).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::alerting::Notification;
use crate::config::{Alerting, Email, RawReceiver};
use crate::ledger::OutboxRow;

/// The outbox rows of notifications: one per integration of each notification's receiver.
pub fn outbox_rows(alerting: &Alerting, notes: &[Notification]) -> Vec<OutboxRow> {
    let mut out = Vec::new();
    for n in notes {
        let Some(r) = alerting.receivers.get(&n.receiver) else {
            continue;
        };
        let payload = serde_json::to_string(n).unwrap_or_default();
        for integration in integrations(r) {
            out.push(OutboxRow {
                key: format!("{}#{integration}", n.key),
                receiver: n.receiver.clone(),
                integration: integration.to_string(),
                payload: payload.clone(),
                created_at: n.at,
                attempts: 0,
            });
        }
    }
    out
}

fn integrations(r: &RawReceiver) -> Vec<&'static str> {
    let mut v = Vec::new();
    if r.email.is_some() {
        v.push("email");
    }
    if r.webhook.is_some() {
        v.push("webhook");
    }
    if r.pagerduty.is_some() {
        v.push("pagerduty");
    }
    if r.slack.is_some() {
        v.push("slack");
    }
    if r.alertmanager.is_some() {
        v.push("alertmanager");
    }
    v
}

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

/// A Slack incoming-webhook message.
pub fn slack_message(alerting: &Alerting, n: &Notification) -> Value {
    let (subject, text, _) = mail_text(alerting, n);
    json!({ "text": format!("*{subject}*\n{}", text.split_once("\n\n").map_or("", |x| x.1)) })
}

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

async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    let resp = client
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST {}: {}", redact_url(url), e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {}: HTTP {}", redact_url(url), resp.status()))
    }
}

/// A URL for messages: only its scheme and host (webhook paths hold secrets).
fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split('/').next().unwrap_or("");
            // user:password@host: the credentials are secrets too.
            let host = authority.rsplit('@').next().unwrap_or("");
            format!("{scheme}://{host}/…")
        }
        None => "(url)".into(),
    }
}

fn read_secret(
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

/// A scheduled budget report, as queued for mail.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReportMail {
    /// Subject.
    pub subject: String,
    /// The report as a text table (the body).
    pub text: String,
    /// The report as CSV (attached).
    pub csv: String,
}

/// The starts of a schedule in `(after, upto]` (Unix seconds).
pub fn occurrences(s: &crate::config::ReportSchedule, after: i64, upto: i64) -> Vec<i64> {
    use chrono::TimeZone;
    let Some(from) = s.timezone.timestamp_opt(after, 0).single() else {
        return Vec::new();
    };
    s.schedule
        .after(&from)
        .map(|t| t.timestamp())
        .take_while(|t| *t <= upto)
        .take(100)
        .collect()
}

/// The outbox row of a report due at `at`: its key names the report and the time, so a report
/// is queued once however many engines or restarts see it due.
pub fn report_row(s: &crate::config::ReportSchedule, at: i64, mail: &ReportMail) -> OutboxRow {
    OutboxRow {
        key: format!("report/{}/{at}", s.name),
        receiver: s.receiver.clone(),
        integration: "report".into(),
        payload: serde_json::to_string(mail).unwrap_or_default(),
        created_at: at,
        attempts: 0,
    }
}

async fn send_report(e: &Email, mail: &ReportMail, key: &str) -> Result<(), String> {
    use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
    let mut m = lettre::Message::builder()
        .from(e.from.parse().map_err(|x| format!("from: {x}"))?)
        .subject(mail.subject.clone())
        .message_id(Some(message_id(key)));
    for to in &e.to {
        m = m.to(to.parse().map_err(|x| format!("to {to}: {x}"))?);
    }
    let csv_type = ContentType::parse("text/csv; charset=utf-8").map_err(|x| x.to_string())?;
    let msg = m
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(mail.text.clone()))
                .singlepart(
                    Attachment::new("cellwatch-report.csv".into()).body(mail.csv.clone(), csv_type),
                ),
        )
        .map_err(|x| format!("building the mail: {x}"))?;
    smtp_send(e, msg).await
}

/// Seconds before the next attempt after `attempts` failures: 1, 2, 4 … capped at 5 minutes.
pub fn retry_after(attempts: i64) -> i64 {
    (1i64 << attempts.clamp(0, 30)).min(300)
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stable id from a key (SHA-256, hex).
pub fn digest(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
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

/// The mail's subject and its text and HTML bodies: which cell, which SLOs, budget left, burn
/// rates, since when, and links.
pub fn mail_text(alerting: &Alerting, n: &Notification) -> (String, String, String) {
    let firing: Vec<&crate::alerting::Notified> =
        n.alerts.iter().filter(|a| a.status == "firing").collect();
    let what: Vec<String> = n
        .alerts
        .iter()
        .map(|a| {
            a.labels
                .get("slo")
                .cloned()
                .unwrap_or_else(|| a.labels.get("alertname").cloned().unwrap_or_default())
        })
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let severity = if n
        .alerts
        .iter()
        .any(|a| a.labels.get("severity").is_some_and(|s| s == "page"))
    {
        "page"
    } else {
        "ticket"
    };
    let subject = if n.status == "resolved" {
        format!("[RESOLVED] cell {}: {}", n.cell, what.join(", "))
    } else {
        format!(
            "[FIRING:{}] cell {}: {} ({severity})",
            firing.len(),
            n.cell,
            what.join(", ")
        )
    };
    let mut text = format!("{subject}\n\n");
    let mut rows = String::new();
    for a in &n.alerts {
        let get = |m: &BTreeMap<String, String>, k: &str| m.get(k).cloned().unwrap_or_default();
        let line = format!(
            "- {} {} {}: {}\n  budget left: {}; burn rates: {}\n  since {}{}\n",
            a.status.to_uppercase(),
            get(&a.labels, "alertname"),
            get(&a.labels, "severity"),
            get(&a.annotations, "summary"),
            a.annotations
                .get("budget_remaining")
                .map_or("n/a", String::as_str),
            a.annotations
                .get("burn_rates")
                .map_or("n/a", String::as_str),
            rfc3339(a.starts_at),
            a.ends_at
                .map_or(String::new(), |e| format!(", resolved {}", rfc3339(e))),
        );
        text.push_str(&line);
        rows.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(&a.status),
            html(&get(&a.labels, "slo")),
            html(&get(&a.labels, "severity")),
            html(&get(&a.annotations, "summary")),
            html(a.annotations.get("burn_rates").map_or("", String::as_str)),
            html(&rfc3339(a.starts_at)),
        ));
    }
    let mut links = String::new();
    if let Some(d) = &alerting.dashboard_url {
        let url = d.replace("{cell}", &n.cell);
        text.push_str(&format!("\nDashboard: {url}\n"));
        links.push_str(&format!("<p><a href=\"{0}\">Dashboard</a></p>", html(&url)));
    }
    if let Some(e) = &alerting.external_url {
        text.push_str(&format!("Status page: {e}/\n"));
        links.push_str(&format!("<p><a href=\"{0}/\">Status page</a></p>", html(e)));
    }
    text.push_str(&format!("\nIncident key: {}\n", n.incident));
    let body = format!(
        "<html><body><h2>{}</h2><table border=\"1\" cellpadding=\"4\"><tr><th>status</th><th>SLO</th><th>severity</th><th>summary</th><th>burn rates</th><th>since</th></tr>{rows}</table>{links}</body></html>",
        html(&subject)
    );
    (subject, text, body)
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The Message-ID of a notification key.
pub fn message_id(key: &str) -> String {
    format!("<{}@cellwatch>", &digest(key)[..32])
}

async fn send_mail(e: &Email, alerting: &Alerting, n: &Notification) -> Result<(), String> {
    use lettre::Message;
    use lettre::message::MultiPart;

    let (subject, text, body) = mail_text(alerting, n);
    let mut m = Message::builder()
        .from(e.from.parse().map_err(|x| format!("from: {x}"))?)
        .subject(subject)
        .message_id(Some(message_id(&n.key)));
    for to in &e.to {
        m = m.to(to.parse().map_err(|x| format!("to {to}: {x}"))?);
    }
    if n.incident != n.key {
        m = m
            .in_reply_to(message_id(&n.incident))
            .references(message_id(&n.incident));
    }
    let msg = m
        .multipart(MultiPart::alternative_plain_html(text, body))
        .map_err(|x| format!("building the mail: {x}"))?;
    smtp_send(e, msg).await
}

async fn smtp_send(e: &Email, msg: lettre::Message) -> Result<(), String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let (host, port) = e
        .smarthost
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("smarthost {:?} is not host:port", e.smarthost))?;
    let mut b = match e.tls.as_str() {
        "implicit" => AsyncSmtpTransport::<Tokio1Executor>::relay(&host),
        "none" => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            &host,
        )),
        _ => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&host),
    }
    .map_err(|x| format!("{host}: {x}"))?
    .port(port)
    .timeout(Some(std::time::Duration::from_secs(10)));
    if let Some(user) = &e.username {
        let password = match (&e.password_file, &e.password_env) {
            (Some(f), _) => crate::config::read_secret_file(f)
                .map_err(|x| format!("password_file {x}"))?
                .trim_end()
                .to_string(),
            (None, Some(v)) => {
                std::env::var(v).map_err(|_| format!("password_env {v} is not set"))?
            }
            (None, None) => String::new(),
        };
        b = b.credentials(Credentials::new(user.clone(), password));
    }
    b.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|x| format!("SMTP {host}:{port}: {x}"))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::Notified;

    fn note(status: &str, key: &str, incident: &str) -> Notification {
        let labels = |slo: &str| {
            BTreeMap::from([
                (
                    "alertname".to_string(),
                    "CellwatchErrorBudgetBurn".to_string(),
                ),
                ("cell".into(), "studio-a".into()),
                ("slo".into(), slo.into()),
                ("severity".into(), "page".into()),
            ])
        };
        Notification {
            key: key.into(),
            group_key: "oncall:{cell=\"studio-a\"}".into(),
            incident: incident.into(),
            receiver: "oncall".into(),
            cell: "studio-a".into(),
            status: status.into(),
            reason: "new_alerts".into(),
            at: 1_700_000_000,
            alerts: ["latency", "availability"]
                .iter()
                .map(|slo| Notified {
                    status: status.into(),
                    labels: labels(slo),
                    annotations: BTreeMap::from([
                        (
                            "summary".to_string(),
                            format!("Cell studio-a burns the {slo} error budget too fast"),
                        ),
                        ("budget_remaining".into(), "42.0 %".into()),
                        (
                            "burn_rates".into(),
                            "20.0× over 1h (threshold 14.4×)".into(),
                        ),
                    ]),
                    fingerprint: crate::alerting::fingerprint(&labels(slo)),
                    starts_at: 1_699_999_000,
                    ends_at: (status == "resolved").then_some(1_700_000_000),
                })
                .collect(),
        }
    }

    #[test]
    fn webhook_payload_is_alertmanager_v4() {
        let a = Alerting::default();
        let p = webhook_payload(&a, &note("firing", "k/1", "k/1"));
        assert_eq!(p["version"], "4");
        assert_eq!(p["groupKey"], "oncall:{cell=\"studio-a\"}");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["commonLabels"]["cell"], "studio-a");
        assert!(p["commonLabels"].get("slo").is_none(), "{p}");
        assert_eq!(p["alerts"][0]["startsAt"], "2023-11-14T21:56:40Z");
        assert_eq!(p["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(p["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn mails_say_which_cell_which_slos_budget_and_burn_and_thread_resolves() {
        let a = Alerting {
            dashboard_url: Some("http://grafana/d/cell?var-cell={cell}".into()),
            external_url: Some("http://cellwatch:9820".into()),
            ..Default::default()
        };
        let (subject, text, body) = mail_text(&a, &note("firing", "k/1", "k/1"));
        assert_eq!(
            subject,
            "[FIRING:2] cell studio-a: availability, latency (page)"
        );
        for want in [
            "42.0 %",
            "20.0× over 1h",
            "since 2023-11-14T21:56:40Z",
            "var-cell=studio-a",
            "http://cellwatch:9820/",
        ] {
            assert!(text.contains(want), "{want} in {text}");
        }
        assert!(body.contains("<table") && body.contains("latency"));
        let (subject, ..) = mail_text(&a, &note("resolved", "k/2", "k/1"));
        assert_eq!(subject, "[RESOLVED] cell studio-a: availability, latency");
        assert_ne!(message_id("k/1"), message_id("k/2"));
        assert_eq!(message_id("k/1"), message_id("k/1"));
    }

    #[test]
    fn pagerduty_slack_and_alertmanager_bodies() {
        let a = Alerting::default();
        let page = pagerduty_event(&a, &note("firing", "k/1", "k/1"), "R");
        let resolve = pagerduty_event(&a, &note("resolved", "k/2", "k/1"), "R");
        assert_eq!(page["event_action"], "trigger");
        assert_eq!(resolve["event_action"], "resolve");
        assert_eq!(page["dedup_key"], resolve["dedup_key"], "one incident");
        assert_eq!(page["payload"]["severity"], "critical");
        assert_eq!(page["payload"]["component"], "studio-a");
        let slack = slack_message(&a, &note("firing", "k/1", "k/1"));
        assert!(
            slack["text"]
                .as_str()
                .unwrap()
                .starts_with("*[FIRING:2] cell studio-a"),
            "{slack}"
        );
        let am = alertmanager_alerts(&a, &note("resolved", "k/2", "k/1"));
        assert_eq!(am[0]["labels"]["cell"], "studio-a");
        assert_eq!(am[0]["endsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T/B/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://u:pw@hooks:80/x"), "http://hooks:80/…");
    }

    #[test]
    fn backoff_is_capped_exponential() {
        let v: Vec<i64> = (0..12).map(retry_after).collect();
        assert_eq!(v, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }
}
