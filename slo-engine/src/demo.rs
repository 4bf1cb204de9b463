//! `cellwatch-slo demo`: a SIMULATED four-node cell in one command.
//!
//! What runs for real: four `cellwatch-exporter` processes with their real collectors, parsers
//! and metering proxies, and this engine (scrape source, a SQLite ledger, alerting, the status
//! page). What is simulated, and labelled so everywhere: the macOS commands (the stand-ins in
//! `exporter/testdata/standins/`, printing the real formats), the power they report (a model:
//! idle watts plus joules per generated token), the OpenAI-compatible server each proxy
//! meters, and the clients (a load generator). The SLO periods are compressed to an hour so a
//! burn pages within a minute.
//!
//! The timeline: at `incident_at` one node slows down four times (latency and time to first
//! token burn), 30 s later every node needs four times the energy per token (tokens/kWh
//! burns), and `incident_for` after the start both end. The page goes to the demo's webhook,
//! which prints it and appends it to `pages.log` (and to an SMTP server when one is given); it
//! resolves once the 5-minute windows no longer see the incident.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The recorded powermetrics document the simulated power is scaled from (our own fixture).
const RECORDING: &str = include_str!("../../exporter/testdata/macos/powermetrics-m3ultra.plist");
/// SoC power in that recording (CPU + GPU + ANE), watts.
const RECORDED_SOC_WATTS: f64 = 191.5;
/// Whole-system (SMC) power over SoC power in the recorded macmon line (236.4 / 191.5).
const SMC_OVER_SOC: f64 = 236.4 / 191.5;
/// The simulated power model: idle SoC watts, and joules per generated token.
const IDLE_WATTS: f64 = 40.0;
const JOULES_PER_TOKEN: f64 = 0.5;
const JOULES_PER_TOKEN_REGRESSED: f64 = 2.0;
/// The simulated server: time to first token, chunks of 4 tokens, the gap between chunks.
const TTFT: Duration = Duration::from_millis(250);
const CHUNKS: u64 = 12;
const TOKENS_PER_CHUNK: u64 = 4;
const CHUNK_GAP: Duration = Duration::from_millis(80);
const SLOWDOWN: u32 = 4;
/// Concurrent clients per node.
const CLIENTS: usize = 6;
/// The simulated model name.
pub const MODEL: &str = "simulated-llama-70b";
/// The demo cell and its nodes.
pub const CELL: &str = "simulated-cell";
const NODES: usize = 4;
/// The simulated GPU pool: one Linux node with two H100s, node number 5.
pub const GPU_CELL: &str = "simulated-gpu-pool";
const GPU_NODE: usize = 5;
const ALL_NODES: usize = 5;
/// The GPU node is faster: time to first token and the gap between chunks.
const GPU_TTFT: Duration = Duration::from_millis(120);
const GPU_CHUNK_GAP: Duration = Duration::from_millis(25);
/// Its power model: per GPU idle watts and joules per token; CPU packages and DRAM (RAPL).
const GPU_IDLE_WATTS: f64 = 50.0;
const GPU_JOULES_PER_TOKEN: f64 = 0.3;
const RAPL_MAX_UJ: u64 = 262_143_328_850;

