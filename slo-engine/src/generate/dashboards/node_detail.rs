//! `node-detail`: one or more nodes of a cell: power by component and whole node, discrete GPUs,
//! memory, Thunderbolt 5 / RDMA or InfiniBand/RoCE links, inference and collector health.

use cellwatch_metrics as m;
use serde_json::{Value, json};

use super::board::{Board, Kind, q, series};
use super::promql::{link_state_code, quantile};
use super::tune::{link_states, tx_negative, unit_min0, up_down};
use super::variables::{v_cell, v_datasource, v_node};

/// The dashboard (uid `cellwatch-node`), row by row.
pub(super) fn dashboard() -> Value {
    let s = "cell=\"$cell\",node=~\"$node\"";
    let mut b = Board::new();
    power(&mut b, s);
    discrete_gpus(&mut b, s);
    unified_memory(&mut b, s);
    links(&mut b, s);
    inference(&mut b, s);
    collectors(&mut b, s);
    b.finish(
        "cellwatch-node",
        "cellwatch / Node detail",
        "One or more nodes of a cell: power by component and whole node, discrete GPUs, memory, Thunderbolt 5 / RDMA or InfiniBand/RoCE links, inference and collector health.",
        vec![v_datasource(), v_cell(false), v_node()],
        "now-1h",
    )
}

/// Power: by component and whole node, then clocks and thermal pressure.
fn power(b: &mut Board, s: &str) {
    b.row("Power");
    power_draw(b, s);
    clocks_and_thermal(b, s);
}

/// Power by component and whole-node power.
fn power_draw(b: &mut Board, s: &str) {
    b.panel(
        Kind::Stacked,
        "Power by component",
        "CPU, GPU and ANE power (powermetrics), DRAM power (macmon), per node.",
        "watt",
        8,
        8,
        vec![series(&m::POWER_WATTS, s, "{{node}} {{component}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Whole-node power",
        "source=smc: the whole system from the SMC (macmon); source=soc: CPU + GPU + ANE (powermetrics); Linux: source=rapl (CPU packages and DRAM) and source=nvidia (GPUs), to add up.",
        "watt",
        8,
        8,
        vec![series(&m::NODE_POWER_WATTS, s, "{{node}} {{source}}")],
        unit_min0,
    );
}

/// GPU and CPU cluster frequencies, thermal pressure.
fn clocks_and_thermal(b: &mut Board, s: &str) {
    b.panel(
        Kind::Timeseries,
        "GPU frequency and activity",
        "GPU active frequency, and the share of time the GPU was active.",
        "hertz",
        8,
        8,
        vec![
            series(&m::GPU_FREQUENCY, s, "{{node}} frequency"),
            series(&m::GPU_ACTIVE, s, "{{node}} active"),
        ],
        |p| {
            p["fieldConfig"]["overrides"] = json!([{
                "matcher": { "id": "byRegexp", "options": "/.*active/" },
                "properties": [
                    { "id": "unit", "value": "percentunit" },
                    { "id": "custom.axisPlacement", "value": "right" },
                ],
            }]);
        },
    );
    b.panel(
        Kind::Timeseries,
        "CPU cluster frequency",
        "Active frequency of each CPU cluster.",
        "hertz",
        12,
        7,
        vec![series(&m::CPU_CLUSTER_FREQUENCY, s, "{{node}} {{cluster}}")],
        unit_min0,
    );
    b.panel(
        Kind::StateTimeline,
        "Thermal pressure",
        "0 nominal, 1 moderate, 2 heavy, 3 critical.",
        "none",
        12,
        7,
        vec![series(&m::THERMAL_PRESSURE, s, "{{node}}")],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "nominal", "color": "green", "index": 0 },
                "1": { "text": "moderate", "color": "yellow", "index": 1 },
                "2": { "text": "heavy", "color": "orange", "index": 2 },
                "3": { "text": "critical", "color": "red", "index": 3 },
            } }]);
        },
    );
}

