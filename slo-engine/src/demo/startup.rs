//! The demo's start-up: its working directory and stand-ins, the simulated servers, free ports,
//! the engine, and the wait until every part answers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::exporters::{Child, wait_ready};
use super::scenario::{ALL_NODES, GPU_NODE, Ports, config_yaml, node_name, prometheus_yaml};
use super::server::sim_router;
use super::simulation::Sim;
use super::{DemoError, Options, io};

/// The engine, run in this process; it ends only on an error.
pub(super) type Engine = tokio::task::JoinHandle<std::io::Result<()>>;

/// The working directory, created: the given one, else a new one under the temporary directory.
pub(super) fn working_dir(given: Option<&Path>) -> Result<PathBuf, DemoError> {
    let dir = match given {
        Some(d) => d.to_path_buf(),
        None => std::env::temp_dir().join(format!("cellwatch-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    dir.canonicalize().map_err(io(&dir))
}

/// The directory of the stand-in macOS commands, checked.
pub(super) fn standins(given: &Path) -> Result<PathBuf, DemoError> {
    if !given.join("powermetrics").is_file() {
        return Err(DemoError::NoStandins(given.to_path_buf()));
    }
    given.canonicalize().map_err(io(given))
}

/// Serves the simulated servers and the page receiver.
pub(super) async fn serve_sim(
    ports: Ports,
    sim: Arc<Sim>,
) -> Result<tokio::task::JoinHandle<()>, DemoError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", ports.sim()))
        .await
        .map_err(|source| DemoError::Bind {
            port: ports.sim(),
            what: "the simulated servers",
            source,
        })?;
    Ok(tokio::spawn({
        let router = sim_router(sim);
        async move {
            let _ = axum::serve(listener, router).await;
        }
    }))
}

/// Every exporter and proxy port must be free: an exporter that cannot bind exits, and an
/// old demo's exporter on the port would answer in its place.
pub(super) fn check_ports_free(ports: Ports) -> Result<(), DemoError> {
    for i in 1..=ALL_NODES {
        // The GPU node runs no proxy (its exporter reads the simulated vLLM's metrics).
        let proxy = (i != GPU_NODE).then(|| (ports.proxy(i), "a metering proxy"));
        for (port, what) in std::iter::once((ports.exporter(i), "an exporter")).chain(proxy) {
            std::net::TcpListener::bind(("127.0.0.1", port)).map_err(|source| DemoError::Bind {
                port,
                what,
                source,
            })?;
        }
    }
    Ok(())
}

/// The engine, in this process, on a fresh SQLite ledger; its configuration, the file_sd
/// targets and a Prometheus configuration are written to `dir`.
pub(super) async fn start_engine(
    opts: &Options,
    ports: Ports,
    dir: &Path,
) -> Result<Engine, DemoError> {
    let cfg_path = dir.join("cells.yaml");
    let yaml = config_yaml(ports, opts.smtp.as_deref(), &opts.mail_to);
    std::fs::write(&cfg_path, &yaml).map_err(io(&cfg_path))?;
    let config = crate::config::load(&cfg_path).map_err(|e| DemoError::Config(e.to_string()))?;
    let targets = dir.join("targets.json");
    std::fs::write(&targets, crate::generate::prometheus::targets(&config))
        .map_err(io(&targets))?;
    let prom = dir.join("prometheus.yml");
    std::fs::write(&prom, prometheus_yaml(ports)).map_err(io(&prom))?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("ledger.db").display());
    let ledger = crate::ledger::Ledger::open(&url)
        .await
        .map_err(|e| DemoError::Ledger(e.to_string()))?;
    let listen = format!("127.0.0.1:{}", ports.engine);
    let engine = tokio::spawn(async move {
        crate::runtime::run_with(config, ledger, &listen, crate::runtime::Clock::default()).await
    });
    Ok(engine)
}

/// Waits until every exporter and the engine answer.
pub(super) async fn ready(
    client: &reqwest::Client,
    ports: Ports,
    children: &mut [Child],
    engine: &mut Engine,
    dir: &Path,
    status: &str,
) -> Result<(), DemoError> {
    for (i, (child, log)) in children.iter_mut().enumerate() {
        let url = format!("http://127.0.0.1:{}/-/healthy", ports.exporter(i + 1));
        if !wait_ready(client, &url, Some(child)).await {
            return Err(DemoError::NotReady {
                what: format!("the exporter of {}", node_name(i + 1)),
                log: log.clone(),
            });
        }
    }
    if !wait_ready(client, &format!("{status}-/healthy"), None).await {
        return Err(match engine.is_finished() {
            true => DemoError::Engine(why_it_ended(engine.await)),
            false => DemoError::NotReady {
                what: "the engine (it logs to stderr; rerun with --log.level info)".into(),
                log: dir.join("cells.yaml"),
            },
        });
    }
    Ok(())
}

/// Why the engine's task ended.
pub(super) fn why_it_ended(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> String {
    match r {
        Ok(Err(e)) => e.to_string(),
        _ => "it ended".into(),
    }
}
