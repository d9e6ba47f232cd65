//! The wait mechanism behind a small trait, so that the reaping and ownership logic can be
//! unit-tested with a scripted source and integration-tested against the kernel.

use std::io;

use crate::exit::{Rusage, Termination};

/// What a peek at the process's children found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// This child has exited and is still a zombie: nobody has reaped it yet.
    Exited { pid: i32, termination: Termination },
    /// There are children, none of them has exited (only returned by a non-blocking peek).
    NoneExited,
    /// The process has no children at all.
    NoChildren,
}

/// Whether a pid is a child of this process, and in what state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    Running,
    Exited,
    NotAChild,
}

/// What can be read about a child while it is still in the process table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcInfo {
    pub comm: Option<String>,
    /// Start time in clock ticks since boot: with the pid, it names one process even after the
    /// pid is recycled.
    pub start_time: Option<u64>,
    /// Resource usage as far as `/proc` keeps it (no maximum RSS).
    pub rusage: Rusage,
}

/// The operations the engine needs from the operating system.
pub trait WaitSource: Send + Sync + 'static {
    /// Reports an exited child without reaping it. With `block`, sleeps until one exists.
    fn peek(&self, block: bool) -> io::Result<Peek>;
    /// Reaps exactly this pid if it has exited. `Ok(None)` when it has not exited or is no
    /// longer ours to reap (another waiter took it first).
    fn reap(&self, pid: i32) -> io::Result<Option<(Termination, Rusage)>>;
    /// Whether `pid` is a child of this process.
    fn child_state(&self, pid: i32) -> ChildState;
    /// Every exited, unreaped child: used to look past a zombie that belongs to another waiter
    /// (a peek always reports the same first zombie until someone reaps it).
    fn exited_children(&self) -> Vec<(i32, Termination)>;
    /// What `/proc` says about `pid` (command name, start time, resource usage so far).
    fn inspect(&self, pid: i32) -> ProcInfo;
    /// Command name and start time only, for a child the engine is about to reap itself
    /// (`wait4` then gives the resource usage): one read instead of two.
    fn identify(&self, pid: i32) -> ProcInfo {
        self.inspect(pid)
    }
}

/// The kernel's wait calls: `waitid(WNOWAIT)` to peek, `wait4(pid)` to reap one pid.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWait;

#[cfg(target_os = "linux")]
const WAIT_ALL_KINDS: libc::c_int = libc::__WALL;
#[cfg(not(target_os = "linux"))]
const WAIT_ALL_KINDS: libc::c_int = 0;

fn decode_siginfo(info: &libc::siginfo_t) -> Option<(i32, Termination)> {
    #[cfg(target_os = "linux")]
    let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    #[cfg(not(target_os = "linux"))]
    let (pid, status) = (info.si_pid, info.si_status);
    if pid == 0 {
        return None;
    }
    let termination = match info.si_code {
        libc::CLD_EXITED => Termination::Exited(status & 0xff),
        libc::CLD_KILLED => Termination::Signaled {
            signal: status,
            core_dumped: false,
        },
        libc::CLD_DUMPED => Termination::Signaled {
            signal: status,
            core_dumped: true,
        },
        _ => return None,
    };
    Some((pid, termination))
}

fn waitid_nowait(idtype: libc::idtype_t, id: libc::id_t, hang: bool) -> io::Result<Peek> {
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut flags = libc::WEXITED | libc::WNOWAIT | WAIT_ALL_KINDS;
        if !hang {
            flags |= libc::WNOHANG;
        }
        let rc = unsafe { libc::waitid(idtype, id, &mut info, flags) };
        if rc == -1 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(Peek::NoChildren),
                _ => return Err(err),
            }
        }
        return Ok(match decode_siginfo(&info) {
            Some((pid, termination)) => Peek::Exited { pid, termination },
            None => Peek::NoneExited,
        });
    }
}

impl WaitSource for SystemWait {
    fn peek(&self, block: bool) -> io::Result<Peek> {
        waitid_nowait(libc::P_ALL, 0, block)
    }

    fn reap(&self, pid: i32) -> io::Result<Option<(Termination, Rusage)>> {
        loop {
            let mut raw = 0;
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            let rc = unsafe { libc::wait4(pid, &mut raw, libc::WNOHANG | WAIT_ALL_KINDS, &mut ru) };
            if rc == -1 {
                let err = io::Error::last_os_error();
                match err.raw_os_error() {
                    Some(libc::EINTR) => continue,
                    Some(libc::ECHILD) => return Ok(None),
                    _ => return Err(err),
                }
            }
            if rc == 0 {
                return Ok(None);
            }
            return Ok(Termination::from_wait_status(raw).map(|t| (t, Rusage::from_libc(&ru))));
        }
    }

    fn child_state(&self, pid: i32) -> ChildState {
        if pid <= 0 {
            return ChildState::NotAChild;
        }
        match waitid_nowait(libc::P_PID, pid as libc::id_t, false) {
            Ok(Peek::Exited { .. }) => ChildState::Exited,
            Ok(Peek::NoneExited) => ChildState::Running,
            Ok(Peek::NoChildren) | Err(_) => ChildState::NotAChild,
        }
    }

