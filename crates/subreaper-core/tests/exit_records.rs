//! Exit records of real children (every exit code, deaths by signal), and `wait`.
//! The tests of this file share the process's global reaper: each filters by its own pids.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use subreaper_core::{
    Exit, ReapedBy, Reaper, SubscribeOptions, Termination, WaitError, WaitOutcome,
};

fn reaper() -> &'static Reaper {
    common::sole_reaper()
}

fn big_subscription() -> subreaper_core::Subscription {
    reaper().subscribe(SubscribeOptions {
        buffer_size: 100_000,
        ..SubscribeOptions::default()
    })
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    c
}

/// The fields every exit reaped by the engine must have.
fn assert_reaped_record(e: &Exit, pid: i32, comm: &str, before: SystemTime) {
    assert_eq!(e.pid, pid);
    assert_eq!(e.reaped_by, ReapedBy::Reaper, "{e:?}");
    assert_eq!(
        e.comm.as_deref(),
        Some(comm),
        "comm read while a zombie: {e:?}"
    );
    let rss = e
        .rusage
        .and_then(|r| r.max_rss_kib)
        .expect("wait4 rusage has a maximum RSS");
    assert!(rss > 0 && rss < 10 * 1024 * 1024, "max RSS {rss} KiB");
    assert!(e.timestamp >= before, "timestamp before the spawn");
    assert!(e.timestamp <= SystemTime::now(), "timestamp in the future");
    assert!(e.seq > 0);
    assert!(!is_our_zombie(pid), "pid {pid} left a zombie");
}

#[test]
fn every_exit_code_from_0_to_255() {
    let r = reaper();
    let sub = big_subscription();
    let before = SystemTime::now();
    let mut all = HashSet::new();
    let codes: Vec<i32> = (0..=255).collect();
    for batch in codes.chunks(64) {
        let mut started = Vec::new();
        for &code in batch {
            let (child, rx) = identified(
                || r.start_command(&mut sh(&format!("exit {code}"))).unwrap(),
                |(_, rx)| rx.pid(),
            );
            assert_eq!(child.id() as i32, rx.pid());
            started.push((code, rx));
        }
        for (code, mut rx) in started {
            let pid = rx.pid();
            let e = rx
                .wait_timeout(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("no exit for `exit {code}` (pid {pid})"));
            assert_eq!(e.termination, Termination::Exited(code));
            assert_eq!(e.status(), code);
            assert_eq!(e.termination.code(), Some(code));
            assert_eq!(e.termination.signal(), None);
            assert!(!e.termination.core_dumped());
            let raw = e.raw_wait_status();
            assert!(libc::WIFEXITED(raw) && !libc::WIFSIGNALED(raw));
            assert_eq!(libc::WEXITSTATUS(raw), code);
            assert_reaped_record(&e, pid, "sh", before);
            assert!(all.insert(pid));
        }
    }
    // The subscriber saw each of them exactly once, in reap order.
    let all_procs = procs(&all);
    let got = collect(&sub, &all_procs, Duration::from_secs(10));
    assert_no_more(&sub, &all_procs, Duration::from_millis(200));
    assert_once_each_in_order(&got, &all_procs);
    for e in &got {
        assert_eq!(Some(e.clone()), reaper().last_exit(e.pid));
    }
    // (Only this test's pids: the other tests of this file run alongside.)
    assert!(all.iter().all(|pid| !is_our_zombie(*pid)));
}

