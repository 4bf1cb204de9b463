//! `nvidia` collector (Linux GPU nodes): a long-running `nvidia-smi --query-gpu=… -lms MS`
//! child under the watchdog, as for powermetrics. Per GPU: power, energy, memory, utilisation,
//! identity; for the node, `source="nvidia"`: the sum over GPUs.
//!
//! nvidia-smi's query has no energy field, so energy is integrated: each line's `power.draw`
//! (on Ampere and newer, the average over the last second) × the time since that GPU's previous
//! line, at most two intervals (a gap while nvidia-smi restarts is not filled in); a GPU's first
//! line counts one interval.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cellwatch_metrics as m;

use super::{Info, Settings};
use crate::counter::Accumulator;
use crate::parse::{ParseError, nvidia_smi};
use crate::store::{Sample, Slot};
use crate::supervisor::{ChildSpec, Framing, Handler, supervise};

/// Registration.
pub const INFO: Info = Info {
    name: "nvidia",
    default_on_macos: false,
    default_on_linux: true,
    help: "NVIDIA GPU power, energy (integrated), memory and utilisation from a long-running `nvidia-smi --query-gpu … -lms`",
    start: |settings, slot| Box::pin(run(settings.clone(), slot)),
};

#[derive(Debug, Default)]
struct GpuState {
    last: Option<nvidia_smi::Gpu>,
    seen_at: Option<Instant>,
    energy: Accumulator,
}

/// The most GPUs one node's handler tracks (the largest NVIDIA systems have 16): a line for one
/// more is refused, so a misbehaving nvidia-smi cannot grow the series without bound.
pub const MAX_GPUS: usize = 64;

/// Turns nvidia-smi lines into samples for every GPU seen so far.
#[derive(Debug)]
pub struct NvidiaHandler {
    window: Duration,
    /// Integrate over the nominal window instead of the time between lines (replays).
    nominal: bool,
    gpus: BTreeMap<u32, GpuState>,
}

impl NvidiaHandler {
    /// A handler for lines of GPUs sampled `window` apart.
    pub fn new(window: Duration) -> Self {
        NvidiaHandler {
            window,
            nominal: false,
            gpus: BTreeMap::new(),
        }
    }

    /// A handler that counts every line as exactly one window (deterministic replays).
    pub fn nominal(window: Duration) -> Self {
        NvidiaHandler {
            nominal: true,
            ..NvidiaHandler::new(window)
        }
    }

    /// Takes one GPU's reading, received at `at`; returns the samples of every GPU.
    pub fn observe_at(&mut self, g: nvidia_smi::Gpu, at: Instant) -> Vec<Sample> {
        let st = self.gpus.entry(g.index).or_default();
        let dt = match st.seen_at {
            Some(prev) if !self.nominal => at.saturating_duration_since(prev).min(2 * self.window),
            _ => self.window,
        };
        st.seen_at = Some(at);
        if let Some(w) = g.power_watts {
            st.energy.add(w * dt.as_secs_f64());
        }
        st.last = Some(g);
        let mut out = Vec::new();
        let (mut node_w, mut node_j, mut node_known) = (0.0, 0.0, false);
        for (i, st) in &self.gpus {
            let Some(g) = &st.last else { continue };
            let idx = i.to_string();
            let component = format!("gpu{i}");
            out.push(Sample::new(&m::GPU_INFO, &[&idx, &g.uuid, &g.name], 1.0));
            if let Some(w) = g.power_watts {
                out.push(Sample::new(&m::POWER_WATTS, &[&component], w));
                node_w += w;
                node_known = true;
            }
            out.push(Sample::new(
                &m::ENERGY_JOULES,
                &[&component],
                st.energy.total(),
            ));
            node_j += st.energy.total();
            for (def, v) in [
                (&m::GPU_MEMORY_USED, g.memory_used_bytes),
                (&m::GPU_MEMORY_TOTAL, g.memory_total_bytes),
                (&m::GPU_UTILIZATION, g.utilization),
            ] {
                if let Some(v) = v {
                    out.push(Sample::new(def, &[&idx], v));
                }
            }
        }
        if node_known {
            out.push(Sample::new(&m::NODE_POWER_WATTS, &["nvidia"], node_w));
        }
        out.push(Sample::new(&m::NODE_ENERGY_JOULES, &["nvidia"], node_j));
        out
    }
}

