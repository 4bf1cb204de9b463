//! End to end: cell health on real processes. Four real `cellwatch-exporter`s on the stand-in
//! macOS commands, steered to describe a Thunderbolt 5 mesh (`cellwatch_slo::demo::links`), and
//! a real `cellwatch-slo` scraping them with a webhook receiver. A pulled cable, a link back at
//! half speed, RDMA disabled, a node cut off (mesh split), a power surge over the cap and an
//! inference server in a restart loop each give exactly one notification, of the right
//! severity, naming the nodes; `GET /api/v1/cells/studio-a/health` says why. A healthy cell
//! gives none and answers 200.

use std::time::{Duration, Instant};

use cellwatch_e2e::recorder::Recorder;
use cellwatch_e2e::{Exporter, start_engine_in};
use cellwatch_slo::demo::links::{Cable, Cabling};
use serde_json::Value;

const NODES: [&str; 4] = ["s1", "s2", "s3", "s4"];
const SOON: Duration = Duration::from_secs(40);

struct Cell {
    cabling: Cabling,
    exporters: Vec<Exporter>,
    engine: Exporter,
    hook: Recorder,
    _dir: tempfile::TempDir,
}

impl Cell {
    /// Starts the four exporters (node 0 with `extra` flags) and the engine.
    async fn start(extra: &[&str]) -> Cell {
        let names: Vec<String> = NODES.iter().map(|n| n.to_string()).collect();
        let cabling = Cabling::mesh(&names);
        let mut exporters = Vec::new();
        for (i, n) in NODES.iter().enumerate() {
            let state = tempfile::tempdir().expect("tempdir");
            cabling.write(i, state.path()).expect("steer");
            std::fs::write(
                state.path().join("macmon.live"),
                cellwatch_e2e::macmon_sample(200.0),
            )
            .expect("macmon");
            let mut args = vec![
                "--collector.disable-defaults",
                "--collector.thunderbolt",
                "--collector.macmon",
                "--collector.thunderbolt.slow-interval",
                "1s",
                "--interval",
                "500ms",
                "--web.listen-address",
                "127.0.0.1:0",
                "--cell",
                "studio-a",
                "--node",
                n,
            ];
            if i == 0 {
                args.extend_from_slice(extra);
            }
            exporters.push(Exporter::spawn("cellwatch-exporter", &args, state));
        }
        let (hook, base) = Recorder::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let nodes: String = NODES
            .iter()
            .zip(&exporters)
            .map(|(n, e)| format!("      - {{ name: {n}, url: \"{}/metrics\" }}\n", e.base))
            .collect();
        let cfg = format!(
            "cells:\n  - name: studio-a\n    topology: mesh\n    link_speed: 80Gb/s\n    rdma: true\n    \
             power_cap_watts: 1000\n    nodes:\n{nodes}\
             source:\n  scrape: {{ interval: 1s }}\n\
             health: {{ link_for: 2s, power_warn_for: 2s, restarts: 3, restart_window: 5m }}\n\
             slos:\n  - {{ name: links, objective: 0.99, period: 30d, sli: {{ link_health: {{}} }} }}\n\
             \x20 - {{ name: power, objective: 0.99, period: 30d, sli: {{ power_cap: {{}} }} }}\n\
             alerting:\n  group_wait: 0s\n  group_interval: 2s\n  resolve_wait: 1s\n\
             \x20 receivers:\n    - name: hook\n      webhook: {{ url: \"{base}/hook\" }}\n"
        );
        let engine = start_engine_in(dir.path(), &cfg, &[]).await;
        let cell = Cell {
            cabling,
            exporters,
            engine,
            hook,
            _dir: dir,
        };
        // Every link seen matched and healthy before the trouble.
        cell.wait_health(|h| h["links_healthy"] == true && h["power_watts"] == 800.0)
            .await;
        cell
    }

    /// Rewrites every node's cabling.
    fn recable(&self) {
        for (i, e) in self.exporters.iter().enumerate() {
            self.cabling.write(i, e.state.path()).expect("steer");
        }
    }

    /// The health endpoint: (HTTP status, body).
    async fn health(&self) -> (u16, Value) {
        let r = cellwatch_e2e::http()
            .get(format!("{}/api/v1/cells/studio-a/health", self.engine.base))
            .send()
            .await
            .expect("health");
        let code = r.status().as_u16();
        (code, r.json().await.expect("JSON"))
    }

