//! The scenario suite: every shipped scenario replayed by `cellwatch-slo backtest` (the binary)
//! through `testdata/backtest/cell.yaml`, on SQLite and, with `CELLWATCH_TEST_POSTGRES_URL`, on a
//! fresh PostgreSQL database (the two must agree), and checked against the SRE Workbook:
//! detection time = factor × (1 − objective) × long window / bad ratio, plus at most one
//! evaluation and one scrape (15 s each; windows of a day and more start on the hour, up to an
//! hour longer; a 5-minute time slice is judged once complete); reset times; pages and
//! notifications per incident; silence where nothing should fire. Each test also checks its
//! row of the README's table of measured figures.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

const INTERVAL: f64 = 15.0;
const HOUR: f64 = 3600.0;

fn manifest() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `cellwatch-slo backtest --format json` of `args`, parsed: the one backtest.
fn backtest(args: &[&str]) -> Value {
    let config = manifest().join("testdata/backtest/cell.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_cellwatch-slo"))
        .args(["backtest", "--format", "json", "--config"])
        .arg(&config)
        .args(args)
        .output()
        .expect("run cellwatch-slo backtest");
    assert!(
        out.status.success(),
        "backtest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v["backtests"][0].clone()
}

/// A fresh PostgreSQL database for one replay, when the suite has a server.
fn postgres(name: &str) -> Option<String> {
    let admin = std::env::var("CELLWATCH_TEST_POSTGRES_URL").ok()?;
    let db = format!("cw_bt_{}_{}", name.replace('-', "_"), std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&admin).await.expect("PostgreSQL");
        for sql in [
            format!("DROP DATABASE IF EXISTS {db}"),
            format!("CREATE DATABASE {db}"),
        ] {
            sqlx::query(&sql).execute(&pool).await.unwrap();
        }
        pool.close().await;
    });
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{db}"))
}

/// The scenario on SQLite, and on PostgreSQL when there is one: both say the same.
fn replay(name: &str) -> Value {
    let sqlite = backtest(&["--scenario", name]);
    assert_eq!(sqlite["ledger"], "sqlite");
    match postgres(name) {
        Some(url) => {
            let pg = backtest(&["--scenario", name, "--ledger", &url]);
            assert_eq!(pg["ledger"], "postgres");
            for key in ["alerts", "notifications", "incidents", "evaluations"] {
                assert_eq!(pg[key], sqlite[key], "{name}: {key} differ on PostgreSQL");
            }
        }
        None => assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the suite on PostgreSQL too: set CELLWATCH_TEST_POSTGRES_URL (./scripts/test does)"
        ),
    }
    sqlite
}

fn list(v: &Value, key: &str) -> Vec<Value> {
    v[key].as_array().cloned().unwrap_or_default()
}

/// The episodes that fired, by alertname and severity.
fn fired<'a>(alerts: &'a [Value], name: &str, severity: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| a["alertname"] == name && a["severity"] == severity)
        .collect()
}

/// The incidents of a receiver.
fn incidents(v: &Value, receiver: &str) -> Vec<Value> {
    list(v, "incidents")
        .into_iter()
        .filter(|i| i["receiver"] == receiver)
        .collect()
}

/// Workbook detection of the first tier that fires: min over tiers of f × (1 − o) × long / bad,
/// for the tiers the bad ratio reaches; seconds.
fn workbook(objective: f64, bad: f64, tiers: &[(f64, f64)]) -> f64 {
    tiers
        .iter()
        .filter(|(f, _)| bad / (1.0 - objective) >= *f)
        .map(|(f, long)| f * (1.0 - objective) * long / bad)
        .fold(f64::INFINITY, f64::min)
}

const PAGES: [(f64, f64); 2] = [(14.4, HOUR), (6.0, 6.0 * HOUR)];
const TICKETS: [(f64, f64); 2] = [(3.0, 24.0 * HOUR), (1.0, 72.0 * HOUR)];

