//! Reading zombies' `/proc` entries ahead of the drain, on a second thread, while a burst of
//! adopted zombies is drained.
//!
//! Each exit carries the zombie's name and start time, read before the reap. Where they come
//! from `/proc/<pid>/stat` (taskstats is not served, see `taskstats`), that read costs several
//! times the reap itself (the kernel builds two inodes and formats the whole line). The drain
//! has to peek, decide and reap one zombie at a time, but nothing stops another thread from
//! reading the next zombies' entries meanwhile: once the drain has handled a burst of zombies
//! in one go (an init or subreaper whose orphans arrive together), this thread walks the main
//! thread's children list, where adopted orphans are listed in the order `waitid` hands them
//! out, and reads each zombie the engine does not know of. The drain takes a reading when it
//! gets to that pid, and reads for itself when there is none. A zombie's entry is final, and a
//! zombie holds its pid, so a reading is good until the drain handles that pid; a reading that
//! lands after the drain handled its pid is dropped (the pid may name another process by
//! then), and all readings go when the burst ends.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};

use crate::pid_map::PidMap;
use crate::reaper::Shared;
use crate::wait_source::{ProcInfo, WaitSource};

/// Zombies handled in one drain before the reading thread is started on the rest.
pub(crate) const BURST: usize = 64;

/// How far ahead of the drain the reading thread stays in the list (the drain is at its
/// head, and takes the first ones before a reading could land).
const LEAD: usize = 16;

/// Readings handed over under one lock.
const INSERT_BATCH: usize = 8;

#[derive(Default)]
pub(crate) struct Prefetch {
    /// Set while a burst is being drained; checked without the lock on every zombie.
    active: AtomicBool,
    state: Mutex<Readings>,
    wake: Condvar,
    started: AtomicBool,
    /// Bursts begun so far: a walk of an earlier burst stops.
    burst: AtomicU64,
    /// Zombies the drain has handled in this burst (it takes the list from its head).
    handled: AtomicUsize,
}

#[derive(Default)]
struct Readings {
    infos: PidMap<ProcInfo>,
    /// Pids the drain has handled during this burst.
    taken: HashSet<i32>,
    /// The burst the reading thread last walked.
    walked: u64,
    shutdown: bool,
}

impl Prefetch {
    fn lock(&self) -> MutexGuard<'_, Readings> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The drain is in a burst: starts (once) or wakes the reading thread.
    pub(crate) fn begin<W: WaitSource>(&self, shared: &Weak<Shared<W>>) {
        if self.active.swap(true, Ordering::AcqRel) {
            return;
        }
        self.handled.store(0, Ordering::Relaxed);
        {
            // Under the lock the reading thread checks it under: no wake-up is lost.
            let _st = self.lock();
            self.burst.fetch_add(1, Ordering::AcqRel);
        }
        if !self.started.swap(true, Ordering::AcqRel) {
            let shared = shared.clone();
            let started =
                crate::engine_thread::spawn("subreaper-stat", move || read_ahead(&shared));
            if started.is_err() {
                // No second thread: the drain reads for itself, as without this module.
                self.active.store(false, Ordering::Release);
                return;
            }
        }
        self.wake.notify_all();
    }

    /// The burst is over: every reading goes (a pid may be reused from now on).
    pub(crate) fn end(&self) {
        if !self.active.swap(false, Ordering::AcqRel) {
            return;
        }
        let mut st = self.lock();
        st.infos = PidMap::default();
        st.taken = HashSet::new();
    }

    /// The drain handles `pid` now: its reading, if one landed. Call it for every zombie the
    /// drain handles in a burst, so that a reading landing later is dropped.
    pub(crate) fn take(&self, pid: i32) -> Option<ProcInfo> {
        if !self.active.load(Ordering::Acquire) {
            return None;
        }
        self.handled.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        st.taken.insert(pid);
        st.infos.remove(&pid)
    }

    /// Hands readings of `burst` to the drain, but none of a pid it has handled since.
    fn land(&self, burst: u64, batch: &mut Vec<(i32, ProcInfo)>) {
        if batch.is_empty() {
            return;
        }
        let mut st = self.lock();
        if self.burst.load(Ordering::Acquire) == burst && self.active.load(Ordering::Acquire) {
            for (pid, info) in batch.drain(..) {
                if !st.taken.contains(&pid) {
                    st.infos.insert(pid, info);
                }
            }
        }
        batch.clear();
    }

    pub(crate) fn shutdown(&self) {
        self.lock().shutdown = true;
        self.wake.notify_all();
    }
}

/// The reading thread: one walk of the main thread's children list per burst.
fn read_ahead<W: WaitSource>(shared: &Weak<Shared<W>>) {
    loop {
        let Some(engine) = shared.upgrade() else {
            return;
        };
        let prefetch = &engine.prefetch;
        let burst = {
            let mut st = prefetch.lock();
            loop {
                let burst = prefetch.burst.load(Ordering::Acquire);
                if st.shutdown {
                    return;
                }
                if burst != st.walked && prefetch.active.load(Ordering::Acquire) {
                    st.walked = burst;
                    break burst;
                }
                st = prefetch.wake.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        };
        walk(&engine, burst);
    }
}

fn walk<W: WaitSource>(engine: &Arc<Shared<W>>, burst: u64) {
    let prefetch = &engine.prefetch;
    let main = engine.main_thread;
    let Some(pids) = engine.source.thread_children(main) else {
        return;
    };
    // A child someone declared or forked here may be reaped by its owner, and its pid reused,
    // before the drain gets to it: only children nobody knows of (orphans) are read. One look
    // at the engine's table, not one per pid (the drain holds that lock while it reaps).
    let known = engine.known_pids();
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    for (at, pid) in pids.into_iter().enumerate().skip(LEAD) {
        if !prefetch.active.load(Ordering::Acquire)
            || prefetch.burst.load(Ordering::Acquire) != burst
        {
            return;
        }
        // The drain takes the list from its head: it is past this one already.
        if at < prefetch.handled.load(Ordering::Relaxed) + LEAD || known.contains(&pid) {
            continue;
        }
        // Only a zombie's entry is final: a live child may still exec or rename itself.
        if let Some(info) = engine.source.inspect_zombie(pid) {
            batch.push((pid, info));
        }
        if batch.len() == INSERT_BATCH {
            prefetch.land(burst, &mut batch);
        }
    }
    prefetch.land(burst, &mut batch);
}
