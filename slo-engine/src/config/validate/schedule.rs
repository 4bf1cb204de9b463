//! Cron schedules and time zones, as maintenance windows and reports both take them.

use super::Fail;
use crate::config::check::cron_fires;
use crate::config::error::ConfigError;
use crate::util::text::{one_line, quote};

/// An IANA time zone (default UTC).
pub(super) fn timezone(
    tz: Option<&str>,
    field: &str,
    fail: Fail<'_>,
) -> Result<chrono_tz::Tz, ConfigError> {
    let tz = tz.unwrap_or("UTC");
    tz.parse().map_err(|_| {
        fail.at(
            field,
            format!(
                "{} is not an IANA time zone such as Europe/Berlin or UTC",
                quote(tz)
            ),
        )
    })
}

/// `{f}.schedule` (a cron expression, seconds first) in `{f}.timezone`, which must fire some
/// day. `example` follows the parse error; `never` says what a schedule that never fires
/// fails to do.
pub(super) fn schedule(
    f: &str,
    schedule: &str,
    tz: Option<&str>,
    example: &str,
    never: &str,
    fail: Fail<'_>,
) -> Result<(cron::Schedule, chrono_tz::Tz), ConfigError> {
    let parsed: cron::Schedule = schedule.parse().map_err(|e: cron::error::Error| {
        fail.at(
            format!("{f}.schedule"),
            format!(
                "{}: {} (six fields, seconds first: {example})",
                quote(schedule),
                one_line(&e.to_string())
            ),
        )
    })?;
    let timezone = timezone(tz, &format!("{f}.timezone"), fail)?;
    if !cron_fires(&parsed, timezone) {
        return Err(fail.at(
            format!("{f}.schedule"),
            format!("{} {never} (a date that does not exist?)", quote(schedule)),
        ));
    }
    Ok((parsed, timezone))
}
