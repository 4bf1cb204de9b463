//! `sysctl name…` output (`name: value` lines) and the values the memory collector reads.

use std::collections::BTreeMap;

use super::ParseError;

const WHAT: &str = "sysctl output";

/// The keys the vmstat collector asks for.
pub const KEYS: [&str; 4] = [
    "hw.memsize",
    "vm.swapusage",
    "kern.memorystatus_vm_pressure_level",
    "iogpu.wired_limit_mb",
];

/// Parses `name: value` lines. Lines that are not of that form (sysctl's own complaints about
/// unknown names, blank lines) are skipped; output with no entry at all is an error. A setter's
/// `old -> new` form yields the new value.
pub fn parse(text: &str) -> Result<BTreeMap<String, String>, ParseError> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(": ") else {
            continue;
        };
        let name = name.trim();
        let valid = !name.is_empty()
            && name.contains('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
        if !valid {
            continue;
        }
        let value = value.rsplit_once("->").map_or(value, |(_, new)| new).trim();
        out.insert(name.to_string(), value.to_string());
    }
    if out.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    Ok(out)
}

fn field(name: &'static str, value: &str, message: &str) -> ParseError {
    ParseError::invalid(WHAT, format!("{name} = {value:?}: {message}"))
}

/// `hw.memsize`, bytes.
pub fn memsize(value: &str) -> Result<u64, ParseError> {
    value
        .trim()
        .parse()
        .map_err(|_| field("hw.memsize", value, "not a whole number of bytes"))
}

/// `iogpu.wired_limit_mb` in bytes (0 means the macOS default policy).
pub fn wired_limit_bytes(value: &str) -> Result<u64, ParseError> {
    let mb: u64 = value
        .trim()
        .parse()
        .map_err(|_| field("iogpu.wired_limit_mb", value, "not a whole number of MiB"))?;
    Ok(mb.saturating_mul(1 << 20))
}

/// `kern.memorystatus_vm_pressure_level` (1 normal, 2 warning, 4 critical) as 0, 1, 2.
pub fn pressure_level(value: &str) -> Result<u8, ParseError> {
    match value.trim() {
        "1" => Ok(0),
        "2" => Ok(1),
        "4" => Ok(2),
        _ => Err(field(
            "kern.memorystatus_vm_pressure_level",
            value,
            "expected 1, 2 or 4",
        )),
    }
}

fn size_bytes(token: &str) -> Option<f64> {
    let t = token.trim();
    let (num, mult) = match t.chars().last()? {
        'K' => (&t[..t.len() - 1], 1024.0),
        'M' => (&t[..t.len() - 1], 1048576.0),
        'G' => (&t[..t.len() - 1], 1073741824.0),
        'T' => (&t[..t.len() - 1], 1099511627776.0),
        c if c.is_ascii_digit() => (t, 1.0),
        _ => return None,
    };
    let v: f64 = num.parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * mult)
}

/// `vm.swapusage` (`total = 1024.00M  used = 407.50M  free = 616.50M  (encrypted)`): used bytes.
pub fn swap_used_bytes(value: &str) -> Result<u64, ParseError> {
    let mut tokens = value.split_whitespace();
    while let Some(t) = tokens.next() {
        if t == "used" {
            if tokens.next() != Some("=") {
                break;
            }
            return tokens
                .next()
                .and_then(size_bytes)
                .map(|b| b.round() as u64)
                .ok_or_else(|| field("vm.swapusage", value, "cannot read the used size"));
        }
    }
    Err(field("vm.swapusage", value, "no `used = …` part"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_values_and_setter_form() {
        let m = parse(
            "hw.memsize: 549755813888\nsysctl: unknown oid 'iogpu.wired_limit_mb'\n\
             vm.swapusage: total = 1024.00M  used = 407.50M  free = 616.50M  (encrypted)\n\
             kern.memorystatus_vm_pressure_level: 4\niogpu.wired_limit_mb: 30720 -> 0\n",
        )
        .unwrap();
        assert_eq!(memsize(&m["hw.memsize"]), Ok(549755813888));
        assert_eq!(swap_used_bytes(&m["vm.swapusage"]), Ok(427294720));
        assert_eq!(
            pressure_level(&m["kern.memorystatus_vm_pressure_level"]),
            Ok(2)
        );
        assert_eq!(wired_limit_bytes(&m["iogpu.wired_limit_mb"]), Ok(0));
    }

    #[test]
    fn bad_values_are_named() {
        assert!(parse("nothing here\n").is_err());
        assert!(
            pressure_level("3")
                .unwrap_err()
                .to_string()
                .contains("kern.memorystatus_vm_pressure_level")
        );
        assert!(memsize("lots").is_err());
        assert!(swap_used_bytes("total = 1.00M").is_err());
        assert!(swap_used_bytes("used = xM").is_err());
        assert_eq!(
            swap_used_bytes("total = 0.00M  used = 0.00M  free = 0.00M"),
            Ok(0)
        );
        assert_eq!(swap_used_bytes("used = 1.50G"), Ok(1610612736));
        assert_eq!(wired_limit_bytes("86016"), Ok(86016 << 20));
    }
}
