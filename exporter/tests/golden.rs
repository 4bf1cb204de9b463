//! The golden `/metrics`: our own fixture inputs (`testdata/macos/` for an Apple node,
//! `testdata/linux/` for a Linux GPU node) through the real parsers and collectors into the real
//! encoder. The files are `tests/golden/metrics.prom` and `tests/golden/metrics-linux.prom`;
//! regenerate them with `UPDATE_GOLDEN=1 cargo test -p cellwatch-exporter --test golden`. Every
//! metric family of the reference must appear in one of them; the families both nodes share
//! (power, energy, memory, links, RDMA) must appear in both; `promtool check metrics` on them
//! runs in the e2e tests.

use std::path::{Path, PathBuf};

use cellwatch_exporter::node::Identity;
use cellwatch_exporter::replay;

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics.prom")
}

/// The exposition for the fixture inputs, built as the running exporter builds it.
fn render() -> String {
    let id = Identity {
        cell: "studio-a".into(),
        node: "studio-a-1".into(),
        hw_model: "Mac15,14".into(),
        os_version: "26.2".into(),
    };
    let store = replay::snapshot(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/macos"),
        &id,
    )
    .unwrap();
    String::from_utf8(store.render().to_vec()).unwrap()
}

/// The exposition of the Linux fixture tree.
fn render_linux() -> String {
    let id = Identity {
        cell: "gpu-pool".into(),
        node: "gpu-1".into(),
        hw_model: "PowerEdge XE9680".into(),
        os_version: "Debian 12".into(),
    };
    let store = replay::linux_snapshot(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/linux"),
        &id,
    )
    .unwrap();
    String::from_utf8(store.render().to_vec()).unwrap()
}

#[test]
fn golden_metrics_match() {
    golden(&render(), &golden_path());
    golden(
        &render_linux(),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/metrics-linux.prom"),
    );
}

fn golden(have: &str, path: &Path) {
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, have).unwrap();
    }
    let want = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 creates it)", path.display()));
    if have != want {
        let diff: Vec<String> = have
            .lines()
            .zip(want.lines())
            .filter(|(a, b)| a != b)
            .take(10)
            .map(|(a, b)| format!("  have: {a}\n  want: {b}"))
            .collect();
        panic!(
            "/metrics drifted from tests/golden/metrics.prom (UPDATE_GOLDEN=1 to accept):\n{}",
            diff.join("\n")
        );
    }
}

