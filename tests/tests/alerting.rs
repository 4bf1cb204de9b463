//! End to end: the real `cellwatch-slo` scraping four nodes of a cell (pages served by the
//! in-test server), a real SMTP server (aiosmtpd), SQLite and PostgreSQL ledgers. An incident
//! on every node burning two SLOs gives exactly one page mail, then exactly one resolve,
//! threaded to it; with the SMTP server down during the incident, every mail still arrives
//! once; with the engine killed (SIGKILL) and restarted, nothing is lost or doubled.
//!
//! The engine's clock is moved forward through its testing offset file to end the incident:
//! two hours later the 1h and 30m windows no longer see it.

use std::time::{Duration, Instant};

use cellwatch_e2e::recorder::Recorder;
use cellwatch_e2e::smtp::{Smtp, header};
use cellwatch_e2e::upstream::Upstream;
use cellwatch_e2e::{Exporter, first_evaluation, start_engine};
use serde_json::Value;

const SOON: Duration = Duration::from_secs(30);
const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn page(fast: u64, all: u64, ok: u64, bad: u64) -> String {
    format!(
        "# TYPE cellwatch_inference_request_duration_seconds histogram\n\
         cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"2\"}} {fast}\n\
         cellwatch_inference_request_duration_seconds_bucket{{model=\"m\",le=\"+Inf\"}} {all}\n\
         cellwatch_inference_request_duration_seconds_sum{{model=\"m\"}} 1\n\
         cellwatch_inference_request_duration_seconds_count{{model=\"m\"}} {all}\n\
         # TYPE cellwatch_inference_requests_total counter\n\
         cellwatch_inference_requests_total{{model=\"m\",outcome=\"ok\"}} {ok}\n\
         cellwatch_inference_requests_total{{model=\"m\",outcome=\"server_error\"}} {bad}\n"
    )
}

fn config(up: &Upstream, smtp_port: u16) -> String {
    config_with(up, smtp_port, "", "")
}

/// The configuration with more `alerting:` keys and more top-level sections.
fn config_with(up: &Upstream, smtp_port: u16, alerting: &str, top: &str) -> String {
    let nodes: String = NODES
        .iter()
        .map(|n| {
            format!(
                "      - {{ name: {n}, url: \"{}/metrics/{n}\" }}\n",
                up.base
            )
        })
        .collect();
    format!(
        "cells:\n  - name: studio-a\n    nodes:\n{nodes}\
         source:\n  scrape: {{ interval: 1s }}\n\
         slos:\n  - {{ name: latency-2s, objective: 0.99, period: 30d, sli: {{ latency: {{ threshold: 2s }} }} }}\n\
         \x20 - {{ name: availability, objective: 0.99, period: 30d, sli: {{ availability: {{}} }} }}\n\
         alerting:\n  group_wait: 0s\n  group_interval: 2s\n  repeat_interval: 1h\n  resolve_wait: 1s\n\
         \x20 external_url: http://cellwatch.test:9820\n\
         \x20 receivers:\n    - name: oncall\n      email: {{ to: [oncall@example.com], from: cellwatch@example.com, smarthost: \"127.0.0.1:{smtp_port}\", tls: none }}\n\
         \x20 routes:\n    - {{ receiver: oncall, matchers: {{ severity: page }} }}\n{alerting}{top}"
    )
}

fn start(db: &str, cfg: &std::path::Path, clock: &std::path::Path) -> Exporter {
    let clock = clock.to_str().unwrap();
    start_engine(db, cfg, &["--testing.clock-offset-file", clock])
}

