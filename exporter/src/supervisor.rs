//! The watchdog for long-running sources (`powermetrics`, `macmon pipe`): it starts the child,
//! splits its stdout into documents, and kills and restarts it with capped exponential backoff
//! when it exits, hangs (no complete document within three intervals) or prints garbage.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::command::{spawn_error, tail};
use crate::parse::ParseError;
use crate::store::{Sample, Slot};

/// How documents are separated on the child's stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// NUL-separated (powermetrics `-f plist`).
    Nul,
    /// Newline-separated (JSON lines).
    Line,
}

impl Framing {
    fn byte(self) -> u8 {
        match self {
            Framing::Nul => 0,
            Framing::Line => b'\n',
        }
    }
}

/// Turns documents into samples.
pub trait Handler: Send + 'static {
    /// One complete document (without its separator). An error means garbage: the child is
    /// killed and restarted.
    fn document(&mut self, doc: &[u8]) -> Result<Vec<Sample>, ParseError>;

    /// A message for a condition a restart cannot fix, recognised in the child's stderr
    /// (e.g. "must be invoked as the superuser"); it is logged once and retried rarely.
    fn permanent_failure(&self, _stderr: &str) -> Option<String> {
        None
    }
}

/// Capped exponential backoff.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `initial` and doubles up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.min(max);
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The backoff for a source sampled every `interval`: a healthy child that dies is back
    /// within half an interval; one that keeps failing waits up to 30 s (or 4 intervals).
    pub fn for_interval(interval: Duration) -> Self {
        Backoff::new(interval / 2, Duration::from_secs(30).max(interval * 4))
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// The longest delay.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// Back to the initial delay (after the child was healthy).
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// What to run and how to watch it.
#[derive(Debug, Clone)]
pub struct ChildSpec {
    /// Program, found on PATH.
    pub program: String,
    /// Arguments.
    pub args: Vec<String>,
    /// Document separator.
    pub framing: Framing,
    /// The source's sampling interval; a hang is three intervals without a document.
    pub interval: Duration,
    /// Longest document accepted before the output counts as garbage.
    pub max_document: usize,
}

impl ChildSpec {
    /// Time without a complete document after which the child counts as hung (the first
    /// document gets at least 2 s).
    pub fn hang_after(&self) -> Duration {
        self.interval * 3
    }
}

/// How one run of the child ended.
#[derive(Debug)]
enum End {
    Spawn(crate::command::CommandError),
    Exited(String),
    Hung(Duration),
    Garbage(String),
}

struct Run {
    end: End,
    stderr: String,
    documents: u64,
}

/// Stops the child: SIGTERM first (a `sudo` in between passes it on; SIGKILL it cannot), then
/// SIGKILL if it is still there after a second.
async fn kill(child: &mut Child) {
    if let Some(pid) = child.id() {
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
            return;
        }
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

async fn run_once<H: Handler>(spec: &ChildSpec, handler: &mut H, slot: &Slot) -> Run {
    let mut child = match Command::new(&spec.program)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Run {
                end: End::Spawn(spawn_error(&spec.program, e)),
                stderr: String::new(),
                documents: 0,
            };
        }
    };
    let pid = child.id().unwrap_or(0);
    tracing::debug!(program = %spec.program, pid, "started child");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    // stderr is read on its own task into a shared buffer (the first 64 KiB; the rest is
    // drained so the child never blocks on a full pipe).
    let stderr_buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stderr_task = {
        let buf = stderr_buf.clone();
        tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            loop {
                match stderr_pipe.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut b = buf.lock().unwrap_or_else(|e| e.into_inner());
                        let room = (64usize << 10).saturating_sub(b.len());
                        b.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
            }
        })
    };

    let sep = spec.framing.byte();
    let mut pending: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    let mut scanned = 0;
    let mut documents = 0;
    // The first document may take a little longer (start-up, sudo): at least 2 s.
    let mut deadline = Instant::now() + spec.hang_after().max(Duration::from_secs(2));
    let end = 'read: loop {
        // Output first (`biased`): a child that printed and exited has its documents read
        // before its exit is noticed; a child that died while a grandchild still holds its
        // stdout open is noticed at once.
        let read = tokio::select! {
            biased;
            r = tokio::time::timeout_at(deadline, stdout.read(&mut chunk)) => r,
            status = child.wait() => {
                let status = status.map_or_else(|e| format!("wait failed: {e}"), |s| s.to_string());
                break 'read End::Exited(status);
            }
        };
        let n = match read {
            Err(_) => {
                kill(&mut child).await;
                break 'read End::Hung(spec.hang_after());
            }
            Ok(Err(e)) => {
                kill(&mut child).await;
                break 'read End::Garbage(format!("reading stdout failed: {e}"));
            }
            Ok(Ok(0)) => {
                let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await
                {
                    Ok(Ok(s)) => s.to_string(),
                    _ => {
                        kill(&mut child).await;
                        "closed its output but did not exit".to_string()
                    }
                };
                break 'read End::Exited(status);
            }
            Ok(Ok(n)) => n,
        };
        pending.extend_from_slice(&chunk[..n]);
        while let Some(pos) = pending[scanned..]
            .iter()
            .position(|b| *b == sep)
            .map(|p| p + scanned)
        {
            let doc = &pending[..pos];
            if doc.iter().all(|b| b.is_ascii_whitespace()) {
                pending.drain(..=pos);
                scanned = 0;
                continue;
            }
            let started = Instant::now();
            match handler.document(doc) {
                Ok(samples) => {
                    slot.publish(samples, started.elapsed(), true);
                    documents += 1;
                    deadline = Instant::now() + spec.hang_after();
                }
                Err(e) => {
                    kill(&mut child).await;
                    break 'read End::Garbage(e.to_string());
                }
            }
            pending.drain(..=pos);
            scanned = 0;
        }
        scanned = pending.len();
        if pending.len() > spec.max_document {
            kill(&mut child).await;
            break 'read End::Garbage(format!(
                "no document separator within {} bytes",
                spec.max_document
            ));
        }
    };
    // The child is gone; what it wrote to stderr is in the pipe. A grandchild may still hold
    // the pipe open, so give the reader a moment rather than waiting for end of file.
    let _ = tokio::time::timeout(Duration::from_millis(20), stderr_task).await;
    let stderr =
        String::from_utf8_lossy(&stderr_buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    Run {
        end,
        stderr,
        documents,
    }
}