fn secs(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// `d` lies within the Workbook's `expected` and one evaluation and one scrape later, plus
/// `slack` (hour-aligned long windows, time slices).
fn within(what: &str, d: f64, expected: f64, slack: f64) {
    let latest = expected + 2.0 * INTERVAL + slack;
    assert!(
        d >= expected.floor() && d <= latest,
        "{what}: {d} s, the Workbook says {expected:.1} s (at most {latest:.1})"
    );
}

fn human(s: f64) -> String {
    let s = s.round() as i64;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min {} s", s / 60, s % 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The README's row for a scenario: name, expected, measured detection and reset, page
/// notifications, and notifications per incident (receiver: count).
fn readme_row(name: &str, expected: &str, v: &Value) {
    let alerts = list(v, "alerts");
    let first = alerts
        .iter()
        .filter(|a| a["notified"] == true)
        .min_by_key(|a| a["fired_at"].as_i64());
    // Reset: when the last episode of that alert resolved, after the recovery.
    let (detection, reset) = match first {
        Some(a) => (
            human(secs(&a["detection_seconds"])),
            alerts
                .iter()
                .filter(|b| b["labels"] == a["labels"])
                .filter_map(|b| b["reset_seconds"].as_f64())
                .fold(None, |m: Option<f64>, r| Some(m.map_or(r, |m| m.max(r))))
                .map_or("-".to_string(), human),
        ),
        None => ("nothing notified".to_string(), "-".to_string()),
    };
    let pages = list(v, "notifications")
        .iter()
        .filter(|n| n["page"] == true)
        .count();
    let per: Vec<String> = list(v, "incidents")
        .iter()
        .map(|i| {
            format!(
                "{} {}",
                i["receiver"].as_str().unwrap_or(""),
                i["notifications"]
            )
        })
        .collect();
    let per = if per.is_empty() {
        "none".to_string()
    } else {
        per.join(", ")
    };
    let row = format!("| {name} | {expected} | {detection} | {reset} | {pages} | {per} |");
    let readme = std::fs::read_to_string(manifest().join("../README.md")).unwrap();
    assert!(
        readme.contains(&row),
        "README.md's scenario table lacks (or has another) row:\n{row}"
    );
}

/// The pager heard of one incident: one page, then one resolve.
fn one_page_one_resolve(v: &Value) {
    let pager = incidents(v, "pager");
    assert_eq!(pager.len(), 1, "{pager:#?}");
    let counts = (
        pager[0]["notifications"].as_u64(),
        pager[0]["pages"].as_u64(),
    );
    assert_eq!(counts, (Some(2), Some(1)), "{pager:#?}");
}

fn nothing_notified(v: &Value) {
    assert!(
        list(v, "notifications").is_empty(),
        "{:#?}",
        v["notifications"]
    );
}

#[test]
fn full_outage_pages_once_and_resolves_once() {
    let v = replay("full-outage");
    let alerts = list(&v, "alerts");
    let pages = fired(&alerts, "CellwatchErrorBudgetBurn", "page");
    assert_eq!(pages.len(), 1, "{alerts:#?}");
    let expected = workbook(0.999, 1.0, &PAGES);
    within("page", secs(&pages[0]["detection_seconds"]), expected, 0.0);
    // The page resolves when its short windows clear: 5 minutes (1h/5m), 30 (6h/30m).
    let reset = secs(&pages[0]["reset_seconds"]);
    assert!(
        (300.0..=1800.0 + 2.0 * INTERVAL).contains(&reset),
        "{reset}"
    );
    // One page and one resolve; no no-data, no cell-down.
    one_page_one_resolve(&v);
    assert!(fired(&alerts, "CellwatchSLONoData", "ticket").is_empty());
    assert!(fired(&alerts, "CellwatchCellDown", "page").is_empty());
    readme_row("full-outage", &human(expected), &v);
    // Evaluating at every interval, as the engine does, gives the same alerts and notifications.
    let exact = backtest(&["--scenario", "full-outage", "--exact"]);
    assert_eq!(exact["alerts"], v["alerts"]);
    assert_eq!(exact["notifications"], v["notifications"]);
    assert!(exact["evaluations"].as_u64() > v["evaluations"].as_u64());
}

/// A 5 % burn at 99.9 % or 99 %: never a page; the tickets at 14.4 h.
fn slow_burn_tickets(name: &str, objective: f64, bad: f64) {
    let v = replay(name);
    let alerts = list(&v, "alerts");
    assert!(
        fired(&alerts, "CellwatchErrorBudgetBurn", "page").is_empty(),
        "{alerts:#?}"
    );
    let tickets = fired(&alerts, "CellwatchErrorBudgetBurn", "ticket");
    assert_eq!(tickets.len(), 1, "{alerts:#?}");
    let expected = workbook(objective, bad, &TICKETS);
    // The 1d and 3d windows start on the hour: up to an hour longer, so up to 1/24 later.
    within(
        &format!("{name} ticket"),
        secs(&tickets[0]["detection_seconds"]),
        expected,
        expected / 24.0,
    );
    assert!(incidents(&v, "pager").is_empty());
    assert_eq!(incidents(&v, "tickets").len(), 1);
    readme_row(name, &human(expected), &v);
}

#[test]
fn a_slow_node_tickets_and_never_pages() {
    slow_burn_tickets("slow-node", 0.99, 0.05);
}

#[test]
fn a_slow_burn_tickets_and_never_pages() {
    slow_burn_tickets("slow-burn", 0.999, 0.005);
}

#[test]
fn flapping_is_one_incident() {
    let v = replay("flapping");
    let alerts = list(&v, "alerts");
    let pages = fired(&alerts, "CellwatchErrorBudgetBurn", "page");
    assert!(pages.len() > 1, "it flaps: {alerts:#?}");
    let expected = workbook(0.999, 1.0, &PAGES);
    within(
        "first page",
        secs(&pages[0]["detection_seconds"]),
        expected,
        0.0,
    );
    // Quiet for less than resolve_wait between bursts: one page, one resolve.
    one_page_one_resolve(&v);
    readme_row("flapping", &human(expected), &v);
}

#[test]
fn low_traffic_never_pages_on_one_failure() {
    let v = replay("low-traffic");
    nothing_notified(&v);
    readme_row("low-traffic", "no page (70 events per hour needed)", &v);
}

#[test]
fn one_node_down_is_silent() {
    let v = replay("one-node-down");
    assert!(list(&v, "alerts").is_empty(), "{:#?}", v["alerts"]);
    readme_row("one-node-down", "nothing fires", &v);
}

#[test]
fn all_nodes_down_and_back_is_one_cell_down_page() {
    let v = replay("all-down-and-back");
    let alerts = list(&v, "alerts");
    let down = fired(&alerts, "CellwatchCellDown", "page");
    assert_eq!(down.len(), 1, "{alerts:#?}");
    // cell_down_for (1 min) once the first scrape missed.
    within("cell down", secs(&down[0]["detection_seconds"]), 60.0, 0.0);
    assert!(secs(&down[0]["reset_seconds"]) <= 2.0 * INTERVAL);
    // No no-data ticket is ever told: inhibited while down, gone once back.
    assert!(
        fired(&alerts, "CellwatchSLONoData", "ticket")
            .iter()
            .all(|a| a["notified"] == false)
    );
    one_page_one_resolve(&v);
    assert!(incidents(&v, "tickets").is_empty());
    readme_row("all-down-and-back", &human(60.0), &v);
}

#[test]
fn benign_noise_is_silent() {
    let v = replay("benign-noise");
    assert!(list(&v, "alerts").is_empty(), "{:#?}", v["alerts"]);
    readme_row("benign-noise", "nothing fires", &v);
}

#[test]
fn an_energy_regression_pages_on_tokens_per_kwh() {
    let v = replay("energy-regression");
    let alerts = list(&v, "alerts");
    let pages = fired(&alerts, "CellwatchErrorBudgetBurn", "page");
    assert_eq!(pages.len(), 1, "{alerts:#?}");
    assert_eq!(pages[0]["slo"], "tokens-per-kwh");
    // Every 5-minute slice bad at 95 %: a slice is judged once complete.
    let expected = workbook(0.95, 1.0, &PAGES);
    within(
        "page",
        secs(&pages[0]["detection_seconds"]),
        expected,
        300.0,
    );
    let pager = incidents(&v, "pager");
    assert_eq!(pager.len(), 1, "{pager:#?}");
    assert_eq!(pager[0]["notifications"].as_u64(), Some(2));
    readme_row("energy-regression", &human(expected), &v);
}

#[test]
fn an_idle_cell_is_silent() {
    let v = replay("idle");
    assert!(list(&v, "alerts").is_empty(), "{:#?}", v["alerts"]);
    readme_row("idle", "nothing fires", &v);
}

#[test]
fn a_maintenance_window_notifies_nothing() {
    let v = replay("maintenance");
    nothing_notified(&v);
    assert!(list(&v, "alerts").iter().all(|a| a["notified"] == false));
    readme_row("maintenance", "nothing notified", &v);
}
