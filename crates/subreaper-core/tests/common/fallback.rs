//! The scenario the kernel-fallback tests run, each in a test process of its own with one
//! `SUBREAPER_HIDE` setting (read once per process): native waiters that fork and reap their
//! own children, blocking and polling, beside the engine. What the kernel does not tell the
//! engine (a pidfd's hang-up, the status after the reap, pidfds at all) it must find out
//! itself: every waiter keeps its status, every exit is announced once (its status, or
//! unknown where the kernel kept none), and no entry is left.

use std::time::Duration;

use subreaper_core::{ReapedBy, Reaper, SubscribeOptions, Termination};

use super::*;

/// A thread forks `n` children and waits for each itself, blocking or polling every 2 ms.
fn native_waiter(n: i32, blocking: bool) -> Vec<(Proc, i32)> {
    std::thread::spawn(move || {
        (0..n)
            .map(|i| {
                let code = (i * 7 + 3) % 256;
                // SAFETY: _exit(2) has no preconditions.
                let pid = fork_child(|| unsafe { libc::_exit(code) });
                let id = identify(pid);
                let mut status = 0;
                loop {
                    let flags = if blocking { 0 } else { libc::WNOHANG };
                    // SAFETY: `status` is valid for the kernel to fill.
                    let rc = unsafe { libc::waitpid(pid, &mut status, flags) };
                    if rc == pid {
                        break;
                    }
                    assert_eq!(
                        rc, 0,
                        "waitpid({pid}): the engine took a native waiter's child"
                    );
                    std::thread::sleep(Duration::from_millis(2));
                }
                assert_eq!(libc::WEXITSTATUS(status), code, "the waiter's own status");
                (id, code)
            })
            .collect()
    })
    .join()
    .expect("every native waiter got its own child")
}

/// Runs the scenario under `hide` (a `SUBREAPER_HIDE` value); returns how many statuses were
/// unknown, for the caller to judge.
pub fn native_waiters_under(hide: &str) -> usize {
    // Before anything of the engine reads it (this process runs only this test).
    std::env::set_var("SUBREAPER_HIDE", hide);
    let r = Reaper::global();
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 4096,
        ..SubscribeOptions::default()
    });
    let mut unknown = 0;
    for blocking in [true, false] {
        let done = native_waiter(100, blocking);
        let pids = Procs::from_procs(done.iter().map(|(p, _)| *p));
        let got = collect(&sub, &pids, 20 * Duration::from_secs(1));
        assert_once_each_in_order(&got, &pids);
        for e in &got {
            let code = done.iter().find(|(p, _)| p.is_exit_of(e)).unwrap().1;
            assert_eq!(e.reaped_by, ReapedBy::Other, "{e:?}");
            match e.termination {
                Termination::Unknown => unknown += 1,
                t => assert_eq!(t, Termination::Exited(code), "{e:?}"),
            }
        }
        assert_no_more(&sub, &pids, Duration::from_millis(200));
    }
    until(
        "the engine holds no entry",
        10 * Duration::from_secs(1),
        || {
            let s = r.stats();
            s.known == 0 && s.watched == 0
        },
    );
    unknown
}
