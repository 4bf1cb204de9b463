//! Every parser on the real captures in `exporter/testdata/real/` (see its SOURCES.md files):
//! full captures give the values they imply, excerpts give partial values or a clean error, and
//! no input, whole, truncated or mangled, makes any parser panic.

use std::path::{Path, PathBuf};

use cellwatch_exporter::adapter::{self, Server};
use cellwatch_exporter::parse::powermetrics::Component;
use cellwatch_exporter::parse::{
    ibv_devinfo, macmon, netstat, networksetup, powermetrics, rdma_ctl, sysctl, system_profiler,
    vm_stat,
};

fn real() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/real");
    assert!(
        p.is_dir(),
        "{} is missing: the real captures live in exporter/testdata/real",
        p.display()
    );
    p
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(real().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().is_some_and(|n| n != "SOURCES.md"))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no captures in {dir}");
    v
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn text(p: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Runs every parser on the input; only a panic can fail this.
fn every_parser(bytes: &[u8]) {
    let s = String::from_utf8_lossy(bytes);
    if let Ok(p) = powermetrics::parse(bytes) {
        for c in Component::ALL {
            let _ = p.resolve(c);
        }
        let _ = (p.gpu_active_ratio(), p.thermal_level());
    }
    if let Ok(v) = vm_stat::parse(&s) {
        let _ = v.memory().used();
    }
    if let Ok(m) = sysctl::parse(&s) {
        for v in m.values() {
            let _ = (
                sysctl::memsize(v),
                sysctl::swap_used_bytes(v),
                sysctl::pressure_level(v),
                sysctl::wired_limit_bytes(v),
            );
        }
    }
    let _ = netstat::parse(&s);
    let _ = networksetup::parse(&s);
    let _ = system_profiler::parse(&s);
    let _ = ibv_devinfo::parse(&s);
    let _ = rdma_ctl::parse(&s);
    let _ = macmon::parse(bytes);
    let models = cellwatch_exporter::proxy::ModelLabels::new(4);
    for server in [Server::Vllm, Server::LlamaCpp, Server::Sglang, Server::Tgi] {
        if let Ok(r) = adapter::normalize(server, &s, "m", &models) {
            let _ = adapter::Monotonize::default().families(&r);
        }
    }
    let mut meter = cellwatch_exporter::proxy::meter::Meter::new(
        cellwatch_exporter::proxy::meter::Api::ChatCompletions,
        cellwatch_exporter::proxy::meter::Format::Sse,
    );
    meter.feed(bytes, std::time::Duration::ZERO);
    let _ = meter.finish();
}

#[test]
fn inference_pages() {
    let models = cellwatch_exporter::proxy::ModelLabels::new(4);
    for f in files("inference") {
        let n = name(&f);
        let t = text(&f);
        if n.contains("llamacpp") {
            let r = adapter::normalize(Server::LlamaCpp, &t, "llama", &models)
                .unwrap_or_else(|e| panic!("{n}: {e}"));
            let text = cellwatch_exporter::store::encode_families(
                adapter::Monotonize::default().families(&r),
            );
            let v = |s: &str| cellwatch_metrics::exposition::value(&text, s);
            assert_eq!(
                v(r#"cellwatch_inference_tokens_total{model="llama",kind="prompt"}"#),
                Some(6886.0),
                "{text}"
            );
            assert_eq!(
                v(r#"cellwatch_inference_tokens_total{model="llama",kind="generated"}"#),
                Some(3469.0),
                "{text}"
            );
            assert!(
                !text.contains("duration"),
                "llama.cpp has no latency: nothing invented"
            );
        } else if n.starts_with("vllm-docs") {
            // The docs' excerpt holds only vllm:iteration_tokens_total, which has no normalized
            // counterpart: nothing comes out, and nothing fails.
            let r = adapter::normalize(Server::Vllm, &t, "m", &models)
                .unwrap_or_else(|e| panic!("{n}: {e}"));
            assert!(r.is_empty(), "{n}: {r:?}");
            assert!(
                adapter::normalize(Server::LlamaCpp, &t, "m", &models).is_err(),
                "{n}: not a llama.cpp page"
            );
        }
    }
}

/// A real page of `server`, normalized and encoded.
fn inference_page(server: Server, file: &str) -> String {
    let models = cellwatch_exporter::proxy::ModelLabels::new(4);
    let t = text(&real().join("inference").join(file));
    let r = adapter::normalize(server, &t, "unknown", &models)
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    cellwatch_exporter::store::encode_families(adapter::Monotonize::default().families(&r))
}

#[test]
fn real_pages_give_time_per_output_token_queue_time_and_waiting() {
    // SGLang's docs page: its per-token TPOT histogram (the only one it has) and its queue.
    let t = inference_page(
        Server::Sglang,
        "sglang-docs-production-metrics.metrics.prom",
    );
    let v = |s: &str| cellwatch_metrics::exposition::value(&t, s);
    let m = "meta-llama/Llama-3.1-8B-Instruct";
    let tpot = "cellwatch_inference_time_per_output_token_seconds";
    assert_eq!(
        v(&format!(r#"{tpot}_count{{model="{m}"}}"#)),
        Some(7_400_757.0),
        "{t}"
    );
    assert_eq!(
        v(&format!(r#"{tpot}_bucket{{model="{m}",le="0.1"}}"#)),
        Some(4_950_195.0)
    );
    assert_eq!(
        v(&format!(r#"{tpot}_bucket{{model="{m}",le="0.075"}}"#)),
        Some(433_413.0)
    );
    assert_eq!(
        v(&format!(
            r#"cellwatch_inference_requests_waiting{{model="{m}"}}"#
        )),
        Some(2826.0)
    );
    assert!(
        !t.contains("queue_time"),
        "this SGLang has no queue-time histogram: none invented"
    );
    // vLLM (V1, before 0.11) excerpts: the per-token TPOT (it has no per-request one), queue
    // time, waiting; the excerpts hold no _count, so only buckets are read off the page.
    let t = inference_page(
        Server::Vllm,
        "vllm-production-stack-issue318.metrics.partial.prom",
    );
    let v = |s: &str| cellwatch_metrics::exposition::value(&t, s);
    let m = "Qwen/Qwen2.5-Coder-32B-Instruct";
    assert_eq!(
        v(&format!(r#"{tpot}_bucket{{model="{m}",le="0.05"}}"#)),
        Some(131_575.0),
        "{t}"
    );
    assert_eq!(
        v(&format!(r#"{tpot}_bucket{{model="{m}",le="0.025"}}"#)),
        Some(3328.0)
    );
    assert_eq!(
        v(&format!(
            r#"cellwatch_inference_queue_time_seconds_bucket{{model="{m}",le="0.3"}}"#
        )),
        Some(291.0)
    );
    assert_eq!(
        v(&format!(
            r#"cellwatch_inference_requests_waiting{{model="{m}"}}"#
        )),
        Some(0.0)
    );
    assert_eq!(
        v(&format!(
            r#"cellwatch_inference_requests_in_flight{{model="{m}"}}"#
        )),
        Some(0.0)
    );
}

#[test]
fn powermetrics_plists_parse_and_other_formats_are_clean_errors() {
    let mut plists = 0;
    for f in files("powermetrics") {
        let n = name(&f);
        let r = powermetrics::parse(&std::fs::read(&f).unwrap());
        if n.ends_with(".xml") || n.ends_with(".plist") {
            let s = r.unwrap_or_else(|e| panic!("{n}: {e}"));
            plists += 1;
            assert_eq!(s.hw_model.as_deref(), Some("MacBookPro17,1"), "{n}");
            let names: Vec<&str> = s.clusters.iter().map(|(c, _)| c.as_str()).collect();
            assert_eq!(names, ["E-Cluster", "P-Cluster"], "{n}");
            assert!(
                s.clusters.iter().all(|(_, hz)| *hz > 1e8 && *hz < 5e9),
                "{n}: cluster freq_hz is Hz"
            );
            let gpu_hz = s.gpu_frequency_hz().unwrap();
            assert!(
                gpu_hz > 1e8 && gpu_hz < 2e9,
                "{n}: gpu.freq_hz is MHz, got {gpu_hz} Hz"
            );
            assert_eq!(s.thermal_level(), Some(Ok(0)), "{n}");
            // cpu_power (mW) = cpu_energy (mJ) / elapsed (s): both routes agree within rounding.
            let cpu = s.resolve(Component::Cpu).unwrap();
            let r = s.reading(Component::Cpu);
            let from_energy = r.energy_mj.unwrap() / s.elapsed_s.unwrap() / 1e3;
            assert!(
                (cpu.watts.unwrap() - from_energy).abs() < 0.002,
                "{n}: {cpu:?} vs {from_energy}"
            );
            assert!(
                cpu.watts.unwrap() < 1.0,
                "{n}: an idle M1 draws milliwatts, got {cpu:?}"
            );
            assert_eq!(s.resolve(Component::Ane).unwrap().watts, Some(0.0));
            assert!(s.gpu_active_ratio().unwrap() > 0.0);
        } else {
            let e = r.expect_err(&n).to_string();
            assert!(e.contains("powermetrics plist"), "{n}: {e}");
        }
    }
    assert!(plists >= 2, "expected the two pumas plists");
}

#[test]
fn pumas_m1_values() {
    let s = powermetrics::parse(
        &std::fs::read(real().join("powermetrics/pumas-powermetrics-output-m1.xml")).unwrap(),
    )
    .unwrap();
    assert!(close(s.elapsed_s.unwrap(), 2.01917875));
    let gpu = s.resolve(Component::Gpu).unwrap();
    assert!(close(gpu.watts.unwrap(), 0.0153528), "{gpu:?}");
    assert!(
        close(gpu.joules.unwrap(), 0.031),
        "processor.gpu_energy is mJ: {gpu:?}"
    );
    assert!(close(s.gpu_frequency_hz().unwrap(), 714.836e6));
}

#[test]
fn memory_captures() {
    for f in files("memory") {
        let n = name(&f);
        let t = text(&f);
        if n.contains("vm_stat") {
            let v = vm_stat::parse(&t).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(v.page_size, 16384);
            let m = v.memory();
            // Activity Monitor's figures for this 32 GB Mac mini (apple-telemetry.md §2.2).
            assert_eq!(m.compressed, Some(153447 * 16384), "occupied, not stored");
            assert_eq!(m.app, Some((1212532 - 21054) * 16384));
            assert_eq!(m.wired, Some(127718 * 16384));
            assert_eq!(m.cached, Some((438304 + 21054) * 16384));
            let used_gib = m.used().unwrap() as f64 / (1u64 << 30) as f64;
            assert!((used_gib - 22.47).abs() < 0.01, "{used_gib}");
        } else if n.contains("sysctl") && !n.contains("_-n_") {
            let m = sysctl::parse(&t).unwrap_or_else(|e| panic!("{n}: {e}"));
            if let Some(v) = m.get("vm.swapusage") {
                let used = sysctl::swap_used_bytes(v).unwrap();
                assert!(used == 427_294_720 || used == 13_906_277_827, "{n}: {used}");
            }
            if let Some(v) = m.get("kern.memorystatus_vm_pressure_level") {
                assert_eq!(
                    sysctl::pressure_level(v),
                    Ok(1),
                    "{n}: level 2 is a warning"
                );
            }
            if let Some(v) = m.get("iogpu.wired_limit_mb") {
                assert_eq!(
                    sysctl::wired_limit_bytes(v),
                    Ok(0),
                    "{n}: 0 is the default policy"
                );
            }
            assert!(!m.is_empty());
        } else if n.contains("_-n_") {
            // `sysctl -n` prints a bare value: no name, so nothing for the collector (it runs without -n).
            assert!(sysctl::parse(&t).is_err(), "{n}");
            assert_eq!(sysctl::memsize(&t), Ok(8_589_934_592));
        } else {
            // memory_pressure, top, footprint: not formats the collector reads.
            assert!(vm_stat::parse(&t).is_err(), "{n}");
        }
    }
}

#[test]
fn thunderbolt_captures() {
    let mut seen = std::collections::BTreeSet::new();
    for f in files("thunderbolt") {
        let n = name(&f);
        let t = text(&f);
        if n.contains("netstat") {
            let v = netstat::parse(&t).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(v.len(), 1, "{n}: one <Link#> row");
            if n.contains("wide") {
                assert_eq!(
                    (v[0].name.as_str(), v[0].ibytes, v[0].obytes),
                    ("en0", 23_308_376_472, 26_102_435_913),
                    "64-bit"
                );
            } else {
                assert_eq!(
                    (v[0].name.as_str(), v[0].ibytes, v[0].ierrs),
                    ("lo0", 169_411_755, Some(0)),
                    "empty Address column"
                );
            }
            seen.insert("netstat");
        } else if n.contains("networksetup") {
            let ports = networksetup::parse(&t).unwrap_or_else(|e| panic!("{n}: {e}"));
            let tb: Vec<(u32, &str)> = ports
                .iter()
                .filter_map(|p| Some((p.thunderbolt_receptacle()?, p.device.as_str())))
                .collect();
            assert_eq!(
                tb,
                [(1, "en1"), (2, "en6"), (3, "en2")],
                "{n}: the bridge is not a link"
            );
            seen.insert("networksetup");
        } else if n.contains("system_profiler") && n.ends_with(".json") {
            let r = system_profiler::parse(&t).unwrap_or_else(|e| panic!("{n}: {e}"));
            let connected: Vec<(u32, Option<f64>, Option<&str>)> = r
                .iter()
                .filter(|r| r.connected)
                .map(|r| (r.id, r.speed_bytes_per_second, r.peer.as_deref()))
                .collect();
            assert_eq!(
                connected,
                [
                    (3, Some(1e10), Some("SB-XTM5")),
                    (2, Some(1e10), Some("MacBook Pro"))
                ],
                "{n}"
            );
            assert!(
                r.iter()
                    .any(|r| r.id == 1 && !r.connected && r.speed_bytes_per_second.is_none()),
                "{n}: 'Up to 120 Gb/s' is no link"
            );
            // The peer Mac's end of the link is its own bus's domain; the dock (SB-XTM5)
            // reports none.
            let domains: Vec<(u32, Option<&str>, Option<&str>)> = r
                .iter()
                .map(|r| (r.id, r.domain.as_deref(), r.peer_domain.as_deref()))
                .collect();
            assert_eq!(
                domains,
                [
                    (3, Some("00000009-0000-4000-8000-000000000009"), None),
                    (
                        2,
                        Some("00000004-0000-4000-8000-000000000004"),
                        Some("00000003-0000-4000-8000-000000000003")
                    ),
                    (1, Some("00000008-0000-4000-8000-000000000008"), None),
                ],
                "{n}"
            );
            seen.insert("system_profiler");
        } else if n.contains("ibv_devinfo") {
            let d = ibv_devinfo::parse(&t).unwrap_or_else(|e| panic!("{n}: {e}"));
            assert_eq!(d.len(), 3, "{n}");
            assert!(
                d.iter().all(|d| d.name.starts_with("rdma_en") && !d.active),
                "{n}: all PORT_DOWN"
            );
            seen.insert("ibv_devinfo");
        } else {
            // ibv_devices, ifconfig, hostfiles, mactop's JSON, system_profiler's text form:
            // not formats the collector reads; each parser refuses them cleanly.
            assert!(system_profiler::parse(&t).is_err(), "{n}");
            assert!(
                netstat::parse(&t).is_err() || netstat::parse(&t) == Ok(vec![]),
                "{n}"
            );
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
}

fn all_real_inputs() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir(real()).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                out.push((name(&f), std::fs::read(&f).unwrap()));
            }
        }
    }
    let ours = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/macos");
    for f in std::fs::read_dir(ours).unwrap() {
        let f = f.unwrap().path();
        out.push((name(&f), std::fs::read(&f).unwrap()));
    }
    assert!(out.len() > 20);
    out
}

#[test]
fn no_parser_panics_on_any_capture_whole_or_truncated() {
    for (_, bytes) in all_real_inputs() {
        let step = (bytes.len() / 97).max(1);
        for cut in (0..=bytes.len()).step_by(step) {
            every_parser(&bytes[..cut]);
            every_parser(&bytes[cut..]);
        }
        every_parser(&bytes);
    }
}

#[test]
fn no_parser_panics_on_mangled_input() {
    // A small deterministic xorshift generator: flipped bytes, NULs, digits and separators
    // sprinkled over every capture.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let alphabet = b"\0\n\t :.-<>/\"'0123456789eE+Mx\xff\xc3";
    for (_, bytes) in all_real_inputs() {
        for _ in 0..20 {
            let mut b = bytes.clone();
            for _ in 0..(1 + next() % 8) {
                if b.is_empty() {
                    break;
                }
                let i = (next() % b.len() as u64) as usize;
                b[i] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            every_parser(&b);
        }
    }
}
