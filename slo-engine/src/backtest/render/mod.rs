//! A backtest's renderings: a terminal table, JSON and a self-contained HTML page with a
//! budget-and-burn plot per cell and SLO. Pure functions of the result, one or several
//! configurations replayed on the same history (compared side by side).

#[cfg(test)]
mod fixture;
mod html;
mod json;
mod rows;
mod svg;
mod table;

pub use html::html;
pub use json::json;
pub use table::table;
