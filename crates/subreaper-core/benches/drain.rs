//! Drains N ready zombies: a bare `wait4(-1, WNOHANG)` loop, then the engine delivering the
//! same N to 1 and to 8 subscribers. Prints per-exit times and the ratio to the bare loop.
//!
//! `cargo bench -p subreaper-core --bench drain`; N from SUBREAPER_BENCH_N (default 10,000),
//! runs per case from SUBREAPER_BENCH_RUNS (default 3, the best is kept).
//!
//! Zombies are made with `clone(CLONE_VM | CLONE_VFORK)` children that exit at once (no exec,
//! no page-table copy: `fork()` manages only ~650/s on the project's machines). The bare loop
//! runs before the global reaper is first touched (it is started lazily), so that nothing else
//! reaps its children. For the engine, the reaper is paused while the zombies are made; the
//! clock starts at `resume()` and stops when every subscriber has received all N exits.

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use subreaper_core::{Config, Policy, Reaper, SubscribeOptions};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

extern "C" fn exit_at_once(_: *mut libc::c_void) -> libc::c_int {
    unsafe { libc::_exit(0) }
}

/// Makes `n` children that have exited and are zombies by the time this returns.
fn make_zombies(n: usize) -> Vec<i32> {
    const STACK: usize = 64 * 1024;
    // With CLONE_VFORK this thread is suspended until the child is gone: one stack serves all.
    let mut stack = vec![0u8; STACK];
    let top = ((stack.as_mut_ptr() as usize + STACK) & !0xf) as *mut libc::c_void;
    let mut pids = Vec::with_capacity(n);
    for _ in 0..n {
        let pid = unsafe {
            libc::clone(
                exit_at_once,
                top,
                libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                std::ptr::null_mut(),
            )
        };
        assert!(pid > 0, "clone: {}", std::io::Error::last_os_error());
        pids.push(pid);
    }
    // vfork resumes the parent when the child lets go of its memory, which can be just before
    // it becomes a zombie: wait (without reaping) until each one is.
    for &pid in &pids {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        assert_eq!(rc, 0, "waitid: {}", std::io::Error::last_os_error());
    }
    drop(stack);
    pids
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
    /// Until every subscriber had received every exit.
    delivered: Duration,
}

/// The engine as this program's only waiter: it reaps every child not declared by an owner.
fn engine() -> &'static Reaper {
    Reaper::global_with(Config {
        policy: Policy::SoleWaiter,
        ..Config::default()
    })
}

fn engine_drain(n: usize, subscribers: usize) -> EngineRun {
    let r = engine();
    let (tx, rx) = mpsc::channel();
    let readers: Vec<_> = (0..subscribers)
        .map(|_| {
            let sub = r.subscribe(SubscribeOptions {
                buffer_size: n,
                lag_timeout: Duration::from_secs(60),
                max_overflow: n,
                notify: None,
            });
            let tx = tx.clone();
            thread::spawn(move || {
                let mut last = None;
                for _ in 0..n {
                    last = Some(sub.recv().expect("subscriber closed"));
                }
                tx.send(Instant::now()).unwrap();
                last.unwrap().timestamp
            })
        })
        .collect();
    r.pause();
    make_zombies(n);
    let start_wall = SystemTime::now();
    let start = Instant::now();
    r.resume();
    let mut done = start;
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
        delivered: done - start,
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

    let mut results = Vec::new();
    for subscribers in [1, 8] {
        let all: Vec<EngineRun> = (0..runs).map(|_| engine_drain(n, subscribers)).collect();
        let best = all.into_iter().min_by_key(|r| r.delivered).unwrap();
        results.push((subscribers, best));
    }
    assert_eq!(engine().exits_recorded(), (2 * n * runs) as u64);

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
            "  {:<34} {:>10.1} ms {:>8.2} µs/exit {:>6.2}x   (all reaped after {:.1} ms)",
            label,
            run.delivered.as_secs_f64() * 1e3,
            per_exit_us(run.delivered, n),
            run.delivered.as_secs_f64() / bare.as_secs_f64(),
            run.reaped.as_secs_f64() * 1e3,
        );
    }
}
