//! Helpers shared by the integration tests that run real processes (each tests/*.rs file is
//! its own process, sharing that process's `Reaper::global()` between its tests).
#![allow(dead_code)]

use std::collections::HashSet;
use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use subreaper_core::{Exit, RecvError, Subscription};

extern "C" {
    static environ: *const *mut c_char;
}

/// A pipe whose read end children inherit as stdin: they block reading it until the test
/// closes the write end, so that many of them can be made to exit at the same moment.
pub struct Gate {
    read: OwnedFd,
    write: Option<OwnedFd>,
}

impl Gate {
    pub fn new() -> Gate {
        let mut fds = [0; 2];
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
        unsafe {
            Gate {
                read: OwnedFd::from_raw_fd(fds[0]),
                write: Some(OwnedFd::from_raw_fd(fds[1])),
            }
        }
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    /// Closes the write end: every child blocked on the read end sees EOF.
    pub fn release(&mut self) {
        self.write.take();
    }
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new()
    }
}

/// Spawns `argv` with `posix_spawnp` (vfork-style: fast here, unlike fork), stdin from
/// `stdin` (or /dev/null) and stdout to /dev/null. Returns the pid.
pub fn spawn(argv: &[&str], stdin: Option<RawFd>) -> i32 {
    let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut ptrs: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr() as *mut c_char).collect();
    ptrs.push(std::ptr::null_mut());
    let devnull = c"/dev/null";
    unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        assert_eq!(libc::posix_spawn_file_actions_init(&mut actions), 0);
        match stdin {
            Some(fd) => assert_eq!(
                libc::posix_spawn_file_actions_adddup2(&mut actions, fd, 0),
                0
            ),
            None => assert_eq!(
                libc::posix_spawn_file_actions_addopen(
                    &mut actions,
                    0,
                    devnull.as_ptr(),
                    libc::O_RDONLY,
                    0
                ),
                0
            ),
        }
        assert_eq!(
            libc::posix_spawn_file_actions_addopen(
                &mut actions,
                1,
                devnull.as_ptr(),
                libc::O_WRONLY,
                0
            ),
            0
        );
        let mut pid = 0;
        let rc = libc::posix_spawnp(
            &mut pid,
            ptrs[0],
            &actions,
            std::ptr::null(),
            ptrs.as_ptr(),
            environ,
        );
        libc::posix_spawn_file_actions_destroy(&mut actions);
        assert_eq!(
            rc,
            0,
            "posix_spawnp {argv:?}: {}",
            std::io::Error::from_raw_os_error(rc)
        );
        pid
    }
}

/// State and parent pid of `pid`, from /proc/<pid>/stat.
pub fn stat(pid: i32) -> Option<(char, i32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = text
        .get(text.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    Some((rest.first()?.chars().next()?, rest.get(1)?.parse().ok()?))
}

fn processes() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
        .collect()
}

/// Every process whose parent is this process, in any state.
pub fn children() -> Vec<(i32, char)> {
    let me = std::process::id() as i32;
    processes()
        .into_iter()
        .filter_map(|pid| match stat(pid) {
            Some((state, ppid)) if ppid == me => Some((pid, state)),
            _ => None,
        })
        .collect()
}

/// Zombie children of this process (state Z, parent us).
pub fn zombie_children() -> Vec<i32> {
    children()
        .into_iter()
        .filter(|(_, state)| *state == 'Z')
        .map(|(pid, _)| pid)
        .collect()
}

/// Whether `pid` is a zombie child of this process.
pub fn is_our_zombie(pid: i32) -> bool {
    stat(pid) == Some(('Z', std::process::id() as i32))
}

/// Waits until `cond` holds, or panics after `timeout`.
pub fn until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits until every pid in `pids` is a zombie child of this process (the engine paused).
pub fn until_zombies(pids: &[i32], timeout: Duration) {
    let me = std::process::id() as i32;
    until("the children are zombies", timeout, || {
        pids.iter().all(|p| stat(*p) == Some(('Z', me)))
    });
}

/// Receives from `sub` until it has seen an exit for every pid in `pids` or `timeout` passed.
/// Returns the exits of those pids (duplicates included, so that callers can check for them)
/// in the order received; exits of other pids are skipped.
pub fn collect(sub: &Subscription, pids: &HashSet<i32>, timeout: Duration) -> Vec<Arc<Exit>> {
    let deadline = Instant::now() + timeout;
    let mut seen = HashSet::new();
    let mut got = Vec::new();
    while seen.len() < pids.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.recv_timeout(left) {
            Ok(Some(e)) => {
                if pids.contains(&e.pid) {
                    seen.insert(e.pid);
                    got.push(e);
                }
            }
            Ok(None) => break,
            Err(e) => panic!("subscription ended: {e}"),
        }
    }
    got
}

/// Asserts that no further exit of `pids` arrives within `quiet`.
pub fn assert_no_more(sub: &Subscription, pids: &HashSet<i32>, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match sub.recv_timeout(left) {
            Ok(Some(e)) => assert!(!pids.contains(&e.pid), "announced twice: {e:?}"),
            Ok(None) => return,
            Err(RecvError::Closed) => return,
            Err(e) => panic!("subscription ended: {e}"),
        }
    }
}

/// Asserts `exits` holds each of `pids` exactly once, with increasing `seq`.
pub fn assert_once_each_in_order(exits: &[Arc<Exit>], pids: &HashSet<i32>) {
    let mut seen = HashSet::new();
    for e in exits {
        assert!(seen.insert(e.pid), "pid {} received twice", e.pid);
    }
    assert_eq!(seen.len(), pids.len(), "missing exits");
    assert!(
        exits.windows(2).all(|w| w[0].seq < w[1].seq),
        "exits out of order"
    );
}

/// The process-wide reaper as the only waiter of this test process: it reaps every child not
/// declared by an owner (these tests spawn from test threads and leave reaping to it).
pub fn sole_reaper() -> &'static subreaper_core::Reaper {
    subreaper_core::Reaper::global_with(subreaper_core::Config {
        policy: subreaper_core::Policy::SoleWaiter,
        ..subreaper_core::Config::default()
    })
}
