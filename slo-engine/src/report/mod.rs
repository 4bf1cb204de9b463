//! Budget reports for any range (`cellwatch-slo report`): per cell and SLO the good and total
//! events (or judged slices), the SLI and the share of the range's error budget used, beside
//! the cell's tokens/kWh and kWh per 1,000 requests; as a table, JSON or CSV.

mod build;
mod format;

pub use build::*;
pub use format::*;
