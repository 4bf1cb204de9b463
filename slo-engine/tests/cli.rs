//! The command line as a user sees it: `--help` of the engine, of `run` and of its demo are
//! snapshot-tested (the doc comments are the help text), and bad demo flags exit 2 with a
//! message naming the flag. Regenerate with `UPDATE_GOLDEN=1 cargo test -p cellwatch-slo --test cli`.

use std::path::Path;
use std::process::Command;

fn slo(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellwatch-slo"))
        .args(args)
        .output()
        .expect("run cellwatch-slo")
}

fn snapshot(file: &str, have: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/snapshots")
        .join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, have).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "output drifted from tests/snapshots/{file} (UPDATE_GOLDEN=1 to accept):\n{have}"
    );
}

#[test]
fn help_matches_the_snapshots() {
    for (args, file) in [
        (&["--help"][..], "help.txt"),
        (&["demo", "--help"][..], "demo-help.txt"),
        (&["run", "--help"][..], "run-help.txt"),
        (&["backtest", "--help"][..], "backtest-help.txt"),
    ] {
        let out = slo(args);
        assert!(out.status.success(), "{args:?}");
        snapshot(file, &String::from_utf8(out.stdout).unwrap());
    }
    let top = String::from_utf8(slo(&["--help"]).stdout).unwrap();
    for c in [
        "run",
        "demo",
        "dashboards",
        "rules",
        "targets",
        "report",
        "check",
    ] {
        assert!(top.contains(&format!("\n  {c} ")), "{c} missing:\n{top}");
    }
}

#[test]
fn bad_demo_flags_exit_2_and_name_the_flag() {
    for (args, needle) in [
        (&["demo", "--incident-for", "10s"][..], "--incident-for"),
        (&["demo", "--duration", "soon"][..], "--duration"),
        (&["demo", "--port", "65530"][..], "--port"),
        (
            &["run", "--config", "x", "--web.read-timeout", "1ms"][..],
            "--web.read-timeout",
        ),
        (
            &["run", "--config", "x", "--web.max-connections", "0"][..],
            "--web.max-connections",
        ),
    ] {
        let out = slo(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn bad_trace_flags_exit_2_and_name_the_flag() {
    let run = |more: &[&'static str]| -> Vec<&'static str> {
        let mut v = vec!["run", "--config", "missing.yaml"];
        v.extend_from_slice(more);
        v
    };
    for (args, needle) in [
        (
            run(&["--otlp.endpoint", "collector:4318"]),
            "cellwatch-slo: --otlp.endpoint collector:4318: ",
        ),
        (
            run(&[
                "--otlp.endpoint",
                "https://c:4317",
                "--otlp.protocol",
                "grpc",
            ]),
            "cellwatch-slo: --otlp.endpoint https://c:4317/: gRPC export takes an http:// endpoint",
        ),
        (
            vec!["demo", "--otlp.endpoint", "not a url"],
            "cellwatch-slo: --otlp.endpoint not a url: ",
        ),
        (
            run(&[
                "--otlp.endpoint",
                "http://c:4318",
                "--otlp.header",
                "bad name=x",
            ]),
            "cellwatch-slo: --otlp.header bad name: ",
        ),
        (
            run(&[
                "--otlp.endpoint",
                "http://c:4318",
                "--otlp.sample-ratio",
                "2",
            ]),
            "--otlp.sample-ratio",
        ),
        (run(&["--otlp.header", "novalue"]), "--otlp.header"),
    ] {
        let out = slo(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("missing.yaml"), "flags first: {err}");
    }
}

#[test]
fn a_missing_exporter_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = slo(&[
        "demo",
        "--exporter",
        "/nonexistent/cellwatch-exporter",
        "--dir",
        dir.path().to_str().unwrap(),
        "--port",
        "29990",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/nonexistent/cellwatch-exporter"), "{err}");
}
