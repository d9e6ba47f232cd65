//! Every `fork()` in the process tells the engine, from the thread that forked, before it
//! returns: the new child is registered as that thread's, so the engine never takes it for an
//! orphan, and its pidfd is watched from its first instant.
//!
//! libuv forks with `fork()` for every `child_process` spawn (in every thread, whether that
//! thread loaded subreaper or not), and so do node-pty (`forkpty`) and most native code.
//! `pthread_atfork` handlers run in the forking thread around each of those. They do not run
//! for `vfork`, `posix_spawn` or a raw `clone`: children made that way are attributed by the
//! per-thread children lists instead (see `ownership`).

use std::cell::{Cell, RefCell};
use std::sync::Once;

use crate::reaper::Reaper;

thread_local! {
    /// When this thread's current fork began (ns since boot, on the start-time clock).
    static FORK_BEGAN: Cell<u64> = const { Cell::new(0) };
    /// This thread's children just before its current fork.
    static BEFORE: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    /// The last pid allocated in the namespace just before it.
    static LAST_PID: Cell<Option<i32>> = const { Cell::new(None) };
}

extern "C" fn prepare() {
    FORK_BEGAN.with(|t| t.set(crate::procfs::now_ns()));
    let before = crate::procfs::own_thread_children().unwrap_or_default();
    BEFORE.with(|b| *b.borrow_mut() = before);
    LAST_PID.with(|l| l.set(crate::procfs::last_pid()));
    // The child may exit before fork() returns here: until then it is held, not taken for
    // an orphan.
    if let Some(reaper) = Reaper::try_global() {
        reaper.pause();
    }
}

extern "C" fn parent() {
    let Some(reaper) = Reaper::try_global() else {
        return;
    };
    let began = FORK_BEGAN.with(Cell::get);
    let since = crate::procfs::ns_to_ticks(began);
    // The new child is an entry that appeared in this thread's list during the fork, with a
    // pid allocated during it. An orphan re-parented here meanwhile appears too, but its pid
    // was allocated before (unless it was born in those same microseconds).
    if let Some(after) = crate::procfs::own_thread_children() {
        let before = BEFORE.with(|b| std::mem::take(&mut *b.borrow_mut()));
        let mut new: Vec<i32> = after.into_iter().filter(|p| !before.contains(p)).collect();
        // Those allocated during the fork were also started during it: where it began and
        // ended in one clock tick, that tick is their start time, with no `/proc` read.
        let mut started = None;
        if let (Some(first), Some(last)) = (LAST_PID.with(Cell::get), crate::procfs::last_pid()) {
            let during: Vec<i32> = new
                .iter()
                .copied()
                .filter(|&p| crate::procfs::allocated_between(p, first, last))
                .collect();
            if !during.is_empty() {
                new = during;
                started = crate::procfs::start_tick_between(began, crate::procfs::now_ns());
            }
        }
        reaper.note_fork(crate::procfs::current_thread(), since, &new, started);
    }
    reaper.resume();
}

/// Installs the hook once per process. Handlers cannot be removed, and the addon that holds
/// them is never unloaded by Node, so they stay valid for the life of the process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: both handlers are `extern "C"` functions with static lifetime that do not
        // unwind; no handler is given for the child, which runs nothing of ours.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), None);
        }
    });
}
