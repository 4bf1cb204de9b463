//! Child processes in their own process group, stopped as a group: a grandchild (a `sudo`
//! child, a helper a script forks, a daemonizing tool) goes with its parent instead of being
//! orphaned still holding our pipes.
//!
//! Commands are spawned with `process_group(0)`, so a child's pid is its group's id. A [`Group`]
//! signals that group; dropping it (a finished run, a cancelled task, the runtime shutting down)
//! kills what is left with SIGKILL, and [`kill_all`] does the same for every live group when the
//! exporter shuts down.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use rustix::process::{Pid, Signal, kill_process_group, test_kill_process_group};

/// Process groups of children that are running or may still have members.
static LIVE: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A child's process group.
///
/// Once the group is seen empty (its leader reaped and no member left) its id may be reused by
/// an unrelated process group, so it is never signalled again: signal the group before reaping
/// the leader, or check [`Group::alive`] first.
#[derive(Debug)]
pub struct Group {
    /// The group id; `None` when the child's pid is unknown (it was already reaped).
    id: Option<i32>,
    /// Set once the group was seen empty.
    empty: std::sync::atomic::AtomicBool,
}

/// The group of pid `raw`, never pid 1 (`kill(-1)` would signal every process we may signal).
fn pid(raw: i32) -> Option<Pid> {
    (raw > 1).then(|| Pid::from_raw(raw)).flatten()
}

impl Group {
    /// The group led by a child spawned with `process_group(0)`.
    pub fn of(child_pid: Option<u32>) -> Self {
        let id = child_pid
            .and_then(|p| i32::try_from(p).ok())
            .filter(|p| pid(*p).is_some());
        if let Some(id) = id {
            live().insert(id);
        }
        Group {
            id,
            empty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The group id while the group is not known to be empty.
    fn target(&self) -> Option<Pid> {
        if self.empty.load(std::sync::atomic::Ordering::Relaxed) {
            return None;
        }
        self.id.and_then(pid)
    }

    /// Sends `sig` to every process of the group (errors, such as an empty group, are ignored);
    /// nothing once the group was seen empty.
    pub fn signal(&self, sig: Signal) {
        if let Some(p) = self.target() {
            let _ = kill_process_group(p, sig);
        }
    }

    /// SIGKILL to the group.
    pub fn kill(&self) {
        self.signal(Signal::KILL);
    }

    /// Whether a process of the group is left (a zombie counts until it is reaped). A group seen
    /// empty is marked so: it is not signalled again, nor stopped by [`kill_all`].
    pub fn alive(&self) -> bool {
        let Some(p) = self.target() else {
            return false;
        };
        if test_kill_process_group(p).is_ok() {
            return true;
        }
        self.empty.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(id) = self.id {
            live().remove(&id);
        }
        false
    }

    /// Whether the group was seen empty.
    pub fn is_empty(&self) -> bool {
        self.empty.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// SIGTERM to the group, then SIGKILL to whatever is left after `grace`.
    pub async fn stop(&self, grace: Duration) {
        if !self.alive() {
            return;
        }
        self.signal(Signal::TERM);
        let deadline = tokio::time::Instant::now() + grace;
        while self.alive() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.signal(Signal::KILL);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(Signal::KILL);
        if let Some(id) = self.id {
            live().remove(&id);
        }
    }
}

/// Stops every live group (SIGTERM, then SIGKILL after `grace`): on exporter shutdown.
pub async fn kill_all(grace: Duration) {
    let groups: Vec<i32> = live().iter().copied().collect();
    let signal = |sig| {
        for p in groups.iter().copied().filter_map(pid) {
            let _ = kill_process_group(p, sig);
        }
    };
    signal(Signal::TERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline
        && groups
            .iter()
            .copied()
            .filter_map(pid)
            .any(|p| test_kill_process_group(p).is_ok())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(Signal::KILL);
}

/// Whether process `pid` has ended (gone, or a zombie waiting for its parent).
#[cfg(test)]
pub(crate) fn has_ended(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return true;
    };
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
        Err(_) if std::path::Path::new("/proc/self/stat").exists() => true,
        Err(_) => Pid::from_raw(raw).is_none_or(|p| rustix::process::test_kill_process(p).is_err()),
    }
}

/// Waits up to `within` for process `pid` to end; whether it did.
#[cfg(test)]
pub(crate) async fn ends_within(pid: u32, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if has_ended(pid) {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_group_seen_empty_is_never_signalled_again() {
        let mut child = tokio::process::Command::new("true")
            .process_group(0)
            .spawn()
            .unwrap();
        let g = Group::of(child.id());
        let id = g.id.unwrap();
        child.wait().await.unwrap();
        // The leader reaped and nothing else in its group: its id is free for reuse.
        assert!(!g.alive());
        assert!(g.is_empty());
        assert!(g.target().is_none(), "it would still be signalled");
        assert!(!live().contains(&id), "kill_all would still signal it");
    }

    #[test]
    fn pid_1_and_0_are_never_a_group() {
        assert!(Group::of(Some(1)).id.is_none());
        assert!(Group::of(Some(0)).id.is_none());
        assert!(Group::of(None).id.is_none());
    }
}
