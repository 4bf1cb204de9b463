//! Cell health beyond latency, pure: what the nodes' link, power and restart series say about a
//! cell (expected links matched to ports, link state, mesh splits, power against the cap,
//! restart loops), kept over time for flaps and loops, and the drain decision.

mod status;

pub use status::*;
