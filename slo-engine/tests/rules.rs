//! The generated rules and targets for the example configuration are committed under `alerts/`:
//! they must not drift from the generator, `promtool check rules` must accept them, and the unit
//! tests in `alerts/cellwatch-slo.rules.test.yml` must pass under `promtool test rules`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p cellwatch-slo --test rules`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cellwatch_slo::config;
use cellwatch_slo::generate::prometheus as rules;

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
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root().join("alerts"))
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
