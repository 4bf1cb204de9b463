//! Command-line configuration: the raw flags (whose doc comments are the `--help` text) and the
//! resolved configuration the exporter runs with.

use std::time::Duration;

use clap::{Arg, ArgAction, ArgMatches, Args, Command, FromArgMatches, ValueEnum};
use thiserror::Error;

use crate::collector::{self, Settings};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

fn byte_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a size such as 32MiB"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        u => {
            return Err(format!(
                "{s:?}: unknown unit {u:?} (B, KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// Histogram bucket bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Buckets(pub Vec<f64>);

fn buckets(s: &str) -> Result<Buckets, String> {
    let v: Vec<f64> = s
        .split(',')
        .map(|b| {
            b.trim()
                .parse::<f64>()
                .map_err(|_| format!("{b:?} is not a number of seconds"))
        })
        .collect::<Result<_, _>>()?;
    if v.is_empty()
        || v.iter().any(|b| !b.is_finite() || *b <= 0.0)
        || v.windows(2).any(|w| w[0] >= w[1])
    {
        return Err(format!(
            "{s:?}: bucket bounds must be positive and increasing"
        ));
    }
    Ok(Buckets(v))
}

fn listen(s: &str) -> String {
    match s.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => s.to_string(),
    }
}

fn valid_listen(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
}

fn header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 1s, 2m)"))
}

