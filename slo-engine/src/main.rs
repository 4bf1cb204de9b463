//! The `cellwatch-slo` binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Cell-level SLO engine for LLM inference cells: latency, availability and tokens/kWh error
/// budgets.
#[derive(Debug, Parser)]
#[command(name = "cellwatch-slo", version, term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the engine: scrape the cells' exporters, record slices in the ledger, evaluate every
    /// SLO, and serve /metrics and the JSON API under /api/v1/.
    Run(RunArgs),
    /// Print Prometheus recording and alerting rules for the configured SLOs (Sloth-compatible
    /// names, a `cell` label, multiwindow multi-burn-rate alerts).
    Rules {
        /// The configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Print Prometheus file_sd targets for every node, with `cell` and `node` labels.
    Targets {
        /// The configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run a SIMULATED four-node Mac Studio cell beside a simulated GPU-pool node: five real
    /// exporters on stand-in commands, a simulated OpenAI-compatible server and clients behind
    /// their real metering proxies, and the engine (SQLite ledger, SLO periods compressed to 1h,
    /// status page). About a minute in, a Mac slows down, then an energy regression follows; a
    /// page is printed (and written to pages.log, and mailed with --smtp), and it resolves later.
    Demo(DemoArgs),
    /// Write the Grafana dashboards (cell-overview, node-detail, fleet, slo) and their
    /// provisioning files into a directory.
    Dashboards {
        /// The directory (created if missing); provisioning files go to DIR/provisioning/.
        #[arg(long, value_name = "DIR", default_value = "dashboards")]
        out: PathBuf,
    },
    /// Print a budget report for a range from the ledger: per cell and SLO the good and total
    /// events (or slices), the SLI and the share of the range's error budget used, with the
    /// cell's tokens/kWh and kWh per 1,000 requests. The range is widened to whole hours.
    Report(ReportArgs),
    /// Replay a history through the ledger, the evaluation and the alert state machine in
    /// virtual time, and print every alert that would have fired (when, notified, resolved),
    /// the notifications per incident, detection times and the budget over time. The history
    /// is a Prometheus range (the prometheus source's selectors and `up`; the 3 days before
    /// --from are read too, so every window is full at the first evaluation), OpenMetrics
    /// files with timestamps, or a shipped scenario. Several --config compare candidates on the
    /// same history.
    Backtest(BacktestArgs),
    /// Validate a configuration file; errors name the file, line and field. Exits 1 when the
    /// file is not usable.
    Check {
        /// The configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

// The flags of `run` (its help text is the doc comment of `Command::Run`).
#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The configuration file (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The ledger: sqlite://FILE (created on first start) or postgres://USER@HOST/DB. A URL
    /// with a password is better given in CELLWATCH_SLO_DATABASE_URL than on the command line.
    #[arg(long = "database-url", value_name = "URL", env = "CELLWATCH_SLO_DATABASE_URL", hide_env_values = true, default_value = cellwatch_slo::ledger::DEFAULT_URL)]
    database_url: String,
    /// Address to listen on: HOST:PORT, or :PORT for every interface.
    #[arg(
        long = "web.listen-address",
        value_name = "ADDR",
        default_value = ":9820"
    )]
    listen_address: String,
    /// Log level (error, warn, info, debug, trace).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "info")]
    log_level: String,
    /// TLS and basic authentication, in prometheus/exporter-toolkit's web configuration
    /// format (tls_server_config, http_server_config, basic_auth_users). Silence writes
    /// keep their bearer token.
    #[arg(long = "web.config.file", value_name = "FILE")]
    web_config_file: Option<PathBuf>,
    /// Longest wait for a request's headers, from the connection's start (a TLS handshake
    /// gets as long again) or from the end of the previous response: so also how long an
    /// idle connection stays open.
    #[arg(long = "web.read-header-timeout", value_name = "DURATION", default_value = "10s", value_parser = web_duration)]
    read_header_timeout: std::time::Duration,
    /// Longest a request's body may take to arrive, from the end of its headers.
    #[arg(long = "web.read-timeout", value_name = "DURATION", default_value = "30s", value_parser = web_duration)]
    read_timeout: std::time::Duration,
    /// Most connections served at once; more wait (in the kernel's accept queue) until one
    /// closes.
    #[arg(long = "web.max-connections", value_name = "N", default_value = "512", value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    max_connections: u32,
    /// For tests: a file of seconds added to the clock, read at every tick.
    #[arg(long = "testing.clock-offset-file", value_name = "FILE", hide = true)]
    clock_offset_file: Option<PathBuf>,
    /// Most silences active or pending at once; a POST beyond it is refused (400).
    #[arg(long = "silences.max-active", value_name = "N", default_value_t = cellwatch_slo::web::DEFAULT_MAX_SILENCES)]
    max_silences: usize,
    #[command(flatten)]
    otlp: OtlpArgs,
}

