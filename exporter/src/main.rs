//! The `cellwatch-exporter` binary.

use std::process::ExitCode;

use cellwatch_exporter::config::{self, LogFormat};
use cellwatch_exporter::{collector, node, server, store::Store, web};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    cellwatch_exporter::tls::install_default();
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
    // One thread runs the collectors and serves /metrics (the proxy has threads of its own):
    // a second would cost resident memory (its stack and malloc arena) and buy nothing.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let mut cfg = cfg;
    // Built in the runtime's context (the gRPC channel lives on it) but not on an async task
    // (the HTTP exporter's blocking client must not be).
    let tracing = {
        let _entered = runtime.enter();
        match observe(&mut cfg) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot send traces");
                return ExitCode::FAILURE;
            }
        }
    };
    let code = runtime.block_on(run(cfg));
    if let Some(t) = tracing {
        // Export what is queued before the process ends.
        t.shutdown();
    }
    code
}

fn resource(cfg: &config::Config, node: &str) -> Vec<(String, String)> {
    vec![
        ("service.name".to_string(), "cellwatch-exporter".to_string()),
        (
            "service.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        ("cell".to_string(), cfg.cell.clone()),
        ("node".to_string(), node.to_string()),
    ]
}

/// Wires the proxy to the GenAI histograms (`--otlp.semconv genai|both`) and to the trace
/// pipeline (`--otlp.traces`), which it returns.
fn observe(
    cfg: &mut config::Config,
) -> Result<Option<cellwatch_exporter::proxy::trace::Tracing>, cellwatch_exporter::otlp::PushError>
{
    let genai_on = cfg.otlp.as_ref().is_some_and(|o| o.semconv.genai());
    let node = cfg.node.clone().unwrap_or_else(node::host_name);
    let resource = resource(cfg, &node);
    let traces = cfg.traces.clone();
    let Some((_, proxy)) = cfg.settings.inference.proxy.as_mut() else {
        return Ok(None);
    };
    let server = proxy.upstream_server();
    if genai_on {
        proxy.genai = Some(std::sync::Arc::new(
            cellwatch_exporter::proxy::genai::GenAiMeters::new(server.clone()),
        ));
    }
    let Some(settings) = traces else {
        return Ok(None);
    };
    let t = cellwatch_exporter::proxy::trace::Tracing::start(
        &settings,
        &resource,
        (&server.0, server.1),
    )?;
    proxy.tracer = Some(t.tracer());
    Ok(Some(t))
}

async fn run(cfg: config::Config) -> ExitCode {
    let web = match cfg.web_config_file.as_deref().map(web::load).transpose() {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "cannot use --web.config.file");
            return ExitCode::FAILURE;
        }
    };
    let proxy_connections = cfg
        .settings
        .inference
        .proxy
        .as_ref()
        .map_or(0, |(_, p)| p.limits.max_connections);
    // Each proxied connection takes two handles (client and upstream); a few dozen more for
    // collectors, logs and the runtime.
    web::warn_if_few_files((cfg.limits.max_connections + 2 * proxy_connections + 64) as u64);
    let store = Store::new();
    let mut collectors = Vec::new();
    for info in collector::ALL
        .iter()
        .filter(|c| cfg.collectors.contains(&c.name))
    {
        let slot = store.slot(info.name);
        collectors.push(tokio::spawn((info.start)(&cfg.settings, slot)));
    }
    let mut identity = node::Identity {
        cell: cfg.cell.clone(),
        node: cfg.node.clone().unwrap_or_else(node::host_name),
        hw_model: String::new(),
        os_version: String::new(),
    };
    store.set_info(identity.samples());
    let identity_node = identity.node.clone();
    {
        let store = store.clone();
        let timeout = cfg.settings.command_timeout;
        tokio::spawn(async move {
            (identity.hw_model, identity.os_version) = node::probe(timeout).await;
            store.set_info(identity.samples());
        });
    }

    if let Some(o) = cfg.otlp.clone() {
        match cellwatch_exporter::otlp::Pusher::new(o) {
            Ok(p) => {
                let genai = cfg
                    .settings
                    .inference
                    .proxy
                    .as_ref()
                    .and_then(|(_, p)| p.genai.clone());
                tokio::spawn(p.run(store.clone(), genai, resource(&cfg, &identity_node)));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot push OTLP");
                return ExitCode::FAILURE;
            }
        }
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
    tracing::info!(address = %address, collectors = ?cfg.collectors, interval = ?cfg.settings.interval, tls = web.as_ref().is_some_and(|w| w.tls.is_some()), basic_auth = web.as_ref().is_some_and(|w| w.auth_required()), "listening");
    let app = server::router(store, &cfg.telemetry_path, &cfg.collectors);
    let served = web::serve(listener, app, web.as_ref(), cfg.limits, shutdown()).await;
    // Children's process groups (powermetrics, macmon, nvidia-smi and whatever they started)
    // go with the exporter. The collectors stop first, so that no supervisor restarts a child
    // stopped below: a cancelled task's groups are killed as it drops them.
    for c in &collectors {
        c.abort();
    }
    for c in collectors {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), c).await;
    }
    cellwatch_exporter::group::kill_all(std::time::Duration::from_secs(1)).await;
    if let Err(e) = served {
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
