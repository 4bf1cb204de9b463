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
    AdapterSpec, DropCounter, Filtered, Monotonize, PageFilter, RestartWatch, Scraped, Server,
    normalize_filtered, restarts_family,
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

/// Why a page was not read: the message, and whether no connection could be made (the
/// server is not running, which [`RestartWatch`] notes).
#[derive(Debug)]
struct FetchError {
    message: String,
    unreachable: bool,
}

impl From<String> for FetchError {
    fn from(message: String) -> Self {
        FetchError {
            message,
            unreachable: false,
        }
    }
}

/// GETs a page, filtered line by line as it arrives ([`PageFilter`]): only the lines the adapter
/// maps are held, and a page longer than `max_page` bytes is an error.
async fn fetch(
    client: &Client<HttpConnector, Empty<Bytes>>,
    url: &str,
    timeout: Duration,
    server: Server,
    max_page: usize,
) -> Result<Filtered, FetchError> {
    let uri: axum::http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let work = async {
        let resp = client.get(uri).await.map_err(|e| FetchError {
            message: match std::error::Error::source(&e) {
                Some(s) => format!("{url}: {e}: {s}"),
                None => format!("{url}: {e}"),
            },
            unreachable: e.is_connect(),
        })?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()).into());
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
                    )
                    .into());
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

/// One adapter between scrapes: its counters' states, its last families and its restarts.
#[derive(Debug)]
pub struct Adapter {
    spec: AdapterSpec,
    monotonize: Monotonize,
    last: Vec<MetricFamily>,
    restarts: RestartWatch,
}

/// What every adapter scrape shares.
pub struct Scraping<'a> {
    /// The HTTP client.
    pub client: &'a Client<HttpConnector, Empty<Bytes>>,
    /// Longest wait for a page.
    pub timeout: Duration,
    /// Largest page read.
    pub max_page: usize,
    /// Model labels, bounded.
    pub models: &'a ModelLabels,
    /// Dropped samples of every adapter.
    pub dropped: &'a mut DropCounter,
}

impl Adapter {
    /// A server not scraped yet.
    pub fn new(spec: AdapterSpec) -> Self {
        Adapter {
            spec,
            monotonize: Monotonize::default(),
            last: Vec::new(),
            restarts: RestartWatch::default(),
        }
    }

    /// Scrapes the server once: its families are updated (counters keep their last values when
    /// the page cannot be read) and a restart is noted.
    pub async fn scrape(&mut self, s: &mut Scraping<'_>) -> Result<(), String> {
        let spec = &self.spec;
        let default_model = spec.model.as_deref().unwrap_or("unknown");
        let page = fetch(s.client, &spec.url, s.timeout, spec.server, s.max_page)
            .await
            .and_then(|p| {
                normalize_filtered(spec.server, p, default_model, s.models)
                    .map_err(|e| format!("{}: {e}", spec.url).into())
            });
        match page {
            Ok(page) => {
                s.dropped.record(spec.server, &spec.url, &page.dropped);
                self.last = self.monotonize.families(&page.readings);
                let reset = self.monotonize.reset_seen();
                if self.restarts.observe(Scraped::Page {
                    reset,
                    start_time: page.start_time,
                }) {
                    tracing::warn!(collector = NAME, server = spec.server.name(), url = %spec.url, reset, "the inference server restarted (counted in cellwatch_inference_upstream_restarts_total)");
                }
                Ok(())
            }
            Err(e) => {
                self.restarts.observe(if e.unreachable {
                    Scraped::Unreachable
                } else {
                    Scraped::Failed
                });
                // Counters keep their last values; gauges and histograms of a server that
                // does not answer are not repeated.
                self.last
                    .retain(|f| f.get_field_type() == prometheus::proto::MetricType::COUNTER);
                Err(format!("{} adapter: {}", spec.server.name(), e.message))
            }
        }
    }

    /// The families of the last page (counters only, after a failed scrape).
    pub fn families(&self) -> &[MetricFamily] {
        &self.last
    }

    /// Restarts seen.
    pub fn restarts(&self) -> &RestartWatch {
        &self.restarts
    }

    /// The server kind.
    pub fn server(&self) -> Server {
        self.spec.server
    }
}

/// Every adapter's families, their dropped samples and restarts.
pub fn adapter_families(adapters: &[Adapter], dropped: &DropCounter) -> Vec<MetricFamily> {
    adapters
        .iter()
        .flat_map(|a| a.families().iter().cloned())
        .chain([
            dropped.family(),
            restarts_family(adapters.iter().map(|a| (a.server(), a.restarts()))),
        ])
        .collect()
}

