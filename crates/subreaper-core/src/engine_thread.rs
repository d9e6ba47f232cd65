//! How the engine's threads are started: named, and scheduled so that they never push aside
//! the threads they serve.
//!
//! Each child's exit wakes the reaper's threads at the very moment the owner's thread (an event
//! loop about to reap and call back) wakes too. A thread that slept a long time has little CPU
//! time on its account, so by default the kernel lets it preempt the running one on wake-up:
//! on a small machine the event loop then waits for the engine's bookkeeping. `SCHED_BATCH`
//! keeps its full share of CPU but gives up that wake-up preemption: the engine's threads run
//! on an idle CPU, or once the thread they woke beside has had its turn. Only a thread started
//! with the default policy is moved: one started `SCHED_IDLE`, `SCHED_BATCH` or real-time (the
//! process was run so, with `chrt` say) keeps the policy it was given, never raised above it.

use std::io;
use std::thread::{self, JoinHandle};

/// Starts a named engine thread.
pub(crate) fn spawn<F>(name: &str, run: F) -> io::Result<JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    thread::Builder::new().name(name.into()).spawn(move || {
        yield_on_wake_up();
        run()
    })
}

#[cfg(target_os = "linux")]
fn yield_on_wake_up() {
    // SAFETY: querying the calling thread's policy has no preconditions.
    if unsafe { libc::sched_getscheduler(0) } != libc::SCHED_OTHER {
        return;
    }
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; pid 0 is the calling thread. A failure (a
    // seccomp filter, say) leaves the thread as it was, which is only slower to yield.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
}

#[cfg(not(target_os = "linux"))]
fn yield_on_wake_up() {}

#[cfg(test)]
mod tests {
    #[test]
    fn an_engine_thread_runs_batch_scheduled() {
        // SAFETY: querying the calling thread's policy has no preconditions.
        let given = unsafe { libc::sched_getscheduler(0) };
        // Run under `chrt`, the suite's threads start with another policy, which is kept.
        let want = if given == libc::SCHED_OTHER {
            libc::SCHED_BATCH
        } else {
            given
        };
        let policy = super::spawn("subreaper-test", move || {
            // SAFETY: querying the calling thread's policy has no preconditions.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy, want);
        })
        .expect("spawn")
        .join();
        assert!(policy.is_ok(), "the thread's assertion failed");
    }

    #[test]
    fn an_engine_thread_started_idle_stays_idle() {
        // A thread of its own, since the policy is inherited and not given back here.
        let checked = std::thread::spawn(|| {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: a valid sched_param for the calling thread; lowering needs no privilege.
            assert_eq!(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) },
                0
            );
            super::spawn("subreaper-test", || {
                // SAFETY: querying the calling thread's policy has no preconditions.
                let policy = unsafe { libc::sched_getscheduler(0) };
                assert_eq!(policy, libc::SCHED_IDLE, "raised from SCHED_IDLE");
            })
            .expect("spawn")
            .join()
        })
        .join()
        .expect("the idle thread");
        assert!(checked.is_ok(), "the engine thread's assertion failed");
    }
}
