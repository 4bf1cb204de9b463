//! The engine's configuration: YAML, typed, unknown fields refused. Every error names the file,
//! the line and the field, and says what to do.
//!
//! ```yaml
//! cells:
//!   - name: studio-a
//!     nodes:
//!       - { name: studio-a-1, url: "http://studio-a-1.local:9817/metrics" }
//! slos:
//!   - name: latency-2s
//!     objective: 0.99
//!     period: 30d
//!     sli: { latency: { threshold: 2s } }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// A configuration that cannot be used. Displayed on one line; quoted values are cut (see
/// [`quote`]) and secrets are never shown.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read (missing, not a regular file, too large, not UTF-8).
    #[error("{}: {}", show_path(.path), one_line(&.source.to_string()))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid YAML for this schema (syntax, types, unknown fields).
    #[error("{}:{line}:{column}: {}: {}", show_path(.path), clip(.field), one_line(.message))]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The field, as a path (`slos[2].sli`).
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("{}:{line}: {}: {}", show_path(.path), clip(.field), one_line(.message))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line (best effort: the line of the field or of its nearest parent).
        line: usize,
        /// The field.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The YAML nests deeper than [`MAX_DEPTH`] (refused before parsing).
    #[error("{}:{line}: {}", show_path(.path), one_line(.message))]
    TooDeep {
        /// The file.
        path: PathBuf,
        /// 1-based line where the limit is passed.
        line: usize,
        /// What to do.
        message: String,
    },
}

/// The largest configuration or OpenSLO file read (4 MiB).
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;
/// The largest secret file read (password, token, routing key, webhook URL: 64 KiB).
pub const MAX_SECRET_BYTES: u64 = 64 << 10;
/// The largest CA certificate file read (1 MiB).
pub const MAX_CA_BYTES: u64 = 1 << 20;
/// The deepest nesting a YAML file may have (block indentation levels plus flow brackets).
pub const MAX_DEPTH: usize = 64;
/// The longest duration any field or flag takes: 10 years (humantime's `10y`).
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 31_557_600);
/// Values quoted in messages are cut after this many characters.
pub const QUOTE_CHARS: usize = 100;

pub use cellwatch_http::file::{read_bounded, read_text};

/// A secret file's content (at most [`MAX_SECRET_BYTES`]), with the error naming the file only.
pub fn read_secret_file(path: &Path) -> Result<String, String> {
    read_text(path, MAX_SECRET_BYTES).map_err(|e| format!("{}: {e}", show_path(path)))
}

/// A value for a message: on one line, at most [`QUOTE_CHARS`] characters, control characters
/// escaped; a longer value is cut and its length given.
pub fn clip(v: &str) -> String {
    let mut out = String::new();
    for (n, c) in v.chars().enumerate() {
        if n == QUOTE_CHARS {
            out.push_str(&format!("… ({} bytes)", v.len()));
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

/// A value quoted for a message, cut as [`clip`] cuts it: `"studio-a"`.
pub fn quote(v: &str) -> String {
    let cut: String = v.chars().take(QUOTE_CHARS).collect();
    if cut.len() < v.len() {
        format!("{cut:?}… ({} bytes)", v.len())
    } else {
        format!("{cut:?}")
    }
}

fn show_path(p: &Path) -> String {
    let s = p.display().to_string();
    if s.chars().count() > 4 * QUOTE_CHARS {
        clip(&s)
    } else {
        s.replace(|c: char| c.is_control(), "?")
    }
}

/// A message on one line: line breaks (a regex error's, a YAML parser's) become `; `, and a
/// message that quotes a huge value anyway is cut.
fn one_line(m: &str) -> String {
    let joined = m
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace(|c: char| c.is_control(), "?");
    if joined.chars().count() > 6 * QUOTE_CHARS {
        let cut: String = joined.chars().take(6 * QUOTE_CHARS).collect();
        format!("{cut}… (cut)")
    } else {
        joined
    }
}

/// A regex crate error on one line: its last line says what is wrong (`unclosed group`); the
/// pattern and the caret line above it are left out.
pub fn regex_error(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or("invalid syntax")
            .to_string(),
        regex::Error::CompiledTooBig(limit) => {
            format!("the compiled expression is larger than {limit} bytes")
        }
        other => one_line(&other.to_string()),
    }
}

/// Parses a duration (`30s`, `5m`, `30d`) of at most [`MAX_DURATION`]; the message says what is
/// wrong without naming the field.
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim()).map_err(|e| match e {
        humantime::DurationError::NumberOverflow => {
            format!(
                "{} is out of range: durations are at most 10 years",
                quote(s)
            )
        }
        e => format!("{}: {e} (examples: 500ms, 2s, 5m, 30d)", quote(s)),
    })?;
    if d > MAX_DURATION {
        return Err(format!(
            "{} is out of range: durations are at most 10 years",
            quote(s)
        ));
    }
    Ok(d)
}

/// Whether `field` (a path such as `alerting.receivers[0].slack.url`) holds a value that may be
/// a secret, which messages must not show: anything under a header, basic auth, a Slack or
/// webhook receiver (their URLs carry tokens), a password, token or routing key; and the whole
/// document (`.`), whose value may be any file's content.
fn secret_field(field: &str) -> bool {
    field.is_empty()
        || field == "."
        || field
            .split('.')
            .map(|s| s.split('[').next().unwrap_or(s))
            .any(|seg| {
                matches!(seg, "headers" | "basic_auth" | "slack" | "webhook")
                    || seg.starts_with("password")
                    || seg.starts_with("routing_key")
                    || seg.starts_with("api_token")
                    || seg == "token"
                    || seg.ends_with("_token")
            })
}

/// Checks an http(s) URL: a scheme of http or https, a host, a port in 1..=65535. `secret`: the
/// URL may hold a secret (a webhook's path), so the message does not quote it;
/// otherwise it quotes the URL without its credentials.
fn check_url(url: &str, secret: bool, example: &str) -> Result<(), String> {
    let shown = || {
        if secret {
            // The error names the field.
            "the value".to_string()
        } else {
            quote(&cellwatch_http::tls::without_credentials(url))
        }
    };
    let why = match reqwest::Url::parse(url) {
        _ if url.contains(char::is_whitespace) => "it contains white space".into(),
        Err(e) => e.to_string(),
        Ok(u) if !["http", "https"].contains(&u.scheme()) => {
            format!("the scheme {} is not http or https", quote(u.scheme()))
        }
        Ok(u) if u.host_str().is_none_or(str::is_empty) => "it has no host".into(),
        Ok(u) if u.port() == Some(0) => "port 0 cannot be reached".into(),
        Ok(_) => return Ok(()),
    };
    Err(format!(
        "{} is not a usable http(s) URL such as {example}: {why}",
        shown()
    ))
}

/// Whether a cron schedule ever fires, in any year the cron crate knows (1970 to 2100):
/// `0 0 0 30 2 *`, the 30th of February, never does. A schedule whose occurrences are all past
/// (`0 0 2 14 3 * 2027`, after that day) still passes, so that a configuration valid today
/// stays valid; it simply never opens a window again.
pub fn cron_fires(schedule: &cron::Schedule, tz: chrono_tz::Tz) -> bool {
    let epoch = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH.with_timezone(&tz);
    schedule.after(&epoch).next().is_some()
}

