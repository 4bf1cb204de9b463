//! Outbox rows of notifications and reports, their keys and retry backoff.

use sha2::{Digest, Sha256};

use crate::alerting::Notification;
use crate::config::Alerting;
use crate::ledger::OutboxRow;

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

/// The outbox rows of notifications: one per integration of each notification's receiver.
pub fn outbox_rows(alerting: &Alerting, notes: &[Notification]) -> Vec<OutboxRow> {
    let mut out = Vec::new();
    for n in notes {
        let Some(r) = alerting.receivers.get(&n.receiver) else {
            continue;
        };
        let payload = serde_json::to_string(n).unwrap_or_default();
        for integration in r.integrations.iter().map(|i| i.kind()) {
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

/// Seconds before the next attempt after `attempts` failures: 1, 2, 4 … capped at 5 minutes.
pub fn retry_after(attempts: i64) -> i64 {
    (1i64 << attempts.clamp(0, 30)).min(300)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stable id from a key (SHA-256, hex).
pub fn digest(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// The Message-ID of a notification key.
pub fn message_id(key: &str) -> String {
    format!("<{}@cellwatch>", &digest(key)[..32])
}
