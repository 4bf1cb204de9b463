//! End to end: the real `cellwatch-exporter` binary with stand-in macOS commands first on PATH.

use std::time::{Duration, Instant};

use cellwatch_e2e::{Exporter, Metrics, promtool_check_metrics, workspace};

const APPLE: &[&str] = &[
    "--collector.disable-defaults",
    "--collector.powermetrics",
    "--collector.vmstat",
    "--collector.thunderbolt",
    "--interval",
    "200ms",
    "--collector.thunderbolt.slow-interval",
    "1s",
];

/// Generous bound for things that take a few intervals; a slow CI machine must not fail them.
const SOON: Duration = Duration::from_secs(20);

fn all_up(m: &Metrics) -> bool {
    ["powermetrics", "vmstat", "thunderbolt"]
        .iter()
        .all(|c| m.collector("up", c) == Some(1.0))
}

fn netstat_with(en2_ibytes: u64, en2_obytes: u64) -> String {
    format!(
        "Name  Mtu   Network       Address            Ipkts Ierrs     Ibytes    Opkts Oerrs     Obytes  Coll\n\
         en2   1500  <Link#13>   36:a1:02:b7:4c:02       10     1 {en2_ibytes}        20     0 {en2_obytes}     0\n\
         en3   1500  <Link#14>   36:a1:02:b7:4c:03        5     0       500         6     0       600     0\n"
    )
}

