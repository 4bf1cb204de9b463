//! Tests only: a backtest to render, and a check that markup is well formed.

use crate::backtest::result::{Backtest, Episode, Incident, Point, Sent, SloSeries, Threshold};

/// 2026-12-03T00:00:00Z.
pub const FROM: i64 = 1_796_256_000;
/// Two hours later.
pub const TO: i64 = FROM + 7200;
pub const ONSET: i64 = FROM + 1800;
pub const RECOVERY: i64 = FROM + 3600;

fn thresholds() -> Vec<Threshold> {
    [("page 1h", 14.4), ("page 6h", 6.0), ("ticket 3d", 1.0)]
        .map(|(label, factor)| Threshold {
            label: label.into(),
            factor,
        })
        .to_vec()
}

/// Availability: 12 points every 10 min; the 1 h burn missing at points 4 and 5, the 3 d burn
/// at point 0; the budget down to 45 %.
fn availability() -> Vec<Point> {
    (0..12)
        .map(|i| Point {
            at: FROM + i * 600,
            budget_remaining: Some(1.0 - 0.05 * i as f64),
            burn_1h: (i != 4 && i != 5).then_some(0.5 + i as f64),
            burn_6h: Some(0.2 * i as f64 + 0.1),
            burn_3d: (i != 0).then_some(0.3),
        })
        .collect()
}

/// Latency: the budget missing at point 3, down to 88 %.
fn latency() -> Vec<Point> {
    (0..12)
        .map(|i| Point {
            at: FROM + i * 600,
            budget_remaining: (i != 3).then_some(0.99 - 0.01 * i as f64),
            burn_1h: Some(2.0),
            burn_6h: Some(1.0),
            burn_3d: Some(0.5),
        })
        .collect()
}

fn episode(slo: &str, severity: &str, after: i64, resolved_at: Option<i64>) -> Episode {
    Episode {
        alertname: "CellwatchErrorBudgetBurn".into(),
        cell: "studio-a".into(),
        slo: slo.into(),
        severity: severity.into(),
        labels: [("cell".to_string(), "studio-a".to_string())].into(),
        active_since: ONSET,
        fired_at: ONSET + after,
        resolved_at,
        detection_seconds: Some(after),
        reset_seconds: resolved_at.map(|t| t - RECOVERY),
        notified: true,
    }
}

fn sent(at: i64, receiver: &str, status: &str, page: bool, incident: &str) -> Sent {
    Sent {
        at,
        receiver: receiver.into(),
        cell: "studio-a".into(),
        status: status.into(),
        reason: if status == "resolved" {
            "all_resolved"
        } else {
            "new_alerts"
        }
        .into(),
        incident: incident.into(),
        page,
        alerts: vec![format!(
            "CellwatchErrorBudgetBurn{{availability,page}} {status}"
        )],
    }
}

/// A full outage of 30 minutes: a page 58 s in (one incident, a page and its resolve, 2
/// notifications), a latency ticket 10 min in, still firing at the end (its own incident).
pub fn backtest() -> Backtest {
    Backtest {
        config: "a.yaml".into(),
        history: "scenario full-outage".into(),
        ledger: "sqlite".into(),
        from: FROM,
        to: TO,
        interval: 30,
        onset: Some(ONSET),
        recovery: Some(RECOVERY),
        alerts: vec![
            episode("availability", "page", 58, Some(RECOVERY + 300)),
            episode("latency", "ticket", 600, None),
        ],
        notifications: vec![
            sent(ONSET + 60, "oncall", "firing", true, "k1"),
            sent(ONSET + 630, "tickets", "firing", false, "k2"),
            sent(RECOVERY + 330, "oncall", "resolved", false, "k1"),
        ],
        incidents: vec![
            Incident {
                key: "k1".into(),
                receiver: "oncall".into(),
                cell: "studio-a".into(),
                opened_at: ONSET + 60,
                resolved_at: Some(RECOVERY + 330),
                notifications: 2,
                pages: 1,
                alerts: vec!["CellwatchErrorBudgetBurn{availability,page}".into()],
            },
            Incident {
                key: "k2".into(),
                receiver: "tickets".into(),
                cell: "studio-a".into(),
                opened_at: ONSET + 630,
                resolved_at: None,
                notifications: 1,
                pages: 0,
                alerts: vec!["CellwatchErrorBudgetBurn{latency,ticket}".into()],
            },
        ],
        series: vec![
            SloSeries {
                cell: "studio-a".into(),
                slo: "availability".into(),
                objective: 0.999,
                thresholds: thresholds(),
                points: availability(),
            },
            SloSeries {
                cell: "studio-a".into(),
                slo: "latency".into(),
                objective: 0.99,
                thresholds: thresholds(),
                points: latency(),
            },
        ],
        evaluations: 240,
        replay_seconds: 0.25,
    }
}

/// Whether every tag of `markup` is closed in order (void `meta` and `/>` aside), and every
/// `&` starts an entity: the first problem, if any.
pub fn unbalanced(markup: &str) -> Option<String> {
    let mut open: Vec<String> = Vec::new();
    let mut rest = markup;
    while let Some(i) = rest.find('<') {
        let text = &rest[..i];
        for (j, _) in text.match_indices('&') {
            let ok = ["&amp;", "&lt;", "&gt;", "&quot;"]
                .iter()
                .any(|e| text[j..].starts_with(e));
            if !ok {
                return Some(format!("bare & in {text:?}"));
            }
        }
        let Some(end) = rest[i..].find('>').map(|e| e + i) else {
            return Some(format!("unterminated tag {:?}", &rest[i..]));
        };
        let tag = &rest[i + 1..end];
        rest = &rest[end + 1..];
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '-')
            .collect();
        if tag.starts_with('!') || tag.ends_with('/') || name == "meta" {
            continue;
        }
        if tag.starts_with('/') {
            match open.pop() {
                Some(o) if o == name => {}
                o => return Some(format!("</{name}> closes {o:?}")),
            }
        } else {
            open.push(name);
        }
    }
    (!open.is_empty()).then(|| format!("unclosed {open:?}"))
}
