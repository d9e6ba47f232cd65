//! A pidfd names one process for as long as it is open, whatever happens to its pid number.
//!
//! The engine holds one for each child it knows of. It becomes readable when the child exits
//! (a zombie: its status can be read without reaping it) and reports a hang-up once the child
//! is reaped, by whoever reaped it. From Linux 6.15 the kernel also keeps the exit status for
//! an open pidfd after the reap, so an exit another waiter took first is still known exactly.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::exit::Termination;
use crate::kernel_support::{self, Feature};

/// Whether an error of `pidfd_open` means pidfds cannot be had here at all: `ENOSYS` (before
/// Linux 5.3) or `EPERM` (a seccomp profile that predates them).
pub fn refused(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM))
}

/// `struct pidfd_info` of `linux/pidfd.h` (Linux 6.13+), as far as the fields used here.
#[repr(C)]
#[derive(Default)]
struct PidfdInfo {
    mask: u64,
    cgroupid: u64,
    pid: u32,
    tgid: u32,
    ppid: u32,
    ruid: u32,
    rgid: u32,
    euid: u32,
    egid: u32,
    suid: u32,
    sgid: u32,
    fsuid: u32,
    fsgid: u32,
    exit_code: i32,
}

const PIDFD_INFO_EXIT: u64 = 1 << 3;
// _IOWR(PIDFS_IOCTL_MAGIC = 0xFF, 11, struct pidfd_info): the size is part of the number.
const PIDFD_GET_INFO: libc::c_ulong =
    (3 << 30) | ((std::mem::size_of::<PidfdInfo>() as libc::c_ulong) << 16) | (0xFF << 8) | 11;
const P_PIDFD: libc::idtype_t = 3;

/// An open pidfd.
#[derive(Debug)]
pub struct Pidfd(OwnedFd, AtomicI32);

/// Takes the pidfd out of the epoll set that watches it (see [`Pidfd::watched_by`]) before
/// it is closed. Closing alone removes it only once no other copy of the descriptor is left,
/// and a child forked meanwhile holds one until it execs (every `child_process` spawn forks
/// the whole process): the set would keep reporting a reaped child's hang-up, with nobody left
/// to handle it, until then; the exit watch spun on it (about 2,400 `epoll_wait` returns and
/// 0.6-0.9 ms of CPU per spawn, issue 34).
impl Drop for Pidfd {
    fn drop(&mut self) {
        let epoll = self.1.load(Ordering::Relaxed);
        if epoll >= 0 {
            // SAFETY: removes this still-open descriptor from an epoll set; an error (it was
            // taken out already, or the set is gone) leaves nothing to undo.
            unsafe {
                libc::epoll_ctl(
                    epoll,
                    libc::EPOLL_CTL_DEL,
                    self.0.as_raw_fd(),
                    std::ptr::null_mut(),
                )
            };
        }
    }
}

impl Pidfd {
    /// Opens a pidfd for `pid` (a live process or a zombie). Fails with `ESRCH` once it is
    /// reaped, `ENOSYS` before Linux 5.3, `EPERM` where a seccomp profile refuses pidfds.
    pub fn open(pid: i32) -> io::Result<Pidfd> {
        if kernel_support::hidden(Feature::Pidfd) {
            kernel_support::note_pidfds_refused();
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1; no memory is
        // passed. The fd is close-on-exec by default.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            if refused(&err) {
                kernel_support::note_pidfds_refused();
            }
            return Err(err);
        }
        // SAFETY: the syscall returned a new fd that nothing else owns.
        Ok(Pidfd(
            unsafe { OwnedFd::from_raw_fd(fd as RawFd) },
            AtomicI32::new(-1),
        ))
    }

    /// The exit of a child that is a zombie now, without reaping it. `None` while it runs, or
    /// once it has been reaped.
    pub fn peek_exit(&self) -> Option<Termination> {
        peek_siginfo(P_PIDFD, self.0.as_raw_fd() as libc::id_t).map(|(_, t)| t)
    }

    /// Whether its process has been reaped (by anyone): `None` where the kernel would not say.
    pub fn reaped(&self) -> Option<bool> {
        match waitid_nowait(P_PIDFD, self.0.as_raw_fd() as libc::id_t, false) {
            Ok(WaitidPeek::NoChildren) => Some(true),
            Ok(_) => Some(false),
            Err(_) => None,
        }
    }

    /// The exit of a process that has already been reaped (by anyone), if the kernel kept it
    /// (Linux 6.15+).
    pub fn exit_after_reap(&self) -> Option<Termination> {
        if kernel_support::hidden(Feature::PidfdExit) {
            return None;
        }
        let mut info = PidfdInfo {
            mask: PIDFD_INFO_EXIT,
            ..PidfdInfo::default()
        };
        // SAFETY: PIDFD_GET_INFO fills a `struct pidfd_info` whose size is encoded in the
        // request number; `info` is exactly that size and lives across the call.
        let rc = unsafe { libc::ioctl(self.0.as_raw_fd(), PIDFD_GET_INFO, &mut info) };
        if rc != 0 || info.mask & PIDFD_INFO_EXIT == 0 {
            return None;
        }
        Termination::from_wait_status(info.exit_code)
    }

    /// Sends `signal` to exactly this process. `Ok(false)` once it has exited.
    pub fn send_signal(&self, signal: i32) -> io::Result<bool> {
        // SAFETY: pidfd_send_signal takes the fd, a signal number, an optional siginfo (null
        // here: the kernel fills it as for kill) and flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ESRCH) => Ok(false),
            _ => Err(err),
        }
    }

    /// Records the epoll set it was added to (or -1: none), to be taken out of it on drop.
    pub(crate) fn watched_by(&self, epoll: RawFd) {
        self.1.store(epoll, Ordering::Relaxed);
    }

    pub fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// `waitid(idtype, id, WEXITED | WNOWAIT | WNOHANG)`: the pid and exit of a zombie child,
