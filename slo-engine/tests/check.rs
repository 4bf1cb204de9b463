//! `cellwatch-slo check` as a user runs it.

use std::process::Command;

fn check(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellwatch-slo"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .expect("run cellwatch-slo")
}

#[test]
fn the_example_is_valid() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cells.yaml");
    let out = check(&example);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ok: 2 cells, 5 nodes, 4 SLOs"), "{stdout}");
}

#[test]
fn a_broken_config_exits_non_zero_with_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.yaml");
    std::fs::write(
        &path,
        "cells:\n  - name: a\n    nodes:\n      - { name: n, url: \"http://n:9817/metrics\" }\nslos:\n  - name: x\n    objective: 0.99\n    period: 30d\n    sli: { latency: { threshold: 3s } }\n",
    )
    .unwrap();
    let out = check(&path);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken.yaml:9: slos[0].sli.latency.threshold: 3s is not a bucket bound"),
        "{err}"
    );
    let out = check(&dir.path().join("missing.yaml"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.yaml"));
}
