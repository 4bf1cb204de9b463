//! Helpers for the end-to-end tests: start the real `cellwatch-exporter` binary with stand-in
//! commands first on `PATH`, scrape it, and steer the stand-ins through files in a state
//! directory (see `exporter/testdata/standins/_standin.sh`).

pub mod alertmanager;
pub mod browser;
pub mod otlp;
pub mod prometheus;
pub mod recorder;
pub mod smtp;
pub mod upstream;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A binary of the workspace, built by `cargo test --workspace` next to the test executables
/// (or named by `CELLWATCH_<NAME>_BIN`).
pub fn binary(name: &str) -> PathBuf {
    let var = format!(
        "CELLWATCH_{}_BIN",
        name.trim_start_matches("cellwatch-")
            .to_uppercase()
            .replace('-', "_")
    );
    if let Some(p) = std::env::var_os(&var) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `cargo test --workspace` (which builds it) or set {var}",
        p.display()
    );
    p
}

/// The stand-in macOS commands.
pub fn standins() -> PathBuf {
    workspace().join("exporter/testdata/standins")
}

/// A running exporter; terminated (SIGTERM, then SIGKILL) on drop.
pub struct Exporter {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    log: Arc<Mutex<String>>,
    /// The stand-ins' state directory.
    pub state: tempfile::TempDir,
    client: reqwest::Client,
}

