//! Tallies, window states, burn rates and the budget left.

use super::judge::judge;
use super::period::{period_bounds, period_length, slice_start};
use crate::config::{Budgeting, MinEvents, Period, Slo};
use crate::model::low_traffic_guard;
use crate::model::{SliceData, Verdict};

/// Good and total units (events, or judged slices) over a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tally {
    /// Good units.
    pub good: f64,
    /// All units.
    pub total: f64,
}

/// Sums the slices that start in `[from, to)`.
pub fn tally(slo: &Slo, slices: &[SliceData], from: i64, to: i64) -> Tally {
    let mut t = Tally::default();
    for s in slices.iter().filter(|s| s.start >= from && s.start < to) {
        match slo.budgeting {
            Budgeting::Occurrences => {
                t.good += s.good;
                t.total += s.total;
            }
            Budgeting::Timeslices { .. } => match judge(slo, s) {
                Verdict::Good => {
                    t.good += 1.0;
                    t.total += 1.0;
                }
                Verdict::Bad => t.total += 1.0,
                Verdict::Idle => {}
            },
        }
    }
    t
}

/// The state of one window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WindowState {
    /// No events (or no judged slice) at all.
    NoData,
    /// Fewer units than the SLO's fixed `min_events`: reported, not judged.
    TooThin {
        /// The SLI so far.
        sli: f64,
        /// Units seen.
        total: f64,
    },
    /// Enough data.
    Judged {
        /// Good / total (judged slices for time slices).
        sli: f64,
        /// How fast the window spends the budget: 1 spends it exactly over the period.
        /// Occurrences: (1 − SLI) / (1 − objective). Time slices: bad slices / ((1 − objective)
        /// × every slice of the window), the budget's own denominator, so idle slices neither
        /// burn nor fill the budget.
        burn_rate: f64,
    },
}

/// The state of a window of `window_secs` seconds (see [`period_elapsed`] for the period's)
/// from its tally.
pub fn window_state(slo: &Slo, t: Tally, window_secs: u64) -> WindowState {
    if t.total <= 0.0 {
        return WindowState::NoData;
    }
    let sli = t.good / t.total;
    if let MinEvents::Fixed(n) = slo.min_events
        && t.total < n as f64
    {
        return WindowState::TooThin {
            sli,
            total: t.total,
        };
    }
    let burn_rate = match slo.budgeting {
        Budgeting::Occurrences => (1.0 - sli) / (1.0 - slo.objective),
        Budgeting::Timeslices { slice, .. } => {
            // A window holds at least the slices it judged.
            let slices = (window_secs as f64 / slice.as_secs().max(1) as f64).max(t.total);
            (t.total - t.good) / ((1.0 - slo.objective) * slices)
        }
    };
    WindowState::Judged { sli, burn_rate }
}

/// The length of the period's window at `now`, seconds: for time slices, from the period's
/// start to the start of the slice in progress (the slices so far, judged or idle); for
/// occurrences, the period's length (their burn rate does not depend on it).
pub fn period_elapsed(slo: &Slo, now: i64) -> u64 {
    match slo.budgeting {
        Budgeting::Timeslices { slice, .. } => {
            let (start, _) = period_bounds(&slo.period, now);
            (slice_start(now, slice) - start).max(0) as u64
        }
        Budgeting::Occurrences => period_length(&slo.period, now).as_secs(),
    }
}

/// The fewest units the long window of a burn tier (factor `factor`) must hold for the tier to
/// fire: with the automatic `min_events`, an occurrence SLO's [`low_traffic_guard`] (one bad
/// event alone never fires a tier); otherwise 0 (time slices have no minimum, and a fixed
/// `min_events` already leaves thinner windows unjudged).
pub fn tier_min_events(slo: &Slo, factor: f64) -> u64 {
    match (slo.min_events, slo.budgeting) {
        (MinEvents::Auto, Budgeting::Occurrences) => low_traffic_guard(slo.objective, factor),
        _ => 0,
    }
}

/// The fewest units the period must hold for its budget to count as exhausted: a fixed
/// `min_events`; with the automatic one, an occurrence SLO's [`low_traffic_guard`] at 1× (one
/// bad event alone never spends the whole budget: more than 1 / (1 − objective) events);
/// otherwise 0 (time slices). Without it, the first bad requests of a fresh period exhaust its
/// budget before any burn tier has the events to judge, and the ticket runs ahead of the page.
pub fn exhausted_min_events(slo: &Slo) -> u64 {
    match (slo.min_events, slo.budgeting) {
        (MinEvents::Fixed(n), _) => n,
        (MinEvents::Auto, Budgeting::Occurrences) => low_traffic_guard(slo.objective, 1.0),
        _ => 0,
    }
}

/// The error budget left in the period containing `now`, as a share of the whole budget:
/// 1 untouched, 0 spent, below 0 overspent; `None` without data.
///
/// Occurrences: the budget is (1 − objective) × events so far. Timeslices: (1 − objective) ×
/// every slice of the period (judged, idle or not yet), so an idle cell spends nothing; the
/// budget spent is the period's burn rate × the share of the period elapsed.
pub fn budget_remaining(slo: &Slo, slices: &[SliceData], now: i64) -> Option<f64> {
    let (start, end) = period_bounds(&slo.period, now);
    let to = match slo.period {
        Period::Rolling(_) => now + 1,
        Period::CalendarMonth(_) => (now + 1).min(end),
    };
    // A time slice is judged once it is complete.
    let to = match slo.budgeting {
        Budgeting::Timeslices { slice, .. } => to.min(slice_start(now, slice)),
        Budgeting::Occurrences => to,
    };
    budget_from_tally(slo, tally(slo, slices, start, to), now)
}

/// The budget left, from the period's tally (see [`budget_remaining`]).
pub fn budget_from_tally(slo: &Slo, t: Tally, now: i64) -> Option<f64> {
    if t.total <= 0.0 {
        return None;
    }
    let allowed = match slo.budgeting {
        Budgeting::Occurrences => (1.0 - slo.objective) * t.total,
        Budgeting::Timeslices { slice, .. } => {
            let slices_in_period =
                (period_length(&slo.period, now).as_secs() / slice.as_secs().max(1)) as f64;
            (1.0 - slo.objective) * slices_in_period
        }
    };
    (allowed > 0.0).then(|| 1.0 - (t.total - t.good) / allowed)
}