/// Flags, as given.
#[derive(Debug, Clone, Args)]
#[deny(missing_docs)]
pub struct RawArgs {
    /// Address to listen on: HOST:PORT, or :PORT for every interface.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9817"
    )]
    pub listen_address: String,

    /// TLS and basic authentication, in prometheus/exporter-toolkit's web configuration format
    /// (tls_server_config: cert_file, key_file, min_version, max_version; http_server_config:
    /// headers; basic_auth_users: bcrypt hashes). Read at start.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<std::path::PathBuf>,

    /// Longest wait for a request's headers, from the connection's start (a TLS handshake gets as
    /// long again) or from the end of the previous response: so also how long an idle
    /// connection stays open.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub read_header_timeout: Duration,

    /// Longest a request's body may take to arrive, from the end of its headers.
    #[arg(long = "web.read-timeout", value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub read_timeout: Duration,

    /// Most connections served at once; more wait (in the kernel's accept queue) until one
    /// closes.
    #[arg(long = "web.max-connections", value_name = "N", default_value = "512")]
    pub max_connections: usize,

    /// Path under which the metrics are served.
    #[arg(
        long = "web.telemetry-path",
        value_name = "PATH",
        default_value = "/metrics"
    )]
    pub telemetry_path: String,

    /// How often collectors sample fast sources (powermetrics -i, macmon -i, vm_stat, netstat).
    #[arg(long = "interval", value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub interval: Duration,

    /// How often the thunderbolt collector polls slow sources (system_profiler, hardware ports,
    /// ibv_devinfo, rdma_ctl).
    #[arg(long = "collector.thunderbolt.slow-interval", value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub slow_interval: Duration,

    /// Longest one run of a command may take before it is killed.
    #[arg(long = "command.timeout", value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub command_timeout: Duration,

    /// powermetrics samplers to run.
    #[arg(
        long = "collector.powermetrics.samplers",
        value_name = "LIST",
        default_value = "cpu_power,gpu_power,ane_power,thermal"
    )]
    pub powermetrics_samplers: String,

    /// Run powermetrics as `sudo -n powermetrics …` (needs the sudoers rule in
    /// exporter/packaging/), for an exporter that does not run as root.
    #[arg(long = "collector.powermetrics.sudo")]
    pub powermetrics_sudo: bool,

    /// Root of the sysfs tree the Linux collectors read (rapl, infiniband).
    #[arg(long = "path.sysfs", value_name = "DIR", default_value = "/sys")]
    pub sysfs: std::path::PathBuf,

    /// Root of the procfs tree the Linux collectors read (meminfo).
    #[arg(long = "path.procfs", value_name = "DIR", default_value = "/proc")]
    pub procfs: std::path::PathBuf,

    /// Name of the cell this node belongs to (the `cell` label of cellwatch_node_info).
    #[arg(long = "cell", value_name = "NAME", default_value = "default")]
    pub cell: String,

    /// Name of this node (the `node` label of cellwatch_node_info); default: the host name.
    #[arg(long = "node", value_name = "NAME")]
    pub node: Option<String>,

    /// Switch off every collector that is on by default; switch on the ones wanted with
    /// --collector.NAME.
    #[arg(long = "collector.disable-defaults")]
    pub disable_defaults: bool,

    /// OpenAI-compatible server to meter (http://HOST:PORT[/PREFIX]): EXO, mlx-lm, Ollama,
    /// llama.cpp… Clients then talk to the proxy at --collector.inference.listen-address.
    #[arg(
        long = "collector.inference.upstream",
        value_name = "URL",
        help_heading = "Inference"
    )]
    pub inference_upstream: Option<String>,

    /// Address the metering proxy listens on (HOST:PORT or :PORT).
    #[arg(
        long = "collector.inference.listen-address",
        value_name = "ADDR",
        default_value = ":9818",
        help_heading = "Inference"
    )]
    pub inference_listen: String,

    /// Largest request body of a metered route; larger ones get 413 (or, sent without a length,
    /// are cut off).
    #[arg(long = "collector.inference.max-body-size", value_name = "SIZE", default_value = "32MiB", value_parser = byte_size, help_heading = "Inference")]
    pub inference_max_body: usize,

    /// Longest wait for a client's request headers, from the connection's start or from the end
    /// of the previous response: so also how long an idle client connection stays open.
    #[arg(long = "collector.inference.read-header-timeout", value_name = "DURATION", default_value = "60s", value_parser = duration, help_heading = "Inference")]
    pub inference_read_header_timeout: Duration,

    /// Longest wait for the next chunk of a client's request body; then 408 and the connection
    /// is closed.
    #[arg(long = "collector.inference.body-read-timeout", value_name = "DURATION", default_value = "60s", value_parser = duration, help_heading = "Inference")]
    pub inference_body_read_timeout: Duration,

    /// Most client connections the proxy serves at once; more wait (in the kernel's accept
    /// queue) until one closes.
    #[arg(
        long = "collector.inference.max-connections",
        value_name = "N",
        default_value = "1024",
        help_heading = "Inference"
    )]
    pub inference_max_connections: usize,

    /// Longest wait for a connection to the upstream.
    #[arg(long = "collector.inference.connect-timeout", value_name = "DURATION", default_value = "5s", value_parser = duration, help_heading = "Inference")]
    pub inference_connect_timeout: Duration,

    /// Longest wait for the upstream's response headers (a long prefill counts here); then 504.
    #[arg(long = "collector.inference.response-timeout", value_name = "DURATION", default_value = "300s", value_parser = duration, help_heading = "Inference")]
    pub inference_response_timeout: Duration,

    /// Longest gap between two chunks of a response body before the proxy gives up on it.
    #[arg(long = "collector.inference.idle-timeout", value_name = "DURATION", default_value = "120s", value_parser = duration, help_heading = "Inference")]
    pub inference_idle_timeout: Duration,

    /// Histogram bucket bounds in seconds, for request duration and time to first token.
    #[arg(long = "collector.inference.buckets", value_name = "LIST", default_value = "0.05,0.1,0.25,0.5,1,2,2.5,5,10,15,20,30,45,60,90,120", value_parser = buckets, help_heading = "Inference")]
    pub inference_buckets: Buckets,

    /// Histogram bucket bounds in seconds, for the time per output token of streamed responses.
    #[arg(long = "collector.inference.tpot-buckets", value_name = "LIST", default_value = "0.01,0.025,0.05,0.075,0.1,0.15,0.2,0.3,0.4,0.5,0.75,1,2.5", value_parser = buckets, help_heading = "Inference")]
    pub inference_tpot_buckets: Buckets,

    /// Distinct `model` label values; later models are counted as `other`.
    #[arg(
        long = "collector.inference.max-models",
        value_name = "N",
        default_value = "20",
        help_heading = "Inference"
    )]
    pub inference_max_models: usize,

    /// A server with its own /metrics to normalize: KIND=URL[;model=NAME], KIND one of vllm,
    /// llamacpp, sglang, tgi (model: the label for servers whose metrics name none). Repeatable.
    #[arg(
        long = "collector.inference.adapter",
        value_name = "KIND=URL",
        help_heading = "Inference"
    )]
    pub inference_adapters: Vec<crate::adapter::AdapterSpec>,

    /// How often adapters scrape their servers.
    #[arg(long = "collector.inference.adapter-interval", value_name = "DURATION", default_value = "5s", value_parser = duration, help_heading = "Inference")]
    pub inference_adapter_interval: Duration,

    /// Largest /metrics page an adapter reads; a longer page is an error. The page is read line
    /// by line and only the series the adapter maps are kept (at most 2,000 per family).
    #[arg(long = "collector.inference.adapter-max-page-size", value_name = "SIZE", default_value = "4MiB", value_parser = byte_size, help_heading = "Inference")]
    pub inference_adapter_max_page: usize,

    /// Push the metrics to an OpenTelemetry collector too: http://HOST:4318 for http/protobuf
    /// (/v1/metrics is added when the URL has no path), http://HOST:4317 for grpc.
    #[arg(long = "otlp.endpoint", value_name = "URL", help_heading = "OTLP push")]
    pub otlp_endpoint: Option<String>,

    /// OTLP transport.
    #[arg(
        long = "otlp.protocol",
        value_enum,
        default_value = "http/protobuf",
        help_heading = "OTLP push"
    )]
    pub otlp_protocol: crate::otlp::Protocol,

    /// How often to push.
    #[arg(long = "otlp.interval", value_name = "DURATION", default_value = "15s", value_parser = duration, help_heading = "OTLP push")]
    pub otlp_interval: Duration,

    /// Longest one push may take.
    #[arg(long = "otlp.timeout", value_name = "DURATION", default_value = "10s", value_parser = duration, help_heading = "OTLP push")]
    pub otlp_timeout: Duration,

    /// A header sent with every push, KEY=VALUE (a tenant, a token). Repeatable; or, to keep
    /// tokens off the command line, OTEL_EXPORTER_OTLP_HEADERS=KEY=VALUE,KEY=VALUE.
    #[arg(long = "otlp.header", value_name = "KEY=VALUE", value_parser = header, env = "OTEL_EXPORTER_OTLP_HEADERS", value_delimiter = ',', hide_env_values = true, help_heading = "OTLP push")]
    pub otlp_headers: Vec<(String, String)>,

    /// Names of the pushed metrics: cellwatch (the families /metrics serves), genai (the
    /// OpenTelemetry GenAI semantic conventions v1.41.0: gen_ai.server.request.duration,
    /// gen_ai.server.time_to_first_token, gen_ai.server.time_per_output_token and
    /// gen_ai.client.token.usage, recorded per request by the metering proxy with the
    /// recommended buckets) or both. Default: cellwatch, so that turning on a new version does
    /// not change what existing collectors and dashboards receive, as the conventions' transition
    /// advice asks; with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental, both.
    #[arg(
        long = "otlp.semconv",
        value_enum,
        value_name = "NAMES",
        help_heading = "OTLP push"
    )]
    pub otlp_semconv: Option<crate::otlp::Semconv>,

    /// OTEL_SEMCONV_STABILITY_OPT_IN, read for gen_ai_latest_experimental.
    #[arg(
        long = "otlp.semconv-opt-in",
        env = "OTEL_SEMCONV_STABILITY_OPT_IN",
        hide = true
    )]
    pub otlp_semconv_opt_in: Option<String>,

    /// Send one span per metered request of the proxy (GenAI span conventions; W3C traceparent
    /// taken from the client and passed upstream) to --otlp.endpoint, over --otlp.protocol with
    /// --otlp.header. Needs --collector.inference.upstream.
    #[arg(long = "otlp.traces", help_heading = "OTLP push")]
    pub otlp_traces: bool,

    /// Share of new traces sampled at the head (0 to 1); a client's sampled or unsampled
    /// traceparent is followed. Failed and slow requests are exported whatever it says, so the
    /// default (0.1) only sets how many ordinary requests are kept for comparison.
    #[arg(
        long = "otlp.traces.sample-ratio",
        value_name = "RATIO",
        default_value = "0.1",
        help_heading = "OTLP push"
    )]
    pub otlp_traces_ratio: f64,

    /// Requests that take at least this long are exported whatever the sampler decided. A
    /// streamed answer of a few hundred tokens takes 10 to 30 s, so the default keeps the
    /// requests that look stuck, not every long generation.
    #[arg(long = "otlp.traces.slow", value_name = "DURATION", default_value = "60s", value_parser = duration, help_heading = "OTLP push")]
    pub otlp_traces_slow: Duration,

    /// Log level: error, warn, info, debug, trace (or a tracing filter directive).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format.
    #[arg(long = "log.format", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// A configuration that cannot run.
