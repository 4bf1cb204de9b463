//! The YAML as written: serde types with `deny_unknown_fields`, defaults; never used past
//! validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::check::read_secret_file;
use super::message::duration;

pub(super) fn default_scrape_interval() -> Duration {
    Duration::from_secs(15)
}

pub(super) fn default_buckets() -> Vec<f64> {
    cellwatch_metrics::DEFAULT_LATENCY_BUCKETS.to_vec()
}

pub(super) fn default_tpot_buckets() -> Vec<f64> {
    cellwatch_metrics::DEFAULT_TPOT_BUCKETS.to_vec()
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// The cells: groups of nodes that serve together and page together.
    pub cells: Vec<RawCell>,
    /// Where the engine reads its data. Default: `scrape` (no Prometheus needed).
    #[serde(default, with = "yaml_serde::with::singleton_map")]
    pub source: RawSource,
    /// Bucket bounds (seconds) of the exporters' latency and TTFT histograms
    /// (`--collector.inference.buckets`). Default: the exporter's default.
    #[serde(default = "default_buckets")]
    pub buckets: Vec<f64>,
    /// Bucket bounds (seconds) of the exporters' time-per-output-token histogram; a `tpot`
    /// threshold must be one of them. Default: the exporter's default (the OpenTelemetry GenAI
    /// conventions' bounds).
    #[serde(default = "default_tpot_buckets")]
    pub tpot_buckets: Vec<f64>,
    /// The objectives.
    #[serde(default)]
    pub slos: Vec<RawSlo>,
    /// OpenSLO v1 files (paths relative to this file) whose `SLO` and `SLI` documents are
    /// imported as more objectives (source: prometheus only).
    #[serde(default)]
    pub openslo: Vec<PathBuf>,
    /// Alerting: grouping, timings, receivers and routes. Omitted: alerts are evaluated (and
    /// shown in the API) but nobody is notified.
    #[serde(default)]
    pub alerting: RawAlerting,
    /// Maintenance windows per cell: a cron schedule of starts and a duration. A window mutes
    /// the cell's notifications, and with `exclude_from_budget` keeps its slices out of the
    /// budgets too.
    #[serde(default)]
    pub maintenance: Vec<RawMaintenance>,
    /// Cell health thresholds: link errors, flaps, power warnings, restart loops, topology
    /// learning. Omitted: the defaults below.
    #[serde(default)]
    pub health: RawHealth,
}

/// Cell health thresholds, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    /// A link with more interface errors per second than this (both ends, received and
    /// transmitted) is unhealthy (default 1).
    #[serde(default = "d_one")]
    pub link_error_rate: f64,
    /// A link that went down or came up this many times within `flap_window` is flapping
    /// (default 4).
    #[serde(default = "d_four")]
    pub flap_transitions: u32,
    /// The window of `flap_transitions` (default 10m).
    #[serde(default = "d_secs::<600>", with = "humantime_duration")]
    pub flap_window: Duration,
    /// A link unhealthy (or a mesh split) for this long raises its alert (default 1m).
    #[serde(default = "d_secs::<60>", with = "humantime_duration")]
    pub link_for: Duration,
    /// Share of `power_cap_watts` above which a cell's power warns (default 0.9).
    #[serde(default = "d_warn_share")]
    pub power_warn_share: f64,
    /// Power above the warn share for this long raises the power page (default 2m).
    #[serde(default = "d_secs::<120>", with = "humantime_duration")]
    pub power_warn_for: Duration,
    /// This many restarts of an inference server, or of an exporter child, within
    /// `restart_window` is a restart loop (default 3).
    #[serde(default = "d_three")]
    pub restarts: u32,
    /// The window of `restarts` (default 15m).
    #[serde(default = "d_secs::<900>", with = "humantime_duration")]
    pub restart_window: Duration,
    /// `topology: learn` takes the links seen healthy over this long after the engine first
    /// sees the cell, and stores them in the ledger (default 1h).
    #[serde(default = "d_secs::<3600>", with = "humantime_duration")]
    pub learn_for: Duration,
}

