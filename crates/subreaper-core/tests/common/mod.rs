//! Helpers shared by the integration tests that run real processes (each tests/*.rs file is
//! its own process, sharing that process's `Reaper::global()` between its tests).
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, CString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use subreaper_core::{Exit, RecvError, Subscription};

pub mod fallback;

/// How far an exit's `started_at` can be from the moment a test saw the process start: /proc
/// counts start times in 10 ms clock ticks, and each conversion reads two clocks (a thread
/// preempted between them on a busy machine is off by the time it waited: tens of ms). Two
/// processes that share a pid start much further apart: Linux hands pids out in a cycle, so a
/// pid comes back only after all 32,768 were handed out, which takes over 2 s even at the
/// fastest spawn rate of this machine (about 14,000 a second).
pub const START_SLACK: Duration = Duration::from_millis(500);

/// One process: its pid and the span its start time lies in. The kernel recycles pids (32,768
/// here, gone round within minutes on a busy machine), so an exit is matched by both.
#[derive(Clone, Copy, Debug)]
pub struct Proc {
    pub pid: i32,
    /// None: a process whose start time nobody read (see `without_start_time`).
    span: Option<(SystemTime, SystemTime)>,
}

impl Proc {
    /// A process started between `before` and `after` (read around the spawn call).
    pub fn started_between(pid: i32, before: SystemTime, after: SystemTime) -> Proc {
        let p = Proc {
            pid,
            span: Some((before - START_SLACK, after + START_SLACK)),
        };
        remember(p);
        p
    }

    /// A process whose start time (clock ticks since boot, field 22 of /proc/<pid>/stat) was
    /// read while it existed.
    pub fn started_at_ticks(pid: i32, ticks: u64) -> Proc {
        let at = ticks_to_wall_clock(ticks);
        Proc::started_between(pid, at, at)
    }

    /// A child another waiter reaped and reported before the engine saw it as a zombie: nobody
    /// read its start time, so its exit has none. It matches only exits of its pid without one.
    pub fn without_start_time(pid: i32) -> Proc {
        Proc { pid, span: None }
    }

    /// Whether `e` is this process's exit (same pid, a start time in its span).
    pub fn is_exit_of(&self, e: &Exit) -> bool {
        e.pid == self.pid
            && match (self.span, e.started_at) {
                (Some((earliest, latest)), Some(t)) => t >= earliest && t <= latest,
                (None, None) => true,
                _ => false,
            }
    }
}

/// The last process this test process made or identified with each pid (see `procs`).
static SEEN: Mutex<Option<HashMap<i32, Proc>>> = Mutex::new(None);

fn remember(p: Proc) {
    SEEN.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(p.pid, p);
}

/// A /proc start time (clock ticks since boot) as wall-clock time, the way the engine converts
/// it for `Exit::started_at`: now, less the time since boot, plus the ticks.
fn ticks_to_wall_clock(ticks: u64) -> SystemTime {
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut now: libc::timespec = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut now) },
        0
    );
    let since_boot = Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
    let started = Duration::from_nanos(ticks * (1_000_000_000 / hz));
    SystemTime::now() - since_boot.saturating_sub(started)
}

/// The identity of `pid`, which must exist now (alive, or a zombie not yet reaped).
pub fn identify(pid: i32) -> Proc {
    let ticks = start_ticks(pid)
        .unwrap_or_else(|| panic!("process {pid} is gone: identify it while it exists"));
    Proc::started_at_ticks(pid, ticks)
}

/// Runs `start` (which starts one child) and names that child (`pid` of the result) by its pid
/// and the span in which it started, for `procs`.
pub fn identified<T>(start: impl FnOnce() -> T, pid: impl FnOnce(&T) -> i32) -> T {
    let before = SystemTime::now();
    let started = start();
    Proc::started_between(pid(&started), before, SystemTime::now());
    started
}

/// Field 22 of /proc/<pid>/stat: start time, clock ticks since boot.
pub fn start_ticks(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text.get(text.rfind(')')? + 2..)?
        .split(' ')
        .nth(19)?
        .parse()
        .ok()
}

/// A set of processes, one per pid: for each pid, the process this test made or identified
/// last with it (just before building the set, in every use here).
#[derive(Clone, Debug, Default)]
pub struct Procs(HashMap<i32, Proc>);

impl Procs {
    /// The process among these that made `e`, if any.
    pub fn of(&self, e: &Exit) -> Option<&Proc> {
        self.0.get(&e.pid).filter(|p| p.is_exit_of(e))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, p: Proc) {
        self.0.insert(p.pid, p);
    }

    pub fn from_procs(list: impl IntoIterator<Item = Proc>) -> Procs {
        Procs(list.into_iter().map(|p| (p.pid, p)).collect())
    }
}

