//! The one source of truth for cellwatch metric names.
//!
//! Every series the exporter emits, and every name the SLO engine, the generated Prometheus rules
//! and the dashboards refer to, is a [`MetricDef`] in this crate. The exporter can only emit a
//! sample through a `&'static MetricDef`, so a name cannot drift between producer and consumers;
//! the metrics reference (`docs/metrics.md`) is generated from [`ALL`] by [`reference_markdown`]
//! and a test fails when the committed file differs.

/// Prometheus metric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up (name ends in `_total`).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted in buckets (`_bucket`, `_sum`, `_count` series).
    Histogram,
}

impl Kind {
    /// The word used in `# TYPE` lines.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family: name, type, unit, labels, meaning and where the value comes from.
#[derive(Debug)]
pub struct MetricDef {
    /// Full metric name, including the `cellwatch_` prefix and (for counters) `_total`.
    pub name: &'static str,
    /// Counter or gauge.
    pub kind: Kind,
    /// Base unit (`watts`, `joules`, `bytes`, `hertz`, `seconds`, `ratio`, `bytes_per_second`),
    /// or empty for levels, booleans and info series.
    pub unit: &'static str,
    /// Label names, in the order collectors pass values.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
    /// The collector that emits the family (`exporter` for the exporter's own series).
    pub collector: &'static str,
    /// Where the value comes from, for the metrics reference.
    pub source: &'static str,
}

impl PartialEq for MetricDef {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for MetricDef {}

macro_rules! metrics {
    ($( $(#[$m:meta])* $id:ident = $name:literal, $kind:ident, $unit:literal, [$($l:literal),*], $collector:literal,
        $help:literal, $source:literal; )*) => {
        $( $(#[$m])* pub static $id: MetricDef = MetricDef {
            name: $name, kind: Kind::$kind, unit: $unit, labels: &[$($l),*], help: $help,
            collector: $collector, source: $source,
        }; )*
        /// Every metric family, in reference order.
        pub static ALL: &[&MetricDef] = &[$(&$id),*];
    };
}

metrics! {
    // --- the exporter itself -------------------------------------------------------------------
    /// Build information.
    BUILD_INFO = "cellwatch_exporter_build_info", Gauge, "", ["version"], "exporter",
        "Build information of cellwatch-exporter; the value is always 1.",
        "the binary";
    /// Node identity; joins with every other series on the node's target labels.
    NODE_INFO = "cellwatch_node_info", Gauge, "", ["cell", "node", "hw_model", "os_version"], "exporter",
        "Identity of this node (value 1): --cell, --node, hardware model and OS version.",
        "`--cell`, `--node` (default: host name); `sysctl -n hw.model` and `sw_vers -productVersion` on macOS, DMI product name and kernel release on Linux";
    /// Whether the collector's last sample succeeded.
    COLLECTOR_UP = "cellwatch_collector_up", Gauge, "", ["collector"], "exporter",
        "1 if the collector's last sample succeeded, 0 if it failed or its source is down.",
        "the collector runner";
    /// How long the collector's last sample took.
    COLLECTOR_DURATION = "cellwatch_collector_duration_seconds", Gauge, "seconds", ["collector"], "exporter",
        "Time the collector's last sample took (commands plus parsing; for streaming sources, parsing of the last document).",
        "the collector runner";
    /// Failed samples.
    COLLECTOR_ERRORS = "cellwatch_collector_errors_total", Counter, "", ["collector"], "exporter",
        "Samples that failed: command not found, exit status, timeout, unparsable output.",
        "the collector runner";
    /// Restarts of a collector's long-running child process.
    COLLECTOR_RESTARTS = "cellwatch_collector_restarts_total", Counter, "", ["collector"], "exporter",
        "Restarts of the collector's long-running child process (exit, hang or garbage output).",
        "the watchdog";

    // --- power (powermetrics, macmon) ----------------------------------------------------------
    /// Average power of one SoC component over the last sample window.
    POWER_WATTS = "cellwatch_power_watts", Gauge, "watts", ["component"], "powermetrics",
        "Average power of one component over the last sample window (component: cpu, gpu, ane from powermetrics; dram from macmon; RAPL zones such as package-0, package-0-dram, psys on Linux; gpu0, gpu1... from nvidia-smi).",
        "powermetrics plist `processor.{cpu,gpu,ane}_power` (mW; derived from `*_energy`/`elapsed_ns` when the power key is missing or a zero `cpu_power` is reported beside a drawing GPU/ANE); macmon `ram_power` (W); RAPL energy increase / window; nvidia-smi `power.draw` (W)";
    /// Energy of one component since the exporter started.
    ENERGY_JOULES = "cellwatch_energy_joules_total", Counter, "joules", ["component"], "powermetrics",
        "Energy used by one component since the exporter started.",
        "sum of powermetrics `processor.{cpu,gpu,ane}_energy` (mJ per window); macmon `ram_power` × window; RAPL `energy_uj` increases (wraps at `max_energy_range_uj` handled); nvidia-smi `power.draw` × window (integrated: nvidia-smi has no energy field)";
    /// Whole-node power, by source.
    NODE_POWER_WATTS = "cellwatch_node_power_watts", Gauge, "watts", ["source"], "powermetrics",
        "Average power of the whole node over the last sample window. Apple: source=soc (CPU+GPU+ANE, powermetrics) or source=smc (whole system, macmon), alternatives. Linux: source=rapl (CPU packages and DRAM, or psys) plus source=nvidia (every GPU), parts to add up.",
        "powermetrics: sum of the component powers; macmon: `sys_power` (SMC PSTR, W); RAPL: psys, else the package zones plus their dram subzones; nvidia-smi: sum of `power.draw`";
    /// Whole-node energy, by source.
    NODE_ENERGY_JOULES = "cellwatch_node_energy_joules_total", Counter, "joules", ["source"], "powermetrics",
        "Energy used by the whole node since the exporter started (source as for cellwatch_node_power_watts: smc, else soc, on Apple; rapl + nvidia on Linux).",
        "powermetrics: sum of the component energies; macmon: `sys_power` × window; RAPL and nvidia-smi: sums of their components' energies";
    /// GPU active frequency.
    GPU_FREQUENCY = "cellwatch_gpu_frequency_hertz", Gauge, "hertz", [], "powermetrics",
        "GPU active frequency over the last sample window.",
        "powermetrics plist `gpu.freq_hz` (MHz despite its name)";
    /// GPU busy share.
    GPU_ACTIVE = "cellwatch_gpu_active_ratio", Gauge, "ratio", [], "powermetrics",
        "Share of the last sample window the GPU was active (0-1).",
        "1 - powermetrics `gpu.idle_ratio` - `gpu.down_ratio` (when present)";
    /// A discrete GPU's memory in use.
    GPU_MEMORY_USED = "cellwatch_gpu_memory_used_bytes", Gauge, "bytes", ["gpu"], "powermetrics",
        "Memory in use on a discrete GPU (gpu: the nvidia-smi index).",
        "nvidia-smi `memory.used` (MiB)";
    /// A discrete GPU's memory.
    GPU_MEMORY_TOTAL = "cellwatch_gpu_memory_total_bytes", Gauge, "bytes", ["gpu"], "powermetrics",
        "Memory installed on a discrete GPU.",
        "nvidia-smi `memory.total` (MiB)";
    /// A discrete GPU's utilisation.
    GPU_UTILIZATION = "cellwatch_gpu_utilization_ratio", Gauge, "ratio", ["gpu"], "powermetrics",
        "Share of the last sample period a kernel ran on the discrete GPU (0-1).",
        "nvidia-smi `utilization.gpu` (%)";
    /// A discrete GPU's identity.
    GPU_INFO = "cellwatch_gpu_info", Gauge, "", ["gpu", "uuid", "name"], "powermetrics",
        "Identity of a discrete GPU (value 1): index, UUID and model name.",
        "nvidia-smi `index`, `uuid`, `name`";
    /// CPU cluster active frequency.
    CPU_CLUSTER_FREQUENCY = "cellwatch_cpu_cluster_frequency_hertz", Gauge, "hertz", ["cluster"], "powermetrics",
        "Active frequency of one CPU cluster over the last sample window (cluster names as the chip reports them).",
        "powermetrics plist `processor.clusters[].freq_hz` (Hz)";
    /// Thermal pressure.
    THERMAL_PRESSURE = "cellwatch_thermal_pressure_level", Gauge, "", [], "powermetrics",
        "Thermal pressure: 0 nominal, 1 moderate, 2 heavy, 3 critical (trapping and sleeping count as critical).",
        "powermetrics plist `thermal_pressure` (thermal sampler)";

    // --- unified memory (vmstat) ---------------------------------------------------------------
    /// Physical memory.
    MEMORY_TOTAL = "cellwatch_memory_total_bytes", Gauge, "bytes", [], "vmstat",
        "Physical memory installed.",
        "`sysctl hw.memsize`; Linux: /proc/meminfo MemTotal";
    /// Memory used as Activity Monitor shows it.
    MEMORY_USED = "cellwatch_memory_used_bytes", Gauge, "bytes", [], "vmstat",
        "Memory used: app + wired + compressed, as Activity Monitor's \"Memory Used\"; on Linux MemTotal - MemAvailable, as `free` shows it.",
        "`vm_stat` pages × page size; /proc/meminfo";
    /// Memory by state.
    MEMORY_BYTES = "cellwatch_memory_bytes", Gauge, "bytes", ["state"], "vmstat",
        "Memory by state: app (anonymous - purgeable), wired, compressed (occupied by compressor), cached (file-backed + purgeable), free. Linux: app = AnonPages, wired = SUnreclaim + KernelStack + PageTables (kernel memory that cannot be reclaimed), compressed = Zswap (when reported), cached = Buffers + Cached + SReclaimable, free = MemFree.",
        "`vm_stat` pages × page size; /proc/meminfo (kB)";
    /// Swap in use.
    MEMORY_SWAP_USED = "cellwatch_memory_swap_used_bytes", Gauge, "bytes", [], "vmstat",
        "Swap space in use.",
        "`sysctl vm.swapusage` (MiB); /proc/meminfo SwapTotal - SwapFree";
    /// Memory pressure.
    MEMORY_PRESSURE = "cellwatch_memory_pressure_level", Gauge, "", [], "vmstat",
        "Memory pressure: 0 normal, 1 warning, 2 critical.",
        "`sysctl kern.memorystatus_vm_pressure_level` (1, 2, 4)";
    /// GPU wired memory limit.
    GPU_WIRED_LIMIT = "cellwatch_gpu_wired_limit_bytes", Gauge, "bytes", [], "vmstat",
        "GPU wired memory limit set with iogpu.wired_limit_mb; 0 means the macOS default policy, not zero bytes.",
        "`sysctl iogpu.wired_limit_mb` (MiB)";

    // --- Thunderbolt 5 / RDMA links (thunderbolt) ----------------------------------------------
    /// Bytes received on a Thunderbolt link.
    LINK_RECEIVED_BYTES = "cellwatch_link_received_bytes_total", Counter, "bytes", ["link"], "thunderbolt",
        "Bytes received on a Thunderbolt network interface, or an InfiniBand/RoCE port on Linux (link DEVICE/PORT); never goes backwards across resets.",
        "`netstat -ib` `<Link#N>` row, Ibytes (64-bit); sysfs `counters_ext/port_rcv_data_64` (else `counters/port_rcv_data`) × 4 octets";
    /// Bytes transmitted on a Thunderbolt link.
    LINK_TRANSMITTED_BYTES = "cellwatch_link_transmitted_bytes_total", Counter, "bytes", ["link"], "thunderbolt",
        "Bytes transmitted on a Thunderbolt network interface, or an InfiniBand/RoCE port on Linux; never goes backwards across resets.",
        "`netstat -ib` `<Link#N>` row, Obytes (64-bit); sysfs `counters_ext/port_xmit_data_64` (else `counters/port_xmit_data`) × 4 octets";
    /// Packets received on a Thunderbolt link.
    LINK_RECEIVED_PACKETS = "cellwatch_link_received_packets_total", Counter, "", ["link"], "thunderbolt",
        "Packets received on a Thunderbolt network interface or an InfiniBand/RoCE port.",
        "`netstat -ib` `<Link#N>` row, Ipkts; sysfs `port_rcv_packets(_64)`";
    /// Packets transmitted on a Thunderbolt link.
    LINK_TRANSMITTED_PACKETS = "cellwatch_link_transmitted_packets_total", Counter, "", ["link"], "thunderbolt",
        "Packets transmitted on a Thunderbolt network interface or an InfiniBand/RoCE port.",
        "`netstat -ib` `<Link#N>` row, Opkts; sysfs `port_xmit_packets(_64)`";
    /// Interface errors.
    LINK_ERRORS = "cellwatch_link_errors_total", Counter, "", ["link", "direction"], "thunderbolt",
        "Interface errors on a Thunderbolt network interface or an InfiniBand/RoCE port (direction: received, transmitted).",
        "`netstat -ib` `<Link#N>` row, Ierrs and Oerrs; sysfs `port_rcv_errors` and `port_xmit_discards`";
    /// Negotiated link speed.
    LINK_SPEED = "cellwatch_link_speed_bytes_per_second", Gauge, "bytes_per_second", ["link"], "thunderbolt",
        "Negotiated Thunderbolt link speed (only while a device is connected), or an InfiniBand/RoCE port's rate.",
        "`system_profiler SPThunderboltDataType -json` `current_speed_key` (\"80 Gb/s\" = 1e10 B/s); sysfs `rate` (\"40 Gb/sec (4X QDR)\")";
    /// Whether a device is connected on the link's receptacle.
    LINK_UP = "cellwatch_link_up", Gauge, "", ["link"], "thunderbolt",
        "1 if a device is connected on the link's Thunderbolt receptacle (InfiniBand/RoCE: the port's physical state is LinkUp), else 0.",
        "`system_profiler SPThunderboltDataType -json` `receptacle_status_key`; sysfs `phys_state`";
    /// Link identity.
    LINK_INFO = "cellwatch_link_info", Gauge, "", ["link", "rdma_device", "peer", "domain", "peer_domain"], "thunderbolt",
        "Link identity (value 1): Thunderbolt interface (or InfiniBand/RoCE DEVICE/PORT), its RDMA device (empty when none), the connected peer's name (empty when none or unknown), the domain UUID of the local Thunderbolt bus (domain) and of the connected peer (peer_domain, empty when nothing is connected). InfiniBand/RoCE links have empty domain and peer_domain (sysfs does not know the peer). A link's peer node is the node one of whose links has domain equal to this link's peer_domain, else the node whose name equals peer.",
        "`networksetup -listallhardwareports`, `system_profiler SPThunderboltDataType -json` (bus `domain_uuid_key`; first `_items[]` `_name` and `domain_uuid_key`), `ibv_devinfo`";
    /// RDMA port state.
    RDMA_PORT_ACTIVE = "cellwatch_rdma_port_active", Gauge, "", ["device"], "thunderbolt",
        "1 if the RDMA device has a port in state PORT_ACTIVE, else 0.",
        "`ibv_devinfo`; sysfs `/sys/class/infiniband/DEVICE/ports/*/state`";
    /// Whether RDMA is enabled.
    RDMA_ENABLED = "cellwatch_rdma_enabled", Gauge, "", [], "thunderbolt",
        "1 if RDMA over Thunderbolt is enabled (rdma_ctl status), else 0.",
        "`rdma_ctl status`";

    // --- inference (metering proxy and server adapters) ---------------------------------------
    /// Request latency.
    INFERENCE_REQUEST_DURATION = "cellwatch_inference_request_duration_seconds", Histogram, "seconds", ["model"], "inference",
        "Time from receiving a request to the end of its response, for requests with outcome ok.",
        "metering proxy (request received → last response byte); vLLM `vllm:e2e_request_latency_seconds`, SGLang `sglang:e2e_request_latency_seconds`, TGI `tgi_request_duration` (upstream buckets). llama.cpp: none";
    /// Time to first token.
    INFERENCE_TTFT = "cellwatch_inference_time_to_first_token_seconds", Histogram, "seconds", ["model"], "inference",
        "Time from receiving a request to the first response chunk carrying generated content, for requests with outcome ok.",
        "metering proxy (first SSE/NDJSON chunk with content; the first body byte of a non-streaming response); vLLM `vllm:time_to_first_token_seconds`, SGLang `sglang:time_to_first_token_seconds`. llama.cpp, TGI: none";
    /// Time per output token after the first (inter-token latency).
    INFERENCE_TPOT = "cellwatch_inference_time_per_output_token_seconds", Histogram, "seconds", ["model"], "inference",
        "Time per generated token after the first, one observation per request with outcome ok and at least two generated tokens: (last content chunk − first content chunk) / (tokens after the first chunk). Metering proxy: streamed responses with at least two content chunks only; every token of a chunk counts at the chunk's arrival, and with usage (n tokens over k content chunks) each chunk is taken to carry n/k tokens, so TPOT = (last − first) × k / (n × (k − 1)). Adapters: the server's own histogram, per request where the server exports one, else per token (one observation per generated token).",
        "metering proxy (streamed SSE/NDJSON responses; tokens from usage, else one per content chunk); vLLM 0.11+ `vllm:request_time_per_output_token_seconds` (per request), else per token `vllm:inter_token_latency_seconds` (0.11+), else `vllm:time_per_output_token_seconds` (before 0.11; one of them per page, never both); SGLang `sglang:inter_token_latency_seconds` (older: `sglang:time_per_output_token_seconds`; per token: SGLang has no per-request histogram); TGI `tgi_request_mean_time_per_token_duration` (per request: inference time, prefill included, / generated tokens). Upstream buckets. llama.cpp: none";
    /// Time a request waited in the server's queue.
    INFERENCE_QUEUE_TIME = "cellwatch_inference_queue_time_seconds", Histogram, "seconds", ["model"], "inference",
        "Time a request waited in the inference server's queue before it was scheduled, one observation per request (adapters only).",
        "vLLM `vllm:request_queue_time_seconds`, SGLang `sglang:queue_time_seconds`, TGI `tgi_request_queue_duration` (upstream buckets). Metering proxy, llama.cpp: none";
    /// Requests waiting.
    INFERENCE_WAITING = "cellwatch_inference_requests_waiting", Gauge, "", ["model"], "inference",
        "Requests received and waiting: queued in the server (adapters); metering proxy: requests in flight with no generated content yet (until the first content chunk of a stream or the first byte of a non-streaming response, or the request's end however it ends), less one while none of the model's requests is generating (that one is taken to be in prefill, not queued).",
        "metering proxy; vLLM `vllm:num_requests_waiting`, SGLang `sglang:num_queue_reqs`, llama.cpp `llamacpp:requests_deferred`, TGI `tgi_queue_size`";
    /// Tokens.
    INFERENCE_TOKENS = "cellwatch_inference_tokens_total", Counter, "", ["model", "kind"], "inference",
        "Tokens processed (kind: prompt, generated).",
        "metering proxy: `usage` (prompt/completion or input/output tokens), Ollama `prompt_eval_count`/`eval_count`; a stream counts one generated token per content chunk as it arrives, and at its end what `usage` reports beyond them (without usage, no prompt tokens). vLLM/SGLang `*:prompt_tokens_total`, `*:generation_tokens_total`; llama.cpp `llamacpp:prompt_tokens_total`, `llamacpp:tokens_predicted_total`; TGI `tgi_request_input_length_sum`, `tgi_request_generated_tokens_sum`";
    /// Requests by outcome.
    INFERENCE_REQUESTS = "cellwatch_inference_requests_total", Counter, "", ["model", "outcome"], "inference",
        "Finished requests (outcome: ok, client_error, server_error, upstream_unavailable, cancelled).",
        "metering proxy (status and stream end); vLLM `vllm:request_success_total` (abort → cancelled); TGI `tgi_request_success`, `tgi_request_failure` (validation → client_error). llama.cpp, SGLang: none";
    /// Requests in flight.
    INFERENCE_IN_FLIGHT = "cellwatch_inference_requests_in_flight", Gauge, "", ["model"], "inference",
        "Requests received and not yet finished.",
        "metering proxy; vLLM `vllm:num_requests_running`, SGLang `sglang:num_running_reqs`, llama.cpp `llamacpp:requests_processing`, TGI `tgi_batch_current_size`";
    /// Responses whose reported token usage was above the per-request bound and was clamped.
    INFERENCE_USAGE_ANOMALIES = "cellwatch_inference_usage_anomalies_total", Counter, "", ["model"], "inference",
        "Responses whose reported token usage (prompt or generated) exceeded 10,000,000 tokens; the count added to cellwatch_inference_tokens_total was clamped to that bound.",
        "metering proxy: `usage`, Ollama `prompt_eval_count`/`eval_count` above the bound";
    /// Restarts of an inference server.
    INFERENCE_UPSTREAM_RESTARTS = "cellwatch_inference_upstream_restarts_total", Counter, "", ["server"], "inference",
        "Restarts of an inference server seen by the exporter (server: the adapter kind vllm, llamacpp, sglang, tgi, or proxy for the metering proxy's upstream); 0 from the start for each configured server. An adapter counts one when a page shows a counter it reads gone down or a changed process_start_time_seconds, or when a page is fetched again after connections to the server failed; the proxy counts one when the upstream answers again after connections to it failed. One restart counts once however many counters reset.",
        "the vLLM, llama.cpp, SGLang and TGI adapters (counter resets, `process_start_time_seconds`, connect errors then a page); the metering proxy (connect errors, then a response)";
    /// Spans of metered requests lost.
    INFERENCE_SPANS_DROPPED = "cellwatch_inference_spans_dropped_total", Counter, "", ["reason"], "inference",
        "Spans of metered requests (--otlp.traces) that were to be exported and were lost (reason: queue_full when the export queue of 8,192 spans was full because the export fell behind, export_failed when the collector could not be reached or refused the batch). Present only with --otlp.traces.",
        "metering proxy with `--otlp.traces`";
    /// Adapter samples dropped.
    INFERENCE_ADAPTER_DROPPED = "cellwatch_inference_adapter_dropped_samples_total", Counter, "", ["server", "reason"], "inference",
        "Samples of an inference server's /metrics page that were dropped (reason: non_finite for NaN or ±Inf, negative, series_limit for a family with more than 2,000 series on one page, too_large for a counter above 2^53); a histogram counts as one sample when its values are invalid.",
        "the vLLM, llama.cpp, SGLang and TGI adapters";

    // --- the SLO engine (cellwatch-slo) --------------------------------------------------------
    /// Objective of an SLO.
    SLO_OBJECTIVE = "cellwatch_slo_objective_ratio", Gauge, "ratio", ["cell", "slo"], "slo-engine",
        "Objective of the SLO in the cell (0-1).",
        "the engine's configuration";
    /// SLI over a window.
    SLO_SLI = "cellwatch_slo_sli_ratio", Gauge, "ratio", ["cell", "slo", "window"], "slo-engine",
        "Share of good events (or good time slices) over the window; absent when the window has no data.",
        "the ledger: sum of good / sum of total over the window's slices";
    /// Error budget left.
    SLO_BUDGET_REMAINING = "cellwatch_slo_error_budget_remaining_ratio", Gauge, "ratio", ["cell", "slo"], "slo-engine",
        "Error budget left in the current period (1 untouched, 0 spent, below 0 overspent); absent without data.",
        "the ledger over the SLO period";
    /// Burn rate over a window.
    SLO_BURN_RATE = "cellwatch_slo_burn_rate", Gauge, "", ["cell", "slo", "window"], "slo-engine",
        "Error budget burn rate over the window: (1 - SLI) / (1 - objective); 1 spends the budget exactly over the period.",
        "the ledger";
    /// Whether an SLO has no data.
    SLO_DATA_MISSING = "cellwatch_slo_data_missing", Gauge, "", ["cell", "slo"], "slo-engine",
        "1 if the SLO had no data in the last 5 minutes (every node of the cell down or idle), else 0.",
        "the ledger";
    /// Cell efficiency.
    CELL_TOKENS_PER_KWH = "cellwatch_cell_tokens_per_kwh", Gauge, "", ["cell", "window"], "slo-engine",
        "Generated tokens per kWh of the cell's nodes over the window; absent when no energy was measured.",
        "the ledger: tokens / (joules / 3.6e6)";
    /// Cell energy per request.
    CELL_KWH_PER_1K = "cellwatch_cell_kwh_per_1k_requests", Gauge, "", ["cell", "window"], "slo-engine",
        "kWh of the cell's nodes per 1,000 requests over the window; absent without requests.",
        "the ledger: (joules / 3.6e6) / (requests / 1000)";
    /// Alerts the engine holds, as Prometheus' ALERTS series.
    SLO_ALERTS = "cellwatch_slo_alerts", Gauge, "", ["cell", "alertname", "slo", "severity", "state"], "slo-engine",
        "Alerts of the leading engine (value 1), as Prometheus' ALERTS: state pending or firing; slo is empty for cell-wide alerts. Muted alerts count too.",
        "the alert state machine";
    /// How long the last evaluation took.
    SLO_EVALUATION_DURATION = "cellwatch_slo_evaluation_duration_seconds", Gauge, "seconds", [], "slo-engine",
        "Wall time of the engine's last evaluation: summing the ledger, stepping the alerts and matching them against routes and silences.",
        "the engine's clock";
    /// Whole-cell power now.
    CELL_POWER_WATTS = "cellwatch_cell_power_watts", Gauge, "watts", ["cell"], "slo-engine",
        "Whole-cell power at the last reading: the sum of the answering nodes' whole-node power (the rule of cellwatch_node_power_watts: smc, else soc; rapl plus nvidia on Linux); absent without a reading.",
        "the scrape source's readings of cellwatch_node_power_watts";
    /// A cell's power cap.
    CELL_POWER_CAP = "cellwatch_cell_power_cap_watts", Gauge, "watts", ["cell"], "slo-engine",
        "The cell's power cap (power_cap_watts: the circuit's rating times a safety factor); absent when none is set.",
        "the engine's configuration";
    /// State of an expected link.
    CELL_LINK_STATE = "cellwatch_cell_link_state", Gauge, "", ["cell", "node", "peer", "state"], "slo-engine",
        "State of an expected link of the cell's topology between node and peer: 1 for the current state, 0 for the others (state: up, down, slow, rdma_inactive, errors, unknown: neither end reports its links yet).",
        "the exporters' cellwatch_link_up, cellwatch_link_speed_bytes_per_second, cellwatch_link_info, cellwatch_rdma_port_active and cellwatch_link_errors_total, matched to the topology";
    /// Whether a cell should take traffic.
    CELL_TAKE_TRAFFIC = "cellwatch_cell_take_traffic", Gauge, "", ["cell"], "slo-engine",
        "1 if the cell should take traffic, 0 if it should be drained (GET /api/v1/cells/CELL/health answers 200 or 503).",
        "the engine's drain decision";
    /// Why a cell should be drained.
    CELL_DRAIN_REASON = "cellwatch_cell_drain_reason", Gauge, "", ["cell", "reason"], "slo-engine",
        "1 while the reason to drain the cell holds, else 0 (reason: down, mesh_split, budget_exhausted, flapping, over_power_cap, maintenance).",
        "the engine's drain decision";
    /// Readings further apart than the source allows.
    SLO_SCRAPE_GAPS = "cellwatch_slo_scrape_gaps_total", Counter, "", ["cell", "counted"], "slo-engine",
        "Node readings the leading engine recorded more than the source's gap (scrape: max(3 × interval, 30 s); prometheus: 3 scrape intervals) after the node's previous one. counted=true: the whole increase was counted in the later reading's slice; counted=false: the previous reading was more than an hour old, so the reading only became the new baseline. Counted since the engine started.",
        "the scrape or prometheus source's readings";
}

/// Default bucket bounds (seconds) of the inference duration and time-to-first-token histograms:
/// the usual SLO thresholds from 50 ms to 120 s. A latency SLO's threshold must be one of the
/// bounds in use, so the share of requests under it is exact.
pub const DEFAULT_LATENCY_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0,
];

/// Default bucket bounds (seconds) of the time-per-output-token histogram: the bounds the
/// OpenTelemetry GenAI semantic conventions recommend for `gen_ai.server.time_per_output_token`.
/// A `tpot` SLO's threshold must be one of the bounds in use.
pub const DEFAULT_TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];

/// The whole-node energy rule, per node, as PromQL over `func` (`rate` or `increase`) of
/// `cellwatch_node_energy_joules_total` with the extra matchers `sel` over `range`: the SMC's
/// reading where a node reports it, else the SoC's (Apple nodes); else RAPL plus NVIDIA (Linux
/// nodes, whose sources are parts to add up). The engine applies the same rule to the samples it
/// scrapes; rules and dashboards use this text.
pub fn node_energy_promql(func: &str, sel: &str, range: &str) -> String {
    let e = NODE_ENERGY_JOULES.name;
    let sel = if sel.is_empty() {
        String::new()
    } else {
        format!(",{sel}")
    };
    format!(
        "({func}({e}{{source=\"smc\"{sel}}}[{range}]) or ignoring (source) {func}({e}{{source=\"soc\"{sel}}}[{range}]) or ignoring (source) sum without (source) ({func}({e}{{source=~\"rapl|nvidia\"{sel}}}[{range}])))"
    )
}

/// The same rule over the whole-node power gauge, `cellwatch_node_power_watts`.
pub fn node_power_promql(sel: &str) -> String {
    let p = NODE_POWER_WATTS.name;
    let sel = if sel.is_empty() {
        String::new()
    } else {
        format!(",{sel}")
    };
    format!(
        "({p}{{source=\"smc\"{sel}}} or ignoring (source) {p}{{source=\"soc\"{sel}}} or ignoring (source) sum without (source) ({p}{{source=~\"rapl|nvidia\"{sel}}}))"
    )
}

/// Looks a family up by its name.
pub fn by_name(name: &str) -> Option<&'static MetricDef> {
    ALL.iter().copied().find(|m| m.name == name)
}

