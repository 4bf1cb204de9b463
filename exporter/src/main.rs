//! The `cellwatch-exporter` binary.

use axum::serve::ListenerExt;
use std::process::ExitCode;

use cellwatch_exporter::config::{self, LogFormat};
use cellwatch_exporter::{collector, node, server, store::Store};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let matches = config::command().get_matches();
    let cfg = match config::resolve(&matches, collector::Info::default_enabled) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cellwatch-exporter: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&cfg.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cellwatch-exporter: --log.level {:?}: {e}", cfg.log_level);
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Text => logs.with_ansi(false).init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cfg))
}

async fn run(cfg: config::Config) -> ExitCode {
    let store = Store::new();
    for info in collector::ALL
        .iter()
        .filter(|c| cfg.collectors.contains(&c.name))
    {
        let slot = store.slot(info.name);
        tokio::spawn((info.start)(&cfg.settings, slot));
    }
    let mut identity = node::Identity {
        cell: cfg.cell.clone(),
        node: cfg.node.clone().unwrap_or_else(node::host_name),
        hw_model: String::new(),
        os_version: String::new(),
    };
    store.set_info(identity.samples());
    {
        let store = store.clone();
        let timeout = cfg.settings.command_timeout;
        tokio::spawn(async move {
            (identity.hw_model, identity.os_version) = node::probe(timeout).await;
            store.set_info(identity.samples());
        });
    }

    let listener = match tokio::net::TcpListener::bind(&cfg.listen_address).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(address = %cfg.listen_address, error = %e, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| cfg.listen_address.clone());
    tracing::info!(address = %address, collectors = ?cfg.collectors, interval = ?cfg.settings.interval, "listening");
    let app = server::router(store, &cfg.telemetry_path, &cfg.collectors);
    if let Err(e) = axum::serve(
        listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        app,
    )
    .with_graceful_shutdown(shutdown())
    .await
    {
        tracing::error!(error = %e, "server failed");
        return ExitCode::FAILURE;
    }
    tracing::info!("shut down");
    ExitCode::SUCCESS
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
