//! How the engine's threads are started: named, and scheduled so that they never push aside
//! the threads they serve.
//!
//! Each child's exit wakes the reaper's threads at the very moment the owner's thread (an event
//! loop about to reap and call back) wakes too. A thread that slept a long time has little CPU
//! time on its account, so by default the kernel lets it preempt the running one on wake-up:
//! on a small machine the event loop then waits for the engine's bookkeeping. `SCHED_BATCH`
//! keeps its full share of CPU but gives up that wake-up preemption: the engine's threads run
//! on an idle CPU, or once the thread they woke beside has had its turn.

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
        let policy = super::spawn("subreaper-test", || {
            // SAFETY: querying the calling thread's policy has no preconditions.
            let policy = unsafe { libc::sched_getscheduler(0) };
            assert_eq!(policy, libc::SCHED_BATCH);
        })
        .expect("spawn")
        .join();
        assert!(policy.is_ok(), "the thread's assertion failed");
    }
}