impl Exporter {
    /// Prepares a state directory (so stand-ins can be steered before start), then starts the
    /// exporter with `args` plus a loopback listen address.
    pub fn start_with(state: tempfile::TempDir, args: &[&str]) -> Exporter {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--web.listen-address",
            "127.0.0.1:0",
            "--node",
            "test-node",
            "--cell",
            "test-cell",
        ]);
        Exporter::spawn("cellwatch-exporter", &all, state)
    }

    /// Starts any workspace binary that logs ` address=HOST:PORT` once it listens (the exporter,
    /// the SLO engine) with stand-ins first on PATH and `CELLWATCH_STATE` set.
    pub fn spawn(name: &str, args: &[&str], state: tempfile::TempDir) -> Exporter {
        let path = format!(
            "{}:{}",
            standins().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut child = Command::new(binary(name))
            .args(args)
            .env("PATH", path)
            .env("CELLWATCH_STATE", state.path())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            let stderr = child.stderr.take().expect("stderr");
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(addr) = line.split(" address=").nth(1) {
                        let _ = tx.send(addr.split_whitespace().next().unwrap_or("").to_string());
                    }
                    let mut l = log.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "{name} did not start listening; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Exporter {
            child,
            base: format!("http://{addr}"),
            log,
            state,
            client: crate::http(),
        }
    }

    /// Starts with a fresh state directory.
    pub fn start(args: &[&str]) -> Exporter {
        Exporter::start_with(tempfile::tempdir().expect("tempdir"), args)
    }

    /// [`Exporter::start`] with owned arguments (as [`proxy_args`] gives them).
    pub fn start_owned(args: &[String]) -> Exporter {
        Exporter::start(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Writes a steering file for the stand-ins.
    pub fn steer(&self, file: &str, content: &str) {
        std::fs::write(self.state.path().join(file), content).expect("write steering file");
    }

    /// Removes a steering file.
    pub fn unsteer(&self, file: &str) {
        let _ = std::fs::remove_file(self.state.path().join(file));
    }

    /// Reads a file the stand-ins wrote (empty when absent).
    pub fn state_file(&self, file: &str) -> String {
        std::fs::read_to_string(self.state.path().join(file)).unwrap_or_default()
    }

    /// The metering proxy's base URL, once it listens (from its log line).
    pub async fn proxy_base(&self) -> String {
        let start = Instant::now();
        loop {
            if let Some(addr) = self.log().split(" proxy_address=").nth(1) {
                return format!("http://{}", addr.split_whitespace().next().unwrap_or(""));
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the proxy did not listen; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the exporter logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// GET a path; panics on a transport error or a non-200 answer.
    pub async fn get(&self, path: &str) -> String {
        let r = self
            .client
            .get(format!("{}{path}", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}\nlog:\n{}", self.log()));
        assert_eq!(r.status(), 200, "GET {path}");
        r.text().await.expect("body")
    }

    /// One scrape of `/metrics`.
    pub async fn metrics(&self) -> Metrics {
        Metrics(self.get("/metrics").await)
    }

    /// Scrapes until `ok` holds (every scrape must succeed), or panics after `within`.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&Metrics) -> bool,
    ) -> Metrics {
        let start = Instant::now();
        loop {
            let m = self.metrics().await;
            if ok(&m) {
                return m;
            }
            if start.elapsed() > within {
                panic!(
                    "timed out after {within:?} waiting for {what}\nlast /metrics:\n{}\nlog:\n{}",
                    m.0,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `/metrics` body.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of one series (`name{a="b"}`, labels in any order).
    pub fn value(&self, series: &str) -> Option<f64> {
        cellwatch_metrics::exposition::value(&self.0, series)
    }

    /// `cellwatch_collector_<what>{collector="<c>"}`.
    pub fn collector(&self, what: &str, c: &str) -> Option<f64> {
        self.value(&format!("cellwatch_collector_{what}{{collector=\"{c}\"}}"))
    }

    /// Whether any line starts with `prefix`.
    pub fn has(&self, prefix: &str) -> bool {
        self.0.lines().any(|l| l.starts_with(prefix))
    }
}

/// Runs `promtool check metrics` on a body and returns its findings (empty: clean).
pub fn promtool_check_metrics(body: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "promtool: {e} (Debian package `prometheus`; the README's test command installs it)"
            )
        });
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let mut findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() && findings.trim().is_empty() {
        findings = format!("promtool exited with {}", out.status);
    }
    findings.trim().to_string()
}

/// A fresh, empty PostgreSQL database named `{prefix}_{pid}` on the server of
/// `CELLWATCH_TEST_POSTGRES_URL` (which `./scripts/test` starts), and its URL. `None` when the
/// variable is unset outside CI; under CI (`CI` set) a missing server fails the test.
pub fn fresh_postgres_db(prefix: &str) -> Option<String> {
    let Ok(admin) = std::env::var("CELLWATCH_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs every ledger test on PostgreSQL too: set CELLWATCH_TEST_POSTGRES_URL (./scripts/test does)"
        );
        eprintln!("CELLWATCH_TEST_POSTGRES_URL is not set: this run covers SQLite only");
        return None;
    };
    let db = format!("{prefix}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        let out = Command::new("psql")
            .args([admin.as_str(), "-v", "ON_ERROR_STOP=1", "-qc", &sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{db}"))
}

/// An HTTP client (TLS through ring, as the binaries use it).
pub fn http() -> reqwest::Client {
    cellwatch_exporter::tls::http_client()
        .build()
        .expect("an HTTP client")
}

/// A free TCP port on 127.0.0.1 (free when asked; a server started right after takes it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The first of `n` consecutive free TCP ports on 127.0.0.1, below the kernel's ephemeral range
/// (32768 and up) so that servers bound to port 0 by other tests do not take them.
pub fn free_port_range(n: u16) -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos())
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for i in 0..200u32 {
        let first = 20_000 + (seed.wrapping_add(i.wrapping_mul(7_919)) % 12_000) as u16;
        let free =
            (first..first + n).all(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return first;
        }
    }
    panic!("no {n} consecutive free ports between 20000 and 32000")
}

/// Waits until `GET {base}/-/ready` answers 200 (Prometheus, Alertmanager), or panics after
/// 30 s with `log()`.
pub async fn wait_ready(base: &str, what: &str, log: impl Fn() -> String) {
    let client = crate::http();
    let start = Instant::now();
    loop {
        let ready = client
            .get(format!("{base}/-/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{what} did not become ready; log:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Starts `cellwatch-slo run` on a configuration and a ledger, with `extra` arguments.
pub fn start_engine(db: &str, cfg: &Path, extra: &[&str]) -> Exporter {
    let cfg = cfg.to_str().expect("a UTF-8 path");
    let mut args = vec![
        "run",
        "--config",
        cfg,
        "--database-url",
        db,
        "--web.listen-address",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    Exporter::spawn(
        "cellwatch-slo",
        &args,
        tempfile::tempdir().expect("tempdir"),
    )
}

/// Writes `config` to `dir/cell.yaml` and starts `cellwatch-slo run` on it with a SQLite ledger
/// in `dir`, with `extra` arguments; returns once it has evaluated once.
pub async fn start_engine_in(dir: &Path, config: &str, extra: &[&str]) -> Exporter {
    let path = dir.join("cell.yaml");
    std::fs::write(&path, config).expect("config");
    let db = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    let engine = start_engine(&db, &path, extra);
    first_evaluation(&engine).await;
    engine
}

/// Waits until the engine has evaluated once, or panics after 30 s.
pub async fn first_evaluation(e: &Exporter) {
    let start = Instant::now();
    loop {
        let v: serde_json::Value =
            serde_json::from_str(&e.get("/api/v1/slos").await).expect("JSON");
        if v["at"].as_i64().unwrap_or(0) > 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no evaluation\n{}",
            e.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// (total, SLI, budget left) of an SLO's period window in an engine's `/api/v1/slos` answer;
/// zeros and nothing before its first evaluation.
pub fn slo_period(v: &serde_json::Value, slo: &str) -> (f64, Option<f64>, Option<f64>) {
    let Some(s) = v["slos"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["slo"] == slo))
    else {
        return (0.0, None, None);
    };
    let total = s["windows"]
        .as_array()
        .and_then(|w| w.iter().find(|w| w["window"] == "period"));
    (
        total.and_then(|w| w["total"].as_f64()).unwrap_or(0.0),
        total.and_then(|w| w["sli"].as_f64()),
        s["budget_remaining"].as_f64(),
    )
}

/// Flags for an exporter that runs only the metering proxy, in front of `upstream`, on a free
/// port, sampling every 200 ms.
pub fn proxy_args(upstream: &str) -> Vec<String> {
    [
        "--collector.disable-defaults",
        "--collector.inference",
        "--collector.inference.upstream",
        upstream,
        "--collector.inference.listen-address",
        "127.0.0.1:0",
        "--interval",
        "200ms",
    ]
    .map(String::from)
    .to_vec()
}

/// A real exporter of node `node` in cell `cell` with only the `macmon` collector, its stand-in
/// reporting `watts` of whole-node power, read every 500 ms.
pub fn macmon_exporter(cell: &str, node: &str, watts: f64) -> Exporter {
    let state = tempfile::tempdir().expect("tempdir");
    std::fs::write(state.path().join("macmon.live"), macmon_sample(watts)).expect("macmon");
    Exporter::spawn(
        "cellwatch-exporter",
        &[
            "--collector.disable-defaults",
            "--collector.macmon",
            "--interval",
            "500ms",
            "--web.listen-address",
            "127.0.0.1:0",
            "--cell",
            cell,
            "--node",
            node,
        ],
        state,
    )
}

/// A line of the macmon stand-in (`macmon.live`) whose whole-system power (`sys_power`, the
/// exporter's `source="smc"`) is `watts`.
pub fn macmon_sample(watts: f64) -> String {
    format!(
        "{{\"timestamp\":\"2026-12-03T10:00:01.000000+00:00\",\"temp\":{{\"cpu_temp_avg\":48.2,\"gpu_temp_avg\":55.9}},\
         \"memory\":{{\"ram_total\":549755813888,\"ram_usage\":309237645312,\"swap_total\":0,\"swap_usage\":0}},\
         \"ecpu_usage\":[1284,0.31],\"pcpu_usage\":[3504,0.82],\"gpu_usage\":[1398,0.96],\"cpu_power\":9.5,\
         \"gpu_power\":182.0,\"ane_power\":0.0,\"all_power\":191.5,\"sys_power\":{watts},\"ram_power\":11.2,\"gpu_ram_power\":0.9}}\n"
    )
}
