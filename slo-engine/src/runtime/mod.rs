//! `cellwatch-slo run`: the clock, the leader lease, the leader's tick (read the source, evaluate,
//! step the alerts, serve), the delivery loop.

mod deliver;
mod leader;
mod lease;

pub use crate::util::time::Clock;
use deliver::*;
pub use leader::*;
use lease::*;
