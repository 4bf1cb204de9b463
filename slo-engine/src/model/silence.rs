//! Silences, and silences with their matchers compiled.

use serde::{Deserialize, Serialize};

use crate::model::{CompiledMatcher, Labels, Matcher};

/// A silence: alerts matching every matcher send nothing from `starts_at` to `ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Its id.
    pub id: String,
    /// Matchers, all of which must hold.
    pub matchers: Vec<Matcher>,
    /// Start (Unix seconds).
    pub starts_at: i64,
    /// End (Unix seconds).
    pub ends_at: i64,
    /// Who made it.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now: i64) -> &'static str {
        if now < self.starts_at {
            "pending"
        } else if now < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }

    /// Compiles its matchers.
    pub fn compile(self) -> Result<CompiledSilence, String> {
        let matchers = self
            .matchers
            .iter()
            .map(Matcher::compile)
            .collect::<Result<_, _>>()?;
        Ok(CompiledSilence {
            silence: self,
            matchers,
        })
    }
}

/// A silence with its matchers compiled: what the engine matches alerts against.
#[derive(Debug, Clone)]
pub struct CompiledSilence {
    /// The silence.
    pub silence: Silence,
    matchers: Vec<CompiledMatcher>,
}

impl CompiledSilence {
    /// The same silence, its compiled matchers reused, with another record (the same
    /// matchers, another end after an expiry).
    pub fn with(&self, silence: Silence) -> CompiledSilence {
        CompiledSilence {
            silence,
            matchers: self.matchers.clone(),
        }
    }

    /// Whether it mutes `labels` at `now`.
    pub fn mutes(&self, labels: &Labels, now: i64) -> bool {
        self.silence.state(now) == "active" && self.matchers.iter().all(|m| m.matches(labels))
    }
}
