//! Sleeping without `waitid` while every child's owner reports its exit.
//!
//! The drain sleeps in `waitid(P_ALL)` to see any child's exit, orphans included, and the
//! kernel wakes it from each exiting child's own exit path. On a small machine that delays the
//! owner woken by the same exit (Node's main thread: its `'exit'` comes later). The kernel
//! filters those wake-ups only by pid or process group, so the drain cannot wait for some
//! children and not others. What it can do is not sleep there when it has nothing to do:
//! while a *hint source* exists (the Node binding's SIGCHLD handle on the main thread's event
//! loop, which calls [`Reaper::children_may_have_exited`] once libuv has reaped its own
//! children) and every child of the process is declared by an owner that reports its exit
//! (or is being spawned by one), the drain sleeps on its condition variable instead. The
//! owners' reports announce their children; the hint wakes the drain for any other zombie
//! (an orphan re-parented meanwhile, a child made without `fork()`); with no hint for
//! [`crate::Config::idle_sweep`] (an event loop blocked that long) it looks by itself.
//! PID 1 always sleeps in `waitid`: reaping orphans at once is its job.

use std::sync::atomic::Ordering;

use crate::ownership::Claim;
use crate::reaper::{Activity, Reaper, Shared, State};
use crate::wait_source::{Peek, WaitSource};

impl<W: WaitSource> Shared<W> {
    /// Whether the drain, having found no exited child, may sleep without `waitid` now.
    pub(crate) fn owners_report_every_child(&self) -> bool {
        if self.hint_sources.load(Ordering::Relaxed) == 0 || crate::process_role::is_init() {
            return false;
        }
        // The children the engine knows first (no system call): one whose owner does not
        // report settles it.
        if !self.lock().known_children_report() {
            return false;
        }
        // Then orphans and the main thread's own children, listed there. A list too long for
        // one short read holds children nobody declared: `waitid`, without reading further.
        let main_thread = self.main_thread;
        let Some(main) = self.source.short_thread_children(main_thread) else {
            return false;
        };
        let st = self.lock();
        // A child the fork hook has not registered yet while the main thread forks: most
        // likely that fork's child (the hook nudges the drain once it is registered).
        let forking = st.is_spawning(main_thread);
        // The known children again, under the lock the list is judged under: one registered
        // since the first look (the lock was let go for the read) counts too.
        main.iter().all(|&pid| {
            st.children
                .get(pid)
                .map_or(forking, |c| st.reports(c.claim))
        }) && st.known_children_report()
    }

    /// A hint that children may have exited: wakes the drain if a zombie is there and the drain
    /// is not in `waitid` (which sees it by itself). The orphans a reported child leaves need
    /// no hint: the exit watch sees that child reaped and nudges the drain, which then finds
    /// them on the main thread's list and waits for them in `waitid`.
    pub(crate) fn hinted(&self) {
        if self.lock().activity() == Activity::WaitingForExit {
            return;
        }
        if matches!(self.source.peek(false), Ok(Peek::Exited { .. })) {
            self.nudge();
        }
    }
}

impl State {
    /// Whether the exit of a child with this claim comes from its owner's report.
    fn reports(&self, claim: Claim) -> bool {
        match claim {
            Claim::Declared { reports, .. } => reports,
            // Its spawn is in flight: declared as soon as the spawn returns.
            Claim::Forked { tid } | Claim::MaybeForked { tid } => self.is_spawning(tid),
            _ => false,
        }
    }

    /// Whether every child the engine knows and nobody has reaped is reported by its owner.
    fn known_children_report(&self) -> bool {
        self.children
            .iter()
            .all(|(_, c)| c.reaped || self.reports(c.claim))
    }
}

impl<W: WaitSource> Reaper<W> {
    /// Registers a hint source: something that calls [`Reaper::children_may_have_exited`] after
    /// every SIGCHLD, once the owners it runs beside have reaped their children. While one is
    /// registered, the drain may keep out of `waitid` (see the module's documentation).
    pub fn add_exit_hint_source(&self) {
        self.shared.hint_sources.fetch_add(1, Ordering::Relaxed);
        self.shared.kick();
    }

    /// Unregisters a hint source: without any, the drain goes back to sleeping in `waitid`.
    pub fn remove_exit_hint_source(&self) {
        let _ = self
            .shared
            .hint_sources
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        self.shared.kick();
    }

    /// A hint source's call after a SIGCHLD: children may have exited.
    pub fn children_may_have_exited(&self) {
        self.shared.hinted();
    }
}
