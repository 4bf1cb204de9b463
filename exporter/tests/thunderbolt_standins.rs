//! The thunderbolt collector in the real binary, with the stand-in commands of
//! `testdata/standins/` first on `PATH`: a new `system_profiler` output (a different peer on a
//! link, as when a cable is moved to another Mac) shows in `cellwatch_link_info` on the next slow
//! tick, at the 1 s slow interval the end-to-end tests use.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cellwatch_metrics::exposition::value;

/// The exporter process, killed when the test ends.
struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(state: &Path, args: &[&str]) -> Running {
    let standins = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/standins");
    let path = format!(
        "{}:{}",
        standins.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_cellwatch-exporter"))
        .args(args)
        .args(["--web.listen-address", "127.0.0.1:0"])
        .env("PATH", path)
        .env("CELLWATCH_STATE", state)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cellwatch-exporter");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split(" address=").nth(1) {
                let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
            }
        }
    });
    let mut running = Running {
        child,
        addr: String::new(),
    };
    running.addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the exporter logs its listen address");
    running
}

/// `GET /metrics` over a plain socket.
fn metrics(addr: &str) -> String {
    let Ok(mut tcp) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = write!(
        tcp,
        "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n"
    );
    let mut out = String::new();
    let _ = tcp.read_to_string(&mut out);
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

fn wait_for(addr: &str, what: &str, within: Duration, ok: impl Fn(&str) -> bool) -> Duration {
    let started = Instant::now();
    loop {
        let text = metrics(addr);
        if ok(&text) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{what} not seen within {within:?}; last page:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

const EN2_FIXTURE: &str = r#"cellwatch_link_info{link="en2",rdma_device="rdma_en2",peer="studio-b",domain="00000002-0000-4000-8000-000000000002",peer_domain="10000002-0000-4000-8000-000000000002"}"#;
const EN2_MOVED: &str = r#"cellwatch_link_info{link="en2",rdma_device="rdma_en2",peer="studio-d",domain="00000002-0000-4000-8000-000000000002",peer_domain="40000004-0000-4000-8000-000000000004"}"#;

#[test]
fn a_new_system_profiler_output_shows_on_the_next_slow_tick() {
    let state = tempfile::tempdir().unwrap();
    let exporter = start(
        state.path(),
        &[
            "--collector.disable-defaults",
            "--collector.thunderbolt",
            "--interval",
            "200ms",
            "--collector.thunderbolt.slow-interval",
            "1s",
            "--node",
            "studio-a-1",
            "--cell",
            "studio-a",
        ],
    );
    // The recorded output first: en2 (receptacle 1) is cabled to studio-b.
    wait_for(
        &exporter.addr,
        "the fixture's peers",
        Duration::from_secs(20),
        |t| value(t, EN2_FIXTURE) == Some(1.0),
    );
    // The cable moved to studio-d: a steered output, read on the next slow tick.
    let fixture = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/macos/system_profiler.json"),
    )
    .unwrap();
    let moved = fixture.replace("\"studio-b\"", "\"studio-d\"").replace(
        "10000002-0000-4000-8000-000000000002",
        "40000004-0000-4000-8000-000000000004",
    );
    assert_ne!(moved, fixture);
    let runs_before = std::fs::read_to_string(state.path().join("system_profiler.runs"))
        .unwrap_or_default()
        .lines()
        .count();
    assert!(runs_before >= 1, "the stand-in ran");
    std::fs::write(state.path().join("system_profiler.out"), moved).unwrap();
    let took = wait_for(
        &exporter.addr,
        "the moved cable",
        Duration::from_secs(10),
        |t| value(t, EN2_MOVED) == Some(1.0) && value(t, EN2_FIXTURE).is_none(),
    );
    // One slow tick (1 s) plus a command run and a fast tick to publish it; a loaded CI
    // machine gets some slack.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    // The other links are as recorded.
    let text = metrics(&exporter.addr);
    assert_eq!(
        value(
            &text,
            r#"cellwatch_link_info{link="en3",rdma_device="rdma_en3",peer="studio-c",domain="00000001-0000-4000-8000-000000000001",peer_domain="10000001-0000-4000-8000-000000000001"}"#
        ),
        Some(1.0),
        "{text}"
    );
    eprintln!("a new system_profiler output showed after {took:?}");
}
