//! The GPU pool's SIMULATED vLLM server: the simulated completions of the GPU node scheduled
//! as vLLM schedules them (at most [`MAX_NUM_SEQS`] running, the rest waiting), and the
//! `/metrics` page vLLM (0.11 and later) serves, with vLLM's family names, `model_name` and
//! `engine` labels and bucket bounds. The node's exporter reads it through its vLLM adapter,
//! as a real GPU pool runs: no metering proxy in front of a server that exports metrics.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::scenario::MODEL;

/// vLLM's `--max-num-seqs` of the simulated server: requests beyond it wait.
pub(super) const MAX_NUM_SEQS: usize = 5;

/// vLLM's bounds for time to first token.
const TTFT_BOUNDS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's bounds for inter-token latency and time per output token.
const TOKEN_BOUNDS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
];
/// vLLM's bounds for request latencies (end to end, queue).
const REQUEST_BOUNDS: &[f64] = &[
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
];

/// A cumulative histogram with fixed bounds.
#[derive(Debug)]
struct Hist {
    bounds: &'static [f64],
    /// Observations per bound (not cumulative), then above the last.
    counts: Vec<u64>,
    sum: f64,
}

impl Hist {
    fn new(bounds: &'static [f64]) -> Hist {
        Hist {
            bounds,
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let l = format!("engine=\"0\",model_name=\"{MODEL}\"");
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in self.bounds.iter().enumerate() {
            cum += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{l},le=\"{b:?}\"}} {cum}");
        }
        cum += self.counts[self.bounds.len()];
        let _ = writeln!(out, "{name}_bucket{{{l},le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            out,
            "{name}_count{{{l}}} {cum}\n{name}_sum{{{l}}} {}",
            self.sum
        );
    }
}

/// What one finished request took.
#[derive(Debug, Clone, Copy)]
pub(super) struct Finished {
    /// Arrival to scheduling.
    pub(super) queued: Duration,
    /// Arrival to the first generated token.
    pub(super) ttft: Duration,
    /// Arrival to the last token.
    pub(super) e2e: Duration,
    /// Prompt and generated tokens.
    pub(super) prompt: u64,
    /// Generated tokens.
    pub(super) generated: u64,
}

#[derive(Debug)]
struct State {
    running: usize,
    waiting: usize,
    prompt: u64,
    generated: u64,
    success: u64,
    e2e: Hist,
    ttft: Hist,
    itl: Hist,
    tpot: Hist,
    queue: Hist,
}

/// The simulated vLLM server's scheduler and counters.
#[derive(Debug)]
pub(super) struct Vllm {
    state: Mutex<State>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// A scheduled request: holds its slot; running until dropped (finished or cancelled).
pub(super) struct Running {
    vllm: Arc<Vllm>,
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// When the request arrived.
    pub(super) arrived: Instant,
    /// When it was scheduled.
    pub(super) scheduled: Instant,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.vllm.lock().running -= 1;
    }
}

/// A request in the queue; leaves it when dropped before being scheduled.
struct Queued<'a>(&'a Vllm);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.lock().waiting -= 1;
    }
}

