//! `vm_stat` output: a page-size header, then `Name: count.` lines (one key is quoted).

use std::collections::BTreeMap;

use super::ParseError;

const WHAT: &str = "vm_stat output";

/// Parsed `vm_stat`: page size and page counts by name.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VmStat {
    /// Bytes per page (16384 on Apple Silicon).
    pub page_size: u64,
    /// Counts by their printed name (quotes removed), e.g. `Pages free`.
    pub pages: BTreeMap<String, u64>,
}

/// Memory by Activity Monitor's states, bytes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Memory {
    /// Anonymous − purgeable.
    pub app: Option<u64>,
    /// Wired down.
    pub wired: Option<u64>,
    /// Occupied by the compressor (physical, not the logical "stored" count).
    pub compressed: Option<u64>,
    /// File-backed + purgeable.
    pub cached: Option<u64>,
    /// Free.
    pub free: Option<u64>,
}

impl Memory {
    /// App + wired + compressed, as Activity Monitor's "Memory Used".
    pub fn used(&self) -> Option<u64> {
        Some(
            self.app?
                .saturating_add(self.wired?)
                .saturating_add(self.compressed?),
        )
    }
}

/// Parses `vm_stat` output.
pub fn parse(text: &str) -> Result<VmStat, ParseError> {
    let mut out = VmStat::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("Mach Virtual Memory Statistics:") {
            let size = rest
                .trim()
                .strip_prefix("(page size of ")
                .and_then(|r| r.strip_suffix(" bytes)"))
                .and_then(|n| n.trim().parse::<u64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| ParseError::line(WHAT, i + 1, "cannot read the page size", raw))?;
            out.page_size = size;
            continue;
        }
        let (name, value) = line
            .rsplit_once(':')
            .ok_or_else(|| ParseError::line(WHAT, i + 1, "expected `Name: count.`", raw))?;
        let value = value.trim().trim_end_matches('.');
        let count = value
            .parse::<u64>()
            .map_err(|_| ParseError::line(WHAT, i + 1, "the count is not a whole number", raw))?;
        out.pages
            .insert(name.trim().trim_matches('"').to_string(), count);
    }
    if out.page_size == 0 {
        return Err(ParseError::invalid(
            WHAT,
            "no `Mach Virtual Memory Statistics: (page size of N bytes)` header",
        ));
    }
    if out.pages.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    Ok(out)
}

impl VmStat {
    fn bytes(&self, key: &str) -> Option<u64> {
        self.pages
            .get(key)
            .map(|p| p.saturating_mul(self.page_size))
    }

    /// Activity Monitor's breakdown (each state `None` when a count it needs is missing).
    pub fn memory(&self) -> Memory {
        let purgeable = self.bytes("Pages purgeable");
        Memory {
            app: self
                .bytes("Anonymous pages")
                .zip(purgeable)
                .map(|(a, p)| a.saturating_sub(p)),
            wired: self.bytes("Pages wired down"),
            compressed: self.bytes("Pages occupied by compressor"),
            cached: self
                .bytes("File-backed pages")
                .zip(purgeable)
                .map(|(f, p)| f.saturating_add(p)),
            free: self.bytes("Pages free"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Mach Virtual Memory Statistics: (page size of 16384 bytes)\n\
        Pages free:                              100.\n\
        Pages wired down:                         10.\n\
        Pages purgeable:                           4.\n\
        \"Translation faults\":                5220385534.\n\
        File-backed pages:                        20.\n\
        Anonymous pages:                          50.\n\
        Pages occupied by compressor:              6.\n";

    #[test]
    fn breakdown_follows_activity_monitor() {
        let v = parse(SAMPLE).unwrap();
        assert_eq!(v.page_size, 16384);
        assert_eq!(v.pages["Translation faults"], 5220385534);
        let m = v.memory();
        assert_eq!(m.app, Some(46 * 16384));
        assert_eq!(m.wired, Some(10 * 16384));
        assert_eq!(m.compressed, Some(6 * 16384));
        assert_eq!(m.cached, Some(24 * 16384));
        assert_eq!(m.free, Some(100 * 16384));
        assert_eq!(m.used(), Some(62 * 16384));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse(
            "Mach Virtual Memory Statistics: (page size of 16384 bytes)\nPages free: lots.\n",
        )
        .unwrap_err();
        assert!(matches!(e, ParseError::Line { line: 2, .. }), "{e}");
        assert!(
            parse("Pages free: 1.\n")
                .unwrap_err()
                .to_string()
                .contains("header")
        );
        assert!(matches!(
            parse(""),
            Err(ParseError::Invalid { .. } | ParseError::Empty { .. })
        ));
        assert!(parse("Mach Virtual Memory Statistics: (page size of x bytes)").is_err());
    }

    #[test]
    fn missing_counts_leave_states_unknown() {
        let v =
            parse("Mach Virtual Memory Statistics: (page size of 4096 bytes)\nPages free: 3.\n")
                .unwrap();
        let m = v.memory();
        assert_eq!(m.free, Some(3 * 4096));
        assert_eq!(m.app, None);
        assert_eq!(m.used(), None);
    }
}
