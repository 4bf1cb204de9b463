//! `powermetrics` collector: one long-running `powermetrics -f plist` child under the watchdog.

use std::collections::HashSet;
use std::sync::Arc;

use cellwatch_metrics as m;

use super::{Info, Settings};
use crate::counter::Accumulator;
use crate::parse::ParseError;
use crate::parse::powermetrics::{self, Component};
use crate::store::{Sample, Slot};
use crate::supervisor::{ChildSpec, Framing, Handler, supervise};

/// Registration.
pub const INFO: Info = Info {
    name: "powermetrics",
    default_on_macos: true,
    default_on_linux: false,
    help: "CPU/GPU/ANE power and energy, GPU and cluster frequency, thermal pressure (powermetrics, root)",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// Turns powermetrics documents into samples, accumulating energy counters across documents
/// (and across restarts of the child).
#[derive(Debug, Default)]
pub struct PowerHandler {
    energy: [Option<Accumulator>; 3],
    soc_energy: Option<Accumulator>,
    warned: HashSet<String>,
}

impl PowerHandler {
    /// Samples from one parsed window.
    pub fn samples(&mut self, s: &powermetrics::Sample) -> Vec<Sample> {
        let mut out = Vec::new();
        let mut soc_watts: Option<f64> = None;
        let mut soc_joules: Option<f64> = None;
        for (i, c) in Component::ALL.iter().enumerate() {
            let label = [c.label()];
            if let Some(r) = s.resolve(*c) {
                if let Some(w) = r.watts {
                    out.push(Sample::new(&m::POWER_WATTS, &label, w));
                    *soc_watts.get_or_insert(0.0) += w;
                }
                if let Some(j) = r.joules {
                    self.energy[i].get_or_insert_default().add(j);
                    *soc_joules.get_or_insert(0.0) += j;
                }
            }
            if let Some(acc) = &self.energy[i] {
                out.push(Sample::new(&m::ENERGY_JOULES, &label, acc.total()));
            }
        }
        if let Some(w) = soc_watts {
            out.push(Sample::new(&m::NODE_POWER_WATTS, &["soc"], w));
        }
        if let Some(j) = soc_joules {
            self.soc_energy.get_or_insert_default().add(j);
        }
        if let Some(acc) = &self.soc_energy {
            out.push(Sample::new(&m::NODE_ENERGY_JOULES, &["soc"], acc.total()));
        }
        if let Some(hz) = s.gpu_frequency_hz() {
            out.push(Sample::new(&m::GPU_FREQUENCY, &[], hz));
        }
        if let Some(r) = s.gpu_active_ratio() {
            out.push(Sample::new(&m::GPU_ACTIVE, &[], r));
        }
        for (name, hz) in &s.clusters {
            out.push(Sample::new(&m::CPU_CLUSTER_FREQUENCY, &[name], *hz));
        }
        match s.thermal_level() {
            Some(Ok(level)) => out.push(Sample::new(&m::THERMAL_PRESSURE, &[], f64::from(level))),
            Some(Err(text)) if self.warned.insert(text.to_string()) => {
                tracing::warn!(
                    collector = "powermetrics",
                    value = text,
                    "unknown thermal_pressure value; not exported"
                );
            }
            _ => {}
        }
        out
    }
}

impl Handler for PowerHandler {
    fn document(&mut self, doc: &[u8]) -> Result<Vec<Sample>, ParseError> {
        let s = powermetrics::parse(doc)?;
        Ok(self.samples(&s))
    }

    fn permanent_failure(&self, stderr: &str) -> Option<String> {
        stderr.contains("superuser").then(|| {
            "powermetrics must be invoked as the superuser: run cellwatch-exporter as root (the LaunchDaemon in \
             exporter/packaging/) or pass --collector.powermetrics.sudo with the sudoers rule documented there; \
             power series are absent until then"
                .to_string()
        })
    }
}

/// The command line: `powermetrics --samplers … -i <ms> -f plist`, optionally through `sudo -n`.
pub fn child_spec(settings: &Settings) -> ChildSpec {
    let ms = settings.interval.as_millis().max(1).to_string();
    let mut args: Vec<String> = [
        "--samplers",
        settings.powermetrics_samplers.as_str(),
        "-i",
        ms.as_str(),
        "-f",
        "plist",
    ]
    .map(String::from)
    .into();
    let program = if settings.powermetrics_sudo {
        args.insert(0, "powermetrics".to_string());
        args.insert(0, "-n".to_string());
        "sudo"
    } else {
        "powermetrics"
    };
    ChildSpec {
        program: program.to_string(),
        args,
        framing: Framing::Nul,
        interval: settings.interval,
        max_document: 8 << 20,
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    supervise(child_spec(&settings), PowerHandler::default(), slot).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn doc(cpu_mj: u32, gpu_mj: u32) -> Vec<u8> {
        format!(
            "<?xml version=\"1.0\"?><plist version=\"1.0\"><dict><key>elapsed_ns</key><integer>1000000000</integer>\
             <key>processor</key><dict><key>cpu_energy</key><integer>{cpu_mj}</integer><key>gpu_energy</key><integer>{gpu_mj}</integer>\
             <key>ane_energy</key><integer>0</integer></dict><key>thermal_pressure</key><string>Nominal</string></dict></plist>"
        )
        .into_bytes()
    }

    fn value(samples: &[Sample], def: &m::MetricDef, label: &[&str]) -> Option<f64> {
        samples
            .iter()
            .find(|s| s.def.name == def.name && s.labels == label)
            .map(|s| s.value)
    }

    #[test]
    fn energy_accumulates_across_documents() {
        let mut h = PowerHandler::default();
        h.document(&doc(1000, 3000)).unwrap();
        let s = h.document(&doc(2000, 1000)).unwrap();
        assert_eq!(value(&s, &m::ENERGY_JOULES, &["cpu"]), Some(3.0));
        assert_eq!(value(&s, &m::ENERGY_JOULES, &["gpu"]), Some(4.0));
        assert_eq!(value(&s, &m::ENERGY_JOULES, &["ane"]), Some(0.0));
        assert_eq!(value(&s, &m::NODE_ENERGY_JOULES, &["soc"]), Some(7.0));
        assert_eq!(value(&s, &m::POWER_WATTS, &["cpu"]), Some(2.0));
        assert_eq!(value(&s, &m::NODE_POWER_WATTS, &["soc"]), Some(3.0));
        assert_eq!(value(&s, &m::THERMAL_PRESSURE, &[]), Some(0.0));
    }

    #[test]
    fn unknown_cpu_keeps_its_counter_but_drops_its_power() {
        let mut h = PowerHandler::default();
        h.document(&doc(1000, 1000)).unwrap();
        let s = h.document(&doc(0, 1000)).unwrap();
        assert_eq!(value(&s, &m::POWER_WATTS, &["cpu"]), None);
        assert_eq!(value(&s, &m::ENERGY_JOULES, &["cpu"]), Some(1.0));
        assert_eq!(value(&s, &m::NODE_POWER_WATTS, &["soc"]), Some(1.0));
    }

    #[test]
    fn superuser_message_is_permanent() {
        let h = PowerHandler::default();
        assert!(
            h.permanent_failure("powermetrics must be invoked as the superuser\n")
                .is_some()
        );
        assert!(h.permanent_failure("something else").is_none());
    }

    #[test]
    fn command_line() {
        let mut s = Settings {
            interval: Duration::from_millis(250),
            slow_interval: Duration::from_secs(30),
            command_timeout: Duration::from_secs(10),
            powermetrics_samplers: "cpu_power,gpu_power".into(),
            powermetrics_sudo: false,
            sysfs: "/sys".into(),
            procfs: "/proc".into(),
            inference: Default::default(),
        };
        let c = child_spec(&s);
        assert_eq!(
            (c.program.as_str(), c.args.join(" ")),
            (
                "powermetrics",
                "--samplers cpu_power,gpu_power -i 250 -f plist".to_string()
            )
        );
        s.powermetrics_sudo = true;
        let c = child_spec(&s);
        assert_eq!(c.program, "sudo");
        assert_eq!(&c.args[..2], ["-n", "powermetrics"]);
    }
}
