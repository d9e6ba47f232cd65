//! The kernel calls the engine makes, behind a small trait, so that the reaping and ownership
//! logic can be unit-tested with a scripted source and integration-tested against the kernel.

use std::io;

use crate::exit::{Rusage, Termination};
use crate::pidfd::{self, Pidfd, WaitidPeek};
use crate::procfs;
use crate::taskstats;

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
    /// Resource usage as far as `/proc` keeps it (no maximum RSS, no context switches); `None`
    /// where nothing was read.
    pub rusage: Option<Rusage>,
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
    /// The exit of `pid` if it is a zombie child now, without reaping it.
    fn peek_pid(&self, pid: i32) -> Option<Termination>;
    /// What `/proc` says about `pid` while it exists (one read).
    fn inspect(&self, pid: i32) -> ProcInfo;
    /// The name and start time of `pid`, an exited child about to be reaped, by the cheapest
    /// means there is, and whether the reading also holds its whole resource usage (a `/proc`
    /// one does; taskstats gives the zombie's own CPU times alone, and the reap the rest).
    fn identify_exited(&self, pid: i32) -> (ProcInfo, bool) {
        (self.inspect(pid), true)
    }
    /// Opens what the source keeps open, before the engine's threads start.
    fn prepare(&self) {}
    /// Whether [`WaitSource::identify_exited`] reads `/proc` (then reading zombies ahead of the
    /// drain on a second thread pays).
    fn identifies_by_proc(&self) -> bool {
        true
    }
    /// The command name of `pid` alone, for a child whose start time is already known.
    fn comm(&self, pid: i32) -> Option<String> {
        self.inspect(pid).comm
    }
    /// Every child, by the thread that forked it (the main thread's list also holds adopted
    /// orphans), leaving out thread `except`'s list (the main thread's can hold every zombie of
    /// a busy init, and the kernel's reading of it grows with the square of its length).
    /// `None` where the kernel keeps no per-thread lists.
    fn children_by_thread(&self, _except: Option<i32>) -> Option<Vec<(i32, Vec<i32>)>> {
        None
    }
    /// The children of thread `tid` (`None` where the kernel keeps no per-thread lists).
    fn thread_children(&self, _tid: i32) -> Option<Vec<i32>> {
        None
    }
    /// Like [`WaitSource::thread_children`], from one short read: `None` also for a list too
    /// long for it.
    fn short_thread_children(&self, _tid: i32) -> Option<Vec<i32>> {
        None
    }
    /// What [`WaitSource::inspect`] reads, for a child that is a zombie now (`None` for a
    /// live one, whose name may still change).
    fn inspect_zombie(&self, _pid: i32) -> Option<ProcInfo> {
        None
    }
    /// Every child pid, where there are no per-thread lists (a walk of `/proc`).
    fn all_children(&self) -> Vec<i32> {
        Vec::new()
    }
    /// Whether orphans come to this process (PID 1 or subreaper).
    fn adopts_orphans(&self) -> bool {
        true
    }
    /// Whether thread `tid` of this process is alive.
    fn thread_alive(&self, _tid: i32) -> bool {
        true
    }
    /// The thread that adopted orphans and ended threads' children are listed under.
    fn main_thread(&self) -> i32 {
        procfs::main_thread()
    }
    /// The current start-time tick.
    fn now_ticks(&self) -> u64 {
        procfs::now_ticks()
    }
    /// A pidfd that watches `pid`'s exit and reap; `None` where there are none (a scripted
    /// source, kernels before 5.3).
    fn watch(&self, _pid: i32) -> Option<Pidfd> {
        None
    }
}

/// The kernel's wait calls: `waitid(WNOWAIT)` to peek, `wait4(pid)` to reap one pid.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemWait;