/// Runs the child forever, restarting it as needed. `slot` reports up (0 during every gap),
/// errors and restarts.
pub async fn supervise<H: Handler>(spec: ChildSpec, mut handler: H, slot: Arc<Slot>) {
    slot.supervised();
    let mut backoff = Backoff::for_interval(spec.interval);
    let mut last_problem = String::new();
    let mut started_once = false;
    loop {
        if started_once {
            slot.restarted();
        }
        started_once = true;
        let run = run_once(&spec, &mut handler, &slot).await;
        slot.down();
        slot.error();
        if run.documents > 0 {
            backoff.reset();
        }
        let stderr = tail(&run.stderr, 300);
        let permanent = handler.permanent_failure(&run.stderr);
        let (problem, wait) = match (&run.end, &permanent) {
            (_, Some(p)) => (p.clone(), backoff.max()),
            (End::Spawn(e), _) if e.is_not_found() => (e.to_string(), backoff.max()),
            (End::Spawn(e), _) => (e.to_string(), backoff.next_delay()),
            (End::Exited(status), _) => (format!("exited ({status})"), backoff.next_delay()),
            (End::Hung(after), _) => (
                format!("no complete document within {after:?}; killed it"),
                backoff.next_delay(),
            ),
            (End::Garbage(e), _) => (
                format!("unreadable output ({e}); killed it"),
                backoff.next_delay(),
            ),
        };
        // One log line per kind of problem, not one per restart.
        let kind: String = problem.chars().take_while(|c| *c != '(').collect();
        if kind != last_problem || run.documents > 0 {
            if permanent.is_some() || matches!(&run.end, End::Spawn(e) if e.is_not_found()) {
                tracing::error!(collector = slot.name(), program = %spec.program, retry_in = ?wait, "{problem}");
            } else {
                tracing::warn!(collector = slot.name(), program = %spec.program, stderr = %stderr, documents = run.documents, restart_in = ?wait, "child {problem}");
            }
            last_problem = kind;
        } else {
            tracing::debug!(collector = slot.name(), program = %spec.program, stderr = %stderr, restart_in = ?wait, "child {problem} again");
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::for_interval(Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_millis(500));
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        assert_eq!(b.next_delay(), Duration::from_secs(2));
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), Duration::from_secs(30));
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(500));
    }

    #[test]
    fn a_healthy_child_is_back_within_two_intervals() {
        for ms in [100, 250, 1000, 5000] {
            let i = Duration::from_millis(ms);
            let mut b = Backoff::for_interval(i);
            b.reset();
            assert!(b.next_delay() < i * 2);
        }
    }

    #[derive(Default)]
    struct Collect(Vec<String>);

    impl Handler for Collect {
        fn document(&mut self, doc: &[u8]) -> Result<Vec<Sample>, ParseError> {
            let text = String::from_utf8_lossy(doc).into_owned();
            if text.contains("bad") {
                return Err(ParseError::invalid("test document", "bad"));
            }
            self.0.push(text);
            Ok(vec![])
        }
    }

    fn sh(script: &str, max_document: usize) -> ChildSpec {
        ChildSpec {
            program: "sh".into(),
            args: vec!["-c".into(), script.into()],
            framing: Framing::Nul,
            interval: Duration::from_secs(2),
            max_document,
        }
    }

    fn slot() -> Arc<Slot> {
        crate::store::Store::new().slot("test")
    }

    #[tokio::test]
    async fn documents_are_split_on_nul_and_an_exit_is_seen() {
        let mut h = Collect::default();
        let slot = slot();
        let run = run_once(
            &sh(
                "printf 'one\\0'; printf 'tw'; printf 'o\\0\\0  \\0three'; exit 4",
                1 << 20,
            ),
            &mut h,
            &slot,
        )
        .await;
        assert_eq!(
            h.0,
            ["one", "two"],
            "empty documents are skipped, an unterminated one is not parsed"
        );
        assert_eq!(run.documents, 2);
        assert!(
            matches!(&run.end, End::Exited(s) if s.contains('4')),
            "{:?}",
            run.end
        );
        assert!(slot.is_up());
    }

    #[tokio::test]
    async fn garbage_and_oversized_output_end_the_run() {
        let mut h = Collect::default();
        let run = run_once(
            &sh("printf 'ok\\0bad\\0'; sleep 30", 1 << 20),
            &mut h,
            &slot(),
        )
        .await;
        assert!(
            matches!(&run.end, End::Garbage(e) if e.contains("bad")),
            "{:?}",
            run.end
        );
        let run = run_once(&sh("yes", 64 << 10), &mut Collect::default(), &slot()).await;
        assert!(
            matches!(&run.end, End::Garbage(e) if e.contains("separator")),
            "{:?}",
            run.end
        );
    }

    #[tokio::test]
    async fn stderr_is_kept_and_a_missing_program_is_a_spawn_error() {
        let run = run_once(
            &sh(
                "echo 'must be invoked as the superuser' >&2; exit 1",
                1 << 20,
            ),
            &mut Collect::default(),
            &slot(),
        )
        .await;
        assert!(run.stderr.contains("superuser"), "{:?}", run.stderr);
        let mut spec = sh("", 1);
        spec.program = "cellwatch-no-such-program".into();
        let run = run_once(&spec, &mut Collect::default(), &slot()).await;
        assert!(
            matches!(&run.end, End::Spawn(e) if e.is_not_found()),
            "{:?}",
            run.end
        );
    }
}