/// left in place. `None` when nothing matching has exited (or it is not a child).
pub(crate) fn peek_siginfo(idtype: libc::idtype_t, id: libc::id_t) -> Option<(i32, Termination)> {
    match waitid_nowait(idtype, id, false) {
        Ok(WaitidPeek::Exited(pid, t)) => Some((pid, t)),
        _ => None,
    }
}

/// What `waitid(WNOWAIT)` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitidPeek {
    Exited(i32, Termination),
    NoneExited,
    NoChildren,
}

#[cfg(target_os = "linux")]
const WAIT_ALL_KINDS: libc::c_int = libc::__WALL;
#[cfg(not(target_os = "linux"))]
const WAIT_ALL_KINDS: libc::c_int = 0;

/// `waitid(idtype, id, WEXITED | WNOWAIT [| WNOHANG])`. nix's `waitid` decodes the status but
/// drops nothing we need; it is used through libc here only because it has no `P_PIDFD` on
/// every target this crate builds for.
pub(crate) fn waitid_nowait(
    idtype: libc::idtype_t,
    id: libc::id_t,
    block: bool,
) -> io::Result<WaitidPeek> {
    loop {
        // SAFETY: siginfo_t is plain data; all-zero is a valid value for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut flags = libc::WEXITED | libc::WNOWAIT | WAIT_ALL_KINDS;
        if !block {
            flags |= libc::WNOHANG;
        }
        // SAFETY: `info` is a valid siginfo_t for the kernel to fill.
        let rc = unsafe { crate::syscall::waitid(idtype, id, &mut info, flags) };
        if rc == -1 {
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ECHILD) => return Ok(WaitidPeek::NoChildren),
                _ => return Err(err),
            }
        }
        return Ok(match decode_siginfo(&info) {
            Some((pid, t)) => WaitidPeek::Exited(pid, t),
            None => WaitidPeek::NoneExited,
        });
    }
}

fn decode_siginfo(info: &libc::siginfo_t) -> Option<(i32, Termination)> {
    #[cfg(target_os = "linux")]
    // SAFETY: waitid filled the SIGCHLD member of the siginfo union (si_pid is 0 when nothing
    // had exited, checked below).
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn sees_the_exit_without_reaping_then_after_the_reap() {
        let mut child = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
        let pid = child.id() as i32;
        let fd = match Pidfd::open(pid) {
            Ok(fd) => fd,
            Err(err) if refused(&err) => {
                // No pidfds here (a seccomp profile, or a kernel before 5.3): that is what
                // the refusal test below checks.
                child.wait().unwrap();
                assert!(kernel_support::pidfds_refused());
                return;
            }
            Err(err) => panic!("pidfd_open: {err}"),
        };
        let mut seen = None;
        for _ in 0..500 {
            seen = fd.peek_exit();
            if seen.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert_eq!(seen, Some(Termination::Exited(7)));
        // Still a zombie: the peek did not reap it.
        assert_eq!(fd.peek_exit(), Some(Termination::Exited(7)));
        assert_eq!(child.wait().unwrap().code(), Some(7));
        assert_eq!(fd.peek_exit(), None);
        // Linux 6.15+ keeps the status for the open pidfd.
        if let Some(t) = fd.exit_after_reap() {
            assert_eq!(t, Termination::Exited(7));
        }
        assert!(!fd.send_signal(0).unwrap());
    }
}
