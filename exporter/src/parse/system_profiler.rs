//! `system_profiler SPThunderboltDataType -json`: one entry per Thunderbolt bus (one per
//! receptacle on a Mac), with the local receptacle's status and speed and the attached devices.

use serde_json::Value;

use super::ParseError;

const WHAT: &str = "system_profiler SPThunderboltDataType -json output";

/// One local Thunderbolt receptacle.
#[derive(Debug, Clone, PartialEq)]
pub struct Receptacle {
    /// `receptacle_id_key`: the N of the `Thunderbolt N` hardware port.
    pub id: u32,
    /// A device is connected.
    pub connected: bool,
    /// Negotiated speed in bytes per second, when connected (`80 Gb/s` = 1e10).
    pub speed_bytes_per_second: Option<f64>,
    /// Name of the first attached device (`_name`, a Mac's computer name), if any.
    pub peer: Option<String>,
    /// The bus's own `domain_uuid_key`: this node's end of the link.
    pub domain: Option<String>,
    /// The first attached device's `domain_uuid_key` (the peer's end), when connected.
    pub peer_domain: Option<String>,
}

/// Parses a speed such as `80 Gb/s` into bytes per second; `Up to …` (nothing attached) is `None`.
pub fn speed(text: &str) -> Option<f64> {
    let t = text.trim();
    if t.starts_with("Up to") {
        return None;
    }
    let (num, unit) = t.split_once(' ')?;
    let n: f64 = num.parse().ok()?;
    let bits = match unit.trim() {
        "Gb/s" => n * 1e9,
        "Mb/s" => n * 1e6,
        _ => return None,
    };
    (bits.is_finite() && bits > 0.0).then_some(bits / 8.0)
}

/// A non-empty string field, trimmed.
fn text_of(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Parses the JSON document.
pub fn parse(text: &str) -> Result<Vec<Receptacle>, ParseError> {
    if text.trim().is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    let doc: Value = serde_json::from_str(text)
        .map_err(|e| ParseError::invalid(WHAT, format!("not JSON: {e}")))?;
    let buses = doc
        .get("SPThunderboltDataType")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError::invalid(WHAT, "no SPThunderboltDataType array"))?;
    let mut out = Vec::new();
    for (i, bus) in buses.iter().enumerate() {
        let Some(tag) = bus.get("receptacle_1_tag") else {
            continue;
        };
        let field = |k: &str| tag.get(k).and_then(Value::as_str);
        let id = field("receptacle_id_key")
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| {
                ParseError::invalid(
                    WHAT,
                    format!("bus {i}: receptacle_1_tag has no numeric receptacle_id_key"),
                )
            })?;
        let connected = field("receptacle_status_key") == Some("receptacle_connected");
        let first = bus
            .get("_items")
            .and_then(Value::as_array)
            .and_then(|items| items.first());
        let peer = first
            .and_then(|d| d.get("_name").or_else(|| d.get("device_name_key")))
            .and_then(Value::as_str)
            .map(str::to_string);
        let peer_domain = first.and_then(|d| text_of(d, "domain_uuid_key"));
        out.push(Receptacle {
            id,
            connected,
            speed_bytes_per_second: if connected {
                field("current_speed_key").and_then(speed)
            } else {
                None
            },
            peer: if connected { peer } else { None },
            domain: text_of(bus, "domain_uuid_key"),
            peer_domain: if connected { peer_domain } else { None },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds() {
        assert_eq!(speed("80 Gb/s"), Some(1e10));
        assert_eq!(speed("40 Gb/s"), Some(5e9));
        assert_eq!(speed("Up to 120 Gb/s"), None);
        assert_eq!(speed("fast"), None);
    }

    #[test]
    fn receptacles_and_peers() {
        let r = parse(
            r#"{"SPThunderboltDataType":[
              {"_name":"thunderboltusb4_bus_1","domain_uuid_key":"D1","_items":[{"_name":"studio-b","device_name_key":"Mac16,9","domain_uuid_key":"P1"}],
               "receptacle_1_tag":{"current_speed_key":"80 Gb/s","receptacle_id_key":"2","receptacle_status_key":"receptacle_connected"}},
              {"_name":"thunderboltusb4_bus_0",
               "receptacle_1_tag":{"current_speed_key":"Up to 120 Gb/s","receptacle_id_key":"1","receptacle_status_key":"receptacle_no_devices_connected"}}]}"#,
        )
        .unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            Receptacle {
                id: 2,
                connected: true,
                speed_bytes_per_second: Some(1e10),
                peer: Some("studio-b".into()),
                domain: Some("D1".into()),
                peer_domain: Some("P1".into()),
            }
        );
        assert_eq!(
            r[1],
            Receptacle {
                id: 1,
                connected: false,
                speed_bytes_per_second: None,
                peer: None,
                domain: None,
                peer_domain: None,
            }
        );
    }

    #[test]
    fn a_disconnected_bus_keeps_its_domain_and_drops_a_stale_peer() {
        let r = parse(
            r#"{"SPThunderboltDataType":[
              {"_name":"thunderboltusb4_bus_0","domain_uuid_key":" D0 ","_items":[{"_name":"gone","domain_uuid_key":"P0"}],
               "receptacle_1_tag":{"receptacle_id_key":"1","receptacle_status_key":"receptacle_no_devices_connected"}},
              {"_name":"thunderboltusb4_bus_1","domain_uuid_key":"","_items":[{"_name":"dock"}],
               "receptacle_1_tag":{"current_speed_key":"40 Gb/s","receptacle_id_key":"2","receptacle_status_key":"receptacle_connected"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            (
                r[0].domain.as_deref(),
                r[0].peer.as_deref(),
                r[0].peer_domain.as_deref()
            ),
            (Some("D0"), None, None)
        );
        assert_eq!(
            (
                r[1].domain.as_deref(),
                r[1].peer.as_deref(),
                r[1].peer_domain.as_deref()
            ),
            (None, Some("dock"), None),
            "an empty domain is no domain; a device without one has none"
        );
    }

    #[test]
    fn our_fixture_has_domains() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("testdata/macos/system_profiler.json"),
        )
        .unwrap();
        let r = parse(&text).unwrap();
        let by_id = |id: u32| r.iter().find(|r| r.id == id).unwrap();
        assert_eq!(
            (
                by_id(2).domain.as_deref(),
                by_id(2).peer.as_deref(),
                by_id(2).peer_domain.as_deref()
            ),
            (
                Some("00000001-0000-4000-8000-000000000001"),
                Some("studio-c"),
                Some("10000001-0000-4000-8000-000000000001")
            )
        );
        assert_eq!(
            (by_id(3).domain.as_deref(), by_id(3).peer_domain.as_deref()),
            (Some("00000000-0000-4000-8000-000000000000"), None)
        );
    }

    #[test]
    fn bad_documents() {
        assert!(parse("").is_err());
        assert!(parse("{").unwrap_err().to_string().contains("not JSON"));
        assert!(
            parse("{}")
                .unwrap_err()
                .to_string()
                .contains("SPThunderboltDataType")
        );
        let e = parse(r#"{"SPThunderboltDataType":[{"receptacle_1_tag":{}}]}"#).unwrap_err();
        assert!(e.to_string().contains("bus 0"), "{e}");
    }
}
