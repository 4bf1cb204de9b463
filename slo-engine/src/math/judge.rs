//! The slice-judging rule, in Rust, SQL and as a key.

use super::tokens_per_kwh;
use crate::config::{Budgeting, Sli, Slo};
use crate::model::{SliceData, Verdict};

/// How one slice of an SLO is judged: the one rule. The math applies it to recorded slices
/// ([`Judge::verdict`]), the ledger to stored rows as SQL ([`Judge::sql`], the same comparisons
/// on the same IEEE doubles, so both agree to the slice), and the generated Prometheus rules
/// write it in PromQL from the same variants (`generate::prometheus`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Judge {
    /// Good when every event is good (occurrences); idle without events.
    AllGood,
    /// Good when good / total reaches the slice target; idle without events.
    Ratio {
        /// Share of good events that makes a slice good.
        slice_target: f64,
    },
    /// Good when tokens per kWh reach the threshold; idle under `min_tokens` tokens or without
    /// an energy reading.
    TokensPerKwh {
        /// Tokens per kWh.
        threshold: f64,
        /// Fewest tokens.
        min_tokens: u64,
    },
    /// Good when the slice's generated tokens per second (its tokens over its length) reach
    /// the floor; judged only when requests were waiting in at least
    /// [`THROUGHPUT_LOADED_SHARE`] of the slice's readings that carry the waiting gauge
    /// (`total`: those readings, one per node and scrape; `good`: those of them with requests
    /// waiting), idle otherwise. A backlog persists across readings; one request's prefill
    /// caught by one scrape does not.
    Throughput {
        /// Generated tokens per second.
        floor: f64,
        /// Slice length, seconds.
        slice_secs: f64,
    },
}

/// The share of a `throughput` slice's readings (those with the waiting gauge) that must show
/// requests waiting for the slice to be judged.
pub const THROUGHPUT_LOADED_SHARE: f64 = 0.5;

impl Judge {
    /// The rule of `slo`'s slices.
    pub fn of(slo: &Slo) -> Judge {
        match (&slo.sli, slo.budgeting) {
            (
                Sli::TokensPerKwh {
                    threshold,
                    min_tokens,
                },
                _,
            ) => Judge::TokensPerKwh {
                threshold: *threshold,
                min_tokens: *min_tokens,
            },
            (Sli::Throughput { floor }, Budgeting::Timeslices { slice, .. }) => Judge::Throughput {
                floor: *floor,
                slice_secs: slice.as_secs_f64(),
            },
            (_, Budgeting::Timeslices { slice_target, .. }) => Judge::Ratio { slice_target },
            (_, Budgeting::Occurrences) => Judge::AllGood,
        }
    }

    /// The rule by which the ledger judges `slo`'s time slices; `None` for occurrences, whose
    /// slices are summed, not judged.
    pub fn of_timeslices(slo: &Slo) -> Option<Judge> {
        match slo.budgeting {
            Budgeting::Occurrences => None,
            Budgeting::Timeslices { .. } => Some(Judge::of(slo)),
        }
    }

    /// The verdict on one slice.
    pub fn verdict(&self, s: &SliceData) -> Verdict {
        let good = match *self {
            Judge::TokensPerKwh {
                threshold,
                min_tokens,
            } => {
                if s.tokens < min_tokens as f64 || s.tokens <= 0.0 {
                    return Verdict::Idle;
                }
                match tokens_per_kwh(s.tokens, s.joules) {
                    // Tokens without any energy reading cannot be judged.
                    None => return Verdict::Idle,
                    Some(t) => t >= threshold,
                }
            }
            _ if s.total <= 0.0 => return Verdict::Idle,
            Judge::Throughput { .. } if s.good / s.total < THROUGHPUT_LOADED_SHARE => {
                return Verdict::Idle;
            }
            Judge::Throughput { floor, slice_secs } => s.tokens / slice_secs >= floor,
            Judge::Ratio { slice_target } => s.good / s.total >= slice_target,
            Judge::AllGood => s.good >= s.total,
        };
        if good { Verdict::Good } else { Verdict::Bad }
    }

    /// (good, judged) SQL expressions of a row's verdict (1 or 0), and the values of their
    /// placeholders, numbered from `$first`.
    pub fn sql(&self, first: usize) -> (String, String, Vec<f64>) {
        let p = |i: usize| format!("${}", first + i);
        match *self {
            Judge::AllGood => (
                "CASE WHEN total > 0 AND good >= total THEN 1 ELSE 0 END".into(),
                "CASE WHEN total > 0 THEN 1 ELSE 0 END".into(),
                Vec::new(),
            ),
            Judge::Ratio { slice_target } => (
                format!(
                    "CASE WHEN total > 0 AND good / total >= {} THEN 1 ELSE 0 END",
                    p(0)
                ),
                "CASE WHEN total > 0 THEN 1 ELSE 0 END".into(),
                vec![slice_target],
            ),
            Judge::TokensPerKwh {
                threshold,
                min_tokens,
            } => {
                let judged = format!("tokens >= {} AND tokens > 0 AND joules > 0", p(0));
                (
                    format!(
                        "CASE WHEN {judged} AND tokens / (joules / {}) >= {} THEN 1 ELSE 0 END",
                        p(1),
                        p(2)
                    ),
                    format!("CASE WHEN {judged} THEN 1 ELSE 0 END"),
                    vec![min_tokens as f64, 3.6e6, threshold],
                )
            }
            Judge::Throughput { floor, slice_secs } => {
                let judged = format!("total > 0 AND good / total >= {}", p(0));
                (
                    format!(
                        "CASE WHEN {judged} AND tokens / {} >= {} THEN 1 ELSE 0 END",
                        p(1),
                        p(2)
                    ),
                    format!("CASE WHEN {judged} THEN 1 ELSE 0 END"),
                    vec![THROUGHPUT_LOADED_SHARE, slice_secs, floor],
                )
            }
        }
    }

    /// The parameters, as a name (the ledger's judging cursor).
    pub fn key(&self) -> String {
        match self {
            Judge::AllGood => "all_good".into(),
            Judge::Ratio { slice_target } => format!("ratio {slice_target:?}"),
            Judge::TokensPerKwh {
                threshold,
                min_tokens,
            } => format!("tokens_per_kwh {threshold:?} {:?}", *min_tokens as f64),
            // The loaded share is part of the rule: stored slices of an older rule are
            // judged again.
            Judge::Throughput { floor, .. } => {
                format!("throughput {floor:?} loaded {THROUGHPUT_LOADED_SHARE:?}")
            }
        }
    }
}

/// Judges one slice of `slo`.
pub fn judge(slo: &Slo, s: &SliceData) -> Verdict {
    Judge::of(slo).verdict(s)
}
