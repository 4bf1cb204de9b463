//! OpenSLO v1 import: the example's documents become SLOs with the right objectives, periods,
//! budgeting and queries; a broken document is refused with its file, line and field.

use std::path::Path;
use std::time::Duration;

use cellwatch_slo::config::{self, Budgeting, Period, RatioQueries, Sli};

#[test]
fn the_example_imports() {
    let c =
        config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openslo/cells.yaml"))
            .unwrap();
    let names: Vec<&str> = c.slos.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "availability",
            "gateway-ok",
            "cell-latency-2s",
            "studio-a-good-minutes"
        ]
    );
    let latency = &c.slos[2];
    assert_eq!(latency.objective, 0.99);
    assert_eq!(latency.cells, ["studio-a", "gpu-pool"]);
    assert_eq!(
        latency.period,
        Period::Rolling(Duration::from_secs(28 * 86400))
    );
    assert_eq!(latency.budgeting, Budgeting::Occurrences);
    let Sli::Ratio(RatioQueries {
        good: Some(good),
        bad: None,
        total,
        counter: true,
    }) = &latency.sli
    else {
        panic!("{:?}", latency.sli)
    };
    assert!(
        good.contains("le=~\"2|2.0\"") && total.ends_with("_count)"),
        "{good} {total}"
    );

    let minutes = &c.slos[3];
    assert_eq!(minutes.cells, ["studio-a"]);
    assert_eq!(
        minutes.period,
        Period::CalendarMonth(chrono_tz::Europe::Berlin)
    );
    assert_eq!(
        minutes.budgeting,
        Budgeting::Timeslices {
            slice: Duration::from_secs(60),
            slice_target: 0.95
        }
    );
    let Sli::Ratio(q) = &minutes.sli else {
        panic!()
    };
    assert!(q.good.is_none() && q.bad.as_deref().is_some_and(|b| b.contains("server_error")));
}

fn load(slos: &str, source: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slos.yaml"), slos).unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n  - name: a\n    nodes:\n      - {{ name: n, url: \"http://n:9817/metrics\" }}\n\
             source:\n  {source}\nopenslo: [slos.yaml]\n"
        ),
    )
    .unwrap();
    match config::load(&cfg) {
        Ok(c) => format!("ok: {} SLOs", c.slos.len()),
        Err(e) => e.to_string(),
    }
}

const PROM: &str = "prometheus: { url: \"http://p:9090\" }";

const GOOD: &str = "apiVersion: openslo/v1
kind: SLO
metadata:
  name: s
spec:
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 30d
      isRolling: true
  indicator:
    spec:
      ratioMetric:
        counter: true
        good: { metricSource: { type: Prometheus, spec: { query: sum(good_total) } } }
        total: { metricSource: { type: Prometheus, spec: { query: sum(all_total) } } }
  objectives:
    - target: 0.99
";