#[test]
fn golden_values_are_the_ones_the_inputs_imply() {
    let text = render();
    let value = |series: &str| -> f64 {
        cellwatch_metrics::exposition::value(&text, series).unwrap_or_else(|| panic!("no {series}"))
    };
    // powermetrics: 182,000 mW GPU over two 1 s windows; MHz and Hz; duplicate keys accepted.
    assert_eq!(value(r#"cellwatch_power_watts{component="gpu"}"#), 182.0);
    assert_eq!(
        value(r#"cellwatch_energy_joules_total{component="gpu"}"#),
        364.0
    );
    assert_eq!(value(r#"cellwatch_node_power_watts{source="soc"}"#), 191.5);
    assert_eq!(
        value(r#"cellwatch_node_energy_joules_total{source="soc"}"#),
        383.0
    );
    assert_eq!(value("cellwatch_gpu_frequency_hertz"), 1.398e9);
    assert_eq!(
        value(r#"cellwatch_cpu_cluster_frequency_hertz{cluster="P0-Cluster"}"#),
        3.504e9
    );
    assert!((value("cellwatch_gpu_active_ratio") - 0.96).abs() < 1e-12);
    // vm_stat pages × 16384, sysctl MiB.
    assert_eq!(value("cellwatch_memory_total_bytes"), 549_755_813_888.0);
    assert_eq!(
        value(r#"cellwatch_memory_bytes{state="app"}"#),
        ((16_800_000u64 - 40_960) * 16384) as f64
    );
    assert_eq!(
        value("cellwatch_memory_used_bytes"),
        ((16_800_000u64 - 40_960 + 10_485_760 + 300_000) * 16384) as f64
    );
    assert_eq!(value("cellwatch_memory_swap_used_bytes"), 537_133_056.0);
    assert_eq!(
        value("cellwatch_gpu_wired_limit_bytes"),
        491_520.0 * 1_048_576.0
    );
    assert_eq!(value("cellwatch_memory_pressure_level"), 1.0);
    // Thunderbolt: the bridge and en0 are not links; 64-bit counters; 80 Gb/s.
    assert_eq!(
        value(r#"cellwatch_link_received_bytes_total{link="en2"}"#),
        9_123_456_789_012.0
    );
    assert_eq!(
        value(r#"cellwatch_link_speed_bytes_per_second{link="en3"}"#),
        1e10
    );
    assert!(!text.contains(r#"link="bridge0""#) && !text.contains(r#"link="en0""#));
    assert_eq!(
        value(
            r#"cellwatch_link_info{link="en2",rdma_device="rdma_en2",peer="studio-b",domain="00000002-0000-4000-8000-000000000002",peer_domain="10000002-0000-4000-8000-000000000002"}"#
        ),
        1.0
    );
    // Nothing connected on en4 (receptacle 3): its bus's domain, no peer.
    assert_eq!(
        value(
            r#"cellwatch_link_info{link="en4",rdma_device="rdma_en4",peer="",domain="00000000-0000-4000-8000-000000000000",peer_domain=""}"#
        ),
        1.0
    );
    assert_eq!(
        value(r#"cellwatch_rdma_port_active{device="rdma_en4"}"#),
        0.0
    );
    // macmon: W, integrated over its 1 s window.
    assert_eq!(
        value(r#"cellwatch_node_energy_joules_total{source="smc"}"#),
        236.5
    );
    assert_eq!(
        value(r#"cellwatch_energy_joules_total{component="dram"}"#),
        11.25
    );
}

#[test]
fn linux_values_are_the_ones_the_tree_implies() {
    let text = render_linux();
    let value = |series: &str| -> f64 {
        cellwatch_metrics::exposition::value(&text, series).unwrap_or_else(|| panic!("no {series}"))
    };
    let near = |series: &str, want: f64| {
        let v = value(series);
        assert!((v - want).abs() < 1e-6, "{series}: {v}, want {want}");
    };
    // RAPL: package-0 wrapped between the readings: 250 J in 1 s, not a reset.
    near(
        r#"cellwatch_energy_joules_total{component="package-0"}"#,
        250.0,
    );
    near(r#"cellwatch_power_watts{component="package-0"}"#, 250.0);
    near(
        r#"cellwatch_energy_joules_total{component="package-1-dram"}"#,
        28.0,
    );
    near(
        r#"cellwatch_node_energy_joules_total{source="rapl"}"#,
        548.0,
    );
    near(r#"cellwatch_node_power_watts{source="rapl"}"#, 548.0);
    // nvidia-smi: two 1 s samples of 612.37 W and 598.12 W.
    near(
        r#"cellwatch_energy_joules_total{component="gpu0"}"#,
        2.0 * 612.37,
    );
    near(
        r#"cellwatch_node_power_watts{source="nvidia"}"#,
        612.37 + 598.12,
    );
    near(r#"cellwatch_gpu_utilization_ratio{gpu="1"}"#, 0.95);
    near(
        r#"cellwatch_gpu_memory_total_bytes{gpu="0"}"#,
        81559.0 * 1_048_576.0,
    );
    // meminfo, kB × 1024.
    near("cellwatch_memory_total_bytes", 2_113_645_568.0 * 1024.0);
    near(
        "cellwatch_memory_used_bytes",
        (2_113_645_568.0 - 1_798_365_184.0) * 1024.0,
    );
    near("cellwatch_memory_swap_used_bytes", 262_144.0 * 1024.0);
    // InfiniBand: words × 4; 400 Gb/s; a port that is down has no speed.
    near(
        r#"cellwatch_link_received_bytes_total{link="mlx5_0/1"}"#,
        251_250_000_000.0 * 4.0,
    );
    near(
        r#"cellwatch_link_speed_bytes_per_second{link="mlx5_0/1"}"#,
        5e10,
    );
    near(r#"cellwatch_rdma_port_active{device="mlx5_0"}"#, 1.0);
    near(r#"cellwatch_rdma_port_active{device="mlx5_1"}"#, 0.0);
    near(r#"cellwatch_link_up{link="mlx5_1/1"}"#, 0.0);
    assert!(!text.contains(r#"cellwatch_link_speed_bytes_per_second{link="mlx5_1/1"}"#));
}

#[test]
fn apple_and_linux_nodes_share_the_comparable_families() {
    let (apple, linux) = (render(), render_linux());
    for name in [
        "cellwatch_power_watts",
        "cellwatch_energy_joules_total",
        "cellwatch_node_power_watts",
        "cellwatch_node_energy_joules_total",
        "cellwatch_memory_total_bytes",
        "cellwatch_memory_used_bytes",
        "cellwatch_memory_bytes",
        "cellwatch_memory_swap_used_bytes",
        "cellwatch_link_received_bytes_total",
        "cellwatch_link_transmitted_bytes_total",
        "cellwatch_link_errors_total",
        "cellwatch_link_speed_bytes_per_second",
        "cellwatch_link_up",
        "cellwatch_rdma_port_active",
        "cellwatch_collector_up",
        "cellwatch_node_info",
    ] {
        for (node, text) in [("Apple", &apple), ("Linux", &linux)] {
            assert!(
                text.contains(&format!("\n{name}{{")) || text.contains(&format!("\n{name} ")),
                "{node} golden lacks {name}"
            );
        }
    }
}

#[test]
fn every_reference_metric_is_emitted() {
    let text = render() + &render_linux();
    for m in cellwatch_metrics::ALL
        .iter()
        .filter(|m| m.collector != "slo-engine")
    {
        assert!(
            text.contains(&format!("# TYPE {} {}", m.name, m.kind.as_str())),
            "{} is in the reference but not emitted",
            m.name
        );
    }
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split(' ').nth(2).unwrap();
        assert!(
            cellwatch_metrics::by_name(name).is_some(),
            "{name} is emitted but not in the reference"
        );
    }
}