// The trace flags of `run` and `demo`.
#[derive(Debug, clap::Args)]
struct OtlpArgs {
    /// Export traces (each evaluation, each delivery) to an OpenTelemetry collector:
    /// http://HOST:4318 for http/protobuf (/v1/traces is added when the URL has no path),
    /// http://HOST:4317 for grpc. Without it nothing is traced.
    #[arg(
        long = "otlp.endpoint",
        value_name = "URL",
        help_heading = "OTLP traces"
    )]
    endpoint: Option<String>,
    /// OTLP transport.
    #[arg(
        long = "otlp.protocol",
        value_enum,
        default_value = "http/protobuf",
        help_heading = "OTLP traces"
    )]
    protocol: cellwatch_slo::runtime::trace::Protocol,
    /// Longest one export may take.
    #[arg(long = "otlp.timeout", value_name = "DURATION", default_value = "10s", value_parser = web_duration, help_heading = "OTLP traces")]
    timeout: std::time::Duration,
    /// A header sent with every export, KEY=VALUE (a tenant, a token). Repeatable; or, to keep
    /// tokens off the command line, OTEL_EXPORTER_OTLP_HEADERS=KEY=VALUE,KEY=VALUE.
    #[arg(long = "otlp.header", value_name = "KEY=VALUE", value_parser = header, env = "OTEL_EXPORTER_OTLP_HEADERS", value_delimiter = ',', hide_env_values = true, help_heading = "OTLP traces")]
    headers: Vec<(String, String)>,
    /// Share of evaluations and deliveries traced, 0 to 1 (parent-based: a span's children
    /// follow it).
    #[arg(long = "otlp.sample-ratio", value_name = "RATIO", default_value = "1", value_parser = ratio, help_heading = "OTLP traces")]
    sample_ratio: f64,
}

// The flags of `demo`.
#[derive(Debug, clap::Args)]
struct DemoArgs {
    /// The engine's port (status page, /metrics, API). The five exporters take PORT+1 to
    /// PORT+5, their metering proxies PORT+11 to PORT+15, the simulated servers PORT+20.
    #[arg(long, value_name = "PORT", default_value_t = 9820)]
    port: u16,
    /// Stop after this long (e.g. 10m); without it, run until Ctrl-C.
    #[arg(long, value_name = "DURATION", value_parser = cellwatch_slo::config::duration)]
    duration: Option<std::time::Duration>,
    /// When the simulated incident starts.
    #[arg(long = "incident-at", value_name = "DURATION", default_value = "60s", value_parser = cellwatch_slo::config::duration)]
    incident_at: std::time::Duration,
    /// How long the simulated incident lasts (at least 30s: the energy regression starts
    /// 30 s in).
    #[arg(long = "incident-for", value_name = "DURATION", default_value = "150s", value_parser = cellwatch_slo::config::duration)]
    incident_for: std::time::Duration,
    /// When a Thunderbolt cable of the cell is pulled (then plugged back at half speed 40 s
    /// later, and replaced two minutes after that); default: seven minutes after the incident
    /// ends, once its page has resolved, so the link's ticket opens its own incident.
    #[arg(long = "cable-pull-at", value_name = "DURATION", value_parser = cellwatch_slo::config::duration)]
    cable_pull_at: Option<std::time::Duration>,
    /// Also mail pages to this SMTP server (HOST:PORT, plain SMTP).
    #[arg(long, value_name = "HOST:PORT")]
    smtp: Option<String>,
    /// Where mailed pages go.
    #[arg(
        long = "mail-to",
        value_name = "ADDRESS",
        default_value = "oncall@example.com"
    )]
    mail_to: String,
    /// Working directory (ledger, configuration, logs, pages.log, prometheus.yml); default:
    /// a new one under the temporary directory.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// The cellwatch-exporter binary; default: beside this one, else on PATH.
    #[arg(long, value_name = "FILE")]
    exporter: Option<PathBuf>,
    /// The stand-in macOS commands (powermetrics, vm_stat, netstat...); default:
    /// exporter/testdata/standins of the checkout this binary was built from.
    #[arg(long, value_name = "DIR")]
    standins: Option<PathBuf>,
    /// Log level of the engine (error, warn, info, debug, trace).
    #[arg(long = "log.level", value_name = "LEVEL", default_value = "warn")]
    log_level: String,
    #[command(flatten)]
    otlp: OtlpArgs,
}

