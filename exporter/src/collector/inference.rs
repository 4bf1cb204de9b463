//! `inference` collector (off by default): the metering proxy in front of one OpenAI-compatible
//! server, and adapters that scrape servers with their own `/metrics` (vLLM, llama.cpp, SGLang,
//! TGI). Both feed the `cellwatch_inference_*` series.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use prometheus::proto::MetricFamily;
use tokio::time::Instant;

use super::{Info, Problems, Settings, ticker};
use crate::adapter::{
    AdapterSpec, DropCounter, Filtered, Monotonize, PageFilter, Server, normalize_filtered,
};
use crate::proxy::{Meters, ModelLabels, Proxy, ProxyConfig, serve_on_threads};
use crate::store::{SharedFamilies, Slot};

/// The collector's name (the task code uses this, not `INFO`: a future that refers to the const
/// that boxes it cannot be checked for `Send`).
const NAME: &str = "inference";

/// Registration.
pub const INFO: Info = Info {
    name: NAME,
    default_on_macos: false,
    default_on_linux: false,
    help: "request latency, time to first token, tokens and outcomes: a metering proxy for OpenAI-compatible servers \
           (EXO, mlx-lm, Ollama) and adapters for vLLM, llama.cpp, SGLang, TGI /metrics",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// What the inference collector runs.
#[derive(Debug, Clone, Default)]
pub struct InferenceSettings {
    /// The proxy: listen address and configuration, when an upstream is given.
    pub proxy: Option<(String, ProxyConfig)>,
    /// Servers with their own `/metrics`.
    pub adapters: Vec<AdapterSpec>,
    /// How often adapters scrape.
    pub adapter_interval: Duration,
    /// Distinct model labels before the rest become `other`.
    pub max_models: usize,
    /// Largest adapter page read (`--collector.inference.adapter-max-page-size`).
    pub adapter_max_page: usize,
}

/// GETs a page, filtered line by line as it arrives ([`PageFilter`]): only the lines the adapter
/// maps are held, and a page longer than `max_page` bytes is an error.
async fn fetch(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    timeout: Duration,
    server: Server,
    max_page: usize,
) -> Result<Filtered, String> {
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let work = async {
        let resp = client
            .get(uri)
            .await
            .map_err(|e| match std::error::Error::source(&e) {
                Some(s) => format!("{url}: {e}: {s}"),
                None => format!("{url}: {e}"),
            })?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        let mut body = resp.into_body();
        let mut filter = PageFilter::new(server);
        let mut read = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("{url}: reading the page: {e}"))?;
            if let Ok(data) = frame.into_data() {
                read += data.len();
                if read > max_page {
                    return Err(format!(
                        "{url}: the page is larger than {max_page} bytes \
                         (--collector.inference.adapter-max-page-size)"
                    ));
                }
                filter.push(&data);
            }
        }
        Ok(filter.finish())
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("{url}: no answer within {timeout:?}"))?
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let s = settings.inference.clone();
    let models = Arc::new(ModelLabels::new(s.max_models));
    let mut proxy_ok = true;
    if let Some((listen, config)) = s.proxy.clone() {
        proxy_ok = false;
        match Meters::new(&config.buckets) {
            Err(e) => {
                tracing::error!(collector = NAME, error = %e, "cannot create the proxy's metrics")
            }
            Ok(meters) => {
                slot.register_live(meters.registry.clone());
                // Linux spreads connections over SO_REUSEPORT sockets; BSD kernels (macOS) give
                // them all to one socket, so one event loop serves there.
                let threads = if cfg!(target_os = "linux") {
                    std::thread::available_parallelism()
                        .map_or(1, |n| n.get())
                        .min(8)
                } else {
                    1
                };
                let proxy = Proxy::new(config.clone(), meters, models.clone());
                match serve_on_threads(&listen, threads, proxy) {
                    Err(e) => {
                        tracing::error!(collector = NAME, proxy_address = %listen, error = %e, "the metering proxy cannot listen")
                    }
                    Ok(address) => {
                        tracing::info!(collector = NAME, proxy_address = %address, upstream = %config.upstream, threads, "metering proxy listening");
                        proxy_ok = true;
                    }
                }
            }
        }
    }
    if !proxy_ok {
        slot.error();
    }
    if s.adapters.is_empty() {
        slot.publish(Vec::new(), Duration::ZERO, proxy_ok);
        return;
    }
    let families = SharedFamilies::default();
    match families.registry() {
        Ok(registry) => slot.register_live(registry),
        Err(e) => {
            tracing::error!(collector = NAME, error = %e, "cannot register the adapters");
            return;
        }
    }
    let client: Client<HttpConnector, Empty<Bytes>> =
        Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let mut monotonize: Vec<Monotonize> =
        s.adapters.iter().map(|_| Monotonize::default()).collect();
    let mut last: Vec<Vec<MetricFamily>> = vec![Vec::new(); s.adapters.len()];
    let mut dropped = DropCounter::default();
    for spec in &s.adapters {
        dropped.register(spec.server);
    }
    let mut tick = ticker(s.adapter_interval);
    let mut problems = Problems::default();
    loop {
        tick.tick().await;
        let started = Instant::now();
        let mut errors = Vec::new();
        for (i, spec) in s.adapters.iter().enumerate() {
            let default_model = spec.model.as_deref().unwrap_or("unknown");
            let page = fetch(
                &client,
                &spec.url,
                settings.command_timeout,
                spec.server,
                s.adapter_max_page,
            )
            .await;
            match page.and_then(|p| {
                normalize_filtered(spec.server, p, default_model, &models)
                    .map_err(|e| format!("{}: {e}", spec.url))
            }) {
                Ok(page) => {
                    dropped.record(spec.server, &spec.url, &page.dropped);
                    last[i] = monotonize[i].families(&page.readings);
                }
                Err(e) => {
                    // Counters keep their last values; gauges and histograms of a server that
                    // does not answer are not repeated.
                    last[i]
                        .retain(|f| f.get_field_type() == prometheus::proto::MetricType::COUNTER);
                    errors.push(format!("{} adapter: {e}", spec.server.name()));
                }
            }
        }
        families.set(
            last.iter()
                .flatten()
                .cloned()
                .chain([dropped.family()])
                .collect(),
        );
        if !errors.is_empty() {
            slot.error();
        }
        slot.publish(Vec::new(), started.elapsed(), proxy_ok && errors.is_empty());
        problems.report(NAME, &errors);
    }
}
