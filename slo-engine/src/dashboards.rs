//! Grafana dashboards, generated from the metric definitions (`cellwatch-slo dashboards`).
//!
//! Four dashboards in Grafana's classic JSON model (schemaVersion 41, Grafana 11.6 or newer):
//! `cell-overview` (latency beside power and efficiency, budgets, alerts), `node-detail`
//! (power, memory, links, collectors, inference of one node), `fleet` (every cell side by side)
//! and `slo` (budgets and burn rates over time). Every panel reads a `datasource` variable, so
//! the files work both imported and provisioned; `cell` → `node` variables are chained.
//!
//! Whole-node energy is the SMC's (macmon) where a node reports it, else the SoC's (CPU + GPU +
//! ANE from powermetrics), else RAPL plus NVIDIA (Linux), per node: the rule the engine applies
//! to tokens/kWh (`cellwatch_metrics::node_energy_promql`).

use cellwatch_metrics as m;
use serde_json::{Value, json};

/// Every dashboard: (file name, JSON).
pub fn all() -> Vec<(&'static str, Value)> {
    vec![
        ("cell-overview.json", cell_overview()),
        ("node-detail.json", node_detail()),
        ("fleet.json", fleet()),
        ("slo.json", slo()),
    ]
}

/// A dashboard's file text: pretty JSON with a final newline.
pub fn render(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The dashboard provider for Grafana's file provisioning.
pub const PROVIDER_YAML: &str = "\
# Grafana file provisioning: the cellwatch dashboards, in a cellwatch folder.
# Copy to /etc/grafana/provisioning/dashboards/ and the JSON files to the path below.
apiVersion: 1
providers:
  - name: cellwatch
    orgId: 1
    folder: cellwatch
    type: file
    disableDeletion: false
    allowUiUpdates: true
    updateIntervalSeconds: 30
    options:
      path: /var/lib/grafana/dashboards/cellwatch
      foldersFromFilesStructure: false
";

/// A Prometheus datasource with the stable uid the dashboards' variable defaults to.
pub const DATASOURCE_YAML: &str = "\
# Grafana file provisioning: a Prometheus datasource. Copy to
# /etc/grafana/provisioning/datasources/. The uid is stable so saved dashboards keep pointing
# at it; the dashboards also let you pick any Prometheus datasource.
apiVersion: 1
datasources:
  - name: Prometheus
    type: prometheus
    uid: prometheus
    access: proxy
    url: http://localhost:9090
    isDefault: true
    editable: true
    jsonData:
      timeInterval: 15s
";

const DS: &str = "${datasource}";

fn ds() -> Value {
    json!({ "type": "prometheus", "uid": DS })
}

/// The per-node energy rate in joules per second (`cellwatch_metrics::node_energy_promql`).
fn energy_rate(sel: &str) -> String {
    m::node_energy_promql("rate", sel, "$__rate_interval")
}

/// The per-node whole power in watts, by the same rule.
fn node_power(sel: &str) -> String {
    m::node_power_promql(sel)
}

/// Generated tokens per kWh, summed `by`.
fn tokens_per_kwh(sel: &str, by: &str) -> String {
    format!(
        "sum{by} (rate({t}{{kind=\"generated\",{sel}}}[$__rate_interval])) / (sum{by} ({e}) > 0) * 3.6e6",
        t = m::INFERENCE_TOKENS.name,
        e = energy_rate(sel)
    )
}

/// kWh per 1,000 requests (cancelled ones excluded, as the engine counts), summed `by`; no value
/// while there are no requests.
fn kwh_per_1k(sel: &str, by: &str) -> String {
    format!(
        "sum{by} ({e}) / 3.6e6 / ((sum{by} (rate({r}{{outcome!=\"cancelled\",{sel}}}[$__rate_interval])) > 0) / 1000)",
        r = m::INFERENCE_REQUESTS.name,
        e = energy_rate(sel)
    )
}

fn quantile(q: f64, hist: &str, sel: &str, by: &str) -> String {
    let by = if by.is_empty() {
        "le".to_string()
    } else {
        format!("{by}, le")
    };
    format!(
        "histogram_quantile({q}, sum by ({by}) (rate({hist}_bucket{{{sel}}}[$__rate_interval])))"
    )
}

/// One query of a panel.
struct Q {
    expr: String,
    legend: &'static str,
}

fn q(expr: impl Into<String>, legend: &'static str) -> Q {
    Q {
        expr: expr.into(),
        legend,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Timeseries,
    Stacked,
    Stat,
    Table,
    StateTimeline,
}

/// A dashboard under construction: panels flow left to right in rows of 24 columns.
struct Board {
    panels: Vec<Value>,
    id: u32,
    x: u32,
    y: u32,
    row_h: u32,
}

impl Board {
    fn new() -> Self {
        Board {
            panels: Vec::new(),
            id: 0,
            x: 0,
            y: 0,
            row_h: 0,
        }
    }

    fn next_id(&mut self) -> u32 {
        self.id += 1;
        self.id
    }

    fn newline(&mut self) {
        if self.x > 0 {
            self.y += self.row_h;
            self.x = 0;
            self.row_h = 0;
        }
    }

    fn row(&mut self, title: &str) {
        self.newline();
        let id = self.next_id();
        self.panels.push(json!({
            "type": "row", "id": id, "title": title, "collapsed": false, "panels": [],
            "gridPos": { "h": 1, "w": 24, "x": 0, "y": self.y },
        }));
        self.y += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn panel(
        &mut self,
        kind: Kind,
        title: &str,
        description: &str,
        unit: &str,
        w: u32,
        h: u32,
        queries: Vec<Q>,
        tune: impl FnOnce(&mut Value),
    ) {
        if self.x + w > 24 {
            self.newline();
        }
        let id = self.next_id();
        let instant = matches!(kind, Kind::Table);
        let targets: Vec<Value> = queries
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut v = json!({
                    "datasource": ds(),
                    "expr": t.expr,
                    "legendFormat": t.legend,
                    "refId": ((b'A' + i as u8) as char).to_string(),
                    "range": !instant,
                    "instant": instant,
                });
                if instant {
                    v["format"] = json!("table");
                }
                v
            })
            .collect();
        let (ty, custom, options) = match kind {
            Kind::Timeseries | Kind::Stacked => (
                "timeseries",
                json!({
                    "drawStyle": "line", "lineWidth": 1, "fillOpacity": if kind == Kind::Stacked { 30 } else { 10 },
                    "showPoints": "never", "spanNulls": false,
                    "stacking": { "mode": if kind == Kind::Stacked { "normal" } else { "none" }, "group": "A" },
                }),
                json!({
                    "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                    "tooltip": { "mode": "multi", "sort": "desc" },
                }),
            ),
            Kind::Stat => (
                "stat",
                json!({}),
                json!({
                    "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
                    "colorMode": "value", "graphMode": "area", "justifyMode": "auto",
                    "orientation": "auto", "textMode": "auto",
                }),
            ),
            Kind::Table => (
                "table",
                json!({ "align": "auto", "filterable": false }),
                json!({ "showHeader": true, "cellHeight": "sm" }),
            ),
            Kind::StateTimeline => (
                "state-timeline",
                json!({ "fillOpacity": 70, "lineWidth": 0 }),
                json!({
                    "showValue": "auto", "mergeValues": true, "rowHeight": 0.9,
                    "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
                    "tooltip": { "mode": "single", "sort": "none" },
                }),
            ),
        };
        let mut p = json!({
            "type": ty,
            "id": id,
            "title": title,
            "description": description,
            "datasource": ds(),
            "gridPos": { "h": h, "w": w, "x": self.x, "y": self.y },
            "fieldConfig": {
                "defaults": {
                    "unit": unit,
                    "color": { "mode": if kind == Kind::Stat { "thresholds" } else { "palette-classic" } },
                    "thresholds": { "mode": "absolute", "steps": [{ "color": "green", "value": null }] },
                    "custom": custom,
                },
                "overrides": [],
            },
            "options": options,
            "targets": targets,
        });
        tune(&mut p);
        self.panels.push(p);
        self.x += w;
        self.row_h = self.row_h.max(h);
    }

    fn finish(
        self,
        uid: &str,
        title: &str,
        description: &str,
        variables: Vec<Value>,
        time: &str,
    ) -> Value {
        json!({
            "uid": uid,
            "title": title,
            "description": description,
            "tags": ["cellwatch"],
            "editable": true,
            "graphTooltip": 1,
            "schemaVersion": 41,
            "version": 1,
            "refresh": "30s",
            "time": { "from": time, "to": "now" },
            "timezone": "browser",
            "fiscalYearStartMonth": 0,
            "liveNow": false,
            "annotations": { "list": [{
                "builtIn": 1, "datasource": { "type": "grafana", "uid": "-- Grafana --" },
                "enable": true, "hide": true, "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts", "type": "dashboard",
            }] },
            "links": [{
                "type": "dashboards", "tags": ["cellwatch"], "asDropdown": true, "title": "cellwatch",
                "includeVars": false, "keepTime": true, "icon": "external link",
                "targetBlank": false, "tooltip": "", "url": "",
            }],
            "templating": { "list": variables },
            "panels": self.panels,
        })
    }
}

fn v_datasource() -> Value {
    json!({
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": { "text": "Prometheus", "value": "prometheus" },
        "hide": 0, "refresh": 1, "regex": "", "options": [], "skipUrlSync": false,
    })
}

/// A query variable over `label_values(series, label)`, reloaded on dashboard load only.
fn v_query(name: &str, label: &str, series: &str, multi: bool) -> Value {
    let mut v = json!({
        "name": name, "label": label, "type": "query", "datasource": ds(),
        "query": {
            "qryType": 1,
            "query": format!("label_values({series}, {name})"),
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 1, "sort": 1, "regex": "", "hide": 0,
        "multi": multi, "includeAll": multi,
        "options": [], "skipUrlSync": false,
    });
    if multi {
        // All as a regex, so cells and nodes that appear later are included.
        v["allValue"] = json!(".*");
    }
    v
}

fn v_cell(multi: bool) -> Value {
    v_query("cell", "Cell", m::NODE_INFO.name, multi)
}

fn v_node() -> Value {
    v_query(
        "node",
        "Node",
        &format!("{}{{cell=~\"$cell\"}}", m::NODE_INFO.name),
        true,
    )
}

fn unit_min0(p: &mut Value) {
    p["fieldConfig"]["defaults"]["min"] = json!(0);
}

fn budget_thresholds(p: &mut Value) {
    p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
        { "color": "red", "value": null },
        { "color": "orange", "value": 0 },
        { "color": "green", "value": 0.25 },
    ]);
    p["fieldConfig"]["defaults"]["decimals"] = json!(1);
}

