//! Receivers, resolved: what delivery needs and nothing to parse again. Validation builds them
//! from the YAML's [`RawReceiver`](super::RawReceiver); secrets stay where they are (a file or
//! a variable) and are read at each delivery, so they can be rotated.

use std::path::PathBuf;

use super::secret_source::TokenSource;

/// A receiver: its integrations, in the order the outbox queues them (email, webhook,
/// pagerduty, slack, alertmanager).
#[derive(Debug, Clone, PartialEq)]
pub struct Receiver {
    /// Name, used by routes.
    pub name: String,
    /// At least one.
    pub integrations: Vec<Integration>,
}

impl Receiver {
    /// The integration of a kind (`email`, `webhook`, …), if the receiver has it.
    pub fn integration(&self, kind: &str) -> Option<&Integration> {
        self.integrations.iter().find(|i| i.kind() == kind)
    }

    /// Its email integration, which reports go to.
    pub fn email(&self) -> Option<&EmailTarget> {
        self.integrations.iter().find_map(|i| match i {
            Integration::Email(e) => Some(e),
            _ => None,
        })
    }
}

/// One way a receiver is notified.
#[derive(Debug, Clone, PartialEq)]
pub enum Integration {
    /// Mail over SMTP.
    Email(EmailTarget),
    /// Alertmanager's webhook payload (version 4), POSTed.
    Webhook(WebhookTarget),
    /// PagerDuty Events API v2.
    PagerDuty(PagerDutyTarget),
    /// A Slack incoming webhook.
    Slack(SlackTarget),
    /// An Alertmanager's `POST /api/v2/alerts`.
    Alertmanager(AlertmanagerApi),
}

impl Integration {
    /// Its name in outbox keys (`{key}#{kind}`) and rows.
    pub fn kind(&self) -> &'static str {
        match self {
            Integration::Email(_) => "email",
            Integration::Webhook(_) => "webhook",
            Integration::PagerDuty(_) => "pagerduty",
            Integration::Slack(_) => "slack",
            Integration::Alertmanager(_) => "alertmanager",
        }
    }
}

/// An SMTP delivery, its smarthost split once.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailTarget {
    /// Recipients (valid addresses).
    pub to: Vec<String>,
    /// Sender (a valid address).
    pub from: String,
    /// The SMTP server's host.
    pub host: String,
    /// Its port (1..=65535).
    pub port: u16,
    /// How the connection is secured.
    pub tls: SmtpTls,
    /// SMTP AUTH, when a username is given.
    pub auth: Option<SmtpAuth>,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS after connecting (`starttls`, the default).
    StartTls,
    /// TLS from the first byte (`implicit`, usually port 465).
    Implicit,
    /// Plain text (`none`).
    None,
}

/// SMTP credentials; the password is read at each delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpAuth {
    /// User name.
    pub username: String,
    /// Where the password is.
    pub password: TokenSource,
}

/// A webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookTarget {
    /// The URL to POST to.
    pub url: String,
}

/// A PagerDuty integration.
#[derive(Debug, Clone, PartialEq)]
pub struct PagerDutyTarget {
    /// The Events API v2 endpoint.
    pub url: String,
    /// Where the routing key is.
    pub routing_key: TokenSource,
}

/// A Slack incoming webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackTarget {
    /// Its URL, which is a secret.
    pub url: SlackUrl,
}

/// Where a Slack webhook URL is.
#[derive(Debug, Clone, PartialEq)]
pub enum SlackUrl {
    /// In the configuration.
    Inline(String),
    /// In a file, read at each delivery.
    File(PathBuf),
}

/// An Alertmanager to forward alerts to.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertmanagerApi {
    /// `{url}/api/v2/alerts`, the base URL without its trailing slash.
    pub alerts_url: String,
}