// The flags of `report`.
#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// The configuration file (YAML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The ledger: sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(long = "database-url", value_name = "URL", default_value = cellwatch_slo::ledger::DEFAULT_URL)]
    database_url: String,
    /// Start: an RFC 3339 time (2026-11-01T00:00:00Z) or a duration before now (7d).
    #[arg(long, value_name = "TIME", default_value = "7d")]
    from: String,
    /// End: an RFC 3339 time, a duration before now, or `now`.
    #[arg(long, value_name = "TIME", default_value = "now")]
    to: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

// The flags of `backtest`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("history").required(true).args(["prometheus", "openmetrics", "scenario"])))]
struct BacktestArgs {
    /// A configuration file (YAML); give several to compare them on the same history.
    #[arg(long, value_name = "FILE")]
    config: Vec<PathBuf>,
    /// Read the history from this Prometheus server (needs --from and --to).
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
    /// Read the history from OpenMetrics files with timestamps (the format of `promtool tsdb
    /// create-blocks-from openmetrics`), every series with `cell` and `node` labels.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    openmetrics: Vec<PathBuf>,
    /// Replay a shipped scenario of a four-node cell (`--scenario list` names them).
    #[arg(long, value_name = "NAME")]
    scenario: Option<String>,
    /// First evaluation: an RFC 3339 time or a duration before now (default: the history's
    /// start).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// End: an RFC 3339 time, a duration before now, or `now` (default: the history's end).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Replay into this ledger (sqlite://FILE or postgres://USER@HOST/DB: an empty database);
    /// default: an in-memory SQLite ledger per configuration.
    #[arg(long, value_name = "URL")]
    ledger: Option<String>,
    /// Evaluate at every interval, as the engine does, instead of skipping quiet ones (slower;
    /// the same alerts).
    #[arg(long)]
    exact: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    format: BacktestFormat,
    /// Write the output to this file instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// A backtest's format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BacktestFormat {
    /// Aligned text tables.
    Table,
    /// JSON.
    Json,
    /// A self-contained HTML page with a budget-and-burn plot per cell and SLO.
    Html,
}

/// A report's format.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// An aligned text table.
    Table,
    /// JSON.
    Json,
    /// CSV.
    Csv,
}

fn main() -> ExitCode {
    cellwatch_http::tls::install_default();
    match Cli::parse().command {
        Command::Run(a) => run(a),
        Command::Report(a) => report(a),
        Command::Demo(a) => demo(a),
        Command::Dashboards { out } => dashboards(&out),
        Command::Rules { config } => {
            print_generated(&config, cellwatch_slo::generate::prometheus::rules)
        }
        Command::Targets { config } => {
            print_generated(&config, cellwatch_slo::generate::prometheus::targets)
        }
        Command::Check { config } => check(&config),
        Command::Backtest(a) => backtest(a),
    }
}

