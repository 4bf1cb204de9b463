//! The generated rules and targets for the example configuration are committed under `alerts/`:
//! they must not drift from the generator, `promtool check rules` must accept them, and the unit
//! tests in `alerts/cellwatch-slo.rules.test.yml` must pass under `promtool test rules`. Every
//! query the engine builds is valid PromQL that selects exactly its cells, dotted names included.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p cellwatch-slo --test rules`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cellwatch_slo::config;
use cellwatch_slo::generate::prometheus as rules;
use cellwatch_slo::source::prometheus::{selector, up_query};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example() -> config::Config {
    config::load(&root().join("slo-engine/examples/cells.yaml")).unwrap()
}

fn golden(file: &str, have: &str) {
    let path = root().join("alerts").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, have).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "alerts/{file} drifted from `cellwatch-slo`: regenerate with UPDATE_GOLDEN=1 cargo test -p cellwatch-slo --test rules"
    );
}

fn promtool(args: &[&str]) -> (bool, String) {
    promtool_in(&root().join("alerts"), args)
}

/// promtool run in `dir`: (success, stdout and stderr).
///
/// `promtool test rules` keeps a scratch TSDB per test group in `$TMPDIR`; each run gets a
/// private one. promtool 2.42 (Debian 12's) panics instead of reporting when it cannot close
/// that scratch storage (prometheus/prometheus#13703, fixed upstream by #13822), which
/// happens now and then on a loaded machine and says nothing about the rules: such a crash,
/// and only it, is retried, twice at most, and every attempt's output is kept for the message.
fn promtool_in(dir: &Path, args: &[&str]) -> (bool, String) {
    run_retrying_storage_crash("promtool", dir, args)
}

fn run_retrying_storage_crash(program: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    let mut seen = String::new();
    let mut attempt = 1;
    loop {
        let (ok, out) = run_once(program, dir, args);
        let crashed_closing_storage = !ok && out.contains("promql.(*LazyLoader).Close");
        if !crashed_closing_storage || attempt == 3 {
            return (ok, seen + &out);
        }
        eprintln!(
            "{program} {args:?}: crashed closing its scratch storage (attempt {attempt}); again"
        );
        seen += &format!("--- attempt {attempt}: crashed closing its scratch storage\n{out}\n");
        attempt += 1;
    }
}

fn run_once(program: &str, dir: &Path, args: &[&str]) -> (bool, String) {
    let scratch = tempfile::tempdir().expect("a scratch directory for promtool");
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("TMPDIR", scratch.path())
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

// The retry above takes promtool's scratch-storage crash, and nothing else: a stand-in that
// crashes that way once passes on its second run; one that fails otherwise runs once.
#[cfg(unix)]
#[test]
fn only_a_crash_closing_promtools_scratch_storage_is_retried() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let stand_in = |name: &str, first: &str| {
        let path = dir.path().join(name);
        let script = format!(
            "#!/bin/sh\necho run >> \"$0.runs\"\n\
             if [ \"$(wc -l < \"$0.runs\")\" -eq 1 ]; then echo '{first}' >&2; exit 2; fi\n\
             echo '  SUCCESS'\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let runs = |p: &str| {
        std::fs::read_to_string(format!("{p}.runs"))
            .unwrap()
            .lines()
            .count()
    };

    let crash = stand_in(
        "crash",
        "github.com/prometheus/prometheus/promql.(*LazyLoader).Close(0xc000dce780)",
    );
    let (ok, out) = run_retrying_storage_crash(&crash, dir.path(), &["test", "rules"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    assert!(
        out.contains("--- attempt 1: crashed closing its scratch storage"),
        "{out}"
    );
    assert_eq!(runs(&crash), 2);

    let fails = stand_in("fails", "  FAILED: alertname: CellAvailabilityBudgetBurn");
    let (ok, out) = run_retrying_storage_crash(&fails, dir.path(), &["test", "rules"]);
    assert!(
        !ok && out.contains("FAILED") && !out.contains("attempt"),
        "{out}"
    );
    assert_eq!(runs(&fails), 1);
}

#[test]
fn committed_rules_and_targets_match_the_generator() {
    let c = example();
    golden("cellwatch-slo.rules.yml", &rules::rules(&c));
    golden("targets.json", &rules::targets(&c));
    let t: serde_json::Value = serde_json::from_str(&rules::targets(&c)).unwrap();
    assert_eq!(t.as_array().unwrap().len(), 5);
    assert_eq!(t[4]["labels"]["rack"], "r12");
    assert_eq!(t[0]["targets"][0], "studio-a-1.local:9817");
}

#[test]
fn promtool_checks_and_unit_tests_pass() {
    let (ok, out) = promtool(&["check", "rules", "cellwatch-slo.rules.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "cellwatch-slo.rules.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
}

#[test]
fn example_prometheus_and_alertmanager_configs_are_valid() {
    // promtool reads the rule files and the file_sd targets the example refers to.
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"]);
    assert!(ok && out.contains("SUCCESS: 1 rule files found"), "{out}");
    let out = Command::new("amtool")
        .args(["check-config", "alertmanager.yml"])
        .current_dir(root().join("alerts"))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "amtool: {e} (Debian package `prometheus-alertmanager`; ./scripts/test installs it)"
            )
        });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("SUCCESS"), "{text}");
    // Alerts are grouped by cell (routes inherit it).
    let am = std::fs::read_to_string(root().join("alerts/alertmanager.yml")).unwrap();
    assert!(am.contains("group_by: [cell]"));
}

// Every PromQL expression the engine builds is accepted by Prometheus and selects exactly the
// configured cells, for cell names with dots and colons (`studio-a.ams1`, `gpu:pool`): the
// rules, the `prometheus` source's sample selector and its `up` query.

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

/// A YAML single-quoted scalar: backslashes stay as they are, quotes are doubled.
fn yaml(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[test]
fn the_rules_for_dotted_cell_names_are_valid_promql() {
    let dir = tempfile::tempdir().unwrap();
    let config = config::parse(&config_text(), std::path::Path::new("cells.yaml")).unwrap();
    std::fs::write(dir.path().join("rules.yml"), rules::rules(&config)).unwrap();
    let (ok, out) = promtool_in(dir.path(), &["check", "rules", "rules.yml"]);
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
    let (ok, out) = promtool_in(dir.path(), &["test", "rules", "queries.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}\n{test}");
}
