//! Drains N ready zombies: a bare `wait4(-1, WNOHANG)` loop, then the engine delivering the
//! same N to 1 and to 8 subscribers. Prints per-exit times and the ratio to the bare loop.
//!
//! `cargo bench -p subreaper-core --bench drain`; N from SUBREAPER_BENCH_N (default 10,000),
//! runs per case from SUBREAPER_BENCH_RUNS (default 3, the best is kept).
//!
//! Zombies are made with `clone(CLONE_VM | CLONE_VFORK)` children that exit at once (no exec,
//! no page-table copy: `fork()` manages only ~650/s on the project's machines). The bare loop
//! runs before the global reaper is first touched (it is started lazily), so that nothing else
//! reaps its children. For the engine, the zombies are handed over as in `npm run bench` and
//! in containerd's shim: this process is a subreaper, a forked child makes the N zombies and
//! exits, and they are re-parented to this process at once, as orphans the engine has never
//! seen (named by taskstats or `/proc`, claimed by no thread). The engine is configured as the
//! Node package configures it; this process reaps the forked child itself, as libuv does. The
//! clock starts at the forked child's own CLOCK_MONOTONIC stamp, once all N are zombies, just
//! before its exit (sent over a pipe; the same t0 as every drain of `npm run bench`), and stops
//! when every subscriber has received all N exits. Up to issue 34 it started once the child was
//! reaped, after the engine had begun on the zombies (printed as "late clock").

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use subreaper_core::{Config, ReapedBy, Reaper, SubscribeOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

extern "C" fn exit_at_once(_: *mut libc::c_void) -> libc::c_int {
    // Safety: the child shares its parent's memory (CLONE_VM); _exit touches none of it.
    unsafe { libc::_exit(0) }
}

/// One stack for the `CLONE_VFORK` children: this thread is suspended until each is gone.
struct ChildStack(Vec<u8>);

impl ChildStack {
    const SIZE: usize = 64 * 1024;

    fn new() -> ChildStack {
        ChildStack(vec![0u8; Self::SIZE])
    }

    /// Makes one child that exits at once; returns its pid once it is a zombie. Only clone and
    /// waitid: safe in the child of a fork of this multi-threaded process.
    fn make_zombie(&mut self) -> Option<i32> {
        let top = ((self.0.as_mut_ptr() as usize + Self::SIZE) & !0xf) as *mut libc::c_void;
        // Safety: the child runs `exit_at_once` on this stack, which no one else uses while
        // CLONE_VFORK holds this thread.
        let pid = unsafe {
            libc::clone(
                exit_at_once,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::null_mut(),
            )
        };
        if pid <= 0 {
            return None;
        }
        // vfork resumes the parent when the child lets go of its memory, which can be just
        // before it becomes a zombie: wait (without reaping) until it is.
        // Safety: a local siginfo, filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // Safety: waits, without reaping, for this process's own child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        (rc == 0).then_some(pid)
    }
}

/// Makes `n` children of this process that are zombies by the time this returns.
fn make_zombies(n: usize) {
    let mut stack = ChildStack::new();
    for _ in 0..n {
        let made = stack.make_zombie();
        assert!(
            made.is_some(),
            "clone/waitid: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn bare_drain(n: usize) -> Duration {
    make_zombies(n);
    let start = Instant::now();
    let mut reaped = 0;
    while reaped < n {
        let mut status = 0;
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut ru) };
        assert!(rc >= 0, "wait4: {}", std::io::Error::last_os_error());
        if rc > 0 {
            reaped += 1;
        }
    }
    start.elapsed()
}

struct EngineRun {
    /// Until the engine had recorded the last exit.
    reaped: Duration,
    /// From the maker's stamp until every subscriber had received every exit.
    delivered: Duration,
    /// The same from when the maker was reaped (the late clock up to issue 34).
    delivered_late_clock: Duration,
}

/// The engine as the Node package starts it: it shares the process with other waiters (here
/// the bench's own `waitpid` of the child that makes the zombies) and reaps the orphans.
fn engine() -> &'static Reaper {
    Reaper::global_with(Config::default())
}

