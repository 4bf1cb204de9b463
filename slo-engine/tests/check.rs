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
    assert!(stdout.contains("ok: 2 cells, 5 nodes, 8 SLOs"), "{stdout}");
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

/// A minimal valid configuration; findings below append to it.
const BASE: &str =
    "cells:\n  - name: a\n    nodes:\n      - { name: n, url: \"http://n:9817/metrics\" }\n";

/// The outcome of `check`: exit code and stderr.
struct Checked {
    code: Option<i32>,
    stderr: String,
}

/// Runs `check --config FILE` with at most 2 GiB of address space (so a read without a bound
/// fails fast instead of eating the machine), its output in files (so a huge message cannot
/// block it on a pipe), and kills it after two minutes (a hang fails the test, not the suite).
fn run_check(dir: &std::path::Path, config: &std::path::Path) -> Checked {
    let out = dir.join("check.out");
    let err = dir.join("check.err");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2097152 || exit 99; exec \"$0\" check --config \"$1\"")
        .arg(env!("CARGO_BIN_EXE_cellwatch-slo"))
        .arg(config)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("run cellwatch-slo");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "check --config {} did not finish in 2 minutes",
                config.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_ne!(
        status.code(),
        Some(99),
        "ulimit -v failed: the memory bound is off"
    );
    Checked {
        code: status.code(),
        stderr: String::from_utf8_lossy(&std::fs::read(&err).unwrap()).into_owned(),
    }
}

/// Writes `text` as cells.yaml into a new directory (kept alive by the returned guard) and
/// checks it.
fn check_text(text: &str) -> (Checked, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cells.yaml");
    std::fs::write(&path, text).unwrap();
    (run_check(dir.path(), &path), dir)
}

/// Asserts `check` refused the file with one line on stderr containing every needle.
fn refused(c: &Checked, needles: &[&str]) {
    assert_eq!(c.code, Some(1), "{}", c.stderr);
    assert_eq!(c.stderr.lines().count(), 1, "one line: {}", c.stderr);
    for n in needles {
        assert!(c.stderr.contains(n), "{n:?} missing from: {}", c.stderr);
    }
}

const PROMETHEUS: &str = "source: { prometheus: { url: \"http://p:9090\" } }\n";

#[test]
fn devices_fifos_directories_and_huge_files_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let huge = dir.path().join("huge.yaml");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(5 << 20)
        .unwrap();
    for (file, kind) in [
        ("/dev/zero", "a character device"),
        (fifo.to_str().unwrap(), "a FIFO"),
        (dir.path().to_str().unwrap(), "a directory"),
    ] {
        let (c, _d) = check_text(&format!("{BASE}{PROMETHEUS}openslo: [\"{file}\"]\n"));
        refused(&c, &[file, kind, "only a regular file is read"]);
        // The configuration itself, too.
        refused(
            &run_check(dir.path(), std::path::Path::new(file)),
            &[kind, "only a regular file is read"],
        );
    }
    let (c, _d) = check_text(&format!(
        "{BASE}{PROMETHEUS}openslo: [\"{}\"]\n",
        huge.display()
    ));
    refused(&c, &["huge.yaml", "larger than the limit of 4 MiB"]);
    refused(
        &run_check(dir.path(), &huge),
        &["huge.yaml", "larger than the limit of 4 MiB"],
    );
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    for deep in [
        format!("cells: {}{}\n", "[".repeat(40_000), "]".repeat(40_000)),
        format!("cells: {}1{}\n", "{a: ".repeat(40_000), "}".repeat(40_000)),
        format!("cells:\n{}x\n", "- ".repeat(40_000)),
    ] {
        let (c, _d) = check_text(&deep);
        refused(&c, &["cells.yaml:", "nested deeper than 64 levels"]);
    }
    // In an OpenSLO file as well.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slos.yaml"),
        format!("spec: {}\n", "[".repeat(40_000)),
    )
    .unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(&cfg, format!("{BASE}{PROMETHEUS}openslo: [slos.yaml]\n")).unwrap();
    refused(
        &run_check(dir.path(), &cfg),
        &["slos.yaml:1:", "nested deeper than 64 levels"],
    );
}

#[test]
fn durations_past_ten_years_are_refused_naming_the_field() {
    let slo =
        "slos:\n  - { name: s, objective: 0.99, period: PERIOD, sli: { availability: {} } }\n";
    for (text, field) in [
        (
            format!("{BASE}alerting: {{ cell_down_for: 400000000000y }}\n"),
            "alerting.cell_down_for",
        ),
        (
            format!("{BASE}alerting: {{ group_wait: 11y }}\n"),
            "alerting.group_wait",
        ),
        (
            format!("{BASE}source: {{ scrape: {{ interval: 99999999999999999999y }} }}\n"),
            "source.scrape.interval",
        ),
        (
            format!(
                "{BASE}maintenance: [ {{ name: m, schedule: \"0 0 3 * * Sun\", duration: 400000000000y }} ]\n"
            ),
            "maintenance[0].duration",
        ),
        (
            format!("{BASE}{}", slo.replace("PERIOD", "400000000000y")),
            "slos[0].period",
        ),
    ] {
        let (c, _d) = check_text(&text);
        refused(&c, &[field, "out of range", "at most 10 years"]);
    }
}

