//! The Grafana dashboards under `dashboards/` come from `cellwatch-slo dashboards`: they must not
//! drift from the generator, each must validate against the JSON Schema of Grafana's
//! `Dashboard` type (`slo-engine/testdata/grafana/dashboard.schema.json`, @grafana/schema 13.2.3), and
//! every PromQL expression in them must parse (`promtool check rules`). Whether every panel
//! shows data from a real Prometheus is the end-to-end test `demo`.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test -p cellwatch-slo --test dashboards`.

use std::path::{Path, PathBuf};
use std::process::Command;

use cellwatch_slo::generate::dashboards;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn committed() -> Vec<(String, String)> {
    let mut files: Vec<(&str, String)> = dashboards::all()
        .iter()
        .map(|(n, v)| (*n, dashboards::render(v)))
        .collect();
    files.push((
        "provisioning/dashboards.yml",
        dashboards::PROVIDER_YAML.into(),
    ));
    files.push((
        "provisioning/datasources.yml",
        dashboards::DATASOURCE_YAML.into(),
    ));
    files.into_iter().map(|(n, t)| (n.to_string(), t)).collect()
}

#[test]
fn committed_dashboards_match_the_generator() {
    let dir = root().join("dashboards");
    for (name, have) in committed() {
        let path = dir.join(&name);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &have).unwrap();
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "dashboards/{name} drifted from `cellwatch-slo dashboards`: regenerate with UPDATE_GOLDEN=1 cargo test -p cellwatch-slo --test dashboards"
        );
    }
    let json = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(
        json,
        dashboards::all().len(),
        "a stray dashboard in dashboards/"
    );
}

#[test]
fn dashboards_validate_against_grafanas_schema() {
    let path = root().join("slo-engine/testdata/grafana/dashboard.schema.json");
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (name, d) in dashboards::all() {
        let errors: Vec<String> = validator
            .iter_errors(&d)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{name}:\n{}", errors.join("\n"));
    }
    // The schema has teeth: a misspelt field and a panel without a type are refused.
    let mut bad = dashboards::all().remove(0).1;
    bad["graphTooltp"] = serde_json::json!(1);
    bad["panels"][1].as_object_mut().unwrap().remove("type");
    assert!(validator.iter_errors(&bad).count() >= 2);
}

#[test]
fn every_expression_parses_under_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboards\n    rules:\n");
    let mut n = 0;
    for (name, d) in dashboards::all() {
        for (title, e) in dashboards::queries(&d) {
            let e = dashboards::substitute(&e, "c", ".*", ".*", "1m");
            n += 1;
            rules.push_str(&format!(
                "      # {name}: {title}\n      - record: cellwatch_dashboard_check_{n}\n        expr: {}\n",
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    assert!(n > 50, "{n} expressions");
    let file = dir.path().join("exprs.yml");
    std::fs::write(&file, &rules).unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| {
            panic!("promtool: {e} (Debian package `prometheus`; ./scripts/test installs it)")
        });
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains(&format!("SUCCESS: {n} rules")),
        "{text}\n{rules}"
    );
    // promtool does refuse a broken expression.
    std::fs::write(
        &file,
        "groups:\n  - name: x\n    rules:\n      - record: x\n        expr: 'sum(rate(x[1m])'\n",
    )
    .unwrap();
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
}