#[derive(Debug, Error, PartialEq)]
pub enum ConfigError {
    /// A flag's value is out of range.
    #[error("--{flag}: {message}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// The configuration the exporter runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to bind (`:PORT` already expanded).
    pub listen_address: String,
    /// Metrics path.
    pub telemetry_path: String,
    /// Enabled collectors, in registry order.
    pub collectors: Vec<&'static str>,
    /// Collector settings.
    pub settings: Settings,
    /// Cell name.
    pub cell: String,
    /// Node name, if given (else the host name is probed).
    pub node: Option<String>,
    /// OTLP push, when an endpoint is given.
    pub otlp: Option<crate::otlp::Settings>,
    /// Per-request traces of the proxy, when `--otlp.traces` is given.
    pub traces: Option<crate::proxy::trace::TraceSettings>,
    /// The web configuration file, when given.
    pub web_config_file: Option<std::path::PathBuf>,
    /// Bounds on the /metrics listener's connections.
    pub limits: crate::web::Limits,
    /// Log level directive.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
}

fn enable_id(name: &str) -> String {
    format!("collector.{name}")
}

fn disable_id(name: &str) -> String {
    format!("no-collector.{name}")
}

/// The full command, with one `--collector.NAME` / `--no-collector.NAME` pair per collector.
pub fn command() -> Command {
    // The struct's doc comment would become the about text: set ours after augmenting.
    let mut cmd = RawArgs::augment_args(Command::new("cellwatch-exporter"))
        .version(env!("CARGO_PKG_VERSION"))
        .about(
            "Prometheus exporter for the nodes of an LLM inference cell: power, unified memory, \
             Thunderbolt 5 / RDMA links.",
        )
        .long_about(None)
        .after_help(
            "Collectors find their commands on PATH. Every collector runs on any OS when switched \
             on; the defaults depend on the OS (macOS: powermetrics, vmstat, thunderbolt; Linux: meminfo, \
             rapl, nvidia, infiniband).",
        )
        .term_width(100);
    for c in collector::ALL {
        let default = match (c.default_on_macos, c.default_on_linux) {
            (true, true) => "on by default",
            (true, false) => "on by default on macOS",
            (false, true) => "on by default on Linux",
            (false, false) => "off by default",
        };
        cmd = cmd
            .arg(
                Arg::new(enable_id(c.name))
                    .long(enable_id(c.name))
                    .action(ArgAction::SetTrue)
                    .overrides_with(disable_id(c.name))
                    .help(format!(
                        "Enable the {} collector ({default}): {}",
                        c.name, c.help
                    ))
                    .help_heading("Collectors"),
            )
            .arg(
                Arg::new(disable_id(c.name))
                    .long(disable_id(c.name))
                    .action(ArgAction::SetTrue)
                    .overrides_with(enable_id(c.name))
                    .help(format!("Disable the {} collector", c.name))
                    .help_heading("Collectors"),
            );
    }
    cmd
}

