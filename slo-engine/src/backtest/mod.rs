//! `cellwatch-slo backtest`: a history replayed through the real ledger, evaluation and alert
//! state machine in virtual time, and what would have fired.

pub mod openmetrics;
mod render;
mod replay;
mod result;
mod run;
mod scenario;
mod skip;

pub use openmetrics::HistoryError;
pub use render::{html, json, table};
pub use replay::*;
pub use result::*;
pub use run::*;
pub use scenario::{MONTH, SCENARIOS, Scenario, scenario, with_period};