impl Vllm {
    pub(super) fn new() -> Vllm {
        Vllm {
            state: Mutex::new(State {
                running: 0,
                waiting: 0,
                prompt: 0,
                generated: 0,
                success: 0,
                e2e: Hist::new(REQUEST_BOUNDS),
                ttft: Hist::new(TTFT_BOUNDS),
                itl: Hist::new(TOKEN_BOUNDS),
                tpot: Hist::new(TOKEN_BOUNDS),
                queue: Hist::new(REQUEST_BOUNDS),
            }),
            slots: Arc::new(tokio::sync::Semaphore::new(MAX_NUM_SEQS)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for a slot, as vLLM's scheduler makes a request wait beyond `--max-num-seqs`.
    pub(super) async fn schedule(self: &Arc<Self>) -> Option<Running> {
        let arrived = Instant::now();
        self.lock().waiting += 1;
        // Leaves the queue when scheduled, or when the client goes away while it waits.
        let queued = Queued(self);
        let permit = self.slots.clone().acquire_owned().await;
        drop(queued);
        let permit = permit.ok()?;
        self.lock().running += 1;
        Some(Running {
            vllm: self.clone(),
            _permit: permit,
            arrived,
            scheduled: Instant::now(),
        })
    }

    /// Records a request that ran to its end.
    pub(super) fn finished(&self, f: Finished) {
        let mut s = self.lock();
        s.prompt += f.prompt;
        s.generated += f.generated;
        s.success += 1;
        s.queue.observe(f.queued.as_secs_f64());
        s.ttft.observe(f.ttft.as_secs_f64());
        s.e2e.observe(f.e2e.as_secs_f64());
        if f.generated >= 2 {
            let decode = (f.e2e - f.ttft).as_secs_f64();
            s.tpot.observe(decode / (f.generated - 1) as f64);
            // One inter-token observation per token after the first (the simulated chunks
            // bring their tokens evenly spaced).
            let per = decode / (f.generated - 1) as f64;
            for _ in 0..(f.generated - 1) {
                s.itl.observe(per);
            }
        }
    }

    /// The `/metrics` page.
    pub(super) fn page(&self) -> String {
        let s = self.lock();
        let l = format!("engine=\"0\",model_name=\"{MODEL}\"");
        let mut out = String::new();
        for (name, kind, help, v) in [
            (
                "vllm:num_requests_running",
                "gauge",
                "Number of requests in model execution batches.",
                s.running as u64,
            ),
            (
                "vllm:num_requests_waiting",
                "gauge",
                "Number of requests waiting to be processed.",
                s.waiting as u64,
            ),
            (
                "vllm:prompt_tokens_total",
                "counter",
                "Number of prefill tokens processed.",
                s.prompt,
            ),
            (
                "vllm:generation_tokens_total",
                "counter",
                "Number of generation tokens processed.",
                s.generated,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{{l}}} {v}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter\nvllm:request_success_total{{{l},finished_reason=\"stop\"}} {}",
            s.success
        );
        s.e2e.render(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of e2e request latency in seconds.",
        );
        s.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
        );
        s.itl.render(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
        );
        s.tpot.render(
            &mut out,
            "vllm:request_time_per_output_token_seconds",
            "Histogram of time_per_output_token_seconds per request.",
        );
        s.queue.render(
            &mut out,
            "vllm:request_queue_time_seconds",
            "Histogram of time spent in WAITING phase for request.",
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_beyond_max_num_seqs_wait_and_the_page_counts_them() {
        let v = Arc::new(Vllm::new());
        let mut held = Vec::new();
        for _ in 0..MAX_NUM_SEQS {
            held.push(v.schedule().await.unwrap());
        }
        let waiter = async { v.schedule().await.map(|r| r.scheduled - r.arrived) };
        tokio::pin!(waiter);
        assert!(futures_util::poll!(&mut waiter).is_pending());
        let page = v.page();
        assert!(
            page.contains(&format!(
                "vllm:num_requests_running{{engine=\"0\",model_name=\"{MODEL}\"}} {MAX_NUM_SEQS}\n"
            )),
            "{page}"
        );
        assert!(
            page.contains(&format!(
                "vllm:num_requests_waiting{{engine=\"0\",model_name=\"{MODEL}\"}} 1\n"
            )),
            "{page}"
        );
        held.pop();
        assert!(waiter.await.is_some());
        let page = v.page();
        assert!(
            page.contains("vllm:num_requests_waiting{engine=\"0\",model_name=\"")
                && page.contains("\"} 0\n"),
            "{page}"
        );
        v.finished(Finished {
            queued: Duration::from_millis(100),
            ttft: Duration::from_millis(300),
            e2e: Duration::from_millis(1300),
            prompt: 10,
            generated: 11,
        });
        let page = v.page();
        // (1.3 − 0.3) / 10 = 0.1 s per output token: in le="0.1", not le="0.075".
        let tpot = "vllm:request_time_per_output_token_seconds_bucket{engine=\"0\",model_name=\"";
        let at = |le: &str| {
            page.lines()
                .find(|l| l.starts_with(tpot) && l.contains(&format!("le=\"{le}\"")))
                .and_then(|l| l.rsplit(' ').next())
                .map(str::to_string)
        };
        assert_eq!(at("0.075").as_deref(), Some("0"), "{page}");
        assert_eq!(at("0.1").as_deref(), Some("1"), "{page}");
        assert!(
            page.contains("vllm:generation_tokens_total{engine=\"0\",model_name=\"")
                && page.contains("\"} 11\n")
        );
        assert!(page.contains("vllm:request_queue_time_seconds_count{engine=\"0\",model_name=\""));
        // Ten inter-token observations (tokens after the first).
        assert!(
            page.contains("vllm:inter_token_latency_seconds_count{engine=\"0\",model_name=\"")
                && page.contains("\"} 10\n")
        );
    }
}
