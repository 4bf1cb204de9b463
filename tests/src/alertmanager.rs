//! A real Alertmanager (Debian package `prometheus-alertmanager`) for end-to-end tests: a
//! temporary data directory, a free loopback port, no clustering, stopped on drop.

use std::process::{Child, Command, Stdio};

/// A running Alertmanager.
pub struct Alertmanager {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    dir: tempfile::TempDir,
}

impl Alertmanager {
    /// Starts one that groups by cell and sends nowhere, and waits until it is ready.
    pub async fn start() -> Alertmanager {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("alertmanager.yml");
        std::fs::write(
            &cfg,
            "route:\n  receiver: blackhole\n  group_by: [cell]\nreceivers:\n  - name: blackhole\n",
        )
        .expect("write alertmanager.yml");
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).expect("log");
        let child = Command::new("prometheus-alertmanager")
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("prometheus-alertmanager: {e} (Debian package prometheus-alertmanager; the README's test command installs it)")
            });
        let am = Alertmanager {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
        };
        crate::wait_ready(&am.base, "alertmanager", || am.log()).await;
        am
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }

    /// `GET /api/v2/alerts`.
    pub async fn alerts(&self) -> Vec<serde_json::Value> {
        crate::http()
            .get(format!("{}/api/v2/alerts", self.base))
            .send()
            .await
            .expect("GET alerts")
            .json::<Vec<serde_json::Value>>()
            .await
            .expect("JSON")
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