/// What `cellwatch-slo demo` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Working directory (ledger, configuration, logs, pages); None: a new temporary one.
    pub dir: Option<PathBuf>,
    /// The engine's port; the exporters take port+1..=port+5, their proxies
    /// port+11..=port+15, the simulated servers port+20.
    pub port: u16,
    /// Stop after this long; None: run until interrupted.
    pub duration: Option<Duration>,
    /// When the incident starts, after the start.
    pub incident_at: Duration,
    /// How long it lasts.
    pub incident_for: Duration,
    /// An SMTP server (HOST:PORT, no TLS) to mail pages to, besides printing them.
    pub smtp: Option<String>,
    /// The address pages are mailed to.
    pub mail_to: String,
    /// The exporter binary; None: beside this one, else on PATH.
    pub exporter: Option<PathBuf>,
    /// The stand-in macOS commands.
    pub standins: PathBuf,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A file or directory.
    #[error("{path}: {source}")]
    Io {
        /// Which.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// No exporter binary.
    #[error(
        "cellwatch-exporter is neither beside {0} nor on PATH: build it (cargo build -p cellwatch-exporter) or pass --exporter"
    )]
    NoExporter(PathBuf),
    /// No stand-ins.
    #[error(
        "the stand-in macOS commands are not in {0}: run from a checkout or pass --standins exporter/testdata/standins"
    )]
    NoStandins(PathBuf),
    /// A port in use.
    #[error("127.0.0.1:{port} ({what}): {source}; pick other ports with --port")]
    Bind {
        /// Which port.
        port: u16,
        /// For what.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The generated configuration was refused (a bug).
    #[error("the demo's configuration: {0}")]
    Config(String),
    /// The ledger.
    #[error("the ledger: {0}")]
    Ledger(String),
    /// A part that did not start.
    #[error("{what} did not answer within 30 s (log: {log})")]
    NotReady {
        /// Which part.
        what: String,
        /// Its log.
        log: PathBuf,
    },
    /// The engine stopped.
    #[error("the engine stopped: {0}")]
    Engine(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The simulation's shared state.
struct Sim {
    /// The slowed node (1..=4), 0 for none.
    slow: AtomicUsize,
    /// Joules per generated token, in millijoules.
    mj_per_token: AtomicU64,
    /// Generated tokens streamed per node.
    tokens: [AtomicU64; ALL_NODES],
    /// Where pages are appended.
    pages_log: PathBuf,
    /// Pages received.
    pages: AtomicU64,
}

fn node_name(i: usize) -> String {
    if i == GPU_NODE {
        "simulated-gpu-1".into()
    } else {
        format!("simulated-studio-{i}")
    }
}

/// The ports of one demo.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The engine.
    pub engine: u16,
}

impl Ports {
    fn exporter(self, i: usize) -> u16 {
        self.engine + i as u16
    }
    fn proxy(self, i: usize) -> u16 {
        self.engine + 10 + i as u16
    }
    fn sim(self) -> u16 {
        self.engine + 20
    }
}

/// The engine's configuration for the demo cell: periods compressed to one hour, one page
/// pair over 30m and 5m that fires once a window's burn rate exceeds 1.
pub fn config_yaml(ports: Ports, smtp: Option<&str>, mail_to: &str) -> String {
    let nodes: String = (1..=NODES)
        .map(|i| {
            format!(
                "      - {{ name: {}, url: \"http://127.0.0.1:{}/metrics\" }}\n",
                node_name(i),
                ports.exporter(i)
            )
        })
        .collect();
    let (mail_receiver, mail_route) = match smtp {
        Some(s) => (
            format!(
                "    - name: oncall-mail\n      email: {{ to: [{mail_to}], from: cellwatch-demo@example.com, smarthost: \"{s}\", tls: none }}\n"
            ),
            "    - { receiver: oncall-mail, matchers: { severity: page }, continue: true }\n",
        ),
        None => (String::new(), ""),
    };
    let gpu = format!(
        "  - name: {GPU_CELL}\n    nodes:\n      - {{ name: {}, url: \"http://127.0.0.1:{}/metrics\" }}\n",
        node_name(GPU_NODE),
        ports.exporter(GPU_NODE)
    );
    format!(
        "# SIMULATED: the configuration `cellwatch-slo demo` runs. Periods are compressed to 1h so\n\
         # burns page within a minute; real cells use 30d or calendar-month.\n\
         cells:\n  - name: {CELL}\n    nodes:\n{nodes}{gpu}\
         source:\n  scrape: {{ interval: 2s }}\n\
         slos:\n\
         \x20 - {{ name: latency-2500ms, description: \"99 % of requests finish under 2.5 s\", objective: 0.99, period: 1h, min_events: 300, sli: {{ latency: {{ threshold: 2.5s }} }} }}\n\
         \x20 - {{ name: ttft-500ms, description: \"95 % of requests get their first token under 500 ms\", objective: 0.95, period: 1h, min_events: 300, sli: {{ ttft: {{ threshold: 500ms }} }} }}\n\
         \x20 - {{ name: availability, objective: 0.99, period: 1h, min_events: 300, sli: {{ availability: {{}} }} }}\n\
         \x20 - {{ name: efficiency, description: \"90 % of minutes deliver at least 2.5 M tokens per kWh\", objective: 0.9, period: 1h, budgeting: timeslices, slice: 1m, sli: {{ tokens_per_kwh: {{ threshold: 2500000, min_tokens: 1000 }} }} }}\n\
         alerting:\n  group_wait: 5s\n  group_interval: 30s\n  repeat_interval: 1h\n\
         \x20 burn_rates:\n    - {{ severity: page, long: 30m, short: 5m, budget: 0.5 }}\n\
         \x20 external_url: http://127.0.0.1:{engine}\n\
         \x20 dashboard_url: http://localhost:3000/d/cellwatch-cell?var-cell={{cell}}\n\
         \x20 receivers:\n    - name: demo-console\n      webhook: {{ url: \"http://127.0.0.1:{sim}/pages\" }}\n{mail_receiver}\
         \x20 routes:\n{mail_route}    - {{ receiver: demo-console, matchers: {{ severity: page }} }}\n",
        engine = ports.engine,
        sim = ports.sim(),
    )
}

/// A Prometheus configuration scraping the demo (file_sd targets with cell and node labels).
pub fn prometheus_yaml(ports: Ports) -> String {
    format!(
        "# SIMULATED demo cell: a Prometheus scrape configuration for `cellwatch-slo demo`.\n\
         # Run: prometheus --config.file=prometheus.yml (from this directory).\n\
         global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n\
         scrape_configs:\n\
         \x20 - job_name: cellwatch-exporter\n    file_sd_configs:\n      - files: [targets.json]\n\
         \x20 - job_name: cellwatch-slo\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
        ports.engine
    )
}

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
fn macmon_line(soc: f64) -> String {
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

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// The simulated OpenAI-compatible servers (`/node/N/v1/chat/completions`) and the page sink.
fn sim_router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/node/{n}/v1/chat/completions", post(chat))
        .route("/pages", post(page))
        .with_state(sim)
}

async fn chat(State(sim): State<Arc<Sim>>, UrlPath(n): UrlPath<usize>, body: Bytes) -> Response {
    if !(1..=ALL_NODES).contains(&n) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let stream = req["stream"].as_bool().unwrap_or(false);
    let usage_wanted = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let slow = if sim.slow.load(Ordering::Relaxed) == n {
        SLOWDOWN
    } else {
        1
    };
    let (ttft, gap) = if n == GPU_NODE {
        (GPU_TTFT, GPU_CHUNK_GAP)
    } else {
        (TTFT, CHUNK_GAP)
    };
    // Rare server errors, as any server has.
    if fastrand::u32(0..2000) == 0 {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(
                json!({"error": {"message": "simulated server error", "type": "server_error"}}),
            ),
        )
            .into_response();
    }
    let prompt = 200 + fastrand::u64(0..200);
    let completion = CHUNKS * TOKENS_PER_CHUNK;
    let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion});
    let jitter = || Duration::from_millis(fastrand::u64(0..20));
    if !stream {
        tokio::time::sleep((ttft + gap * CHUNKS as u32) * slow + jitter()).await;
        sim.tokens[n - 1].fetch_add(completion, Ordering::Relaxed);
        let text = "tok ".repeat(completion as usize);
        return axum::Json(json!({
            "id": "sim-1", "object": "chat.completion", "model": MODEL,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": usage,
        }))
        .into_response();
    }
    // (step, sim): step 0 waits the time to first token, then one chunk per gap.
    let steps = futures_util::stream::unfold(0u64, move |step| {
        let sim = sim.clone();
        let usage = usage.clone();
        async move {
            let chunk = |v: Value| Bytes::from(format!("data: {v}\n\n"));
            let out = if step == 0 {
                tokio::time::sleep(ttft * slow + jitter()).await;
                chunk(
                    json!({"id": "sim-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}),
                )
            } else if step <= CHUNKS {
                if step > 1 {
                    tokio::time::sleep(gap * slow).await;
                }
                sim.tokens[n - 1].fetch_add(TOKENS_PER_CHUNK, Ordering::Relaxed);
                chunk(
                    json!({"id": "sim-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [{"index": 0, "delta": {"content": "tok tok tok tok "}}]}),
                )
            } else if step == CHUNKS + 1 {
                if usage_wanted {
                    chunk(
                        json!({"id": "sim-1", "object": "chat.completion.chunk", "model": MODEL, "choices": [], "usage": usage}),
                    )
                } else {
                    Bytes::new()
                }
            } else if step == CHUNKS + 2 {
                Bytes::from_static(b"data: [DONE]\n\n")
            } else {
                return None;
            };
            Some((Ok::<_, std::convert::Infallible>(out), step + 1))
        }
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(steps))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The demo's receiver: an Alertmanager v4 webhook payload, printed and appended to pages.log.
async fn page(State(sim): State<Arc<Sim>>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let status = v["status"].as_str().unwrap_or("?").to_uppercase();
    let cell = v["groupLabels"]["cell"]
        .as_str()
        .or_else(|| v["commonLabels"]["cell"].as_str())
        .unwrap_or("?");
    let mut text = format!(
        "\n===== PAGE ({status}) for cell {cell} at {} — SIMULATED incident =====\n",
        chrono::Utc::now().format("%H:%M:%S")
    );
    for a in v["alerts"].as_array().into_iter().flatten() {
        text.push_str(&format!(
            "  [{}] {} {} {}: {}\n",
            a["status"].as_str().unwrap_or(""),
            a["labels"]["alertname"].as_str().unwrap_or(""),
            a["labels"]["slo"].as_str().unwrap_or(""),
            a["labels"]["severity"].as_str().unwrap_or(""),
            a["annotations"]["summary"].as_str().unwrap_or(""),
        ));
    }
    text.push_str(&format!(
        "  status page: {}\n",
        v["externalURL"].as_str().unwrap_or("")
    ));
    print!("{text}");
    let line = format!("{}\n", serde_json::to_string(&v).unwrap_or_default());
    use std::io::Write;
    let ok = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&sim.pages_log)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = ok {
        eprintln!("demo: {}: {e}", sim.pages_log.display());
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    sim.pages.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

/// `CLIENTS` clients per node, each sending streaming chat completions to the node's proxy.
fn load(ports: Ports) -> Vec<tokio::task::JoinHandle<()>> {
    let client = cellwatch_http::tls::http_client()
        .build()
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for i in 1..=ALL_NODES {
        for _ in 0..CLIENTS {
            let client = client.clone();
            let url = format!("http://127.0.0.1:{}/v1/chat/completions", ports.proxy(i));
            tasks.push(tokio::spawn(async move {
                let body = json!({
                    "model": MODEL, "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "Summarise the SLO report (simulated client)."}],
                });
                loop {
                    let r = client.post(&url).json(&body).send().await;
                    let ok = match r {
                        Ok(resp) => resp.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let pause = if ok { fastrand::u64(20..200) } else { 500 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }));
        }
    }
    tasks
}

/// The GPU node's simulated sysfs tree: RAPL zones (package-0 starts a minute before its wrap)
/// and one RoCE port, rewritten every second.
struct GpuTree {
    sys: PathBuf,
    zones: Vec<(&'static str, &'static str, f64, u64)>,
    words: u64,
}

impl GpuTree {
    fn new(sys: PathBuf) -> Result<GpuTree, DemoError> {
        let t = GpuTree {
            sys,
            zones: vec![
                (
                    "intel-rapl:0",
                    "package-0",
                    60.0,
                    RAPL_MAX_UJ - 60 * 60_000_000,
                ),
                ("intel-rapl:0:0", "dram", 8.0, 1_000_000_000),
                ("intel-rapl:1", "package-1", 60.0, 5_000_000_000),
                ("intel-rapl:1:0", "dram", 8.0, 2_000_000_000),
            ],
            words: 250_000_000_000,
        };
        for (dir, name, _, _) in &t.zones {
            let d = t.sys.join("class/powercap").join(dir);
            std::fs::create_dir_all(&d).map_err(io(&d))?;
            std::fs::write(d.join("name"), format!("{name}\n")).map_err(io(&d))?;
            std::fs::write(d.join("max_energy_range_uj"), format!("{RAPL_MAX_UJ}\n"))
                .map_err(io(&d))?;
        }
        let port = t.sys.join("class/infiniband/mlx5_0/ports/1");
        std::fs::create_dir_all(port.join("counters")).map_err(io(&port))?;
        for (f, v) in [
            ("state", "4: ACTIVE"),
            ("phys_state", "5: LinkUp"),
            ("rate", "400 Gb/sec (4X NDR)"),
            ("link_layer", "Ethernet"),
        ] {
            std::fs::write(port.join(f), format!("{v}\n")).map_err(io(&port))?;
        }
        t.write();
        Ok(t)
    }

    /// Writes the counters.
    fn write(&self) {
        for (dir, _, _, uj) in &self.zones {
            let d = self.sys.join("class/powercap").join(dir);
            write_atomically(&d.join("energy_uj"), &format!("{uj}\n"));
        }
        let c = self.sys.join("class/infiniband/mlx5_0/ports/1/counters");
        for (f, v) in [
            ("port_rcv_data", self.words),
            ("port_xmit_data", self.words),
            ("port_rcv_packets", self.words / 1024),
            ("port_xmit_packets", self.words / 1024),
            ("port_rcv_errors", 0),
            ("port_xmit_discards", 0),
        ] {
            write_atomically(&c.join(f), &format!("{v}\n"));
        }
    }

    /// Advances the counters by `dt` seconds at `tps` tokens per second and writes them.
    fn advance(&mut self, dt: f64, tps: f64) {
        for (_, name, watts, uj) in &mut self.zones {
            let w = if name.starts_with("package") {
                *watts + 0.02 * tps
            } else {
                *watts
            };
            let inc = (w * dt * 1e6) as u64;
            *uj = (*uj + inc) % RAPL_MAX_UJ;
        }
        // Tensor-parallel traffic: 40 KB per generated token, each way, in 4-octet words.
        self.words += (tps * dt * 10_000.0) as u64;
        self.write();
    }
}

/// Two GPUs' nvidia-smi lines for `tps` generated tokens per second.
fn nvidia_lines(tps: f64) -> String {
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
fn power(sim: Arc<Sim>, dir: PathBuf, mut gpu: GpuTree) -> tokio::task::JoinHandle<()> {
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

/// The incident, on the demo's clock.
fn timeline(sim: Arc<Sim>, at: Duration, lasts: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slow = 3;
        tokio::time::sleep(at).await;
        sim.slow.store(slow, Ordering::Relaxed);
        println!(
            "\n[demo] SIMULATED INCIDENT: {} slows down {SLOWDOWN}× (latency and time to first token burn their budgets)",
            node_name(slow)
        );
        let regress = Duration::from_secs(30).min(lasts);
        tokio::time::sleep(regress).await;
        sim.mj_per_token.store(
            (JOULES_PER_TOKEN_REGRESSED * 1000.0) as u64,
            Ordering::Relaxed,
        );
        println!(
            "[demo] SIMULATED ENERGY REGRESSION: every Mac Studio of {CELL} now needs {JOULES_PER_TOKEN_REGRESSED} J per token instead of {JOULES_PER_TOKEN} (tokens/kWh burns; the GPU pool is the control and never pages)"
        );
        tokio::time::sleep(lasts - regress).await;
        sim.slow.store(0, Ordering::Relaxed);
        sim.mj_per_token
            .store((JOULES_PER_TOKEN * 1000.0) as u64, Ordering::Relaxed);
        println!(
            "[demo] the simulated incident is over; the page resolves once the 5m windows no longer see it (about 5 minutes)"
        );
    })
}

/// Waits up to 30 s for `url` to answer 200; false at once when `child` exits (its port was
/// taken, its flags refused).
/// Starts node `i`'s exporter with `collectors` and the metering proxy, its stand-ins steered
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
    let child = tokio::process::Command::new(exporter)
        .arg("--collector.disable-defaults")
        .args(collectors.iter().map(|c| format!("--collector.{c}")))
        .arg("--collector.inference")
        .arg(format!(
            "--collector.inference.upstream=http://127.0.0.1:{}/node/{i}",
            ports.sim()
        ))
        .arg(format!(
            "--collector.inference.listen-address=127.0.0.1:{}",
            ports.proxy(i)
        ))
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

async fn wait_ready(
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

fn find_exporter(given: Option<PathBuf>) -> Result<PathBuf, DemoError> {
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

/// Runs the demo until `duration` passes or the process is interrupted.
pub async fn run(opts: Options) -> Result<(), DemoError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io(Path::new("SIGTERM")))?;
    let ports = Ports { engine: opts.port };
    let dir = match &opts.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("cellwatch-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let dir = dir.canonicalize().map_err(io(&dir))?;
    let exporter = find_exporter(opts.exporter.clone())?;
    if !opts.standins.join("powermetrics").is_file() {
        return Err(DemoError::NoStandins(opts.standins.clone()));
    }
    let standins = opts.standins.canonicalize().map_err(io(&opts.standins))?;

    let sim = Arc::new(Sim {
        slow: AtomicUsize::new(0),
        mj_per_token: AtomicU64::new((JOULES_PER_TOKEN * 1000.0) as u64),
        tokens: Default::default(),
        pages_log: dir.join("pages.log"),
        pages: AtomicU64::new(0),
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports.sim()))
        .await
        .map_err(|source| DemoError::Bind {
            port: ports.sim(),
            what: "the simulated servers",
            source,
        })?;
    let server = tokio::spawn({
        let router = sim_router(sim.clone());
        async move {
            let _ = axum::serve(listener, router).await;
        }
    });

    // Every exporter and proxy port must be free: an exporter that cannot bind exits, and an
    // old demo's exporter on the port would answer in its place.
    for i in 1..=ALL_NODES {
        for (port, what) in [
            (ports.exporter(i), "an exporter"),
            (ports.proxy(i), "a metering proxy"),
        ] {
            std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|source| DemoError::Bind {
                port,
                what,
                source,
            })?;
        }
    }
    let gpu_tree = GpuTree::new(dir.join("gpu-sys"))?;
    // The four Apple exporters: real binaries on stand-in macOS commands.
    let path = std::env::join_paths(std::iter::once(standins.clone()).chain(
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
        let collectors = ["powermetrics", "macmon", "vmstat", "thunderbolt"];
        children.push(spawn_exporter(
            &exporter,
            &path,
            ports,
            i,
            &collectors,
            &[],
            &node,
        )?);
    }
    // The GPU node: the real exporter's Linux collectors on a simulated sysfs tree, the
    // recorded /proc/meminfo and the nvidia-smi stand-in.
    let node = dir.join(node_name(GPU_NODE));
    std::fs::create_dir_all(&node).map_err(io(&node))?;
    write_atomically(&node.join("nvidia-smi.live"), &nvidia_lines(0.0));
    let paths = [
        format!("--path.sysfs={}", dir.join("gpu-sys").display()),
        format!("--path.procfs={}", standins.join("../linux/proc").display()),
    ];
    let collectors = ["meminfo", "rapl", "nvidia", "infiniband"];
    children.push(spawn_exporter(
        &exporter,
        &path,
        ports,
        GPU_NODE,
        &collectors,
        &paths,
        &node,
    )?);

    // The engine, in this process, on a fresh SQLite ledger.
    let cfg_path = dir.join("cells.yaml");
    let yaml = config_yaml(ports, opts.smtp.as_deref(), &opts.mail_to);
    std::fs::write(&cfg_path, &yaml).map_err(io(&cfg_path))?;
    let config = crate::config::load(&cfg_path).map_err(|e| DemoError::Config(e.to_string()))?;
    let targets = dir.join("targets.json");
    std::fs::write(&targets, crate::rules::targets(&config)).map_err(io(&targets))?;
    let prom = dir.join("prometheus.yml");
    std::fs::write(&prom, prometheus_yaml(ports)).map_err(io(&prom))?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    let ledger = crate::ledger::Ledger::open(&url)
        .await
        .map_err(|e| DemoError::Ledger(e.to_string()))?;
    let listen = format!("127.0.0.1:{}", ports.engine);
    let mut engine = tokio::spawn(async move {
        crate::engine::run_with(config, ledger, &listen, crate::engine::Clock::default()).await
    });

    let client = cellwatch_http::tls::http_client()
        .build()
        .unwrap_or_default();
    let status = format!("http://127.0.0.1:{}/", ports.engine);
    // Start-up can take a while: Ctrl-C or SIGTERM during it stops the demo (dropping the
    // children kills them).
    let ready = async {
        for (i, (child, log)) in children.iter_mut().enumerate() {
            let url = format!("http://127.0.0.1:{}/-/healthy", ports.exporter(i + 1));
            if !wait_ready(&client, &url, Some(child)).await {
                return Err(DemoError::NotReady {
                    what: format!("the exporter of {}", node_name(i + 1)),
                    log: log.clone(),
                });
            }
        }
        if !wait_ready(&client, &format!("{status}-/healthy"), None).await {
            return Err(match engine.is_finished() {
                true => DemoError::Engine(match (&mut engine).await {
                    Ok(Err(e)) => e.to_string(),
                    _ => "it ended".into(),
                }),
                false => DemoError::NotReady {
                    what: "the engine (it logs to stderr; rerun with --log.level info)".into(),
                    log: dir.join("cells.yaml"),
                },
            });
        }
        Ok(())
    };
    tokio::select! {
        r = ready => r?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
        _ = term.recv() => return Ok(()),
    }

    let incident_at = opts.incident_at;
    println!(
        "cellwatch demo: a SIMULATED four-node Mac Studio cell ({CELL}) beside a simulated GPU pool \
         ({GPU_CELL}: one Linux node, two H100s). Simulated: the macOS commands and nvidia-smi \
         (stand-ins printing the real formats), the Linux sysfs tree, the power model, the inference \
         server and its clients. Real: five cellwatch-exporter processes (collectors, parsers, \
         metering proxies) and the SLO engine.\n\
         \n  status page        {status}\n  engine metrics     {status}metrics\n  alerts (JSON)      {status}api/v1/alerts"
    );
    for i in 1..=ALL_NODES {
        println!(
            "  {:<18} metrics http://127.0.0.1:{}/metrics   proxy http://127.0.0.1:{}/v1",
            node_name(i),
            ports.exporter(i),
            ports.proxy(i)
        );
    }
    println!(
        "\n  working directory {d}\n  engine config     {d}/cells.yaml (SLO periods compressed to 1h)\n  pages             printed here and appended to {d}/pages.log{mail}\n\
         \nPrometheus: prometheus --config.file={d}/prometheus.yml   (file_sd targets with cell and node labels):\n{prom}\
         Grafana: add that Prometheus as a datasource, then import dashboards/*.json, or provision\n  \
         dashboards/provisioning/*.yml (see the README).\n\
         \nTimeline: at {a}s a node slows down, 30 s later an energy regression; both end at {b}s. A page\n\
         arrives within a minute of the incident and resolves about 5 minutes after it ends. Ctrl-C stops.\n",
        d = dir.display(),
        prom = prometheus_yaml(ports)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("    {l}\n"))
            .collect::<String>(),
        mail = opts
            .smtp
            .as_ref()
            .map(|s| format!(" and mailed to {} via {s}", opts.mail_to))
            .unwrap_or_default(),
        a = incident_at.as_secs(),
        b = (incident_at + opts.incident_for).as_secs(),
    );

    let mut tasks = load(ports);
    tasks.push(power(sim.clone(), dir.clone(), gpu_tree));
    tasks.push(timeline(sim.clone(), incident_at, opts.incident_for));
    tasks.push(server);

    let stop = async {
        match opts.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        _ = stop => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        r = &mut engine => Err(DemoError::Engine(match r {
            Ok(Err(e)) => e.to_string(),
            _ => "it ended".into(),
        })),
    };
    for t in &tasks {
        t.abort();
    }
    engine.abort();
    for (mut c, _) in children {
        let _ = c.kill().await;
    }
    println!(
        "\n[demo] stopped: {} page notification(s) received; everything is in {}",
        sim.pages.load(Ordering::Relaxed),
        dir.display()
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        for smtp in [None, Some("127.0.0.1:2525")] {
            let p = dir.path().join("cells.yaml");
            std::fs::write(
                &p,
                config_yaml(Ports { engine: 9820 }, smtp, "a@example.com"),
            )
            .unwrap();
            let c = crate::config::load(&p).unwrap();
            assert_eq!(c.cells[0].nodes.len(), 4);
            assert_eq!(c.cells[1].name, GPU_CELL);
            assert_eq!(c.slos.len(), 4);
            assert_eq!(c.alerting.receivers.len(), 1 + smtp.is_some() as usize);
        }
    }

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
