//! `cellwatch-slo backtest`: a history replayed through the real ledger, evaluation and alert
//! state machine in virtual time, and what would have fired.

mod render;
mod replay;
mod result;
mod skip;

pub use render::{html, json, table};
pub use replay::*;
pub use result::*;