fn core_pattern() -> String {
    std::fs::read_to_string("/proc/sys/kernel/core_pattern")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// With a plain core pattern (a file name relative to the dying process's directory) the
/// kernel honours RLIMIT_CORE, so whether a core is dumped is known in advance.
fn plain_core_pattern() -> bool {
    let p = core_pattern();
    !p.is_empty() && !p.starts_with('|') && !p.contains('/')
}

#[test]
fn deaths_by_sigterm_sigkill_and_sigsegv() {
    let r = reaper();
    let sub = big_subscription();
    let before = SystemTime::now();
    let mut pids = HashSet::new();

    for (signal, name) in [(libc::SIGTERM, "SIGTERM"), (libc::SIGKILL, "SIGKILL")] {
        let (_child, rx) = identified(
            || {
                r.start_command(Command::new("sleep").arg("30").stdin(Stdio::null()))
                    .unwrap()
            },
            |(_, rx)| rx.pid(),
        );
        let pid = rx.pid();
        pids.insert(pid);
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
        let e = rx.wait();
        assert_eq!(
            e.termination,
            Termination::Signaled {
                signal,
                core_dumped: false
            },
            "{name}"
        );
        assert_eq!(e.status(), 128 + signal);
        let raw = e.raw_wait_status();
        assert!(libc::WIFSIGNALED(raw) && !libc::WIFEXITED(raw));
        assert_eq!(libc::WTERMSIG(raw), signal);
        assert!(!libc::WCOREDUMP(raw));
        assert_reaped_record(&e, pid, "sleep", before);
    }

    // A child that kills itself with SIGSEGV, with core dumps off.
    let (_child, rx) = identified(
        || {
            r.start_command(&mut sh("ulimit -c 0; kill -SEGV $$; exit 99"))
                .unwrap()
        },
        |(_, rx)| rx.pid(),
    );
    let pid = rx.pid();
    pids.insert(pid);
    let e = rx.wait();
    assert_eq!(e.termination.signal(), Some(libc::SIGSEGV), "{e:?}");
    assert_eq!(e.status(), 139);
    assert_eq!(libc::WTERMSIG(e.raw_wait_status()), libc::SIGSEGV);
    if plain_core_pattern() {
        assert!(
            !e.termination.core_dumped(),
            "RLIMIT_CORE 0, yet a core: {e:?}"
        );
    }
    assert_reaped_record(&e, pid, "sh", before);

    // And with core dumps on, in a scratch directory: the core-dumped bit must be set.
    let dir = std::env::temp_dir().join(format!("subreaper-core-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (_child, rx) = identified(
        || {
            r.start_command(sh("ulimit -c unlimited && kill -SEGV $$; exit 99").current_dir(&dir))
                .unwrap()
        },
        |(_, rx)| rx.pid(),
    );
    let pid = rx.pid();
    pids.insert(pid);
    let e = rx.wait();
    let cores = std::fs::read_dir(&dir).unwrap().count();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(e.termination.signal(), Some(libc::SIGSEGV), "{e:?}");
    assert_eq!(e.status(), 139);
    assert_eq!(
        libc::WCOREDUMP(e.raw_wait_status()),
        e.termination.core_dumped()
    );
    if plain_core_pattern() {
        assert!(
            e.termination.core_dumped(),
            "core pattern {:?}: {e:?}",
            core_pattern()
        );
        assert!(cores >= 1, "core-dumped bit set but no core file written");
    } else {
        eprintln!(
            "core pattern {:?} is not a plain file name: core-dumped bit not checked",
            core_pattern()
        );
    }
    assert_reaped_record(&e, pid, "sh", before);

    let pids = procs(&pids);
    let got = collect(&sub, &pids, Duration::from_secs(10));
    assert_no_more(&sub, &pids, Duration::from_millis(200));
    assert_once_each_in_order(&got, &pids);
}

#[test]
fn rusage_is_the_childs_own() {
    let r = reaper();
    let before = SystemTime::now();
    // Burns CPU for a while in user space.
    let (_child, rx) = r
        .start_command(&mut sh(
            "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done; exit 3",
        ))
        .unwrap();
    let pid = rx.pid();
    let e = rx.wait();
    assert_eq!(e.status(), 3);
    assert_reaped_record(&e, pid, "sh", before);
    let ru = e.rusage.expect("the engine reaped it: wait4's usage");
    assert!(
        ru.user_cpu_us + ru.system_cpu_us >= 20_000,
        "a CPU-bound child used under 20 ms of CPU? {ru:?}"
    );
    assert!(ru.minor_faults > 0, "{ru:?}");
    // An idle child uses next to none.
    let (_child, rx) = r.start_command(&mut sh("exit 0")).unwrap();
    let e = rx.wait();
    let ru = e.rusage.expect("the engine reaped it: wait4's usage");
    assert!(ru.user_cpu_us < 20_000, "{ru:?}");
}

#[test]
fn wait_before_the_exit() {
    let r = reaper();
    let mut child = Command::new("sleep")
        .arg("0.3")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    r.kick();
    let pid = child.id() as i32;
    let t = Instant::now();
    let e = r.wait(pid, Some(Duration::from_secs(10))).unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    assert_eq!((e.pid, e.termination), (pid, Termination::Exited(0)));
    assert_eq!(e.comm.as_deref(), Some("sleep"));
    // The engine reaped it: std's own wait finds no child.
    assert!(child.wait().is_err());
}

#[test]
fn wait_after_the_exit_is_answered_from_recent_exits() {
    let r = reaper();
    let sub = big_subscription();
    let pid = spawn(&["sh", "-c", "exit 17"], None);
    r.kick();
    let got = collect(&sub, &procs(&[pid]), Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert!(!is_our_zombie(pid), "reaped");
    let t = Instant::now();
    match r
        .wait_with(pid, |_| panic!("a ready wait must not be stored"))
        .unwrap()
    {
        WaitOutcome::Ready(e) => assert!(Arc::ptr_eq(&e, &got[0])),
        WaitOutcome::Pending(_) => panic!("wait after the exit is pending"),
    }
    let e = r.wait(pid, Some(Duration::ZERO)).unwrap();
    assert_eq!(e.status(), 17);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn wait_on_a_pid_that_is_not_a_child_fails_at_once() {
    let r = reaper();
    let t = Instant::now();
    let ppid = unsafe { libc::getppid() };
    let me = std::process::id() as i32;
    for pid in [1, ppid, me, 0, -1, i32::MAX] {
        assert_eq!(
            r.wait(pid, None),
            Err(WaitError::NotAChild(pid)),
            "pid {pid}"
        );
    }
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[test]
fn wait_times_out_on_a_live_child() {
    let r = reaper();
    let (mut child, rx) = r
        .start_command(Command::new("sleep").arg("30").stdin(Stdio::null()))
        .unwrap();
    let pid = rx.pid();
    let t = Instant::now();
    assert_eq!(
        r.wait(pid, Some(Duration::from_millis(200))),
        Err(WaitError::TimedOut(pid))
    );
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(stat(pid).map(|s| s.0 != 'Z'), Some(true), "still running");
    child.kill().unwrap();
    let e = r.wait(pid, Some(Duration::from_secs(10))).unwrap();
    assert_eq!(e.termination.signal(), Some(libc::SIGKILL));
    assert_eq!(rx.wait().seq, e.seq);
}

#[test]
fn start_command_registers_the_wait_before_the_child_can_exit() {
    let r = reaper();
    for code in [0, 1, 42] {
        let (_child, rx) = r.start_command(&mut sh(&format!("exit {code}"))).unwrap();
        assert_eq!(rx.wait().status(), code);
    }
}
