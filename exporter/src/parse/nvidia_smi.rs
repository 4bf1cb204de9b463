//! `nvidia-smi --query-gpu=index,uuid,name,power.draw,memory.used,memory.total,utilization.gpu
//! --format=csv,noheader,nounits`: one CSV line per GPU and sample.

use super::ParseError;

const WHAT: &str = "nvidia-smi output";

/// The fields asked for, in order.
pub const QUERY: &str = "index,uuid,name,power.draw,memory.used,memory.total,utilization.gpu";

/// One GPU's reading; a field nvidia-smi reports as `[N/A]` or `[Not Supported]` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gpu {
    /// nvidia-smi's index.
    pub index: u32,
    /// GPU UUID.
    pub uuid: String,
    /// Model name.
    pub name: String,
    /// Board power draw, W.
    pub power_watts: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<f64>,
    /// Memory installed, bytes.
    pub memory_total_bytes: Option<f64>,
    /// Utilisation, 0-1.
    pub utilization: Option<f64>,
}

fn number(field: &str) -> Result<Option<f64>, String> {
    let f = field.trim();
    if f.starts_with('[') || f == "N/A" {
        return Ok(None);
    }
    match f.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
        _ => Err(format!("{f:?} is not a number")),
    }
}

/// Parses one line.
pub fn parse_line(line: &str) -> Result<Gpu, ParseError> {
    let fields: Vec<&str> = line.trim().split(", ").collect();
    if fields.len() != 7 {
        return Err(ParseError::line(
            WHAT,
            1,
            format!("{} fields, expected 7 ({QUERY})", fields.len()),
            line,
        ));
    }
    let bad = |m: String| ParseError::line(WHAT, 1, m, line);
    let index = fields[0]
        .trim()
        .parse()
        .map_err(|_| bad(format!("index {:?} is not a number", fields[0])))?;
    let mib = |v: Option<f64>| v.map(|m| m * 1_048_576.0);
    Ok(Gpu {
        index,
        uuid: fields[1].trim().to_string(),
        name: fields[2].trim().to_string(),
        power_watts: number(fields[3]).map_err(&bad)?,
        memory_used_bytes: mib(number(fields[4]).map_err(&bad)?),
        memory_total_bytes: mib(number(fields[5]).map_err(&bad)?),
        utilization: number(fields[6]).map_err(&bad)?.map(|p| p / 100.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_line_with_units_converted() {
        let g = parse_line("0, GPU-5b4f1c4e-0000-1111-2222-333344445555, NVIDIA H100 80GB HBM3, 312.45, 40960, 81559, 87").unwrap();
        assert_eq!(g.index, 0);
        assert_eq!(g.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(g.power_watts, Some(312.45));
        assert_eq!(g.memory_used_bytes, Some(40960.0 * 1_048_576.0));
        assert_eq!(g.utilization, Some(0.87));
    }

    #[test]
    fn unsupported_fields_are_none_and_garbage_is_an_error() {
        let g = parse_line("1, GPU-x, Tesla K80, [N/A], 0, 11441, [Not Supported]").unwrap();
        assert_eq!(g.power_watts, None);
        assert_eq!(g.utilization, None);
        assert!(parse_line("1, GPU-x, K80").is_err());
        let e = parse_line("x, GPU-x, K80, 1, 2, 3, 4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("index"), "{e}");
        assert!(parse_line("0, GPU-x, K80, -5, 2, 3, 4").is_err());
    }
}
