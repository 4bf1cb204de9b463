//! A simulated Thunderbolt 5 cabling of a cell: what `system_profiler SPThunderboltDataType
//! -json`, `networksetup -listallhardwareports`, `ibv_devinfo` and `rdma_ctl status` print on
//! each node, as steering files for the stand-in commands. The demo pulls a cable with it; the
//! end-to-end tests pull, slow down, strip RDMA and cut off nodes.
//!
//! Node i's receptacle towards node j is the position of j among the other nodes, plus one:
//! `Thunderbolt r` is interface `en{r+1}` and RDMA device `rdma_en{r+1}`. Each receptacle's bus
//! has its own domain UUID, which the peer's `_items` names, as on real Macs.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One cable between two nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cable {
    /// Plugged in.
    pub connected: bool,
    /// Negotiated speed, Gb/s.
    pub gbps: u32,
    /// RDMA port active on both ends.
    pub rdma: bool,
}

impl Cable {
    /// A TB5 cable at 80 Gb/s with RDMA.
    pub const GOOD: Cable = Cable {
        connected: true,
        gbps: 80,
        rdma: true,
    };
}

/// A cell's cabling.
#[derive(Debug, Clone)]
pub struct Cabling {
    nodes: Vec<String>,
    cables: BTreeMap<(usize, usize), Cable>,
}

impl Cabling {
    /// A full mesh of good cables between `nodes`.
    pub fn mesh(nodes: &[String]) -> Cabling {
        let mut cables = BTreeMap::new();
        for i in 0..nodes.len() {
            for j in i + 1..nodes.len() {
                cables.insert((i, j), Cable::GOOD);
            }
        }
        Cabling {
            nodes: nodes.to_vec(),
            cables,
        }
    }

    /// Sets the cable between nodes `a` and `b` (indexes).
    pub fn set(&mut self, a: usize, b: usize, cable: Cable) {
        self.cables.insert((a.min(b), a.max(b)), cable);
    }

    fn cable(&self, a: usize, b: usize) -> Option<Cable> {
        self.cables.get(&(a.min(b), a.max(b))).copied()
    }

    /// Node `i`'s receptacle (1-based) towards node `j`.
    pub fn receptacle(&self, i: usize, j: usize) -> usize {
        (0..self.nodes.len())
            .filter(|k| *k != i)
            .position(|k| k == j)
            .unwrap_or(0)
            + 1
    }

    /// Node `i`'s interface towards node `j` (`en{r+1}`).
    pub fn port(&self, i: usize, j: usize) -> String {
        format!("en{}", self.receptacle(i, j) + 1)
    }

    fn domain(i: usize, r: usize) -> String {
        format!("{:08X}-{r:04X}-4000-8000-000000000000", i + 1)
    }

    /// `system_profiler SPThunderboltDataType -json` on node `i`.
    pub fn system_profiler(&self, i: usize) -> String {
        let mut buses = Vec::new();
        for j in (0..self.nodes.len()).filter(|j| *j != i) {
            let r = self.receptacle(i, j);
            let c = self.cable(i, j).filter(|c| c.connected);
            let mut bus = serde_json::json!({
                "_name": format!("thunderboltusb4_bus_{}", r - 1),
                "device_name_key": "Mac Studio",
                "domain_uuid_key": Self::domain(i, r),
                "vendor_name_key": "Apple Inc.",
                "receptacle_1_tag": {
                    "current_speed_key": c.map_or("Up to 120 Gb/s".to_string(), |c| format!("{} Gb/s", c.gbps)),
                    "receptacle_id_key": r.to_string(),
                    "receptacle_status_key": if c.is_some() { "receptacle_connected" } else { "receptacle_no_devices_connected" },
                },
            });
            if c.is_some() {
                bus["_items"] = serde_json::json!([{
                    "_name": self.nodes[j],
                    "device_name_key": "Mac15,14",
                    "domain_uuid_key": Self::domain(j, self.receptacle(j, i)),
                }]);
            }
            buses.push(bus);
        }
        serde_json::json!({ "SPThunderboltDataType": buses }).to_string()
    }