impl Default for RawHealth {
    fn default() -> Self {
        yaml_serde::from_str("{}").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

fn d_one() -> f64 {
    1.0
}

fn d_four() -> u32 {
    4
}

fn d_three() -> u32 {
    3
}

fn d_warn_share() -> f64 {
    0.9
}

/// A maintenance window, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMaintenance {
    /// Name, for people.
    pub name: String,
    /// The cells it covers; omitted: every cell.
    #[serde(default)]
    pub cells: Option<Vec<String>>,
    /// When windows start: a cron expression with seconds first (`0 0 3 * * Sun`: Sundays at
    /// 03:00), as the `cron` crate reads it.
    pub schedule: String,
    /// Time zone of the schedule (IANA name, default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// How long each window lasts, e.g. `2h`.
    #[serde(with = "humantime_duration")]
    pub duration: Duration,
    /// Leave the window's slices out of every budget, not only its notifications (what
    /// Nobl9 calls a budget adjustment). Default false.
    #[serde(default)]
    pub exclude_from_budget: bool,
}

pub(super) fn d_secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

/// Alerting, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerting {
    /// Wait before the first notification of a new incident, to gather its alerts (default 30s).
    #[serde(default = "d_secs::<30>", with = "humantime_duration")]
    pub group_wait: Duration,
    /// Wait between notifications of an incident whose alerts changed (default 5m).
    #[serde(default = "d_secs::<300>", with = "humantime_duration")]
    pub group_interval: Duration,
    /// Notify a still-firing incident again after this long (default 4h).
    #[serde(default = "d_secs::<14400>", with = "humantime_duration")]
    pub repeat_interval: Duration,
    /// An SLO without data for this long raises a no-data ticket (default 10m).
    #[serde(default = "d_secs::<600>", with = "humantime_duration")]
    pub no_data_for: Duration,
    /// A cell none of whose exporters answers for this long raises a cell-down page, which
    /// inhibits the cell's other alerts (default 1m).
    #[serde(default = "d_secs::<60>", with = "humantime_duration")]
    pub cell_down_for: Duration,
    /// How long every alert of a paging incident must stay resolved before its one resolve
    /// notification goes out; an alert that fires again within it rejoins the incident without
    /// a new page (default 5m).
    #[serde(default = "d_secs::<300>", with = "humantime_duration")]
    pub resolve_wait: Duration,
    /// The engine's own URL, for links to its status page in notifications.
    #[serde(default)]
    pub external_url: Option<String>,
    /// A dashboard URL for notifications; `{cell}` is replaced by the cell.
    #[serde(default)]
    pub dashboard_url: Option<String>,
    /// Where notifications go.
    #[serde(default)]
    pub receivers: Vec<RawReceiver>,
    /// Which alerts go where: the first route whose matchers all hold (and later ones with
    /// `continue: true`). Omitted: everything goes to the first receiver.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Budget reports mailed on a schedule, each to a receiver's email.
    #[serde(default)]
    pub reports: Vec<RawReport>,
    /// The multiwindow burn-rate alerts. Omitted: the SRE Workbook's (page: 2 % of the budget
    /// over 1h/5m, 5 % over 6h/30m; ticket: 10 % over 1d/2h and over 3d/6h), whose factors are
    /// scaled to each SLO's period (14.4, 6, 3 and 1 for 30 days).
    #[serde(default)]
    pub burn_rates: Vec<RawBurnRate>,
    /// A file holding the bearer token that writes to the API (silences) need.
    #[serde(default)]
    pub api_token_file: Option<PathBuf>,
    /// An environment variable holding that token. Without either, the API is read-only.
    #[serde(default)]
    pub api_token_env: Option<String>,
}

impl Default for RawAlerting {
    fn default() -> Self {
        yaml_serde::from_str("{}").unwrap_or_else(|_| unreachable!("every field has a default"))
    }
}

/// A receiver: any of its integrations.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// Name, used by routes.
    pub name: String,
    /// Mail over SMTP.
    #[serde(default)]
    pub email: Option<Email>,
    /// An HTTP POST of Alertmanager's webhook payload (version 4).
    #[serde(default)]
    pub webhook: Option<Webhook>,
    /// PagerDuty Events API v2: trigger and resolve, deduplicated per incident.
    #[serde(default)]
    pub pagerduty: Option<PagerDuty>,
    /// A Slack incoming webhook.
    #[serde(default)]
    pub slack: Option<Slack>,
    /// Forward the alerts to an Alertmanager (`POST /api/v2/alerts`), for teams that route there.
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerTarget>,
}

