//! End to end: the real exporter on a Linux GPU node's fixture tree (`exporter/testdata/linux/`,
//! copied so the test can move its counters) and the `nvidia-smi` stand-in. It reports the
//! families the Apple nodes report, crosses a RAPL wrap without losing or inventing energy, says
//! why RAPL is unreadable, and its page passes `promtool check metrics`.

use std::path::Path;
use std::time::Duration;

use cellwatch_e2e::{Exporter, promtool_check_metrics, workspace};

fn copy_tree(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&dest).unwrap();
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

const SOON: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_gpu_node_reports_the_apple_families_across_a_rapl_wrap() {
    let tree = tempfile::tempdir().unwrap();
    copy_tree(&workspace().join("exporter/testdata/linux"), tree.path());
    let sys = tree.path().join("sys");
    let proc_ = tree.path().join("proc");
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--collector.meminfo",
            "--collector.rapl",
            "--collector.nvidia",
            "--collector.infiniband",
            "--interval",
            "200ms",
            "--path.sysfs",
            sys.to_str().unwrap(),
            "--path.procfs",
            proc_.to_str().unwrap(),
        ],
    );
    let pkg = r#"cellwatch_energy_joules_total{component="package-0"}"#;
    let m = e
        .wait_for("every Linux collector up", SOON, |m| {
            ["meminfo", "rapl", "nvidia", "infiniband"]
                .iter()
                .all(|c| m.collector("up", c) == Some(1.0))
                && m.value(r#"cellwatch_node_power_watts{source="nvidia"}"#)
                    .is_some()
                && m.value(pkg).is_some()
        })
        .await;
    for family in [
        "cellwatch_memory_total_bytes ",
        "cellwatch_memory_bytes{",
        "cellwatch_power_watts{",
        "cellwatch_node_energy_joules_total{source=\"rapl\"}",
        "cellwatch_node_energy_joules_total{source=\"nvidia\"}",
        "cellwatch_link_received_bytes_total{link=\"mlx5_0/1\"}",
        "cellwatch_rdma_port_active{device=\"mlx5_0\"}",
        "cellwatch_gpu_utilization_ratio{gpu=\"1\"}",
    ] {
        assert!(m.has(family), "no {family}\n{}", m.0);
    }
    assert_eq!(promtool_check_metrics(&m.0), "");

    // The counter at 262,100,000,000 µJ wraps at 262,143,328,850: +43,328,850 µJ to the wrap,
    // then 206,671,150 µJ: 250 J, not a reset and not a 262 kJ jump.
    let zone = sys.join("class/powercap/intel-rapl:0/energy_uj");
    let before = e.metrics().await.value(pkg).unwrap();
    std::fs::write(&zone, "206671150\n").unwrap();
    let m = e
        .wait_for("the wrap counted", SOON, |m| m.value(pkg) != Some(before))
        .await;
    let after = m.value(pkg).unwrap();
    assert!((after - before - 250.0).abs() < 1e-6, "{before} → {after}");

    // An unreadable counter is a clear error, and the collector is down.
    std::fs::remove_file(&zone).unwrap();
    std::fs::create_dir(&zone).unwrap();
    e.wait_for("rapl down", SOON, |m| {
        m.collector("up", "rapl") == Some(0.0)
    })
    .await;
    assert!(
        e.log().contains("intel-rapl:0/energy_uj"),
        "the log names the file:\n{}",
        e.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_rapl_or_nvidia_smi_says_so() {
    let empty = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(state.path().join("nvidia-smi.rc"), "9").unwrap();
    std::fs::write(
        state.path().join("nvidia-smi.err"),
        "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n",
    )
    .unwrap();
    let e = Exporter::start_with(
        state,
        &[
            "--collector.disable-defaults",
            "--collector.rapl",
            "--collector.nvidia",
            "--collector.infiniband",
            "--interval",
            "200ms",
            "--path.sysfs",
            empty.path().to_str().unwrap(),
        ],
    );
    e.wait_for("rapl and nvidia down, infiniband up", SOON, |m| {
        m.collector("up", "rapl") == Some(0.0)
            && m.collector("up", "nvidia") == Some(0.0)
            && m.collector("up", "infiniband") == Some(1.0)
    })
    .await;
    let start = std::time::Instant::now();
    while !e
        .log()
        .contains("couldn't communicate with the NVIDIA driver")
    {
        assert!(
            start.elapsed() < SOON,
            "nvidia-smi's reason is not logged:\n{}",
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(e.log().contains("no RAPL"), "{}", e.log());
}

/// Whether process `pid` has ended (gone, or a zombie nobody reaped yet).
fn ended(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) => true,
    }
}

async fn all_end(pids: &[u32], within: Duration) -> Vec<u32> {
    let start = std::time::Instant::now();
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|p| !ended(*p)).collect();
        if left.is_empty() || start.elapsed() > within {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_that_forks_and_exits_leaves_nothing_behind_and_is_restarted_slowly() {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    // Every nvidia-smi run leaves a `sleep 1000` behind holding its pipes, prints one valid
    // sample and exits.
    std::fs::write(state.path().join("nvidia-smi.fork"), "").unwrap();
    std::fs::write(state.path().join("nvidia-smi.once"), "").unwrap();
    let e = Exporter::start_with(
        state,
        &[
            "--collector.disable-defaults",
            "--collector.nvidia",
            "--interval",
            "200ms",
        ],
    );
    e.wait_for("two restarts", SOON, |m| {
        m.collector("restarts_total", "nvidia").unwrap_or(0.0) >= 2.0
    })
    .await;
    let start = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let restarts = e
        .metrics()
        .await
        .collector("restarts_total", "nvidia")
        .unwrap();
    // Backoff 0.1, 0.2, 0.4 … 6.4 s: about 7 restarts in the first 13 s. Restarting after every
    // valid sample (the old rule) gave dozens in 8 s.
    assert!(
        restarts <= 10.0,
        "{restarts} restarts within {:?}",
        start.elapsed()
    );
    let pids: Vec<u32> = e
        .state_file("nvidia-smi.grandchildren")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert!(pids.len() >= 3, "{pids:?}");
    // Every run but the last one is over, and its grandchild with it.
    let left = all_end(&pids[..pids.len() - 1], SOON).await;
    assert!(
        left.is_empty(),
        "grandchildren left after restarts: {left:?}"
    );
    // SIGTERM: the exporter stops the last run's group too.
    drop(e);
    let left = all_end(&pids, SOON).await;
    assert!(
        left.is_empty(),
        "grandchildren left after shutdown: {left:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_running_childs_whole_process_group() {
    if !Path::new("/proc/self/stat").exists() {
        return;
    }
    let state = tempfile::tempdir().unwrap();
    // nvidia-smi keeps streaming, with a `sleep 1000` beside it in its group.
    std::fs::write(state.path().join("nvidia-smi.fork"), "").unwrap();
    let e = Exporter::start_with(
        state,
        &[
            "--collector.disable-defaults",
            "--collector.nvidia",
            "--interval",
            "200ms",
        ],
    );
    e.wait_for("nvidia up", SOON, |m| {
        m.collector("up", "nvidia") == Some(1.0)
    })
    .await;
    let pids: Vec<u32> = e
        .state_file("nvidia-smi.grandchildren")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(pids.len(), 1, "{pids:?}");
    assert!(!ended(pids[0]));
    drop(e);
    let left = all_end(&pids, SOON).await;
    assert!(left.is_empty(), "left after SIGTERM: {left:?}");
}