    /// `networksetup -listallhardwareports` on node `i`.
    pub fn networksetup(&self, i: usize) -> String {
        let mut out = String::from(
            "\nHardware Port: Ethernet\nDevice: en0\nEthernet Address: 36:a1:02:b7:4c:10\n\n\
             Hardware Port: Thunderbolt Bridge\nDevice: bridge0\nEthernet Address: 36:a1:02:b7:4c:00\n",
        );
        for r in 1..self.nodes.len() {
            let _ = write!(
                out,
                "\nHardware Port: Thunderbolt {r}\nDevice: en{}\nEthernet Address: 36:a1:02:b7:{i:02x}:{r:02x}\n",
                r + 1
            );
        }
        out.push_str("\nVLAN Configurations\n===================\n");
        out
    }

    /// `ibv_devinfo` on node `i`.
    pub fn ibv_devinfo(&self, i: usize) -> String {
        let mut out = String::new();
        for j in (0..self.nodes.len()).filter(|j| *j != i) {
            let r = self.receptacle(i, j);
            let active = self.cable(i, j).is_some_and(|c| c.connected && c.rdma);
            let _ = write!(
                out,
                "hca_id:\trdma_en{}\n\ttransport:\t\t\tThunderbolt (100)\n\tnode_guid:\t\t\t0000:0000:00{i:02x}:00{r:02x}\n\
                 \tsys_image_guid:\t\t\t0000:0000:00{i:02x}:0000\n\tphys_port_cnt:\t\t\t1\n\t\tport:\t1\n\
                 \t\t\tstate:\t\t\t{}\n\t\t\tmax_mtu:\t\t4096 (5)\n\t\t\tactive_mtu:\t\t4096 (5)\n\t\t\tlink_layer:\t\tThunderbolt\n\n",
                r + 1,
                if active {
                    "PORT_ACTIVE (4)"
                } else {
                    "PORT_DOWN (1)"
                }
            );
        }
        out
    }

    /// Writes node `i`'s steering files (`*.out`) into its stand-ins' state directory, each
    /// atomically.
    pub fn write(&self, i: usize, state: &Path) -> std::io::Result<()> {
        let files = [
            ("system_profiler.out", self.system_profiler(i)),
            ("networksetup.out", self.networksetup(i)),
            ("ibv_devinfo.out", self.ibv_devinfo(i)),
            ("rdma_ctl.out", "enabled\n".to_string()),
        ];
        for (name, text) in files {
            let tmp = state.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, state.join(name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_sees_its_peers_domains() {
        let names: Vec<String> = (1..=4).map(|i| format!("s{i}")).collect();
        let mut c = Cabling::mesh(&names);
        c.set(
            0,
            1,
            Cable {
                gbps: 40,
                ..Cable::GOOD
            },
        );
        c.set(
            2,
            3,
            Cable {
                connected: false,
                ..Cable::GOOD
            },
        );
        let sp: serde_json::Value = serde_json::from_str(&c.system_profiler(0)).unwrap();
        let buses = sp["SPThunderboltDataType"].as_array().unwrap();
        assert_eq!(buses.len(), 3);
        // s1's receptacle 1 leads to s2, whose receptacle 1 leads back.
        assert_eq!(buses[0]["_items"][0]["_name"], "s2");
        assert_eq!(buses[0]["receptacle_1_tag"]["current_speed_key"], "40 Gb/s");
        let s2: serde_json::Value = serde_json::from_str(&c.system_profiler(1)).unwrap();
        assert_eq!(
            buses[0]["_items"][0]["domain_uuid_key"],
            s2["SPThunderboltDataType"][0]["domain_uuid_key"]
        );
        assert_eq!(c.port(2, 3), "en4");
        let s3: serde_json::Value = serde_json::from_str(&c.system_profiler(2)).unwrap();
        assert!(s3["SPThunderboltDataType"][2].get("_items").is_none());
        assert!(c.ibv_devinfo(3).contains("rdma_en4\n"));
        assert_eq!(c.ibv_devinfo(3).matches("PORT_DOWN").count(), 1);
        assert_eq!(
            c.networksetup(1)
                .matches("Hardware Port: Thunderbolt")
                .count(),
            4
        );
    }
}
