//! The watchdog for long-running sources (`powermetrics`, `macmon pipe`): it starts the child,
//! splits its stdout into documents, and kills and restarts it with capped exponential backoff
//! when it exits, hangs (no complete document within three intervals) or prints garbage.
//!
//! The child runs in its own process group ([`crate::group`]): a restart or the exporter's
//! shutdown stops the whole group, so a grandchild is never left behind, and the stderr reader
//! ends with the run. The backoff starts over only after a child stayed healthy (documents for
//! [`ChildSpec::healthy_after`]), so a child that prints one document and exits is restarted at
//! a slowing rate, not at full speed.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::command::{spawn_error, tail};
use crate::group::Group;
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

    /// How long a child must keep producing documents for its end to count as a new failure (the
    /// backoff starts over): ten intervals, at least 10 s and at most 60 s. A child that keeps
    /// failing sooner is restarted ever more slowly (up to the backoff's maximum).
    pub fn healthy_after(&self) -> Duration {
        (self.interval * 10).clamp(Duration::from_secs(10), Duration::from_secs(60))
    }
}

/// Whether a run was healthy: its last document came at least `healthy_after` after it started.
pub fn was_healthy(last_document: Option<Duration>, healthy_after: Duration) -> bool {
    last_document.is_some_and(|d| d >= healthy_after)
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
    /// When the last document came, from the start of the run.
    last_document: Option<Duration>,
}

/// Stops the child: SIGTERM to its group first (a `sudo` in between passes it on; SIGKILL it
/// cannot), then SIGKILL if the child is still there after a second.
async fn kill(child: &mut Child, group: &Group) {
    group.signal(rustix::process::Signal::TERM);
    if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
        return;
    }
    group.kill();
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}

