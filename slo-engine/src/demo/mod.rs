//! `cellwatch-slo demo`: a SIMULATED four-node cell in one command.
//!
//! What runs for real: five `cellwatch-exporter` processes with their real collectors, parsers,
//! metering proxies (the four Mac Studios) and vLLM adapter (the GPU node), and this engine
//! (scrape source, a SQLite ledger, alerting, the status page). What is simulated, and labelled
//! so everywhere: the macOS commands (the stand-ins in `exporter/testdata/standins/`, printing
//! the real formats), the power they report (a model: idle watts plus joules per generated
//! token), the OpenAI-compatible server each proxy meters, the GPU node's vLLM (its scheduler
//! and `/metrics` page, `vllm.rs`), and the clients (a load generator). The SLO periods are compressed to an hour so a
//! burn pages within a minute.
//!
//! The timeline: at `incident_at` one node slows down four times (latency and time to first
//! token burn), 30 s later every node needs four times the energy per token (tokens/kWh
//! burns), and `incident_for` after the start both end. The page goes to the demo's webhook,
//! which prints it and appends it to `pages.log` (and to an SMTP server when one is given); it
//! resolves once the 5-minute windows no longer see the incident.

mod exporters;
mod gpu_tree;
pub mod links;
mod power;
mod scenario;
mod server;
mod simulation;
mod startup;
mod vllm;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

pub use power::scale_plist;
pub use scenario::{CELL, GPU_CELL, MODEL, Ports, config_yaml, prometheus_yaml};

use exporters::find_exporter;
use gpu_tree::GpuTree;
use power::power;
use scenario::print_banner;
use simulation::{Sim, cable_pull, load, timeline};
use startup::{Engine, why_it_ended};

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
    /// When a cable of the cell is pulled, after the start.
    pub cable_pull_at: Duration,
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

/// An I/O error about `path`.
pub(super) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes through a temporary file and a rename, so readers never see half a file.
pub(super) fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text).is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

/// Runs the demo until `duration` passes or the process is interrupted.
pub async fn run(opts: Options) -> Result<(), DemoError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(io(Path::new("SIGTERM")))?;
    let ports = Ports { engine: opts.port };
    let dir = startup::working_dir(opts.dir.as_deref())?;
    let exporter = find_exporter(opts.exporter.clone())?;
    let standins = startup::standins(&opts.standins)?;

    let sim = Arc::new(Sim::new(dir.join("pages.log")));
    let server = startup::serve_sim(ports, sim.clone()).await?;
    startup::check_ports_free(ports)?;
    let gpu_tree = GpuTree::new(dir.join("gpu-sys"))?;
    let mut children = exporters::start_all(&exporter, &standins, ports, &dir)?;
    let mut engine = startup::start_engine(&opts, ports, &dir).await?;

    let client = cellwatch_http::tls::http_client()
        .build()
        .unwrap_or_default();
    let status = format!("http://127.0.0.1:{}/", ports.engine);
    // Start-up can take a while: Ctrl-C or SIGTERM during it stops the demo (dropping the
    // children kills them).
    tokio::select! {
        r = startup::ready(&client, ports, &mut children, &mut engine, &dir, &status) => r?,
        _ = tokio::signal::ctrl_c() => return Ok(()),
        _ = term.recv() => return Ok(()),
    }

    print_banner(&opts, ports, &dir, &status);
    let mut tasks = load(ports);
    tasks.push(power(sim.clone(), dir.clone(), gpu_tree));
    tasks.push(timeline(sim.clone(), opts.incident_at, opts.incident_for));
    tasks.push(cable_pull(sim.clone(), opts.cable_pull_at));
    tasks.push(server);

    let result = until_stopped(opts.duration, &mut term, &mut engine).await;
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

/// Waits until `duration` passes, Ctrl-C, SIGTERM, or the engine ends (an error).
async fn until_stopped(
    duration: Option<Duration>,
    term: &mut tokio::signal::unix::Signal,
    engine: &mut Engine,
) -> Result<(), DemoError> {
    let stop = async {
        match duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = stop => Ok(()),
        _ = tokio::signal::ctrl_c() => Ok(()),
        _ = term.recv() => Ok(()),
        r = engine => Err(DemoError::Engine(why_it_ended(r))),
    }
}
