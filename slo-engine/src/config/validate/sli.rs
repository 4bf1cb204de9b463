//! Validation of an SLO's SLI.

use super::Fail;
use crate::config::error::ConfigError;
use crate::config::message::parse_duration;
use crate::config::raw::RawSli;
use crate::config::types::{RatioQueries, Sli, Source};
use crate::util::text::clip;

/// `slos[i].sli`: thresholds on bucket bounds, ratios only with the prometheus source.
pub(super) fn sli(
    raw: &RawSli,
    f: &str,
    buckets: &[f64],
    source: &Source,
    fail: Fail<'_>,
) -> Result<Sli, ConfigError> {
    Ok(match raw {
        RawSli::Latency { threshold } => {
            Sli::Latency(bound(threshold, f, "latency", buckets, fail)?)
        }
        RawSli::Ttft { threshold } => Sli::Ttft(bound(threshold, f, "ttft", buckets, fail)?),
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

/// A latency or TTFT threshold (seconds): one of the histogram's bucket bounds.
fn bound(
    threshold: &str,
    f: &str,
    which: &str,
    buckets: &[f64],
    fail: Fail<'_>,
) -> Result<f64, ConfigError> {
    let field = format!("{f}.sli.{which}.threshold");
    let t = parse_duration("threshold", threshold)
        .map_err(|m| fail.at(field.clone(), m))?
        .as_secs_f64();
    if !buckets.iter().any(|b| (b - t).abs() < 1e-9) {
        let near: Vec<String> = buckets.iter().map(|b| format!("{b}")).collect();
        return Err(fail.at(
            field,
            format!(
                "{} is not a bucket bound ({}s), so the share under it cannot be counted exactly: pick a bound, \
                 or add {t} to the exporters' --collector.inference.buckets and to buckets: in this file",
                clip(threshold),
                clip(&near.join(", "))
            ),
        ));
    }
    Ok(t)
}