#[test]
fn a_byte_order_mark_is_ignored() {
    let (c, _d) = check_text(&format!("\u{feff}{BASE}"));
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    let dir = tempfile::tempdir().unwrap();
    let slos = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/openslo/slos.openslo.yaml"),
    )
    .unwrap();
    std::fs::write(dir.path().join("slos.yaml"), format!("\u{feff}{slos}")).unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        "\u{feff}cells:\n  - name: studio-a\n    nodes: [ { name: n, url: \"http://n:9817/metrics\" } ]\n  - name: gpu-pool\n    nodes: [ { name: n, url: \"http://g:9817/metrics\" } ]\nsource: { prometheus: { url: \"http://p:9090\" } }\nopenslo: [slos.yaml]\n",
    )
    .unwrap();
    let c = run_check(dir.path(), &cfg);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
}

#[test]
fn errors_are_one_line_and_long_values_are_cut() {
    let route = |re: &str| {
        format!(
            "{BASE}alerting:\n  receivers: [ {{ name: r, webhook: {{ url: \"http://h/x\" }} }} ]\n  routes: [ {{ receiver: r, match_re: {{ cell: \"{re}\" }} }} ]\n"
        )
    };
    let (c, _d) = check_text(&route("studio-("));
    refused(
        &c,
        &[
            "alerting.routes[0].match_re.cell",
            "\"studio-(\" is not a regular expression: unclosed group",
        ],
    );
    let name = "x".repeat(1_000_000);
    for text in [
        BASE.replace("name: a", &format!("name: {name}")),
        route(&format!("({name}")),
        format!("{BASE}alerting: {{ group_wait: {name} }}\n"),
    ] {
        let (c, _d) = check_text(&text);
        refused(&c, &["… (100000"]);
        assert!(c.stderr.len() < 1000, "{} bytes", c.stderr.len());
    }
}

#[test]
fn unusable_urls_ports_crons_and_secret_files_are_refused_naming_the_field() {
    let alerting = |receiver: &str| {
        format!("{BASE}alerting:\n  receivers:\n    - {{ name: r, {receiver} }}\n")
    };
    let cases = [
        (
            BASE.replace("http://n:9817/metrics", "http:///////////"),
            vec!["cells[0].nodes[0].url", "empty host"],
        ),
        (
            BASE.replace("n:9817", "n:99999"),
            vec!["cells[0].nodes[0].url", "invalid port number"],
        ),
        (
            BASE.replace("http://n:9817/metrics", "ftp://n/metrics"),
            vec![
                "cells[0].nodes[0].url",
                "scheme \"ftp\" is not http or https",
            ],
        ),
        (
            format!("{BASE}source: {{ prometheus: {{ url: \"http://:9090\" }} }}\n"),
            vec!["source.prometheus.url", "URL"],
        ),
        (
            alerting("alertmanager: { url: \"http://am:0\" }"),
            vec!["alerting.receivers[0].alertmanager.url", "port 0"],
        ),
        (
            alerting("email: { to: [a@b.c], from: x@y.z, smarthost: \"smtp:99999\" }"),
            vec!["alerting.receivers[0].email.smarthost", "1..=65535"],
        ),
        (
            format!("{BASE}alerting: {{ external_url: \"http://\" }}\n"),
            vec!["alerting.external_url", "URL"],
        ),
        (
            format!("{BASE}alerting: {{ api_token_file: missing-token }}\n"),
            vec!["alerting.api_token_file", "missing-token", "No such file"],
        ),
        (
            alerting("pagerduty: { routing_key_file: missing-key }"),
            vec![
                "alerting.receivers[0].pagerduty.routing_key_file",
                "missing-key",
                "No such file",
            ],
        ),
        (
            alerting(
                "email: { to: [a@b.c], from: x@y.z, smarthost: \"smtp:587\", username: u, password_file: missing-password }",
            ),
            vec![
                "alerting.receivers[0].email.password_file",
                "missing-password",
            ],
        ),
        (
            alerting("slack: { url_file: missing-slack-url }"),
            vec!["alerting.receivers[0].slack.url_file", "missing-slack-url"],
        ),
        (
            alerting("slack: { url_file: /dev/zero }"),
            vec!["alerting.receivers[0].slack.url_file", "a character device"],
        ),
        (
            format!(
                "{BASE}maintenance: [ {{ name: m, schedule: \"0 0 0 30 2 *\", duration: 1h }} ]\n"
            ),
            vec!["maintenance[0].schedule", "never"],
        ),
        (
            format!(
                "{BASE}alerting:\n  receivers: [ {{ name: r, email: {{ to: [a@b.c], from: x@y.z, smarthost: \"smtp:25\" }} }} ]\n  reports: [ {{ name: w, schedule: \"0 0 0 31 4 *\", receiver: r }} ]\n"
            ),
            vec!["alerting.reports[0].schedule", "never"],
        ),
    ];
    for (text, needles) in cases {
        let (c, _d) = check_text(&text);
        refused(&c, &needles);
    }
    // Present, readable and not empty: accepted, relative to the configuration's directory.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), "s3cret\n").unwrap();
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        format!("{BASE}alerting: {{ api_token_file: token }}\n"),
    )
    .unwrap();
    let c = run_check(dir.path(), &cfg);
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    std::fs::write(
        &cfg,
        format!("{BASE}alerting: {{ api_token_file: empty }}\n"),
    )
    .unwrap();
    refused(
        &run_check(dir.path(), &cfg),
        &["alerting.api_token_file", "empty"],
    );
}