/// `backtest`: the configurations, the range and the history, then each replay, printed.
fn backtest(a: BacktestArgs) -> ExitCode {
    use cellwatch_slo::backtest::{self, Input, Options};
    if a.scenario.as_deref() == Some("list") {
        for (name, what) in backtest::SCENARIOS.iter().chain([&backtest::MONTH]) {
            println!("{name:<20} {what}");
        }
        return ExitCode::SUCCESS;
    }
    if a.config.is_empty() {
        eprintln!("cellwatch-slo: backtest needs --config FILE (one or more)");
        return ExitCode::from(2);
    }
    let mut configs = Vec::new();
    for path in &a.config {
        match load_config(path) {
            Ok(c) => configs.push((path.display().to_string(), c)),
            Err(code) => return code,
        }
    }
    let range = match (&a.from, &a.to) {
        (None, None) => None,
        (from, to) => match range(
            from.as_deref().unwrap_or("10y"),
            to.as_deref().unwrap_or("now"),
        ) {
            Ok(r) => Some(r),
            Err(code) => return code,
        },
    };
    let input = match (a.prometheus, a.scenario) {
        (Some(url), _) => Input::Prometheus(url),
        (_, Some(name)) => Input::Scenario(name),
        _ => Input::Files(a.openmetrics),
    };
    let o = Options {
        configs,
        input,
        range,
        ledger: a.ledger,
        exact: a.exact,
    };
    // One thread: the replay is sequential, and every wake-up between threads costs.
    let Ok(rt) = one_thread() else {
        return ExitCode::FAILURE;
    };
    let results = rt.block_on(async {
        let history = backtest::load(&o).await?;
        backtest::run(&o, &history).await
    });
    let results = match results {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cellwatch-slo: backtest: {e}");
            return ExitCode::FAILURE;
        }
    };
    let text = match a.format {
        BacktestFormat::Table => backtest::table(&results),
        BacktestFormat::Json => backtest::json(&results),
        BacktestFormat::Html => backtest::html(&results),
    };
    match &a.out {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match std::fs::write(path, text) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cellwatch-slo: {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// `run`: the trace flags (exit 2), the logs and traces, the configuration and the web
/// configuration, then the engine until it stops; the last spans are flushed at the end.
fn run(a: RunArgs) -> ExitCode {
    let limits = cellwatch_http::web::Limits {
        read_header_timeout: a.read_header_timeout,
        read_timeout: a.read_timeout,
        max_connections: a.max_connections as usize,
    };
    let (runtime, me, provider) = match start_process(&a.otlp, &a.log_level) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let cfg = match load_config(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let web = match a
        .web_config_file
        .as_deref()
        .map(cellwatch_http::web::load)
        .transpose()
    {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cellwatch-slo: --web.config.file: {e}");
            return ExitCode::FAILURE;
        }
    };
    cellwatch_http::web::warn_if_few_files(limits.max_connections as u64 + 64);
    let listen = match a.listen_address.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => a.listen_address.clone(),
    };
    let limits = cellwatch_slo::web::Limits {
        max_silences: a.max_silences,
        web: limits,
    };
    let clock = cellwatch_slo::runtime::Clock {
        offset_file: a.clock_offset_file,
    };
    let engine = Engine {
        listen,
        clock,
        web,
        limits,
        me,
    };
    let code = runtime.block_on(serve(cfg, &a.database_url, engine));
    if let Some(p) = provider {
        cellwatch_slo::runtime::trace::shutdown(p);
    }
    code
}

/// What `serve` runs the engine with, besides its configuration and ledger.
struct Engine {
    listen: String,
    clock: cellwatch_slo::runtime::Clock,
    web: Option<cellwatch_http::web::WebConfig>,
    limits: cellwatch_slo::web::Limits,
    /// The engine's name in the leader lease.
    me: String,
}

/// Opens the ledger and runs the engine on its address until it stops, or until SIGTERM or
/// Ctrl-C (exit 0).
async fn serve(cfg: cellwatch_slo::config::Config, database_url: &str, e: Engine) -> ExitCode {
    let ledger = match cellwatch_slo::ledger::Ledger::open(database_url).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot open the ledger");
            return ExitCode::FAILURE;
        }
    };
    let listen = e.listen.clone();
    let engine =
        cellwatch_slo::runtime::run_web(cfg, ledger, &listen, e.clock, e.web, e.limits, e.me);
    tokio::select! {
        r = engine => match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(address = %listen, error = %e, "the engine stopped");
                ExitCode::FAILURE
            }
        },
        () = stop_signal() => {
            tracing::info!("shut down");
            ExitCode::SUCCESS
        }
    }
}

