//! Delivery of notifications: outbox rows from notifications, and the integrations (SMTP mail,
//! Alertmanager-compatible webhook). Every row carries an idempotency key that receivers can
//! dedup on: the webhook's `groupKey` and each alert's `fingerprint`, and a stable mail
//! `Message-ID` (a resolve is threaded to the incident's first page with `In-Reply-To`).

mod alertmanager;
mod deliver;
mod email;
mod outbox;
mod pagerduty;
mod slack;
mod webhook;

pub use alertmanager::*;
pub use deliver::*;
pub use email::*;
pub use outbox::*;
pub use pagerduty::*;
pub use slack::*;
pub use webhook::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use crate::alerting::Notification;
    use crate::config::Alerting;

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
            pages: true,
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
                    fingerprint: crate::model::fingerprint(&labels(slo)),
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
    }

    #[test]
    fn backoff_is_capped_exponential() {
        let v: Vec<i64> = (0..12).map(retry_after).collect();
        assert_eq!(v, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
    }
}
