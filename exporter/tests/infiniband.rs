//! The infiniband collector on node_exporter's real sysfs tree
//! (`exporter/testdata/real/infiniband/`: an extract of its `sys.ttar`, and the
//! `node_infiniband_*` lines its end-to-end test expects from that tree). Our bytes, packets,
//! rate and states must equal node_exporter's: data from the 64-bit `counters_ext` files where
//! they exist (node_exporter's `legacy_data_*`), else from `counters/` (its `port_data_*`),
//! both × 4 octets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cellwatch_exporter::collector::infiniband::{Ports, read_ports};

fn real() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/real/infiniband")
}

/// Unpacks a ttar archive (text records: `Path:`/`Lines:`/content/`Mode:`, `Directory:`).
fn untar(text: &str, into: &Path) -> usize {
    let mut lines = text.lines();
    let mut files = 0;
    while let Some(l) = lines.next() {
        if let Some(d) = l.strip_prefix("Directory: ") {
            std::fs::create_dir_all(into.join(d)).unwrap();
        } else if let Some(p) = l.strip_prefix("Path: ") {
            let n: usize = lines
                .next()
                .and_then(|l| l.strip_prefix("Lines: "))
                .and_then(|n| n.parse().ok())
                .expect("Lines: after Path:");
            let body: Vec<&str> = (0..n).map(|_| lines.next().unwrap()).collect();
            let path = into.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, body.join("\n") + "\n").unwrap();
            files += 1;
        }
    }
    files
}

/// `name{device="d",port="p"} value` lines of the expected output.
fn expected() -> BTreeMap<(String, String, String), f64> {
    let text = std::fs::read_to_string(real().join("linux-node_exporter-e2e-infiniband.prom"))
        .expect("exporter/testdata/real/infiniband");
    let mut out = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches(['"', '}']).to_string())
        };
        if let (Some(d), Some(p)) = (label("device"), label("port")) {
            out.insert((name.to_string(), d, p), value.parse().unwrap());
        }
    }
    out
}

#[test]
fn ports_match_node_exporters_expected_output() {
    let dir = tempfile::tempdir().unwrap();
    let ttar =
        std::fs::read_to_string(real().join("linux-node_exporter-sys-class-infiniband.ttar"))
            .expect("exporter/testdata/real/infiniband");
    assert!(untar(&ttar, dir.path()) > 50);
    let ports = read_ports(&dir.path().join("sys")).unwrap();
    let want = expected();
    let get = |name: &str, d: &str, p: &str| {
        want.get(&(name.to_string(), d.to_string(), p.to_string()))
            .copied()
    };
    assert_eq!(ports.len(), 3, "{ports:?}");
    let mut checked = 0;
    for p in &ports {
        let (d, n) = (p.device.as_str(), p.port.as_str());
        let ext = dir
            .path()
            .join(format!("sys/class/infiniband/{d}/ports/{n}/counters_ext"))
            .is_dir();
        let data = |dir: &str| {
            if ext {
                get(
                    &format!("node_infiniband_legacy_data_{dir}_bytes_total"),
                    d,
                    n,
                )
            } else {
                get(
                    &format!("node_infiniband_port_data_{dir}_bytes_total"),
                    d,
                    n,
                )
            }
        };
        assert_eq!(p.rx_bytes.map(|v| v as f64), data("received"), "{d}/{n} rx");
        assert_eq!(
            p.tx_bytes.map(|v| v as f64),
            data("transmitted"),
            "{d}/{n} tx"
        );
        let packets = |dir: &str| {
            let legacy = get(&format!("node_infiniband_legacy_packets_{dir}_total"), d, n);
            let plain = get(&format!("node_infiniband_port_packets_{dir}_total"), d, n);
            if ext { legacy.or(plain) } else { plain }
        };
        assert_eq!(
            p.rx_packets.map(|v| v as f64),
            packets("received"),
            "{d}/{n} rx packets"
        );
        assert_eq!(
            p.rate,
            get("node_infiniband_rate_bytes_per_second", d, n),
            "{d}/{n}"
        );
        assert_eq!(
            p.state.map(f64::from),
            get("node_infiniband_state_id", d, n)
        );
        assert_eq!(
            p.phys_state.map(f64::from),
            get("node_infiniband_physical_state_id", d, n)
        );
        assert_eq!(
            p.tx_discards.map(|v| v as f64),
            get("node_infiniband_port_discards_transmitted_total", d, n),
            "{d}/{n} discards"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
    // i40iw0 has no PMA: no data counters at all, not zeros.
    let i40 = ports.iter().find(|p| p.device == "i40iw0").unwrap();
    assert_eq!((i40.rx_bytes, i40.tx_bytes), (None, None));
    // Into our families: every port active and up, speed from the rate.
    let samples = Ports::default().samples(&ports);
    let find = |name: &str, label: &str| {
        samples
            .iter()
            .find(|s| s.def.name == name && s.labels[0] == label)
            .map(|s| s.value)
    };
    assert_eq!(find("cellwatch_rdma_port_active", "mlx4_0"), Some(1.0));
    assert_eq!(
        find("cellwatch_link_speed_bytes_per_second", "mlx4_0/2"),
        Some(5e9)
    );
    assert_eq!(
        find("cellwatch_link_received_bytes_total", "mlx4_0/2"),
        Some(18_527_668.0)
    );
}