/// Transmitted series below zero, received above (node_exporter's convention).
fn tx_negative(p: &mut Value) {
    p["fieldConfig"]["overrides"] = json!([{
        "matcher": { "id": "byFrameRefID", "options": "B" },
        "properties": [{ "id": "custom.transform", "value": "negative-Y" }],
    }]);
}

/// A stat from one instant query (a total over the range), without a sparkline.
fn instant_stat(p: &mut Value) {
    p["targets"][0]["instant"] = json!(true);
    p["targets"][0]["range"] = json!(false);
    p["options"]["graphMode"] = json!("none");
    p["fieldConfig"]["defaults"]["decimals"] = json!(3);
}

/// A dashed line at burn rate 1: above it, the budget runs out before the period ends.
fn burn_threshold(p: &mut Value) {
    p["fieldConfig"]["defaults"]["min"] = json!(0);
    p["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({ "mode": "dashed" });
    p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
        { "color": "green", "value": null },
        { "color": "red", "value": 1 },
    ]);
}

/// Tables of ALERTS-like series: only the labels, no time or value.
fn alerts_table(p: &mut Value) {
    p["transformations"] = json!([{
        "id": "organize",
        "options": {
            "excludeByName": { "Time": true, "Value": true, "__name__": true, "job": true, "instance": true },
            "indexByName": { "cell": 0, "alertname": 1, "slo": 2, "severity": 3, "state": 4 },
            "renameByName": {},
        },
    }]);
}

