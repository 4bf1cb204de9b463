//! Values of Linux sysfs files: InfiniBand/RoCE port state and rate, counters that may read
//! `N/A (no PMA)`. Pure: text in, values out.

use super::ParseError;

/// `4: ACTIVE` → (4, "ACTIVE").
pub fn state(what: &'static str, text: &str) -> Result<(u32, String), ParseError> {
    let t = text.trim();
    let (n, name) = t
        .split_once(':')
        .ok_or_else(|| ParseError::invalid(what, format!("{t:?} is not `N: NAME`")))?;
    let n = n
        .trim()
        .parse()
        .map_err(|_| ParseError::invalid(what, format!("{t:?} is not `N: NAME`")))?;
    Ok((n, name.trim().to_string()))
}

/// `40 Gb/sec (4X QDR)` → bytes per second (Gb/s × 1.25e8).
pub fn rate(what: &'static str, text: &str) -> Result<f64, ParseError> {
    let t = text.trim();
    let mut parts = t.split_whitespace();
    let v: f64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ParseError::invalid(what, format!("{t:?} is not a rate")))?;
    match parts.next() {
        Some("Gb/sec") | Some("Gb/s") => Ok(v * 1.25e8),
        Some("Mb/sec") | Some("Mb/s") => Ok(v * 1.25e5),
        _ => Err(ParseError::invalid(
            what,
            format!("{t:?}: the unit is not Gb/sec"),
        )),
    }
}

/// A counter file: a number, or `None` for `N/A (no PMA)` (the hardware keeps no such counter).
pub fn counter(what: &'static str, text: &str) -> Result<Option<u64>, ParseError> {
    let t = text.trim();
    if t.starts_with("N/A") {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| ParseError::invalid(what, format!("{t:?} is not a counter")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_rates_and_counters() {
        assert_eq!(state("s", "4: ACTIVE\n").unwrap(), (4, "ACTIVE".into()));
        assert_eq!(state("s", "5: LinkUp").unwrap().0, 5);
        assert!(state("s", "ACTIVE").is_err());
        assert_eq!(rate("r", "40 Gb/sec (4X QDR)").unwrap(), 5e9);
        assert_eq!(rate("r", "10 Gb/sec (4X)").unwrap(), 1.25e9);
        assert!(rate("r", "fast").is_err());
        assert_eq!(counter("c", "N/A (no PMA)").unwrap(), None);
        assert_eq!(counter("c", "4631917\n").unwrap(), Some(4631917));
        assert!(counter("c", "-1").is_err());
    }
}
