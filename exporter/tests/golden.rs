//! The golden `/metrics`: our own fixture inputs (`testdata/macos/`) through the real parsers and
//! collectors into the real encoder. The file is `tests/golden/metrics.prom`; regenerate it with
//! `UPDATE_GOLDEN=1 cargo test -p cellwatch-exporter --test golden`. Every metric family of the
//! reference must appear in it; `promtool check metrics` on it runs in the e2e tests.

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

#[test]
fn golden_metrics_match() {
    let have = render();
    let path = golden_path();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &have).unwrap();
    }
    let want = std::fs::read_to_string(&path)
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
        value(r#"cellwatch_link_info{link="en2",rdma_device="rdma_en2",peer="studio-b"}"#),
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
fn every_reference_metric_is_emitted() {
    let text = render();
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