impl WaitSource for SystemWait {
    fn peek(&self, block: bool) -> io::Result<Peek> {
        Ok(match pidfd::waitid_nowait(libc::P_ALL, 0, block)? {
            WaitidPeek::Exited(pid, termination) => Peek::Exited { pid, termination },
            WaitidPeek::NoneExited => Peek::NoneExited,
            WaitidPeek::NoChildren => Peek::NoChildren,
        })
    }

    fn reap(&self, pid: i32) -> io::Result<Option<(Termination, Rusage)>> {
        loop {
            let mut raw = 0;
            // SAFETY: rusage is plain data; zeroed is valid for wait4 to overwrite.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // nix's wait4 has no rusage out-parameter: libc it is.
            // SAFETY: `raw` and `ru` are valid for the kernel to fill.
            let rc = unsafe {
                crate::syscall::wait4(pid, &mut raw, libc::WNOHANG | libc::__WALL, &mut ru)
            };
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
        match pidfd::waitid_nowait(libc::P_PID, pid as libc::id_t, false) {
            Ok(WaitidPeek::Exited(..)) => ChildState::Exited,
            Ok(WaitidPeek::NoneExited) => ChildState::Running,
            Ok(WaitidPeek::NoChildren) | Err(_) => ChildState::NotAChild,
        }
    }

    fn peek_pid(&self, pid: i32) -> Option<Termination> {
        pidfd::peek_siginfo(libc::P_PID, pid as libc::id_t).map(|(_, t)| t)
    }

    fn inspect(&self, pid: i32) -> ProcInfo {
        procfs::read_stat(pid).map(proc_info).unwrap_or_default()
    }

    fn comm(&self, pid: i32) -> Option<String> {
        procfs::read_comm(pid)
    }

    fn prepare(&self) {
        taskstats::open();
        procfs::keep_main_children_open();
    }

    fn identifies_by_proc(&self) -> bool {
        !taskstats::serves()
    }

    fn identify_exited(&self, pid: i32) -> (ProcInfo, bool) {
        match taskstats::identify(pid) {
            Some(info) => (info, false),
            None => (self.inspect(pid), true),
        }
    }

    fn inspect_zombie(&self, pid: i32) -> Option<ProcInfo> {
        procfs::read_stat(pid)
            .filter(|stat| stat.state == 'Z')
            .map(proc_info)
    }

    fn thread_children(&self, tid: i32) -> Option<Vec<i32>> {
        procfs::thread_children(tid)
    }

    fn short_thread_children(&self, tid: i32) -> Option<Vec<i32>> {
        procfs::short_thread_children(tid)
    }

    fn children_by_thread(&self, except: Option<i32>) -> Option<Vec<(i32, Vec<i32>)>> {
        if !procfs::has_children_lists() {
            return None;
        }
        Some(
            procfs::threads()
                .into_iter()
                .filter(|tid| Some(*tid) != except)
                .filter_map(|tid| Some((tid, procfs::thread_children(tid)?)))
                .collect(),
        )
    }

    fn all_children(&self) -> Vec<i32> {
        let me = std::process::id() as i32;
        crate::process_tree::processes()
            .filter(|p| p.ppid == me)
            .map(|p| p.pid)
            .collect()
    }

    fn adopts_orphans(&self) -> bool {
        crate::process_role::adopts_orphans()
    }

    fn thread_alive(&self, tid: i32) -> bool {
        procfs::thread_alive(tid)
    }

    fn watch(&self, pid: i32) -> Option<Pidfd> {
        Pidfd::open(pid).ok()
    }
}

/// What the engine keeps of a `/proc/<pid>/stat` reading.
fn proc_info(stat: procfs::Stat) -> ProcInfo {
    ProcInfo {
        rusage: Some(Rusage {
            user_cpu_us: procfs::ticks_to_us(stat.utime),
            system_cpu_us: procfs::ticks_to_us(stat.stime),
            max_rss_kib: None,
            minor_faults: stat.minflt,
            major_faults: stat.majflt,
            ..Rusage::default()
        }),
        comm: Some(stat.comm),
        start_time: Some(stat.start_time),
    }
}