/// Starts the metering proxy on `listen`, its series registered in `slot`; `false` when it
/// cannot run.
fn start_proxy(listen: &str, config: ProxyConfig, models: &Arc<ModelLabels>, slot: &Slot) -> bool {
    let meters = match Meters::new(&config.buckets, &config.tpot_buckets) {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(collector = NAME, error = %e, "cannot create the proxy's metrics");
            return false;
        }
    };
    if let Some(Err(e)) = config.tracer.as_ref().map(|t| {
        t.dropped_collector()
            .and_then(|c| meters.registry.register(c))
    }) {
        tracing::error!(collector = NAME, error = %e, "cannot create the proxy's metrics");
        return false;
    }
    slot.register_live(meters.registry.clone());
    // Linux spreads connections over SO_REUSEPORT sockets; BSD kernels (macOS) give them all to
    // one socket, so one event loop serves there.
    let threads = if cfg!(target_os = "linux") {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    } else {
        1
    };
    let upstream = config.upstream.clone();
    let proxy = Proxy::new(config, meters, models.clone());
    match serve_on_threads(listen, threads, proxy) {
        Err(e) => {
            tracing::error!(collector = NAME, proxy_address = %listen, error = %e, "the metering proxy cannot listen");
            false
        }
        Ok(address) => {
            tracing::info!(collector = NAME, proxy_address = %address, %upstream, threads, "metering proxy listening");
            true
        }
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    let s = settings.inference.clone();
    let models = Arc::new(ModelLabels::new(s.max_models));
    let proxy_ok = match s.proxy.clone() {
        Some((listen, config)) => start_proxy(&listen, config, &models, &slot),
        None => true,
    };
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
    let mut adapters: Vec<Adapter> = s.adapters.iter().cloned().map(Adapter::new).collect();
    let mut dropped = DropCounter::default();
    for spec in &s.adapters {
        dropped.register(spec.server);
    }
    // Every series at zero before the first scrape answers.
    families.set(adapter_families(&adapters, &dropped));
    let mut tick = ticker(s.adapter_interval);
    let mut problems = Problems::default();
    loop {
        tick.tick().await;
        let started = Instant::now();
        let mut errors = Vec::new();
        let mut scraping = Scraping {
            client: &client,
            timeout: settings.command_timeout,
            max_page: s.adapter_max_page,
            models: &models,
            dropped: &mut dropped,
        };
        for adapter in &mut adapters {
            if let Err(e) = adapter.scrape(&mut scraping).await {
                errors.push(e);
            }
        }
        families.set(adapter_families(&adapters, &dropped));
        if !errors.is_empty() {
            slot.error();
        }
        slot.publish(Vec::new(), started.elapsed(), proxy_ok && errors.is_empty());
        problems.report(NAME, &errors);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::serve_until_aborted;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_server_stopped_and_started_again_is_one_restart() {
        let page = "# TYPE vllm:generation_tokens_total counter\n\
                    vllm:generation_tokens_total{model_name=\"m\"} 100\n"
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_until_aborted(listener, page.clone()));
        let spec: AdapterSpec = format!("vllm=http://{addr}/metrics").parse().unwrap();
        let client: Client<HttpConnector, Empty<Bytes>> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let models = ModelLabels::new(4);
        let mut dropped = DropCounter::default();
        let mut adapters = vec![Adapter::new(spec)];
        let restarts = |adapters: &[Adapter], dropped: &DropCounter| {
            let text = crate::store::encode_families(adapter_families(adapters, dropped));
            cellwatch_metrics::exposition::value(
                &text,
                r#"cellwatch_inference_upstream_restarts_total{server="vllm"}"#,
            )
        };
        assert_eq!(restarts(&adapters, &dropped), Some(0.0), "0 from the start");
        let mut scrape = async |adapters: &mut Vec<Adapter>| {
            let mut s = Scraping {
                client: &client,
                timeout: Duration::from_secs(5),
                max_page: 1 << 20,
                models: &models,
                dropped: &mut dropped,
            };
            adapters[0].scrape(&mut s).await
        };
        scrape(&mut adapters).await.unwrap();
        scrape(&mut adapters).await.unwrap();
        // Stopped: the listener is closed, connections are refused.
        server.abort();
        let _ = server.await;
        let e = scrape(&mut adapters).await.unwrap_err();
        assert_eq!(adapters[0].restarts().restarts(), 0, "{e}");
        // Started again on the same port, its counter not even reset: one restart.
        let listener = TcpListener::bind(addr).await.unwrap();
        let server = tokio::spawn(serve_until_aborted(listener, page));
        scrape(&mut adapters).await.unwrap();
        scrape(&mut adapters).await.unwrap();
        server.abort();
        assert_eq!(adapters[0].restarts().restarts(), 1);
        assert_eq!(restarts(&adapters, &dropped), Some(1.0));
    }
}
