//! `/proc/meminfo` (Linux): `Key:   value kB` lines, into the memory families the Apple nodes
//! report.

use std::collections::BTreeMap;

use super::ParseError;

const WHAT: &str = "/proc/meminfo";

/// Every field, in bytes (`kB` values × 1024; unit-less values as they are).
pub fn parse(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (key, rest) = line
            .split_once(':')
            .ok_or_else(|| ParseError::line(WHAT, i + 1, "no `key:`", line))?;
        let mut parts = rest.split_whitespace();
        let n: u64 = parts
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ParseError::line(WHAT, i + 1, "no number after the key", line))?;
        let bytes = match parts.next() {
            None => n,
            Some("kB") => n
                .checked_mul(1024)
                .ok_or_else(|| ParseError::line(WHAT, i + 1, "value too large", line))?,
            Some(u) => {
                return Err(ParseError::line(
                    WHAT,
                    i + 1,
                    format!("unknown unit {u:?}"),
                    line,
                ));
            }
        };
        out.insert(key.trim().to_string(), bytes);
    }
    if out.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    Ok(out)
}

/// The memory families, from the fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// MemTotal.
    pub total: u64,
    /// MemTotal - MemAvailable (as `free` shows "used").
    pub used: Option<u64>,
    /// By state: app, wired, compressed, cached, free.
    pub states: Vec<(&'static str, u64)>,
    /// SwapTotal - SwapFree.
    pub swap_used: Option<u64>,
}

/// Maps the fields; MemTotal is required.
pub fn memory(f: &BTreeMap<String, u64>) -> Result<Memory, ParseError> {
    let get = |k: &str| f.get(k).copied();
    let total = get("MemTotal").ok_or_else(|| ParseError::invalid(WHAT, "no MemTotal"))?;
    let sum = |keys: &[&str]| -> Option<u64> {
        let v: Vec<u64> = keys.iter().filter_map(|k| get(k)).collect();
        (!v.is_empty()).then(|| v.iter().sum())
    };
    let mut states = Vec::new();
    for (state, keys) in [
        ("app", &["AnonPages"][..]),
        ("wired", &["SUnreclaim", "KernelStack", "PageTables"][..]),
        ("compressed", &["Zswap"][..]),
        ("cached", &["Buffers", "Cached", "SReclaimable"][..]),
        ("free", &["MemFree"][..]),
    ] {
        if let Some(v) = sum(keys) {
            states.push((state, v));
        }
    }
    Ok(Memory {
        total,
        used: get("MemAvailable").map(|a| total.saturating_sub(a)),
        states,
        swap_used: match (get("SwapTotal"), get("SwapFree")) {
            (Some(t), Some(f)) => Some(t.saturating_sub(f)),
            _ => None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "MemTotal:       16384000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\nBuffers:          100000 kB\nCached:          6000000 kB\nSwapTotal:       2000000 kB\nSwapFree:        1500000 kB\nAnonPages:       5000000 kB\nHugePages_Total:       0\n";

    #[test]
    fn fields_in_bytes_and_states() {
        let f = parse(SAMPLE).unwrap();
        assert_eq!(f["MemTotal"], 16_384_000 * 1024);
        assert_eq!(f["HugePages_Total"], 0);
        let m = memory(&f).unwrap();
        assert_eq!(m.used, Some((16_384_000 - 8_000_000) * 1024));
        assert_eq!(m.swap_used, Some(500_000 * 1024));
        assert!(m.states.contains(&("cached", 6_100_000 * 1024)));
        assert!(!m.states.iter().any(|(s, _)| *s == "compressed"));
    }

    #[test]
    fn bad_input_names_the_line() {
        let e = parse("MemTotal: 1 kB\nbogus line\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("MemTotal: x kB\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        assert!(parse("").is_err());
        assert!(memory(&parse("MemFree: 1 kB\n").unwrap()).is_err());
    }
}