    async fn wait_health(&self, ok: impl Fn(&Value) -> bool) -> (u16, Value) {
        let start = Instant::now();
        loop {
            let (code, h) = self.health().await;
            if ok(&h) {
                return (code, h);
            }
            assert!(
                start.elapsed() < SOON,
                "health never held: {h}\n{}",
                self.engine.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits for the first notification, then 5 s more, and returns them all.
    async fn notifications(&self) -> Vec<Value> {
        let start = Instant::now();
        while self.hook.at("/hook").is_empty() {
            assert!(
                start.elapsed() < SOON,
                "no notification\n{}",
                self.engine.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        self.hook.at("/hook")
    }
}

/// Exactly one notification, firing, with exactly one alert of `name` and `severity`; the alert.
fn one_alert(notes: &[Value], name: &str, severity: &str) -> Value {
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert_eq!(notes[0]["status"], "firing", "{notes:#?}");
    let alerts = notes[0]["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{notes:#?}");
    let a = &alerts[0];
    assert_eq!(a["labels"]["alertname"], name, "{a:#}");
    assert_eq!(a["labels"]["severity"], severity, "{a:#}");
    assert_eq!(a["labels"]["cell"], "studio-a", "{a:#}");
    a.clone()
}

#[tokio::test]
async fn a_healthy_cell_gives_nothing_and_takes_traffic() {
    let c = Cell::start(&[]).await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(c.hook.at("/hook").is_empty(), "{:#?}", c.hook.at("/hook"));
    let (code, h) = c.health().await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "take_traffic");
    assert_eq!(h["power_headroom_watts"], 200.0);
    let cells: Value = serde_json::from_str(&c.engine.get("/api/v1/cells").await).expect("JSON");
    let links = cells["cells"][0]["health"]["links"]
        .as_array()
        .expect("links")
        .clone();
    assert_eq!(links.len(), 6);
    assert!(links.iter().all(|l| l["state"] == "up"), "{links:#?}");
    let m = c.engine.get("/metrics").await;
    assert!(
        m.contains("cellwatch_cell_take_traffic{cell=\"studio-a\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("cellwatch_cell_power_cap_watts{cell=\"studio-a\"} 1000"),
        "{m}"
    );
}

#[tokio::test]
async fn a_pulled_cable_then_half_speed_is_one_ticket_naming_both_ends() {
    let mut c = Cell::start(&[]).await;
    c.cabling.set(
        0,
        1,
        Cable {
            connected: false,
            ..Cable::GOOD
        },
    );
    c.recable();
    let a = one_alert(&c.notifications().await, "CellwatchLinkUnhealthy", "ticket");
    assert_eq!(
        (a["labels"]["node"].as_str(), a["labels"]["peer"].as_str()),
        (Some("s1"), Some("s2"))
    );
    assert_eq!(a["annotations"]["port"], c.cabling.port(0, 1));
    assert_eq!(a["annotations"]["peer_port"], c.cabling.port(1, 0));
    let (code, h) = c.health().await;
    assert_eq!(code, 200, "one cable of a mesh drains nothing: {h}");
    assert_eq!(h["unhealthy_links"][0]["state"], "down", "{h}");
    // Plugged back in at half speed: still the same ticket, no second notification.
    c.cabling.set(
        0,
        1,
        Cable {
            gbps: 40,
            ..Cable::GOOD
        },
    );
    c.recable();
    c.wait_health(|h| h["unhealthy_links"][0]["state"] == "slow")
        .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(c.hook.at("/hook").len(), 1, "{:#?}", c.hook.at("/hook"));
}

#[tokio::test]
async fn a_link_at_half_speed_is_one_ticket() {
    let mut c = Cell::start(&[]).await;
    c.cabling.set(
        1,
        2,
        Cable {
            gbps: 40,
            ..Cable::GOOD
        },
    );
    c.recable();
    let a = one_alert(&c.notifications().await, "CellwatchLinkUnhealthy", "ticket");
    assert_eq!(
        (a["labels"]["node"].as_str(), a["labels"]["peer"].as_str()),
        (Some("s2"), Some("s3"))
    );
    assert_eq!(a["annotations"]["state"], "slow");
    assert!(
        a["annotations"]["summary"]
            .as_str()
            .unwrap()
            .contains("40 Gb/s of 80 Gb/s"),
        "{a}"
    );
}

#[tokio::test]
async fn rdma_disabled_is_one_ticket() {
    let mut c = Cell::start(&[]).await;
    c.cabling.set(
        2,
        3,
        Cable {
            rdma: false,
            ..Cable::GOOD
        },
    );
    c.recable();
    let a = one_alert(&c.notifications().await, "CellwatchLinkUnhealthy", "ticket");
    assert_eq!(
        (a["labels"]["node"].as_str(), a["labels"]["peer"].as_str()),
        (Some("s3"), Some("s4"))
    );
    assert_eq!(a["annotations"]["state"], "rdma_inactive");
    let (code, h) = c.health().await;
    assert_eq!(
        (code, h["unhealthy_links"][0]["state"].as_str()),
        (200, Some("rdma_inactive"))
    );
}

#[tokio::test]
async fn a_node_cut_off_is_one_page_and_drains_the_cell() {
    let mut c = Cell::start(&[]).await;
    for j in 0..3 {
        c.cabling.set(
            3,
            j,
            Cable {
                connected: false,
                ..Cable::GOOD
            },
        );
    }
    c.recable();
    let a = one_alert(&c.notifications().await, "CellwatchMeshSplit", "page");
    assert_eq!(a["annotations"]["unreachable"], "s4");
    let (code, h) = c.health().await;
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["reasons"][0]["reason"], "mesh_split", "{h}");
    // Cabled again: the cell takes traffic again.
    c.cabling = Cabling::mesh(&NODES.map(String::from));
    c.recable();
    let (code, _) = c.wait_health(|h| h["status"] == "take_traffic").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn a_power_surge_over_the_cap_is_one_page_and_drains_the_cell() {
    let c = Cell::start(&[]).await;
    for e in &c.exporters {
        std::fs::write(
            e.state.path().join("macmon.live"),
            cellwatch_e2e::macmon_sample(300.0),
        )
        .expect("macmon");
    }
    let a = one_alert(&c.notifications().await, "CellwatchPowerNearCap", "page");
    assert_eq!(a["annotations"]["power_cap_watts"], "1000");
    let (code, h) = c.health().await;
    assert_eq!(code, 503, "{h}");
    assert_eq!(h["reasons"][0]["reason"], "over_power_cap", "{h}");
    assert_eq!(h["power_headroom_watts"], -200.0, "{h}");
}

/// An upstream that answers every request with `{}` until aborted.
async fn upstream(addr: std::net::SocketAddr) -> tokio::task::JoinHandle<()> {
    let l = loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => break l,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                    .await;
            });
        }
    })
}