/// CLOCK_MONOTONIC in nanoseconds (async-signal-safe).
fn mono_ns() -> i64 {
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // Safety: writes into a local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

/// Forks a child that makes `n` zombies and exits once all are zombies: they are re-parented
/// to this process (a subreaper) together. Reaps the child itself and returns when it has,
/// with the child's CLOCK_MONOTONIC stamp just before its exit (ns).
fn hand_over_zombies(n: usize) -> i64 {
    let mut stack = ChildStack::new();
    let mut fds = [0; 2];
    // Safety: creates a pipe into a local array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // Safety: the child of this multi-threaded process calls only clone, waitid and _exit
    // (async-signal-safe; no allocation), on memory allocated before the fork.
    let maker = unsafe { libc::fork() };
    assert!(maker >= 0, "fork: {}", std::io::Error::last_os_error());
    if maker == 0 {
        let made = (0..n).all(|_| stack.make_zombie().is_some());
        let stamp = mono_ns().to_ne_bytes();
        // Safety: writes 8 bytes to the pipe, then ends the forked child without running this
        // process's exit handlers.
        unsafe {
            let wrote = libc::write(fds[1], stamp.as_ptr().cast(), stamp.len());
            libc::_exit(if made && wrote == 8 { 0 } else { 1 })
        };
    }
    // Safety: closes this side's write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // Safety: waits for this process's own child.
    let rc = unsafe { libc::waitpid(maker, &mut status, 0) };
    assert_eq!(rc, maker, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the zombie maker failed: status {status:#x}"
    );
    let mut stamp = [0u8; 8];
    // Safety: reads 8 bytes into a local array, then closes the read end.
    let got = unsafe { libc::read(fds[0], stamp.as_mut_ptr().cast(), stamp.len()) };
    unsafe { libc::close(fds[0]) };
    assert_eq!(got, 8, "the zombie maker's stamp");
    i64::from_ne_bytes(stamp)
}

fn engine_drain(n: usize, subscribers: usize) -> EngineRun {
    let r = engine();
    let (tx, rx) = mpsc::channel();
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let sub = r.subscribe(SubscribeOptions {
                buffer_size: n + 1,
                lag_timeout: Duration::from_secs(60),
                max_overflow: n + 1,
                notify: None,
            });
            let tx = tx.clone();
            thread::spawn(move || {
                let mut last = None;
                let mut reaped = 0;
                // The zombies' exits, and the maker's (reaped here, announced by the engine).
                while reaped < n {
                    let exit = sub.recv().expect("subscriber closed");
                    if exit.reaped_by == ReapedBy::Reaper {
                        reaped += 1;
                        last = Some(exit.timestamp);
                    }
                }
                tx.send(mono_ns()).unwrap();
                last.unwrap()
            })
        })
        .collect();
    let stamp = hand_over_zombies(n);
    let start_wall = SystemTime::now();
    let late_start = mono_ns();
    let mut done = late_start;
    for _ in 0..subscribers {
        done = done.max(rx.recv_timeout(Duration::from_secs(120)).expect("stuck"));
    }
    let last_reap = readers
        .into_iter()
        .map(|t| t.join().unwrap())
        .max()
        .unwrap();
    EngineRun {
        reaped: last_reap.duration_since(start_wall).unwrap_or_default(),
        delivered: Duration::from_nanos((done - stamp).max(0) as u64),
        delivered_late_clock: Duration::from_nanos((done - late_start).max(0) as u64),
    }
}

fn per_exit_us(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn main() {
    let n = env_usize("SUBREAPER_BENCH_N", 10_000);
    let runs = env_usize("SUBREAPER_BENCH_RUNS", 3).max(1);
    // Cargo passes `--bench`; there is nothing to filter.
    assert!(
        !Reaper::global_started(),
        "the bare loop must run before the global reaper exists"
    );
    let t = Instant::now();
    let bare = (0..runs).map(|_| bare_drain(n)).min().unwrap();
    let make_rate = (n * runs) as f64 / t.elapsed().as_secs_f64();

    subreaper_core::set_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let mut results = Vec::new();
    for subscribers in [1, 8] {
        let all: Vec<EngineRun> = (0..runs).map(|_| engine_drain(n, subscribers)).collect();
        let best = all.into_iter().min_by_key(|r| r.delivered).unwrap();
        results.push((subscribers, best));
    }
    // Each run: N zombies, and the child that made them if the engine saw it before the reap.
    assert!(engine().exits_recorded() >= (2 * n * runs) as u64);

    println!("drain of {n} ready zombies, best of {runs} runs (zombies made at ~{make_rate:.0}/s)");
    println!(
        "  {:<34} {:>10.1} ms {:>8.2} µs/exit {:>7}",
        "bare wait4(-1, WNOHANG) loop",
        bare.as_secs_f64() * 1e3,
        per_exit_us(bare, n),
        "1.00x"
    );
    for (subscribers, run) in &results {
        let label = format!(
            "engine -> {subscribers} subscriber{}",
            if *subscribers == 1 { "" } else { "s" }
        );
        println!(
            "  {:<34} {:>10.1} ms {:>8.2} µs/exit {:>6.2}x   (all reaped after {:.1} ms; late clock {:.1} ms)",
            label,
            run.delivered.as_secs_f64() * 1e3,
            per_exit_us(run.delivered, n),
            run.delivered.as_secs_f64() / bare.as_secs_f64(),
            run.reaped.as_secs_f64() * 1e3,
            run.delivered_late_clock.as_secs_f64() * 1e3,
        );
    }
}
