//! Headless Chromium and the demo process, for the tests that run the demo and look at its
//! status page.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs Chromium headless with `args` and the URL; its stdout.
pub fn chromium(args: &[&str], url: &str, profile: &Path) -> String {
    let bin = std::env::var("CELLWATCH_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let mut child = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin}: {e} (Debian package `chromium`; ./scripts/test installs it)")
        });
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut out = String::new();
            use std::io::Read;
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut out)
                .unwrap();
            assert!(status.success(), "{bin} {args:?}: {status}");
            return out;
        }
        if start.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            panic!("{bin} {args:?} did not finish within 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The demo process, stopped with SIGTERM (then SIGKILL) when the test ends.
pub struct Demo(pub std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-TERM", &self.0.id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(2));
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
