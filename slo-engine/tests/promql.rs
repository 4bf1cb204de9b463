//! Every PromQL expression the engine builds is accepted by Prometheus and selects exactly the
//! configured cells, for cell names with dots and colons (`studio-a.ams1`, `gpu:pool`): the
//! rules (`cellwatch-slo rules`), the `prometheus` source's sample selector and its `up`
//! query. Checked by `promtool check rules` and `promtool test rules` (Debian package
//! `prometheus`; ./scripts/test installs it).

use std::process::Command;

use cellwatch_slo::config;
use cellwatch_slo::generate::prometheus::rules;
use cellwatch_slo::source::prometheus::{selector, up_query};

const CELLS: [&str; 2] = ["studio-a.ams1", "gpu:pool"];

fn config_text() -> String {
    format!(
        r#"
cells:
  - name: "{a}"
    nodes:
      - {{ name: a1, url: "http://a1:9817/metrics" }}
  - name: "{b}"
    nodes:
      - {{ name: b1, url: "http://b1:9817/metrics" }}
slos:
  - name: availability
    objective: 0.99
    period: 30d
    sli: {{ availability: {{}} }}
  - name: latency-2s
    objective: 0.99
    period: 30d
    sli: {{ latency: {{ threshold: 2s }} }}
"#,
        a = CELLS[0],
        b = CELLS[1]
    )
}

fn promtool(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (Debian package `prometheus`; ./scripts/test installs it)")
        });
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A YAML single-quoted scalar: backslashes stay as they are, quotes are doubled.
fn yaml(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[test]
fn the_rules_for_dotted_cell_names_are_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let config = config::parse(&config_text(), std::path::Path::new("cells.yaml")).unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules(&config)).unwrap();
    let (ok, out) = promtool(dir.path(), &["check", "rules", "rules.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn the_prometheus_sources_queries_select_dotted_cells_and_only_them() {
    let dir = tempfile::tempdir().unwrap();
    let _up = up_query(&CELLS);
    let _samples = selector(&CELLS, 300);
    // Both queries find the configured cells' series and not those of a cell whose name
    // differs where a dot is.
    let count = |q: &str| yaml(&format!("count by (cell) (count_over_time({q}))"));
    let test = format!(
        r#"rule_files: []
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'up{{cell="studio-a.ams1", instance="a1"}}'
        values: '0 0 0 0 0 0'
      - series: 'up{{cell="gpu:pool", instance="b1"}}'
        values: '1 1 1 1 1 1'
      - series: 'up{{cell="studio-aXams1", instance="x1"}}'
        values: '1 1 1 1 1 1'
      - series: 'cellwatch_inference_requests_total{{cell="studio-a.ams1", node="a1", outcome="ok"}}'
        values: '0+1x5'
      - series: 'cellwatch_inference_requests_total{{cell="studio-aXams1", node="x1", outcome="ok"}}'
        values: '0+1x5'
    promql_expr_test:
      - expr: {up}
        eval_time: 5m
        exp_samples:
          - labels: '{{cell="gpu:pool"}}'
            value: 1
          - labels: '{{cell="studio-a.ams1"}}'
            value: 1
      - expr: {samples}
        eval_time: 5m
        exp_samples:
          - labels: '{{cell="studio-a.ams1"}}'
            value: 1
"#,
        up = count(&up_query(&CELLS)),
        samples = count(&selector(&CELLS, 300)),
    );
    std::fs::write(dir.path().join("queries.test.yml"), &test).unwrap();
    let (ok, out) = promtool(dir.path(), &["test", "rules", "queries.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}\n{test}");
}
