//! End to end: `cellwatch-slo backtest` on a history from OpenMetrics files and from a real
//! Prometheus holding the same history (blocks made by `promtool tsdb create-blocks-from
//! openmetrics`), two configurations compared on it: the same alerts either way, and the
//! `incident` policy says less than `grouped`.

use std::process::Command;

use cellwatch_e2e::prometheus::Prometheus;
use cellwatch_slo::backtest;
use serde_json::Value;

const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

/// The scenario cell with an availability SLO, read from Prometheus at `url`, its routes
/// notifying by `policy`.
fn config(policy: &str) -> String {
    let nodes: String = NODES
        .iter()
        .map(|n| format!("      - {{ name: {n}, url: \"http://{n}:9817/metrics\" }}\n"))
        .collect();
    format!(
        "cells:\n  - name: cell-a\n    nodes:\n{nodes}\
         source:\n  prometheus: {{ url: \"http://127.0.0.1:9\", interval: 15s }}\n\
         slos:\n  - {{ name: availability, objective: 0.999, period: 30d, sli: {{ availability: {{}} }} }}\n\
         alerting:\n  receivers:\n    - {{ name: pager, webhook: {{ url: \"http://127.0.0.1:9/hook\" }} }}\n\
         \x20 routes:\n    - {{ receiver: pager, notify: {policy} }}\n"
    )
}

fn backtest(args: &[&str]) -> Value {
    let out = Command::new(cellwatch_e2e::binary("cellwatch-slo"))
        .arg("backtest")
        .args(args)
        .output()
        .expect("run cellwatch-slo backtest");
    assert!(
        out.status.success(),
        "backtest {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// (alertname, fired, resolved) of every episode.
fn episodes(b: &Value) -> Vec<(String, i64, i64)> {
    b["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["alertname"].as_str().unwrap().to_string(),
                a["fired_at"].as_i64().unwrap(),
                a["resolved_at"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[tokio::test]
async fn openmetrics_files_and_a_real_prometheus_replay_alike() {
    // Every node down for 20 minutes: the series the availability SLO reads, and `up`.
    let s = backtest::scenario("all-down-and-back").unwrap();
    let keep = ["cellwatch_inference_requests_total", "up"];
    let series: Vec<_> = s
        .history
        .into_iter()
        .filter(|x| keep.contains(&x.labels["__name__"].as_str()))
        .collect();
    let series = backtest::with_period(series, s.from);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.om");
    std::fs::write(&file, backtest::openmetrics::write(&series)).unwrap();
    for (name, policy) in [("incident.yaml", "incident"), ("grouped.yaml", "grouped")] {
        std::fs::write(dir.path().join(name), config(policy)).unwrap();
    }
    let (incident, grouped) = (
        dir.path().join("incident.yaml"),
        dir.path().join("grouped.yaml"),
    );
    let (from, to) = (
        cellwatch_slo::util::time::rfc3339(s.from),
        cellwatch_slo::util::time::rfc3339(s.to),
    );
    let range = [
        "--from",
        from.as_str(),
        "--to",
        to.as_str(),
        "--format",
        "json",
    ];

    // From the file, two configurations compared.
    let mut args = vec!["--openmetrics", file.to_str().unwrap()];
    args.extend(["--config", incident.to_str().unwrap()]);
    args.extend(["--config", grouped.to_str().unwrap()]);
    args.extend(range);
    let files = backtest(&args);
    let (a, b) = (&files["backtests"][0], &files["backtests"][1]);
    let down = episodes(a);
    // CellDown pages; the no-data tickets it inhibits fire but are never told.
    let names: Vec<&str> = down.iter().map(|d| d.0.as_str()).collect();
    assert!(
        names.iter().filter(|n| **n == "CellwatchCellDown").count() == 1,
        "{down:?}"
    );
    assert!(
        names
            .iter()
            .all(|n| ["CellwatchCellDown", "CellwatchSLONoData"].contains(n))
    );
    assert_eq!(
        episodes(b),
        down,
        "the policy changes notifications, not alerts"
    );
    assert_eq!(
        a["notifications"].as_array().unwrap().len(),
        2,
        "{:#?}",
        a["notifications"]
    );
    assert!(b["notifications"].as_array().unwrap().len() >= 2);

    // The same history in a real Prometheus.
    let prom = Prometheus::start_with("scrape_configs: []\n", &[], |data| {
        let out = Command::new("promtool")
            .args(["tsdb", "create-blocks-from", "openmetrics"])
            .arg(&file)
            .arg(data)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    })
    .await;
    let mut args = vec!["--prometheus", prom.base.as_str()];
    args.extend(["--config", incident.to_str().unwrap()]);
    args.extend(range);
    let from_prom = backtest(&args);
    let p = &from_prom["backtests"][0];
    assert_eq!(episodes(p), down, "{}", prom.log());
    assert_eq!(p["notifications"], a["notifications"]);
}