/// PagerDuty delivery.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PagerDuty {
    /// A file holding the integration's routing key (read at each delivery).
    #[serde(default)]
    pub routing_key_file: Option<PathBuf>,
    /// An environment variable holding it.
    #[serde(default)]
    pub routing_key_env: Option<String>,
    /// The Events API v2 endpoint.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
}

pub(super) fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

/// Slack delivery.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Slack {
    /// A file holding the incoming-webhook URL (it is a secret; read at each delivery).
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The URL itself.
    #[serde(default)]
    pub url: Option<String>,
}

/// Alertmanager forwarding.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerTarget {
    /// The Alertmanager's base URL, e.g. `http://alertmanager:9093`.
    pub url: String,
}

/// SMTP delivery.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Email {
    /// Recipients.
    pub to: Vec<String>,
    /// Sender.
    pub from: String,
    /// The SMTP server, `host:port`.
    pub smarthost: String,
    /// `starttls` (default), `implicit` (TLS from the first byte, usually port 465) or `none`.
    #[serde(default = "default_tls")]
    pub tls: String,
    /// User name for SMTP AUTH.
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (read at each delivery).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// An environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
}

pub(super) fn default_tls() -> String {
    "starttls".into()
}

/// Webhook delivery.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// The URL to POST to.
    pub url: String,
}

/// One multiwindow burn-rate alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurnRate {
    /// `page` or `ticket`.
    pub severity: String,
    /// The long window: one of 5m, 30m, 1h, 2h, 6h, 1d, 3d.
    pub long: String,
    /// The short window (the Workbook takes 1/12 of the long one), from the same list.
    pub short: String,
    /// The share of the period's budget that burning at the threshold for the long window
    /// spends (0.02 = 2 %): the factor is `budget × period / long`.
    pub budget: f64,
}

/// A scheduled budget report.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReport {
    /// Name, in the subject.
    pub name: String,
    /// When: a cron expression, seconds first (`0 0 8 * * Mon`: Mondays at 08:00).
    pub schedule: String,
    /// Time zone of the schedule (default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// The range each report covers, ending when it is sent (default 7d).
    #[serde(default = "d_secs::<604800>", with = "humantime_duration")]
    pub range: Duration,
    /// The receiver whose email gets it.
    pub receiver: String,
}

/// A route.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The receiver.
    pub receiver: String,
    /// Label equality matchers (`severity: page`, `cell: studio-a`).
    #[serde(default)]
    pub matchers: BTreeMap<String, String>,
    /// Label regular-expression matchers, each matching the whole value (`cell: "studio-.*"`).
    #[serde(default)]
    pub match_re: BTreeMap<String, String>,
    /// Go on matching later routes.
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// How the route notifies. `incident` (default): a cell's incident opens with one
    /// notification; alerts that join it (another SLO, a ticket) send nothing more, a ticket-only
    /// incident that gains a page escalates with a new page, and one resolve goes out when the
    /// whole incident is over, listing what fired. Ticket-only incidents keep Alertmanager's
    /// grouping. `grouped`: Alertmanager's grouping for everything (group_interval,
    /// repeat_interval).
    #[serde(default)]
    pub notify: NotifyPolicy,
    /// During an open paging incident, one digest of what joined or resolved at most this often
    /// (default 0s: none; `incident` routes only).
    #[serde(default, with = "humantime_duration")]
    pub update_interval: Duration,
}

/// One cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCell {
    /// Cell name: the `cell` label everywhere.
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<RawNode>,
    /// The links its nodes should have: `mesh` (a link between every pair), `chain` (each node
    /// to the next, in the order of `nodes`), `learn` (the links seen healthy over the first
    /// `health.learn_for`, stored in the ledger), or a list of pairs, each end a node or
    /// `node:port` (`[studio-a-1:en2, studio-a-2:en3]`). Omitted: links are not checked.
    #[serde(default)]
    pub topology: Option<RawTopology>,
    /// The speed every expected link should run at, e.g. `80Gb/s`. Omitted: not checked.
    #[serde(default)]
    pub link_speed: Option<String>,
    /// RDMA must be active on both ends of every expected link (default false).
    #[serde(default)]
    pub rdma: bool,
    /// The cell's power cap in watts: the circuit's rating times a safety factor. Omitted: no
    /// power cap.
    #[serde(default)]
    pub power_cap_watts: Option<f64>,
}

