//! An OTLP/HTTP receiver that accepts and discards what it gets (`POST /v1/traces`,
//! `POST /v1/metrics`), for `scripts/bench-proxy`: the proxy's span export goes to a real
//! receiver. It does not decode the requests (that would take CPU from the benchmark); it logs
//! the requests and bytes received every 10 s when they changed.
//! `cargo run --release -p cellwatch-e2e --example otlp-sink -- 127.0.0.1:18004`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18004".to_string());
    let counts: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let accept = {
        let counts = counts.clone();
        move |body: axum::body::Bytes| {
            let counts = counts.clone();
            async move {
                counts[0].fetch_add(1, Ordering::Relaxed);
                counts[1].fetch_add(body.len() as u64, Ordering::Relaxed);
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }
    };
    let app = axum::Router::new()
        .route("/v1/traces", axum::routing::post(accept.clone()))
        .route("/v1/metrics", axum::routing::post(accept));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("OTLP sink on http://{addr} (discards what it receives)");
    tokio::spawn(async move {
        let mut last = 0;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let n = counts[0].load(Ordering::Relaxed);
            if n != last {
                eprintln!(
                    "received {n} export requests, {} bytes",
                    counts[1].load(Ordering::Relaxed)
                );
                last = n;
            }
        }
    });
    axum::serve(listener, app).await
}
