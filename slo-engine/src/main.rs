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
    /// Validate a configuration file; errors name the file, line and field. Exits 1 when the
    /// file is not usable.
    Check {
        /// The configuration file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
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
