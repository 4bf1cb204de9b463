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
            .and_then(|f| cellwatch_exporter::file::read_text(f, 64).ok())
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or(0);
        now_ms().saturating_add(offset.saturating_mul(1000))
    }
}

/// Milliseconds as the API's decimal seconds.
pub(crate) fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
