//! `cellwatch-slo backtest`: a history replayed through the real ledger, evaluation and alert
//! state machine in virtual time, and what would have fired.

pub mod openmetrics;
mod result;
mod scenario;

pub use openmetrics::HistoryError;
pub use result::*;
pub use scenario::{SCENARIOS, Scenario, scenario};