#[test]
fn values_that_may_be_secrets_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("slack-url"),
        "hxxps://hooks.example/SECRET-IN-FILE\n",
    )
    .unwrap();
    let receiver = |r: &str| format!("{BASE}alerting:\n  receivers:\n    - {{ name: r, {r} }}\n");
    for text in [
        receiver("slack: { url: \"hxxps://hooks.example/T0/SECRET-TOKEN\" }"),
        receiver("slack: { url: \"https://hooks.example:99999/T0/SECRET-TOKEN\" }"),
        receiver("webhook: { url: \"http://hooks.example:0/SECRET-TOKEN\" }"),
        receiver("slack: { url_file: slack-url }"),
        receiver("slack: { url: [SECRET-TOKEN] }"),
        format!("{BASE}source: {{ prometheus: {{ url: \"http://user:SECRET-TOKEN@/\" }} }}\n"),
        // A URL written where a struct belongs, a URL without a scheme, basic auth as a string.
        receiver("slack: \"https://hooks.example/T0/SECRET-TOKEN\""),
        receiver("webhook: \"https://hooks.example/SECRET-TOKEN\""),
        format!("{BASE}source: {{ prometheus: {{ url: \"admin:SECRET-TOKEN@p:9090\" }} }}\n"),
        format!(
            "{BASE}source: {{ scrape: {{ interval: 15s, basic_auth: \"u:SECRET-TOKEN\" }} }}\n"
        ),
        // Not a configuration at all (a file of environment variables, say).
        "API_KEY=SECRET-TOKEN\n".to_string(),
        format!(
            "{BASE}source: {{ prometheus: {{ url: \"http://p:9090\", headers: {{ Authorization: \"Bearer SECRET-TOKEN\\n\" }} }} }}\n"
        ),
    ] {
        let cfg = dir.path().join("cells.yaml");
        std::fs::write(&cfg, &text).unwrap();
        let c = run_check(dir.path(), &cfg);
        assert_eq!(c.code, Some(1), "{text}: {}", c.stderr);
        assert!(!c.stderr.contains("SECRET"), "{text}: {}", c.stderr);
    }
}

#[test]
fn a_fixed_min_events_under_a_page_guard_is_warned_about() {
    let slo = |min: &str, budgeting: &str| {
        format!(
            "{BASE}slos:\n  - {{ name: avail, objective: 0.999, period: 30d,{min}{budgeting} sli: {{ availability: {{}} }} }}\n"
        )
    };
    let (c, _d) = check_text(&slo(" min_events: 10,", ""));
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert_eq!(
        c.stderr,
        "cellwatch-slo: warning: SLO \"avail\" (objective 0.999): min_events 10 is under the \
         low-traffic guard of its 1h page: a single failed request would page when the 1h window \
         holds fewer than 70 events (omit min_events for the automatic guard, or set at least 70)\n"
    );
    // Over the 1 h page's guard (70) but under the 6 h page's (167 at 6×).
    let (c, _d) = check_text(&slo(" min_events: 100,", ""));
    assert_eq!(c.code, Some(0), "{}", c.stderr);
    assert_eq!(
        c.stderr,
        "cellwatch-slo: warning: SLO \"avail\" (objective 0.999): min_events 100 is under the \
         low-traffic guard of its 6h page: a single failed request would page when the 6h window \
         holds fewer than 167 events (omit min_events for the automatic guard, or set at least 167)\n"
    );
    // Automatic, at least every page tier's guard, or time slices: nothing to say.
    for text in [
        slo("", ""),
        slo(" min_events: 167,", ""),
        slo(" min_events: 1,", " budgeting: timeslices,"),
    ] {
        let (c, _d) = check_text(&text);
        assert_eq!((c.code, c.stderr.as_str()), (Some(0), ""), "{text}");
    }
}
