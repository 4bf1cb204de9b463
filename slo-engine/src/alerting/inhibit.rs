//! Inhibition: a burn-rate page of a cell and SLO inhibits its ticket; CellDown inhibits every other
//! alert of the cell; a mesh split inhibits the cell's link tickets; a flapping link inhibits
//! its own unhealthy ticket.

use crate::model::{Labels, names};

/// Whether an alert is inhibited by another active one: a page inhibits the ticket of the same
/// cell and SLO; a cell-down page inhibits every other alert of its cell.
pub fn inhibited(target: &Labels, firing: &[&Labels]) -> bool {
    let get = |l: &Labels, k: &str| l.get(k).cloned().unwrap_or_default();
    firing.iter().any(|src| {
        if *src == target {
            return false;
        }
        let same_cell = get(src, "cell") == get(target, "cell");
        let (from, to) = (get(src, "alertname"), get(target, "alertname"));
        let link_ticket = to == names::LINK_UNHEALTHY || to == names::LINK_FLAPPING;
        let same_link =
            get(src, "node") == get(target, "node") && get(src, "peer") == get(target, "peer");
        (from == names::MESH_SPLIT && link_ticket && same_cell)
            || (from == names::LINK_FLAPPING
                && to == names::LINK_UNHEALTHY
                && same_cell
                && same_link)
            || (get(src, "alertname") == names::CELL_DOWN && same_cell)
            || (get(src, "alertname") == names::BURN
                && get(src, "severity") == "page"
                && get(target, "severity") == "ticket"
                && same_cell
                && get(src, "slo") == get(target, "slo")
                && get(target, "alertname") == names::BURN)
    })
}
