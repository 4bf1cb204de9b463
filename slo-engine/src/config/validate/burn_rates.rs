//! Validation of `alerting.burn_rates`.

use super::Fail;
use crate::config::error::ConfigError;
use crate::config::raw::RawBurnRate;
use crate::config::types::{BurnRate, default_burn_rates};
use crate::util::text::quote;

/// `alerting.burn_rates`: windows the engine keeps, short under long. None: the Workbook's.
pub(super) fn burn_rates(
    raw: &[RawBurnRate],
    fail: Fail<'_>,
) -> Result<Vec<BurnRate>, ConfigError> {
    let mut burn_rates = Vec::new();
    for (i, b) in raw.iter().enumerate() {
        let f = format!("alerting.burn_rates[{i}]");
        let (long, short) = (
            window(&f, "long", &b.long, fail)?,
            window(&f, "short", &b.short, fail)?,
        );
        if short >= long {
            return Err(fail.at(
                format!("{f}.short"),
                "the short window must be shorter than the long one",
            ));
        }
        if !["page", "ticket"].contains(&b.severity.as_str()) {
            return Err(fail.at(
                format!("{f}.severity"),
                format!("{}: page or ticket", quote(&b.severity)),
            ));
        }
        if !(b.budget > 0.0 && b.budget <= 1.0) {
            return Err(fail.at(
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
    Ok(burn_rates)
}

/// A window (seconds) among [`WINDOWS`](crate::model::WINDOWS).
fn window(f: &str, field: &str, v: &str, fail: Fail<'_>) -> Result<u64, ConfigError> {
    let secs = humantime::parse_duration(v).map(|d| d.as_secs()).ok();
    secs.filter(|s| crate::model::WINDOWS.iter().any(|(_, w)| w == s))
        .ok_or_else(|| {
            fail.at(
                format!("{f}.{field}"),
                format!(
                    "{}: the engine keeps the windows 5m, 30m, 1h, 2h, 6h, 1d and 3d",
                    quote(v)
                ),
            )
        })
}
