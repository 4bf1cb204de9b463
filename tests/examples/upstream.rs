//! The in-test OpenAI-compatible upstream as a standalone server, for `scripts/bench-proxy`:
//! `cargo run --release -p cellwatch-e2e --example upstream -- 127.0.0.1:18000`.

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18000".to_string());
    eprintln!("SIMULATED OpenAI-compatible upstream on http://{addr}");
    cellwatch_e2e::upstream::serve_forever(&addr).await
}
