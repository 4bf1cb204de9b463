//! Running an external command found on `PATH`, with a timeout and a cap on its output.

use std::process::Stdio;
use std::time::Duration;

use thiserror::Error;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

/// Most bytes read from one command's stdout; more is an error, not an unbounded buffer.
pub const MAX_OUTPUT: usize = 16 << 20;

/// Why a command gave no usable output.
#[derive(Debug, Error)]
pub enum CommandError {
    /// The program is not on `PATH`.
    #[error("`{program}` was not found on PATH")]
    NotFound {
        /// Program name.
        program: String,
    },
    /// The program could not be started.
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// Program name.
        program: String,
        /// OS error.
        source: std::io::Error,
    },
    /// Reading its output failed.
    #[error("reading the output of `{program}` failed: {source}")]
    Read {
        /// Program name.
        program: String,
        /// OS error.
        source: std::io::Error,
    },
    /// It ran longer than the timeout and was killed.
    #[error("`{program}` did not finish within {timeout:?} and was killed")]
    Timeout {
        /// Program name.
        program: String,
        /// The timeout.
        timeout: Duration,
    },
    /// It printed more than [`MAX_OUTPUT`] bytes.
    #[error("`{program}` printed more than {MAX_OUTPUT} bytes and was killed")]
    TooLarge {
        /// Program name.
        program: String,
    },
    /// It exited unsuccessfully.
    #[error("`{program}` exited with {status}: {stderr}")]
    Exit {
        /// Program name.
        program: String,
        /// Exit status.
        status: std::process::ExitStatus,
        /// The end of its stderr.
        stderr: String,
    },
}

impl CommandError {
    /// True when the program does not exist on this machine.
    pub fn is_not_found(&self) -> bool {
        matches!(self, CommandError::NotFound { .. })
    }
}

/// Maps a spawn error to [`CommandError`].
pub fn spawn_error(program: &str, source: std::io::Error) -> CommandError {
    if source.kind() == std::io::ErrorKind::NotFound {
        CommandError::NotFound {
            program: program.to_string(),
        }
    } else {
        CommandError::Spawn {
            program: program.to_string(),
            source,
        }
    }
}

/// Keeps the last `max` bytes of `s`, on a char boundary, trimmed.
pub fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

/// Output of a command that ran to completion.
#[derive(Debug)]
pub struct Output {
    /// Standard output, lossily decoded.
    pub stdout: String,
    /// Whether it exited successfully.
    pub success: bool,
    /// Its exit status, for messages.
    pub status: std::process::ExitStatus,
    /// The end of its standard error.
    pub stderr: String,
}

impl Output {
    /// The stdout of a successful run, or [`CommandError::Exit`].
    pub fn into_success(self, program: &str) -> Result<String, CommandError> {
        if self.success {
            Ok(self.stdout)
        } else {
            Err(CommandError::Exit {
                program: program.to_string(),
                status: self.status,
                stderr: self.stderr,
            })
        }
    }
}

/// Runs `program args…` (found on `PATH`) and returns its output whatever its exit status.
///
/// The child runs in its own process group. It is killed when `timeout` passes or it prints
/// more than [`MAX_OUTPUT`] bytes; whatever is left of its group when the run ends (processes it
/// left behind, or everything on a timeout) is killed, and the stderr reader ends with the run.
pub async fn run(program: &str, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(program, e))?;
    // Dropped (this future cancelled), it kills the group.
    let group = crate::group::Group::of(child.id());
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    // stderr is drained on its own task, so a child that fills the stderr pipe never blocks.
    let mut stderr_task = tokio::spawn(async move {
        let mut err = Vec::new();
        let _ = (&mut stderr).take(64 << 10).read_to_end(&mut err).await;
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        err
    });
    let work = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(MAX_OUTPUT as u64 + 1)
            .read_to_end(&mut out)
            .await
            .map_err(|source| CommandError::Read {
                program: program.to_string(),
                source,
            })?;
        if out.len() > MAX_OUTPUT {
            return Err(CommandError::TooLarge {
                program: program.to_string(),
            });
        }
        let status = child.wait().await.map_err(|source| CommandError::Read {
            program: program.to_string(),
            source,
        })?;
        let err = tokio::time::timeout(Duration::from_secs(1), &mut stderr_task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        Ok(Output {
            stdout: String::from_utf8_lossy(&out).into_owned(),
            success: status.success(),
            status,
            stderr: tail(&String::from_utf8_lossy(&err), 512),
        })
    };
    let result = match tokio::time::timeout(timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(CommandError::Timeout {
            program: program.to_string(),
            timeout,
        }),
    };
    // The child (on a timeout or an error) and anything it left behind. When the child was
    // reaped already (it exited), the group is only signalled while members are left: an empty
    // group's id may be reused.
    if group.alive() {
        group.kill();
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    stderr_task.abort();
    result
}

/// Runs a command and returns its stdout if it exited successfully.
pub async fn run_ok(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<String, CommandError> {
    run(program, args, timeout).await?.into_success(program)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_program_is_not_found() {
        let e = run("cellwatch-no-such-program", &[], Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("cellwatch-no-such-program"));
    }

    #[tokio::test]
    async fn exit_status_and_stderr_are_reported() {
        let e = run_ok(
            "sh",
            &["-c", "echo boom >&2; exit 3"],
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("boom") && msg.contains('3'), "{msg}");
    }

    #[tokio::test]
    async fn a_hanging_command_times_out() {
        let e = run("sleep", &["30"], Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
    }

    #[tokio::test]
    async fn a_timed_out_or_finished_command_leaves_no_process_behind() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("sleep 1000 & echo $! > {}; sleep 30", pidfile.display());
        // Long enough for the shell to write the pid file on a loaded machine.
        let e = run("sh", &["-c", &script], Duration::from_secs(4))
            .await
            .unwrap_err();
        assert!(matches!(e, CommandError::Timeout { .. }), "{e}");
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(crate::group::ends_within(pid, Duration::from_secs(10)).await);
        // A command that exits leaving a process behind (its pipes closed, so it finishes).
        let script = format!(
            "sleep 1000 >/dev/null 2>&1 & echo $! > {}; echo done",
            pidfile.display()
        );
        let out = run_ok("sh", &["-c", &script], Duration::from_secs(20))
            .await
            .unwrap();
        assert_eq!(out.trim(), "done");
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(crate::group::ends_within(pid, Duration::from_secs(10)).await);
    }

    #[tokio::test]
    async fn endless_output_is_cut_off() {
        let e = run("yes", &[], Duration::from_secs(20)).await.unwrap_err();
        assert!(matches!(e, CommandError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn tail_keeps_the_end_on_a_char_boundary() {
        assert_eq!(tail("  short \n", 10), "short");
        let t = tail("ééééé", 3);
        assert!(t.ends_with('é') && t.starts_with('…'), "{t}");
    }
}
