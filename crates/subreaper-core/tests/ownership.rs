//! A pid owned by another waiter is left to it (the test plays that waiter with `waitpid`),
//! and `pause` holds all reaping. These tests pause the process-wide reaper, so they run one
//! at a time.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use subreaper_core::{ReapedBy, Reaper, SubscribeOptions, Subscription, Termination};

fn subscription() -> Subscription {
    Reaper::global().subscribe(SubscribeOptions {
        buffer_size: 100_000,
        ..SubscribeOptions::default()
    })
}

const OWNER: u64 = 1;
const SECOND: Duration = Duration::from_secs(1);

#[test]
fn owned_pid_is_announced_but_left_to_its_waiter() {
    let _serial = serial();
    let r = Reaper::global();
    let sub = subscription();
    let mut gate = Gate::new();
    let pid = spawn(&["sh", "-c", "read x; exit 42"], Some(gate.read_fd()));
    r.own(pid, OWNER);
    r.kick();
    let (tx, rx) = std::sync::mpsc::channel();
    r.wait_with(pid, move |e| {
        let _ = tx.send(e);
    })
    .unwrap();

    gate.release();
    // The engine sees the exit (peek) and announces it ...
    let got = collect(&sub, &procs(&[pid]), 5 * SECOND);
    assert_eq!(got.len(), 1, "owned exit not announced");
    let e = &got[0];
    assert_eq!(e.termination, Termination::Exited(42));
    assert_eq!(e.reaped_by, ReapedBy::Other);
    assert_eq!(e.comm.as_deref(), Some("sh"));
    assert_eq!(
        e.rusage.and_then(|r| r.max_rss_kib),
        None,
        "no wait4 rusage for a pid not reaped"
    );
    assert_eq!(
        rx.recv_timeout(5 * SECOND).unwrap().seq,
        e.seq,
        "wait resolved"
    );
    // ... but leaves the zombie to its owner, however long the owner takes: while other
    // children are reaped (the owned zombie at the head of the kernel's list does not block
    // them), it stays (checked once they were).
    assert!(is_our_zombie(pid), "the engine reaped an owned pid");
    let t = Instant::now();
    let mut others = HashSet::new();
    for _ in 0..5 {
        let (_c, rx) = identified(
            || r.start_command(&mut Command::new("true")).unwrap(),
            |(_, rx)| rx.pid(),
        );
        others.insert(rx.pid());
    }
    let others = procs(&others);
    let got_others = collect(&sub, &others, 5 * SECOND);
    assert_once_each_in_order(&got_others, &others);
    assert!(got_others.iter().all(|e| e.reaped_by == ReapedBy::Reaper));
    assert!(
        t.elapsed() < 2 * SECOND,
        "others delayed: {:?}",
        t.elapsed()
    );
    assert!(is_our_zombie(pid));

    // The owner reaps it, with the right status, and reports it: not announced again.
    let status = owner_waitpid(pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 42);
    r.report(pid, Termination::from_wait_status(status).unwrap());
    assert_no_more(&sub, &procs(&[pid]), Duration::from_millis(300));
    until("the owned entry is dropped", 5 * SECOND, || {
        r.owned_count() == 0
    });
}

#[test]
fn owner_that_reaps_first_reports_and_the_exit_is_announced_once() {
    let _serial = serial();
    let r = Reaper::global();
    let sub = subscription();
    let mut gate = Gate::new();
    let pid = spawn(&["sh", "-c", "read x; kill -TERM $$"], Some(gate.read_fd()));
    r.own(pid, OWNER);
    // The engine does not look while paused: the owner gets there first.
    r.pause();
    gate.release();
    let status = owner_waitpid(pid);
    assert!(libc::WIFSIGNALED(status));
    assert_eq!(libc::WTERMSIG(status), libc::SIGTERM);
    r.report(pid, Termination::from_wait_status(status).unwrap());
    r.resume();
    let got = collect(&sub, &procs(&[pid]), 5 * SECOND);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status(), 128 + libc::SIGTERM);
    assert_eq!(got[0].reaped_by, ReapedBy::Other);
    assert_eq!(got[0].comm.as_deref(), Some("sh"), "comm kept from own()");
    assert_no_more(&sub, &procs(&[pid]), Duration::from_millis(300));
}

#[test]
fn unowned_pid_reaped_by_another_waiter_is_announced_from_its_report() {
    let _serial = serial();
    let r = Reaper::global();
    let sub = subscription();
    let mut gate = Gate::new();
    let pid = spawn(&["sh", "-c", "read x; exit 5"], Some(gate.read_fd()));
    r.kick();
    let exit = Arc::new(Mutex::new(None));
    let slot = exit.clone();
    r.wait_with(pid, move |e| *slot.lock().unwrap() = Some(e))
        .unwrap();
    let start = start_ticks(pid);
    r.pause();
    gate.release();
    // Someone else (libuv's waitpid) takes the child and hands the exit back, naming the
    // process by pid and start time (as the package's report does).
    let status = owner_waitpid(pid);
    r.report_process(pid, start, Termination::from_wait_status(status).unwrap());
    r.resume();
    // Whichever saw it first (the report, the drain's peek or the pidfd), the exit is this
    // process's, once: should the drain peek it and find it taken before it could name it,
    // the pause holds it for this report.
    let only = procs(&[pid]);
    let got = collect(&sub, &only, 5 * SECOND);
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].status(), got[0].reaped_by), (5, ReapedBy::Other));
    until("the wait resolves", 5 * SECOND, || {
        exit.lock().unwrap().is_some()
    });
    assert_no_more(&sub, &only, Duration::from_millis(300));
}

