//! Time: the engine's clock and the two ways it writes a time.

/// The engine's clock: the system's, moved by the seconds in an offset file when one is given
/// (for end-to-end tests that skip hours).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// A file holding an offset in seconds.
    pub offset_file: Option<std::path::PathBuf>,
}

impl Clock {
    /// Now, Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        let offset = self
            .offset_file
            .as_ref()
            .and_then(|f| cellwatch_http::file::read_text(f, 64).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        now_ms().saturating_add(offset.saturating_mul(1000))
    }
}

/// The system's time, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds as the API's decimal seconds.
pub fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Unix seconds as RFC 3339 in UTC, whole seconds (`2026-12-03T14:30:00Z`): the API, the
/// notifications and the reports.
pub fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Unix seconds for people (`2026-12-03 14:30:00 UTC`): the status page.
pub fn utc(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        assert_eq!(rfc3339(1_796_308_200), "2026-12-03T14:30:00Z");
        assert_eq!(utc(1_796_308_200), "2026-12-03 14:30:00 UTC");
        assert_eq!(secs(-1), "-1.999");
        assert_eq!(secs(1_500), "1.500");
    }
}
