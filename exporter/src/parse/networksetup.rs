//! `networksetup -listallhardwareports`: hardware port names and their BSD devices.

use super::ParseError;

const WHAT: &str = "networksetup -listallhardwareports output";

/// One hardware port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// e.g. `Thunderbolt 3`, `Thunderbolt Bridge`, `Wi-Fi`.
    pub name: String,
    /// e.g. `en2`.
    pub device: String,
}

impl Port {
    /// The receptacle number of a `Thunderbolt N` port; `None` for every other port, the
    /// Thunderbolt Bridge included.
    pub fn thunderbolt_receptacle(&self) -> Option<u32> {
        self.name.strip_prefix("Thunderbolt ")?.trim().parse().ok()
    }
}

/// Parses the `Hardware Port:` / `Device:` pairs.
pub fn parse(text: &str) -> Result<Vec<Port>, ParseError> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("Hardware Port:") {
            if let Some((at, name)) = pending.take() {
                return Err(ParseError::line(
                    WHAT,
                    at,
                    "hardware port without a Device line",
                    &name,
                ));
            }
            pending = Some((i + 1, name.trim().to_string()));
        } else if let Some(device) = line.strip_prefix("Device:") {
            let (_, name) = pending.take().ok_or_else(|| {
                ParseError::line(
                    WHAT,
                    i + 1,
                    "Device line without a Hardware Port line",
                    line,
                )
            })?;
            out.push(Port {
                name,
                device: device.trim().to_string(),
            });
        }
    }
    if let Some((at, name)) = pending {
        return Err(ParseError::line(
            WHAT,
            at,
            "hardware port without a Device line",
            &name,
        ));
    }
    if out.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thunderbolt_ports_and_the_bridge() {
        let ports = parse(
            "Hardware Port: Thunderbolt Bridge\nDevice: bridge0\nEthernet Address: 02:00\n\n\
             Hardware Port: Thunderbolt 3\nDevice: en2\nEthernet Address: 02:03\n\nVLAN Configurations\n===\n",
        )
        .unwrap();
        assert_eq!(ports.len(), 2);
        assert_eq!(ports[0].thunderbolt_receptacle(), None);
        assert_eq!(ports[1].thunderbolt_receptacle(), Some(3));
        assert_eq!(ports[1].device, "en2");
    }

    #[test]
    fn unpaired_lines_are_errors() {
        assert!(matches!(
            parse("Hardware Port: Wi-Fi\n"),
            Err(ParseError::Line { line: 1, .. })
        ));
        assert!(matches!(
            parse("\nDevice: en0\n"),
            Err(ParseError::Line { line: 2, .. })
        ));
        assert!(matches!(
            parse("VLAN Configurations\n"),
            Err(ParseError::Empty { .. })
        ));
    }
}