/// Estimates the nesting depth of YAML text in one pass, without parsing it, and returns the
/// 1-based line where it first passes [`MAX_DEPTH`]. Block structure counts each deeper
/// indentation (and each compact `- `), flow structure each open `[` or `{`; quoted strings,
/// comments and block scalars are skipped. The estimate errs high, never low for ordinary files;
/// it exists because the YAML parser takes quadratic time in the depth of flow collections.
pub fn too_deep(text: &str) -> Option<usize> {
    let mut stack: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    let mut in_quote: Option<u8> = None;
    let mut block_scalar: Option<isize> = None;
    let mut at_value = true;
    for (n, line) in text.split('\n').enumerate() {
        let b = line.as_bytes();
        let indent = b.iter().take_while(|&&c| c == b' ').count();
        let blank = b[indent..].iter().all(u8::is_ascii_whitespace);
        if let Some(parent) = block_scalar {
            if blank || indent as isize > parent {
                continue;
            }
            block_scalar = None;
        }
        let mut i = 0;
        let mut node_col = indent;
        let mut last_dash: isize = -1;
        if in_quote.is_none() && flow == 0 && !blank && b[indent] != b'#' {
            while stack.last().is_some_and(|&s| s >= indent) {
                stack.pop();
            }
            stack.push(indent);
            i = indent;
            while i < b.len()
                && (b[i] == b'-' || b[i] == b'?')
                && b.get(i + 1).is_none_or(|&c| c == b' ')
            {
                last_dash = i as isize;
                i += 1;
                while i < b.len() && b[i] == b' ' {
                    i += 1;
                }
                stack.push(i);
            }
            node_col = i;
        }
        if stack.len() + flow > MAX_DEPTH {
            return Some(n + 1);
        }
        // In flow context a line continues the previous one; in block context it starts a node.
        if flow == 0 {
            at_value = true;
        }
        let mut prev_space = true;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = in_quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && b.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    in_quote = None;
                    at_value = false;
                    prev_space = false;
                }
                i += 1;
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' => {
                    prev_space = true;
                    i += 1;
                    continue;
                }
                b'#' if prev_space => break,
                b'"' | b'\'' if at_value => in_quote = Some(c),
                b'[' | b'{' if at_value || flow > 0 => {
                    flow += 1;
                    if stack.len() + flow > MAX_DEPTH {
                        return Some(n + 1);
                    }
                    at_value = true;
                }
                b']' | b'}' if flow > 0 => {
                    flow -= 1;
                    at_value = false;
                }
                b',' if flow > 0 => at_value = true,
                b':' if flow > 0 || b.get(i + 1).is_none_or(|&c| c == b' ' || c == b'\t') => {
                    at_value = true
                }
                b'|' | b'>' if at_value && flow == 0 => {
                    // Its content is indented deeper than the node that holds it: the dash's
                    // column, or on a line of its own the enclosing node's (`key:` above it).
                    block_scalar = Some(if i != node_col {
                        node_col as isize
                    } else if last_dash >= 0 {
                        last_dash
                    } else {
                        stack.len().checked_sub(2).map_or(-1, |p| stack[p] as isize)
                    });
                    break;
                }
                b'&' | b'!' if at_value => {
                    // An anchor or tag runs to a space, or in flow context to an indicator.
                    while i < b.len()
                        && !matches!(b[i], b' ' | b'\t')
                        && !(flow > 0 && matches!(b[i], b',' | b'[' | b']' | b'{' | b'}'))
                    {
                        i += 1;
                    }
                    continue;
                }
                _ => at_value = false,
            }
            prev_space = false;
            i += 1;
        }
        // A quote left open in block context ends with its line: a multi-line quoted scalar is
        // rare in a configuration, and a quote that was really the middle of a plain scalar
        // must not hide the rest of the file from the count.
        if flow == 0 {
            in_quote = None;
        }
    }
    None
}

/// Strips a byte-order mark and refuses text nested deeper than [`MAX_DEPTH`], before the YAML
/// parser sees it.
pub(crate) fn prepare<'a>(text: &'a str, path: &Path) -> Result<&'a str, ConfigError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match too_deep(text) {
        Some(line) => Err(ConfigError::TooDeep {
            path: path.to_path_buf(),
            line,
            message: format!(
                "nested deeper than {MAX_DEPTH} levels (indentation and brackets): flatten the file"
            ),
        }),
        None => Ok(text),
    }
}

fn default_scrape_interval() -> Duration {
    Duration::from_secs(15)
}

