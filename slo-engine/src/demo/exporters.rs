//! The real exporter processes: finding the binary, starting one per node on its stand-ins,
//! waiting until each answers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::power::{IDLE_WATTS, RECORDED_SOC_WATTS, macmon_line, nvidia_lines, scale_plist};
use super::scenario::{CELL, GPU_CELL, GPU_NODE, NODES, Ports, node_name};
use super::{DemoError, io, write_atomically};

/// An exporter process and its log.
pub(super) type Child = (tokio::process::Child, PathBuf);

pub(super) fn find_exporter(given: Option<PathBuf>) -> Result<PathBuf, DemoError> {
    if let Some(p) = given {
        return Ok(p);
    }
    let me = std::env::current_exe().unwrap_or_default();
    let beside = me.with_file_name("cellwatch-exporter");
    if beside.is_file() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("cellwatch-exporter"))
        .find(|p| p.is_file())
        .ok_or(DemoError::NoExporter(me))
}

/// Starts every node's exporter: the four Apple exporters (real binaries on stand-in macOS
/// commands), then the GPU node's.
pub(super) fn start_all(
    exporter: &Path,
    standins: &Path,
    ports: Ports,
    dir: &Path,
) -> Result<Vec<Child>, DemoError> {
    // The stand-ins first on PATH.
    let path = std::env::join_paths(std::iter::once(standins.to_path_buf()).chain(
        std::env::var_os("PATH").map_or_else(Vec::new, |p| std::env::split_paths(&p).collect()),
    ))
    .unwrap_or_default();
    let mut children = Vec::new();
    for i in 1..=NODES {
        let node = dir.join(node_name(i));
        std::fs::create_dir_all(&node).map_err(io(&node))?;
        // Power before the first sample, so the stand-ins never stream the raw recording.
        write_atomically(
            &node.join("powermetrics.live"),
            &scale_plist(IDLE_WATTS / RECORDED_SOC_WATTS),
        );
        write_atomically(&node.join("macmon.live"), &macmon_line(IDLE_WATTS));
        // The cell's Thunderbolt 5 mesh, as the stand-ins print it (the timeline pulls a cable).
        super::links::Cabling::mesh(&super::scenario::apple_nodes())
            .write(i - 1, &node)
            .map_err(io(&node))?;
        let collectors = ["powermetrics", "macmon", "vmstat", "thunderbolt"];
        let slow = ["--collector.thunderbolt.slow-interval=2s".to_string()];
        children.push(spawn_exporter(
            exporter,
            &path,
            ports,
            i,
            &collectors,
            &slow,
            &node,
        )?);
    }
    children.push(start_gpu(exporter, &path, ports, dir, standins)?);
    Ok(children)
}

/// The GPU node: the real exporter's Linux collectors on a simulated sysfs tree, the recorded
/// /proc/meminfo and the nvidia-smi stand-in.
fn start_gpu(
    exporter: &Path,
    path: &std::ffi::OsStr,
    ports: Ports,
    dir: &Path,
    standins: &Path,
) -> Result<Child, DemoError> {
    let node = dir.join(node_name(GPU_NODE));
    std::fs::create_dir_all(&node).map_err(io(&node))?;
    write_atomically(&node.join("nvidia-smi.live"), &nvidia_lines(0.0));
    let paths = [
        format!("--path.sysfs={}", dir.join("gpu-sys").display()),
        format!("--path.procfs={}", standins.join("../linux/proc").display()),
    ];
    let collectors = ["meminfo", "rapl", "nvidia", "infiniband"];
    spawn_exporter(exporter, path, ports, GPU_NODE, &collectors, &paths, &node)
}

/// Starts node `i`'s exporter with `collectors` and the metering proxy (the vLLM adapter on the
/// GPU node), its stand-ins steered
/// from `state`, logging to `state/exporter.log`; killed when dropped.
fn spawn_exporter(
    exporter: &Path,
    path: &std::ffi::OsStr,
    ports: Ports,
    i: usize,
    collectors: &[&str],
    extra: &[String],
    state: &Path,
) -> Result<(tokio::process::Child, PathBuf), DemoError> {
    let log_path = state.join("exporter.log");
    let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
    let err = log.try_clone().map_err(io(&log_path))?;
    let cell = if i == GPU_NODE { GPU_CELL } else { CELL };
    // The Mac Studios' servers export no metrics: a metering proxy in front. The GPU node's
    // (simulated) vLLM does: the vLLM adapter reads it.
    let inference = if i == GPU_NODE {
        vec![
            format!(
                "--collector.inference.adapter=vllm={}/metrics",
                ports.vllm()
            ),
            "--collector.inference.adapter-interval=1s".to_string(),
        ]
    } else {
        vec![
            format!(
                "--collector.inference.upstream=http://127.0.0.1:{}/node/{i}",
                ports.sim()
            ),
            format!(
                "--collector.inference.listen-address=127.0.0.1:{}",
                ports.proxy(i)
            ),
        ]
    };
    let child = tokio::process::Command::new(exporter)
        .arg("--collector.disable-defaults")
        .args(collectors.iter().map(|c| format!("--collector.{c}")))
        .arg("--collector.inference")
        .args(inference)
        .arg(format!(
            "--web.listen-address=127.0.0.1:{}",
            ports.exporter(i)
        ))
        .args(extra)
        .arg(format!("--cell={cell}"))
        .arg(format!("--node={}", node_name(i)))
        .env("PATH", path)
        .env("CELLWATCH_STATE", state)
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(io(exporter))?;
    Ok((child, log_path))
}
/// Waits up to 30 s for `url` to answer 200; false at once when `child` exits (its port was
/// taken, its flags refused).
pub(super) async fn wait_ready(
    client: &reqwest::Client,
    url: &str,
    mut child: Option<&mut tokio::process::Child>,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        if let Some(c) = child.as_deref_mut()
            && !matches!(c.try_wait(), Ok(None))
        {
            return false;
        }
        if let Ok(r) = client.get(url).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
