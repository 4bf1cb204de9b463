//! The email integration: subject, text and HTML bodies, SMTP; scheduled report mails.

use std::collections::BTreeMap;

use cellwatch_http::html::escape as html;

use super::outbox::{ReportMail, message_id};
use crate::alerting::Notification;
use crate::config::{Alerting, EmailTarget, SmtpTls};
use crate::util::time::rfc3339;

pub(super) async fn send_report(
    e: &EmailTarget,
    mail: &ReportMail,
    key: &str,
) -> Result<(), String> {
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

/// The mail's subject and its text and HTML bodies: which cell, which SLOs, budget left, burn
/// rates, since when, and links.
pub fn mail_text(alerting: &Alerting, n: &Notification) -> (String, String, String) {
    let subject = subject(n);
    let mut text = format!("{subject}\n\n");
    let mut rows = String::new();
    for a in &n.alerts {
        text.push_str(&alert_line(a));
        rows.push_str(&alert_row(a));
    }
    let links = links(alerting, n, &mut text);
    text.push_str(&format!("\nIncident key: {}\n", n.incident));
    let body = format!(
        "<html><body><h2>{}</h2><table border=\"1\" cellpadding=\"4\"><tr><th>status</th><th>SLO</th><th>severity</th><th>summary</th><th>burn rates</th><th>since</th></tr>{rows}</table>{links}</body></html>",
        html(&subject)
    );
    (subject, text, body)
}

/// `[FIRING:n] cell c: slos (severity)` or `[RESOLVED] cell c: slos`.
fn subject(n: &Notification) -> String {
    let firing = n.alerts.iter().filter(|a| a.status == "firing").count();
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
    if n.status == "resolved" {
        format!("[RESOLVED] cell {}: {}", n.cell, what.join(", "))
    } else {
        format!(
            "[FIRING:{firing}] cell {}: {} ({severity})",
            n.cell,
            what.join(", ")
        )
    }
}

fn get(m: &BTreeMap<String, String>, k: &str) -> String {
    m.get(k).cloned().unwrap_or_default()
}

/// One alert in the text body.
fn alert_line(a: &crate::alerting::Notified) -> String {
    format!(
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
    )
}

/// One alert in the HTML table.
fn alert_row(a: &crate::alerting::Notified) -> String {
    format!(
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        html(&a.status),
        html(&get(&a.labels, "slo")),
        html(&get(&a.labels, "severity")),
        html(&get(&a.annotations, "summary")),
        html(a.annotations.get("burn_rates").map_or("", String::as_str)),
        html(&rfc3339(a.starts_at)),
    )
}

/// The dashboard and status-page links: appended to the text, returned as HTML.
fn links(alerting: &Alerting, n: &Notification, text: &mut String) -> String {
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
    links
}

pub(super) async fn send_mail(
    e: &EmailTarget,
    alerting: &Alerting,
    n: &Notification,
) -> Result<(), String> {
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

pub(super) async fn smtp_send(e: &EmailTarget, msg: lettre::Message) -> Result<(), String> {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
    let (host, port) = (&e.host, e.port);
    let mut b = match e.tls {
        SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
        SmtpTls::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
            host,
        )),
        SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
    }
    .map_err(|x| format!("{host}: {x}"))?
    .port(port)
    .timeout(Some(std::time::Duration::from_secs(10)));
    if let Some(auth) = &e.auth {
        let password = auth.password.fetch("password_file", "password_env")?;
        b = b.credentials(Credentials::new(auth.username.clone(), password));
    }
    b.build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|x| format!("SMTP {host}:{port}: {x}"))
}