/// The GenAI naming and the trace settings, checked against the endpoint and the proxy.
fn otlp_extras(
    raw: &RawArgs,
    proxy: bool,
) -> Result<
    (
        crate::otlp::Semconv,
        Option<crate::proxy::trace::TraceSettings>,
    ),
    ConfigError,
> {
    use crate::otlp::Semconv;
    let opted_in = raw.otlp_semconv_opt_in.as_deref().is_some_and(|v| {
        v.split(',')
            .any(|o| o.trim() == cellwatch_metrics::genai::OPT_IN)
    });
    let semconv = raw.otlp_semconv.unwrap_or(if opted_in {
        Semconv::Both
    } else {
        Semconv::Cellwatch
    });
    if raw.otlp_semconv == Some(Semconv::Genai) && !proxy {
        return Err(ConfigError::Invalid {
            flag: "otlp.semconv",
            message: "genai needs the metering proxy (--collector.inference.upstream): only it records the GenAI histograms (the adapters' come with the servers' own buckets)".into(),
        });
    }
    if !(0.0..=1.0).contains(&raw.otlp_traces_ratio) {
        return Err(ConfigError::Invalid {
            flag: "otlp.traces.sample-ratio",
            message: format!("{} is outside 0..=1", raw.otlp_traces_ratio),
        });
    }
    if !raw.otlp_traces {
        return Ok((semconv, None));
    }
    let Some(endpoint) = raw.otlp_endpoint.clone() else {
        return Err(ConfigError::Invalid {
            flag: "otlp.traces",
            message: "needs --otlp.endpoint URL".into(),
        });
    };
    if !proxy {
        return Err(ConfigError::Invalid {
            flag: "otlp.traces",
            message: "traces the metering proxy's requests: needs --collector.inference.upstream"
                .into(),
        });
    }
    Ok((
        semconv,
        Some(crate::proxy::trace::TraceSettings {
            endpoint,
            protocol: raw.otlp_protocol,
            timeout: raw.otlp_timeout,
            headers: raw.otlp_headers.clone(),
            sample_ratio: raw.otlp_traces_ratio,
            slow: raw.otlp_traces_slow,
        }),
    ))
}

