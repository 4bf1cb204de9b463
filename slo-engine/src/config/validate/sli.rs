//! Validation of an SLO's SLI.

use super::Fail;
use crate::config::error::ConfigError;
use crate::config::message::parse_duration;
use crate::config::raw::RawSli;
use crate::config::types::{RatioQueries, Sli, Source};
use crate::util::text::clip;

/// The bucket bounds a threshold must fall on: `buckets:` (latency, TTFT) and `tpot_buckets:`.
#[derive(Clone, Copy)]
pub(super) struct Bounds<'a> {
    /// `buckets:`.
    pub(super) latency: &'a [f64],
    /// `tpot_buckets:`.
    pub(super) tpot: &'a [f64],
}

/// `slos[i].sli`: thresholds on bucket bounds, ratios only with the prometheus source.
pub(super) fn sli(
    raw: &RawSli,
    f: &str,
    bounds: Bounds<'_>,
    source: &Source,
    fail: Fail<'_>,
) -> Result<Sli, ConfigError> {
    let on = |which: &str, key: &str, list: &[f64], t: &str| {
        bound(t, &format!("{f}.sli.{which}.threshold"), key, list, fail)
    };
    Ok(match raw {
        RawSli::Latency { threshold } => {
            Sli::Latency(on("latency", "buckets", bounds.latency, threshold)?)
        }
        RawSli::Ttft { threshold } => Sli::Ttft(on("ttft", "buckets", bounds.latency, threshold)?),
        RawSli::Tpot { threshold } => {
            Sli::Tpot(on("tpot", "tpot_buckets", bounds.tpot, threshold)?)
        }
        RawSli::Throughput { floor } => {
            if !(floor.is_finite() && *floor > 0.0) {
                return Err(fail.at(
                    format!("{f}.sli.throughput.floor"),
                    format!(
                        "{floor} is not a positive number of generated tokens per second (e.g. 20)"
                    ),
                ));
            }
            Sli::Throughput { floor: *floor }
        }
        RawSli::Availability {} => Sli::Availability,
        RawSli::LinkHealth {} | RawSli::PowerCap {} => {
            let (name, sli) = match raw {
                RawSli::LinkHealth {} => ("link_health", Sli::LinkHealth),
                _ => ("power_cap", Sli::PowerCap),
            };
            if !matches!(source, Source::Scrape { .. }) {
                return Err(fail.at(
                    format!("{f}.sli.{name}"),
                    format!(
                        "{name} reads the exporters' link and power gauges: it needs source: scrape"
                    ),
                ));
            }
            sli
        }
        RawSli::Ratio {
            good,
            bad,
            total,
            counter,
        } => {
            if matches!(source, Source::Scrape { .. }) {
                return Err(fail.at(
                    format!("{f}.sli.ratio"),
                    "a ratio of PromQL queries needs source: prometheus",
                ));
            }
            let blank = |q: &Option<String>| q.as_deref().is_some_and(|q| q.trim().is_empty());
            if good.is_some() == bad.is_some() || blank(good) || blank(bad) {
                return Err(fail.at(
                    format!("{f}.sli.ratio"),
                    "give exactly one of good and bad (a PromQL expression)",
                ));
            }
            if total.trim().is_empty() {
                return Err(fail.at(format!("{f}.sli.ratio.total"), "an empty query"));
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
                return Err(fail.at(
                    format!("{f}.sli.tokens_per_kwh.threshold"),
                    format!("{threshold} is not a positive number of tokens per kWh"),
                ));
            }
            Sli::TokensPerKwh {
                threshold: *threshold,
                min_tokens: *min_tokens,
            }
        }
    })
}

/// A latency, TTFT or TPOT threshold (seconds) at `field`: one of the bounds of the histogram,
/// listed under the configuration key `key` (`buckets` or `tpot_buckets`).
fn bound(
    threshold: &str,
    field: &str,
    key: &str,
    buckets: &[f64],
    fail: Fail<'_>,
) -> Result<f64, ConfigError> {
    let t = parse_duration("threshold", threshold)
        .map_err(|m| fail.at(field, m))?
        .as_secs_f64();
    if !buckets.iter().any(|b| (b - t).abs() < 1e-9) {
        let near: Vec<String> = buckets.iter().map(|b| format!("{b}")).collect();
        let flag = if key == "buckets" {
            "the exporters' --collector.inference.buckets"
        } else {
            "the exporters' time-per-output-token buckets"
        };
        return Err(fail.at(
            field,
            format!(
                "{} is not a bucket bound ({key}: {}s), so the share under it cannot be counted exactly: pick a bound, \
                 or add {t} to {flag} and to {key}: in this file",
                clip(threshold),
                clip(&near.join(", "))
            ),
        ));
    }
    Ok(t)
}
