//! Durations in the configuration: parsed with their bounds, errors that name no field.

use std::time::Duration;

use super::error::MAX_DURATION;
use crate::util::text::quote;

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

pub(super) fn parse_duration(field: &str, s: &str) -> Result<Duration, String> {
    duration(s).map_err(|m| format!("{field} {m}"))
}
