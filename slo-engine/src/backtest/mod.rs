//! `cellwatch-slo backtest`: a history replayed through the real ledger, evaluation and alert
//! state machine in virtual time, and what would have fired.

mod replay;
mod result;

pub use replay::*;
pub use result::*;