fn cell_overview() -> Value {
    let c = "cell=\"$cell\"";
    let mut b = Board::new();
    b.row("Latency beside power ($cell)");
    let dur = m::INFERENCE_REQUEST_DURATION.name;
    let ttft = m::INFERENCE_TTFT.name;
    b.panel(
        Kind::Timeseries,
        "Request latency p95 / p99",
        "End-to-end latency of ok requests, from the exporters' histograms (metering proxy or server adapter). The nodes of a cell should share bucket bounds (--collector.inference.buckets) for the quantiles to be right.",
        "s",
        6,
        8,
        vec![
            q(quantile(0.95, dur, c, ""), "p95"),
            q(quantile(0.99, dur, c, ""), "p99"),
        ],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Time to first token p95 / p99",
        "Time from request to the first generated token, ok requests.",
        "s",
        6,
        8,
        vec![
            q(quantile(0.95, ttft, c, ""), "p95"),
            q(quantile(0.99, ttft, c, ""), "p99"),
        ],
        unit_min0,
    );
    b.panel(
        Kind::Stacked,
        "Power by node",
        "Whole-node power: the SMC's (macmon) where the node reports it, else CPU + GPU + ANE (powermetrics); on Linux, RAPL plus NVIDIA GPUs.",
        "watt",
        6,
        8,
        vec![q(
            format!(
                "sum by (node) ({})",
                node_power(&format!("{c},node=~\"$node\""))
            ),
            "{{node}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Tokens per kWh",
        "Generated tokens per kWh of the cell's nodes (energy counters, not sampled power).",
        "si:tok/kWh",
        6,
        8,
        vec![q(tokens_per_kwh(c, ""), "tokens/kWh")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Requests by outcome",
        "Finished requests per second (ok, client_error, server_error, upstream_unavailable, cancelled).",
        "reqps",
        6,
        7,
        vec![q(
            format!(
                "sum by (outcome) (rate({}{{{c}}}[$__rate_interval]))",
                m::INFERENCE_REQUESTS.name
            ),
            "{{outcome}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Tokens per second",
        "Prompt and generated tokens per second across the cell.",
        "suffix: tok/s",
        6,
        7,
        vec![q(
            format!(
                "sum by (kind) (rate({}{{{c}}}[$__rate_interval]))",
                m::INFERENCE_TOKENS.name
            ),
            "{{kind}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Stat,
        "Cell power",
        "Whole power of the cell's nodes now.",
        "watt",
        4,
        7,
        vec![q(format!("sum({})", node_power(c)), "W")],
        |_| {},
    );
    b.panel(
        Kind::Stat,
        "kWh per 1,000 requests",
        "Energy of the cell's nodes per 1,000 finished requests.",
        "kwatth",
        4,
        7,
        vec![q(kwh_per_1k(c, ""), "kWh/1k")],
        |_| {},
    );
    b.panel(
        Kind::Stat,
        "Energy over the range",
        "kWh the cell's nodes used over the dashboard's time range.",
        "kwatth",
        4,
        7,
        vec![q(
            format!(
                "sum({}) / 3.6e6",
                m::node_energy_promql("increase", c, "$__range")
            ),
            "kWh",
        )],
        instant_stat,
    );

    b.row("Error budgets ($cell)");
    b.panel(
        Kind::Stat,
        "Error budget left",
        "Share of each SLO's error budget left in its current period (below 0: overspent), from cellwatch-slo.",
        "percentunit",
        8,
        7,
        vec![q(
            format!("{}{{{c}}}", m::SLO_BUDGET_REMAINING.name),
            "{{slo}}",
        )],
        budget_thresholds,
    );
    b.panel(
        Kind::Timeseries,
        "Burn rate (5m and 1h)",
        "How fast each SLO spends its budget: 1 spends it exactly over the period; pages need both windows of a pair above the threshold.",
        "none",
        8,
        7,
        vec![q(
            format!(
                "{}{{{c},window=~\"5m|1h\"}}",
                m::SLO_BURN_RATE.name
            ),
            "{{slo}} {{window}}",
        )],
        burn_threshold,
    );
    b.panel(
        Kind::Timeseries,
        "SLI (1h)",
        "Share of good events (or good time slices) over the last hour, per SLO, beside its objective.",
        "percentunit",
        8,
        7,
        vec![
            q(
                format!("{}{{{c},window=\"1h\"}}", m::SLO_SLI.name),
                "{{slo}}",
            ),
            q(
                format!("{}{{{c}}}", m::SLO_OBJECTIVE.name),
                "{{slo}} objective",
            ),
        ],
        |_| {},
    );

    b.row("Alerts ($cell)");
    b.panel(
        Kind::Table,
        "Pending and firing alerts",
        "Alerts cellwatch-slo holds for the cell now (pages and tickets; muted ones included).",
        "none",
        24,
        6,
        vec![q(format!("{}{{{c}}}", m::SLO_ALERTS.name), "")],
        alerts_table,
    );
    b.finish(
        "cellwatch-cell",
        "cellwatch / Cell overview",
        "One inference cell: latency and time to first token beside power, tokens/kWh and kWh per 1,000 requests; error budgets and burn rates per SLO; alerts.",
        vec![v_datasource(), v_cell(false), v_node()],
        "now-1h",
    )
}

fn node_detail() -> Value {
    let s = "cell=\"$cell\",node=~\"$node\"";
    let mut b = Board::new();
    b.row("Power");
    b.panel(
        Kind::Stacked,
        "Power by component",
        "CPU, GPU and ANE power (powermetrics), DRAM power (macmon), per node.",
        "watt",
        8,
        8,
        vec![q(
            format!("{}{{{s}}}", m::POWER_WATTS.name),
            "{{node}} {{component}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Whole-node power",
        "source=smc: the whole system from the SMC (macmon); source=soc: CPU + GPU + ANE (powermetrics); Linux: source=rapl (CPU packages and DRAM) and source=nvidia (GPUs), to add up.",
        "watt",
        8,
        8,
        vec![q(
            format!("{}{{{s}}}", m::NODE_POWER_WATTS.name),
            "{{node}} {{source}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "GPU frequency and activity",
        "GPU active frequency, and the share of time the GPU was active.",
        "hertz",
        8,
        8,
        vec![
            q(
                format!("{}{{{s}}}", m::GPU_FREQUENCY.name),
                "{{node}} frequency",
            ),
            q(format!("{}{{{s}}}", m::GPU_ACTIVE.name), "{{node}} active"),
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
        vec![q(
            format!("{}{{{s}}}", m::CPU_CLUSTER_FREQUENCY.name),
            "{{node}} {{cluster}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::StateTimeline,
        "Thermal pressure",
        "0 nominal, 1 moderate, 2 heavy, 3 critical.",
        "none",
        12,
        7,
        vec![q(
            format!("{}{{{s}}}", m::THERMAL_PRESSURE.name),
            "{{node}}",
        )],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "nominal", "color": "green", "index": 0 },
                "1": { "text": "moderate", "color": "yellow", "index": 1 },
                "2": { "text": "heavy", "color": "orange", "index": 2 },
                "3": { "text": "critical", "color": "red", "index": 3 },
            } }]);
        },
    );

    b.row("Discrete GPUs (Linux nodes)");
    b.panel(
        Kind::Timeseries,
        "GPU memory used and installed",
        "Memory in use and installed per NVIDIA GPU (nvidia-smi).",
        "bytes",
        12,
        7,
        vec![
            q(
                format!("{}{{{s}}}", m::GPU_MEMORY_USED.name),
                "{{node}} gpu{{gpu}} used",
            ),
            q(
                format!("{}{{{s}}}", m::GPU_MEMORY_TOTAL.name),
                "{{node}} gpu{{gpu}} installed",
            ),
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
        vec![q(
            format!("{}{{{s}}}", m::GPU_UTILIZATION.name),
            "{{node}} gpu{{gpu}}",
        )],
        |p| {
            p["fieldConfig"]["defaults"]["min"] = json!(0);
            p["fieldConfig"]["defaults"]["max"] = json!(1);
        },
    );

    b.row("Unified memory");
    b.panel(
        Kind::Stacked,
        "Memory by state",
        "App, wired, compressed, cached and free memory (vm_stat pages × page size).",
        "bytes",
        8,
        8,
        vec![q(
            format!("{}{{{s}}}", m::MEMORY_BYTES.name),
            "{{node}} {{state}}",
        )],
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
            q(
                format!("{}{{{s}}}", m::MEMORY_USED.name),
                "{{node}} used",
            ),
            q(
                format!("{}{{{s}}}", m::MEMORY_TOTAL.name),
                "{{node}} total",
            ),
            q(
                format!("{}{{{s}}}", m::MEMORY_SWAP_USED.name),
                "{{node}} swap",
            ),
            q(
                format!("{}{{{s}}}", m::GPU_WIRED_LIMIT.name),
                "{{node}} GPU wired limit",
            ),
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
        vec![q(format!("{}{{{s}}}", m::MEMORY_PRESSURE.name), "{{node}}")],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "normal", "color": "green", "index": 0 },
                "1": { "text": "warning", "color": "orange", "index": 1 },
                "2": { "text": "critical", "color": "red", "index": 2 },
            } }]);
        },
    );

    b.row("Thunderbolt 5 / RDMA links");
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
        vec![q(
            format!("{}{{{s}}}", m::LINK_SPEED.name),
            "{{node}} {{link}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::StateTimeline,
        "Link and RDMA state",
        "Link up (a device connected), RDMA port active (PORT_ACTIVE) and RDMA enabled (rdma_ctl).",
        "none",
        24,
        8,
        vec![
            q(
                format!("{}{{{s}}}", m::LINK_UP.name),
                "{{node}} {{link}} up",
            ),
            q(
                format!("{}{{{s}}}", m::RDMA_PORT_ACTIVE.name),
                "{{node}} {{device}} RDMA port",
            ),
            q(
                format!("{}{{{s}}}", m::RDMA_ENABLED.name),
                "{{node}} RDMA enabled",
            ),
        ],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "down", "color": "red", "index": 0 },
                "1": { "text": "up", "color": "green", "index": 1 },
            } }]);
        },
    );

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
        "Latency p99 and TTFT p99",
        "Per node.",
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
        ],
        unit_min0,
    );

    b.row("Collectors");
    b.panel(
        Kind::StateTimeline,
        "Collector up",
        "1 if the collector's last sample succeeded.",
        "none",
        12,
        8,
        vec![q(
            format!("{}{{{s}}}", m::COLLECTOR_UP.name),
            "{{node}} {{collector}}",
        )],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "down", "color": "red", "index": 0 },
                "1": { "text": "up", "color": "green", "index": 1 },
            } }]);
        },
    );
    b.panel(
        Kind::Timeseries,
        "Collector duration",
        "Time each collector's last sample took.",
        "s",
        12,
        8,
        vec![q(
            format!("{}{{{s}}}", m::COLLECTOR_DURATION.name),
            "{{node}} {{collector}}",
        )],
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
    b.finish(
        "cellwatch-node",
        "cellwatch / Node detail",
        "One or more nodes of a cell: power by component and whole node, discrete GPUs, memory, Thunderbolt 5 / RDMA or InfiniBand/RoCE links, inference and collector health.",
        vec![v_datasource(), v_cell(false), v_node()],
        "now-1h",
    )
}

