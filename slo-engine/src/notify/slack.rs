//! The Slack integration: an incoming webhook message.

use serde_json::{Value, json};

use super::email::mail_text;
use crate::alerting::Notification;
use crate::config::Alerting;

/// A Slack incoming-webhook message.
pub fn slack_message(alerting: &Alerting, n: &Notification) -> Value {
    let (subject, text, _) = mail_text(alerting, n);
    json!({ "text": format!("*{subject}*\n{}", text.split_once("\n\n").map_or("", |x| x.1)) })
}