fn default_buckets() -> Vec<f64> {
    cellwatch_metrics::DEFAULT_LATENCY_BUCKETS.to_vec()
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

fn d_secs<const N: u64>() -> Duration {
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

fn default_pagerduty_url() -> String {
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

fn default_tls() -> String {
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
    crate::rules::BURN_ALERTS
        .iter()
        .map(|(severity, long, short, budget)| BurnRate {
            severity: severity.to_string(),
            long: *long,
            short: *short,
            budget: *budget,
        })
        .collect()
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
}

/// Alerting, resolved.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Alerting {
    /// Timings.
    pub timing: crate::alerting::Timing,
    /// The engine's URL.
    pub external_url: Option<String>,
    /// Dashboard URL template.
    pub dashboard_url: Option<String>,
    /// Receivers by name.
    pub receivers: BTreeMap<String, RawReceiver>,
    /// Routes.
    pub routes: Vec<crate::alerting::Route>,
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

/// Where a secret is read from (at each use, so it can be rotated).
#[derive(Debug, Clone, PartialEq)]
pub enum TokenSource {
    /// A file (trailing whitespace trimmed).
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl TokenSource {
    /// The secret, if it can be read and is not empty.
    pub fn read(&self) -> Option<String> {
        let v = match self {
            TokenSource::File(p) => read_secret_file(p).ok()?,
            TokenSource::Env(v) => std::env::var(v).ok()?,
        };
        let v = v.trim_end().to_string();
        (!v.is_empty()).then_some(v)
    }
}

/// One cell.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCell {
    /// Cell name: the `cell` label everywhere.
    pub name: String,
    /// Its nodes.
    pub nodes: Vec<RawNode>,
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

fn default_delay() -> Duration {
    Duration::from_secs(60)
}

fn default_query_timeout() -> Duration {
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
    /// A file holding the password (a trailing newline is ignored).
    pub password_file: PathBuf,
}

impl BasicAuth {
    /// The password, read now.
    pub fn password(&self) -> Result<String, String> {
        read_secret_file(&self.password_file).map(|p| p.trim_end_matches(['\n', '\r']).to_string())
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
    /// on them. Default 0.
    #[serde(default)]
    pub min_events: u64,
    /// The indicator: one of `latency`, `ttft`, `availability`, `tokens_per_kwh`.
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

fn default_true() -> bool {
    true
}

fn default_min_tokens() -> u64 {
    100
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
    /// Objectives, in file order.
    pub slos: Vec<Slo>,
    /// Alerting.
    pub alerting: Alerting,
    /// Maintenance windows.
    pub maintenance: Vec<crate::alerting::Maintenance>,
}

/// A cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// Name.
    pub name: String,
    /// Nodes.
    pub nodes: Vec<Node>,
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
    /// Non-error outcomes.
    Availability,
    /// Tokens per kWh at least `threshold`, slices under `min_tokens` idle.
    TokensPerKwh {
        /// Tokens per kWh.
        threshold: f64,
        /// Fewest tokens for a slice to be judged.
        min_tokens: u64,
    },
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
    /// Minimum events (or judged slices) for a window to be judged.
    pub min_events: u64,
    /// Indicator.
    pub sli: Sli,
}

/// Finds the line of a field path (`slos[2].sli.latency`) in block-style YAML: the line of the
/// deepest part found.
pub fn locate(text: &str, field: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let content = |l: &str| {
        let t = l.trim_start();
        !t.is_empty() && !t.starts_with('#')
    };
    let mut parts: Vec<String> = Vec::new();
    for seg in field.split('.') {
        match seg.split_once('[') {
            Some((key, rest)) => {
                if !key.is_empty() {
                    parts.push(key.to_string());
                }
                for idx in rest.split('[') {
                    parts.push(format!("[{}", idx.trim_end_matches(']')));
                }
            }
            None => parts.push(seg.to_string()),
        }
    }
    let (mut from, mut to, mut parent) = (0usize, lines.len(), -1i64);
    let mut found = 0usize;
    for part in parts {
        if let Some(idx) = part.strip_prefix('[').and_then(|i| i.parse::<usize>().ok()) {
            // The idx-th `- ` item directly under the parent.
            let items: Vec<usize> = (from..to)
                .filter(|&i| {
                    content(lines[i])
                        && lines[i].trim_start().starts_with('-')
                        && indent(lines[i]) as i64 > parent
                })
                .collect();
            let Some(min_indent) = items.iter().map(|&i| indent(lines[i])).min() else {
                break;
            };
            let items: Vec<usize> = items
                .into_iter()
                .filter(|&i| indent(lines[i]) == min_indent)
                .collect();
            let Some(&at) = items.get(idx) else { break };
            let end = items.get(idx + 1).copied().unwrap_or_else(|| {
                (at + 1..to)
                    .find(|&i| content(lines[i]) && indent(lines[i]) < min_indent)
                    .unwrap_or(to)
            });
            found = at;
            from = at;
            to = end;
            parent = min_indent as i64;
        } else {
            let key = format!("{part}:");
            let hit = (from..to).find(|&i| {
                let t = lines[i].trim_start().trim_start_matches("- ").trim_start();
                content(lines[i])
                    && (t.starts_with(&key)
                        || t.starts_with(&format!("{{ {key}"))
                        || t.contains(&format!(" {key}"))
                        || t.contains(&format!("{{{key}")))
            });
            let Some(at) = hit else { break };
            let own = indent(lines[at])
                + if lines[at].trim_start().starts_with("- ") {
                    2
                } else {
                    0
                };
            let end = (at + 1..to)
                .find(|&i| content(lines[i]) && indent(lines[i]) <= own)
                .unwrap_or(to);
            found = at;
            from = at;
            to = end;
            parent = own as i64;
        }
    }
    found + 1
}

/// Reads and validates a configuration file (a regular file of at most [`MAX_CONFIG_BYTES`]).
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = read_text(path, MAX_CONFIG_BYTES).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// A serde error as a [`ConfigError::Syntax`]: the field's path and position; the value is left
/// out of the message when the field may hold a secret.
pub(crate) fn syntax_error(
    path: &Path,
    text: &str,
    first_line: usize,
    prefix: &str,
    e: serde_path_to_error::Error<yaml_serde::Error>,
) -> ConfigError {
    let field = match e.path().to_string().as_str() {
        "." if prefix.is_empty() => ".".to_string(),
        "." => prefix.trim_end_matches('.').to_string(),
        p => format!("{prefix}{p}"),
    };
    let inner = e.into_inner();
    let (line, column) = inner
        .location()
        .map_or((locate(text, &field), 1), |l| (l.line(), l.column()));
    let mut message = inner.to_string();
    // yaml_serde repeats (part of) the field and the position, which the error already gives.
    if let Some((head, rest)) = message.split_once(": ")
        && !head.is_empty()
        && field.starts_with(head)
        && !head.contains(' ')
    {
        message = rest.to_string();
    }
    if inner.location().is_some()
        && let Some(at) = message.rfind(" at line ")
        && message[at..].contains(" column ")
    {
        message.truncate(at);
    }
    if secret_field(&field) {
        message = match message.find(", expected") {
            Some(at) => format!("the value of {field} is not valid here{}", &message[at..]),
            None => format!("the value of {field} is not valid here"),
        };
    }
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line: line + first_line - 1,
        column,
        field,
        message,
    }
}

/// Parses and validates configuration text (`path` is for messages and relative paths).
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let text = prepare(text, path)?;
    let de = yaml_serde::Deserializer::from_str(text);
    let raw: RawConfig =
        serde_path_to_error::deserialize(de).map_err(|e| syntax_error(path, text, 1, "", e))?;
    validate(raw, text, path)
}

fn parse_duration(field: &str, s: &str) -> Result<Duration, String> {
    duration(s).map_err(|m| format!("{field} {m}"))
}

fn label_safe(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && !s.chars().any(|c| c.is_control())
}

/// Cell and SLO names end up inside PromQL strings, regexes and rule group names: letters,
/// digits and `_ . : -` only.
fn name_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
}

const NAME_RULE: &str = "a name of letters, digits and _ . : - (at most 128 characters)";

/// The OpenSLO field that holds what one of our SLO fields was made from.
fn openslo_field(ours: &str) -> &'static str {
    match ours.split('.').next().unwrap_or("") {
        "name" => "metadata.name",
        "cells" => "metadata.labels",
        "objective" => "spec.objectives[0]",
        "period" | "timezone" => "spec.timeWindow[0]",
        "budgeting" => "spec.budgetingMethod",
        "slice" => "spec.objectives[0].timeSliceWindow",
        "slice_target" => "spec.objectives[0].timeSliceTarget",
        _ => "spec",
    }
}

fn validate(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
    let err = |field: String, message: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        line: locate(text, &field),
        field,
        message,
    };
    if raw.cells.is_empty() {
        return Err(err("cells".into(), "at least one cell is needed".into()));
    }
    let mut cells = Vec::new();
    let mut names = BTreeSet::new();
    for (i, c) in raw.cells.iter().enumerate() {
        let f = format!("cells[{i}]");
        if !name_safe(&c.name) {
            return Err(err(
                format!("{f}.name"),
                format!("{}: {NAME_RULE}", quote(&c.name)),
            ));
        }
        if !names.insert(c.name.clone()) {
            return Err(err(
                format!("{f}.name"),
                format!("cell {} is defined twice", quote(&c.name)),
            ));
        }
        if c.nodes.is_empty() {
            return Err(err(
                format!("{f}.nodes"),
                format!("cell {} has no nodes", quote(&c.name)),
            ));
        }
        let mut node_names = BTreeSet::new();
        let mut nodes = Vec::new();
        for (j, n) in c.nodes.iter().enumerate() {
            let nf = format!("{f}.nodes[{j}]");
            if !label_safe(&n.name) {
                return Err(err(
                    format!("{nf}.name"),
                    "a non-empty name without control characters, at most 128 bytes".into(),
                ));
            }
            if !node_names.insert(n.name.clone()) {
                return Err(err(
                    format!("{nf}.name"),
                    format!(
                        "node {} appears twice in cell {}",
                        quote(&n.name),
                        quote(&c.name)
                    ),
                ));
            }
            check_url(&n.url, false, "http://studio-a-1.local:9817/metrics")
                .map_err(|m| err(format!("{nf}.url"), m))?;
            for k in n.labels.keys() {
                let valid = k
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid || k.starts_with("__") || k == "cell" || k == "node" {
                    return Err(err(
                        format!("{nf}.labels"),
                        format!(
                            "{} is not a usable label name (cell and node are set for you)",
                            quote(k)
                        ),
                    ));
                }
            }
            nodes.push(Node {
                name: n.name.clone(),
                url: n.url.clone(),
                labels: n.labels.clone(),
            });
        }
        cells.push(Cell {
            name: c.name.clone(),
            nodes,
        });
    }
    let source = match raw.source {
        RawSource::Scrape {
            interval,
            ca_file,
            basic_auth,
        } => {
            let base = path.parent().unwrap_or(Path::new("."));
            let ca_pem = match ca_file {
                None => None,
                Some(f) => {
                    let path = base.join(&f);
                    let pem = read_bounded(&path, MAX_CA_BYTES).map_err(|e| {
                        err(
                            "source.scrape.ca_file".into(),
                            format!("{}: {e}", show_path(&path)),
                        )
                    })?;
                    cellwatch_http::tls::client_config(Some(&pem)).map_err(|e| {
                        err(
                            "source.scrape.ca_file".into(),
                            format!("{}: {}", show_path(&path), one_line(&e.to_string())),
                        )
                    })?;
                    Some(pem)
                }
            };
            let basic_auth = match basic_auth {
                None => None,
                Some(b) => {
                    let b = BasicAuth {
                        username: b.username,
                        password_file: base.join(b.password_file),
                    };
                    check_secret_file(&b.password_file)
                        .map_err(|e| err("source.scrape.basic_auth.password_file".into(), e))?;
                    Some(b)
                }
            };
            Source::Scrape {
                interval,
                ca_pem,
                basic_auth,
            }
        }
        RawSource::Prometheus {
            url,
            interval,
            delay,
            timeout,
            headers,
        } => {
            check_url(&url, false, "http://prometheus:9090")
                .map_err(|m| err("source.prometheus.url".into(), m))?;
            if delay > Duration::from_secs(3600) {
                return Err(err(
                    "source.prometheus.delay".into(),
                    format!("{delay:?} is more than 1h"),
                ));
            }
            if timeout < Duration::from_secs(1) {
                return Err(err(
                    "source.prometheus.timeout".into(),
                    format!("{timeout:?} is less than 1s"),
                ));
            }
            for (k, v) in &headers {
                if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                    || reqwest::header::HeaderValue::from_str(v).is_err()
                {
                    return Err(err(
                        "source.prometheus.headers".into(),
                        format!(
                            "{} is not a valid HTTP header name, or its value is not a valid header value",
                            quote(k)
                        ),
                    ));
                }
            }
            Source::Prometheus {
                url: url.trim_end_matches('/').to_string(),
                interval,
                delay,
                timeout,
                headers,
            }
        }
    };
    for (s, d) in [(
        "source",
        match &source {
            Source::Scrape { interval, .. } | Source::Prometheus { interval, .. } => *interval,
        },
    )] {
        if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
            return Err(err(s.into(), format!("interval {d:?} is outside 1s..=1h")));
        }
    }
    if raw.buckets.is_empty()
        || raw.buckets.windows(2).any(|w| w[0] >= w[1])
        || raw.buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
    {
        return Err(err(
            "buckets".into(),
            "bucket bounds must be positive and increasing".into(),
        ));
    }
    let mut slos = Vec::new();
    let mut slo_names = BTreeSet::new();
    let base = path.parent().unwrap_or(Path::new("."));
    let files: Vec<PathBuf> = raw.openslo.iter().map(|p| base.join(p)).collect();
    let imported = crate::openslo::import(&files)?;
    if let (Some((_, o)), Source::Scrape { .. }) = (imported.first(), &source) {
        return Err(err(
            "openslo".into(),
            format!(
                "{}: OpenSLO SLOs are PromQL queries, so they need source: prometheus",
                o.path.display()
            ),
        ));
    }
    let all: Vec<(&RawSlo, Option<&crate::openslo::Origin>)> = raw
        .slos
        .iter()
        .map(|s| (s, None))
        .chain(imported.iter().map(|(s, o)| (s, Some(o))))
        .collect();
    let outer = err;
    for (i, (s, origin)) in all.into_iter().enumerate() {
        let f = format!("slos[{i}]");
        let err = |field: String, message: String| match origin {
            None => outer(field, message),
            Some(o) => {
                let ours = field.strip_prefix(&f).unwrap_or("").trim_start_matches('.');
                let theirs = openslo_field(ours);
                ConfigError::Invalid {
                    path: o.path.clone(),
                    line: locate(&o.doc, theirs) + o.line - 1,
                    field: theirs.to_string(),
                    message: format!("SLO {} (imported from OpenSLO): {message}", quote(&s.name)),
                }
            }
        };
        if !name_safe(&s.name) {
            return Err(err(
                format!("{f}.name"),
                format!("{}: {NAME_RULE}", quote(&s.name)),
            ));
        }
        if !slo_names.insert(s.name.clone()) {
            return Err(err(
                format!("{f}.name"),
                format!("SLO {} is defined twice", quote(&s.name)),
            ));
        }
        if !(s.objective > 0.0 && s.objective < 1.0) {
            return Err(err(
                format!("{f}.objective"),
                format!(
                    "{} is not a ratio between 0 and 1 (write 0.99 for 99 %)",
                    s.objective
                ),
            ));
        }
        let slo_cells = match &s.cells {
            None => cells.iter().map(|c| c.name.clone()).collect(),
            Some(list) if list.is_empty() => {
                return Err(err(
                    format!("{f}.cells"),
                    "an empty list: omit it to mean every cell".into(),
                ));
            }
            Some(list) => {
                for c in list {
                    if !names.contains(c) {
                        return Err(err(
                            format!("{f}.cells"),
                            format!(
                                "no cell named {} (cells: {})",
                                quote(c),
                                clip(&names.iter().cloned().collect::<Vec<_>>().join(", "))
                            ),
                        ));
                    }
                }
                list.clone()
            }
        };
        let period = if s.period.trim() == "calendar-month" {
            let tz = s.timezone.as_deref().unwrap_or("UTC");
            let tz: chrono_tz::Tz = tz.parse().map_err(|_| {
                err(
                    format!("{f}.timezone"),
                    format!(
                        "{} is not an IANA time zone such as Europe/Berlin or UTC",
                        quote(tz)
                    ),
                )
            })?;
            Period::CalendarMonth(tz)
        } else {
            let d = parse_duration("period", &s.period)
                .map_err(|m| err(format!("{f}.period"), format!("{m}; or calendar-month")))?;
            if d < Duration::from_secs(3600) || d > Duration::from_secs(400 * 86400) {
                return Err(err(
                    format!("{f}.period"),
                    format!("{} is outside 1h..=400d", s.period),
                ));
            }
            if s.timezone.is_some() {
                return Err(err(
                    format!("{f}.timezone"),
                    "a time zone applies to a calendar period only (period: calendar-month)".into(),
                ));
            }
            Period::Rolling(d)
        };
        let sli = match &s.sli {
            RawSli::Latency { threshold } | RawSli::Ttft { threshold } => {
                let which = if matches!(s.sli, RawSli::Latency { .. }) {
                    "latency"
                } else {
                    "ttft"
                };
                let t = parse_duration("threshold", threshold)
                    .map_err(|m| err(format!("{f}.sli.{which}.threshold"), m))?
                    .as_secs_f64();
                if !raw.buckets.iter().any(|b| (b - t).abs() < 1e-9) {
                    let near: Vec<String> = raw.buckets.iter().map(|b| format!("{b}")).collect();
                    return Err(err(
                        format!("{f}.sli.{which}.threshold"),
                        format!(
                            "{} is not a bucket bound ({}s), so the share under it cannot be counted exactly: pick a bound, \
                             or add {t} to the exporters' --collector.inference.buckets and to buckets: in this file",
                            clip(threshold),
                            clip(&near.join(", "))
                        ),
                    ));
                }
                if which == "latency" {
                    Sli::Latency(t)
                } else {
                    Sli::Ttft(t)
                }
            }
            RawSli::Availability {} => Sli::Availability,
            RawSli::Ratio {
                good,
                bad,
                total,
                counter,
            } => {
                if matches!(source, Source::Scrape { .. }) {
                    return Err(err(
                        format!("{f}.sli.ratio"),
                        "a ratio of PromQL queries needs source: prometheus".into(),
                    ));
                }
                let blank = |q: &Option<String>| q.as_deref().is_some_and(|q| q.trim().is_empty());
                if good.is_some() == bad.is_some() || blank(good) || blank(bad) {
                    return Err(err(
                        format!("{f}.sli.ratio"),
                        "give exactly one of good and bad (a PromQL expression)".into(),
                    ));
                }
                if total.trim().is_empty() {
                    return Err(err(format!("{f}.sli.ratio.total"), "an empty query".into()));
                }
                Sli::Ratio(RatioQueries {
                    good: good.clone(),
                    bad: bad.clone(),
                    total: total.clone(),
                    counter: *counter,
                })
            }
            RawSli::TokensPerKwh {
                threshold,
                min_tokens,
            } => {
                if !(threshold.is_finite() && *threshold > 0.0) {
                    return Err(err(
                        format!("{f}.sli.tokens_per_kwh.threshold"),
                        format!("{threshold} is not a positive number of tokens per kWh"),
                    ));
                }
                Sli::TokensPerKwh {
                    threshold: *threshold,
                    min_tokens: *min_tokens,
                }
            }
        };
        let slice = s
            .slice
            .as_deref()
            .map(|x| parse_duration("slice", x))
            .transpose()
            .map_err(|m| err(format!("{f}.slice"), m))?;
        let budgeting = match (s.budgeting.as_deref(), &sli) {
            (Some("occurrences"), Sli::TokensPerKwh { .. }) => {
                return Err(err(
                    format!("{f}.budgeting"),
                    "tokens_per_kwh is judged per time slice: use timeslices (or omit budgeting)"
                        .into(),
                ));
            }
            (Some("occurrences"), _)
            | (None, Sli::Latency(_) | Sli::Ttft(_) | Sli::Availability | Sli::Ratio(_)) => {
                if slice.is_some() || s.slice_target.is_some() {
                    return Err(err(
                        format!("{f}.slice"),
                        "slice and slice_target apply to budgeting: timeslices".into(),
                    ));
                }
                Budgeting::Occurrences
            }
            (Some("timeslices"), _) | (None, Sli::TokensPerKwh { .. }) => {
                let slice = slice.unwrap_or(Duration::from_secs(300));
                if slice < Duration::from_secs(10) || slice > Duration::from_secs(86400) {
                    return Err(err(
                        format!("{f}.slice"),
                        format!("{slice:?} is outside 10s..=1d"),
                    ));
                }
                let slice_target = s.slice_target.unwrap_or(s.objective);
                if !(slice_target > 0.0 && slice_target <= 1.0) {
                    return Err(err(
                        format!("{f}.slice_target"),
                        format!("{slice_target} is not a ratio between 0 and 1"),
                    ));
                }
                Budgeting::Timeslices {
                    slice,
                    slice_target,
                }
            }
            (Some(other), _) => {
                return Err(err(
                    format!("{f}.budgeting"),
                    format!("{}: use occurrences or timeslices", quote(other)),
                ));
            }
        };
        let period_len = match &period {
            Period::Rolling(d) => *d,
            Period::CalendarMonth(_) => Duration::from_secs(28 * 86400),
        };
        if let Budgeting::Timeslices { slice, .. } = budgeting
            && slice.as_secs() * 2 > period_len.as_secs()
        {
            return Err(err(
                format!("{f}.slice"),
                format!("{slice:?} is more than half the period: a period needs many slices"),
            ));
        }
        // The SRE Workbook's page alert (2 % of the budget in 1 h) must be able to fire: its
        // error-ratio threshold has to stay below 100 %.
        let page =
            crate::rules::burn_factor(0.02, 3600, period_len.as_secs()) * (1.0 - s.objective);
        if page >= 1.0 {
            return Err(err(
                format!("{f}.objective"),
                format!(
                    "with objective {} over {:?}, a page needs an error ratio of {:.0} % over 1 h, which cannot happen: \
                     raise the objective or shorten the period",
                    s.objective,
                    period_len,
                    page * 100.0
                ),
            ));
        }
        slos.push(Slo {
            name: s.name.clone(),
            description: s.description.clone(),
            cells: slo_cells,
            objective: s.objective,
            period,
            budgeting,
            min_events: s.min_events,
            sli,
        });
    }
    let alerting = validate_alerting(&raw.alerting, base, &outer)?;
    let mut maintenance = Vec::new();
    for (i, m) in raw.maintenance.iter().enumerate() {
        let f = format!("maintenance[{i}]");
        let schedule: cron::Schedule = m.schedule.parse().map_err(|e: cron::error::Error| {
            outer(
                format!("{f}.schedule"),
                format!(
                    "{}: {} (six fields, seconds first: \"0 0 3 * * Sun\" is Sundays at 03:00)",
                    quote(&m.schedule),
                    one_line(&e.to_string())
                ),
            )
        })?;
        let tz = m.timezone.as_deref().unwrap_or("UTC");
        let timezone: chrono_tz::Tz = tz.parse().map_err(|_| {
            outer(
                format!("{f}.timezone"),
                format!(
                    "{} is not an IANA time zone such as Europe/Berlin or UTC",
                    quote(tz)
                ),
            )
        })?;
        if !cron_fires(&schedule, timezone) {
            return Err(outer(
                format!("{f}.schedule"),
                format!(
                    "{} never starts a window (a date that does not exist?)",
                    quote(&m.schedule)
                ),
            ));
        }
        if m.duration < Duration::from_secs(60) {
            return Err(outer(
                format!("{f}.duration"),
                "a window lasts at least 1m".into(),
            ));
        }
        let covered = match &m.cells {
            None => cells.iter().map(|c| c.name.clone()).collect(),
            Some(list) => {
                if let Some(c) = list.iter().find(|c| !names.contains(*c)) {
                    return Err(outer(
                        format!("{f}.cells"),
                        format!("no cell named {}", quote(c)),
                    ));
                }
                list.clone()
            }
        };
        maintenance.push(crate::alerting::Maintenance {
            name: m.name.clone(),
            cells: covered,
            schedule,
            timezone,
            duration: m.duration.as_secs() as i64,
            exclude_from_budget: m.exclude_from_budget,
        });
    }
    Ok(Config {
        cells,
        source,
        buckets: raw.buckets,
        slos,
        alerting,
        maintenance,
    })
}

