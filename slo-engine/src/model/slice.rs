//! The slice every source fills and the verdict on it.

/// What one slice of one cell recorded for one SLO. Times are Unix seconds; a slice covers
/// `[start, start + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SliceData {
    /// Slice start.
    pub start: i64,
    /// Good events (requests under the threshold, non-error outcomes).
    pub good: f64,
    /// All events counted by the SLI.
    pub total: f64,
    /// Generated tokens of the cell.
    pub tokens: f64,
    /// Energy of the cell's nodes, joules.
    pub joules: f64,
    /// Requests of the cell.
    pub requests: f64,
}

impl SliceData {
    /// Adds another part of the same slice (its counts; the start is kept).
    pub fn add(&mut self, other: &SliceData) {
        self.good += other.good;
        self.total += other.total;
        self.tokens += other.tokens;
        self.joules += other.joules;
        self.requests += other.requests;
    }
}

/// A slice's verdict under timeslices budgeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Met the slice target.
    Good,
    /// Missed it.
    Bad,
    /// Too little traffic to judge (no events; fewer tokens than the minimum).
    Idle,
}

/// Resolution of occurrence slices and of the cell totals (seconds).
pub const SLICE: i64 = 60;
