//! Cell health beyond latency, pure: what the nodes' link, power and restart series say about a
//! cell (expected links matched to ports, link state, mesh splits, power against the cap,
//! restart loops), kept over time for flaps and loops, and the drain decision.
//!
//! How a link's peer is known: on macOS the exporter's `cellwatch_link_info` carries the
//! Thunderbolt bus' own domain UUID (`domain`) and the attached device's (`peer_domain`, from
//! `system_profiler SPThunderboltDataType`); a node's link leads to the peer node whose own
//! domains include it, else to the node named like the attached device (`peer`, the Mac's
//! computer name). Once matched, the port is kept, so a pulled cable (no peer any more) is
//! that link down. On Linux, sysfs does not know the peer: name the ports in the topology
//! (`[gpu-1:mlx5_0/1, gpu-2:mlx5_0/1]`); an expected link whose port is never found is down.

mod drain;
mod links;
mod snapshot;
mod status;
mod tracker;

pub use drain::*;
pub use snapshot::*;
pub use status::*;
pub use tracker::*;

#[cfg(test)]
mod tests;