/// Checks a secret file now (it is read again at each use, so it can be rotated): a regular file
/// of at most [`MAX_SECRET_BYTES`], not empty. The message names the file, never its content.
fn check_secret_file(path: &Path) -> Result<(), String> {
    let v = read_secret_file(path)?;
    if v.trim().is_empty() {
        return Err(format!("{}: the file is empty", show_path(path)));
    }
    Ok(())
}

fn validate_alerting(
    a: &RawAlerting,
    base: &Path,
    err: &dyn Fn(String, String) -> ConfigError,
) -> Result<Alerting, ConfigError> {
    let secret_file = |field: String, p: &Path| -> Result<PathBuf, ConfigError> {
        let p = base.join(p);
        check_secret_file(&p).map_err(|m| err(field, m))?;
        Ok(p)
    };
    let url = |field: String, v: &str, secret: bool, example: &str| {
        check_url(v, secret, example).map_err(|m| err(field, m))
    };
    if let Some(u) = &a.external_url {
        url(
            "alerting.external_url".into(),
            u,
            false,
            "http://cellwatch.internal:9820",
        )?;
    }
    if let Some(u) = &a.dashboard_url {
        url(
            "alerting.dashboard_url".into(),
            u,
            false,
            "http://grafana.internal/d/cellwatch-cell?var-cell={cell}",
        )?;
    }
    let secs = |d: Duration| d.as_secs() as i64;
    if a.group_interval < Duration::from_secs(1) || a.repeat_interval < a.group_interval {
        return Err(err(
            "alerting.repeat_interval".into(),
            "group_interval must be at least 1s and repeat_interval at least group_interval".into(),
        ));
    }
    let mut receivers = BTreeMap::new();
    for (i, r) in a.receivers.iter().enumerate() {
        let f = format!("alerting.receivers[{i}]");
        if !name_safe(&r.name) {
            return Err(err(
                format!("{f}.name"),
                format!("{}: {NAME_RULE}", quote(&r.name)),
            ));
        }
        if r.email.is_none()
            && r.webhook.is_none()
            && r.pagerduty.is_none()
            && r.slack.is_none()
            && r.alertmanager.is_none()
        {
            return Err(err(
                f.clone(),
                format!(
                    "receiver {} has no integration: give email, webhook, pagerduty, slack or alertmanager",
                    quote(&r.name)
                ),
            ));
        }
        // Relative secret files are found beside the configuration, as `check` looks for them.
        let mut r = r.clone();
        if let Some(p) = &mut r.pagerduty {
            if p.routing_key_file.is_some() == p.routing_key_env.is_some() {
                return Err(err(
                    format!("{f}.pagerduty"),
                    "give exactly one of routing_key_file and routing_key_env".into(),
                ));
            }
            if let Some(k) = &p.routing_key_file {
                p.routing_key_file =
                    Some(secret_file(format!("{f}.pagerduty.routing_key_file"), k)?);
            }
            url(
                format!("{f}.pagerduty.url"),
                &p.url,
                false,
                "https://events.pagerduty.com/v2/enqueue",
            )?;
        }
        if let Some(sl) = &mut r.slack {
            match (&sl.url_file, &sl.url) {
                (Some(file), None) => {
                    let field = format!("{f}.slack.url_file");
                    let file = secret_file(field.clone(), file)?;
                    let u = read_secret_file(&file).map_err(|m| err(field.clone(), m))?;
                    check_url(u.trim(), true, "https://hooks.slack.com/services/…")
                        .map_err(|m| err(field.clone(), format!("the URL in the file: {m}")))?;
                    sl.url_file = Some(file);
                }
                (None, Some(u)) => {
                    url(
                        format!("{f}.slack.url"),
                        u,
                        true,
                        "https://hooks.slack.com/services/…",
                    )?;
                }
                _ => {
                    return Err(err(
                        format!("{f}.slack"),
                        "give exactly one of url_file and url (an http(s) URL)".into(),
                    ));
                }
            }
        }
        if let Some(a) = &r.alertmanager {
            url(
                format!("{f}.alertmanager.url"),
                &a.url,
                false,
                "http://alertmanager:9093",
            )?;
        }
        if let Some(e) = &mut r.email {
            let addr_ok = |x: &str| x.parse::<lettre::Address>().is_ok();
            if e.to.is_empty() || !e.to.iter().all(|t| addr_ok(t)) {
                return Err(err(
                    format!("{f}.email.to"),
                    "a list of mail addresses such as oncall@example.com".into(),
                ));
            }
            if !addr_ok(&e.from) {
                return Err(err(
                    format!("{f}.email.from"),
                    format!("{} is not a mail address", quote(&e.from)),
                ));
            }
            let port_ok = e
                .smarthost
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !port_ok {
                return Err(err(
                    format!("{f}.email.smarthost"),
                    format!(
                        "{} is not host:port with a port in 1..=65535 (e.g. smtp.example.com:587)",
                        quote(&e.smarthost)
                    ),
                ));
            }
            if !["starttls", "implicit", "none"].contains(&e.tls.as_str()) {
                return Err(err(
                    format!("{f}.email.tls"),
                    format!("{}: use starttls, implicit or none", quote(&e.tls)),
                ));
            }
            if e.username.is_some() && (e.password_file.is_some() == e.password_env.is_some()) {
                return Err(err(
                    format!("{f}.email"),
                    "with a username, give exactly one of password_file and password_env".into(),
                ));
            }
            if let Some(p) = &e.password_file {
                e.password_file = Some(secret_file(format!("{f}.email.password_file"), p)?);
            }
        }
        if let Some(w) = &r.webhook {
            url(
                format!("{f}.webhook.url"),
                &w.url,
                true,
                "https://chatops.internal/hooks/cellwatch",
            )?;
        }
        if receivers.insert(r.name.clone(), r.clone()).is_some() {
            return Err(err(
                format!("{f}.name"),
                format!("receiver {} is defined twice", quote(&r.name)),
            ));
        }
    }
    let mut routes = Vec::new();
    for (i, r) in a.routes.iter().enumerate() {
        if !receivers.contains_key(&r.receiver) {
            return Err(err(
                format!("alerting.routes[{i}].receiver"),
                format!(
                    "no receiver named {} (receivers: {})",
                    quote(&r.receiver),
                    clip(&receivers.keys().cloned().collect::<Vec<_>>().join(", "))
                ),
            ));
        }
        let mut match_re = Vec::new();
        for (k, v) in &r.match_re {
            let m = crate::alerting::Matcher {
                name: k.clone(),
                value: v.clone(),
                is_regex: true,
                is_equal: true,
            };
            let field = format!("alerting.routes[{i}].match_re.{}", clip(k));
            if let Err(e) = regex::Regex::new(&format!("^(?:{v})$")) {
                return Err(err(
                    field,
                    format!(
                        "{} is not a regular expression: {}",
                        quote(v),
                        regex_error(&e)
                    ),
                ));
            }
            m.validate().map_err(|e| err(field, one_line(&e)))?;
            match_re.push(m);
        }
        routes.push(crate::alerting::Route {
            receiver: r.receiver.clone(),
            matchers: r.matchers.clone(),
            match_re,
            continue_: r.continue_,
        });
    }
    if routes.is_empty()
        && let Some(first) = a.receivers.first()
    {
        routes.push(crate::alerting::Route {
            receiver: first.name.clone(),
            matchers: BTreeMap::new(),
            match_re: Vec::new(),
            continue_: false,
        });
    }
    let mut reports = Vec::new();
    for (i, r) in a.reports.iter().enumerate() {
        let f = format!("alerting.reports[{i}]");
        let schedule: cron::Schedule = r.schedule.parse().map_err(|e: cron::error::Error| {
            err(
                format!("{f}.schedule"),
                format!(
                    "{}: {} (six fields, seconds first: \"0 0 8 * * Mon\")",
                    quote(&r.schedule),
                    one_line(&e.to_string())
                ),
            )
        })?;
        let tz = r.timezone.as_deref().unwrap_or("UTC");
        let timezone: chrono_tz::Tz = tz.parse().map_err(|_| {
            err(
                format!("{f}.timezone"),
                format!(
                    "{} is not an IANA time zone such as Europe/Berlin or UTC",
                    quote(tz)
                ),
            )
        })?;
        if !cron_fires(&schedule, timezone) {
            return Err(err(
                format!("{f}.schedule"),
                format!(
                    "{} never fires (a date that does not exist?)",
                    quote(&r.schedule)
                ),
            ));
        }
        match receivers.get(&r.receiver) {
            Some(x) if x.email.is_some() => {}
            _ => {
                return Err(err(
                    format!("{f}.receiver"),
                    format!(
                        "no receiver named {} with an email integration",
                        quote(&r.receiver)
                    ),
                ));
            }
        }
        if r.range < Duration::from_secs(3600) {
            return Err(err(
                format!("{f}.range"),
                "a report covers at least 1h".into(),
            ));
        }
        reports.push(ReportSchedule {
            name: r.name.clone(),
            schedule,
            timezone,
            range: r.range.as_secs() as i64,
            receiver: r.receiver.clone(),
        });
    }
    let mut burn_rates = Vec::new();
    for (i, b) in a.burn_rates.iter().enumerate() {
        let f = format!("alerting.burn_rates[{i}]");
        let window = |field: &str, v: &str| -> Result<u64, ConfigError> {
            let secs = humantime::parse_duration(v).map(|d| d.as_secs()).ok();
            secs.filter(|s| crate::math::WINDOWS.iter().any(|(_, w)| w == s))
                .ok_or_else(|| {
                    err(
                        format!("{f}.{field}"),
                        format!(
                            "{}: the engine keeps the windows 5m, 30m, 1h, 2h, 6h, 1d and 3d",
                            quote(v)
                        ),
                    )
                })
        };
        let (long, short) = (window("long", &b.long)?, window("short", &b.short)?);
        if short >= long {
            return Err(err(
                format!("{f}.short"),
                "the short window must be shorter than the long one".into(),
            ));
        }
        if !["page", "ticket"].contains(&b.severity.as_str()) {
            return Err(err(
                format!("{f}.severity"),
                format!("{}: page or ticket", quote(&b.severity)),
            ));
        }
        if !(b.budget > 0.0 && b.budget <= 1.0) {
            return Err(err(
                format!("{f}.budget"),
                format!("{} is not a share between 0 and 1", b.budget),
            ));
        }
        burn_rates.push(BurnRate {
            severity: b.severity.clone(),
            long,
            short,
            budget: b.budget,
        });
    }
    if burn_rates.is_empty() {
        burn_rates = default_burn_rates();
    }
    Ok(Alerting {
        burn_rates,
        reports,
        timing: crate::alerting::Timing {
            group_wait: secs(a.group_wait),
            group_interval: secs(a.group_interval),
            repeat_interval: secs(a.repeat_interval),
            no_data_for: secs(a.no_data_for),
            cell_down_for: secs(a.cell_down_for),
        },
        external_url: a.external_url.clone(),
        dashboard_url: a.dashboard_url.clone(),
        receivers,
        routes,
        api_token: match (&a.api_token_file, &a.api_token_env) {
            (Some(_), Some(_)) => {
                return Err(err(
                    "alerting.api_token_file".into(),
                    "give api_token_file or api_token_env, not both".into(),
                ));
            }
            (Some(f), None) => Some(TokenSource::File(secret_file(
                "alerting.api_token_file".into(),
                f,
            )?)),
            (None, Some(v)) => Some(TokenSource::Env(v.clone())),
            (None, None) => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
cells:
  - name: studio-a
    nodes:
      - name: studio-a-1
        url: http://studio-a-1.local:9817/metrics
      - name: studio-a-2
        url: http://studio-a-2.local:9817/metrics
        labels: { rack: r1 }
slos:
  - name: latency-2s
    objective: 0.99
    period: 30d
    sli:
      latency:
        threshold: 2s
  - name: efficiency
    cells: [studio-a]
    objective: 0.95
    period: calendar-month
    timezone: Europe/Berlin
    sli:
      tokens_per_kwh:
        threshold: 150000
";

    fn p(text: &str) -> Result<Config, ConfigError> {
        parse(text, Path::new("cells.yaml"))
    }

    #[test]
    fn a_good_config_resolves() {
        let c = p(GOOD).unwrap();
        assert_eq!(c.cells[0].nodes.len(), 2);
        assert_eq!(
            c.source,
            Source::Scrape {
                interval: Duration::from_secs(15),
                ca_pem: None,
                basic_auth: None,
            }
        );
        assert_eq!(c.slos[0].sli, Sli::Latency(2.0));
        assert_eq!(
            c.slos[0].period,
            Period::Rolling(Duration::from_secs(30 * 86400))
        );
        assert_eq!(c.slos[0].cells, ["studio-a"]);
        assert_eq!(
            c.slos[1].budgeting,
            Budgeting::Timeslices {
                slice: Duration::from_secs(300),
                slice_target: 0.95
            }
        );
        assert_eq!(
            c.slos[1].period,
            Period::CalendarMonth(chrono_tz::Europe::Berlin)
        );
    }

    fn error(text: &str) -> String {
        p(text).unwrap_err().to_string()
    }

    #[test]
    fn alerting_is_checked() {
        let with = |a: &str| format!("{GOOD}alerting:\n{a}");
        let ok = p(&with(
            "  group_wait: 10s\n  receivers:\n    - name: oncall\n      email: { to: [a@b.c], from: x@y.z, smarthost: \"smtp:25\", tls: none }\n",
        ))
        .unwrap();
        assert_eq!(ok.alerting.timing.group_wait, 10);
        assert_eq!(
            ok.alerting.routes.len(),
            1,
            "everything to the first receiver"
        );
        let e = error(&with(
            "  receivers:\n    - name: oncall\n      email: { to: [a@b.c], from: x@y.z, smarthost: smtp }\n",
        ));
        assert!(
            e.contains("alerting.receivers[0].email.smarthost") && e.contains("host:port"),
            "{e}"
        );
        let e = error(&with(
            "  receivers:\n    - name: oncall\n      webhook: { url: \"http://h/x\" }\n  routes:\n    - { receiver: pager }\n",
        ));
        assert!(
            e.contains("alerting.routes[0].receiver") && e.contains("no receiver named \"pager\""),
            "{e}"
        );
        let e = error(&with("  receivers:\n    - name: oncall\n"));
        assert!(e.contains("no integration"), "{e}");
        let e = error(&with("  group_wait: soon\n"));
        assert!(e.contains("alerting.group_wait"), "{e}");
        let e = error(&with(
            "  receivers:\n    - name: hook\n      webhook: { url: \"http://h/x\" }\n  reports:\n    - { name: weekly, schedule: \"0 0 8 * * Mon\", receiver: hook }\n",
        ));
        assert!(
            e.contains("alerting.reports[0].receiver") && e.contains("email"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}maintenance:\n  - {{ name: m, schedule: \"every sunday\", duration: 2h }}\n"
        ));
        assert!(
            e.contains("maintenance[0].schedule") && e.contains("seconds first"),
            "{e}"
        );
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let e = error(&GOOD.replace("threshold: 2s", "threshold: 1.5s"));
        assert!(
            e.starts_with(
                "cells.yaml:15: slos[0].sli.latency.threshold: 1.5s is not a bucket bound"
            ),
            "{e}"
        );
        let e = error(&GOOD.replace("objective: 0.95", "objective: 95"));
        assert!(
            e.starts_with("cells.yaml:18: slos[1].objective: 95 is not a ratio"),
            "{e}"
        );
        let e = error(&GOOD.replace("    cells: [studio-a]", "    cells: [studio-b]"));
        assert!(
            e.starts_with("cells.yaml:17: slos[1].cells: no cell named \"studio-b\""),
            "{e}"
        );
        let e = error(&GOOD.replace("Europe/Berlin", "Mars/Olympus"));
        assert!(e.starts_with("cells.yaml:20: slos[1].timezone:"), "{e}");
        let e = error(&GOOD.replace("    period: 30d", "    period: 30 fortnights"));
        assert!(e.starts_with("cells.yaml:12: slos[0].period:"), "{e}");
    }

    #[test]
    fn unknown_fields_and_types_are_syntax_errors_with_positions() {
        let e = error(&GOOD.replace("    objective: 0.99", "    objectiv: 0.99"));
        assert!(
            e.starts_with("cells.yaml:11:") && e.contains("unknown field `objectiv`"),
            "{e}"
        );
        let e = error(&GOOD.replace("threshold: 150000", "threshold: lots"));
        assert!(
            e.starts_with("cells.yaml:23:") && e.contains("slos[1].sli.tokens_per_kwh.threshold"),
            "{e}"
        );
        let e = error("cells: {}\n");
        assert!(e.starts_with("cells.yaml:1:"), "{e}");
        let e = error("not: [valid\n");
        assert!(e.starts_with("cells.yaml:"), "{e}");
    }

    #[test]
    fn cross_field_rules() {
        let e = error(&GOOD.replace(
            "        threshold: 150000",
            "        threshold: 150000\n    budgeting: occurrences",
        ));
        assert!(
            e.contains("slos[1].budgeting") && e.contains("timeslices"),
            "{e}"
        );
        let e = error(&GOOD.replace("    period: 30d", "    period: 30d\n    timezone: UTC"));
        assert!(e.contains("slos[0].timezone"), "{e}");
        let e = error(&GOOD.replace("studio-a-2\n", "studio-a-1\n"));
        assert!(
            e.contains("cells[0].nodes[1].name") && e.contains("twice"),
            "{e}"
        );
        let e = error(&GOOD.replace("{ rack: r1 }", "{ cell: x }"));
        assert!(e.contains("cells[0].nodes[1].labels"), "{e}");
        let e = error(&GOOD.replace("http://studio-a-1.local:9817/metrics", "studio-a-1:9817"));
        assert!(e.contains("cells[0].nodes[0].url"), "{e}");
    }

    #[test]
    fn names_slices_objectives_and_sources_that_cannot_work() {
        let e = error(&GOOD.replace("- name: latency-2s", "- name: 'lat \"p99\"'"));
        assert!(
            e.contains("slos[0].name") && e.contains("letters, digits"),
            "{e}"
        );
        let e = error(&GOOD.replace(
            "    period: 30d",
            "    period: 1h\n    budgeting: timeslices\n    slice: 2h",
        ));
        assert!(
            e.contains("slos[0].slice") && e.contains("half the period"),
            "{e}"
        );
        let e = error(&GOOD.replace("objective: 0.99", "objective: 0.9"));
        assert!(
            e.contains("slos[0].objective") && e.contains("cannot happen"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}source:\n  prometheus: {{ url: \"prometheus:9090\" }}\n"
        ));
        assert!(
            e.contains("source.prometheus.url") && e.contains("http://prometheus:9090"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}source:\n  prometheus: {{ url: \"http://p:9090\", headers: {{ \"a b\": x }} }}\n"
        ));
        assert!(e.contains("source.prometheus.headers"), "{e}");
    }

    #[test]
    fn values_in_messages_are_cut_and_on_one_line() {
        assert_eq!(quote("studio-a"), "\"studio-a\"");
        let long = "é".repeat(150);
        let q = quote(&long);
        assert!(q.ends_with("\"… (300 bytes)"), "{q}");
        assert_eq!(q.chars().filter(|&c| c == 'é').count(), QUOTE_CHARS);
        assert_eq!(clip("a\nb"), "a\\nb");
        assert_eq!(
            one_line("regex parse error:\n    (\n    ^\nerror: unclosed group"),
            "regex parse error:; (; ^; error: unclosed group"
        );
        assert!(one_line(&"x".repeat(10_000)).len() < 700);
        let pattern = String::from("studio-(");
        let e = regex::Regex::new(&pattern).unwrap_err();
        assert_eq!(regex_error(&e), "unclosed group");
        let e = ConfigError::Invalid {
            path: "c.yaml".into(),
            line: 1,
            field: "f".repeat(1000),
            message: "two\nlines".into(),
        }
        .to_string();
        assert!(!e.contains('\n') && e.len() < 200, "{e}");
    }

    #[test]
    fn durations_are_bounded() {
        assert_eq!(duration("30d"), Ok(Duration::from_secs(30 * 86400)));
        assert_eq!(duration("10y"), Ok(MAX_DURATION));
        for v in [
            "10y 1s",
            "400000000000y",
            "292277024626y",
            "99999999999999999999y",
        ] {
            let e = duration(v).unwrap_err();
            assert!(
                e.contains("out of range") && e.contains("10 years"),
                "{v}: {e}"
            );
        }
        assert!(duration("soon").unwrap_err().contains("examples"));
    }

    #[test]
    fn a_cron_must_fire_at_all() {
        let fires = |s: &str| cron_fires(&s.parse().unwrap(), chrono_tz::UTC);
        assert!(fires("0 0 3 * * Sun"));
        assert!(fires("0 0 0 29 2 *"));
        assert!(
            fires("0 0 0 29 2 Mon"),
            "rare (both fields must match) but real"
        );
        assert!(!fires("0 0 0 30 2 *"));
        assert!(!fires("0 0 0 31 4 *"));
        assert!(!fires("0 0 0 31 4 * 2027"));
        // A one-off window that has passed, or one years ahead, keeps the configuration valid.
        assert!(fires("0 0 0 1 1 * 2020"));
        assert!(fires("0 0 0 1 1 * 2035"));
    }

    #[test]
    fn urls_need_an_http_scheme_a_host_and_a_port_that_exists() {
        let ok = |u: &str| check_url(u, false, "http://h:1");
        assert!(ok("http://n:9817/metrics").is_ok());
        assert!(ok("https://[::1]:9090").is_ok());
        assert!(ok("http://grafana/d/x?var-cell={cell}").is_ok());
        for (u, why) in [
            ("http:///////////", "empty host"),
            ("http://n:99999/metrics", "invalid port number"),
            ("http://n:0/metrics", "port 0"),
            ("ftp://n/metrics", "scheme"),
            ("studio-a-1:9817", "scheme"),
            ("http://n /metrics", "white space"),
        ] {
            let e = ok(u).unwrap_err();
            assert!(e.contains(why), "{u}: {e}");
        }
        let e = check_url("http://user:hunter2@:1/", false, "x").unwrap_err();
        assert!(!e.contains("hunter2"), "{e}");
        let e = check_url("hxxp://hooks/T0/SECRET", true, "x").unwrap_err();
        assert!(
            e.starts_with("the value is not") && !e.contains("SECRET"),
            "{e}"
        );
    }

    #[test]
    fn secrets_stay_out_of_syntax_errors() {
        let e = error(&format!(
            "{GOOD}source:\n  prometheus: {{ url: \"http://p:9090\", headers: {{ Authorization: {{ Bearer: SECRET }} }} }}\n"
        ));
        assert!(
            e.contains("source.prometheus.headers") && !e.contains("SECRET"),
            "{e}"
        );
        let e = error(&format!(
            "{GOOD}alerting:\n  cell_down_for: 400000000000y\n"
        ));
        assert!(
            e.contains("alerting.cell_down_for: \"400000000000y\" is out of range"),
            "{e}"
        );
    }

    #[test]
    fn the_depth_pre_scan_passes_real_files_and_stops_deep_ones() {
        for ok in [
            GOOD,
            include_str!("../examples/cells.yaml"),
            include_str!("../examples/openslo/cells.yaml"),
            include_str!("../examples/openslo/slos.openslo.yaml"),
            // Brackets and quotes inside strings, comments and block scalars do not nest.
            "a: \"[[[[[[\"\nb: '{{{{''[[['\nc: x[[[[[ # [[[[[[\nd: |\n  [[[[[[[[\n  {{{{{{{\ne: sum(rate(x{le=\"2\"}[5m]))\n",
        ] {
            let doubled = ok.replace("[[[[[[", &"[".repeat(200));
            assert_eq!(too_deep(&doubled), None, "{doubled}");
        }
        assert_eq!(too_deep(&format!("a: {}", "[".repeat(MAX_DEPTH))), Some(1));
        assert_eq!(too_deep(&format!("a: {}", "[".repeat(MAX_DEPTH - 2))), None);
        assert_eq!(
            too_deep(&format!("x: 1\na: {}", "{b: ".repeat(100))),
            Some(2)
        );
        assert_eq!(too_deep(&format!("a:\n{}x", "- ".repeat(100))), Some(2));
        let stairs: String = (0..100)
            .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(too_deep(&stairs), Some(MAX_DEPTH + 1));
        // Tags and anchors before a bracket do not hide it.
        assert!(too_deep(&format!("a: {}", "!t [".repeat(100))).is_some());
        // A block scalar ends where its indentation does.
        assert!(too_deep(&format!("- a: |\n    text\n  b: {}", "[".repeat(100))).is_some());
        // Anchors and tags followed by a flow indicator, with no space, do not swallow it.
        assert!(too_deep(&format!("a: {}", "[&x,".repeat(100))).is_some());
        assert!(too_deep(&format!("a: {}", "[!t,".repeat(100))).is_some());
        let closed = format!("{}\n", "a: [&x]\nb: {k: !!null}\n".repeat(100));
        assert_eq!(
            too_deep(&closed),
            None,
            "closing brackets after anchors and tags count"
        );
        // A continuation line of a plain scalar that starts with `|` or a quote hides nothing.
        let deep = "[".repeat(100);
        assert!(too_deep(&format!("k: word\n |\nb: {deep}")).is_some());
        assert!(too_deep(&format!("k: word\n \"x\nb: {deep}")).is_some());
        assert!(too_deep(&format!("a: [ word\n \"x\n {deep}")).is_some());
        // A block scalar on the line after its key still hides only its own content.
        assert_eq!(too_deep("k:\n  |\n    [[[[[[[[\nb: 1\n"), None);
        assert!(too_deep(&format!("k:\n  |\n    text\nb: {deep}")).is_some());
    }

    #[test]
    fn locate_follows_paths() {
        assert_eq!(locate(GOOD, "slos[1].sli.tokens_per_kwh.threshold"), 23);
        assert_eq!(locate(GOOD, "cells[0].nodes[1].labels"), 8);
        assert_eq!(locate(GOOD, "slos[0]"), 10);
        assert_eq!(locate(GOOD, "nope"), 1);
    }
}