/// NVIDIA GPUs of Linux nodes: memory and utilisation.
fn discrete_gpus(b: &mut Board, s: &str) {
    b.row("Discrete GPUs (Linux nodes)");
    b.panel(
        Kind::Timeseries,
        "GPU memory used and installed",
        "Memory in use and installed per NVIDIA GPU (nvidia-smi).",
        "bytes",
        12,
        7,
        vec![
            series(&m::GPU_MEMORY_USED, s, "{{node}} gpu{{gpu}} used"),
            series(&m::GPU_MEMORY_TOTAL, s, "{{node}} gpu{{gpu}} installed"),
        ],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "GPU utilisation",
        "Share of the sample period a kernel ran, per NVIDIA GPU.",
        "percentunit",
        12,
        7,
        vec![series(&m::GPU_UTILIZATION, s, "{{node}} gpu{{gpu}}")],
        |p| {
            p["fieldConfig"]["defaults"]["min"] = json!(0);
            p["fieldConfig"]["defaults"]["max"] = json!(1);
        },
    );
}

/// Unified memory: by state, totals, pressure.
fn unified_memory(b: &mut Board, s: &str) {
    b.row("Unified memory");
    b.panel(
        Kind::Stacked,
        "Memory by state",
        "App, wired, compressed, cached and free memory (vm_stat pages × page size).",
        "bytes",
        8,
        8,
        vec![series(&m::MEMORY_BYTES, s, "{{node}} {{state}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Used, total, swap and GPU wired limit",
        "Memory used as Activity Monitor shows it, memory installed, swap in use, and the GPU wired limit (0: the macOS default policy).",
        "bytes",
        8,
        8,
        vec![
            series(&m::MEMORY_USED, s, "{{node}} used"),
            series(&m::MEMORY_TOTAL, s, "{{node}} total"),
            series(&m::MEMORY_SWAP_USED, s, "{{node}} swap"),
            series(&m::GPU_WIRED_LIMIT, s, "{{node}} GPU wired limit"),
        ],
        unit_min0,
    );
    b.panel(
        Kind::StateTimeline,
        "Memory pressure",
        "0 normal, 1 warning, 2 critical.",
        "none",
        8,
        8,
        vec![series(&m::MEMORY_PRESSURE, s, "{{node}}")],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "normal", "color": "green", "index": 0 },
                "1": { "text": "warning", "color": "orange", "index": 1 },
                "2": { "text": "critical", "color": "red", "index": 2 },
            } }]);
        },
    );
}

/// Thunderbolt 5 / RDMA links: traffic, then link and RDMA state.
fn links(b: &mut Board, s: &str) {
    b.row("Thunderbolt 5 / RDMA links");
    link_traffic(b, s);
    link_state(b, s);
}