impl Handler for NvidiaHandler {
    fn document(&mut self, doc: &[u8]) -> Result<Vec<Sample>, ParseError> {
        let line = std::str::from_utf8(doc)
            .map_err(|_| ParseError::invalid("nvidia-smi output", "not UTF-8"))?;
        let gpu = nvidia_smi::parse_line(line)?;
        if self.gpus.len() >= MAX_GPUS && !self.gpus.contains_key(&gpu.index) {
            return Err(ParseError::invalid(
                "nvidia-smi output",
                format!(
                    "GPU index {} would be GPU number {}; at most {MAX_GPUS} are tracked",
                    gpu.index,
                    MAX_GPUS + 1
                ),
            ));
        }
        Ok(self.observe_at(gpu, Instant::now()))
    }
}

/// `nvidia-smi --query-gpu=… --format=csv,noheader,nounits -lms <ms>`.
pub fn child_spec(settings: &Settings) -> ChildSpec {
    ChildSpec {
        program: "nvidia-smi".into(),
        args: vec![
            format!("--query-gpu={}", nvidia_smi::QUERY),
            "--format=csv,noheader,nounits".into(),
            "-lms".into(),
            settings.interval.as_millis().max(1).to_string(),
        ],
        framing: Framing::Line,
        interval: settings.interval,
        max_document: 1 << 16,
    }
}

async fn run(settings: Settings, slot: Arc<Slot>) {
    supervise(
        child_spec(&settings),
        NvidiaHandler::new(settings.interval),
        slot,
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_gpus_are_tracked() {
        let mut h = NvidiaHandler::nominal(Duration::from_secs(1));
        let line = |i: usize| format!("{i}, GPU-{i}, H100, 100, 1, 2, 3");
        for i in 0..MAX_GPUS {
            h.document(line(i).as_bytes()).unwrap();
        }
        let e = h.document(line(1000).as_bytes()).unwrap_err().to_string();
        assert!(
            e.contains("GPU index 1000") && e.contains("at most 64"),
            "{e}"
        );
        // A GPU already tracked still reads.
        let s = h.document(line(3).as_bytes()).unwrap();
        assert_eq!(
            s.iter().filter(|x| x.def.name == m::GPU_INFO.name).count(),
            MAX_GPUS
        );
    }

    fn get(s: &[Sample], d: &m::MetricDef, l: &str) -> Option<f64> {
        s.iter()
            .find(|x| x.def.name == d.name && x.labels[0] == l)
            .map(|x| x.value)
    }

    #[test]
    fn energy_follows_the_time_between_lines_capped_at_two_intervals() {
        let mut h = NvidiaHandler::new(Duration::from_secs(1));
        let t0 = Instant::now();
        let line =
            |w: f64| nvidia_smi::parse_line(&format!("0, GPU-a, H100, {w}, 1, 2, 3")).unwrap();
        h.observe_at(line(100.0), t0);
        let s = h.observe_at(line(100.0), t0 + Duration::from_millis(1500));
        assert_eq!(get(&s, &m::ENERGY_JOULES, "gpu0"), Some(250.0));
        // Ten seconds without a line (a restart): two intervals at most.
        let s = h.observe_at(line(100.0), t0 + Duration::from_millis(11_500));
        assert_eq!(get(&s, &m::ENERGY_JOULES, "gpu0"), Some(450.0));
    }

    #[test]
    fn every_gpu_is_reported_and_energy_integrates_power() {
        let mut h = NvidiaHandler::nominal(Duration::from_millis(500));
        h.document(b"0, GPU-a, NVIDIA H100, 300.0, 1024, 81559, 90")
            .unwrap();
        let s = h
            .document(b"1, GPU-b, NVIDIA H100, 100.0, 0, 81559, [N/A]")
            .unwrap();
        assert_eq!(get(&s, &m::ENERGY_JOULES, "gpu0"), Some(150.0));
        assert_eq!(get(&s, &m::ENERGY_JOULES, "gpu1"), Some(50.0));
        assert_eq!(get(&s, &m::NODE_POWER_WATTS, "nvidia"), Some(400.0));
        assert_eq!(get(&s, &m::NODE_ENERGY_JOULES, "nvidia"), Some(200.0));
        assert_eq!(get(&s, &m::GPU_UTILIZATION, "0"), Some(0.9));
        assert_eq!(get(&s, &m::GPU_UTILIZATION, "1"), None);
        assert_eq!(
            get(&s, &m::GPU_MEMORY_USED, "0"),
            Some(1024.0 * 1_048_576.0)
        );
        let s = h
            .document(b"0, GPU-a, NVIDIA H100, 200.0, 1024, 81559, 90")
            .unwrap();
        assert_eq!(get(&s, &m::ENERGY_JOULES, "gpu0"), Some(250.0));
        assert!(h.document(b"garbage").is_err());
    }
}
