//! Validation of `source` (scrape or prometheus) and the histogram buckets.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use super::{Fail, files};
use crate::config::check::check_url;
use crate::config::error::ConfigError;
use crate::config::raw::RawSource;
use crate::config::types::Source;
use crate::util::text::quote;

/// `source:` scrape or prometheus, then its interval.
pub(super) fn source(raw: RawSource, base: &Path, fail: Fail<'_>) -> Result<Source, ConfigError> {
    let source = match raw {
        RawSource::Scrape {
            interval,
            ca_file,
            basic_auth,
        } => Source::Scrape {
            interval,
            ca_pem: ca_file
                .map(|f| files::ca_pem(&base.join(f), fail))
                .transpose()?,
            basic_auth: basic_auth
                .map(|b| files::basic_auth(b, base, fail))
                .transpose()?,
        },
        RawSource::Prometheus {
            url,
            interval,
            delay,
            timeout,
            headers,
        } => prometheus(url, interval, delay, timeout, headers, fail)?,
    };
    let (Source::Scrape { interval, .. } | Source::Prometheus { interval, .. }) = &source;
    let d = *interval;
    if d < Duration::from_secs(1) || d > Duration::from_secs(3600) {
        return Err(fail.at("source", format!("interval {d:?} is outside 1s..=1h")));
    }
    Ok(source)
}

fn prometheus(
    url: String,
    interval: Duration,
    delay: Duration,
    timeout: Duration,
    headers: BTreeMap<String, String>,
    fail: Fail<'_>,
) -> Result<Source, ConfigError> {
    check_url(&url, false, "http://prometheus:9090")
        .map_err(|m| fail.at("source.prometheus.url", m))?;
    if delay > Duration::from_secs(3600) {
        return Err(fail.at(
            "source.prometheus.delay",
            format!("{delay:?} is more than 1h"),
        ));
    }
    if timeout < Duration::from_secs(1) {
        return Err(fail.at(
            "source.prometheus.timeout",
            format!("{timeout:?} is less than 1s"),
        ));
    }
    for (k, v) in &headers {
        if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
            || reqwest::header::HeaderValue::from_str(v).is_err()
        {
            return Err(fail.at(
                "source.prometheus.headers",
                format!(
                    "{} is not a valid HTTP header name, or its value is not a valid header value",
                    quote(k)
                ),
            ));
        }
    }
    Ok(Source::Prometheus {
        url: url.trim_end_matches('/').to_string(),
        interval,
        delay,
        timeout,
        headers,
    })
}

/// `buckets:` or `tpot_buckets:` (`key`) positive and increasing.
pub(super) fn buckets(key: &str, buckets: &[f64], fail: Fail<'_>) -> Result<(), ConfigError> {
    if buckets.is_empty()
        || buckets.windows(2).any(|w| w[0] >= w[1])
        || buckets.iter().any(|b| !b.is_finite() || *b <= 0.0)
    {
        let given: Vec<String> = buckets.iter().map(|b| format!("{b}")).collect();
        return Err(fail.at(
            key,
            format!(
                "bucket bounds must be positive and increasing (given: [{}])",
                crate::util::text::clip(&given.join(", "))
            ),
        ));
    }
    Ok(())
}
