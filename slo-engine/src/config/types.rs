//! The resolved configuration every other layer reads: cells, sources, SLOs, alerting, maintenance.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::raw::{BasicAuth, NotifyPolicy};
use super::receiver::Receiver;
use super::secret_source::TokenSource;
use crate::model::{Labels, MONTH_SHORTEST, Matcher, burn_factor, low_traffic_guard};
use crate::util::text::quote;

/// Timings, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Wait before the first notification of a new group.
    pub group_wait: i64,
    /// Wait between notifications of a group whose alerts changed.
    pub group_interval: i64,
    /// Send a still-firing group again after this long.
    pub repeat_interval: i64,
    /// An SLO without data for this long raises a no-data alert.
    pub no_data_for: i64,
    /// A cell whose exporters all fail for this long raises a cell-down page.
    pub cell_down_for: i64,
    /// How long a paging incident's alerts must all stay resolved before it resolves.
    #[serde(default)]
    pub resolve_wait: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            group_wait: 30,
            group_interval: 300,
            repeat_interval: 4 * 3600,
            no_data_for: 600,
            cell_down_for: 60,
            resolve_wait: 300,
        }
    }
}

/// A maintenance window: a cron schedule of starts, each lasting `duration`, for some cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    /// Name.
    pub name: String,
    /// The cells it covers (a set: asked of every cell at every scrape).
    pub cells: std::collections::BTreeSet<String>,
    /// Starts (the `cron` crate's syntax, seconds first: `0 0 3 * * Sun`).
    pub schedule: cron::Schedule,
    /// Time zone of the schedule.
    pub timezone: chrono_tz::Tz,
    /// Length of each window (seconds).
    pub duration: i64,
    /// Its slices are left out of the budgets too (not only its notifications).
    pub exclude_from_budget: bool,
}

impl Maintenance {
    /// Whether `cell` is in a window at `at` (Unix seconds): a start in `(at − duration, at]`.
    pub fn active(&self, cell: &str, at: i64) -> bool {
        use chrono::TimeZone;
        if !self.cells.contains(cell) {
            return false;
        }
        let Some(from) = self.timezone.timestamp_opt(at - self.duration, 0).single() else {
            return false;
        };
        self.schedule
            .after(&from)
            .next()
            .is_some_and(|start| start.timestamp() <= at)
    }
}

/// Where alerts go: the first route whose matchers all hold (`continue` goes on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Receiver name.
    pub receiver: String,
    /// Label equality matchers.
    pub matchers: Labels,
    /// Label regular-expression matchers (whole value), as Alertmanager's `match_re`.
    #[serde(default)]
    pub match_re: Vec<Matcher>,
    /// Keep matching later routes.
    #[serde(default)]
    pub continue_: bool,
    /// How the route notifies.
    #[serde(default)]
    pub notify: NotifyPolicy,
    /// Seconds between digests of an open paging incident (0: none).
    #[serde(default)]
    pub update_interval: i64,
}

/// One multiwindow burn-rate alert, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct BurnRate {
    /// `page` or `ticket`.
    pub severity: String,
    /// Long window, seconds.
    pub long: u64,
    /// Short window, seconds.
    pub short: u64,
    /// Share of the budget.
    pub budget: f64,
}

/// The SRE Workbook's burn-rate alerts.
pub fn default_burn_rates() -> Vec<BurnRate> {
    crate::model::BURN_ALERTS
        .iter()
        .map(|(severity, long, short, budget)| BurnRate {
            severity: severity.to_string(),
            long: *long,
            short: *short,
            budget: *budget,
        })
        .collect()
}

/// Alerting, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alerting {
    /// Timings.
    pub timing: crate::config::Timing,
    /// The engine's URL.
    pub external_url: Option<String>,
    /// Dashboard URL template.
    pub dashboard_url: Option<String>,
    /// Receivers by name.
    pub receivers: BTreeMap<String, Receiver>,
    /// Routes.
    pub routes: Vec<crate::config::Route>,
    /// Where the API's bearer token is.
    pub api_token: Option<TokenSource>,
    /// Scheduled budget reports.
    pub reports: Vec<ReportSchedule>,
    /// Burn-rate alerts.
    pub burn_rates: Vec<BurnRate>,
}