async fn wait_mails(smtp: &Smtp, n: usize, e: &Exporter) -> Vec<String> {
    let start = Instant::now();
    loop {
        let m = smtp.mails();
        if m.len() >= n {
            return m;
        }
        assert!(
            start.elapsed() < SOON,
            "{} mails, want {n}\n{}",
            m.len(),
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn firing(e: &Exporter) -> usize {
    let v: Value = serde_json::from_str(&e.get("/api/v1/alerts").await).unwrap();
    v["alerts"]
        .as_array()
        .map_or(0, |a| a.iter().filter(|x| x["state"] == "firing").count())
}

enum Trouble {
    None,
    SmtpDown,
    Sigkill,
}

async fn scenario(db: &str, trouble: Trouble) {
    let up = Upstream::start().await;
    let mut smtp = Smtp::start();
    let (mut e, dir) = started(&up, &smtp, "", "", Some(db)).await;
    let (cfg, clock) = (dir.path().join("cells.yaml"), dir.path().join("clock"));
    if matches!(trouble, Trouble::SmtpDown | Trouble::Sigkill) {
        smtp.stop();
    }

    // The incident: on every node, half the requests slow and a third failing.
    for n in NODES {
        up.set_page(n, &page(50, 100, 70, 30));
    }
    let started = Instant::now();
    let measure = matches!(trouble, Trouble::None);
    while firing(&e).await < 2 {
        assert!(started.elapsed() < SOON, "no page fired\n{}", e.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    match trouble {
        Trouble::SmtpDown => {
            // Ten minutes of SMTP outage, in virtual time: the engine retries with backoff.
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert!(smtp.mails().is_empty());
            std::fs::write(&clock, "600").unwrap();
            smtp.resume();
        }
        Trouble::Sigkill => {
            // The page is queued but cannot be delivered; the engine is killed. Restarted, it
            // delivers the page once.
            let tried = Instant::now();
            while !e.log().contains("delivery failed") {
                assert!(tried.elapsed() < SOON, "no delivery attempt\n{}", e.log());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &e.pid().to_string()])
                .status();
            assert!(smtp.mails().is_empty());
            smtp.resume();
            e = start(db, &cfg, &clock);
        }
        Trouble::None => {}
    }
    let mails = wait_mails(&smtp, 1, &e).await;
    if measure {
        // Measured, not asserted: from the burn appearing on the exporters' pages to the SMTP
        // server holding the mail (1 s scrape and evaluation interval, group_wait 0s).
        eprintln!("burn to mail accepted: {:?}", started.elapsed());
    }
    let subject = header(&mails[0], "Subject").unwrap_or_default();
    assert!(
        subject.starts_with("[FIRING:2] cell studio-a: availability, latency-2s (page)"),
        "{subject}"
    );
    let page_id = header(&mails[0], "Message-ID").unwrap();
    // The status page, which the mail links to, shows the cell and its firing alerts.
    let status = e.get("/").await;
    assert!(
        status.contains("<td class=\"bad\">CellwatchErrorBudgetBurn</td><td>studio-a</td>")
            && status.contains("<section class=\"cell\" id=\"cell-studio-a\">"),
        "{status}"
    );
    // Still burning for a few more evaluations and group intervals: no second page.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(smtp.mails().len(), 1, "{:#?}", smtp.mails());

    // Two hours later the short windows are clean: one resolve, threaded to the page.
    let offset: i64 = std::fs::read_to_string(&clock)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write(&clock, (offset + 7200).to_string()).unwrap();
    let mails = wait_mails(&smtp, 2, &e).await;
    let subject = header(&mails[1], "Subject").unwrap_or_default();
    assert!(subject.starts_with("[RESOLVED] cell studio-a"), "{subject}");
    assert_eq!(header(&mails[1], "In-Reply-To"), Some(page_id));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(smtp.mails().len(), 2, "{:#?}", smtp.mails());
    assert!(mails[0].contains("budget left:"), "{}", mails[0]);
}

fn sqlite(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("ledger.db").display())
}

#[tokio::test]
async fn one_page_then_one_resolve_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&sqlite(&dir), Trouble::None).await;
}

#[tokio::test]
async fn one_page_then_one_resolve_on_postgres() {
    if let Some(db) = cellwatch_e2e::fresh_postgres_db("cw_alert_once") {
        scenario(&db, Trouble::None).await;
    }
}

#[tokio::test]
async fn smtp_down_during_the_incident_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&sqlite(&dir), Trouble::SmtpDown).await;
}

#[tokio::test]
async fn sigkill_between_state_change_and_delivery_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    scenario(&sqlite(&dir), Trouble::Sigkill).await;
}

#[tokio::test]
async fn sigkill_on_postgres() {
    if let Some(db) = cellwatch_e2e::fresh_postgres_db("cw_alert_kill") {
        scenario(&db, Trouble::Sigkill).await;
    }
}

