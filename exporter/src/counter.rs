//! Counters that never go backwards.

/// Turns a raw counter that may reset (an interface that was reset, a driver reloaded) into one
/// that only goes up: after a reset the raw value is added on top of what was already counted,
/// as Prometheus' `increase()` would.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Monotonic {
    last_raw: Option<f64>,
    offset: f64,
}

impl Monotonic {
    /// Takes the next raw reading and returns the exported value; a reading below the last is a
    /// reset.
    pub fn observe(&mut self, raw: f64) -> f64 {
        self.observe_reset(raw, false)
    }

    /// As [`Monotonic::observe`], with a reset also declared from outside (all the series of a
    /// histogram reset together when its count goes down).
    ///
    /// A NaN, infinite or negative reading is ignored (no counter can read so): the value stays
    /// what it was (0 before any reading), so it never enters the total.
    pub fn observe_reset(&mut self, raw: f64, reset: bool) -> f64 {
        if !raw.is_finite() || raw < 0.0 {
            return self.value().unwrap_or(0.0);
        }
        let offset = match self.last_raw {
            Some(last) if reset || raw < last => self.offset + last,
            _ => self.offset,
        };
        // A total a float cannot hold (1e308, a reset, 1e308 again) is ignored like an
        // impossible reading: the value never becomes infinite.
        if !(offset + raw).is_finite() {
            return self.value().unwrap_or(0.0);
        }
        self.offset = offset;
        self.last_raw = Some(raw);
        offset + raw
    }

    /// The last raw reading.
    pub fn last_raw(&self) -> Option<f64> {
        self.last_raw
    }

    /// The exported value now, if any reading was taken.
    pub fn value(&self) -> Option<f64> {
        self.last_raw.map(|r| self.offset + r)
    }
}

/// A total of per-window increments (energy in joules, for instance); negative or non-finite
/// increments are dropped.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Accumulator {
    total: f64,
}

impl Accumulator {
    /// Adds one window's increment and returns the new total.
    pub fn add(&mut self, increment: f64) -> f64 {
        if increment.is_finite() && increment > 0.0 {
            self.total += increment;
        }
        self.total
    }

    /// The total so far.
    pub fn total(&self) -> f64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_keeps_counting_up() {
        let mut c = Monotonic::default();
        assert_eq!(c.value(), None);
        assert_eq!(c.observe(100.0), 100.0);
        assert_eq!(c.observe(150.0), 150.0);
        assert_eq!(c.observe(10.0), 160.0); // reset: 150 counted before, 10 since
        assert_eq!(c.observe(30.0), 180.0);
        assert_eq!(c.observe(0.0), 180.0); // another reset
        assert_eq!(c.value(), Some(180.0));
    }

    #[test]
    fn impossible_readings_are_ignored() {
        let mut c = Monotonic::default();
        assert_eq!(c.observe(f64::NAN), 0.0);
        assert_eq!(c.observe(100.0), 100.0);
        for bad in [f64::INFINITY, f64::NAN, -5.0, f64::NEG_INFINITY] {
            assert_eq!(c.observe(bad), 100.0, "{bad}");
        }
        assert_eq!(c.observe(110.0), 110.0);
        assert_eq!(c.observe(5.0), 115.0, "a reset is still a reset");
    }

    #[test]
    fn the_total_never_becomes_infinite() {
        let mut c = Monotonic::default();
        assert_eq!(c.observe(1e308), 1e308);
        assert_eq!(c.observe(0.0), 1e308, "a reset");
        assert_eq!(c.observe(1e308), 1e308, "a total past f64::MAX is ignored");
        assert!(c.value().unwrap().is_finite());
        assert_eq!(c.observe(5.0), 1e308 + 5.0);
    }

    #[test]
    fn equal_reading_is_not_a_reset() {
        let mut c = Monotonic::default();
        c.observe(5.0);
        assert_eq!(c.observe(5.0), 5.0);
    }

    #[test]
    fn accumulator_ignores_bad_increments() {
        let mut a = Accumulator::default();
        a.add(1.5);
        a.add(-3.0);
        a.add(f64::NAN);
        a.add(f64::INFINITY);
        assert_eq!(a.add(0.5), 2.0);
    }
}
