//! `ibv_devinfo`: RDMA devices and their port states (`hca_id:` blocks, tab-indented).

use super::ParseError;

const WHAT: &str = "ibv_devinfo output";

/// One RDMA device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// e.g. `rdma_en2`.
    pub name: String,
    /// At least one port reports `PORT_ACTIVE`.
    pub active: bool,
}

/// Parses the output. No devices (RDMA disabled: empty output or `No IB devices found`) is an
/// empty list, not an error.
pub fn parse(text: &str) -> Result<Vec<Device>, ParseError> {
    let mut out: Vec<Device> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("hca_id:") {
            let name = name.trim();
            if name.is_empty() {
                return Err(ParseError::line(
                    WHAT,
                    i + 1,
                    "hca_id without a device name",
                    line,
                ));
            }
            out.push(Device {
                name: name.to_string(),
                active: false,
            });
        } else if let Some(state) = t.strip_prefix("state:") {
            let dev = out.last_mut().ok_or_else(|| {
                ParseError::line(WHAT, i + 1, "port state before any hca_id", line)
            })?;
            // `PORT_ACTIVE (4)`: compare the word, without the parenthesised code.
            if state.split_whitespace().next() == Some("PORT_ACTIVE") {
                dev.active = true;
            }
        }
    }
    if out.is_empty() && !text.trim().is_empty() && !text.contains("No IB devices found") {
        return Err(ParseError::invalid(WHAT, "no hca_id block"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states() {
        let d = parse("hca_id:\trdma_en2\n\tphys_port_cnt:\t\t1\n\t\tport:\t1\n\t\t\tstate:\t\t\tPORT_ACTIVE (4)\n\nhca_id:\trdma_en3\n\t\tport:\t1\n\t\t\tstate:\t\t\tPORT_DOWN (1)\n").unwrap();
        assert_eq!(
            d,
            vec![
                Device {
                    name: "rdma_en2".into(),
                    active: true
                },
                Device {
                    name: "rdma_en3".into(),
                    active: false
                }
            ]
        );
        assert_eq!(parse(""), Ok(vec![]));
        assert_eq!(parse("No IB devices found\n"), Ok(vec![]));
        assert!(parse("\t\t\tstate:\tPORT_ACTIVE (4)\n").is_err());
        assert!(parse("garbage\n").is_err());
    }
}