#[test]
fn broken_documents_name_file_line_and_field() {
    assert_eq!(load(GOOD, PROM), "ok: 1 SLOs");
    let e = load(GOOD, "scrape: {}");
    assert!(
        e.contains("openslo") && e.contains("need source: prometheus"),
        "{e}"
    );
    // Line numbers count from the top of the file, across documents.
    let two = format!(
        "{GOOD}---\n{}",
        GOOD.replace("name: s", "name: t")
            .replace("target: 0.99", "target: 1.5")
    );
    let e = load(&two, PROM);
    assert!(
        e.contains("slos.yaml:35: spec.objectives[0]: SLO \"t\" (imported from OpenSLO)"),
        "{e}"
    );
    let e = load(
        &GOOD.replace(
            "type: Prometheus, spec: { query: sum(good_total) }",
            "type: Datadog, spec: { query: x }",
        ),
        PROM,
    );
    assert!(
        e.contains("slos.yaml:14:") && e.contains("only Prometheus"),
        "{e}"
    );
    let e = load(&GOOD.replace("duration: 30d", "duration: 1M"), PROM);
    assert!(
        e.contains("slos.yaml:8: spec.timeWindow[0].duration")
            && e.contains("calendar window of 1M"),
        "{e}"
    );
    let e = load(&GOOD.replace("Occurrences", "RatioTimeslices"), PROM);
    assert!(
        e.contains("spec.budgetingMethod") && e.contains("not supported"),
        "{e}"
    );
    let e = load(
        &GOOD.replace("target: 0.99", "target: 0.99\n    - target: 0.9"),
        PROM,
    );
    assert!(e.contains("split it"), "{e}");
    let e = load(&GOOD.replace("counter: true", "counter: maybe"), PROM);
    assert!(e.contains("slos.yaml:13:") && e.contains("counter"), "{e}");
    let e = load(&GOOD.replace("openslo/v1", "openslo/v1alpha"), PROM);
    assert!(
        e.contains("slos.yaml:1: apiVersion") && e.contains("only openslo/v1"),
        "{e}"
    );
    let e = load(
        &GOOD.replace(
            "  indicator:\n    spec:",
            "  indicatorRef: nope\n  x:\n    spec:",
        ),
        PROM,
    );
    assert!(e.contains("no SLI document named \"nope\""), "{e}");
}

#[test]
fn openslo_files_are_bounded_together() {
    // Each file is under its own 4 MiB limit; five of them pass the 16 MiB for all together
    // (every document is kept until all are read).
    let dir = tempfile::tempdir().unwrap();
    let comment = format!("# {}\n", "x".repeat(1000));
    let body = "apiVersion: openslo/v1\nkind: Service\nmetadata: { name: s }\n".to_string()
        + &comment.repeat(3900);
    let paths: Vec<std::path::PathBuf> = (0..5)
        .map(|i| {
            let p = dir.path().join(format!("big-{i}.yaml"));
            std::fs::write(&p, &body).unwrap();
            p
        })
        .collect();
    let e = cellwatch_slo::config::openslo::import(&paths)
        .unwrap_err()
        .to_string();
    assert!(e.contains("together pass the limit of 16 MiB"), "{e}");
    assert!(e.contains("big-4.yaml"), "{e}");
    assert!(
        cellwatch_slo::config::openslo::import(&paths[..3]).is_ok(),
        "three files stay under the limit"
    );
}

#[test]
fn a_tpot_histogram_ratio_imports_as_its_queries() {
    // OpenSLO ratios stay PromQL ratio SLIs, kept as written (as the latency histogram of the
    // example does): a `tpot` SLI reads the whole cell's histogram, while the user's query may
    // filter (a model here), which a `tpot` SLI would silently drop.
    let h = "cellwatch_inference_time_per_output_token_seconds";
    let tpot = GOOD
        .replace(
            "query: sum(good_total)",
            &format!("query: 'sum(increase({h}_bucket{{le=\"0.1\",model=\"llama\"}}[5m]))'"),
        )
        .replace(
            "query: sum(all_total)",
            &format!("query: 'sum(increase({h}_count{{model=\"llama\"}}[5m]))'"),
        );
    assert_eq!(load(&tpot, PROM), "ok: 1 SLOs");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("slos.yaml"), &tpot).unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n  - name: a\n    nodes:\n      - {{ name: n, url: \"http://n:9817/metrics\" }}\n\
             source:\n  {PROM}\nopenslo: [slos.yaml]\n"
        ),
    )
    .unwrap();
    let c = config::load(&cfg).unwrap();
    let Sli::Ratio(q) = &c.slos[0].sli else {
        panic!("{:?}", c.slos[0].sli)
    };
    assert_eq!(
        q.good.as_deref(),
        Some(format!("sum(increase({h}_bucket{{le=\"0.1\",model=\"llama\"}}[5m]))").as_str())
    );
    assert!(q.total.contains("_count{model=\"llama\"}"), "{}", q.total);
}