/// A cell's topology, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawTopology {
    /// `mesh`, `chain` or `learn`.
    Named(String),
    /// Pairs of ends.
    Links(Vec<Vec<String>>),
}

/// One node of a cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Node name: the `node` label.
    pub name: String,
    /// The exporter's metrics URL, e.g. `http://studio-a-1.local:9817/metrics`.
    pub url: String,
    /// Extra target labels for generated Prometheus targets.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// The data source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSource {
    /// The engine scrapes every node's exporter itself.
    Scrape {
        /// How often (default 15s).
        #[serde(default = "default_scrape_interval", with = "humantime_duration")]
        interval: Duration,
        /// CA certificates (PEM) to trust besides the public roots, for exporters served over
        /// TLS with an internal CA or a self-signed certificate.
        #[serde(default)]
        ca_file: Option<PathBuf>,
        /// Credentials for exporters behind basic authentication.
        #[serde(default)]
        basic_auth: Option<BasicAuth>,
    },
    /// PromQL over a Prometheus-compatible HTTP API (Prometheus, Thanos, Mimir, VictoriaMetrics).
    /// The exporters' series must carry `cell` and `node` labels (`cellwatch-slo targets`
    /// writes file_sd targets that set them).
    Prometheus {
        /// Base URL, e.g. `http://prometheus:9090` (the API is under `/api/v1/`).
        url: String,
        /// How often to query (default 15s).
        #[serde(default = "default_scrape_interval", with = "humantime_duration")]
        interval: Duration,
        /// How far behind the present to read, so that every scrape has been ingested
        /// (default 1m; at least the scrape interval plus the scrape timeout).
        #[serde(default = "default_delay", with = "humantime_duration")]
        delay: Duration,
        /// Timeout of one query (default 30s).
        #[serde(default = "default_query_timeout", with = "humantime_duration")]
        timeout: Duration,
        /// Extra HTTP headers for every query, e.g. `X-Scope-OrgID` for Mimir or
        /// `Authorization`.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
}

pub(super) fn default_delay() -> Duration {
    Duration::from_secs(60)
}

pub(super) fn default_query_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource::Scrape {
            interval: default_scrape_interval(),
            ca_file: None,
            basic_auth: None,
        }
    }
}

/// Basic-authentication credentials; the password is read from its file at every scrape.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// The user.
    pub username: String,
    /// A file holding the password (white space at both ends is ignored: see
    /// [`crate::util::secret`]).
    pub password_file: PathBuf,
}

impl BasicAuth {
    /// The password, read now.
    pub fn password(&self) -> Result<String, String> {
        read_secret_file(&self.password_file)
    }
}

mod humantime_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        super::duration(&s).map_err(serde::de::Error::custom)
    }
}

/// One objective.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSlo {
    /// Name: the `slo` label.
    pub name: String,
    /// What it promises, for people.
    #[serde(default)]
    pub description: Option<String>,
    /// The cells it applies to; omitted: every cell.
    #[serde(default)]
    pub cells: Option<Vec<String>>,
    /// Target share of good events (or good slices), between 0 and 1: 0.99 = 99 %.
    pub objective: f64,
    /// `30d`-style rolling window (1h to 400d), or `calendar-month`.
    pub period: String,
    /// Time zone of a calendar period (IANA name, default UTC).
    #[serde(default)]
    pub timezone: Option<String>,
    /// `occurrences` (good events / all events) or `timeslices` (good slices / judged slices).
    /// Default: `occurrences`, but `timeslices` for `tokens_per_kwh`.
    #[serde(default)]
    pub budgeting: Option<String>,
    /// Length of a time slice (timeslices budgeting; default 5m).
    #[serde(default)]
    pub slice: Option<String>,
    /// Share of good events that makes a slice good (timeslices budgeting of an event ratio;
    /// default: the objective).
    #[serde(default)]
    pub slice_target: Option<f64>,
    /// Windows with fewer events (or judged slices) are too thin to judge: no burn alert fires
    /// on them. Omitted: automatic (each burn tier of an occurrence SLO fires only when its long
    /// window holds enough events that one bad event alone stays under its threshold; no minimum
    /// for time slices).
    #[serde(default)]
    pub min_events: Option<u64>,
    /// The indicator: one of `latency`, `ttft`, `tpot`, `availability`, `tokens_per_kwh`,
    /// `throughput`, `link_health`, `power_cap`, `ratio`.
    #[serde(with = "yaml_serde::with::singleton_map")]
    pub sli: RawSli,
}