/// The metrics reference (`docs/metrics.md`), generated from [`ALL`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Metrics reference\n\n\
         Generated from `metrics/src/lib.rs` by `cellwatch_metrics::reference_markdown()`; a test fails \
         when this file drifts. Regenerate with `UPDATE_GOLDEN=1 cargo test -p cellwatch-metrics`.\n\n\
         Series carry no `cell` or `node` labels: Prometheus target labels add them \
         (see `cellwatch_node_info`).\n",
    );
    let mut collector = "";
    for m in ALL {
        if m.collector != collector {
            collector = m.collector;
            out.push_str(&format!("\n## `{collector}`\n\n"));
            out.push_str(
                "| metric | type | unit | labels | meaning | source |\n|---|---|---|---|---|---|\n",
            );
        }
        let labels = if m.labels.is_empty() {
            "—".to_string()
        } else {
            m.labels
                .iter()
                .map(|l| format!("`{l}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let unit = if m.unit.is_empty() { "—" } else { m.unit };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            m.name,
            m.kind.as_str(),
            unit,
            labels,
            m.help.replace('|', "\\|"),
            m.source.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_follow_prometheus_conventions() {
        let mut seen = HashSet::new();
        for m in ALL {
            assert!(seen.insert(m.name), "duplicate metric name {}", m.name);
            assert!(
                m.name.starts_with("cellwatch_"),
                "{} lacks the cellwatch_ prefix",
                m.name
            );
            assert!(
                m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{} is not snake_case",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters and only counters end in _total",
                m.name
            );
            let stem = m.name.trim_end_matches("_total");
            if !m.unit.is_empty() {
                assert!(
                    stem.ends_with(m.unit),
                    "{} does not end in its unit {}",
                    m.name,
                    m.unit
                );
            }
            assert!(
                !m.help.is_empty() && !m.source.is_empty(),
                "{} lacks help or source",
                m.name
            );
            for l in m.labels {
                assert!(
                    !["cell", "node"].contains(l)
                        || m.name == NODE_INFO.name
                        || m.collector == "slo-engine",
                    "{}: {l} is a target label",
                    m.name
                );
            }
        }
    }

    #[test]
    fn by_name_finds_every_family_and_nothing_else() {
        for m in ALL {
            assert!(std::ptr::eq(by_name(m.name).unwrap(), *m));
        }
        assert!(by_name("cellwatch_nope").is_none());
    }

    #[test]
    fn reference_doc_matches_the_definitions() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/metrics.md");
        let want = reference_markdown();
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &want).unwrap();
        }
        let have = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run UPDATE_GOLDEN=1 cargo test -p cellwatch-metrics)",
                path.display()
            )
        });
        assert!(
            have == want,
            "docs/metrics.md drifted from metrics/src/lib.rs; run UPDATE_GOLDEN=1 cargo test -p cellwatch-metrics"
        );
        for m in ALL {
            assert!(have.contains(&format!("`{}`", m.name)));
        }
    }
}

