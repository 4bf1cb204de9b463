//! The `tpot` and `throughput` SLIs end to end in virtual time: three hours of four cells'
//! series (as the `prometheus` source reads them) replayed through the ledger (whose SQL judges
//! the throughput slices), the evaluation and the alert state machine. A cell streaming slowly
//! with a backlog pages on both; an idle cell, a lightly loaded one (a scrape catching one
//! request's prefill once a minute) and a healthy loaded cell never alert.

use std::collections::{BTreeMap, BTreeSet};

use cellwatch_slo::backtest::{History, Range, replay};
use cellwatch_slo::ledger::Ledger;
use cellwatch_slo::source::prometheus::Series;

const CONFIG: &str = "\
cells:
  - name: slow
    nodes: [ { name: s1, url: \"http://s1:9817/metrics\" } ]
  - name: idle
    nodes: [ { name: i1, url: \"http://i1:9817/metrics\" } ]
  - name: healthy
    nodes: [ { name: h1, url: \"http://h1:9817/metrics\" } ]
  - name: light
    nodes: [ { name: l1, url: \"http://l1:9817/metrics\" } ]
slos:
  - { name: tpot, objective: 0.99, period: 30d, sli: { tpot: { threshold: 100ms } } }
  - { name: throughput, objective: 0.99, period: 30d, sli: { throughput: { floor: 20 } } }
";

/// How a cell behaves at every 15 s scrape: (streamed requests, of them slower than 100 ms per
/// token, generated tokens, waiting requests at the scrape `i`).
type Traffic = fn(usize) -> (f64, f64, f64, f64);

fn series(name: &str, cell: &str, extra: &[(&str, &str)], samples: Vec<(i64, f64)>) -> Series {
    let mut labels = BTreeMap::from([
        ("__name__".to_string(), name.to_string()),
        ("cell".to_string(), cell.to_string()),
        ("node".to_string(), format!("{}1", &cell[..1])),
        ("instance".to_string(), format!("{}1:9817", &cell[..1])),
        ("job".to_string(), "cellwatch".to_string()),
        ("model".to_string(), "m".to_string()),
    ]);
    for (k, v) in extra {
        labels.insert(k.to_string(), v.to_string());
    }
    Series { labels, samples }
}

/// The cell's counters (cumulative) and gauge over `n` scrapes from `start` (seconds).
fn cell(cell: &str, start: i64, n: usize, traffic: Traffic) -> Vec<Series> {
    let tpot = "cellwatch_inference_time_per_output_token_seconds_bucket";
    let (mut fast, mut all, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    let (mut waiting, mut up) = (Vec::new(), Vec::new());
    let (mut f, mut a, mut t) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let at = (start + 15 * i as i64) * 1000;
        let (req, slow, tok, wait) = traffic(i);
        (f, a, t) = (f + req - slow, a + req, t + tok);
        fast.push((at, f));
        all.push((at, a));
        tokens.push((at, t));
        waiting.push((at, wait));
        up.push((at, 1.0));
    }
    vec![
        series(tpot, cell, &[("le", "0.1")], fast),
        series(tpot, cell, &[("le", "+Inf")], all),
        series(
            "cellwatch_inference_tokens_total",
            cell,
            &[("kind", "generated")],
            tokens,
        ),
        series("cellwatch_inference_requests_waiting", cell, &[], waiting),
        series("up", cell, &[], up),
    ]
}

#[tokio::test]
async fn a_slow_backlogged_cell_pages_and_idle_light_or_healthy_cells_never_alert() {
    let config = cellwatch_slo::config::parse(CONFIG, std::path::Path::new("cells.yaml")).unwrap();
    let start = 20_000 * 86_400;
    let n = 3 * 240; // three hours of 15 s scrapes
    let mut all = Vec::new();
    // Slow: 20 requests per scrape, half of them over 100 ms per token; 150 tokens per 15 s
    // (10 tokens/s, under the floor of 20) while 3 requests wait.
    all.extend(cell("slow", start, n, |_| (20.0, 10.0, 150.0, 3.0)));
    // Idle: nothing streamed, nothing generated, nobody waiting.
    all.extend(cell("idle", start, n, |_| (0.0, 0.0, 0.0, 0.0)));
    // Healthy: every token fast, 600 tokens per 15 s (40 tokens/s) while 2 requests wait.
    all.extend(cell("healthy", start, n, |_| (20.0, 0.0, 600.0, 2.0)));
    // Lightly loaded: every token fast, but as few as `slow` makes (10 tokens/s, under the
    // floor); a request waits only at one scrape in four (its prefill caught 15 s into each
    // minute): requests waited in a quarter of the readings, no minute is judged.
    all.extend(cell("light", start, n, |i| {
        (20.0, 0.0, 150.0, if i % 4 == 1 { 1.0 } else { 0.0 })
    }));
    let history = History {
        series: all,
        origin: "test".into(),
        ..Default::default()
    };
    let ledger = Ledger::open("sqlite::memory:").await.unwrap();
    let range = Range {
        from: start + 60,
        to: start + 3 * 3600,
        exact: false,
    };
    let r = replay(&config, "cells.yaml", &history, &ledger, "sqlite", range)
        .await
        .unwrap();
    ledger.close().await;
    let throughput = |cell: &str| {
        r.series
            .iter()
            .find(|s| s.cell == cell && s.slo == "throughput")
            .unwrap_or_else(|| panic!("no throughput series of {cell}"))
            .points
            .clone()
    };
    // The lightly loaded cell's minutes are never judged: no budget, no burn rate, at any
    // evaluation; the healthy cell's are, and all good.
    let light = throughput("light");
    assert!(!light.is_empty());
    assert!(
        light
            .iter()
            .all(|p| p.budget_remaining.is_none() && p.burn_1h.is_none()),
        "{light:#?}"
    );
    let healthy = throughput("healthy");
    let last = healthy.last().unwrap();
    assert_eq!(
        (last.budget_remaining, last.burn_1h),
        (Some(1.0), Some(0.0))
    );
    // The slow cell's are judged, and all bad: the 1 h window burns at 1 / 1 %.
    let slow = throughput("slow");
    let burn = slow.last().unwrap().burn_1h.unwrap();
    assert!((burn - 100.0).abs() < 1e-6, "{burn}");
    let cells: BTreeSet<&str> = r.alerts.iter().map(|a| a.cell.as_str()).collect();
    assert_eq!(cells, BTreeSet::from(["slow"]), "{:#?}", r.alerts);
    let pages: BTreeSet<&str> = r
        .alerts
        .iter()
        .filter(|a| a.alertname == "CellwatchErrorBudgetBurn" && a.severity == "page")
        .map(|a| a.slo.as_str())
        .collect();
    assert_eq!(
        pages,
        BTreeSet::from(["throughput", "tpot"]),
        "{:#?}",
        r.alerts
    );
}