async fn run_once<H: Handler>(spec: &ChildSpec, handler: &mut H, slot: &Slot) -> Run {
    let mut child = match Command::new(&spec.program)
        .args(&spec.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Run {
                end: End::Spawn(spawn_error(&spec.program, e)),
                stderr: String::new(),
                documents: 0,
                last_document: None,
            };
        }
    };
    // Dropped (the task cancelled, the runtime shut down), it kills the group.
    let group = Group::of(child.id());
    let started_at = Instant::now();
    let pid = child.id().unwrap_or(0);
    tracing::debug!(program = %spec.program, pid, "started child");
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
    // stderr is read on its own task into a shared buffer (the first 64 KiB; the rest is
    // drained so the child never blocks on a full pipe).
    let stderr_buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stderr_task = {
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
    let mut last_document = None;
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
                kill(&mut child, &group).await;
                break 'read End::Hung(spec.hang_after());
            }
            Ok(Err(e)) => {
                kill(&mut child, &group).await;
                break 'read End::Garbage(format!("reading stdout failed: {e}"));
            }
            Ok(Ok(0)) => {
                let status = match tokio::time::timeout(Duration::from_secs(5), child.wait()).await
                {
                    Ok(Ok(s)) => s.to_string(),
                    _ => {
                        kill(&mut child, &group).await;
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
                    last_document = Some(started_at.elapsed());
                    deadline = Instant::now() + spec.hang_after();
                }
                Err(e) => {
                    kill(&mut child, &group).await;
                    break 'read End::Garbage(e.to_string());
                }
            }
            pending.drain(..=pos);
            scanned = 0;
        }
        scanned = pending.len();
        if pending.len() > spec.max_document {
            kill(&mut child, &group).await;
            break 'read End::Garbage(format!(
                "no document separator within {} bytes",
                spec.max_document
            ));
        }
    };
    // The child is gone; what is left of its group (grandchildren holding our pipes) goes too.
    group.stop(Duration::from_secs(1)).await;
    // What it wrote to stderr is in the pipe; the reader ends at end of file, or is ended here
    // (a member that could not be signalled may still hold the pipe).
    let _ = tokio::time::timeout(Duration::from_millis(200), &mut stderr_task).await;
    stderr_task.abort();
    let stderr =
        String::from_utf8_lossy(&stderr_buf.lock().unwrap_or_else(|e| e.into_inner())).into_owned();
    Run {
        end,
        stderr,
        documents,
        last_document,
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
        if was_healthy(run.last_document, spec.healthy_after()) {
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

    #[test]
    fn a_child_that_exits_after_one_document_backs_off() {
        // Virtual time: every run lasts 100 ms and brings one valid document at 50 ms. Resetting
        // the backoff on any document (the old rule) restarted it 66 times in 40 s.
        let spec = ChildSpec {
            interval: Duration::from_secs(1),
            ..sh("", 1)
        };
        let mut b = Backoff::for_interval(spec.interval);
        let (mut t, mut restarts) = (Duration::ZERO, 0);
        while t < Duration::from_secs(40) {
            t += Duration::from_millis(100);
            if was_healthy(Some(Duration::from_millis(50)), spec.healthy_after()) {
                b.reset();
            }
            t += b.next_delay();
            restarts += 1;
        }
        assert!(restarts <= 8, "{restarts} restarts in 40 s");
        // A child that kept producing documents for ten intervals (at least 10 s) is back within
        // half an interval.
        assert_eq!(spec.healthy_after(), Duration::from_secs(10));
        assert!(was_healthy(
            Some(Duration::from_secs(10)),
            spec.healthy_after()
        ));
        assert!(!was_healthy(
            Some(Duration::from_secs(9)),
            spec.healthy_after()
        ));
        assert!(!was_healthy(None, spec.healthy_after()));
        let slow = ChildSpec {
            interval: Duration::from_secs(30),
            ..sh("", 1)
        };
        assert_eq!(slow.healthy_after(), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn a_child_that_exits_after_one_document_is_not_restarted_at_full_rate() {
        let store = crate::store::Store::new();
        let slot = store.slot("test");
        let spec = ChildSpec {
            interval: Duration::from_millis(100),
            ..sh("printf 'ok\\0'; exit 0", 1 << 20)
        };
        // Backoff 50, 100, 200, 400, 800, 1600 ms: at most 6 restarts in 3 s (the old rule, reset
        // after any document, restarted every 50 ms plus start-up: dozens).
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            supervise(spec, Collect::default(), slot),
        )
        .await;
        let text = String::from_utf8(store.render().to_vec()).unwrap();
        let restarts = cellwatch_metrics::exposition::value(
            &text,
            r#"cellwatch_collector_restarts_total{collector="test"}"#,
        )
        .unwrap();
        assert!(
            (1.0..=8.0).contains(&restarts),
            "{restarts} restarts in 3 s"
        );
    }

    fn pid_in(path: &std::path::Path) -> u32 {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .trim()
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn a_grandchild_writing_to_stderr_goes_with_its_parent_and_no_reader_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The grandchild floods stderr and holds both pipes; the child prints a document and
        // exits.
        let script = format!(
            "yes spam >&2 & echo $! > {}; printf 'ok\\0'; exit 3",
            pidfile.display()
        );
        let run = run_once(&sh(&script, 1 << 20), &mut Collect::default(), &slot()).await;
        assert!(matches!(&run.end, End::Exited(_)), "{:?}", run.end);
        let grandchild = pid_in(&pidfile);
        assert!(
            crate::group::ends_within(grandchild, Duration::from_secs(10)).await,
            "grandchild {grandchild} outlived the run"
        );
        // No task is left draining its stderr.
        let metrics = tokio::runtime::Handle::current().metrics();
        for _ in 0..100 {
            if metrics.num_alive_tasks() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(metrics.num_alive_tasks(), 0, "a reader task is left");
    }

    #[tokio::test]
    async fn a_hung_childs_grandchild_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 1000 & echo $! > {}; sleep 1000", pidfile.display());
        let spec = ChildSpec {
            interval: Duration::from_millis(100),
            ..sh(&script, 1 << 20)
        };
        let run = run_once(&spec, &mut Collect::default(), &slot()).await;
        assert!(matches!(&run.end, End::Hung(_)), "{:?}", run.end);
        let grandchild = pid_in(&pidfile);
        assert!(crate::group::ends_within(grandchild, Duration::from_secs(10)).await);
    }

    #[tokio::test]
    async fn a_cancelled_supervisor_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "sleep 1000 & echo $! > {}; while :; do printf 'ok\\0'; sleep 0.1; done",
            pidfile.display()
        );
        let spec = ChildSpec {
            interval: Duration::from_millis(100),
            ..sh(&script, 1 << 20)
        };
        // The exporter shutting down drops its tasks as this timeout drops the supervisor.
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            supervise(spec, Collect::default(), slot()),
        )
        .await;
        let grandchild = pid_in(&pidfile);
        assert!(crate::group::ends_within(grandchild, Duration::from_secs(10)).await);
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