#[tokio::test]
async fn serves_the_values_the_inputs_imply_and_counters_rise() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        state.path().join("netstat.out"),
        netstat_with(5_000_000_000, 7_000_000_000),
    )
    .unwrap();
    let e = Exporter::start_with(state, APPLE);
    let m = e
        .wait_for("every collector up with link counters", SOON, |m| {
            all_up(m) && m.has("cellwatch_link_speed_bytes_per_second")
        })
        .await;

    // powermetrics (mW → W, MHz → Hz), vm_stat (pages × 16384), sysctl (MiB), netstat (64-bit).
    assert_eq!(
        m.value(r#"cellwatch_power_watts{component="gpu"}"#),
        Some(182.0)
    );
    assert_eq!(
        m.value(r#"cellwatch_power_watts{component="cpu"}"#),
        Some(9.5)
    );
    assert_eq!(
        m.value(r#"cellwatch_node_power_watts{source="soc"}"#),
        Some(191.5)
    );
    assert_eq!(m.value("cellwatch_gpu_frequency_hertz"), Some(1.398e9));
    assert_eq!(m.value("cellwatch_thermal_pressure_level"), Some(0.0));
    assert_eq!(
        m.value("cellwatch_memory_total_bytes"),
        Some(549_755_813_888.0)
    );
    assert_eq!(
        m.value(r#"cellwatch_memory_bytes{state="wired"}"#),
        Some(10_485_760.0 * 16384.0)
    );
    assert_eq!(
        m.value("cellwatch_memory_swap_used_bytes"),
        Some(537_133_056.0)
    );
    assert_eq!(
        m.value(r#"cellwatch_link_received_bytes_total{link="en2"}"#),
        Some(5_000_000_000.0)
    );
    assert_eq!(
        m.value(r#"cellwatch_link_errors_total{link="en2",direction="received"}"#),
        Some(1.0)
    );
    assert_eq!(
        m.value(r#"cellwatch_link_speed_bytes_per_second{link="en2"}"#),
        Some(1e10)
    );
    assert_eq!(
        m.value(r#"cellwatch_link_info{link="en2",rdma_device="rdma_en2",peer="studio-b",domain="00000002-0000-4000-8000-000000000002",peer_domain="10000002-0000-4000-8000-000000000002"}"#),
        Some(1.0)
    );
    assert_eq!(m.value("cellwatch_rdma_enabled"), Some(1.0));
    assert!(m.0.lines().any(|l| {
        l.starts_with("cellwatch_node_info{")
            && l.contains(r#"cell="test-cell""#)
            && l.contains(r#"node="test-node""#)
            && l.ends_with(" 1")
    }));
    assert_eq!(
        promtool_check_metrics(&m.0),
        "",
        "promtool check metrics on the live /metrics"
    );

    // Energy accumulates window by window.
    let gpu_j = |m: &Metrics| {
        m.value(r#"cellwatch_energy_joules_total{component="gpu"}"#)
            .unwrap_or(0.0)
    };
    let first = gpu_j(&m);
    let later = e
        .wait_for("GPU energy to rise", SOON, |n| {
            gpu_j(n) >= first + 182.0 * 2.0
        })
        .await;
    assert_eq!(gpu_j(&later) % 182.0, 0.0, "whole 1 s windows of 182 W");

    // Link counters rise, then survive an interface reset without going backwards.
    e.steer("netstat.out", &netstat_with(6_000_000_000, 7_500_000_000));
    e.wait_for("rx bytes to rise", SOON, |m| {
        m.value(r#"cellwatch_link_received_bytes_total{link="en2"}"#) == Some(6e9)
    })
    .await;
    e.steer("netstat.out", &netstat_with(1_000, 2_000));
    let m = e
        .wait_for("the reset to be absorbed", SOON, |m| {
            m.value(r#"cellwatch_link_received_bytes_total{link="en2"}"#) == Some(6e9 + 1e3)
        })
        .await;
    assert_eq!(
        m.value(r#"cellwatch_link_transmitted_bytes_total{link="en2"}"#),
        Some(7.5e9 + 2e3)
    );

    // The landing page and the health check.
    assert!(e.get("/").await.contains("/metrics"));
    assert_eq!(e.get("/-/healthy").await.trim(), "Healthy");
}

#[tokio::test]
async fn killed_powermetrics_is_restarted_and_metrics_keep_serving() {
    let e = Exporter::start(APPLE);
    e.wait_for("powermetrics up", SOON, |m| {
        m.collector("up", "powermetrics") == Some(1.0)
    })
    .await;
    let pid = e.state_file("powermetrics.pid").trim().to_string();
    assert!(!pid.is_empty());
    let killed = Instant::now();
    assert!(
        std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    while e.state_file("powermetrics.pid").trim() == pid {
        assert!(
            killed.elapsed() < SOON,
            "no new powermetrics child\n{}",
            e.log()
        );
        e.metrics().await; // and /metrics serves meanwhile
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let child_back = killed.elapsed();
    let m = e
        .wait_for("a new powermetrics child with fresh power", SOON, |m| {
            m.collector("restarts_total", "powermetrics") >= Some(1.0)
                && m.collector("up", "powermetrics") == Some(1.0)
        })
        .await;
    let back = killed.elapsed();
    let new_pid = e.state_file("powermetrics.pid").trim().to_string();
    assert_ne!(pid, new_pid, "a new child");
    assert!(m.collector("errors_total", "powermetrics") >= Some(1.0));
    assert_eq!(
        m.collector("up", "vmstat"),
        Some(1.0),
        "other collectors are untouched"
    );
    eprintln!(
        "powermetrics killed: new child after {child_back:?}, fresh power after {back:?} (interval 200ms)"
    );
}

#[tokio::test]
async fn hung_powermetrics_is_killed_and_restarted() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("powermetrics.mode"), "hang-after-1").unwrap();
    let e = Exporter::start_with(state, APPLE);
    // One document, then silence: after three intervals the watchdog kills it and starts another.
    let m = e
        .wait_for("a restart after the hang", SOON, |m| {
            m.collector("restarts_total", "powermetrics") >= Some(2.0)
        })
        .await;
    assert!(e.state_file("powermetrics.runs").lines().count() >= 2);
    assert!(
        e.log().contains("no complete document within 600ms"),
        "{}",
        e.log()
    );
    let _ = m;
    // Once it behaves, it stays up.
    e.steer("powermetrics.mode", "stream");
    e.wait_for("powermetrics up again", SOON, |m| {
        m.collector("up", "powermetrics") == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn a_powermetrics_that_dies_is_restarted() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("powermetrics.mode"), "die-after-2").unwrap();
    let e = Exporter::start_with(state, APPLE);
    let m = e
        .wait_for("restarts after exits", SOON, |m| {
            m.collector("restarts_total", "powermetrics") >= Some(2.0)
        })
        .await;
    assert!(m.collector("errors_total", "powermetrics") >= Some(2.0));
    assert!(
        e.log().contains("child exited (exit status: 3)"),
        "{}",
        e.log()
    );
    assert!(
        m.has(r#"cellwatch_energy_joules_total{component="gpu"}"#),
        "energy survives the restarts"
    );
}

#[tokio::test]
async fn a_silent_child_is_down_during_the_gap() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("powermetrics.mode"), "hang").unwrap();
    let e = Exporter::start_with(state, APPLE);
    let m = e
        .wait_for("restarts of a child that never prints", SOON, |m| {
            m.collector("restarts_total", "powermetrics") >= Some(1.0)
        })
        .await;
    assert_eq!(m.collector("up", "powermetrics"), Some(0.0));
    assert!(
        !m.has("cellwatch_power_watts"),
        "no stale power series while the source is down"
    );
}

#[tokio::test]
async fn garbage_truncated_and_empty_output_never_panic() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("powermetrics.mode"), "garbage").unwrap();
    std::fs::write(
        state.path().join("vm_stat.out"),
        "Mach Virtual Memory Statistics: (page size of 16384 bytes)\nPages free: lots\n",
    )
    .unwrap();
    std::fs::write(state.path().join("netstat.out"), "").unwrap();
    std::fs::write(
        state.path().join("system_profiler.out"),
        "{\"SPThunderboltDataType\": [",
    )
    .unwrap();
    let mut e = Exporter::start_with(state, APPLE);
    let m = e
        .wait_for("errors counted", SOON, |m| {
            m.collector("restarts_total", "powermetrics") >= Some(1.0)
                && m.collector("errors_total", "vmstat") >= Some(2.0)
                && m.collector("errors_total", "thunderbolt") >= Some(2.0)
        })
        .await;
    assert_eq!(m.collector("up", "vmstat"), Some(0.0));
    assert_eq!(m.collector("up", "thunderbolt"), Some(0.0));
    assert!(
        m.has("cellwatch_memory_total_bytes"),
        "sysctl still gives what it can"
    );
    assert!(
        e.log().contains("vm_stat output, line 2"),
        "errors name what and where:\n{}",
        e.log()
    );

    for mode in ["truncated", "empty"] {
        e.steer("powermetrics.mode", mode);
        let before = e
            .metrics()
            .await
            .collector("restarts_total", "powermetrics")
            .unwrap();
        // The backoff has grown during the garbage phase and may be at its 30 s cap: one more
        // restart proves the mode is survived, and may take up to two capped delays.
        e.wait_for(mode, Duration::from_secs(75), |m| {
            m.collector("restarts_total", "powermetrics") >= Some(before + 1.0)
        })
        .await;
    }
    e.steer("networksetup.out", "Hardware Port: Thunderbolt 1\n");
    let before = e
        .metrics()
        .await
        .collector("errors_total", "thunderbolt")
        .unwrap();
    e.wait_for("broken hardware ports counted", SOON, |m| {
        m.collector("errors_total", "thunderbolt") > Some(before)
    })
    .await;
    e.steer("vm_stat.out", "");
    e.steer("sysctl.out", "hw.mem");
    let before = e
        .metrics()
        .await
        .collector("errors_total", "vmstat")
        .unwrap();
    e.wait_for("empty vm_stat and truncated sysctl counted", SOON, |m| {
        m.collector("errors_total", "vmstat") >= Some(before + 2.0)
    })
    .await;
    assert!(e.alive(), "the exporter survived:\n{}", e.log());
    assert!(!e.log().contains("panicked"), "{}", e.log());
    assert_eq!(promtool_check_metrics(&e.metrics().await.0), "");
}

#[tokio::test]
async fn not_superuser_is_one_log_line_not_a_restart_storm() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("powermetrics.mode"), "superuser").unwrap();
    let e = Exporter::start_with(
        state,
        &[
            "--collector.disable-defaults",
            "--collector.powermetrics",
            "--interval",
            "100ms",
        ],
    );
    e.wait_for("the first failure", SOON, |m| {
        m.collector("errors_total", "powermetrics") >= Some(1.0)
    })
    .await;
    // Twenty intervals later: still one start, one line.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = e.metrics().await;
    assert_eq!(m.collector("up", "powermetrics"), Some(0.0));
    assert_eq!(
        e.state_file("powermetrics.runs").lines().count(),
        1,
        "restarted in a storm"
    );
    assert_eq!(m.collector("restarts_total", "powermetrics"), Some(0.0));
    let lines: Vec<String> = e
        .log()
        .lines()
        .filter(|l| l.contains("superuser"))
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("ERROR") && lines[0].contains("packaging"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_hanging_command_never_holds_a_scrape() {
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("vm_stat.hang"), "").unwrap();
    let e = Exporter::start_with(
        state,
        &[
            "--collector.disable-defaults",
            "--collector.vmstat",
            "--interval",
            "200ms",
            "--command.timeout",
            "1s",
        ],
    );
    let m = e
        .wait_for("the timeout to count", SOON, |m| {
            m.collector("errors_total", "vmstat") >= Some(1.0)
        })
        .await;
    assert_eq!(m.collector("up", "vmstat"), Some(0.0));
    // The error is counted before it is logged, and the log is read from a pipe: wait for it.
    let logged = std::time::Instant::now() + SOON;
    while !e.log().contains("did not finish within 1s") {
        assert!(std::time::Instant::now() < logged, "{}", e.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    e.unsteer("vm_stat.hang");
    e.wait_for("vmstat back", SOON, |m| {
        m.collector("up", "vmstat") == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn failing_commands_are_errors_not_crashes() {
    let state = tempfile::tempdir().unwrap();
    for cmd in ["vm_stat", "sysctl"] {
        std::fs::write(state.path().join(format!("{cmd}.rc")), "127").unwrap();
    }
    let mut e = Exporter::start_with(
        state,
        &[
            "--collector.disable-defaults",
            "--collector.vmstat",
            "--collector.macmon",
            "--interval",
            "200ms",
        ],
    );
    let m = e
        .wait_for("macmon up and vmstat failing", SOON, |m| {
            m.collector("up", "macmon") == Some(1.0)
                && m.collector("errors_total", "vmstat") >= Some(1.0)
        })
        .await;
    assert_eq!(
        m.value(r#"cellwatch_node_power_watts{source="smc"}"#),
        Some(236.4)
    );
    assert_eq!(
        m.value(r#"cellwatch_power_watts{component="dram"}"#),
        Some(11.2)
    );
    assert!(e.alive());
}

#[test]
fn golden_metrics_pass_promtool() {
    let golden =
        std::fs::read_to_string(workspace().join("exporter/tests/golden/metrics.prom")).unwrap();
    assert!(golden.lines().filter(|l| l.starts_with("# TYPE")).count() >= 30);
    assert_eq!(promtool_check_metrics(&golden), "");
}