/// Reading series out of text exposition (for tests and tools): label order does not matter.
pub mod exposition {
    fn split(series: &str) -> Option<(&str, Vec<(String, String)>)> {
        let series = series.trim();
        let Some(open) = series.find('{') else {
            return Some((series, Vec::new()));
        };
        let name = &series[..open];
        let body = series[open + 1..].strip_suffix('}')?;
        let mut labels = Vec::new();
        let mut chars = body.chars().peekable();
        loop {
            while chars.peek() == Some(&',') || chars.peek() == Some(&' ') {
                chars.next();
            }
            let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
            if key.is_empty() {
                break;
            }
            if chars.next() != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    '\\' => match chars.next()? {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key.trim().to_string(), value));
        }
        labels.sort();
        Some((name, labels))
    }

    /// The value of `series` (written `name{label="value",…}` in any label order) in `text`.
    pub fn value(text: &str, series: &str) -> Option<f64> {
        let want = split(series)?;
        text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            (split(s)? == want).then(|| v.parse().ok()).flatten()
        })
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn label_order_does_not_matter() {
            let text = "# HELP x y\nm{b=\"2\",a=\"1\"} 3\nm{a=\"1\"} 4\nn 5\nq{a=\"x\\\"y,z\"} 6\n";
            assert_eq!(super::value(text, r#"m{a="1",b="2"}"#), Some(3.0));
            assert_eq!(super::value(text, r#"m{a="1"}"#), Some(4.0));
            assert_eq!(super::value(text, "n"), Some(5.0));
            assert_eq!(super::value(text, r#"q{a="x\"y,z"}"#), Some(6.0));
            assert_eq!(super::value(text, "m"), None);
        }
    }
}

/// Names, units, attribute keys and recommended bucket bounds of the OpenTelemetry GenAI
/// semantic conventions that cellwatch emits: the OTLP push with `--otlp.semconv genai|both`
/// and the metering proxy's per-request spans. The one place these names are spelled.
///
/// The version followed is [`SEMCONV_VERSION`] (schema URL [`SCHEMA_URL`]): the last release of
/// `open-telemetry/semantic-conventions` that holds the GenAI conventions
/// (`docs/gen-ai/gen-ai-metrics.md`, `docs/gen-ai/gen-ai-spans.md`). Since v1.42 they live in
/// `open-telemetry/semantic-conventions-genai`, which has published only development
/// pre-releases (`schemas/gen-ai-dev/…`) and there replaces `gen_ai.client.token.usage` with
/// counters; the `gen_ai.server.*` histograms, their bounds and the span attributes used here
/// are unchanged there. Every GenAI name is at development stability. cellwatch never emitted
/// the v1.36-or-older GenAI conventions (`gen_ai.system`), so what
/// `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental` asks for (the latest experimental
/// version, not the old one) is what it always emits.
pub mod genai {
    /// The semantic-conventions release followed.
    pub const SEMCONV_VERSION: &str = "1.41.0";
    /// Its schema URL, set on the GenAI scope of the OTLP push and on the proxy's tracer.
    pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.41.0";
    /// `OTEL_SEMCONV_STABILITY_OPT_IN` value that opts in to the latest experimental GenAI
    /// conventions.
    pub const OPT_IN: &str = "gen_ai_latest_experimental";
    /// The environment variable holding opt-ins (a comma-separated list).
    pub const OPT_IN_ENV: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";

    /// A GenAI histogram: name, UCUM unit, description and the recommended explicit bounds.
    #[derive(Debug)]
    pub struct Histogram {
        /// Metric name.
        pub name: &'static str,
        /// UCUM unit.
        pub unit: &'static str,
        /// Description (the conventions' brief).
        pub description: &'static str,
        /// The `ExplicitBucketBoundaries` the conventions recommend.
        pub bounds: &'static [f64],
    }

    /// Bounds recommended for `gen_ai.server.request.duration` (and the client duration).
    pub const DURATION_BOUNDS: &[f64] = &[
        0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
    ];
    /// Bounds recommended for `gen_ai.server.time_to_first_token`.
    pub const TTFT_BOUNDS: &[f64] = &[
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    ];
    /// Bounds recommended for `gen_ai.server.time_per_output_token`.
    pub const TPOT_BOUNDS: &[f64] = super::DEFAULT_TPOT_BUCKETS;
    /// Bounds recommended for `gen_ai.client.token.usage`.
    pub const TOKEN_BOUNDS: &[f64] = &[
        1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0,
        4194304.0, 16777216.0, 67108864.0,
    ];

    /// `gen_ai.server.request.duration`: every request, failed ones with `error.type`.
    pub static SERVER_REQUEST_DURATION: Histogram = Histogram {
        name: "gen_ai.server.request.duration",
        unit: "s",
        description: "Generative AI server request duration such as time-to-last byte or last output token.",
        bounds: DURATION_BOUNDS,
    };
    /// `gen_ai.server.time_to_first_token`: successful responses.
    pub static SERVER_TTFT: Histogram = Histogram {
        name: "gen_ai.server.time_to_first_token",
        unit: "s",
        description: "Time to generate first token for successful responses.",
        bounds: TTFT_BOUNDS,
    };
    /// `gen_ai.server.time_per_output_token`: successful streamed responses.
    pub static SERVER_TPOT: Histogram = Histogram {
        name: "gen_ai.server.time_per_output_token",
        unit: "s",
        description: "Time per output token generated after the first token for successful responses.",
        bounds: TPOT_BOUNDS,
    };
    /// `gen_ai.client.token.usage`, by `gen_ai.token.type`.
    pub static CLIENT_TOKEN_USAGE: Histogram = Histogram {
        name: "gen_ai.client.token.usage",
        unit: "{token}",
        description: "Number of input and output tokens used.",
        bounds: TOKEN_BOUNDS,
    };
    /// Every GenAI histogram the exporter emits.
    pub static HISTOGRAMS: &[&Histogram] = &[
        &SERVER_REQUEST_DURATION,
        &SERVER_TTFT,
        &SERVER_TPOT,
        &CLIENT_TOKEN_USAGE,
    ];

    /// `gen_ai.operation.name`.
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    /// `gen_ai.provider.name`.
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// `gen_ai.request.model`.
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    /// `gen_ai.response.model`.
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    /// `gen_ai.token.type` (`input`, `output`).
    pub const TOKEN_TYPE: &str = "gen_ai.token.type";
    /// `error.type`.
    pub const ERROR_TYPE: &str = "error.type";
    /// `server.address`.
    pub const SERVER_ADDRESS: &str = "server.address";
    /// `server.port`.
    pub const SERVER_PORT: &str = "server.port";
    /// `gen_ai.usage.input_tokens` (span).
    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// `gen_ai.usage.output_tokens` (span).
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// `gen_ai.response.finish_reasons` (span, string array).
    pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    /// `gen_ai.response.time_to_first_chunk` (span, seconds): from the GenAI registry after
    /// v1.41 (development); v1.41 has no span attribute for it.
    pub const RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";
    /// Time per output token on a span (seconds): no convention defines one, so cellwatch's own
    /// namespace.
    pub const CELLWATCH_TIME_PER_OUTPUT_TOKEN: &str = "cellwatch.gen_ai.time_per_output_token";

    /// `gen_ai.operation.name` of chat APIs (chat/completions, Responses, Anthropic messages,
    /// Ollama chat).
    pub const OPERATION_CHAT: &str = "chat";
    /// `gen_ai.operation.name` of completion APIs (completions, Ollama generate).
    pub const OPERATION_TEXT_COMPLETION: &str = "text_completion";
    /// `gen_ai.provider.name` of OpenAI-compatible routes: the telemetry flavour, whatever
    /// server (EXO, mlx-lm, vLLM, llama.cpp) answers them.
    pub const PROVIDER_OPENAI: &str = "openai";
    /// `gen_ai.provider.name` of Anthropic-compatible routes (`/v1/messages`).
    pub const PROVIDER_ANTHROPIC: &str = "anthropic";
    /// `gen_ai.provider.name` of Ollama's own routes: not a well-known value; the conventions
    /// allow custom ones.
    pub const PROVIDER_OLLAMA: &str = "ollama";

    /// `gen_ai.token.type` values.
    pub const TOKEN_INPUT: &str = "input";
    /// `gen_ai.token.type` values.
    pub const TOKEN_OUTPUT: &str = "output";

    #[cfg(test)]
    mod tests {
        #[test]
        fn bounds_increase() {
            for h in super::HISTOGRAMS {
                assert!(h.bounds.windows(2).all(|w| w[0] < w[1]), "{}", h.name);
            }
        }
    }
}
