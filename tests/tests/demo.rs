//! End to end: `cellwatch-slo demo` (the README's first command) with a real SMTP server, a
//! real Prometheus scraping it through the scrape configuration it writes, and headless
//! Chromium on its status page.
//!
//! - The incident pages: the demo's console receiver prints the page and appends it to
//!   pages.log, and the SMTP server receives it.
//! - Every query of every panel of every dashboard in `dashboards/` returns data from
//!   Prometheus.
//! - Chromium renders the status page with the cell's card and the firing alert; the screenshot
//!   is kept in `target/test-artifacts/status-page.png`.
//! - SIGTERM ends the demo cleanly, with its exporters (`--duration` is a ceiling).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cellwatch_e2e::browser::{Demo, chromium};
use cellwatch_e2e::prometheus::Prometheus;
use cellwatch_e2e::smtp::{Smtp, header};
use cellwatch_e2e::{binary, free_port_range, workspace};
use serde_json::Value;

const CELL: &str = cellwatch_slo::demo::CELL;
const GPU_CELL: &str = cellwatch_slo::demo::GPU_CELL;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_pages_fills_every_panel_and_renders_its_status_page() {
    let smtp = Smtp::start();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("demo");
    let port = free_port_range(21);
    let out = std::fs::File::create(tmp.path().join("demo.out")).unwrap();
    let err = std::fs::File::create(tmp.path().join("demo.err")).unwrap();
    let demo = Command::new(binary("cellwatch-slo"))
        .args(["demo", "--port", &port.to_string()])
        .args([
            "--incident-at",
            "10s",
            "--incident-for",
            "60s",
            "--duration",
            "600s",
            "--cable-pull-at",
            "20s",
        ])
        .arg(format!("--dir={}", work.display()))
        .arg(format!("--smtp=127.0.0.1:{}", smtp.port))
        .arg(format!(
            "--standins={}",
            workspace().join("exporter/testdata/standins").display()
        ))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start the demo");
    let mut demo = Demo(demo);
    let started = Instant::now();
    let logs = || {
        format!(
            "stdout:\n{}\nstderr:\n{}",
            read(&tmp.path().join("demo.out")),
            read(&tmp.path().join("demo.err"))
        )
    };

    // The page: printed, in pages.log, and mailed.
    let page = loop {
        let firing = read(&work.join("pages.log"))
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| {
                v["status"] == "firing"
                    && v["groupLabels"]["cell"] == CELL
                    && v["alerts"].as_array().is_some_and(|a| {
                        a.iter().any(|x| {
                            matches!(
                                x["labels"]["slo"].as_str(),
                                Some("latency-2500ms" | "ttft-500ms")
                            )
                        })
                    })
            });
        if let Some(p) = firing {
            break p;
        }
        assert!(
            started.elapsed() < Duration::from_secs(70),
            "no page within 70 s\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(page["groupLabels"]["cell"], CELL, "{page}");
    let alerts = page["alerts"].as_array().unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a["labels"]["alertname"] == "CellwatchErrorBudgetBurn"
                && a["labels"]["severity"] == "page"),
        "{page}"
    );
    let printed = read(&tmp.path().join("demo.out"));
    let incident = printed
        .find("SIMULATED INCIDENT")
        .expect("the incident is announced");
    let paged = printed
        .find(&format!("PAGE (FIRING) for cell {CELL}"))
        .unwrap_or_else(|| panic!("{printed}"));
    assert!(paged > incident, "paged before the incident:\n{printed}");
    assert!(printed.contains("SIMULATED"), "{printed}");
    let mails = loop {
        let m = smtp.mails();
        if !m.is_empty() {
            break m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(80),
            "no mail\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let subject = header(&mails[0], "Subject").unwrap_or_default();
    assert!(subject.contains(CELL), "{subject}");

    // A real Prometheus, configured by the files the demo wrote (at a 1 s scrape interval).
    let cfg = read(&work.join("prometheus.yml"))
        .replace("scrape_interval: 5s", "scrape_interval: 1s")
        .replace("[targets.json]", "[DIR/targets.json]");
    assert!(cfg.contains("DIR/targets.json"), "{cfg}");
    let targets = read(&work.join("targets.json"));
    let prom = Prometheus::start(&cfg, &[("targets.json", &targets)]).await;

    // Every panel's query returns data.
    let mut missing = Vec::new();
    let mut checked = 0;
    let deadline = Instant::now() + Duration::from_secs(40);
    for (file, d) in cellwatch_slo::generate::dashboards::all() {
        let committed: Value =
            serde_json::from_str(&read(&workspace().join("dashboards").join(file))).unwrap();
        assert_eq!(committed, d, "dashboards/{file} is stale");
        for (title, expr) in cellwatch_slo::generate::dashboards::queries(&d) {
            // With $cell the Apple cell or the GPU pool (the discrete-GPU panels have data
            // for the GPU pool only).
            let qs: Vec<String> = [CELL, GPU_CELL]
                .iter()
                .map(|c| {
                    cellwatch_slo::generate::dashboards::substitute(&expr, c, ".*", ".*", "30s")
                })
                .collect();
            checked += 1;
            'wait: loop {
                for q in &qs {
                    let r = prom.query(q).await;
                    // Data, and every value a number (no Inf or NaN from a division by zero).
                    let finite = r.iter().all(|s| {
                        s["value"][1]
                            .as_str()
                            .and_then(|v| v.parse::<f64>().ok())
                            .is_some_and(f64::is_finite)
                    });
                    if !r.is_empty() && finite {
                        break 'wait;
                    }
                }
                if Instant::now() > deadline {
                    missing.push(format!("{file}: {title}: {}", qs[0]));
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    assert!(checked > 50, "{checked} queries");
    assert!(
        missing.is_empty(),
        "panels without data from Prometheus:\n{}\n{}",
        missing.join("\n"),
        prom.log()
    );
    // The firing alert reached Prometheus with its labels.
    let firing = prom
        .query(&format!(
            "cellwatch_slo_alerts{{cell=\"{CELL}\",state=\"firing\",severity=\"page\"}}"
        ))
        .await;
    assert!(!firing.is_empty());
    // The GPU pool's Linux node reports the Apple families, its energy as RAPL plus NVIDIA.
    for q in [
        format!("cellwatch_node_energy_joules_total{{cell=\"{GPU_CELL}\",source=\"rapl\"}}"),
        format!("cellwatch_node_energy_joules_total{{cell=\"{GPU_CELL}\",source=\"nvidia\"}}"),
        format!("cellwatch_cell_tokens_per_kwh{{cell=\"{GPU_CELL}\",window=\"5m\"}}"),
        format!("cellwatch_link_received_bytes_total{{cell=\"{GPU_CELL}\"}}"),
    ] {
        assert!(!prom.query(&q).await.is_empty(), "{q}");
    }

    // The cable pull: the link's ticket fires, and the health endpoint names the link.
    let status = format!("http://127.0.0.1:{port}/");
    let link_alert = loop {
        let api: Value = serde_json::from_str(
            &cellwatch_e2e::http()
                .get(format!("{status}api/v1/alerts"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let found = api["alerts"].as_array().unwrap().iter().find(|a| {
            a["state"] == "firing" && a["labels"]["alertname"] == "CellwatchLinkUnhealthy"
        });
        if let Some(a) = found {
            break a.clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no link ticket\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(link_alert["labels"]["severity"], "ticket", "{link_alert}");
    assert_eq!(
        link_alert["labels"]["node"], "simulated-studio-1",
        "{link_alert}"
    );
    assert_eq!(
        link_alert["labels"]["peer"], "simulated-studio-2",
        "{link_alert}"
    );
    let health: Value = cellwatch_e2e::http()
        .get(format!("{status}api/v1/cells/{CELL}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let link = &health["unhealthy_links"][0];
    assert_eq!(link["node"], "simulated-studio-1", "{health}");
    assert!(
        matches!(link["state"].as_str(), Some("down" | "slow")),
        "{health}"
    );
    assert_eq!(health["power_cap_watts"], 2944.0, "{health}");

    // The status page in a real browser: the cell's card and the firing alert.
    let api: Value = serde_json::from_str(
        &cellwatch_e2e::http()
            .get(format!("{status}api/v1/alerts"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    let firing: Vec<&Value> = api["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["state"] == "firing")
        .collect();
    assert!(!firing.is_empty(), "{api}");
    let profile = tmp.path().join("chromium");
    let dom = chromium(&["--dump-dom"], &status, &profile);
    assert!(dom.contains("Firing alerts ("), "{dom}");
    for c in [CELL, GPU_CELL] {
        assert!(
            dom.contains(&format!("<section class=\"cell\" id=\"cell-{c}\">")),
            "{c}: {dom}"
        );
    }
    assert!(
        dom.contains("simulated-studio-1 en2 ↔ simulated-studio-2 en2: "),
        "the pulled link on the card: {dom}"
    );
    for a in &firing {
        let name = a["labels"]["alertname"].as_str().unwrap();
        let slo = a["labels"]["slo"].as_str().unwrap_or("");
        let row = format!(
            "<tr class=\"alert\"><td class=\"bad\">{name}</td><td>{CELL}</td><td>{slo}</td>"
        );
        assert!(dom.contains(&row), "{row} missing:\n{dom}");
    }
    let artifacts = workspace().join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400",
        ],
        &status,
        &profile,
    );
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );

    // The GPU pool, the control, never paged.
    let gpu_pages = read(&work.join("pages.log"))
        .lines()
        .filter(|l| l.contains(&format!("\"cell\":\"{GPU_CELL}\"")))
        .count();
    assert_eq!(gpu_pages, 0, "{}", read(&work.join("pages.log")));

    // SIGTERM ends it, exporters included.
    assert!(
        matches!(demo.0.try_wait(), Ok(None)),
        "the demo ended early\n{}",
        logs()
    );
    Command::new("kill")
        .args(["-TERM", &demo.0.id().to_string()])
        .status()
        .unwrap();
    let stopping = Instant::now();
    let status = loop {
        if let Some(s) = demo.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            stopping.elapsed() < Duration::from_secs(30),
            "the demo did not stop on SIGTERM\n{}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "{status}\n{}", logs());
    let out = read(&tmp.path().join("demo.out"));
    assert!(out.contains("[demo] stopped:"), "{out}");
    for i in 1..=5 {
        let free = std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok();
        assert!(free, "the exporter on {} still runs", port + i);
    }
}
