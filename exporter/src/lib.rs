//! cellwatch-exporter: Prometheus metrics for the nodes of an LLM inference cell.
//!
//! On macOS the collectors run the commands the OS ships (`powermetrics`, `vm_stat`, `sysctl`,
//! `netstat`, `networksetup`, `system_profiler`, `ibv_devinfo`, `rdma_ctl`) and parse their
//! output, so everything builds, runs and is tested on Linux with stand-in commands on `PATH`.

pub mod adapter;
pub mod collector;
pub mod command;
pub mod config;
pub mod counter;
pub mod group;
pub mod node;
pub mod otlp;
pub mod parse;
pub mod proxy;
pub mod replay;
pub mod server;
pub mod store;
pub mod supervisor;

// Shared with the engine; at their old paths.
pub use cellwatch_http::{file, text, tls, web};
