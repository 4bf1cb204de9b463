//! `powermetrics -f plist` documents (one per sample window, NUL-separated on the stream).
//!
//! Units, as powermetrics prints them: `*_power` and `combined_power` are mW averaged over the
//! window; `*_energy` are mJ used in the window; the window is `elapsed_ns`; cluster `freq_hz`
//! is Hz but `gpu.freq_hz` is MHz. Documents are read into a generic plist dictionary, so
//! duplicate keys (the `gpu` dict repeats `idle_ns`/`idle_ratio` on macOS 13/14) are accepted
//! (the last one wins), and every key is optional.

use plist::{Dictionary, Value};

use super::ParseError;

const WHAT: &str = "powermetrics plist";

/// A SoC component powermetrics reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    /// CPU clusters.
    Cpu,
    /// GPU.
    Gpu,
    /// Apple Neural Engine.
    Ane,
}

impl Component {
    /// All components, in label order.
    pub const ALL: [Component; 3] = [Component::Cpu, Component::Gpu, Component::Ane];

    /// The `component` label value.
    pub fn label(self) -> &'static str {
        match self {
            Component::Cpu => "cpu",
            Component::Gpu => "gpu",
            Component::Ane => "ane",
        }
    }

    fn key(self) -> &'static str {
        self.label()
    }
}

/// The raw readings of one component in one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// `processor.<c>_power`, mW.
    pub power_mw: Option<f64>,
    /// `processor.<c>_energy`, mJ in the window.
    pub energy_mj: Option<f64>,
}

/// One component's resolved values for one window (each `None` when it cannot be known, e.g.
/// a power key without `elapsed_ns` gives no energy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved {
    /// Average power over the window, W.
    pub watts: Option<f64>,
    /// Energy used in the window, J.
    pub joules: Option<f64>,
}

/// One parsed sample window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    /// The real window, seconds (`elapsed_ns`).
    pub elapsed_s: Option<f64>,
    /// `hw_model`, e.g. `Mac15,14`.
    pub hw_model: Option<String>,
    /// `kern_osversion`, the OS build.
    pub os_build: Option<String>,
    /// CPU, GPU and ANE readings, in [`Component::ALL`] order.
    pub readings: [Reading; 3],
    /// `gpu.freq_hz`, MHz.
    pub gpu_freq_mhz: Option<f64>,
    /// `gpu.idle_ratio`.
    pub gpu_idle_ratio: Option<f64>,
    /// `gpu.down_ratio` (newer macOS).
    pub gpu_down_ratio: Option<f64>,
    /// `processor.clusters[]`: name and active frequency in Hz, in document order.
    pub clusters: Vec<(String, f64)>,
    /// `thermal_pressure`, as printed.
    pub thermal_pressure: Option<String>,
}

