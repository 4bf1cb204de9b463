//! The simulated power model: the recorded powermetrics document and macmon line scaled to
//! idle watts plus joules per generated token (Apple nodes), nvidia-smi lines and RAPL counters
//! (the GPU node), written four times a second where the stand-ins read them.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;

use super::gpu_tree::GpuTree;
use super::scenario::{ALL_NODES, GPU_NODE, node_name};
use super::simulation::Sim;
use super::write_atomically;

/// The recorded powermetrics document the simulated power is scaled from (our own fixture).
const RECORDING: &str = include_str!("../../../exporter/testdata/macos/powermetrics-m3ultra.plist");
/// SoC power in that recording (CPU + GPU + ANE), watts.
pub(super) const RECORDED_SOC_WATTS: f64 = 191.5;
/// Whole-system (SMC) power over SoC power in the recorded macmon line (236.4 / 191.5).
const SMC_OVER_SOC: f64 = 236.4 / 191.5;
/// The simulated power model: idle SoC watts (joules per generated token: the simulation's).
pub(super) const IDLE_WATTS: f64 = 40.0;
/// The GPU node's power model: per GPU idle watts and joules per token; CPU packages and DRAM (RAPL).
const GPU_IDLE_WATTS: f64 = 50.0;
const GPU_JOULES_PER_TOKEN: f64 = 0.3;

/// The recorded powermetrics document with every CPU/GPU/ANE power and energy scaled by `f`.
pub fn scale_plist(f: f64) -> String {
    static RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"<key>((?:cpu|gpu|ane)_(?:energy|power)|combined_power)</key><(integer|real)>([0-9.]+)</(?:integer|real)>",
        )
        .expect("a valid regex")
    });
    RE.replace_all(RECORDING, |c: &regex::Captures<'_>| {
        let v: f64 = c[3].parse().unwrap_or(0.0) * f;
        match &c[2] {
            "integer" => format!(
                "<key>{}</key><integer>{}</integer>",
                &c[1],
                v.round() as i64
            ),
            _ => format!("<key>{}</key><real>{v:.1}</real>", &c[1]),
        }
    })
    .into_owned()
}

/// One macmon line for a SoC power of `soc` watts.
pub(super) fn macmon_line(soc: f64) -> String {
    let f = soc / RECORDED_SOC_WATTS;
    let line = json!({
        "timestamp": chrono::Utc::now().to_rfc3339(),
        "temp": { "cpu_temp_avg": 48.2, "gpu_temp_avg": 50.0 + 6.0 * f },
        "memory": { "ram_total": 549_755_813_888u64, "ram_usage": 309_237_645_312u64, "swap_total": 2_147_483_648u64, "swap_usage": 537_133_056u64 },
        "ecpu_usage": [1284, 0.31], "pcpu_usage": [3504, 0.82], "gpu_usage": [1398, (0.96 * f).min(1.0)],
        "cpu_power": 9.5 * f, "gpu_power": 182.0 * f, "ane_power": 0.0, "all_power": soc,
        "sys_power": soc * SMC_OVER_SOC, "ram_power": 11.2 * f, "gpu_ram_power": 0.9 * f,
    });
    format!("{line}\n")
}

/// Two GPUs' nvidia-smi lines for `tps` generated tokens per second.
pub(super) fn nvidia_lines(tps: f64) -> String {
    (0..2)
        .map(|g| {
            let share = tps / 2.0;
            let w = (GPU_IDLE_WATTS + GPU_JOULES_PER_TOKEN * share) * (0.98 + 0.04 * fastrand::f64());
            let util = (share / 3.0).min(100.0).round();
            format!(
                "{g}, GPU-00000000-0000-4000-8000-00000000000{g}, NVIDIA H100 80GB HBM3 (simulated), {w:.2}, 71680, 81559, {util}\n"
            )
        })
        .collect()
}

/// Four times a second, each node's simulated power from the tokens it generated, written where its
/// powermetrics and macmon stand-ins (Apple nodes) or its nvidia-smi stand-in and sysfs tree
/// (the GPU node) read it.
pub(super) fn power(sim: Arc<Sim>, dir: PathBuf, mut gpu: GpuTree) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: [u64; ALL_NODES] =
            std::array::from_fn(|i| sim.tokens[i].load(Ordering::Relaxed));
        let mut at = Instant::now();
        loop {
            // Four times a second, so the exporters' 1 s samples always see fresh values.
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = Instant::now();
            let dt = now.duration_since(at).as_secs_f64().max(0.001);
            at = now;
            let jpt = sim.mj_per_token.load(Ordering::Relaxed) as f64 / 1000.0;
            for (i, seen) in last.iter_mut().enumerate() {
                let t = sim.tokens[i].load(Ordering::Relaxed);
                let tps = (t - *seen) as f64 / dt;
                *seen = t;
                if i + 1 == GPU_NODE {
                    let node = dir.join(node_name(GPU_NODE));
                    write_atomically(&node.join("nvidia-smi.live"), &nvidia_lines(tps));
                    gpu.advance(dt, tps);
                    continue;
                }
                let soc = (IDLE_WATTS + jpt * tps) * (0.98 + 0.04 * fastrand::f64());
                let node = dir.join(node_name(i + 1));
                write_atomically(
                    &node.join("powermetrics.live"),
                    &scale_plist(soc / RECORDED_SOC_WATTS),
                );
                write_atomically(&node.join("macmon.live"), &macmon_line(soc));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_power_keeps_the_format_and_scales_every_component() {
        use cellwatch_exporter::parse::powermetrics::{Component, parse};
        let base = parse(RECORDING.as_bytes()).unwrap();
        let doc = parse(scale_plist(2.0).as_bytes()).unwrap();
        for c in [Component::Cpu, Component::Gpu] {
            let (b, d) = (base.resolve(c).unwrap(), doc.resolve(c).unwrap());
            assert_eq!(d.watts.unwrap(), 2.0 * b.watts.unwrap(), "{c:?}");
            assert_eq!(d.joules.unwrap(), 2.0 * b.joules.unwrap(), "{c:?}");
        }
    }

    #[test]
    fn macmon_lines_carry_the_modelled_power() {
        let line = macmon_line(100.0);
        let parsed = cellwatch_exporter::parse::macmon::parse(line.trim().as_bytes()).unwrap();
        let sys = parsed.sys_power.unwrap();
        assert!((sys - 100.0 * SMC_OVER_SOC).abs() < 1e-9, "{sys}");
        assert!((parsed.ram_power.unwrap() - 11.2 * 100.0 / RECORDED_SOC_WATTS).abs() < 1e-9);
    }
}