/// A scheduled budget report, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportSchedule {
    /// Name.
    pub name: String,
    /// When.
    pub schedule: cron::Schedule,
    /// In which time zone.
    pub timezone: chrono_tz::Tz,
    /// Range, seconds.
    pub range: i64,
    /// Receiver (with an email integration).
    pub receiver: String,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Cells, in file order.
    pub cells: Vec<Cell>,
    /// Data source.
    pub source: Source,
    /// Histogram bucket bounds, seconds.
    pub buckets: Vec<f64>,
    /// Bucket bounds of the time-per-output-token histogram, seconds.
    pub tpot_buckets: Vec<f64>,
    /// Objectives, in file order.
    pub slos: Vec<Slo>,
    /// Alerting.
    pub alerting: Alerting,
    /// Maintenance windows.
    pub maintenance: Vec<crate::config::Maintenance>,
    /// Cell health thresholds.
    pub health: HealthRules,
}

impl Config {
    /// What `cellwatch-slo check` warns about without refusing the file: an occurrence SLO whose
    /// fixed `min_events` is under the automatic low-traffic guard of one of its page tiers, so that
    /// a single failed request can page (the first such tier is named). A calendar month counts as
    /// its shortest, where the guard is highest.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for slo in &self.slos {
            let (MinEvents::Fixed(min), Budgeting::Occurrences) = (slo.min_events, slo.budgeting)
            else {
                continue;
            };
            let period = match slo.period {
                Period::Rolling(d) => d.as_secs(),
                Period::CalendarMonth(_) => MONTH_SHORTEST,
            };
            let tier = self
                .alerting
                .burn_rates
                .iter()
                .filter(|b| b.severity == "page" && b.long <= period)
                .map(|b| {
                    let f = burn_factor(b.budget, b.long, period);
                    (b.long, low_traffic_guard(slo.objective, f))
                })
                .find(|(_, guard)| min < *guard);
            if let Some((long, guard)) = tier {
                let window = crate::util::promql::duration(long);
                out.push(format!(
                    "SLO {} (objective {}): min_events {min} is under the low-traffic guard of its {window} page: \
                     a single failed request would page when the {window} window holds fewer than {guard} events \
                     (omit min_events for the automatic guard, or set at least {guard})",
                    quote(&slo.name),
                    slo.objective
                ));
            }
        }
        out
    }
}

/// A cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Name.
    pub name: String,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// The links its nodes should have (`None`: links are not checked).
    pub topology: Option<Topology>,
    /// Expected link speed, bytes per second.
    pub link_speed: Option<f64>,
    /// RDMA must be active on every expected link.
    pub rdma: bool,
    /// Power cap, watts.
    pub power_cap_watts: Option<f64>,
}

/// The links a cell's nodes should have.
#[derive(Debug, Clone, PartialEq)]
pub enum Topology {
    /// Every pair of nodes.
    Mesh,
    /// Each node to the next.
    Chain,
    /// The links seen healthy over `health.learn_for`, then stored.
    Learn,
    /// These links.
    Links(Vec<ExpectedLink>),
}

/// One end of an expected link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkEnd {
    /// The node.
    pub node: String,
    /// Its port (`link` label), when given.
    pub port: Option<String>,
}

/// An expected link.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExpectedLink {
    /// One end.
    pub a: LinkEnd,
    /// The other.
    pub b: LinkEnd,
}

impl ExpectedLink {
    /// A link between two nodes, ports to be found.
    pub fn between(a: &str, b: &str) -> ExpectedLink {
        let end = |n: &str| LinkEnd {
            node: n.to_string(),
            port: None,
        };
        ExpectedLink {
            a: end(a),
            b: end(b),
        }
    }
}

impl Cell {
    /// The expected links of a fixed topology (mesh, chain, list); `learned` for `learn`
    /// (empty until learned); none without a topology.
    pub fn expected_links(&self, learned: Option<&[ExpectedLink]>) -> Vec<ExpectedLink> {
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        match &self.topology {
            None => Vec::new(),
            Some(Topology::Mesh) => {
                let mut out = Vec::new();
                for (i, a) in names.iter().enumerate() {
                    for b in &names[i + 1..] {
                        out.push(ExpectedLink::between(a, b));
                    }
                }
                out
            }
            Some(Topology::Chain) => names
                .windows(2)
                .map(|w| ExpectedLink::between(w[0], w[1]))
                .collect(),
            Some(Topology::Learn) => learned.map(<[_]>::to_vec).unwrap_or_default(),
            Some(Topology::Links(l)) => l.clone(),
        }
    }
}

