//! End to end: a real HAProxy (Debian's) runs `alerts/haproxy.cfg`, the README's configuration,
//! with addresses swapped for loopback ones: requests go to the Apple cell while the engine's
//! health endpoint answers 200, move to the GPU pool within one health-check interval of the
//! drain (the cell's power over its cap, from a real exporter on the macmon stand-in), and come
//! back after recovery.

use std::time::{Duration, Instant};

use cellwatch_e2e::{first_evaluation, free_port, start_engine, workspace};

/// The check interval of `alerts/haproxy.cfg`.
const INTER: Duration = Duration::from_secs(2);

/// A server answering every request with `name`.
async fn backend(name: &'static str) -> String {
    let app = axum::Router::new().fallback(move || async move { name });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

/// HAProxy on a configuration; killed on drop.
struct Haproxy(std::process::Child);

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn haproxy_binary() -> String {
    if std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok()
    {
        "haproxy".into()
    } else {
        "/usr/sbin/haproxy".into()
    }
}

/// Who answers through HAProxy.
async fn via(front: &str) -> String {
    match cellwatch_e2e::http()
        .get(format!("http://{front}/v1/models"))
        .send()
        .await
    {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(e) => format!("error: {e}"),
    }
}

async fn wait_for(front: &str, who: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if via(front).await == who {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{who} never answered through HAProxy"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn haproxy_drains_the_cell_to_the_gpu_pool_and_back() {
    let (apple, gpu) = (backend("apple").await, backend("gpu").await);
    let node = cellwatch_e2e::macmon_exporter("studio-a", "studio-a-1", 200.0);
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cell.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n  - name: studio-a\n    power_cap_watts: 300\n    nodes: [ {{ name: studio-a-1, url: \"{}/metrics\" }} ]\n\
             source:\n  scrape: {{ interval: 1s }}\n\
             slos:\n  - {{ name: power, objective: 0.99, period: 30d, sli: {{ power_cap: {{}} }} }}\n",
            node.base
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let engine = start_engine(&db, &cfg, &[]);
    first_evaluation(&engine).await;
    let engine_port = engine.base.rsplit(':').next().unwrap().to_string();
    let front = format!("127.0.0.1:{}", free_port());
    let shipped = std::fs::read_to_string(workspace().join("alerts/haproxy.cfg")).unwrap();
    let swaps = [
        ("bind :8000", format!("bind {front}")),
        ("studio-a-1.local:52415", apple.clone()),
        (
            "addr cellwatch-slo.local port 9820",
            format!("addr 127.0.0.1 port {engine_port}"),
        ),
        ("gpu-pool.local:8000", gpu.clone()),
    ];
    let mut text = shipped.clone();
    for (from, to) in &swaps {
        assert!(text.contains(from), "alerts/haproxy.cfg lost {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.path().join("haproxy.cfg");
    std::fs::write(&path, text).unwrap();
    let check = std::process::Command::new(haproxy_binary())
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .expect("haproxy -c");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let _lb = Haproxy(
        std::process::Command::new(haproxy_binary())
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start haproxy"),
    );
    // Healthy: the cell takes the traffic (once HAProxy's first checks passed).
    wait_for(&front, "apple", Duration::from_secs(20)).await;
    // A power surge over the cap drains the cell: from the engine's 503 to the GPU pool taking
    // the traffic, at most one check interval (plus this loop's polling).
    std::fs::write(
        node.state.path().join("macmon.live"),
        cellwatch_e2e::macmon_sample(400.0),
    )
    .unwrap();
    let health = format!("{}/api/v1/cells/studio-a/health", engine.base);
    let start = Instant::now();
    loop {
        let r = cellwatch_e2e::http().get(&health).send().await.unwrap();
        if r.status() == 503 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never drained\n{}",
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let moved = wait_for(&front, "gpu", Duration::from_secs(20)).await;
    eprintln!("traffic moved to the GPU pool {moved:?} after the drain");
    assert!(
        moved <= INTER + Duration::from_millis(500),
        "moved after {moved:?}"
    );
    // Recovered: back to the cell after its rise checks.
    std::fs::write(
        node.state.path().join("macmon.live"),
        cellwatch_e2e::macmon_sample(200.0),
    )
    .unwrap();
    let back = wait_for(&front, "apple", Duration::from_secs(20)).await;
    eprintln!("traffic back on the cell {back:?} after recovery");
}

#[test]
fn the_readme_shows_the_shipped_haproxy_configuration() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let shipped = std::fs::read_to_string(workspace().join("alerts/haproxy.cfg")).unwrap();
    assert!(
        readme.contains(&format!("```\n{shipped}```")),
        "README.md must show alerts/haproxy.cfg verbatim in a ``` block"
    );
}
