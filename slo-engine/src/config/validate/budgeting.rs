//! Validation of an SLO's budgeting (occurrences or time slices) and whether a page can fire.

use std::time::Duration;

use super::Fail;
use crate::config::error::ConfigError;
use crate::config::message::parse_duration;
use crate::config::raw::RawSlo;
use crate::config::types::{Budgeting, Period, Sli};
use crate::util::text::quote;

/// `slos[i].budgeting` (with `slice` and `slice_target`), then whether the period holds many
/// slices and whether a page can fire at all.
pub(super) fn budgeting(
    s: &RawSlo,
    f: &str,
    sli: &Sli,
    period: &Period,
    fail: Fail<'_>,
) -> Result<Budgeting, ConfigError> {
    let slice = s
        .slice
        .as_deref()
        .map(|x| parse_duration("slice", x))
        .transpose()
        .map_err(|m| fail.at(format!("{f}.slice"), m))?;
    let budgeting = match (s.budgeting.as_deref(), sli) {
        (Some("occurrences"), Sli::TokensPerKwh { .. }) => {
            return Err(fail.at(
                format!("{f}.budgeting"),
                "tokens_per_kwh is judged per time slice: use timeslices (or omit budgeting)",
            ));
        }
        (Some("occurrences"), Sli::LinkHealth | Sli::PowerCap | Sli::Throughput { .. }) => {
            return Err(fail.at(
                format!("{f}.budgeting"),
                "link_health, power_cap and throughput are judged per minute: use timeslices (or omit budgeting)",
            ));
        }
        (None | Some("timeslices"), Sli::LinkHealth | Sli::PowerCap | Sli::Throughput { .. }) => {
            // A slice is good when every reading in it was: the peak decides. A throughput
            // slice is judged on its tokens as a whole.
            if s.slice_target.is_some_and(|t| t != 1.0) {
                return Err(fail.at(
                    format!("{f}.slice_target"),
                    "a link_health or power_cap slice is good only when every reading in it is, a throughput slice \
                     when its tokens per second reach the floor: omit slice_target",
                ));
            }
            let slice = slice.unwrap_or(Duration::from_secs(60));
            if matches!(sli, Sli::Throughput { .. }) && slice != Duration::from_secs(60) {
                return Err(fail.at(
                    format!("{f}.slice"),
                    format!(
                        "{slice:?}: throughput is judged per minute (the generated rules record tokens per second \
                         over one minute): omit slice, or write 1m"
                    ),
                ));
            }
            if slice < Duration::from_secs(10) || slice > Duration::from_secs(86400) {
                return Err(fail.at(
                    format!("{f}.slice"),
                    format!("{slice:?} is outside 10s..=1d"),
                ));
            }
            Budgeting::Timeslices {
                slice,
                slice_target: 1.0,
            }
        }
        (Some("occurrences"), _)
        | (
            None,
            Sli::Latency(_) | Sli::Ttft(_) | Sli::Tpot(_) | Sli::Availability | Sli::Ratio(_),
        ) => {
            if slice.is_some() || s.slice_target.is_some() {
                return Err(fail.at(
                    format!("{f}.slice"),
                    "slice and slice_target apply to budgeting: timeslices",
                ));
            }
            Budgeting::Occurrences
        }
        (Some("timeslices"), _) | (None, Sli::TokensPerKwh { .. }) => {
            timeslices(s, f, slice, fail)?
        }
        (Some(other), _) => {
            return Err(fail.at(
                format!("{f}.budgeting"),
                format!("{}: use occurrences or timeslices", quote(other)),
            ));
        }
    };
    fits_period(s, f, &budgeting, period, fail)?;
    Ok(budgeting)
}

fn timeslices(
    s: &RawSlo,
    f: &str,
    slice: Option<Duration>,
    fail: Fail<'_>,
) -> Result<Budgeting, ConfigError> {
    let slice = slice.unwrap_or(Duration::from_secs(300));
    if slice < Duration::from_secs(10) || slice > Duration::from_secs(86400) {
        return Err(fail.at(
            format!("{f}.slice"),
            format!("{slice:?} is outside 10s..=1d"),
        ));
    }
    let slice_target = s.slice_target.unwrap_or(s.objective);
    if !(slice_target > 0.0 && slice_target <= 1.0) {
        return Err(fail.at(
            format!("{f}.slice_target"),
            format!("{slice_target} is not a ratio between 0 and 1"),
        ));
    }
    Ok(Budgeting::Timeslices {
        slice,
        slice_target,
    })
}

/// A period holds many slices, and the SRE Workbook's page alert (2 % of the budget in 1 h) can
/// fire: its error-ratio threshold stays below 100 %.
fn fits_period(
    s: &RawSlo,
    f: &str,
    budgeting: &Budgeting,
    period: &Period,
    fail: Fail<'_>,
) -> Result<(), ConfigError> {
    let period_len = match period {
        Period::Rolling(d) => *d,
        Period::CalendarMonth(_) => Duration::from_secs(crate::model::MONTH_SHORTEST),
    };
    if let Budgeting::Timeslices { slice, .. } = budgeting
        && slice.as_secs() * 2 > period_len.as_secs()
    {
        return Err(fail.at(
            format!("{f}.slice"),
            format!("{slice:?} is more than half the period: a period needs many slices"),
        ));
    }
    let page = crate::model::page_factor(period_len.as_secs()) * (1.0 - s.objective);
    if page >= 1.0 {
        return Err(fail.at(
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
    Ok(())
}