/// The indicator.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum RawSli {
    /// Share of requests (outcome ok) finishing under `threshold`
    /// (`cellwatch_inference_request_duration_seconds`).
    Latency {
        /// A bucket bound of the histogram, e.g. `2s`.
        threshold: String,
    },
    /// Share of requests whose first token came under `threshold`
    /// (`cellwatch_inference_time_to_first_token_seconds`).
    Ttft {
        /// A bucket bound of the histogram, e.g. `500ms`.
        threshold: String,
    },
    /// Share of streamed requests (outcome ok) whose time per output token, after the first,
    /// was under `threshold` (`cellwatch_inference_time_per_output_token_seconds`).
    Tpot {
        /// A bucket bound of the histogram (`tpot_buckets`), e.g. `100ms`.
        threshold: String,
    },
    /// Share of minutes (time slices) in which the cell generated at least `floor` tokens per
    /// second while requests were waiting: a slice is judged only when requests were waiting
    /// (`cellwatch_inference_requests_waiting` above 0, summed over the node's models) in at
    /// least half of the cell's readings in it that carry that gauge (a reading: one node's
    /// scrape; nodes without inference series, such as an EXO ring's non-entry nodes, do not
    /// count). A backlog persists across readings; a request waiting for its first token,
    /// caught by one scrape of a lightly used cell, does not. Other slices are idle (neither
    /// good nor bad), so an idle, lightly loaded or healthy cell never burns. The generated
    /// Prometheus rules sample each node's gauge every 15 s, the scrape interval of
    /// `alerts/prometheus.yml`.
    Throughput {
        /// Generated tokens per second of the whole cell, e.g. 20.
        floor: f64,
    },
    /// Share of requests with a non-error outcome (ok or client_error; cancelled requests are
    /// not counted) (`cellwatch_inference_requests_total`).
    Availability {},
    /// Share of slices in which the cell delivered at least `threshold` tokens per kWh
    /// (generated tokens over the whole-node energy of every node of the cell). Slices with
    /// fewer than `min_tokens` tokens are idle: neither good nor bad.
    TokensPerKwh {
        /// Tokens per kWh, e.g. 150000.
        threshold: f64,
        /// Fewest generated tokens for a slice to count (default 100).
        #[serde(default = "default_min_tokens")]
        min_tokens: u64,
    },
    /// Share of minutes (time slices) in which every expected link of the cell's `topology` is
    /// up, at `link_speed`, with RDMA active where `rdma` is set and errors under
    /// `health.link_error_rate` (source: scrape).
    LinkHealth {},
    /// Share of minutes (time slices) whose peak whole-cell power stays at or under the cell's
    /// `power_cap_watts` (source: scrape).
    PowerCap {},
    /// Any ratio of two PromQL queries (source: prometheus only; OpenSLO imports become these).
    /// Results with a `cell` label count for that cell; without one, for the SLO's only cell.
    Ratio {
        /// Counts good events (give `good` or `bad`).
        #[serde(default)]
        good: Option<String>,
        /// Counts bad events: good = total − bad.
        #[serde(default)]
        bad: Option<String>,
        /// Counts every event.
        total: String,
        /// true (default): the queries return counters, whose increases are the events (resets
        /// handled); false: each value is the number of events since the previous point (points are one
        /// source interval apart, at most 1m).
        #[serde(default = "default_true")]
        counter: bool,
    },
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_min_tokens() -> u64 {
    100
}

/// How a route notifies (see the `notify` key of a route).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyPolicy {
    /// One notification per cell incident, escalation, one resolve.
    #[default]
    Incident,
    /// Alertmanager's grouping.
    Grouped,
}
