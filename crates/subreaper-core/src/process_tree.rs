//! The processes below this one, and signals that cannot hit a recycled pid.
//!
//! Used to find what a command left behind (descendants still running after it exited) and to
//! terminate them. A pid read from `/proc` can be reaped and reused before a signal is sent, so
//! signals go through a pidfd opened on the pid and checked against the process's start time:
//! once the pidfd is open it names that one process whatever happens to the number.

use std::collections::HashMap;
use std::io;

/// One process found under the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessEntry {
    pub pid: i32,
    pub ppid: i32,
    /// Start time in clock ticks since boot: with the pid, one process's identity.
    pub start_time: u64,
    pub comm: String,
    /// Still a zombie (exited, not yet reaped).
    pub zombie: bool,
}

/// Every process in this PID namespace's `/proc`.
#[cfg(target_os = "linux")]
pub fn processes() -> impl Iterator<Item = ProcessEntry> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(read_entry)
}

/// Every process whose chain of parents reaches `root` (not `root` itself), parents first.
#[cfg(target_os = "linux")]
pub fn descendants(root: i32) -> Vec<ProcessEntry> {
    let mut by_parent: HashMap<i32, Vec<ProcessEntry>> = HashMap::new();
    for p in processes() {
        by_parent.entry(p.ppid).or_default().push(p);
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        if let Some(children) = by_parent.remove(&parent) {
            for child in children {
                frontier.push(child.pid);
                out.push(child);
            }
        }
    }
    out
}

#[cfg(not(target_os = "linux"))]
pub fn descendants(_root: i32) -> Vec<ProcessEntry> {
    Vec::new()
}

#[cfg(target_os = "linux")]
fn read_entry(pid: i32) -> Option<ProcessEntry> {
    let stat = crate::procfs::read_stat(pid)?;
    Some(ProcessEntry {
        pid,
        ppid: stat.ppid,
        start_time: stat.start_time,
        comm: stat.comm,
        zombie: stat.state == 'Z',
    })
}

/// The start time of `pid`, if it exists.
pub fn start_time(pid: i32) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        read_entry(pid).map(|e| e.start_time)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Sends `signal` to `pid` only if it is still the process that started at `start_time`.
/// Returns `Ok(false)` when that process is gone (the pid is free or names another process).
#[cfg(target_os = "linux")]
pub fn signal_process(pid: i32, start_time: u64, signal: i32) -> io::Result<bool> {
    if pid <= 0 {
        return Ok(false);
    }
    let fd = match crate::pidfd::Pidfd::open(pid) {
        Ok(fd) => fd,
        Err(err) => {
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(false),
                // Kernels before 5.3, or pidfds refused by seccomp: check, then kill (a small
                // window remains).
                _ if crate::pidfd::refused(&err) => {
                    if read_entry(pid).map(|e| e.start_time) != Some(start_time) {
                        return Ok(false);
                    }
                    kill(pid, signal)
                }
                _ => Err(err),
            };
        }
    };
    // The pidfd now pins one process: if the start time still matches, it is the right one.
    if read_entry(pid).map(|e| e.start_time) != Some(start_time) {
        return Ok(false);
    }
    fd.send_signal(signal)
}

#[cfg(not(target_os = "linux"))]
pub fn signal_process(pid: i32, _start_time: u64, signal: i32) -> io::Result<bool> {
    kill(pid, signal)
}

fn kill(pid: i32, signal: i32) -> io::Result<bool> {
    let signal = if signal == 0 {
        None
    } else {
        Some(
            nix::sys::signal::Signal::try_from(signal)
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?,
        )
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Sends `signal` to process group `pgid` (a negative-pid kill).
pub fn signal_group(pgid: i32, signal: i32) -> io::Result<bool> {
    if pgid <= 1 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    kill(-pgid, signal)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn finds_grandchildren_and_signals_by_identity() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .spawn()
            .unwrap();
        let me = std::process::id() as i32;
        let sh = child.id() as i32;
        // The `sleep` under this test's `sh`: other tests of this binary, running beside it,
        // have `sleep` children of their own.
        let ours = |p: &&ProcessEntry| p.comm == "sleep" && p.ppid == sh;
        let mut tree = Vec::new();
        for _ in 0..200 {
            tree = descendants(me);
            if tree.iter().any(|p| ours(&p)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let sleeper = tree.iter().find(ours).expect("the grandchild sleep found");
        assert!(
            tree.iter().any(|p| p.pid == sh && p.ppid == me),
            "sh is not a child"
        );
        // A wrong start time is refused: the signal is not sent.
        assert!(!signal_process(sleeper.pid, sleeper.start_time + 1, libc::SIGKILL).unwrap());
        assert!(signal_process(sleeper.pid, sleeper.start_time, libc::SIGKILL).unwrap());
        let status = child.wait().unwrap();
        assert!(status.success() || status.code().is_some());
    }
}
