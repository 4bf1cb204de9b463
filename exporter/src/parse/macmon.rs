//! `macmon pipe` JSON lines (one per interval; power in W, from IOReport and the SMC).

use serde::Deserialize;

use super::ParseError;

const WHAT: &str = "macmon pipe output";

/// The fields of one line the exporter uses; others are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Line {
    /// Whole-system power from the SMC (`PSTR`), W.
    pub sys_power: Option<f64>,
    /// DRAM power, W.
    pub ram_power: Option<f64>,
}

/// Parses one line.
pub fn parse(line: &[u8]) -> Result<Line, ParseError> {
    let text = std::str::from_utf8(line)
        .map_err(|_| ParseError::invalid(WHAT, "not UTF-8"))?
        .trim();
    if text.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ParseError::invalid(WHAT, format!("not a macmon JSON line: {e}")))?;
    if !value.is_object() {
        return Err(ParseError::invalid(WHAT, "a line is not a JSON object"));
    }
    let l: Line = serde_json::from_value(value)
        .map_err(|e| ParseError::invalid(WHAT, format!("unexpected field type: {e}")))?;
    if l.sys_power.is_none() && l.ram_power.is_none() {
        return Err(ParseError::invalid(WHAT, "no sys_power or ram_power field"));
    }
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let l = parse(br#"{"timestamp":"2025-02-24T20:38:15Z","cpu_power":0.2,"sys_power":5.876533,"ram_power":0.11635789}"#).unwrap();
        assert_eq!(l.sys_power, Some(5.876533));
        assert_eq!(l.ram_power, Some(0.11635789));
        assert!(parse(b"{}").is_err());
        assert!(
            parse(b"not json")
                .unwrap_err()
                .to_string()
                .contains("macmon")
        );
        assert!(parse(b"\xff").is_err());
        assert!(parse(br#"{"sys_power":"five"}"#).is_err());
    }
}
