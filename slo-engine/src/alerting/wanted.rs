//! An alert an evaluation calls for, and the labels helper.

use crate::model::Labels;

/// An alert an evaluation calls for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// Identity.
    pub labels: Labels,
    /// Descriptions for people (not identity).
    pub annotations: Labels,
    /// How long the condition must hold before the alert fires (seconds).
    pub hold: i64,
}

pub(super) fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
