//! End to end: `--web.config.file` on the exporter and the engine. A certificate made in the
//! test; basic authentication with bcrypt hashes; a wrong password gets 401; TLS 1.3 only
//! refuses a TLS 1.2 client; the engine's silence writes keep their bearer token; no secret is
//! ever logged.

use std::time::Duration;

use cellwatch_e2e::{Exporter, start_engine};

struct Certs {
    dir: tempfile::TempDir,
    ca_pem: String,
}

/// A self-signed certificate for 127.0.0.1 and localhost, written as server.crt / server.key.
fn certs() -> Certs {
    let dir = tempfile::tempdir().unwrap();
    let ck =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    let pem = ck.cert.pem();
    std::fs::write(dir.path().join("server.crt"), &pem).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    Certs { dir, ca_pem: pem }
}

fn client(ca: &str) -> reqwest::Client {
    let cfg = cellwatch_exporter::tls::client_config(Some(ca.as_bytes())).unwrap();
    cellwatch_exporter::tls::http_client()
        .use_preconfigured_tls(cfg)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

const PASSWORD: &str = "correct horse battery staple";

fn web_config(c: &Certs, extra_tls: &str) -> std::path::PathBuf {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let path = c.dir.path().join("web.yml");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra_tls}\
             http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exporter_serves_tls_and_refuses_a_wrong_password() {
    let c = certs();
    let cfg = web_config(&c, "  min_version: TLS13\n");
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--collector.vmstat",
            "--web.config.file",
            cfg.to_str().unwrap(),
        ],
    );
    let https = e.base.replace("http://", "https://");
    let cl = client(&c.ca_pem);
    let get = |user: Option<&'static str>, pass: &'static str| {
        let cl = cl.clone();
        let url = format!("{https}/metrics");
        async move {
            let mut r = cl.get(url);
            if let Some(u) = user {
                r = r.basic_auth(u, Some(pass));
            }
            r.send().await.unwrap()
        }
    };
    let ok = get(Some("prometheus"), PASSWORD).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    assert!(
        ok.text()
            .await
            .unwrap()
            .contains("cellwatch_exporter_build_info")
    );
    let wrong = get(Some("prometheus"), "wrong password").await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().contains_key("www-authenticate"));
    assert_eq!(get(Some("nobody"), PASSWORD).await.status(), 401);
    assert_eq!(get(None, "").await.status(), 401);

    // Plain HTTP on the TLS port gets no metrics.
    let plain = cellwatch_e2e::http()
        .get(format!("{}/metrics", e.base))
        .send()
        .await;
    assert!(plain.is_err() || plain.unwrap().status() != 200);

    // TLS 1.2 only: refused by a TLS 1.3 minimum.
    let v12 = rustls::ClientConfig::builder_with_provider(cellwatch_exporter::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates({
            let mut r = rustls::RootCertStore::empty();
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            for c in CertificateDer::pem_slice_iter(c.ca_pem.as_bytes()) {
                r.add(c.unwrap()).unwrap();
            }
            r
        })
        .with_no_client_auth();
    let old = cellwatch_exporter::tls::http_client()
        .use_preconfigured_tls(v12)
        .build()
        .unwrap();
    let refused = old
        .get(format!("{https}/metrics"))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .expect_err("a TLS 1.2 client");
    let chain = format!("{refused:?}");
    assert!(
        chain.contains("ProtocolVersion") || chain.contains("HandshakeFailure"),
        "not a TLS version refusal: {chain}"
    );

    let log = e.log();
    assert!(
        !log.contains(PASSWORD) && !log.contains("wrong password"),
        "{log}"
    );
    assert!(
        log.contains("tls=true") && log.contains("basic_auth=true"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tls_connection_is_closed_after_the_header_timeout() {
    use tokio::io::AsyncReadExt;
    let c = certs();
    let cfg = web_config(&c, "");
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--web.config.file",
            cfg.to_str().unwrap(),
            "--web.read-header-timeout",
            "1s",
        ],
    );
    let addr = e.base.trim_start_matches("http://").to_string();
    let tls = cellwatch_exporter::tls::client_config(Some(c.ca_pem.as_bytes())).unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut conn = connector.connect(name, tcp).await.expect("TLS handshake");
    // Handshake done, then nothing: the server must hang up.
    let idle = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), conn.read(&mut buf)).await;
    let after = idle.elapsed();
    eprintln!("an idle TLS connection after {after:?}: {read:?}");
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "an idle TLS connection still open after {after:?}: {read:?}"
    );
    assert!(
        after >= Duration::from_millis(500),
        "closed at once: {after:?}"
    );
    // And the server still serves.
    let ok = client(&c.ca_pem)
        .get(format!("{}/metrics", e.base.replace("http://", "https://")))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_costly_bcrypt_hash_starts_at_once_with_a_warning() {
    // Cost 31 would take days to hash: start-up must not compute one.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.yml");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(
        &cfg,
        format!(
            "basic_auth_users:\n  slow: '$2y$31${}'\n  prometheus: '{hash}'\n",
            &hash[7..]
        ),
    )
    .unwrap();
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--web.config.file",
            cfg.to_str().unwrap(),
        ],
    );
    let log = e.log();
    let warning = log
        .lines()
        .find(|l| l.contains("WARN") && l.contains("bcrypt cost"))
        .unwrap_or_else(|| panic!("no warning about the cost:\n{log}"));
    assert!(
        warning.contains("user=slow") && warning.contains("cost=31") && warning.contains("check="),
        "{warning}"
    );
    assert!(!log.contains("user=prometheus"), "{log}");
    // The cheap user still logs in.
    let r = cellwatch_e2e::http()
        .get(format!("{}/metrics", e.base))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_web_config_stops_the_exporter_with_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("web.yml");
    std::fs::write(&cfg, "basic_auth_users:\n  alice: hunter2\n").unwrap();
    let out = std::process::Command::new(cellwatch_e2e::binary("cellwatch-exporter"))
        .args([
            "--collector.disable-defaults",
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .arg("--web.config.file")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("basic_auth_users.alice") && err.contains("bcrypt"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // A value where a map of users belongs is not shown either (it may be a password); a
    // bcrypt cost out of range names the user.
    std::fs::write(&cfg, "basic_auth_users: hunter2-secret\n").unwrap();
    let out = std::process::Command::new(cellwatch_e2e::binary("cellwatch-exporter"))
        .args([
            "--collector.disable-defaults",
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .arg("--web.config.file")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("basic_auth_users") && !err.contains("hunter2"),
        "{err}"
    );
    let hash = bcrypt::hash("pw", 4).unwrap();
    std::fs::write(
        &cfg,
        format!("basic_auth_users:\n  alice: '$2y$03${}'\n", &hash[7..]),
    )
    .unwrap();
    let out = std::process::Command::new(cellwatch_e2e::binary("cellwatch-exporter"))
        .args([
            "--collector.disable-defaults",
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .arg("--web.config.file")
        .arg(&cfg)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("basic_auth_users.alice") && err.contains("4..=31"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_serves_tls_and_basic_auth_and_keeps_its_bearer_token() {
    let c = certs();
    let web = web_config(&c, "");
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "api-token-1234\n").unwrap();
    let cfg = dir.path().join("cells.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cells:\n  - name: c\n    nodes:\n      - {{ name: n1, url: \"http://127.0.0.1:9/metrics\" }}\n\
             source:\n  scrape: {{ interval: 1s }}\n\
             slos:\n  - {{ name: a, objective: 0.99, period: 30d, sli: {{ availability: {{}} }} }}\n\
             alerting:\n  api_token_file: {}\n",
            token.display()
        ),
    )
    .unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
    let e = start_engine(&db, &cfg, &["--web.config.file", web.to_str().unwrap()]);
    let https = e.base.replace("http://", "https://");
    let cl = client(&c.ca_pem);
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(
            cl.get(format!("{https}/metrics"))
                .basic_auth("prometheus", Some(PASSWORD))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    assert_eq!(
        status(
            cl.get(format!("{https}/"))
                .basic_auth("prometheus", Some("nope"))
                .send()
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(
            cl.get(format!("{https}/api/v1/alerts"))
                .send()
                .await
                .unwrap()
        ),
        401
    );
    let silence = serde_json::json!({
        "matchers": [{"name": "cell", "value": "c", "isRegex": false}],
        "startsAt": "2026-01-01T00:00:00Z", "endsAt": "2036-01-01T00:00:00Z",
        "createdBy": "test", "comment": "web config",
    });
    let post = |auth: &'static str| {
        cl.post(format!("{https}/api/v1/silences"))
            .header("authorization", auth)
            .json(&silence)
            .send()
    };
    assert_eq!(status(post("Bearer api-token-1234").await.unwrap()), 200);
    assert_eq!(status(post("Bearer wrong-token").await.unwrap()), 401);
    // A bearer token only stands in for basic auth on writes: reads still need a user.
    let read = |auth: &'static str, path: &'static str| {
        cl.get(format!("{https}{path}"))
            .header("authorization", auth)
            .send()
    };
    assert_eq!(
        status(
            read("Bearer api-token-1234", "/api/v1/silences")
                .await
                .unwrap()
        ),
        401
    );
    assert_eq!(
        status(read("Bearer x", "/api/v1/silencesX").await.unwrap()),
        401
    );
    assert_eq!(status(read("Bearer x", "/metrics").await.unwrap()), 401);
    assert_eq!(
        status(
            cl.get(format!("{https}/api/v1/silences"))
                .basic_auth("prometheus", Some(PASSWORD))
                .send()
                .await
                .unwrap()
        ),
        200
    );
    let log = e.log();
    for secret in ["api-token-1234", PASSWORD, "wrong-token"] {
        assert!(!log.contains(secret), "{secret} logged:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_scrapes_an_exporter_behind_tls_and_basic_auth() {
    let c = certs();
    let web = web_config(&c, "");
    let e = Exporter::start_with(
        tempfile::tempdir().unwrap(),
        &[
            "--collector.disable-defaults",
            "--collector.vmstat",
            "--web.config.file",
            web.to_str().unwrap(),
        ],
    );
    let url = format!("{}/metrics", e.base.replace("http://", "https://"));
    let engine = |password: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("password"), format!("{password}\n")).unwrap();
        std::fs::write(dir.path().join("ca.pem"), &c.ca_pem).unwrap();
        let cfg = dir.path().join("cells.yaml");
        std::fs::write(
            &cfg,
            format!(
                "cells:\n  - name: c\n    nodes:\n      - {{ name: n1, url: \"{url}\" }}\n\
                 source:\n  scrape:\n    interval: 1s\n    ca_file: ca.pem\n    basic_auth: {{ username: prometheus, password_file: password }}\n\
                 slos:\n  - {{ name: a, objective: 0.99, period: 30d, sli: {{ availability: {{}} }} }}\n"
            ),
        )
        .unwrap();
        let db = format!("sqlite://{}?mode=rwc", dir.path().join("l.db").display());
        (start_engine(&db, &cfg, &[]), dir)
    };
    let (good, _g) = engine(PASSWORD);
    let (bad, _b) = engine("not the password");
    let start = std::time::Instant::now();
    while !bad.log().contains("HTTP 401") {
        assert!(start.elapsed() < Duration::from_secs(20), "{}", bad.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Three more scrapes: the engine with the right password never failed one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !good.log().contains("did not answer"),
        "the engine could not scrape over TLS with basic auth:\n{}",
        good.log()
    );
    for log in [good.log(), bad.log()] {
        assert!(
            !log.contains(PASSWORD) && !log.contains("not the password"),
            "{log}"
        );
    }
}
