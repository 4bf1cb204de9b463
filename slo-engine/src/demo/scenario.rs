//! The simulated cells: names, ports, the engine's and Prometheus' configurations, the banner.

use std::path::Path;

use super::Options;

/// The simulated model name.
pub const MODEL: &str = "simulated-llama-70b";
/// The demo cell and its nodes.
pub const CELL: &str = "simulated-cell";
pub(super) const NODES: usize = 4;
/// The simulated cell's power cap: a 16 A circuit at 230 V (3,680 W) × 0.8, well above what the
/// four Mac Studios draw even during the energy regression.
pub(super) const POWER_CAP_WATTS: u32 = 2944;
/// The simulated GPU pool: one Linux node with two H100s, node number 5.
pub const GPU_CELL: &str = "simulated-gpu-pool";
pub(super) const GPU_NODE: usize = 5;
pub(super) const ALL_NODES: usize = 5;

/// Node `i`'s name: simulated-studio-1..=4, simulated-gpu-1 (node 5).
/// The Mac Studios' node names, in order.
pub(super) fn apple_nodes() -> Vec<String> {
    (1..=NODES).map(node_name).collect()
}

pub(super) fn node_name(i: usize) -> String {
    if i == GPU_NODE {
        "simulated-gpu-1".into()
    } else {
        format!("simulated-studio-{i}")
    }
}

/// The ports of one demo.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    /// The engine.
    pub engine: u16,
}

impl Ports {
    /// Node `i`'s exporter.
    pub(super) fn exporter(self, i: usize) -> u16 {
        self.engine + i as u16
    }
    /// Node `i`'s metering proxy.
    pub(super) fn proxy(self, i: usize) -> u16 {
        self.engine + 10 + i as u16
    }
    /// The simulated servers and the page receiver.
    pub(super) fn sim(self) -> u16 {
        self.engine + 20
    }
    /// Where node `i`'s clients send chat completions: the Mac Studios' metering proxies, the
    /// GPU node's simulated vLLM itself.
    pub(super) fn chat_url(self, i: usize) -> String {
        if i == GPU_NODE {
            format!("{}/v1/chat/completions", self.vllm())
        } else {
            format!("http://127.0.0.1:{}/v1/chat/completions", self.proxy(i))
        }
    }
    /// The GPU node's simulated vLLM (its `/metrics` beside `/v1`).
    pub(super) fn vllm(self) -> String {
        format!("http://127.0.0.1:{}/node/{GPU_NODE}", self.sim())
    }
}

/// The engine's configuration for the demo cell: periods compressed to one hour, one page
/// pair over 30m and 5m that fires once a window's burn rate exceeds 1.
pub fn config_yaml(ports: Ports, smtp: Option<&str>, mail_to: &str) -> String {
    let nodes: String = (1..=NODES)
        .map(|i| {
            format!(
                "      - {{ name: {}, url: \"http://127.0.0.1:{}/metrics\" }}\n",
                node_name(i),
                ports.exporter(i)
            )
        })
        .collect();
    let (mail_receiver, mail_route) = match smtp {
        Some(s) => (
            format!(
                "    - name: oncall-mail\n      email: {{ to: [{mail_to}], from: cellwatch-demo@example.com, smarthost: \"{s}\", tls: none }}\n"
            ),
            "    - { receiver: oncall-mail, matchers: { severity: page }, continue: true }\n",
        ),
        None => (String::new(), ""),
    };
    let gpu = format!(
        "  - name: {GPU_CELL}\n    nodes:\n      - {{ name: {}, url: \"http://127.0.0.1:{}/metrics\" }}\n",
        node_name(GPU_NODE),
        ports.exporter(GPU_NODE)
    );
    format!(
        "# SIMULATED: the configuration `cellwatch-slo demo` runs. Periods are compressed to 1h so\n\
         # burns page within a minute; real cells use 30d or calendar-month.\n\
         cells:\n  - name: {CELL}\n    topology: mesh\n    link_speed: 80Gb/s\n    rdma: true\n    power_cap_watts: {POWER_CAP_WATTS}\n    nodes:\n{nodes}{gpu}\
         source:\n  scrape: {{ interval: 2s }}\n\
         health: {{ link_for: 10s }}\n\
         slos:\n\
         \x20 - {{ name: latency-2500ms, description: \"99 % of requests finish under 2.5 s\", objective: 0.99, period: 1h, min_events: 300, sli: {{ latency: {{ threshold: 2.5s }} }} }}\n\
         \x20 - {{ name: ttft-500ms, description: \"95 % of requests get their first token under 500 ms\", objective: 0.95, period: 1h, min_events: 300, sli: {{ ttft: {{ threshold: 500ms }} }} }}\n\
         \x20 - {{ name: tpot-50ms, description: \"95 % of streamed requests generate each token after the first within 50 ms\", objective: 0.95, period: 1h, min_events: 300, sli: {{ tpot: {{ threshold: 50ms }} }} }}\n\
         \x20 - {{ name: availability, objective: 0.99, period: 1h, min_events: 300, sli: {{ availability: {{}} }} }}\n\
         \x20 - {{ name: throughput, description: \"90 % of minutes with a backlog deliver at least 150 tokens/s\", objective: 0.9, period: 1h, sli: {{ throughput: {{ floor: 150 }} }} }}\n\
         \x20 - {{ name: efficiency, description: \"90 % of minutes deliver at least 2.5 M tokens per kWh\", objective: 0.9, period: 1h, budgeting: timeslices, slice: 1m, sli: {{ tokens_per_kwh: {{ threshold: 2500000, min_tokens: 1000 }} }} }}\n\
         \x20 - {{ name: links, description: \"90 % of minutes with every Thunderbolt 5 link up at 80 Gb/s with RDMA\", cells: [{CELL}], objective: 0.9, period: 1h, sli: {{ link_health: {{}} }} }}\n\
         \x20 - {{ name: power-cap, description: \"99 % of minutes under the circuit's cap\", cells: [{CELL}], objective: 0.99, period: 1h, sli: {{ power_cap: {{}} }} }}\n\
         alerting:\n  group_wait: 5s\n  group_interval: 30s\n  repeat_interval: 1h\n  resolve_wait: 30s\n\
         \x20 burn_rates:\n    - {{ severity: page, long: 30m, short: 5m, budget: 0.5 }}\n\
         \x20 external_url: http://127.0.0.1:{engine}\n\
         \x20 dashboard_url: http://localhost:3000/d/cellwatch-cell?var-cell={{cell}}\n\
         \x20 receivers:\n    - name: demo-console\n      webhook: {{ url: \"http://127.0.0.1:{sim}/pages\" }}\n{mail_receiver}\
         \x20 routes:\n{mail_route}    - {{ receiver: demo-console, matchers: {{ severity: page }} }}\n    - {{ receiver: demo-console, matchers: {{ severity: ticket }} }}\n",
        engine = ports.engine,
        sim = ports.sim(),
    )
}

