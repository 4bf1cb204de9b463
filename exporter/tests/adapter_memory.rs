//! Memory of an adapter page near the old 16 MiB cap: a 15 MiB vLLM page (a histogram family
//! with thousands of engines, and as much again of series no adapter maps) is normalized with a
//! bounded peak. Alone in its test binary, so the peak RSS (`VmHWM`) is this test's.

use cellwatch_exporter::adapter::{self, Server};
use cellwatch_exporter::proxy::ModelLabels;

/// Peak resident set of this process, bytes (Linux; `None` elsewhere).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[test]
fn a_15_mib_page_is_normalized_in_bounded_memory() {
    let page = adapter::synthetic_vllm_page(15 << 20);
    let before = peak_rss();
    let started = std::time::Instant::now();
    let r = adapter::normalize(Server::Vllm, &page, "x", &ModelLabels::new(4));
    let elapsed = started.elapsed();
    let after = peak_rss();
    eprintln!(
        "15 MiB page: {:?} in {elapsed:?}; peak RSS {:?} MB before, {:?} MB after",
        r.as_ref().map(|r| r.len()),
        before.map(|b| b >> 20),
        after.map(|a| a >> 20)
    );
    if let (Some(before), Some(after)) = (before, after) {
        // Generous: the page itself is 15 MiB; parsing it whole took over 400 MB.
        assert!(
            after - before < 64 << 20,
            "peak RSS grew by {} MB",
            (after - before) >> 20
        );
    }
    // The family is over the series limit: dropped, not an error.
    assert!(r.unwrap().is_empty());
}
