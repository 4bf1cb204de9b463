//! The simulation's shared state, the clients' load and the incident's timeline.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;

use super::scenario::{ALL_NODES, CELL, MODEL, Ports, node_name};

/// Joules per generated token of the simulated Macs, normally and during the efficiency
/// regression of the incident timeline.
pub(super) const JOULES_PER_TOKEN: f64 = 0.5;
pub(super) const JOULES_PER_TOKEN_REGRESSED: f64 = 2.0;

/// How many times slower the slowed node answers.
pub(super) const SLOWDOWN: u32 = 4;
/// Concurrent clients per node.
const CLIENTS: usize = 6;

/// The simulation's shared state.
pub(super) struct Sim {
    /// The slowed node (1..=4), 0 for none.
    pub(super) slow: AtomicUsize,
    /// Joules per generated token, in millijoules.
    pub(super) mj_per_token: AtomicU64,
    /// Generated tokens streamed per node.
    pub(super) tokens: [AtomicU64; ALL_NODES],
    /// Where pages are appended.
    pub(super) pages_log: PathBuf,
    /// Pages received.
    pub(super) pages: AtomicU64,
    /// The GPU node's simulated vLLM.
    pub(super) vllm: Arc<super::vllm::Vllm>,
}

impl Sim {
    /// No incident, the normal energy per token, no tokens or pages yet.
    pub(super) fn new(pages_log: PathBuf) -> Sim {
        Sim {
            slow: AtomicUsize::new(0),
            mj_per_token: AtomicU64::new((JOULES_PER_TOKEN * 1000.0) as u64),
            tokens: Default::default(),
            pages_log,
            pages: AtomicU64::new(0),
            vllm: Arc::new(super::vllm::Vllm::new()),
        }
    }
}

/// `CLIENTS` clients per node, each sending streaming chat completions to the node's proxy (to
/// the GPU node's simulated vLLM directly: its exporter reads vLLM's own metrics).
pub(super) fn load(ports: Ports) -> Vec<tokio::task::JoinHandle<()>> {
    let client = cellwatch_http::tls::http_client()
        .build()
        .unwrap_or_default();
    let mut tasks = Vec::new();
    for i in 1..=ALL_NODES {
        for _ in 0..CLIENTS {
            let client = client.clone();
            let url = ports.chat_url(i);
            tasks.push(tokio::spawn(async move {
                let body = json!({
                    "model": MODEL, "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "Summarise the SLO report (simulated client)."}],
                });
                loop {
                    let r = client.post(&url).json(&body).send().await;
                    let ok = match r {
                        Ok(resp) => resp.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let pause = if ok { fastrand::u64(20..200) } else { 500 };
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }));
        }
    }
    tasks
}

/// The incident, on the demo's clock.
pub(super) fn timeline(
    sim: Arc<Sim>,
    at: Duration,
    lasts: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slow = 3;
        tokio::time::sleep(at).await;
        sim.slow.store(slow, Ordering::Relaxed);
        println!(
            "\n[demo] SIMULATED INCIDENT: {} slows down {SLOWDOWN}× (latency and time to first token burn their budgets)",
            node_name(slow)
        );
        let regress = Duration::from_secs(30).min(lasts);
        tokio::time::sleep(regress).await;
        sim.mj_per_token.store(
            (JOULES_PER_TOKEN_REGRESSED * 1000.0) as u64,
            Ordering::Relaxed,
        );
        println!(
            "[demo] SIMULATED ENERGY REGRESSION: every Mac Studio of {CELL} now needs {JOULES_PER_TOKEN_REGRESSED} J per token instead of {JOULES_PER_TOKEN} (tokens/kWh burns; the GPU pool is the control and never pages)"
        );
        tokio::time::sleep(lasts - regress).await;
        sim.slow.store(0, Ordering::Relaxed);
        sim.mj_per_token
            .store((JOULES_PER_TOKEN * 1000.0) as u64, Ordering::Relaxed);
        println!(
            "[demo] the simulated incident is over; the page resolves once the 5m windows no longer see it (about 5 minutes)"
        );
    })
}

/// At `at`, the cable between the first two Mac Studios is pulled; 40 s later it is plugged
/// back in at half speed (one ticket, the link shown slow on the status page and in the health
/// endpoint), and two minutes after that replaced (the ticket resolves).
pub(super) fn cable_pull(sim: Arc<Sim>, at: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::time::sleep(at).await;
        pull_and_replace(&sim).await;
    })
}

async fn pull_and_replace(sim: &Sim) {
    use super::links::{Cable, Cabling};
    let names = super::scenario::apple_nodes();
    let mut cabling = Cabling::mesh(&names);
    let steer = |c: &Cabling| {
        for (i, name) in names.iter().enumerate() {
            let dir = sim.pages_log.with_file_name(name);
            if let Err(e) = c.write(i, &dir) {
                eprintln!("demo: {}: {e}", dir.display());
            }
        }
    };
    let (a, b) = (&names[0], &names[1]);
    cabling.set(
        0,
        1,
        Cable {
            connected: false,
            ..Cable::GOOD
        },
    );
    steer(&cabling);
    println!(
        "\n[demo] SIMULATED CABLE PULL: the Thunderbolt 5 cable {a} ↔ {b} is out (one ticket; see the status page and /api/v1/cells/{CELL}/health)"
    );
    tokio::time::sleep(Duration::from_secs(40)).await;
    cabling.set(
        0,
        1,
        Cable {
            gbps: 40,
            ..Cable::GOOD
        },
    );
    steer(&cabling);
    println!("[demo] the cable {a} ↔ {b} is back, but at 40 Gb/s instead of 80 (the same ticket)");
    tokio::time::sleep(Duration::from_secs(120)).await;
    steer(&Cabling::mesh(&names));
    println!("[demo] the cable {a} ↔ {b} was replaced: 80 Gb/s again; the ticket resolves");
}