/// A Prometheus configuration scraping the demo (file_sd targets with cell and node labels).
pub fn prometheus_yaml(ports: Ports) -> String {
    format!(
        "# SIMULATED demo cell: a Prometheus scrape configuration for `cellwatch-slo demo`.\n\
         # Run: prometheus --config.file=prometheus.yml (from this directory).\n\
         global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n\
         scrape_configs:\n\
         \x20 - job_name: cellwatch-exporter\n    file_sd_configs:\n      - files: [targets.json]\n\
         \x20 - job_name: cellwatch-slo\n    static_configs:\n      - targets: [\"127.0.0.1:{}\"]\n",
        ports.engine
    )
}

/// What runs where, the timeline, and how to point Prometheus and Grafana at the demo.
pub(super) fn print_banner(opts: &Options, ports: Ports, dir: &Path, status: &str) {
    let incident_at = opts.incident_at;
    println!(
        "cellwatch demo: a SIMULATED four-node Mac Studio cell ({CELL}) beside a simulated GPU pool \
         ({GPU_CELL}: one Linux node, two H100s). Simulated: the macOS commands and nvidia-smi \
         (stand-ins printing the real formats), the Linux sysfs tree, the power model, the inference \
         server and its clients. Real: five cellwatch-exporter processes (collectors, parsers, \
         metering proxies) and the SLO engine.\n\
         \n  status page        {status}\n  engine metrics     {status}metrics\n  alerts (JSON)      {status}api/v1/alerts"
    );
    for i in 1..=NODES {
        println!(
            "  {:<18} metrics http://127.0.0.1:{}/metrics   proxy http://127.0.0.1:{}/v1",
            node_name(i),
            ports.exporter(i),
            ports.proxy(i)
        );
    }
    println!(
        "  {:<18} metrics http://127.0.0.1:{}/metrics   vLLM (simulated, read by the exporter's vLLM adapter) {}/v1",
        node_name(GPU_NODE),
        ports.exporter(GPU_NODE),
        ports.vllm()
    );
    println!(
        "\n  working directory {d}\n  engine config     {d}/cells.yaml (SLO periods compressed to 1h)\n  pages             printed here and appended to {d}/pages.log{mail}\n\
         \nPrometheus: prometheus --config.file={d}/prometheus.yml   (file_sd targets with cell and node labels):\n{prom}\
         Grafana: add that Prometheus as a datasource, then import dashboards/*.json, or provision\n  \
         dashboards/provisioning/*.yml (see the README).\n\
         \nTimeline: at {a}s a node slows down, 30 s later an energy regression; both end at {b}s. A page\n\
         arrives within a minute of the incident and resolves about 5 minutes after it ends. At {c}s a\n\
         Thunderbolt cable is pulled, then plugged back at half speed: one ticket. Ctrl-C stops.\n",
        d = dir.display(),
        prom = prometheus_yaml(ports)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("    {l}\n"))
            .collect::<String>(),
        mail = opts
            .smtp
            .as_ref()
            .map(|s| format!(" and mailed to {} via {s}", opts.mail_to))
            .unwrap_or_default(),
        a = incident_at.as_secs(),
        b = (incident_at + opts.incident_for).as_secs(),
        c = opts.cable_pull_at.as_secs(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_configuration_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        for smtp in [None, Some("127.0.0.1:2525")] {
            let p = dir.path().join("cells.yaml");
            std::fs::write(
                &p,
                config_yaml(Ports { engine: 9820 }, smtp, "a@example.com"),
            )
            .unwrap();
            let c = crate::config::load(&p).unwrap();
            assert_eq!(c.cells[0].nodes.len(), 4);
            assert_eq!(c.cells[1].name, GPU_CELL);
            assert_eq!(c.slos.len(), 8);
            assert_eq!(c.cells[0].topology, Some(crate::config::Topology::Mesh));
            assert_eq!(c.cells[0].power_cap_watts, Some(f64::from(POWER_CAP_WATTS)));
            assert_eq!(c.alerting.receivers.len(), 1 + smtp.is_some() as usize);
        }
    }
}
