//! A real Prometheus server (Debian package `prometheus`) for end-to-end tests: a temporary
//! data directory, a free loopback port, stopped on drop.

use std::process::{Child, Command, Stdio};

/// A running Prometheus.
pub struct Prometheus {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its configuration and data directory.
    pub dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` with `config` (YAML; `DIR` in it is replaced by the data directory,
    /// for file_sd paths) and waits until it is ready.
    pub async fn start(config: &str, files: &[(&str, &str)]) -> Prometheus {
        Prometheus::start_with(config, files, |_| {}).await
    }

    /// As [`Prometheus::start`], after `prepare` has filled the data directory (e.g. with
    /// `promtool tsdb create-blocks-from openmetrics`).
    pub async fn start_with(
        config: &str,
        files: &[(&str, &str)],
        prepare: impl FnOnce(&std::path::Path),
    ) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        prepare(&dir.path().join("data"));
        for (name, content) in files {
            std::fs::write(dir.path().join(name), content).expect("write");
        }
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(
            &cfg,
            config.replace("DIR", &dir.path().display().to_string()),
        )
        .expect("write prometheus.yml");
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "prometheus: {e} (Debian package `prometheus`; the README's test command installs it)"
                )
            });
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        crate::wait_ready(&p.base, "prometheus", || p.log()).await;
        p
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query; the `data.result` array.
    pub async fn query(&self, expr: &str) -> Vec<serde_json::Value> {
        let r = crate::http()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .expect("query prometheus");
        let v: serde_json::Value = r.json().await.expect("JSON");
        assert_eq!(v["status"], "success", "{expr}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
