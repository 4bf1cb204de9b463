//! What one reading of one node's exporter says about its health: links, RDMA, power, restart
//! counters and latency histograms (summed over models).

use std::collections::BTreeMap;

/// One node's health series at one reading.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeSnapshot {
    /// Its links (`cellwatch_link_info`, with state, speed and errors).
    pub links: Vec<LinkObs>,
    /// RDMA devices and whether a port is active (`cellwatch_rdma_port_active`).
    pub rdma_active: BTreeMap<String, bool>,
    /// RDMA enabled (`cellwatch_rdma_enabled`), when reported.
    pub rdma_enabled: Option<bool>,
    /// Whole-node power, watts (the rule of the energy counters: smc, else soc; rapl plus
    /// nvidia), when reported.
    pub power_watts: Option<f64>,
    /// Restart counters: (`inference`, server) and (`collector`, collector).
    pub restarts: BTreeMap<(&'static str, String), f64>,
    /// Request latency histogram: (bucket bound, cumulative count), summed over models.
    pub latency: Vec<(f64, f64)>,
    /// Time-to-first-token histogram, likewise.
    pub ttft: Vec<(f64, f64)>,
}

/// One link as a node's exporter reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinkObs {
    /// The `link` label (interface, or DEVICE/PORT on Linux).
    pub link: String,
    /// A device is connected (`cellwatch_link_up`), when reported.
    pub up: Option<bool>,
    /// Negotiated speed, bytes per second, when reported.
    pub speed: Option<f64>,
    /// Its RDMA device (empty when none).
    pub rdma_device: String,
    /// The attached device's name (empty when none or unknown).
    pub peer: String,
    /// The local bus' domain UUID (empty when unknown).
    pub domain: String,
    /// The attached device's domain UUID (empty when none or unknown).
    pub peer_domain: String,
    /// Interface errors, received plus transmitted (a counter).
    pub errors: f64,
}

impl NodeSnapshot {
    /// The link named `port`.
    pub fn link(&self, port: &str) -> Option<&LinkObs> {
        self.links.iter().find(|l| l.link == port)
    }

    /// The link whose attached device is `peer`, as `peer_domains` (the peer node's own bus
    /// domains) or, failing that, its name tell.
    pub fn link_to(&self, peer: &str, peer_domains: &[&str]) -> Option<&LinkObs> {
        self.links
            .iter()
            .find(|l| !l.peer_domain.is_empty() && peer_domains.contains(&l.peer_domain.as_str()))
            .or_else(|| {
                self.links
                    .iter()
                    .find(|l| !l.peer.is_empty() && l.peer.eq_ignore_ascii_case(peer))
            })
    }

    /// The node's own bus domains.
    pub fn domains(&self) -> Vec<&str> {
        self.links
            .iter()
            .filter(|l| !l.domain.is_empty())
            .map(|l| l.domain.as_str())
            .collect()
    }

    /// Whether RDMA is active on `link`: its RDMA device has an active port and RDMA is not
    /// disabled; `None` when nothing about RDMA is reported.
    pub fn rdma_on(&self, link: &LinkObs) -> Option<bool> {
        if self.rdma_enabled == Some(false) {
            return Some(false);
        }
        if link.rdma_device.is_empty() {
            return if self.rdma_active.is_empty() && self.rdma_enabled.is_none() {
                None
            } else {
                Some(false)
            };
        }
        Some(
            self.rdma_active
                .get(&link.rdma_device)
                .copied()
                .unwrap_or(false),
        )
    }
}

/// The `q` quantile of a cumulative histogram (bucket bound, count), interpolated linearly in
/// its bucket as Prometheus' `histogram_quantile` does; `None` without observations.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let total = b.last().filter(|l| l.0.is_infinite()).map(|l| l.1)?;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in &b {
        if count >= rank {
            if le.is_infinite() {
                // Above the highest finite bound: that bound, as Prometheus answers.
                return Some(prev.0);
            }
            let width = count - prev.1;
            let frac = if width > 0.0 {
                (rank - prev.1) / width
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_in_the_bucket() {
        let h = [
            (0.5, 50.0),
            (1.0, 90.0),
            (2.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &h), Some(0.5));
        // 95th of 100: rank 95, in (1, 2] holding 10: 1 + 0.5.
        assert!((quantile(0.95, &h).unwrap() - 1.5).abs() < 1e-12);
        assert_eq!(quantile(0.95, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
        assert_eq!(
            quantile(0.95, &[(1.0, 1.0), (f64::INFINITY, 10.0)]),
            Some(1.0)
        );
    }

    #[test]
    fn links_match_peers_by_domain_then_name() {
        let link = |l: &str, peer: &str, pd: &str| LinkObs {
            link: l.into(),
            peer: peer.into(),
            peer_domain: pd.into(),
            ..Default::default()
        };
        let s = NodeSnapshot {
            links: vec![
                link("en2", "Mac Studio", "d-b"),
                link("en3", "studio-c", ""),
            ],
            ..Default::default()
        };
        assert_eq!(s.link_to("studio-b", &["d-b"]).unwrap().link, "en2");
        assert_eq!(s.link_to("STUDIO-C", &[]).unwrap().link, "en3");
        assert!(s.link_to("studio-d", &["d-x"]).is_none());
    }
}
