//! The drain decision: whether a load balancer should send a cell traffic, and why not.

use super::status::{CellHealth, DrainReason};

/// What the drain decision reads besides the cell's health.
#[derive(Debug, Clone, Default)]
pub struct DrainFacts {
    /// No exporter of the cell answers.
    pub down: bool,
    /// The maintenance window the cell is in, if any.
    pub maintenance: Option<String>,
    /// SLOs whose budget is spent and that still burn (burn rate over 1 in the shortest
    /// judged window).
    pub exhausted_burning: Vec<String>,
}

/// Why the cell should be drained now; empty: it should take traffic. In order: down, mesh
/// split, over its power cap, a flapping link, a spent budget still burning, maintenance.
pub fn drain(facts: &DrainFacts, health: &CellHealth) -> Vec<DrainReason> {
    let mut out = Vec::new();
    let mut say = |reason: &'static str, detail: String| out.push(DrainReason { reason, detail });
    if facts.down {
        say("down", "no exporter of the cell answers".into());
    }
    if !health.unreachable.is_empty() {
        say(
            "mesh_split",
            format!(
                "{} cannot be reached over the cell's links",
                health.unreachable.join(", ")
            ),
        );
    }
    if let (Some(p), Some(c)) = (health.power_watts, health.power_cap_watts)
        && p > c
    {
        say(
            "over_power_cap",
            format!("{p:.0} W over the cap of {c:.0} W"),
        );
    }
    for l in health.links.iter().filter(|l| l.flapping) {
        say(
            "flapping",
            format!(
                "link {} – {} changed state {} times",
                l.node, l.peer, l.transitions
            ),
        );
    }
    for slo in &facts.exhausted_burning {
        say(
            "budget_exhausted",
            format!("the {slo} error budget is spent and still burning"),
        );
    }
    if let Some(m) = &facts.maintenance {
        say("maintenance", format!("in maintenance window {m}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_in_order_and_none_when_healthy() {
        let healthy = CellHealth {
            power_watts: Some(900.0),
            power_cap_watts: Some(1000.0),
            ..Default::default()
        };
        assert!(drain(&DrainFacts::default(), &healthy).is_empty());
        let bad = CellHealth {
            power_watts: Some(1100.0),
            unreachable: vec!["studio-a-4".into()],
            ..healthy
        };
        let facts = DrainFacts {
            down: false,
            maintenance: Some("firmware".into()),
            exhausted_burning: vec!["availability".into()],
        };
        let r: Vec<&str> = drain(&facts, &bad).iter().map(|r| r.reason).collect();
        assert_eq!(
            r,
            [
                "mesh_split",
                "over_power_cap",
                "budget_exhausted",
                "maintenance"
            ]
        );
        assert_eq!(
            drain(&facts, &bad)[1].detail,
            "1100 W over the cap of 1000 W"
        );
    }
}