#[tokio::test]
async fn an_inference_server_in_a_restart_loop_is_one_ticket() {
    let port = cellwatch_e2e::free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let upstream_url = format!("http://{addr}");
    let mut server = upstream(addr).await;
    let c = Cell::start(&[
        "--collector.inference",
        "--collector.inference.upstream",
        &upstream_url,
        "--collector.inference.listen-address",
        "127.0.0.1:0",
    ])
    .await;
    let proxy = c.exporters[0].proxy_base().await;
    let client = cellwatch_e2e::http();
    let ask = || client.post(format!("{proxy}/v1/models")).body("{}").send();
    ask().await.expect("served");
    // Three crashes: each time a request finds it gone, then it answers again.
    for _ in 0..3 {
        server.abort();
        let _ = server.await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let r = ask().await.expect("the proxy answers");
        assert_eq!(r.status(), 502, "refused while the server is down");
        server = upstream(addr).await;
        ask().await.expect("served again");
    }
    let a = one_alert(
        &c.notifications().await,
        "CellwatchInferenceRestartLoop",
        "ticket",
    );
    assert_eq!(
        (a["labels"]["node"].as_str(), a["labels"]["server"].as_str()),
        (Some("s1"), Some("proxy"))
    );
    let (code, h) = c.health().await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["restart_loops"][0]["restarts"], 3.0, "{h}");
    server.abort();
}
