//! The `cellwatch-slo` binary.

use std::path::PathBuf;
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
    Run {
        /// The configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The ledger: sqlite://FILE (created on first start) or postgres://USER@HOST/DB.
        #[arg(long = "database-url", value_name = "URL", default_value = cellwatch_slo::ledger::DEFAULT_URL)]
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
        /// For tests: a file of seconds added to the clock, read at every tick.
        #[arg(long = "testing.clock-offset-file", value_name = "FILE", hide = true)]
        clock_offset_file: Option<PathBuf>,
    },
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
    Report {
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
    },
    /// Validate a configuration file; errors name the file, line and field. Exits 1 when the
    /// file is not usable.
    Check {
        /// The configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
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

/// An RFC 3339 time, a duration before `now`, or `now`.
fn when(what: &str, v: &str, now: i64) -> Result<i64, String> {
    if v == "now" {
        return Ok(now);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(t.timestamp());
    }
    humantime::parse_duration(v)
        .map(|d| now - d.as_secs() as i64)
        .map_err(|_| format!("--{what} {v:?}: give an RFC 3339 time (2026-11-01T00:00:00Z), a duration before now (7d) or now"))
}

fn report(config: &std::path::Path, url: &str, from: &str, to: &str, format: Format) -> ExitCode {
    let cfg = match cellwatch_slo::config::load(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cellwatch-slo: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (from, to) = match (when("from", from, now), when("to", to, now)) {
        (Ok(f), Ok(t)) if f < t => (f, t),
        (Ok(_), Ok(_)) => {
            eprintln!("cellwatch-slo: --from must be before --to");
            return ExitCode::from(2);
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("cellwatch-slo: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cellwatch-slo: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let ledger = match cellwatch_slo::ledger::Ledger::open(url).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("cellwatch-slo: {e}");
                return ExitCode::FAILURE;
            }
        };
        match cellwatch_slo::report::build(&cfg, &ledger, from, to).await {
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
    })
}

fn print_generated(
    path: &std::path::Path,
    generate: fn(&cellwatch_slo::config::Config) -> String,
) -> ExitCode {
    match cellwatch_slo::config::load(path) {
        Ok(c) => {
            print!("{}", generate(&c));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cellwatch-slo: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the dashboards and provisioning files; returns how many files.
fn write_dashboards(dir: &std::path::Path) -> Result<usize, String> {
    use cellwatch_slo::dashboards as d;
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

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run {
            config,
            database_url,
            listen_address,
            log_level,
            clock_offset_file,
        } => {
            let filter = match tracing_subscriber::EnvFilter::try_new(&log_level) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("cellwatch-slo: --log.level {log_level:?}: {e}");
                    return ExitCode::from(2);
                }
            };
            tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(false)
                .init();
            let cfg = match cellwatch_slo::config::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cellwatch-slo: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let listen = match listen_address.strip_prefix(':') {
                Some(port) => format!("0.0.0.0:{port}"),
                None => listen_address,
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("cellwatch-slo: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            runtime.block_on(async move {
                let ledger = match cellwatch_slo::ledger::Ledger::open(&database_url).await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the ledger");
                        return ExitCode::FAILURE;
                    }
                };
                let clock = cellwatch_slo::engine::Clock {
                    offset_file: clock_offset_file,
                };
                match cellwatch_slo::engine::run_with(cfg, ledger, &listen, clock).await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        tracing::error!(address = %listen, error = %e, "the engine stopped");
                        ExitCode::FAILURE
                    }
                }
            })
        }
        Command::Report {
            config,
            database_url,
            from,
            to,
            format,
        } => report(&config, &database_url, &from, &to, format),
        Command::Dashboards { out } => match write_dashboards(&out) {
            Ok(n) => {
                println!("{}: {n} files written", out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cellwatch-slo: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Rules { config } => print_generated(&config, cellwatch_slo::rules::rules),
        Command::Targets { config } => print_generated(&config, cellwatch_slo::rules::targets),
        Command::Check { config } => match cellwatch_slo::config::load(&config) {
            Ok(c) => {
                let nodes: usize = c.cells.iter().map(|c| c.nodes.len()).sum();
                println!(
                    "{}: ok: {} cells, {} nodes, {} SLOs",
                    config.display(),
                    c.cells.len(),
                    nodes,
                    c.slos.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("cellwatch-slo: {e}");
                ExitCode::FAILURE
            }
        },
    }
}