/// Resolves parsed flags into a [`Config`]; `default_enabled` says which collectors are on by
/// default on this OS.
pub fn resolve(
    matches: &ArgMatches,
    default_enabled: impl Fn(&collector::Info) -> bool,
) -> Result<Config, ConfigError> {
    let raw = RawArgs::from_arg_matches(matches).map_err(|e| ConfigError::Invalid {
        flag: "args",
        message: e.to_string(),
    })?;
    let collectors: Vec<&'static str> = collector::ALL
        .iter()
        .filter(|c| {
            if matches.get_flag(&enable_id(c.name)) {
                true
            } else if matches.get_flag(&disable_id(c.name)) {
                false
            } else {
                !raw.disable_defaults && default_enabled(c)
            }
        })
        .map(|c| c.name)
        .collect();
    let in_range = |flag: &'static str, d: Duration, min: Duration, max: Duration| {
        if d < min || d > max {
            Err(ConfigError::Invalid {
                flag,
                message: format!("{d:?} is outside {min:?}..={max:?}"),
            })
        } else {
            Ok(())
        }
    };
    in_range(
        "interval",
        raw.interval,
        Duration::from_millis(50),
        Duration::from_secs(3600),
    )?;
    in_range(
        "collector.thunderbolt.slow-interval",
        raw.slow_interval,
        raw.interval.max(Duration::from_secs(1)),
        Duration::from_secs(86400),
    )?;
    in_range(
        "command.timeout",
        raw.command_timeout,
        Duration::from_millis(100),
        Duration::from_secs(600),
    )?;
    for (flag, d) in [
        ("web.read-header-timeout", raw.read_header_timeout),
        ("web.read-timeout", raw.read_timeout),
        (
            "collector.inference.read-header-timeout",
            raw.inference_read_header_timeout,
        ),
        (
            "collector.inference.body-read-timeout",
            raw.inference_body_read_timeout,
        ),
    ] {
        in_range(
            flag,
            d,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
    }
    // Upstream waits: a day at most (a deadline past the clock's range would panic).
    for (flag, d) in [
        (
            "collector.inference.connect-timeout",
            raw.inference_connect_timeout,
        ),
        (
            "collector.inference.response-timeout",
            raw.inference_response_timeout,
        ),
        (
            "collector.inference.idle-timeout",
            raw.inference_idle_timeout,
        ),
    ] {
        in_range(
            flag,
            d,
            Duration::from_millis(100),
            Duration::from_secs(86400),
        )?;
    }
    for (flag, n) in [
        ("web.max-connections", raw.max_connections),
        (
            "collector.inference.max-connections",
            raw.inference_max_connections,
        ),
    ] {
        if !(1..=1 << 20).contains(&n) {
            return Err(ConfigError::Invalid {
                flag,
                message: format!("{n} is outside 1..=1048576"),
            });
        }
    }
    if !raw.telemetry_path.starts_with('/')
        || raw.telemetry_path.len() < 2
        || raw.telemetry_path == "/-/healthy"
        || raw.telemetry_path.contains(['{', '}', ':', '*'])
    {
        return Err(ConfigError::Invalid {
            flag: "web.telemetry-path",
            message: format!(
                "{:?} must start with /, not be / or /-/healthy, and hold none of {{ }} : *",
                raw.telemetry_path
            ),
        });
    }
    let samplers = raw.powermetrics_samplers.trim();
    if samplers.is_empty() || samplers.contains(char::is_whitespace) {
        return Err(ConfigError::Invalid {
            flag: "collector.powermetrics.samplers",
            message: "a comma-separated list without spaces".into(),
        });
    }
    let listen_address = listen(&raw.listen_address);
    if !valid_listen(&listen_address) {
        return Err(ConfigError::Invalid {
            flag: "web.listen-address",
            message: format!("{:?} is not HOST:PORT or :PORT", raw.listen_address),
        });
    }
    let inference_on = collectors.contains(&"inference");
    let proxy = match &raw.inference_upstream {
        None => None,
        Some(u) => {
            let upstream: axum::http::Uri = u.parse().map_err(|e| ConfigError::Invalid {
                flag: "collector.inference.upstream",
                message: format!("{u:?}: {e}"),
            })?;
            if upstream.scheme_str() != Some("http")
                || upstream.authority().is_none()
                || upstream.query().is_some()
            {
                return Err(ConfigError::Invalid {
                    flag: "collector.inference.upstream",
                    message: format!(
                        "{u:?}: an http://HOST:PORT[/PREFIX] URL is needed (put TLS in front of the proxy, not behind it)"
                    ),
                });
            }
            let proxy_listen = listen(&raw.inference_listen);
            if !valid_listen(&proxy_listen) {
                return Err(ConfigError::Invalid {
                    flag: "collector.inference.listen-address",
                    message: format!("{:?} is not HOST:PORT or :PORT", raw.inference_listen),
                });
            }
            Some((
                proxy_listen,
                crate::proxy::ProxyConfig {
                    upstream,
                    max_body: raw.inference_max_body,
                    connect_timeout: raw.inference_connect_timeout,
                    header_timeout: raw.inference_response_timeout,
                    idle_timeout: raw.inference_idle_timeout,
                    buckets: raw.inference_buckets.0.clone(),
                    tpot_buckets: raw.inference_tpot_buckets.0.clone(),
                    limits: crate::web::Limits {
                        read_header_timeout: raw.inference_read_header_timeout,
                        read_timeout: raw.inference_body_read_timeout,
                        max_connections: raw.inference_max_connections,
                    },
                    genai: None,
                    tracer: None,
                },
            ))
        }
    };
    if inference_on && proxy.is_none() && raw.inference_adapters.is_empty() {
        return Err(ConfigError::Invalid {
            flag: "collector.inference",
            message: "needs --collector.inference.upstream URL (the metering proxy) or --collector.inference.adapter KIND=URL".into(),
        });
    }
    if !inference_on && (proxy.is_some() || !raw.inference_adapters.is_empty()) {
        return Err(ConfigError::Invalid {
            flag: "collector.inference",
            message: "--collector.inference.upstream/--collector.inference.adapter given, but the inference collector is off: add --collector.inference".into(),
        });
    }
    if raw.inference_max_models == 0 {
        return Err(ConfigError::Invalid {
            flag: "collector.inference.max-models",
            message: "must be at least 1".into(),
        });
    }
    if raw.inference_adapter_max_page < 1 << 10 {
        return Err(ConfigError::Invalid {
            flag: "collector.inference.adapter-max-page-size",
            message: format!(
                "{} bytes is too small for a /metrics page: at least 1KiB",
                raw.inference_adapter_max_page
            ),
        });
    }
    in_range(
        "collector.inference.adapter-interval",
        raw.inference_adapter_interval,
        Duration::from_millis(100),
        Duration::from_secs(3600),
    )?;
    let (semconv, traces) = otlp_extras(&raw, proxy.is_some())?;
    let inference = crate::collector::inference::InferenceSettings {
        proxy,
        adapters: raw.inference_adapters.clone(),
        adapter_interval: raw.inference_adapter_interval,
        max_models: raw.inference_max_models,
        adapter_max_page: raw.inference_adapter_max_page,
    };
    Ok(Config {
        listen_address,
        telemetry_path: raw.telemetry_path,
        collectors,
        settings: Settings {
            interval: raw.interval,
            slow_interval: raw.slow_interval,
            command_timeout: raw.command_timeout,
            powermetrics_samplers: samplers.to_string(),
            powermetrics_sudo: raw.powermetrics_sudo,
            sysfs: raw.sysfs,
            procfs: raw.procfs,
            inference,
        },
        cell: raw.cell,
        node: raw.node.filter(|n| !n.is_empty()),
        web_config_file: raw.web_config_file,
        limits: crate::web::Limits {
            read_header_timeout: raw.read_header_timeout,
            read_timeout: raw.read_timeout,
            max_connections: raw.max_connections,
        },
        otlp: raw.otlp_endpoint.map(|endpoint| crate::otlp::Settings {
            endpoint,
            protocol: raw.otlp_protocol,
            interval: raw.otlp_interval,
            timeout: raw.otlp_timeout,
            headers: raw.otlp_headers,
            semconv,
        }),
        traces,
        log_level: raw.log_level,
        log_format: raw.log_format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], macos: bool) -> Result<Config, ConfigError> {
        let m = command()
            .try_get_matches_from(std::iter::once("cellwatch-exporter").chain(args.iter().copied()))
            .unwrap();
        resolve(&m, |c| {
            if macos {
                c.default_on_macos
            } else {
                c.default_on_linux
            }
        })
    }

    #[test]
    fn defaults_depend_on_the_os() {
        assert_eq!(
            parse(&[], true).unwrap().collectors,
            ["powermetrics", "vmstat", "thunderbolt"]
        );
        assert_eq!(
            parse(&[], false).unwrap().collectors,
            ["meminfo", "rapl", "nvidia", "infiniband"]
        );
        let c = parse(&[], false).unwrap();
        assert_eq!(c.settings.sysfs, std::path::Path::new("/sys"));
        assert_eq!(c.settings.procfs, std::path::Path::new("/proc"));
        let c = parse(&["--path.sysfs", "fixtures/sys"], false).unwrap();
        assert_eq!(c.settings.sysfs, std::path::Path::new("fixtures/sys"));
        let c = parse(&[], true).unwrap();
        assert_eq!(c.listen_address, "0.0.0.0:9817");
        assert_eq!(c.settings.interval, Duration::from_secs(1));
        assert_eq!(c.settings.slow_interval, Duration::from_secs(30));
        // The slow interval's floor is 1 s (or --interval, when longer): end-to-end tests poll
        // system_profiler every second.
        for interval in ["200ms", "1s"] {
            let c = parse(
                &[
                    "--interval",
                    interval,
                    "--collector.thunderbolt.slow-interval",
                    "1s",
                ],
                true,
            )
            .unwrap();
            assert_eq!(c.settings.slow_interval, Duration::from_secs(1));
        }
        let e = parse(&["--collector.thunderbolt.slow-interval", "500ms"], true).unwrap_err();
        assert!(e.to_string().contains("slow-interval"), "{e}");
    }

    #[test]
    fn switches_last_one_wins() {
        let c = parse(
            &[
                "--collector.disable-defaults",
                "--collector.vmstat",
                "--collector.macmon",
            ],
            true,
        )
        .unwrap();
        assert_eq!(c.collectors, ["macmon", "vmstat"]);
        let c = parse(&["--no-collector.powermetrics"], true).unwrap();
        assert_eq!(c.collectors, ["vmstat", "thunderbolt"]);
        let c = parse(&["--no-collector.vmstat", "--collector.vmstat"], false).unwrap();
        assert_eq!(
            c.collectors,
            ["vmstat", "meminfo", "rapl", "nvidia", "infiniband"]
        );
        let c = parse(&["--collector.vmstat", "--no-collector.vmstat"], true).unwrap();
        assert_eq!(c.collectors, ["powermetrics", "thunderbolt"]);
    }

    #[test]
    fn default_buckets_are_the_shared_ones() {
        let c = parse(&[], true).unwrap();
        let m = command().try_get_matches_from(["x"]).unwrap();
        let raw = RawArgs::from_arg_matches(&m).unwrap();
        assert_eq!(
            raw.inference_buckets.0,
            cellwatch_metrics::DEFAULT_LATENCY_BUCKETS
        );
        assert_eq!(
            raw.inference_tpot_buckets.0,
            cellwatch_metrics::DEFAULT_TPOT_BUCKETS
        );
        assert!(c.settings.inference.proxy.is_none());
    }

    #[test]
    fn inference_flags_need_the_collector_and_a_source() {
        let e = parse(&["--collector.inference"], false).unwrap_err();
        assert!(
            e.to_string().contains("--collector.inference.upstream"),
            "{e}"
        );
        let e = parse(
            &["--collector.inference.upstream", "http://127.0.0.1:52415"],
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("add --collector.inference"), "{e}");
        let e = parse(
            &[
                "--collector.inference",
                "--collector.inference.upstream",
                "https://x:1",
            ],
            false,
        )
        .unwrap_err();
        assert!(e.to_string().contains("http://"), "{e}");
        let c = parse(
            &[
                "--collector.inference",
                "--collector.inference.upstream",
                "http://127.0.0.1:52415",
                "--collector.inference.max-body-size",
                "2MiB",
            ],
            false,
        )
        .unwrap();
        let (listen, proxy) = c.settings.inference.proxy.unwrap();
        assert_eq!((listen.as_str(), proxy.max_body), ("0.0.0.0:9818", 2 << 20));
        assert!(
            command()
                .try_get_matches_from(["x", "--collector.inference.buckets", "1,0.5"])
                .is_err()
        );
        for bad in ["1,0.5", "0,0.1", "-1", "", "0.1,x"] {
            assert!(
                command()
                    .try_get_matches_from(["x", "--collector.inference.tpot-buckets", bad])
                    .is_err(),
                "{bad:?}"
            );
        }
        let c = parse(
            &[
                "--collector.inference",
                "--collector.inference.upstream",
                "http://127.0.0.1:52415",
                "--collector.inference.tpot-buckets",
                "0.02,0.04",
            ],
            false,
        )
        .unwrap();
        let (_, proxy) = c.settings.inference.proxy.unwrap();
        assert_eq!(proxy.tpot_buckets, [0.02, 0.04]);
        assert!(
            command()
                .try_get_matches_from(["x", "--collector.inference.max-body-size", "2 parsecs"])
                .is_err()
        );
    }

    #[test]
    fn semconv_and_traces_flags() {
        use crate::otlp::Semconv;
        let proxy = [
            "--collector.inference",
            "--collector.inference.upstream",
            "http://127.0.0.1:52415",
            "--otlp.endpoint",
            "http://127.0.0.1:4318",
        ];
        let with = |extra: &[&str]| {
            let mut a = proxy.to_vec();
            a.extend_from_slice(extra);
            parse(&a, false)
        };
        let c = with(&[]).unwrap();
        assert_eq!(c.otlp.unwrap().semconv, Semconv::Cellwatch);
        assert!(c.traces.is_none());
        let c = with(&["--otlp.semconv-opt-in", "http,gen_ai_latest_experimental"]).unwrap();
        assert_eq!(c.otlp.unwrap().semconv, Semconv::Both);
        let c = with(&[
            "--otlp.semconv",
            "genai",
            "--otlp.semconv-opt-in",
            "gen_ai_latest_experimental",
        ])
        .unwrap();
        assert_eq!(c.otlp.unwrap().semconv, Semconv::Genai);
        let c = with(&["--otlp.traces", "--otlp.traces.sample-ratio", "0"]).unwrap();
        let t = c.traces.unwrap();
        assert_eq!((t.sample_ratio, t.slow), (0.0, Duration::from_secs(60)));
        let e = with(&["--otlp.traces", "--otlp.traces.sample-ratio", "1.5"]).unwrap_err();
        assert!(
            e.to_string().starts_with("--otlp.traces.sample-ratio:"),
            "{e}"
        );
        let e = parse(&["--otlp.traces"], false).unwrap_err();
        assert!(e.to_string().contains("--otlp.endpoint"), "{e}");
        let e = parse(
            &[
                "--otlp.endpoint",
                "http://c:4318",
                "--otlp.semconv",
                "genai",
            ],
            false,
        )
        .unwrap_err();
        assert!(e.to_string().starts_with("--otlp.semconv:"), "{e}");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let e = parse(&["--interval", "1ms"], true).unwrap_err();
        assert!(e.to_string().starts_with("--interval:"), "{e}");
        let e = parse(&["--web.max-connections", "0"], true).unwrap_err();
        assert!(e.to_string().starts_with("--web.max-connections:"), "{e}");
        let e = parse(&["--collector.inference.body-read-timeout", "1ms"], true).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("--collector.inference.body-read-timeout:"),
            "{e}"
        );
        for flag in [
            "--collector.inference.connect-timeout",
            "--collector.inference.response-timeout",
            "--collector.inference.idle-timeout",
        ] {
            for bad in ["1ms", "1000000000years"] {
                let e = parse(&[flag, bad], true).unwrap_err();
                assert!(e.to_string().starts_with(&format!("{flag}:")), "{e}");
            }
        }
        let c = parse(&["--web.read-header-timeout", "2s"], true).unwrap();
        assert_eq!(c.limits.read_header_timeout, Duration::from_secs(2));
        let e = parse(&["--web.listen-address", "nowhere"], true).unwrap_err();
        assert!(e.to_string().contains("--web.listen-address"), "{e}");
        for bad in ["metrics", "/", "/-/healthy", "/{x}", "/:m"] {
            let e = parse(&["--web.telemetry-path", bad], true).unwrap_err();
            assert!(e.to_string().contains("--web.telemetry-path"), "{bad}: {e}");
        }
        let e = parse(
            &[
                "--interval",
                "10s",
                "--collector.thunderbolt.slow-interval",
                "5s",
            ],
            true,
        )
        .unwrap_err();
        assert!(e.to_string().contains("slow-interval"), "{e}");
        assert!(
            command()
                .try_get_matches_from(["x", "--interval", "soon"])
                .is_err()
        );
        assert!(
            command()
                .try_get_matches_from(["x", "--collector.nope"])
                .is_err()
        );
    }
}