/// Two engines on one PostgreSQL: one leads (records, alerts, delivers), the other stands by.
/// The incident pages once; the leader is killed; the standby takes over within two intervals
/// and the resolve still arrives once, threaded to the page; nothing is counted twice.
#[tokio::test]
async fn two_replicas_on_postgres_page_once_and_fail_over() {
    let Some(db) = cellwatch_e2e::fresh_postgres_db("cw_alert_ha") else {
        return;
    };
    let up = Upstream::start().await;
    for n in NODES {
        up.set_page(n, &page(0, 0, 0, 0));
    }
    let smtp = Smtp::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cells.yaml");
    let clock = dir.path().join("clock");
    std::fs::write(&cfg, config(&up, smtp.port)).unwrap();
    std::fs::write(&clock, "0").unwrap();
    let a = start(&db, &cfg, &clock);
    let waited = Instant::now();
    while !a.log().contains("leading") {
        assert!(waited.elapsed() < SOON, "no leader\n{}", a.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = start(&db, &cfg, &clock);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!b.log().contains("leading"), "two leaders\n{}", b.log());

    for n in NODES {
        up.set_page(n, &page(50, 100, 70, 30));
    }
    let mails = wait_mails(&smtp, 1, &a).await;
    let page_id = header(&mails[0], "Message-ID").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mails().len(), 1, "{:#?}", smtp.mails());

    // Kill the leader; the standby takes over.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &a.pid().to_string()])
        .status();
    let killed = Instant::now();
    while !b.log().contains("took the leader lease") {
        assert!(killed.elapsed() < SOON, "no takeover\n{}", b.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Measured, not asserted (no timed tests): the lease lasts 1.25 s at a 1 s interval.
    eprintln!("failover after {:?} (interval 1s)", killed.elapsed());
    std::fs::write(&clock, "7200").unwrap();
    let mails = wait_mails(&smtp, 2, &b).await;
    assert!(
        header(&mails[1], "Subject")
            .unwrap_or_default()
            .starts_with("[RESOLVED]")
    );
    assert_eq!(header(&mails[1], "In-Reply-To"), Some(page_id));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.mails().len(), 2, "{:#?}", smtp.mails());
    // 400 requests in the period, counted once.
    let v: Value = serde_json::from_str(&b.get("/api/v1/slos").await).unwrap();
    let total = v["slos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["slo"] == "latency-2s")
        .and_then(|s| s["windows"].as_array().unwrap().last().cloned())
        .unwrap()["total"]
        .as_f64();
    assert_eq!(total, Some(400.0), "{v}");
}

/// Starts the engine on SQLite with extra configuration and waits for its first evaluation.
/// Starts the engine with extra configuration, on `db` (default: SQLite in the returned
/// directory, which also holds `cells.yaml` and the `clock` file), and waits until it has its
/// baseline readings.
async fn started(
    up: &Upstream,
    smtp: &Smtp,
    alerting: &str,
    top: &str,
    db: Option<&str>,
) -> (Exporter, tempfile::TempDir) {
    for n in NODES {
        up.set_page(n, &page(0, 0, 0, 0));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cells.yaml");
    let clock = dir.path().join("clock");
    std::fs::write(&cfg, config_with(up, smtp.port, alerting, top)).unwrap();
    std::fs::write(&clock, "0").unwrap();
    let db = db.map_or_else(|| sqlite(&dir), str::to_string);
    let e = start(&db, &cfg, &clock);
    first_evaluation(&e).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (e, dir)
}

async fn incident(up: &Upstream, e: &Exporter) {
    for n in NODES {
        up.set_page(n, &page(50, 100, 70, 30));
    }
    let started = Instant::now();
    while firing(e).await < 2 {
        assert!(started.elapsed() < SOON, "no page fired\n{}", e.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_silence_suppresses_the_page_until_it_expires() {
    let up = Upstream::start().await;
    let smtp = Smtp::start();
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let (e, _dir) = started(
        &up,
        &smtp,
        &format!("  api_token_file: {}\n", token.display()),
        "",
        None,
    )
    .await;
    let client = cellwatch_e2e::http();
    let body = serde_json::json!({
        "matchers": [{"name": "cell", "value": "studio-a", "isRegex": false, "isEqual": true}],
        "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "test",
        "comment": "planned work",
    });
    let post = |auth: Option<&'static str>| {
        let mut r = client
            .post(format!("{}/api/v1/silences", e.base))
            .json(&body);
        if let Some(a) = auth {
            r = r.header("Authorization", a);
        }
        r.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("Bearer wrong")).await.unwrap().status(), 401);
    let ok = post(Some("Bearer s3cret")).await.unwrap();
    assert_eq!(ok.status(), 200);
    let id = ok.json::<Value>().await.unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let list: Value = serde_json::from_str(&e.get("/api/v1/silences").await).unwrap();
    assert_eq!(list["silences"][0]["status"]["state"], "active", "{list}");
    assert!(!e.log().contains("s3cret"), "the token is never logged");

    incident(&up, &e).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(smtp.mails().is_empty(), "{:#?}", smtp.mails());

    // Expired: the page goes out.
    let r = client
        .delete(format!("{}/api/v1/silences/{id}", e.base))
        .header("Authorization", "Bearer s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mails = wait_mails(&smtp, 1, &e).await;
    assert!(
        header(&mails[0], "Subject")
            .unwrap_or_default()
            .starts_with("[FIRING:2]")
    );
}

#[tokio::test]
async fn a_maintenance_window_mutes_and_with_exclusion_leaves_the_budget_alone() {
    let up = Upstream::start().await;
    let smtp = Smtp::start();
    // Before the window: some traffic with a few errors, under the page threshold.
    let (e, dir) = started(&up, &smtp, "", "", None).await;
    for n in NODES {
        up.set_page(n, &page(100, 100, 1000, 1));
    }
    let budget = |v: &Value| -> Vec<(String, f64, Option<f64>)> {
        v["slos"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["slo"].as_str().unwrap().to_string(),
                    s["windows"].as_array().unwrap().last().unwrap()["total"]
                        .as_f64()
                        .unwrap(),
                    s["budget_remaining"].as_f64(),
                )
            })
            .collect()
    };
    let begun = Instant::now();
    let before = loop {
        let v: Value = serde_json::from_str(&e.get("/api/v1/slos").await).unwrap();
        let b = budget(&v);
        if b.iter()
            .any(|(slo, total, _)| slo == "availability" && *total == 4004.0)
        {
            break b;
        }
        assert!(begun.elapsed() < SOON, "{v}\n{}", e.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(e);

    // The same ledger, now with a window starting every minute and lasting two hours (always
    // on) that excludes its slices: the incident neither pages nor touches the budget.
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        config_with(
            &up,
            smtp.port,
            "",
            "maintenance:\n  - { name: upgrade, cells: [studio-a], schedule: \"0 * * * * *\", duration: 2h, exclude_from_budget: true }\n",
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let e = start(&db, &cfg, &dir.path().join("clock"));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for n in NODES {
        up.set_page(n, &page(150, 300, 1100, 200));
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(smtp.mails().is_empty(), "{:#?}", smtp.mails());
    let v: Value = serde_json::from_str(&e.get("/api/v1/slos").await).unwrap();
    assert_eq!(budget(&v), before, "{v}");
    assert!(
        before.iter().any(|(_, _, b)| b.is_some_and(|b| b < 1.0)),
        "some budget was spent before the window: {before:?}"
    );
}

#[tokio::test]
async fn a_maintenance_window_without_exclusion_mutes_but_counts() {
    let up = Upstream::start().await;
    let smtp = Smtp::start();
    let (e, _dir) = started(&up, &smtp,
        "",
        "maintenance:\n  - { name: upgrade, cells: [studio-a], schedule: \"0 * * * * *\", duration: 2h }\n",
        None,
    )
    .await;
    // The alerts fire (the budget burns) but nobody is paged.
    incident(&up, &e).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(smtp.mails().is_empty(), "{:#?}", smtp.mails());
}

#[tokio::test]
async fn webhook_pagerduty_slack_and_a_real_alertmanager_get_the_incident() {
    let up = Upstream::start().await;
    let smtp = Smtp::start();
    let am = cellwatch_e2e::alertmanager::Alertmanager::start().await;
    let (rec, base) = Recorder::start().await;
    let secrets = tempfile::tempdir().unwrap();
    let key = secrets.path().join("pd-key");
    std::fs::write(&key, "R0UT1NG\n").unwrap();
    let receivers = format!(
        "    - name: everywhere\n      webhook: {{ url: \"{base}/webhook\" }}\n\
         \x20     pagerduty: {{ routing_key_file: {}, url: \"{base}/pagerduty\" }}\n\
         \x20     slack: {{ url: \"{base}/slack\" }}\n\
         \x20     alertmanager: {{ url: \"{}\" }}\n",
        key.display(),
        am.base
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cells.yaml");
    let clock = dir.path().join("clock");
    // The default config's receivers and routes, with one more receiver that every page also
    // goes to.
    let text = config(&up, smtp.port)
        .replace(
            "  routes:\n",
            &format!("{receivers}  routes:\n    - {{ receiver: everywhere, matchers: {{ severity: page }}, continue: true }}\n"),
        );
    std::fs::write(&cfg, &text).unwrap();
    std::fs::write(&clock, "0").unwrap();
    for n in NODES {
        up.set_page(n, &page(0, 0, 0, 0));
    }
    let db = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let e = start(&db, &cfg, &clock);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    incident(&up, &e).await;

    // Each integration gets the page once.
    let begun = Instant::now();
    while rec.at("/webhook").is_empty()
        || rec.at("/pagerduty").is_empty()
        || rec.at("/slack").is_empty()
        || am.alerts().await.len() < 2
    {
        assert!(
            begun.elapsed() < SOON,
            "not everywhere yet: {:?}\n{}\n{}",
            rec.all(),
            e.log(),
            am.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hook = &rec.at("/webhook")[0];
    assert_eq!(hook["version"], "4");
    assert_eq!(hook["status"], "firing");
    assert_eq!(hook["groupLabels"]["cell"], "studio-a");
    let pd = &rec.at("/pagerduty")[0];
    assert_eq!(pd["routing_key"], "R0UT1NG");
    assert_eq!(pd["event_action"], "trigger");
    assert!(
        rec.at("/slack")[0]["text"]
            .as_str()
            .unwrap()
            .contains("studio-a")
    );
    // The Alertmanager shows our alerts with our labels.
    let shown = am.alerts().await;
    for a in &shown {
        assert_eq!(a["labels"]["cell"], "studio-a", "{a}");
        assert_eq!(a["labels"]["alertname"], "CellwatchErrorBudgetBurn", "{a}");
        assert_eq!(a["labels"]["severity"], "page", "{a}");
        assert_eq!(a["status"]["state"], "active", "{a}");
    }
    let slos: std::collections::BTreeSet<&str> = shown
        .iter()
        .map(|a| a["labels"]["slo"].as_str().unwrap())
        .collect();
    assert_eq!(slos, ["availability", "latency-2s"].into_iter().collect());

    // Over: one resolve each, PagerDuty's on the page's dedup_key.
    std::fs::write(&clock, "7200").unwrap();
    let begun = Instant::now();
    while rec.at("/pagerduty").len() < 2 || rec.at("/webhook").len() < 2 {
        assert!(begun.elapsed() < SOON, "no resolve\n{}", e.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pd = rec.at("/pagerduty");
    assert_eq!(pd.len(), 2);
    assert_eq!(pd[1]["event_action"], "resolve");
    assert_eq!(pd[1]["dedup_key"], pd[0]["dedup_key"]);
    assert_eq!(rec.at("/webhook")[1]["status"], "resolved");
    assert_eq!(rec.at("/slack").len(), 2);
    assert!(
        !e.log().contains("R0UT1NG"),
        "the routing key is never logged"
    );
}

#[tokio::test]
async fn a_scheduled_report_is_mailed_once_with_its_csv() {
    let up = Upstream::start().await;
    let smtp = Smtp::start();
    for n in NODES {
        up.set_page(n, &page(0, 0, 0, 0));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cells.yaml");
    let clock = dir.path().join("clock");
    std::fs::write(
        &cfg,
        config_with(
            &up,
            smtp.port,
            "  reports:\n    - { name: hourly, schedule: \"0 * * * * *\", range: 1d, receiver: oncall }\n",
            "",
        ),
    )
    .unwrap();
    // Move the engine's clock to 5 seconds before a minute starts: the report is due then.
    let real = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    std::fs::write(&clock, (55 - real.rem_euclid(60)).to_string()).unwrap();
    let db = format!("sqlite://{}", dir.path().join("ledger.db").display());
    let e = start(&db, &cfg, &clock);
    let mails = wait_mails(&smtp, 1, &e).await;
    assert_eq!(
        header(&mails[0], "Subject").as_deref(),
        Some("cellwatch budget report: hourly")
    );
    assert!(
        mails[0].contains("cellwatch budget report "),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("cellwatch-report.csv"), "{}", mails[0]);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(smtp.mails().len(), 1, "once");
}
