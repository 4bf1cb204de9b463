//! The adapters on our own full pages of each server (`testdata/inference/`).

use std::path::Path;

use cellwatch_exporter::adapter::{Monotonize, Server, normalize};
use cellwatch_exporter::proxy::ModelLabels;
use cellwatch_exporter::store::encode_families;
use cellwatch_metrics::exposition::value;

fn page(server: Server, file: &str, model: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/inference")
            .join(file),
    )
    .unwrap();
    let readings = normalize(server, &text, model, &ModelLabels::new(8)).unwrap();
    encode_families(Monotonize::default().families(&readings))
}

#[test]
fn sglang() {
    let t = page(Server::Sglang, "sglang.prom", "x");
    let m = "Qwen/Qwen3-8B";
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_tokens_total{{model="{m}",kind="generated"}}"#)
        ),
        Some(16000.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(
                r#"cellwatch_inference_time_to_first_token_seconds_bucket{{model="{m}",le="1"}}"#
            )
        ),
        Some(90.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_request_duration_seconds_sum{{model="{m}"}}"#)
        ),
        Some(250.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_requests_in_flight{{model="{m}"}}"#)
        ),
        Some(2.0)
    );
    assert!(
        !t.contains("cellwatch_inference_requests_total"),
        "SGLang exports no outcomes"
    );
}

#[test]
fn tgi() {
    let t = page(Server::Tgi, "tgi.prom", "mistral-7b");
    let m = "mistral-7b";
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_tokens_total{{model="{m}",kind="prompt"}}"#)
        ),
        Some(7000.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_tokens_total{{model="{m}",kind="generated"}}"#)
        ),
        Some(11000.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_requests_total{{model="{m}",outcome="ok"}}"#)
        ),
        Some(55.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_requests_total{{model="{m}",outcome="client_error"}}"#)
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_requests_total{{model="{m}",outcome="server_error"}}"#)
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_request_duration_seconds_count{{model="{m}"}}"#)
        ),
        Some(55.0)
    );
    assert!(
        !t.contains("time_to_first_token"),
        "TGI exports no time to first token"
    );
}

#[test]
fn vllm_and_llamacpp() {
    let t = page(Server::Vllm, "vllm.prom", "x");
    let m = "meta-llama/Llama-3.1-8B-Instruct";
    assert_eq!(
        value(
            &t,
            &format!(r#"cellwatch_inference_requests_total{{model="{m}",outcome="ok"}}"#)
        ),
        Some(415.0)
    );
    assert_eq!(
        value(
            &t,
            &format!(
                r#"cellwatch_inference_request_duration_seconds_bucket{{model="{m}",le="2.5"}}"#
            )
        ),
        Some(300.0)
    );
    assert!(!t.contains("kv_cache"), "only normalized series");
    let t = page(Server::LlamaCpp, "llamacpp.prom", "llama-70b");
    assert_eq!(
        value(
            &t,
            r#"cellwatch_inference_tokens_total{model="llama-70b",kind="prompt"}"#
        ),
        Some(6886.0)
    );
    assert!(!t.contains("request_duration") && !t.contains("requests_total"));
}

/// The value of `series` (a name and `{labels}` with `model` first) for `model`.
fn at(t: &str, series: &str, model: &str, rest: &str) -> Option<f64> {
    let labels = if rest.is_empty() {
        format!(r#"model="{model}""#)
    } else {
        format!(r#"model="{model}",{rest}"#)
    };
    value(t, &format!("{series}{{{labels}}}"))
}

#[test]
fn time_per_output_token_queue_time_and_waiting_of_each_server() {
    const TPOT: &str = "cellwatch_inference_time_per_output_token_seconds";
    const QUEUE: &str = "cellwatch_inference_queue_time_seconds";
    const WAITING: &str = "cellwatch_inference_requests_waiting";
    // vLLM 0.11: the per-request histogram, not the per-token one it also exports twice.
    let t = page(Server::Vllm, "vllm.prom", "x");
    let m = "meta-llama/Llama-3.1-8B-Instruct";
    assert_eq!(at(&t, &format!("{TPOT}_count"), m, ""), Some(420.0), "{t}");
    assert_eq!(
        at(&t, &format!("{TPOT}_bucket"), m, r#"le="0.025""#),
        Some(260.0)
    );
    assert_eq!(at(&t, &format!("{TPOT}_sum"), m, ""), Some(8.4));
    assert_eq!(
        at(&t, &format!("{QUEUE}_bucket"), m, r#"le="0.3""#),
        Some(380.0)
    );
    assert_eq!(at(&t, &format!("{QUEUE}_count"), m, ""), Some(420.0));
    assert_eq!(at(&t, WAITING, m, ""), Some(1.0));
    // SGLang: its per-token histogram (it has no other), queue time and queue length.
    let t = page(Server::Sglang, "sglang.prom", "x");
    let m = "Qwen/Qwen3-8B";
    assert_eq!(
        at(&t, &format!("{TPOT}_count"), m, ""),
        Some(16000.0),
        "{t}"
    );
    assert_eq!(
        at(&t, &format!("{TPOT}_bucket"), m, r#"le="0.02""#),
        Some(14000.0)
    );
    assert_eq!(
        at(&t, &format!("{QUEUE}_bucket"), m, r#"le="0.1""#),
        Some(80.0)
    );
    assert_eq!(at(&t, WAITING, m, ""), Some(5.0));
    // TGI: per-request mean time per token, queue duration, queue size; under the given model.
    let t = page(Server::Tgi, "tgi.prom", "mistral-7b");
    let m = "mistral-7b";
    assert_eq!(at(&t, &format!("{TPOT}_count"), m, ""), Some(55.0), "{t}");
    assert_eq!(
        at(&t, &format!("{TPOT}_bucket"), m, r#"le="0.025""#),
        Some(45.0)
    );
    assert_eq!(
        at(&t, &format!("{QUEUE}_bucket"), m, r#"le="0.01""#),
        Some(30.0)
    );
    assert_eq!(at(&t, WAITING, m, ""), Some(3.0));
    // llama.cpp: deferred requests wait; it has no TPOT or queue time, and none is invented.
    let t = page(Server::LlamaCpp, "llamacpp.prom", "llama-70b");
    assert_eq!(at(&t, WAITING, "llama-70b", ""), Some(2.0));
    assert!(!t.contains(TPOT) && !t.contains(QUEUE), "{t}");
}
