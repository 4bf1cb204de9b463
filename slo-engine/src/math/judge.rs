use crate::config::{Budgeting, Sli, Slo};
use crate::model::{SliceData, Verdict};

use super::*;

/// Judges one slice for a timeslices SLO.
pub fn judge(slo: &Slo, s: &SliceData) -> Verdict {
    match (&slo.sli, slo.budgeting) {
        (
            Sli::TokensPerKwh {
                threshold,
                min_tokens,
            },
            _,
        ) => {
            if s.tokens < *min_tokens as f64 || s.tokens <= 0.0 {
                return Verdict::Idle;
            }
            match tokens_per_kwh(s.tokens, s.joules) {
                // Tokens without any energy reading cannot be judged.
                None => Verdict::Idle,
                Some(t) if t >= *threshold => Verdict::Good,
                Some(_) => Verdict::Bad,
            }
        }
        (_, Budgeting::Timeslices { slice_target, .. }) => {
            if s.total <= 0.0 {
                Verdict::Idle
            } else if s.good / s.total >= slice_target {
                Verdict::Good
            } else {
                Verdict::Bad
            }
        }
        (_, Budgeting::Occurrences) => {
            if s.total <= 0.0 {
                Verdict::Idle
            } else if s.good >= s.total {
                Verdict::Good
            } else {
                Verdict::Bad
            }
        }
    }
}