fn number(d: &Dictionary, key: &str) -> Option<f64> {
    match d.get(key)? {
        Value::Real(r) => Some(*r),
        Value::Integer(i) => i
            .as_signed()
            .map(|v| v as f64)
            .or_else(|| i.as_unsigned().map(|v| v as f64)),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

fn string(d: &Dictionary, key: &str) -> Option<String> {
    d.get(key).and_then(Value::as_string).map(str::to_string)
}

/// Parses one document. Leading NULs and whitespace (the stream separator) are skipped.
pub fn parse(doc: &[u8]) -> Result<Sample, ParseError> {
    let start = doc
        .iter()
        .position(|b| !(b.is_ascii_whitespace() || *b == 0))
        .unwrap_or(doc.len());
    let doc = &doc[start..];
    if doc.is_empty() {
        return Err(ParseError::Empty { what: WHAT });
    }
    let value = Value::from_reader_xml(doc)
        .map_err(|e| ParseError::invalid(WHAT, format!("not a plist document: {e}")))?;
    let root = value
        .as_dictionary()
        .ok_or_else(|| ParseError::invalid(WHAT, "the top level is not a dictionary"))?;
    let mut s = Sample {
        elapsed_s: number(root, "elapsed_ns")
            .filter(|v| *v > 0.0)
            .map(|ns| ns / 1e9),
        hw_model: string(root, "hw_model"),
        os_build: string(root, "kern_osversion"),
        thermal_pressure: string(root, "thermal_pressure"),
        ..Sample::default()
    };
    let processor = root.get("processor").and_then(Value::as_dictionary);
    let gpu = root.get("gpu").and_then(Value::as_dictionary);
    if processor.is_none() && gpu.is_none() && s.thermal_pressure.is_none() {
        return Err(ParseError::invalid(
            WHAT,
            "no processor, gpu or thermal_pressure key (is this powermetrics output?)",
        ));
    }
    if let Some(p) = processor {
        for (i, c) in Component::ALL.iter().enumerate() {
            s.readings[i] = Reading {
                power_mw: number(p, &format!("{}_power", c.key())),
                energy_mj: number(p, &format!("{}_energy", c.key())),
            };
        }
        if let Some(clusters) = p.get("clusters").and_then(Value::as_array) {
            for cluster in clusters.iter().filter_map(Value::as_dictionary) {
                if let (Some(name), Some(hz)) =
                    (string(cluster, "name"), number(cluster, "freq_hz"))
                {
                    s.clusters.push((name, hz));
                }
            }
        }
    }
    if let Some(g) = gpu {
        s.gpu_freq_mhz = number(g, "freq_hz");
        s.gpu_idle_ratio = number(g, "idle_ratio");
        s.gpu_down_ratio = number(g, "down_ratio");
        // The processor dict's gpu_energy is the one that matches gpu_power; use the gpu dict's
        // only when the processor dict has none.
        let r = &mut s.readings[1];
        if r.energy_mj.is_none() {
            r.energy_mj = number(g, "gpu_energy");
        }
    }
    Ok(s)
}

impl Sample {
    /// The reading of one component.
    pub fn reading(&self, c: Component) -> Reading {
        self.readings[Component::ALL.iter().position(|x| *x == c).unwrap_or(0)]
    }

    /// Power and energy of one component in this window, or `None` when unknown.
    ///
    /// A missing or zero power key is derived from the energy key over `elapsed_ns`, and the
    /// other way round. A CPU that reports exactly zero while the GPU or ANE draws power is the
    /// known zero-`cpu_power` quirk of newer macOS, and is unknown rather than zero.
    pub fn resolve(&self, c: Component) -> Option<Resolved> {
        let r = self.reading(c);
        let dt = self.elapsed_s;
        let p = r.power_mw.filter(|v| *v > 0.0);
        let e = r.energy_mj.filter(|v| *v > 0.0);
        let watts = p.map(|mw| mw / 1e3).or_else(|| Some(e? / 1e3 / dt?));
        let joules = e.map(|mj| mj / 1e3).or_else(|| Some(p? / 1e3 * dt?));
        if watts.is_some() || joules.is_some() {
            return Some(Resolved { watts, joules });
        }
        let reported_zero = r.power_mw == Some(0.0) || r.energy_mj == Some(0.0);
        let others_draw = Component::ALL.iter().filter(|o| **o != c).any(|o| {
            let r = self.reading(*o);
            r.power_mw.unwrap_or(0.0) > 0.0 || r.energy_mj.unwrap_or(0.0) > 0.0
        });
        (reported_zero && !(c == Component::Cpu && others_draw)).then_some(Resolved {
            watts: Some(0.0),
            joules: Some(0.0),
        })
    }

    /// Share of the window the GPU was active, 0–1.
    pub fn gpu_active_ratio(&self) -> Option<f64> {
        let idle = self.gpu_idle_ratio?;
        Some((1.0 - idle - self.gpu_down_ratio.unwrap_or(0.0)).clamp(0.0, 1.0))
    }

    /// GPU frequency in Hz (`gpu.freq_hz` is MHz).
    pub fn gpu_frequency_hz(&self) -> Option<f64> {
        self.gpu_freq_mhz.map(|mhz| mhz * 1e6)
    }

    /// Thermal pressure level: 0 nominal, 1 moderate, 2 heavy, 3 critical; `Err` with the text
    /// when the value is not one powermetrics is known to print.
    pub fn thermal_level(&self) -> Option<Result<u8, &str>> {
        let t = self.thermal_pressure.as_deref()?;
        Some(match t.trim().to_ascii_lowercase().as_str() {
            "nominal" => Ok(0),
            "moderate" | "fair" => Ok(1),
            "heavy" | "serious" => Ok(2),
            "critical" | "trapping" | "sleeping" => Ok(3),
            _ => Err(t),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(body: &str) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>{body}</dict></plist>\n"
        )
        .into_bytes()
    }

    #[test]
    fn units_are_converted() {
        let s = parse(&doc(
            "<key>elapsed_ns</key><integer>2000000000</integer>\
             <key>processor</key><dict>\
               <key>clusters</key><array><dict><key>name</key><string>P0-Cluster</string><key>freq_hz</key><real>3.2e9</real></dict></array>\
               <key>cpu_energy</key><integer>4000</integer><key>cpu_power</key><real>2000</real>\
               <key>gpu_energy</key><integer>100000</integer><key>gpu_power</key><real>50000</real>\
               <key>ane_energy</key><integer>0</integer><key>ane_power</key><real>0</real></dict>\
             <key>thermal_pressure</key><string>Heavy</string>\
             <key>gpu</key><dict><key>freq_hz</key><real>1398</real><key>idle_ratio</key><real>0.25</real></dict>",
        ))
        .unwrap();
        assert_eq!(s.elapsed_s, Some(2.0));
        assert_eq!(
            s.resolve(Component::Cpu),
            Some(Resolved {
                watts: Some(2.0),
                joules: Some(4.0)
            })
        );
        assert_eq!(
            s.resolve(Component::Gpu),
            Some(Resolved {
                watts: Some(50.0),
                joules: Some(100.0)
            })
        );
        assert_eq!(
            s.resolve(Component::Ane),
            Some(Resolved {
                watts: Some(0.0),
                joules: Some(0.0)
            })
        );
        assert_eq!(s.gpu_frequency_hz(), Some(1.398e9));
        assert_eq!(s.gpu_active_ratio(), Some(0.75));
        assert_eq!(s.clusters, vec![("P0-Cluster".to_string(), 3.2e9)]);
        assert_eq!(s.thermal_level(), Some(Ok(2)));
    }

    #[test]
    fn zero_cpu_power_beside_a_drawing_gpu_is_unknown() {
        let s = parse(&doc(
            "<key>elapsed_ns</key><integer>1000000000</integer><key>processor</key><dict>\
             <key>cpu_power</key><real>0</real><key>cpu_energy</key><integer>0</integer>\
             <key>gpu_power</key><real>7000</real></dict>",
        ))
        .unwrap();
        assert_eq!(s.resolve(Component::Cpu), None);
        // GPU energy derived from power over the window.
        assert_eq!(
            s.resolve(Component::Gpu),
            Some(Resolved {
                watts: Some(7.0),
                joules: Some(7.0)
            })
        );
        assert_eq!(
            s.resolve(Component::Ane),
            None,
            "ANE keys are missing altogether"
        );
    }

    #[test]
    fn zero_cpu_power_with_energy_uses_the_energy() {
        let s = parse(&doc(
            "<key>elapsed_ns</key><integer>500000000</integer><key>processor</key><dict>\
             <key>cpu_power</key><real>0</real><key>cpu_energy</key><integer>1500</integer></dict>",
        ))
        .unwrap();
        assert_eq!(
            s.resolve(Component::Cpu),
            Some(Resolved {
                watts: Some(3.0),
                joules: Some(1.5)
            })
        );
    }

    #[test]
    fn duplicate_keys_and_macos_27_down_ratio() {
        let s = parse(&doc(
            "<key>gpu</key><dict><key>idle_ratio</key><real>0.9</real><key>idle_ns</key><integer>1</integer>\
             <key>idle_ratio</key><real>0.5</real><key>down_ratio</key><real>0.25</real><key>idle_ns</key><integer>2</integer></dict>",
        ))
        .unwrap();
        assert_eq!(s.gpu_active_ratio(), Some(0.25));
    }

    #[test]
    fn leading_separator_is_skipped_and_bad_input_is_an_error() {
        let mut d = b"\0\n".to_vec();
        d.extend(doc("<key>thermal_pressure</key><string>Nominal</string>"));
        assert_eq!(parse(&d).unwrap().thermal_level(), Some(Ok(0)));
        assert!(matches!(parse(b"\0 \n"), Err(ParseError::Empty { .. })));
        let e = parse(b"hello world").unwrap_err().to_string();
        assert!(
            e.contains("powermetrics plist") && e.contains("not a plist"),
            "{e}"
        );
        assert!(parse(&doc("<key>x</key><integer>1</integer>")).is_err());
        let t = parse(&doc("<key>thermal_pressure</key><string>Warm</string>")).unwrap();
        assert_eq!(t.thermal_level(), Some(Err("Warm")));
    }
}