    fn exited_children(&self) -> Vec<(i32, Termination)> {
        zombie_child_candidates()
            .into_iter()
            .filter_map(
                |pid| match waitid_nowait(libc::P_PID, pid as libc::id_t, false) {
                    Ok(Peek::Exited { pid, termination }) => Some((pid, termination)),
                    _ => None,
                },
            )
            .collect()
    }

    fn inspect(&self, pid: i32) -> ProcInfo {
        proc_info(pid, true)
    }

    fn identify(&self, pid: i32) -> ProcInfo {
        proc_info(pid, false)
    }
}

/// Pids that may be zombie children of this process.
#[cfg(target_os = "linux")]
fn zombie_child_candidates() -> Vec<i32> {
    let me = std::process::id() as i32;
    // /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN, which many kernels lack:
    // read the zombies' parent field instead.
    crate::process_tree::processes()
        .filter(|p| p.zombie && p.ppid == me)
        .map(|p| p.pid)
        .collect()
}

#[cfg(not(target_os = "linux"))]
fn zombie_child_candidates() -> Vec<i32> {
    Vec::new()
}

/// The fields of `/proc/<pid>/stat` this crate uses (one parser for the engine and the
/// process tree).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct Stat {
    pub(crate) comm: String,
    pub(crate) state: char,
    pub(crate) ppid: i32,
    minflt: u64,
    majflt: u64,
    utime: u64,
    stime: u64,
    pub(crate) start_time: u64,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // `rest[0]` is field 3 (state) of proc(5).
    let field = |n: usize| rest.get(n - 3).and_then(|s| s.parse::<u64>().ok());
    Some(Stat {
        comm,
        state: rest.first()?.chars().next()?,
        ppid: rest.get(1)?.parse().ok()?,
        // A zombie's own counts plus those of the children it reaped, as wait4 reports them.
        minflt: field(10)? + field(11)?,
        majflt: field(12)? + field(13)?,
        utime: field(14)? + field(16)?,
        stime: field(15)? + field(17)?,
        start_time: field(22)?,
    })
}

#[cfg(target_os = "linux")]
pub(crate) fn read_stat(pid: i32) -> Option<Stat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

#[cfg(target_os = "linux")]
fn proc_info(pid: i32, with_context_switches: bool) -> ProcInfo {
    let Some(stat) = read_stat(pid) else {
        return ProcInfo::default();
    };
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as u64,
        _ => 100,
    };
    let mut rusage = Rusage {
        user_cpu_us: stat.utime * 1_000_000 / ticks,
        system_cpu_us: stat.stime * 1_000_000 / ticks,
        max_rss_kib: None,
        minor_faults: stat.minflt,
        major_faults: stat.majflt,
        ..Rusage::default()
    };
    let status = if with_context_switches {
        std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
    } else {
        None
    };
    if let Some(status) = status {
        for line in status.lines() {
            let mut parts = line.split(':');
            let (Some(key), Some(value)) = (parts.next(), parts.next()) else {
                continue;
            };
            let value = value.trim().parse().unwrap_or(0);
            match key {
                "voluntary_ctxt_switches" => rusage.voluntary_context_switches = value,
                "nonvoluntary_ctxt_switches" => rusage.involuntary_context_switches = value,
                _ => {}
            }
        }
    }
    ProcInfo {
        comm: Some(stat.comm),
        start_time: Some(stat.start_time),
        rusage,
    }
}

/// Converts a `/proc` start time (clock ticks since boot) to wall-clock time.
#[cfg(target_os = "linux")]
pub fn started_at(start_ticks: u64) -> Option<std::time::SystemTime> {
    let ticks = match unsafe { libc::sysconf(libc::_SC_CLK_TCK) } {
        t if t > 0 => t as u64,
        _ => return None,
    };
    let mut now: libc::timespec = unsafe { std::mem::zeroed() };
    if unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) } != 0 {
        return None;
    }
    let since_boot = std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    let started =
        std::time::Duration::from_nanos(start_ticks.saturating_mul(1_000_000_000 / ticks));
    let age = since_boot.checked_sub(started)?;
    std::time::SystemTime::now().checked_sub(age)
}

#[cfg(not(target_os = "linux"))]
pub fn started_at(_start_ticks: u64) -> Option<std::time::SystemTime> {
    None
}

#[cfg(not(target_os = "linux"))]
fn proc_info(_pid: i32, _with_context_switches: bool) -> ProcInfo {
    ProcInfo::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "42 (a) b (c)) Z 7 1 1 0 -1 4227148 10 1 2 3 4 5 6 7 20 0 1 0 999 0 0";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.comm, "a) b (c)");
        assert_eq!(stat.state, 'Z');
        assert_eq!(stat.ppid, 7);
        assert_eq!(stat.minflt, 11);
        assert_eq!(stat.majflt, 5);
        assert_eq!(stat.utime, 4 + 6);
        assert_eq!(stat.stime, 5 + 7);
        assert_eq!(stat.start_time, 999);
    }
}
