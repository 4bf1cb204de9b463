//! The command line as a user sees it: `--help` is snapshot-tested (the flags' doc comments are
//! the help text), and bad flags exit 2 with a message that names the flag.
//! Regenerate the snapshot with `UPDATE_GOLDEN=1 cargo test -p cellwatch-exporter --test cli`.

use std::path::Path;
use std::process::Command;

fn exporter(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cellwatch-exporter"))
        .args(args)
        .output()
        .expect("run cellwatch-exporter")
}

#[test]
fn help_matches_the_snapshot() {
    let out = exporter(&["--help"]);
    assert!(out.status.success());
    let have = String::from_utf8(out.stdout).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/help.txt");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &have).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "--help drifted from tests/snapshots/help.txt (UPDATE_GOLDEN=1 to accept):\n{have}"
    );
    for c in ["powermetrics", "macmon", "vmstat", "thunderbolt"] {
        assert!(
            have.contains(&format!("--collector.{c}"))
                && have.contains(&format!("--no-collector.{c}")),
            "{c}"
        );
    }
}

#[test]
fn bad_flags_exit_2_and_name_the_flag() {
    for (args, needle) in [
        (&["--interval", "5ms"][..], "--interval"),
        (&["--interval", "soon"][..], "--interval"),
        (
            &["--web.listen-address", "nowhere"][..],
            "--web.listen-address",
        ),
        (&["--collector.nope"][..], "--collector.nope"),
        (&["--log.level", "[["][..], "--log.level"),
    ] {
        let out = exporter(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let out = exporter(&[
        "--collector.disable-defaults",
        "--web.listen-address",
        &addr,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen") && err.contains(&addr),
        "{err}"
    );
}