/// How a native waiter takes its own children.
#[derive(Clone, Copy, Debug)]
enum Waiter {
    /// A thread blocked in `waitpid(pid)` (node-pty).
    Blocking,
    /// `waitpid(pid, WNOHANG)` every 2 ms (Chromium's style).
    Polling,
}

fn reap_as(waiter: Waiter, pid: i32) -> i32 {
    let mut status = 0;
    loop {
        let flags = match waiter {
            Waiter::Blocking => 0,
            Waiter::Polling => libc::WNOHANG,
        };
        // SAFETY: `status` is valid for the kernel to fill.
        let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
        if rc == pid {
            return status;
        }
        assert_eq!(
            rc,
            0,
            "waitpid({pid}): {} (the engine took a native waiter's child)",
            std::io::Error::last_os_error()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `fork()` + `_exit(code)` (the fork hook sees it) or `posix_spawn` of `sh -c 'exit code'`
/// (only the thread's children list attributes it), on the calling thread.
fn make_child(code: i32, with_fork: bool) -> i32 {
    if !with_fork {
        return spawn(&["sh", "-c", &format!("exit {code}")], None);
    }
    // SAFETY: _exit(2) has no preconditions.
    fork_child(|| unsafe { libc::_exit(code) })
}

/// Threads that are not the engine's fork children and wait for them themselves: every status
/// is theirs, and every exit of a `fork()` child is still announced once.
#[test]
fn native_waiters_keep_their_children_and_every_exit_is_announced_once() {
    let _serial = serial();
    Reaper::global();
    let sub = subscription();
    let n = 40;
    let mut all = Vec::new();
    for waiter in [Waiter::Blocking, Waiter::Polling] {
        for with_fork in [true, false] {
            let handle = std::thread::spawn(move || {
                (0..n)
                    .map(|i| {
                        let code = (i * 7 + 3) % 256;
                        let pid = make_child(code, with_fork);
                        let id = identify(pid);
                        let status = reap_as(waiter, pid);
                        assert!(libc::WIFEXITED(status), "{waiter:?}: status {status:#x}");
                        assert_eq!(
                            libc::WEXITSTATUS(status),
                            code,
                            "{waiter:?} fork={with_fork}"
                        );
                        (id, code)
                    })
                    .collect::<Vec<_>>()
            });
            let done = handle
                .join()
                .expect("every native waiter got its own child");
            let pids = Procs::from_procs(done.iter().map(|(p, _)| *p));
            if !with_fork {
                // Made without fork(): the engine learns of such a child only if it sees its
                // exit before its waiter reaps it. Never taken, at most announced once.
                let got = collect(&sub, &pids, Duration::from_millis(300));
                let unique: HashSet<i32> = got.iter().map(|e| e.pid).collect();
                assert_eq!(unique.len(), got.len(), "announced twice: {got:?}");
                continue;
            }
            let got = collect(&sub, &pids, 10 * SECOND);
            assert_once_each_in_order(&got, &pids);
            for e in &got {
                let code = done.iter().find(|(p, _)| p.is_exit_of(e)).unwrap().1;
                assert_eq!(e.termination, Termination::Exited(code), "{e:?}");
                assert_eq!(e.reaped_by, ReapedBy::Other);
            }
            all.extend(done.iter().map(|(p, _)| *p));
        }
    }
    assert_no_more(&sub, &Procs::from_procs(all), Duration::from_millis(200));
}

/// A child whose forking thread has ended is not the engine's in default mode: it stays for
/// whoever waits (here the test, from another thread), announced once.
#[test]
fn a_child_of_an_ended_thread_is_left_in_default_mode() {
    let _serial = serial();
    let r = Reaper::global();
    let sub = subscription();
    let mut gate = Gate::new();
    let fd = gate.read_fd();
    let pid = std::thread::spawn(move || spawn(&["sh", "-c", "read x; exit 9"], Some(fd)))
        .join()
        .unwrap();
    gate.release();
    let only = procs(&[pid]);
    let got = collect(&sub, &only, 5 * SECOND);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].termination, Termination::Exited(9));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        is_our_zombie(pid),
        "the engine reaped a child it did not start"
    );
    // The diagnosis says why it stays. Made with posix_spawn (no fork hook runs), it is listed
    // under the main thread once its own thread has ended, where it cannot be told from an
    // adopted orphan: unclaimed, announced, and left.
    let why = r
        .describe_child(pid)
        .expect("the engine has an entry for it");
    assert!(
        why.starts_with("Unclaimed")
            && why.contains("decided now: Leave")
            && why.contains("announced true, reaped false"),
        "{why}"
    );
    assert_eq!(r.describe_child(i32::MAX), None, "no entry, no description");
    assert!(r.sweep().is_empty(), "a sweep follows the same rules");
    let status = owner_waitpid(pid);
    assert_eq!(libc::WEXITSTATUS(status), 9);
    assert_no_more(&sub, &only, Duration::from_millis(200));
}
