//! End to end: the engine's API against its own OpenAPI document, with schemathesis (PyPI).
//!
//! A real `cellwatch-slo` scrapes two real exporters of one cell (whole-node power from the
//! `macmon` stand-in, over its cap: the cell is drained) and one cell whose node never answers.
//! Writes are enabled with a bearer token. Schemathesis loads `/api/v1/openapi.json` and
//! generates requests for every operation: no answer may be a server error (but the health
//! check's documented 503 for a cell to drain, `tests/schemathesis.toml`), every answer must match its documented status, content type and schema,
//! invalid input must be refused, and writes sent without the token must be refused. The test
//! then checks that last point by hand, and that nothing was written by those requests.
//!
//! Schemathesis is found at `CELLWATCH_SCHEMATHESIS`, else as `st` on PATH; `./scripts/test`
//! installs it (`pip install schemathesis` in `target/schemathesis`).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cellwatch_e2e::{Exporter, http, macmon_exporter, start_engine_in};
use serde_json::Value;

const TOKEN: &str = "contract-token-1234";

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("CELLWATCH_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("st"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "schemathesis is missing: run ./scripts/test (it installs it), or `pip install \
             schemathesis` and put `st` on PATH or its path in CELLWATCH_SCHEMATHESIS"
        )
    })
}

/// The engine's silences.
async fn silences(engine: &Exporter) -> Value {
    http()
        .get(format!("{}/api/v1/silences", engine.base))
        .send()
        .await
        .expect("silences")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_the_api_true_to_its_document() {
    let st = schemathesis();
    let exporters = [
        macmon_exporter("studio-a", "s1", 400.0),
        macmon_exporter("studio-a", "s2", 400.0),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let token = dir.path().join("token");
    std::fs::write(&token, TOKEN).expect("token");
    let nodes: String = exporters
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "      - {{ name: s{}, url: \"{}/metrics\" }}\n",
                i + 1,
                e.base
            )
        })
        .collect();
    let cfg = format!(
        "cells:\n  - name: studio-a\n    power_cap_watts: 600\n    nodes:\n{nodes}\
         \x20 - name: ghost\n    nodes:\n      - {{ name: g1, url: \"http://127.0.0.1:9/metrics\" }}\n\
         source:\n  scrape: {{ interval: 1s }}\n\
         slos:\n  - {{ name: availability, objective: 0.99, period: 1d, sli: {{ availability: {{}} }} }}\n\
         \x20 - {{ name: power, objective: 0.99, period: 30d, sli: {{ power_cap: {{}} }} }}\n\
         alerting:\n  cell_down_for: 0s\n  api_token_file: {}\n",
        token.display()
    );
    let engine = start_engine_in(dir.path(), &cfg, &[]).await;
    // The cell's power is read (800 W over the 600 W cap) before the run starts.
    let start = std::time::Instant::now();
    loop {
        let r = http()
            .get(format!("{}/api/v1/cells/studio-a/health", engine.base))
            .send()
            .await
            .expect("health");
        let h: Value = r.json().await.expect("JSON");
        if h["power_watts"] == 800.0 {
            assert_eq!(h["reasons"][0]["reason"], "over_power_cap", "{h}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no power reading: {h}\n{}",
            engine.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let junit = dir.path().join("schemathesis.xml");
    // In the test's directory: schemathesis keeps a cache in its working directory.
    let out = Command::new(&st)
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(cellwatch_e2e::workspace().join("tests/schemathesis.toml"))
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", engine.base))
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection,unsupported_method,ignored_auth",
            "--header",
            &format!("Authorization: Bearer {TOKEN}"),
            "--max-examples",
            "100",
            "--seed",
            "20261204",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
        ])
        .arg("--report=junit")
        .arg(format!("--report-junit-path={}", junit.display()))
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .expect("run schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{stdout}\n{stderr}\nengine log:\n{}",
        out.status,
        engine.log()
    );
    // Every operation was exercised (the JUnit report has a test case per operation; the
    // document's own path is left out by schemathesis, and checked by the engine's unit test).
    let junit = std::fs::read_to_string(&junit).expect("the JUnit report");
    for op in [
        "GET /api/v1/alerts",
        "GET /api/v1/slos",
        "GET /api/v1/cells",
        "GET /api/v1/cells/{cell}/health",
        "GET /api/v1/silences",
        "POST /api/v1/silences",
        "DELETE /api/v1/silences/{id}",
    ] {
        assert!(
            junit.contains(&format!("name=\"{op}\"")),
            "schemathesis did not test {op}:\n{junit}"
        );
    }
    assert!(!junit.contains("<failure"), "{junit}");
    println!("{stdout}");

    // Writes without the token, or with a wrong one, are refused and write nothing.
    let before = silences(&engine).await;
    let silence = serde_json::json!({
        "matchers": [{ "name": "cell", "value": "studio-a" }],
        "endsAt": "2999-01-01T00:00:00Z",
        "createdBy": "intruder",
        "comment": "no token",
    });
    for auth in [None, Some("Bearer wrong-token"), Some(TOKEN)] {
        let mut post = http()
            .post(format!("{}/api/v1/silences", engine.base))
            .json(&silence);
        let mut delete = http().delete(format!(
            "{}/api/v1/silences/{}",
            engine.base,
            before["silences"][0]["id"].as_str().unwrap_or("none")
        ));
        if let Some(a) = auth {
            post = post.header("authorization", a);
            delete = delete.header("authorization", a);
        }
        for req in [post, delete] {
            let r = req.send().await.expect("write");
            assert_eq!(r.status(), 401, "a write with {auth:?} was not refused");
        }
    }
    let after = silences(&engine).await;
    assert_eq!(before, after, "a refused write changed the silences");
    assert!(!after.to_string().contains("intruder"));
}
