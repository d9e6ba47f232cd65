//! Reaping: `wait4` until no exited child is left, and what each exit records.

use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::time::TimeSpec;
use nix::time::{clock_gettime, ClockId};
use subreaper_core::exit::{Rusage, Termination};

/// One reaped process.
#[derive(Debug, Clone)]
pub struct ExitRecord {
    pub pid: i32,
    pub termination: Termination,
    pub rusage: Rusage,
    /// From `/proc/<pid>/stat` while it was a zombie (when `/proc` is this namespace's).
    pub comm: Option<String>,
    /// Start time, clock ticks since boot (with the pid, names one process).
    pub start_ticks: Option<u64>,
    /// When it was reaped, ms since the Unix epoch.
    pub exit_ms: i64,
    /// How long it lived, ms (from its start time).
    pub lifetime_ms: Option<i64>,
}

impl ExitRecord {
    pub fn start_ms(&self) -> Option<i64> {
        self.lifetime_ms.map(|l| self.exit_ms - l)
    }
}

/// The two fields of `/proc/<pid>/stat` the report uses: the name and the start time.
pub fn read_stat(pid: i32) -> Option<(String, u64)> {
    subreaper_core::procfs::read_stat(pid).map(|s| (s.comm, s.start_time))
}

fn ms(ts: TimeSpec) -> i64 {
    ts.tv_sec() * 1000 + ts.tv_nsec() / 1_000_000
}

/// `wait4(pid, WNOHANG)`: nix has no wrapper that returns the resource usage. Without
/// `with_usage` the kernel is spared copying it out (the fast drain when no report is wanted).
fn wait4(pid: i32, with_usage: bool) -> Result<Option<(i32, i32, libc::rusage)>, Errno> {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let usage: *mut libc::rusage = if with_usage {
        &mut ru
    } else {
        std::ptr::null_mut()
    };
    loop {
        // SAFETY: status is valid for writes, and usage is null or points at ru, for the call.
        let got = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, usage) };
        match got {
            0 => return Ok(None),
            -1 if Errno::last() == Errno::EINTR => continue,
            -1 => return Err(Errno::last()),
            pid => return Ok(Some((pid, status, ru))),
        }
    }
}

enum Peeked {
    Exited(i32),
    Running,
    NoChildren,
}

/// The pid of a child that has exited, left unreaped (`waitid(WNOWAIT)`). nix's `waitid`
/// decodes the status into its `Signal`, which has no real-time signals: libc here.
fn peek() -> Peeked {
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value of this plain C struct.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: info is valid for writes for the duration of the call.
        let rc = unsafe {
            libc::waitid(
                libc::P_ALL,
                0,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == -1 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Peeked::NoChildren;
        }
        // SAFETY: waitid filled in the child fields (si_pid is 0 when no child has exited).
        let pid = unsafe { info.si_pid() };
        return if pid == 0 {
            Peeked::Running
        } else {
            Peeked::Exited(pid)
        };
    }
}

/// Reaps every child that has exited.
pub struct Reaper {
    /// Read each zombie's name, start time and resource usage (for the report).
    pub details: bool,
    /// `/proc` is this namespace's: names and start times can be read there.
    proc: bool,
    ticks: u64,
}

/// What one drain found.
pub enum Drained {
    /// Children remain (running or stopped).
    ChildrenLeft,
    /// This process has no child at all any more.
    NoChildren,
}

impl Reaper {
    pub fn new(details: bool, proc: bool) -> Reaper {
        Reaper {
            details,
            proc,
            ticks: subreaper_core::procfs::ticks_per_second(),
        }
    }

    /// Reaps until no exited child is left, handing each exit to `on_exit`.
    pub fn drain(&self, mut on_exit: impl FnMut(ExitRecord)) -> Drained {
        loop {
            let mut details = None;
            let target = if self.details {
                // Peek first: the zombie's /proc entry goes away when it is reaped.
                match peek() {
                    Peeked::Exited(pid) => {
                        details = if self.proc { read_stat(pid) } else { None };
                        pid
                    }
                    Peeked::Running => return Drained::ChildrenLeft,
                    Peeked::NoChildren => return Drained::NoChildren,
                }
            } else {
                -1
            };
            match wait4(target, self.details) {
                Ok(Some((pid, raw, ru))) => {
                    let Some(termination) = Termination::from_wait_status(raw) else {
                        continue;
                    };
                    on_exit(self.record(pid, termination, &ru, details));
                }
                Ok(None) => return Drained::ChildrenLeft,
                Err(_) => return Drained::NoChildren,
            }
        }
    }

    fn record(
        &self,
        pid: i32,
        termination: Termination,
        ru: &libc::rusage,
        details: Option<(String, u64)>,
    ) -> ExitRecord {
        let exit_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let (comm, start_ticks) = match details {
            Some((c, s)) => (Some(c), Some(s)),
            None => (None, None),
        };
        // /proc's start time counts from boot (CLOCK_BOOTTIME).
        let lifetime_ms = start_ticks.and_then(|start| {
            let now = ms(clock_gettime(ClockId::CLOCK_BOOTTIME).ok()?);
            Some((now - (start * 1000 / self.ticks) as i64).max(0))
        });
        ExitRecord {
            pid,
            termination,
            rusage: Rusage::from_libc(ru),
            comm,
            start_ticks,
            exit_ms,
            lifetime_ms,
        }
    }
}
