//! The service files: the systemd units of the exporter and the engine pass
//! `systemd-analyze verify` (pointed at the built binaries), raise LimitNOFILE above what the
//! default connection limits need, every flag they pass exists, and
//! the launchd plist's arguments are flags the exporter takes.

use std::process::Command;

use cellwatch_e2e::{binary, workspace};

/// `--flag` words of a command line.
fn flags(line: &str) -> Vec<String> {
    line.split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.split('=').next().unwrap().to_string())
        .collect()
}

fn help(bin: &str, args: &[&str]) -> String {
    let out = Command::new(binary(bin))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn systemd_units_verify_and_use_existing_flags() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, bin) in [
        (
            "exporter/packaging/cellwatch-exporter.service",
            "cellwatch-exporter",
        ),
        (
            "slo-engine/packaging/cellwatch-slo.service",
            "cellwatch-slo",
        ),
    ] {
        let text = std::fs::read_to_string(workspace().join(unit)).unwrap();
        let local = text.replace(
            &format!("/usr/local/bin/{bin}"),
            binary(bin).to_str().unwrap(),
        );
        let name = unit.rsplit('/').next().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, &local).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| panic!("systemd-analyze: {e} (Debian package `systemd`)"));
        let msg = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && msg.trim().is_empty(),
            "{unit}:\n{msg}"
        );
        // Enough file handles for the default connection limits (the usual 1024 is not).
        let nofile: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("LimitNOFILE="))
            .unwrap_or_else(|| panic!("{unit}: no LimitNOFILE"))
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{unit}: LimitNOFILE: {e}"));
        assert!(nofile >= 8192, "{unit}: LimitNOFILE={nofile}");
        for line in text.lines().filter(|l| l.starts_with("ExecStart")) {
            let cmd = line.split_once('=').unwrap().1;
            let sub: Vec<&str> = cmd
                .split_whitespace()
                .skip(1)
                .take_while(|w| !w.starts_with('-') && !w.starts_with('$'))
                .collect();
            let h = help(bin, &sub);
            for f in flags(cmd) {
                assert!(
                    h.contains(&format!("{f} "))
                        || h.contains(&format!("{f}="))
                        || h.contains(&format!("{f} <")),
                    "{unit}: {f} is not a flag of {bin} {sub:?}"
                );
            }
        }
    }
}

#[test]
fn the_launchd_plist_passes_existing_flags() {
    let text =
        std::fs::read_to_string(workspace().join("exporter/packaging/io.cellwatch.exporter.plist"))
            .unwrap();
    let h = help("cellwatch-exporter", &[]);
    let args: Vec<&str> = text
        .split("<string>")
        .skip(1)
        .map(|s| s.split("</string>").next().unwrap())
        .filter(|s| s.starts_with("--"))
        .collect();
    assert!(!args.is_empty());
    for a in args {
        assert!(
            h.contains(&format!("{a} ")),
            "{a} is not a flag of cellwatch-exporter"
        );
    }
}

/// The engine unit's install steps, followed into an empty directory (standing in for
/// /etc/cellwatch), give a configuration that `cellwatch-slo check` accepts: every file the
/// example configuration names (its Slack URL file) is installed beside it.
#[test]
fn the_engine_units_install_steps_give_a_configuration_that_checks() {
    let unit =
        std::fs::read_to_string(workspace().join("slo-engine/packaging/cellwatch-slo.service"))
            .unwrap();
    let etc = tempfile::tempdir().unwrap();
    let mut installed = 0;
    for line in unit.lines().filter_map(|l| l.strip_prefix("#   install -")) {
        let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
        if let [.., from, to] = words.as_slice()
            && *to == "/etc/cellwatch/"
        {
            let from = workspace().join(from);
            std::fs::copy(&from, etc.path().join(from.file_name().unwrap())).unwrap();
            installed += 1;
        }
    }
    assert!(
        installed >= 2,
        "the install steps name the example files:\n{unit}"
    );
    let out = Command::new(binary("cellwatch-slo"))
        .arg("check")
        .arg("--config")
        .arg(etc.path().join("cells.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
