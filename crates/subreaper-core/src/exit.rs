//! The exit record: what one reaped (or announced) child left behind.

use std::time::SystemTime;

/// Added to a signal number to form `status` for a child killed by a signal,
/// as shells, containerd and tini do.
pub const EXIT_SIGNAL_OFFSET: i32 = 128;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// It called `exit` (or returned from `main`) with this code (0–255).
    Exited(i32),
    /// A signal killed it.
    Signaled { signal: i32, core_dumped: bool },
    /// It exited, but its status was lost: the waiter that owned it reaped it and went away
    /// before reporting (a Node worker terminated just as its child exited).
    Unknown,
}

impl Termination {
    /// Decodes a raw `wait4` status. Stops and continues are not exits: `None`.
    pub fn from_wait_status(raw: i32) -> Option<Termination> {
        if libc::WIFEXITED(raw) {
            Some(Termination::Exited(libc::WEXITSTATUS(raw)))
        } else if libc::WIFSIGNALED(raw) {
            Some(Termination::Signaled {
                signal: libc::WTERMSIG(raw),
                core_dumped: libc::WCOREDUMP(raw),
            })
        } else {
            None
        }
    }

    /// The status as containerd's reaper computes it: the exit code, or 128 + signal
    /// (-1 when unknown).
    pub fn status(self) -> i32 {
        match self {
            Termination::Exited(code) => code,
            Termination::Signaled { signal, .. } => EXIT_SIGNAL_OFFSET + signal,
            Termination::Unknown => -1,
        }
    }

    /// The raw wait status this termination is encoded as by the kernel, for callers that
    /// want to decode it themselves (`WIFEXITED` and friends); -1 when unknown.
    pub fn raw_wait_status(self) -> i32 {
        match self {
            Termination::Exited(code) => (code & 0xff) << 8,
            Termination::Signaled {
                signal,
                core_dumped,
            } => (signal & 0x7f) | if core_dumped { 0x80 } else { 0 },
            Termination::Unknown => -1,
        }
    }

    pub fn code(self) -> Option<i32> {
        match self {
            Termination::Exited(code) => Some(code),
            Termination::Signaled { .. } | Termination::Unknown => None,
        }
    }

    pub fn signal(self) -> Option<i32> {
        match self {
            Termination::Exited(_) | Termination::Unknown => None,
            Termination::Signaled { signal, .. } => Some(signal),
        }
    }

    pub fn core_dumped(self) -> bool {
        matches!(
            self,
            Termination::Signaled {
                core_dumped: true,
                ..
            }
        )
    }
}

/// Resource usage of a finished child.
///
/// When the engine reaps the child itself these come from `wait4`. For a zombie it announces
/// and leaves to another waiter they are read from `/proc/<pid>/stat`, which keeps no maximum
/// RSS and no context switches: those are then `None`. (A child whose owner reaps it before
/// the engine looks, as libuv does, has no usage at all: [`Exit::rusage`] is `None`.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rusage {
    pub user_cpu_us: u64,
    pub system_cpu_us: u64,
    pub max_rss_kib: Option<u64>,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_context_switches: Option<u64>,
    pub involuntary_context_switches: Option<u64>,
}

impl Rusage {
    /// The figures of a `wait4` rusage.
    pub fn from_libc(ru: &libc::rusage) -> Rusage {
        let us = |tv: libc::timeval| (tv.tv_sec as u64) * 1_000_000 + tv.tv_usec as u64;
        // Linux reports ru_maxrss in KiB, macOS in bytes.
        let max_rss_kib = if cfg!(target_os = "macos") {
            ru.ru_maxrss as u64 / 1024
        } else {
            ru.ru_maxrss as u64
        };
        Rusage {
            user_cpu_us: us(ru.ru_utime),
            system_cpu_us: us(ru.ru_stime),
            max_rss_kib: Some(max_rss_kib),
            minor_faults: ru.ru_minflt as u64,
            major_faults: ru.ru_majflt as u64,
            voluntary_context_switches: Some(ru.ru_nvcsw as u64),
            involuntary_context_switches: Some(ru.ru_nivcsw as u64),
        }
    }
}

/// Who took the child out of the process table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReapedBy {
    /// The engine's own `wait4`.
    Reaper,
    /// The waiter that owns the pid (for example libuv, for Node's `child_process`), or another
    /// waiter that won the race for an unowned pid. The engine saw the exit but did not reap it.
    Other,
}

/// One exit, as broadcast to every subscriber and as returned by `wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub pid: i32,
    pub termination: Termination,
    /// Wall-clock time at which the engine saw the exit.
    pub timestamp: SystemTime,
    /// Wall-clock time at which the process started (Linux, from `/proc`; 10 ms resolution).
    pub started_at: Option<SystemTime>,
    /// Start time in clock ticks since boot, as `/proc/<pid>/stat` gives it: with the pid, the
    /// identity of this one process even after the pid is reused.
    pub start_time: Option<u64>,
    /// `None` where nobody could read it: a child its owner reaped (the kernel reports usage
    /// only to the waiter that reaps) and whose zombie the engine did not read.
    pub rusage: Option<Rusage>,
    /// The short command name (`/proc/<pid>/comm`), read while the child was still a zombie.
    pub comm: Option<String>,
    pub reaped_by: ReapedBy,
    /// Position in the engine's reap order, starting at 1. Subscribers see increasing values.
    pub seq: u64,
}

impl Exit {
    /// The exit code, or 128 + signal number: containerd's `Exit.Status`.
    pub fn status(&self) -> i32 {
        self.termination.status()
    }

    pub fn raw_wait_status(&self) -> i32 {
        self.termination.raw_wait_status()
    }
}

#[cfg(test)]
impl Exit {
    /// A plain exit (code 0, reaped by the engine) for unit tests of what carries exits.
    pub(crate) fn for_test(pid: i32, seq: u64) -> std::sync::Arc<Exit> {
        std::sync::Arc::new(Exit {
            pid,
            termination: Termination::Exited(0),
            timestamp: SystemTime::now(),
            started_at: None,
            start_time: None,
            rusage: None,
            comm: None,
            reaped_by: ReapedBy::Reaper,
            seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_status_round_trips() {
        for code in 0..=255 {
            let t = Termination::Exited(code);
            assert_eq!(Termination::from_wait_status(t.raw_wait_status()), Some(t));
            assert_eq!(t.status(), code);
        }
        for signal in 1..=31 {
            for core_dumped in [false, true] {
                let t = Termination::Signaled {
                    signal,
                    core_dumped,
                };
                assert_eq!(Termination::from_wait_status(t.raw_wait_status()), Some(t));
                assert_eq!(t.status(), 128 + signal);
            }
        }
    }

    #[test]
    fn stops_are_not_exits() {
        // WIFSTOPPED: low byte 0x7f, signal in the next byte.
        assert_eq!(Termination::from_wait_status(0x137f), None);
        // WIFCONTINUED on Linux.
        #[cfg(target_os = "linux")]
        assert_eq!(Termination::from_wait_status(0xffff), None);
    }
}