fn fleet() -> Value {
    let s = "cell=~\"$cell\"";
    let by = " by (cell)";
    let mut b = Board::new();
    b.row("Efficiency, every cell");
    b.panel(
        Kind::Timeseries,
        "Tokens per kWh by cell",
        "Generated tokens per kWh of each cell's nodes: Apple cells beside the GPU pool, on the same energy rule.",
        "si:tok/kWh",
        12,
        8,
        vec![q(tokens_per_kwh(s, by), "{{cell}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "kWh per 1,000 requests by cell",
        "Energy per 1,000 finished requests.",
        "kwatth",
        12,
        8,
        vec![q(kwh_per_1k(s, by), "{{cell}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Power by cell",
        "Whole power of each cell's nodes.",
        "watt",
        8,
        8,
        vec![q(format!("sum by (cell) ({})", node_power(s)), "{{cell}}")],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Latency p99 by cell",
        "End-to-end latency of ok requests.",
        "s",
        8,
        8,
        vec![q(
            quantile(0.99, m::INFERENCE_REQUEST_DURATION.name, s, "cell"),
            "{{cell}}",
        )],
        unit_min0,
    );
    b.panel(
        Kind::Timeseries,
        "Generated tokens per second by cell",
        "Throughput of each cell.",
        "suffix: tok/s",
        8,
        8,
        vec![q(
            format!(
                "sum by (cell) (rate({}{{kind=\"generated\",{s}}}[$__rate_interval]))",
                m::INFERENCE_TOKENS.name
            ),
            "{{cell}}",
        )],
        unit_min0,
    );
    b.row("Budgets, every cell");
    b.panel(
        Kind::Stat,
        "Lowest error budget left by cell",
        "The least budget any SLO of the cell has left in its period.",
        "percentunit",
        12,
        7,
        vec![q(
            format!("min by (cell) ({}{{{s}}})", m::SLO_BUDGET_REMAINING.name),
            "{{cell}}",
        )],
        budget_thresholds,
    );
    b.panel(
        Kind::Stat,
        "Firing alerts by cell",
        "Alerts firing now, per cell (0 when none).",
        "none",
        12,
        7,
        vec![q(
            format!(
                "count by (cell) ({a}{{state=\"firing\",{s}}}) or (0 * count by (cell) ({o}{{{s}}}))",
                a = m::SLO_ALERTS.name,
                o = m::SLO_OBJECTIVE.name
            ),
            "{{cell}}",
        )],
        |p| {
            p["fieldConfig"]["defaults"]["thresholds"]["steps"] = json!([
                { "color": "green", "value": null },
                { "color": "red", "value": 1 },
            ]);
        },
    );
    b.finish(
        "cellwatch-fleet",
        "cellwatch / Fleet",
        "Every cell side by side, Apple cells beside the GPU pool: tokens/kWh, kWh per 1,000 requests, power, latency and budgets.",
        vec![v_datasource(), v_cell(true)],
        "now-6h",
    )
}

fn slo() -> Value {
    let s = "cell=~\"$cell\",slo=~\"$slo\"";
    let mut b = Board::new();
    b.row("Error budgets");
    b.panel(
        Kind::Timeseries,
        "Error budget left",
        "Share of the error budget left in the current period, per cell and SLO (below 0: overspent).",
        "percentunit",
        12,
        9,
        vec![q(
            format!("{}{{{s}}}", m::SLO_BUDGET_REMAINING.name),
            "{{cell}} {{slo}}",
        )],
        |_| {},
    );
    b.panel(
        Kind::Timeseries,
        "SLI over the period",
        "Share of good events (or good time slices) over the SLO period, beside the objective.",
        "percentunit",
        12,
        9,
        vec![
            q(
                format!("{}{{{s},window=\"period\"}}", m::SLO_SLI.name),
                "{{cell}} {{slo}}",
            ),
            q(
                format!("{}{{{s}}}", m::SLO_OBJECTIVE.name),
                "{{cell}} {{slo}} objective",
            ),
        ],
        |_| {},
    );
    b.row("Burn rates");
    for (w, h) in [("5m", "1h"), ("30m", "6h"), ("2h", "1d")] {
        let title = match w {
            "5m" => "Burn rate 5m and 1h (fast page)",
            "30m" => "Burn rate 30m and 6h (slow page)",
            _ => "Burn rate 2h and 1d (ticket)",
        };
        b.panel(
            Kind::Timeseries,
            title,
            "Error budget burn rate over the short and long windows of an alert pair; 1 spends the budget exactly over the period.",
            "none",
            8,
            8,
            vec![q(
                format!("{}{{{s},window=~\"{w}|{h}\"}}", m::SLO_BURN_RATE.name),
                "{{cell}} {{slo}} {{window}}",
            )],
            burn_threshold,
        );
    }
    b.row("Alerts and data");
    b.panel(
        Kind::Table,
        "Pending and firing alerts",
        "Alerts cellwatch-slo holds now.",
        "none",
        16,
        7,
        vec![q(format!("{}{{cell=~\"$cell\"}}", m::SLO_ALERTS.name), "")],
        alerts_table,
    );
    b.panel(
        Kind::StateTimeline,
        "Data missing",
        "1 if the SLO had no data in the last 5 minutes (every node of the cell down or idle).",
        "none",
        8,
        7,
        vec![q(
            format!("{}{{{s}}}", m::SLO_DATA_MISSING.name),
            "{{cell}} {{slo}}",
        )],
        |p| {
            p["fieldConfig"]["defaults"]["mappings"] = json!([{ "type": "value", "options": {
                "0": { "text": "data", "color": "green", "index": 0 },
                "1": { "text": "missing", "color": "red", "index": 1 },
            } }]);
        },
    );
    let mut slo_var = v_query(
        "slo",
        "SLO",
        &format!("{}{{cell=~\"$cell\"}}", m::SLO_OBJECTIVE.name),
        true,
    );
    slo_var["current"] = json!({ "text": "All", "value": "$__all" });
    // Every cell with an SLO, including cells whose data comes through Prometheus alone.
    let mut cell_var = v_query("cell", "Cell", m::SLO_OBJECTIVE.name, true);
    cell_var["current"] = json!({ "text": "All", "value": "$__all" });
    b.finish(
        "cellwatch-slo",
        "cellwatch / SLOs",
        "Error budgets, SLIs and burn rates over time per cell and SLO, from cellwatch-slo.",
        vec![v_datasource(), cell_var, slo_var],
        "now-24h",
    )
}

/// Every query of a dashboard: (panel title, PromQL) for panel targets, and (variable name,
/// the series inside `label_values(...)`) for query variables.
pub fn queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(vars) = dashboard["templating"]["list"].as_array() {
        for v in vars {
            if let Some(q) = v["query"]["query"].as_str() {
                let inner = q
                    .strip_prefix("label_values(")
                    .and_then(|r| r.rsplit_once(','))
                    .map_or(q, |(series, _)| series);
                out.push((format!("variable {}", v["name"]), inner.to_string()));
            }
        }
    }
    for p in dashboard["panels"].as_array().into_iter().flatten() {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
            }
        }
    }
    out
}

/// Replaces Grafana's variables in a query: `$cell`, `$node`, `$slo` by the given regex-safe
/// values, the interval variables by durations.
pub fn substitute(expr: &str, cell: &str, node: &str, slo: &str, range: &str) -> String {
    expr.replace("$__rate_interval", range)
        .replace("$__range", range)
        .replace("$__interval", range)
        .replace("$cell", cell)
        .replace("$node", node)
        .replace("$slo", slo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_have_unique_ids_and_fit_the_grid() {
        for (name, d) in all() {
            let mut ids = std::collections::BTreeSet::new();
            for p in d["panels"].as_array().unwrap() {
                assert!(
                    ids.insert(p["id"].as_u64().unwrap()),
                    "{name}: duplicate id"
                );
                let g = &p["gridPos"];
                let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
                assert!(x + w <= 24, "{name}: {} overflows the grid", p["title"]);
                if p["type"] != "row" {
                    assert_eq!(p["datasource"]["uid"], DS, "{name}: {}", p["title"]);
                    assert!(!p["targets"].as_array().unwrap().is_empty());
                }
            }
        }
    }

    #[test]
    fn queries_use_only_known_metric_names() {
        let re = regex::Regex::new(r"cellwatch_[a-z0-9_]+").unwrap();
        for (name, d) in all() {
            for (title, e) in queries(&d) {
                for n in re.find_iter(&e) {
                    let n = n.as_str();
                    let base = n.strip_suffix("_bucket").unwrap_or(n);
                    assert!(
                        m::by_name(base).is_some(),
                        "{name}: {title}: unknown metric {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn substitution_leaves_no_grafana_variables() {
        for (_, d) in all() {
            for (_, e) in queries(&d) {
                let s = substitute(&e, "c", ".*", ".*", "1m");
                assert!(!s.contains('$'), "{s}");
            }
        }
    }
}