/// Link throughput, errors and speed.
fn link_traffic(b: &mut Board, s: &str) {
    b.panel(
        Kind::Timeseries,
        "Link throughput (rx up, tx down)",
        "Bytes per second on each Thunderbolt network interface.",
        "Bps",
        8,
        8,
        vec![
            q(
                format!(
                    "rate({}{{{s}}}[$__rate_interval])",
                    m::LINK_RECEIVED_BYTES.name
                ),
                "{{node}} {{link}} rx",
            ),
            q(
                format!(
                    "rate({}{{{s}}}[$__rate_interval])",
                    m::LINK_TRANSMITTED_BYTES.name
                ),
                "{{node}} {{link}} tx",
            ),
        ],
        tx_negative,
    );
    b.panel(
        Kind::Timeseries,
        "Link errors",
        "Interface errors per second by direction.",
        "cps",
        8,
        8,
        vec![q(
            format!("rate({}{{{s}}}[$__rate_interval])", m::LINK_ERRORS.name),
            "{{node}} {{link}} {{direction}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Link speed",
        "Negotiated Thunderbolt link speed, while a device is connected.",
        "Bps",
        8,
        8,
        vec![series(&m::LINK_SPEED, s, "{{node}} {{link}}")],
        unit_min0,
    );
}

/// Link up per link (with its peer), RDMA port active and enabled, and the expected links as
/// cellwatch-slo judges them.
fn link_state(b: &mut Board, s: &str) {
    b.panel(
        Kind::StateTimeline,
        "Link state",
        "Link up (a device connected) per interface, with the peer it reports (cellwatch_link_info; none when unknown).",
        "none",
        8,
        8,
        vec![q(link_up_with_peer(s), "{{node}} {{link}} → {{peer}}")],
        up_down,
    );
    b.panel(
        Kind::StateTimeline,
        "RDMA state",
        "RDMA port active (PORT_ACTIVE) per device, and RDMA enabled (rdma_ctl).",
        "none",
        8,
        8,
        vec![
            series(&m::RDMA_PORT_ACTIVE, s, "{{node}} {{device}} RDMA port"),
            series(&m::RDMA_ENABLED, s, "{{node}} RDMA enabled"),
        ],
        up_down,
    );
    // The node's expected links, listed under either end.
    let cell = "cell=\"$cell\"";
    b.panel(
        Kind::StateTimeline,
        "Expected links (cellwatch-slo)",
        "The node's links of the cell's topology as cellwatch-slo judges them (cellwatch_cell_link_state): up, slow, no RDMA, errors or down. No rows without a topology.",
        "none",
        8,
        8,
        vec![q(
            format!(
                "{}\nor\n{}",
                link_state_code(&format!("{cell},node=~\"$node\""), "node, peer"),
                link_state_code(&format!("{cell},peer=~\"$node\""), "node, peer")
            ),
            "{{node}} – {{peer}}",
        )],
        link_states,
    );
}

/// `cellwatch_link_up` per link with the `peer` of its `cellwatch_link_info`; links without an
/// info series keep their own labels.
fn link_up_with_peer(s: &str) -> String {
    let up = format!("{}{{{s}}}", m::LINK_UP.name);
    format!(
        "{up}\n  * on (cell, node, link) group_left (peer)\n  max by (cell, node, link, peer) ({}{{{s}}})\nor on (cell, node, link)\n{up}",
        m::LINK_INFO.name
    )
}

/// Inference per node: requests, tokens and in flight, latency.
fn inference(b: &mut Board, s: &str) {
    b.row("Inference");
    b.panel(
        Kind::Timeseries,
        "Requests by outcome",
        "Finished requests per second on each node.",
        "reqps",
        8,
        8,
        vec![q(
            format!(
                "sum by (node, outcome) (rate({}{{{s}}}[$__rate_interval]))",
                m::INFERENCE_REQUESTS.name
            ),
            "{{node}} {{outcome}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Tokens per second and in flight",
        "Generated tokens per second, and requests in flight, per node.",
        "suffix: tok/s",
        8,
        8,
        vec![
            q(
                format!(
                    "sum by (node) (rate({}{{kind=\"generated\",{s}}}[$__rate_interval]))",
                    m::INFERENCE_TOKENS.name
                ),
                "{{node}} generated",
            ),
            q(
                format!("sum by (node) ({}{{{s}}})", m::INFERENCE_IN_FLIGHT.name),
                "{{node}} in flight",
            ),
        ],
        |p| {
            p["fieldConfig"]["overrides"] = json!([{
                "matcher": { "id": "byRegexp", "options": "/.*in flight/" },
                "properties": [
                    { "id": "unit", "value": "short" },
                    { "id": "custom.axisPlacement", "value": "right" },
                ],
            }]);
        },
    );
    b.panel(
        Kind::Timeseries,
        "Latency, TTFT and TPOT p99",
        "Per node: request latency, time to first token and time per output token.",
        "s",
        8,
        8,
        vec![
            q(
                quantile(0.99, m::INFERENCE_REQUEST_DURATION.name, s, "node"),
                "{{node}} latency",
            ),
            q(
                quantile(0.99, m::INFERENCE_TTFT.name, s, "node"),
                "{{node}} TTFT",
            ),
            q(
                quantile(0.99, m::INFERENCE_TPOT.name, s, "node"),
                "{{node}} TPOT",
            ),
        ],
        unit_min0,
    );
}

/// The exporters' collectors: up, duration, errors and restarts.
fn collectors(b: &mut Board, s: &str) {
    b.row("Collectors");
    b.panel(
        Kind::StateTimeline,
        "Collector up",
        "1 if the collector's last sample succeeded.",
        "none",
        12,
        8,
        vec![series(&m::COLLECTOR_UP, s, "{{node}} {{collector}}")],
        up_down,
    );
    b.panel(
        Kind::Timeseries,
        "Collector duration",
        "Time each collector's last sample took.",
        "s",
        12,
        8,
        vec![series(&m::COLLECTOR_DURATION, s, "{{node}} {{collector}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Collector errors and restarts",
        "Failed samples and restarts of long-running children (powermetrics, macmon) over 5 minutes.",
        "short",
        24,
        7,
        vec![
            q(
                format!("increase({}{{{s}}}[5m])", m::COLLECTOR_ERRORS.name),
                "{{node}} {{collector}} errors",
            ),
            q(
                format!("increase({}{{{s}}}[5m])", m::COLLECTOR_RESTARTS.name),
                "{{node}} {{collector}} restarts",
            ),
        ],
        unit_min0,
    );
}
