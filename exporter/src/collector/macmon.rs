//! `macmon` collector (off by default): `macmon pipe` JSON lines give whole-system power from the
//! SMC and DRAM power, without root.

use std::sync::Arc;
use std::time::Duration;

use cellwatch_metrics as m;

use super::{Info, Settings};
use crate::counter::Accumulator;
use crate::parse::{ParseError, macmon};
use crate::store::{Sample, Slot};
use crate::supervisor::{ChildSpec, Framing, Handler, supervise};

/// Registration.
pub const INFO: Info = Info {
    name: "macmon",
    default_on_macos: false,
    default_on_linux: false,
    help: "whole-system (SMC) and DRAM power from `macmon pipe` (no root needed)",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

/// Turns macmon lines into samples. Each line is the average over one interval, so energy is
/// power × interval.
#[derive(Debug)]
pub struct MacmonHandler {
    window: Duration,
    sys: Accumulator,
    dram: Accumulator,
    seen_dram: bool,
}

impl MacmonHandler {
    /// A handler for lines `window` apart.
    pub fn new(window: Duration) -> Self {
        MacmonHandler {
            window,
            sys: Accumulator::default(),
            dram: Accumulator::default(),
            seen_dram: false,
        }
    }

    /// Samples from one parsed line.
    pub fn samples(&mut self, l: &macmon::Line) -> Vec<Sample> {
        let dt = self.window.as_secs_f64();
        let mut out = Vec::new();
        if let Some(w) = l.sys_power.filter(|w| w.is_finite() && *w >= 0.0) {
            out.push(Sample::new(&m::NODE_POWER_WATTS, &["smc"], w));
            self.sys.add(w * dt);
            out.push(Sample::new(
                &m::NODE_ENERGY_JOULES,
                &["smc"],
                self.sys.total(),
            ));
        }
        if let Some(w) = l.ram_power.filter(|w| w.is_finite() && *w >= 0.0) {
            out.push(Sample::new(&m::POWER_WATTS, &["dram"], w));
            self.dram.add(w * dt);
            self.seen_dram = true;
        }
        if self.seen_dram {
            out.push(Sample::new(&m::ENERGY_JOULES, &["dram"], self.dram.total()));
        }
        out
    }
}

impl Handler for MacmonHandler {
    fn document(&mut self, doc: &[u8]) -> Result<Vec<Sample>, ParseError> {
        let l = macmon::parse(doc)?;
        Ok(self.samples(&l))
    }
}

/// `macmon pipe -i <ms>`.
pub fn child_spec(settings: &Settings) -> ChildSpec {
    ChildSpec {
        program: "macmon".into(),
        args: vec![
            "pipe".into(),
            "-i".into(),
            settings.interval.as_millis().max(1).to_string(),
        ],
        framing: Framing::Line,
        interval: settings.interval,
        max_document: 1 << 20,
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    supervise(
        child_spec(&settings),
        MacmonHandler::new(settings.interval),
        slot,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrates_power_over_the_window() {
        let mut h = MacmonHandler::new(Duration::from_millis(500));
        h.document(br#"{"sys_power": 100.0, "ram_power": 2.0}"#)
            .unwrap();
        let s = h.document(br#"{"sys_power": 200.0}"#).unwrap();
        let get = |d: &m::MetricDef, l: &str| {
            s.iter()
                .find(|x| x.def.name == d.name && x.labels[0] == l)
                .map(|x| x.value)
        };
        assert_eq!(get(&m::NODE_ENERGY_JOULES, "smc"), Some(150.0));
        assert_eq!(get(&m::NODE_POWER_WATTS, "smc"), Some(200.0));
        assert_eq!(get(&m::ENERGY_JOULES, "dram"), Some(1.0));
        assert_eq!(
            get(&m::POWER_WATTS, "dram"),
            None,
            "no ram_power in this line"
        );
        assert!(h.document(b"[1,2]").is_err());
    }
}