/// Cell health thresholds, resolved (seconds for durations).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthRules {
    /// Most interface errors per second on a healthy link.
    pub link_error_rate: f64,
    /// Transitions within `flap_window` that make a link flapping.
    pub flap_transitions: u32,
    /// Flap window.
    pub flap_window: i64,
    /// Hold of link and mesh-split alerts.
    pub link_for: i64,
    /// Share of the cap that warns.
    pub power_warn_share: f64,
    /// Hold of the power page.
    pub power_warn_for: i64,
    /// Restarts within `restart_window` that make a loop.
    pub restarts: u32,
    /// Restart window.
    pub restart_window: i64,
    /// How long `topology: learn` watches.
    pub learn_for: i64,
}

impl Default for HealthRules {
    fn default() -> Self {
        HealthRules {
            link_error_rate: 1.0,
            flap_transitions: 4,
            flap_window: 600,
            link_for: 60,
            power_warn_share: 0.9,
            power_warn_for: 120,
            restarts: 3,
            restart_window: 900,
            learn_for: 3600,
        }
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Name.
    pub name: String,
    /// Metrics URL.
    pub url: String,
    /// Extra target labels.
    pub labels: BTreeMap<String, String>,
}

/// The data source.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Scrape the exporters.
    Scrape {
        /// Interval.
        interval: Duration,
        /// Extra trusted CA certificates, PEM.
        ca_pem: Option<Vec<u8>>,
        /// Basic-authentication credentials.
        basic_auth: Option<BasicAuth>,
    },
    /// Query Prometheus.
    Prometheus {
        /// Base URL, without a trailing slash.
        url: String,
        /// Interval.
        interval: Duration,
        /// How far behind the present to read.
        delay: Duration,
        /// Query timeout.
        timeout: Duration,
        /// Extra headers.
        headers: BTreeMap<String, String>,
    },
}

/// The SLO period.
#[derive(Debug, Clone, PartialEq)]
pub enum Period {
    /// The last `Duration`.
    Rolling(Duration),
    /// The current calendar month in a time zone.
    CalendarMonth(chrono_tz::Tz),
}

/// How the budget is counted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budgeting {
    /// Good events over all events.
    Occurrences,
    /// Good slices over judged slices.
    Timeslices {
        /// Slice length.
        slice: Duration,
        /// Share of good events that makes a slice good (event-ratio SLIs).
        slice_target: f64,
    },
}

/// The indicator, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Sli {
    /// Requests under a latency bound (seconds, a bucket bound).
    Latency(f64),
    /// First token under a bound (seconds, a bucket bound).
    Ttft(f64),
    /// Time per output token under a bound (seconds, a bound of `tpot_buckets`).
    Tpot(f64),
    /// Non-error outcomes.
    Availability,
    /// Tokens per kWh at least `threshold`, slices under `min_tokens` idle.
    TokensPerKwh {
        /// Tokens per kWh.
        threshold: f64,
        /// Fewest tokens for a slice to be judged.
        min_tokens: u64,
    },
    /// Slices in which the cell generated at least `floor` tokens per second while requests
    /// were waiting; slices with requests waiting in fewer than half of their readings idle.
    Throughput {
        /// Generated tokens per second of the cell.
        floor: f64,
    },
    /// Minutes in which every expected link is healthy.
    LinkHealth,
    /// Minutes whose peak cell power stays under the cap.
    PowerCap,
    /// A ratio of PromQL queries.
    Ratio(RatioQueries),
}

/// The queries of a [`Sli::Ratio`].
#[derive(Debug, Clone, PartialEq)]
pub struct RatioQueries {
    /// Good events, or `None` when counted as total − bad.
    pub good: Option<String>,
    /// Bad events, when given instead of good.
    pub bad: Option<String>,
    /// Every event.
    pub total: String,
    /// The queries return counters.
    pub counter: bool,
}

/// A validated objective.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Cells it applies to (resolved: every cell when omitted).
    pub cells: Vec<String>,
    /// Objective, 0–1.
    pub objective: f64,
    /// Period.
    pub period: Period,
    /// Budgeting.
    pub budgeting: Budgeting,
    /// Minimum events (or judged slices) before a window's burn rate alerts.
    pub min_events: MinEvents,
    /// Indicator.
    pub sli: Sli,
}

/// How many events a window needs before its burn rate may alert (`min_events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinEvents {
    /// `min_events` omitted: a burn tier of an occurrence SLO fires only when its long window
    /// holds at least [`low_traffic_guard`](crate::model::low_traffic_guard) events, so that one
    /// bad event alone never fires it (70 per hour for the 14.4× page at 99.9 %). Time-slice
    /// SLOs have no minimum: their units are slices, and idle slices are not judged.
    Auto,
    /// `min_events: n`: every window with fewer than `n` units (events, or judged slices) is too
    /// thin to judge.
    Fixed(u64),
}
