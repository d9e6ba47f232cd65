//! A child made by `fork()` is registered by the fork hook before `fork()` returns, with the
//! start time that names it: where the fork began and ended within one clock tick that is the
//! tick, with no `/proc` read; otherwise `/proc` is read. Over many forks (some straddle a tick)
//! the start time the engine holds is the one `/proc` gives, and the name read when the child is
//! declared is the program it exec'd.
#![cfg(target_os = "linux")]

mod common;

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use subreaper_core::{Reaper, SubscribeOptions};

const OWNER: u64 = 11;
const FORKS: usize = 200;

/// `fork()` + `execv(argv)`: the fork hook runs around it, as around libuv's spawns.
fn fork_exec(argv: &[&str]) -> i32 {
    let args: Vec<CString> = argv.iter().map(|a| CString::new(*a).unwrap()).collect();
    let mut ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: the child calls only execv (async-signal-safe) on memory prepared before the
    // fork, then `fork_child`'s _exit if it failed.
    fork_child(|| unsafe {
        libc::execv(ptrs[0], ptrs.as_ptr());
    })
}

fn comm(pid: i32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

#[test]
fn a_forked_child_is_registered_with_the_start_time_proc_gives_it() {
    let r = Reaper::global();
    let sleep = program("sleep");
    let mut pids = Vec::new();
    for _ in 0..FORKS {
        let pid = fork_exec(&[&sleep, "60"]);
        pids.push(pid);
        let registered = r.own(pid, OWNER);
        let proc_says = start_ticks(pid);
        assert!(proc_says.is_some(), "pid {pid} has no /proc entry");
        assert_eq!(registered, proc_says, "start time of pid {pid}");
    }
    // Declared once exec'd: the name is the program's, as a spawn that returns after exec sees.
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 1024,
        ..SubscribeOptions::default()
    });
    let last = fork_exec(&[&sleep, "60"]);
    until("the child has exec'd", Duration::from_secs(5), || {
        comm(last).as_deref() == Some("sleep")
    });
    let start = r.own_reporting(last, OWNER);
    assert_eq!(start, start_ticks(last));
    pids.push(last);
    for &pid in &pids {
        // SAFETY: plain kill(2) of our own children.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &pids {
        owner_waitpid(pid);
    }
    // The owner's report (or, if it comes late, the engine's look at the zombie) announces it,
    // with the name read when it was declared.
    let termination = subreaper_core::Termination::Signaled {
        signal: libc::SIGKILL,
        core_dumped: false,
    };
    r.report_process(last, start, termination);
    let exit = loop {
        match sub.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(e)) if e.pid == last => break e,
            Ok(Some(_)) => continue,
            other => panic!("no exit of pid {last}: {other:?}"),
        }
    };
    assert_eq!(exit.comm.as_deref(), Some("sleep"));
    assert_eq!(exit.status(), 128 + libc::SIGKILL);
}

/// A child that a thread `fork()`ed, the thread then ending, stays that thread's (the fork hook
/// said so, and the kernel now lists it under another thread): in default mode its exit is
/// announced and the zombie is left, since a waiter elsewhere in the process may still take it.
/// The engine's description of it says so.
#[test]
fn a_forked_child_of_an_ended_thread_is_announced_and_left() {
    let r = Reaper::global();
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 1024,
        ..SubscribeOptions::default()
    });
    let sh = program("sh");
    let (tid, pid) = std::thread::spawn(move || {
        // SAFETY: gettid(2) has no preconditions.
        let tid = unsafe { libc::gettid() };
        (
            tid,
            identified(|| fork_exec(&[&sh, "-c", "exit 5"]), |p| *p),
        )
    })
    .join()
    .unwrap();
    let only = procs(&[pid]);
    let got = collect(&sub, &only, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].status(), 5);
    let why = r
        .describe_child(pid)
        .expect("the engine has an entry for it");
    let thread = format!("Forked {{ tid: {tid} }}, thread {tid} ended;");
    assert!(why.starts_with(&thread), "{why}");
    assert!(why.contains("decided now: Leave"), "{why}");
    assert!(
        is_our_zombie(pid),
        "the engine reaped a child it did not start"
    );
    assert_eq!(libc::WEXITSTATUS(owner_waitpid(pid)), 5);
}

fn exit_at_once() {
    // SAFETY: _exit(2) has no preconditions.
    unsafe { libc::_exit(0) }
}

fn wait_for_signal() {
    loop {
        // SAFETY: pause(2) has no preconditions.
        unsafe { libc::pause() };
    }
}

/// The kernel's children list can skip the entry after one reaped while the list is read, and
/// a fork's child is listed last: read once after the fork, it missed its child 4-10 times in
/// 20,000 forks while another thread reaped the child before it (bench/children-list-skip.c).
/// The fork hook then reads it again, so every child is registered as its thread's before
/// `fork()` returns.
#[test]
fn a_forked_child_is_registered_while_another_thread_reaps_the_one_before_it() {
    const ROUNDS: usize = 20_000;
    let r = Reaper::global();
    let handoff = Arc::new(AtomicI32::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // It spins rather than blocks: the reap must come while the forking thread reads its list.
    let waiter = {
        let (handoff, stop) = (handoff.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Acquire) {
                let pid = handoff.load(Ordering::Acquire);
                if pid > 0 {
                    owner_waitpid(pid);
                    handoff.store(0, Ordering::Release);
                } else {
                    std::hint::spin_loop();
                }
            }
        })
    };
    // SAFETY: gettid(2) has no preconditions.
    let tid = unsafe { libc::gettid() };
    let ours = format!("Forked {{ tid: {tid} }}");
    let mut missed = Vec::new();
    for _ in 0..ROUNDS {
        handoff.store(fork_child(exit_at_once), Ordering::Release);
        let child = fork_child(wait_for_signal);
        let registered = r.describe_child(child);
        if !registered.as_deref().is_some_and(|d| d.starts_with(&ours)) {
            missed.push((child, registered));
        }
        // SAFETY: plain kill(2) of our own child.
        unsafe { libc::kill(child, libc::SIGKILL) };
        owner_waitpid(child);
        while handoff.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
    }
    stop.store(true, Ordering::Release);
    waiter.join().unwrap();
    assert!(
        missed.is_empty(),
        "{} of {ROUNDS} children were not registered as thread {tid}'s when fork() returned: {missed:?}",
        missed.len()
    );
}
