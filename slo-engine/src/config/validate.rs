use super::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The OpenSLO field that holds what one of our SLO fields was made from.
pub(super) fn openslo_field(ours: &str) -> &'static str {
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

pub(super) fn validate(raw: RawConfig, text: &str, path: &Path) -> Result<Config, ConfigError> {
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
    let imported = crate::config::openslo::import(&files)?;
    if let (Some((_, o)), Source::Scrape { .. }) = (imported.first(), &source) {
        return Err(err(
            "openslo".into(),
            format!(
                "{}: OpenSLO SLOs are PromQL queries, so they need source: prometheus",
                o.path.display()
            ),
        ));
    }
    let all: Vec<(&RawSlo, Option<&crate::config::openslo::Origin>)> = raw
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
            crate::model::burn_factor(0.02, 3600, period_len.as_secs()) * (1.0 - s.objective);
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
        maintenance.push(crate::config::Maintenance {
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

pub(super) fn validate_alerting(
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
            let m = crate::model::Matcher {
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
        routes.push(crate::config::Route {
            receiver: r.receiver.clone(),
            matchers: r.matchers.clone(),
            match_re,
            continue_: r.continue_,
        });
    }
    if routes.is_empty()
        && let Some(first) = a.receivers.first()
    {
        routes.push(crate::config::Route {
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
            secs.filter(|s| crate::model::WINDOWS.iter().any(|(_, w)| w == s))
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
        timing: crate::config::Timing {
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