/// SIGTERM or Ctrl-C.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `report`: the configuration and the range (a bad range exits 2), then the report printed
/// in its format.
fn report(a: ReportArgs) -> ExitCode {
    let cfg = match load_config(&a.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let (from, to) = match range(&a.from, &a.to) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let Ok(runtime) = one_thread() else {
        return ExitCode::FAILURE;
    };
    runtime.block_on(print_report(&cfg, &a.database_url, from, to, a.format))
}

/// `--from` and `--to` as Unix seconds, the first before the second; else exit 2.
fn range(from: &str, to: &str) -> Result<(i64, i64), ExitCode> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    match (when("from", from, now), when("to", to, now)) {
        (Ok(f), Ok(t)) if f < t => Ok((f, t)),
        (Ok(_), Ok(_)) => {
            eprintln!("cellwatch-slo: --from must be before --to");
            Err(ExitCode::from(2))
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cellwatch-slo: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Builds the report of `from..to` from the ledger at `url` and prints it.
async fn print_report(
    cfg: &cellwatch_slo::config::Config,
    url: &str,
    from: i64,
    to: i64,
    format: Format,
) -> ExitCode {
    let ledger = match cellwatch_slo::ledger::Ledger::open(url).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cellwatch-slo: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cellwatch_slo::report::build(cfg, &ledger, from, to).await {
        Ok(r) => {
            print!(
                "{}",
                match format {
                    Format::Table => cellwatch_slo::report::table(&r),
                    Format::Json => cellwatch_slo::report::json(&r),
                    Format::Csv => cellwatch_slo::report::csv(&r),
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cellwatch-slo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `demo`: its flags checked (exit 2), then the demo until it ends.
fn demo(a: DemoArgs) -> ExitCode {
    if a.incident_for < std::time::Duration::from_secs(30) {
        eprintln!("cellwatch-slo: --incident-for must be at least 30s");
        return ExitCode::from(2);
    }
    if a.port > u16::MAX - 20 {
        eprintln!(
            "cellwatch-slo: --port {}: the demo needs PORT to PORT+20",
            a.port
        );
        return ExitCode::from(2);
    }
    // The demo's engine names itself (`run_with`); the name here is the spans' instance id.
    let (runtime, _me, provider) = match start_process(&a.otlp, &a.log_level) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let opts = cellwatch_slo::demo::Options {
        dir: a.dir,
        port: a.port,
        duration: a.duration,
        incident_at: a.incident_at,
        incident_for: a.incident_for,
        cable_pull_at: a
            .cable_pull_at
            .unwrap_or(a.incident_at + a.incident_for + std::time::Duration::from_secs(420)),
        smtp: a.smtp,
        mail_to: a.mail_to,
        exporter: a.exporter,
        standins: a.standins.unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../exporter/testdata/standins"
            ))
        }),
    };
    let code = match runtime.block_on(cellwatch_slo::demo::run(opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cellwatch-slo demo: {e}");
            ExitCode::FAILURE
        }
    };
    if let Some(p) = provider {
        cellwatch_slo::runtime::trace::shutdown(p);
    }
    code
}

/// `dashboards`: writes them into `out` and says how many files.
fn dashboards(out: &Path) -> ExitCode {
    match write_dashboards(out) {
        Ok(n) => {
            println!("{}: {n} files written", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cellwatch-slo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `rules` and `targets`: prints what `generate` makes of the configuration at `path`.
fn print_generated(
    path: &Path,
    generate: fn(&cellwatch_slo::config::Config) -> String,
) -> ExitCode {
    match load_config(path) {
        Ok(c) => {
            print!("{}", generate(&c));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

/// `check`: the configuration at `path`, counted.
fn check(path: &Path) -> ExitCode {
    let c = match load_config(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for w in c.warnings() {
        eprintln!("cellwatch-slo: warning: {w}");
    }
    let nodes: usize = c.cells.iter().map(|c| c.nodes.len()).sum();
    println!(
        "{}: ok: {} cells, {} nodes, {} SLOs",
        path.display(),
        c.cells.len(),
        nodes,
        c.slos.len()
    );
    ExitCode::SUCCESS
}

/// The configuration at `path`; an unusable one is told on stderr and exits 1.
fn load_config(path: &Path) -> Result<cellwatch_slo::config::Config, ExitCode> {
    cellwatch_slo::config::load(path).map_err(|e| {
        eprintln!("cellwatch-slo: {e}");
        ExitCode::FAILURE
    })
}

/// An RFC 3339 time, a duration before `now` (at most 10 years), or `now`.
fn when(what: &str, v: &str, now: i64) -> Result<i64, String> {
    use cellwatch_slo::config::MAX_DURATION;
    use cellwatch_slo::util::text::quote;
    if v == "now" {
        return Ok(now);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    match humantime::parse_duration(v) {
        Ok(d) if d <= MAX_DURATION => Ok(now - d.as_secs() as i64),
        Ok(_) | Err(humantime::DurationError::NumberOverflow) => Err(format!(
            "--{what} {}: out of range: a duration before now is at most 10 years (10y)",
            quote(v)
        )),
        Err(_) => Err(format!(
            "--{what} {}: give an RFC 3339 time (2026-11-01T00:00:00Z), a duration before now (7d) or now",
            quote(v)
        )),
    }
}

/// Writes the dashboards and provisioning files; returns how many files.
fn write_dashboards(dir: &std::path::Path) -> Result<usize, String> {
    use cellwatch_slo::generate::dashboards as d;
    let prov = dir.join("provisioning");
    std::fs::create_dir_all(&prov).map_err(|e| format!("{}: {e}", prov.display()))?;
    let mut files: Vec<(PathBuf, String)> = d::all()
        .iter()
        .map(|(name, v)| (dir.join(name), d::render(v)))
        .collect();
    files.push((prov.join("dashboards.yml"), d::PROVIDER_YAML.to_string()));
    files.push((prov.join("datasources.yml"), d::DATASOURCE_YAML.to_string()));
    for (path, text) in &files {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(files.len())
}

/// The trace settings of the flags, None without `--otlp.endpoint`; unusable ones are told
/// on stderr, naming the flag, and exit 2.
/// What the long-running commands start with: the trace flags checked (exit 2), the async
/// runtime, the engine's name, and the logs with the traces when `--otlp.endpoint` asks.
fn start_process(
    otlp: &OtlpArgs,
    log_level: &str,
) -> Result<
    (
        tokio::runtime::Runtime,
        String,
        Option<opentelemetry_sdk::trace::SdkTracerProvider>,
    ),
    ExitCode,
> {
    let settings = trace_settings(otlp)?;
    let runtime = runtime()?;
    let me = cellwatch_slo::runtime::engine_name();
    let provider = start_logs(log_level, settings.as_ref(), &runtime, &me)?;
    Ok((runtime, me, provider))
}

fn trace_settings(
    a: &OtlpArgs,
) -> Result<Option<cellwatch_slo::runtime::trace::Settings>, ExitCode> {
    let Some(endpoint) = &a.endpoint else {
        return Ok(None);
    };
    let s = cellwatch_slo::runtime::trace::Settings {
        endpoint: endpoint.clone(),
        protocol: a.protocol,
        timeout: a.timeout,
        headers: a.headers.clone(),
        sample_ratio: a.sample_ratio,
    };
    match cellwatch_slo::runtime::trace::check(&s) {
        Ok(()) => Ok(Some(s)),
        Err(e) => {
            eprintln!("cellwatch-slo: {e}");
            Err(ExitCode::from(2))
        }
    }
}

/// Logs to stderr at `level` (a tracing filter directive; a bad level exits 2) and, with
/// `otlp`, exports the engine's spans (the tracer provider is built within `runtime` and
/// returned, to be shut down at the end).
fn start_logs(
    level: &str,
    otlp: Option<&cellwatch_slo::runtime::trace::Settings>,
    runtime: &tokio::runtime::Runtime,
    me: &str,
) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, ExitCode> {
    use cellwatch_slo::runtime::trace;
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| {
        eprintln!("cellwatch-slo: --log.level {level:?}: {e}");
        ExitCode::from(2)
    })?;
    let provider = match otlp {
        None => None,
        Some(s) => {
            let _in_runtime = runtime.enter();
            Some(trace::provider(s, me).map_err(|e| {
                eprintln!("cellwatch-slo: {e}");
                ExitCode::FAILURE
            })?)
        }
    };
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_filter(trace::log_filter(filter));
    let registry = tracing_subscriber::registry().with(logs);
    match &provider {
        Some(p) => registry.with(trace::layer(p)).init(),
        None => registry.init(),
    }
    Ok(provider)
}

/// A `--otlp.header`: KEY=VALUE.
fn header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

/// A `--otlp.sample-ratio`: 0 to 1.
fn ratio(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        _ => Err(format!(
            "{s}: give a number from 0 to 1 (0.1 traces one in ten)"
        )),
    }
}

/// A listener timeout: 100ms to 1h.
fn web_duration(s: &str) -> Result<std::time::Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 500ms, 10s, 2m)"))?;
    if !(std::time::Duration::from_millis(100)..=std::time::Duration::from_secs(3600)).contains(&d)
    {
        return Err(format!("{s}: outside 100ms..=1h"));
    }
    Ok(d)
}

/// A runtime on this thread (`report`, `backtest`); an error is told on stderr.
fn one_thread() -> Result<tokio::runtime::Runtime, ()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| eprintln!("cellwatch-slo: cannot start the async runtime: {e}"))
}

/// The two-worker runtime `run` and `demo` use.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cellwatch-slo: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        })
}