/// The processes of `pids`: each spawned by `spawn`, started with a `Proc` made around the
/// spawn call, or identified (`identify`, `Proc::started_at_ticks`) earlier in this process.
pub fn procs<'a>(pids: impl IntoIterator<Item = &'a i32>) -> Procs {
    let seen = SEEN.lock().unwrap();
    Procs(
        pids.into_iter()
            .map(|pid| {
                let p = seen.as_ref().and_then(|m| m.get(pid)).unwrap_or_else(|| {
                    panic!("pid {pid} was never identified: spawn it with spawn() or identify it")
                });
                (*pid, *p)
            })
            .collect(),
    )
}

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

    /// The read end as a `Command`'s stdin.
    pub fn stdin(&self) -> std::process::Stdio {
        self.read
            .try_clone()
            .expect("dup the gate's read end")
            .into()
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

/// A job of an `sh -c` script started with a `Gate` as its stdin and `exec 3<&0` first: a
/// subshell that blocks on the gate (fd 3: a background job's own stdin is /dev/null), then
/// becomes `sleep 0` and exits. The line prints its pid and start time in ticks with builtins
/// only. A job must not exit while its shell lives: dash waits for any foreground command,
/// `$(...)` included, with `wait4(-1)`, and so reaps a background job that has exited by then
/// (seen under load: a shell's 0.1 s and 0.2 s jobs reaped by the shell, never by the reaper).
pub const GATED_JOB: &str =
    "(read x <&3; exec sleep 0) & read -r s </proc/$!/stat; set -- $s; echo $! ${22}";

/// `fork()` on the calling thread (the fork hook runs around it); the child runs `then`, which
/// must call only async-signal-safe functions (the test process has other threads), and exits
/// with 127 if it returns. Returns the child's pid.
pub fn fork_child(then: impl FnOnce()) -> i32 {
    // SAFETY: the child runs only `then`, which the caller keeps async-signal-safe, and _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        then();
        // SAFETY: _exit(2) has no preconditions.
        unsafe { libc::_exit(127) };
    }
    pid
}

/// Spawns `argv` with `posix_spawnp` (vfork-style: fast here, unlike fork), stdin from
/// `stdin` (or /dev/null) and stdout to /dev/null. Returns the pid; `procs` knows its start.
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
        let before = SystemTime::now();
        let rc = libc::posix_spawnp(
            &mut pid,
            ptrs[0],
            &actions,
            std::ptr::null(),
            ptrs.as_ptr(),
            environ,
        );
        let after = SystemTime::now();
        libc::posix_spawn_file_actions_destroy(&mut actions);
        assert_eq!(
            rc,
            0,
            "posix_spawnp {argv:?}: {}",
            std::io::Error::from_raw_os_error(rc)
        );
        Proc::started_between(pid, before, after);
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

/// Receives from `sub` until it has seen an exit of every process in `procs` or `timeout`
/// passed. Returns the exits of those processes (duplicates included, so that callers can check
/// for them) in the order received; other exits (another holder of a pid too) are skipped.
pub fn collect(sub: &Subscription, procs: &Procs, timeout: Duration) -> Vec<Arc<Exit>> {
    let deadline = Instant::now() + timeout;
    let mut seen = HashSet::new();
    let mut got = Vec::new();
    while seen.len() < procs.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        match sub.recv_timeout(left) {
            Ok(Some(e)) => {
                if procs.of(&e).is_some() {
                    seen.insert(e.pid);
                    got.push(e);
                } else if procs.0.contains_key(&e.pid) {
                    // Told on stderr, for the failure it will cause: the pid of one of these
                    // processes, with another start time (a recycled pid, or a start time off).
                    eprintln!(
                        "collect: an exit of pid {} not matching its start: {e:?}",
                        e.pid
                    );
                }
            }
            Ok(None) => break,
            Err(e) => panic!("subscription ended: {e}"),
        }
    }
    got
}

/// Asserts that no further exit of `procs` arrives within `quiet`.
pub fn assert_no_more(sub: &Subscription, procs: &Procs, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        match sub.recv_timeout(left) {
            Ok(Some(e)) => assert!(procs.of(&e).is_none(), "announced twice: {e:?}"),
            Ok(None) => return,
            Err(RecvError::Closed) => return,
            Err(e) => panic!("subscription ended: {e}"),
        }
    }
}

/// Asserts `exits` holds an exit of each of `procs` exactly once, with increasing `seq`.
pub fn assert_once_each_in_order(exits: &[Arc<Exit>], procs: &Procs) {
    let mut seen = HashSet::new();
    for e in exits {
        assert!(
            procs.of(e).is_some(),
            "not an exit of these processes: {e:?}"
        );
        assert!(seen.insert(e.pid), "pid {} received twice", e.pid);
    }
    let mut missing: Vec<i32> = procs
        .0
        .keys()
        .filter(|p| !seen.contains(*p))
        .copied()
        .collect();
    missing.sort_unstable();
    assert_eq!(seen.len(), procs.len(), "missing exits of {missing:?}");
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

/// The owner's own reap of `pid` (blocks until it exits); returns its raw wait status. Fails
/// the test if the pid is not there to reap (the engine must never reap an owned child).
pub fn owner_waitpid(pid: i32) -> i32 {
    let mut status = 0;
    // SAFETY: waitpid(2) on a child of this process, into a local.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(
        rc,
        pid,
        "waitpid({pid}): {} (did the engine reap an owned pid?)",
        std::io::Error::last_os_error()
    );
    status
}

/// [`owner_waitpid`], as the termination an owner reports.
pub fn owner_reap(pid: i32) -> subreaper_core::Termination {
    subreaper_core::Termination::from_wait_status(owner_waitpid(pid)).expect("an exit status")
}

/// Runs the tests of one file one at a time, where they share the process-wide reaper's state
/// (its configuration, subreaper mode, the children it watches).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The path of program `name` in `/bin` or `/usr/bin` (for an `exec` that takes no `PATH`).
pub fn program(name: &str) -> String {
    ["/bin", "/usr/bin"]
        .iter()
        .map(|dir| format!("{dir}/{name}"))
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or_else(|| panic!("{name} is in neither /bin nor /usr/bin"))
}
