//! Where exits are reaped: the reaper thread sleeps in the kernel until any child exits, then
//! handles every exited child until none is left (SIGCHLD coalesces; the drain does not care).
//!
//! Each zombie is announced once, and reaped only if the ownership rules give it to the engine.
//! A zombie left to its owner stays first in `waitid`'s line until the owner reaps it, so while
//! one is there the drain looks past it through the children lists, with a short backoff; the
//! exit watch sees the exits of every known child meanwhile and wakes the drain when the owner
//! has reaped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exit::{Exit, ReapedBy, Termination};
use crate::ownership::{Child, Claim, Disposition};
use crate::reaper::{Activity, Shared, TakenUnnamed};
use crate::wait_source::{ChildState, Peek, WaitSource};

/// How long the first zombie may be an owner's before the drain looks past it: libuv usually
/// reaps within this, and every known child's exit is seen through its pidfd meanwhile.
const OWNER_GRACE_BEFORE_SCAN: Duration = Duration::from_millis(4);

pub(crate) enum DrainEnd {
    NothingExited,
    NoChildren,
    /// The first zombie in line is left to its owner (or held until `until`).
    Left {
        pid: i32,
        until: Option<Instant>,
    },
}

enum Handled {
    /// Recorded now, or already announced and reaped now: look at the next zombie.
    Done(Option<Arc<Exit>>),
    /// Announced (now or before) and left in place.
    Left(Option<Instant>),
}

impl<W: WaitSource> Shared<W> {
    pub(crate) fn run(&self) {
        let mut backoff = Duration::from_millis(1);
        let mut left_since: Option<Instant> = None;
        loop {
            // Kicks are counted from before the drain: a kick that lands while it runs (a
            // child forked just after the drain found none) must cut the next sleep short.
            let kicks = {
                let st = self.lock();
                if st.shutdown {
                    drop(st);
                    self.set_activity(Activity::Stopped);
                    return;
                }
                st.kicks
            };
            self.set_activity(Activity::Draining);
            let scan = left_since.is_some_and(|t| t.elapsed() >= OWNER_GRACE_BEFORE_SCAN);
            let (_, end) = self.drain(scan);
            match end {
                DrainEnd::NothingExited => {
                    backoff = Duration::from_millis(1);
                    left_since = None;
                    if self.owners_report_every_child() {
                        self.set_activity(Activity::WaitingForReports);
                        self.sleep(kicks, self.config.idle_sweep);
                    } else {
                        self.set_activity(Activity::WaitingForExit);
                        // Sleeps in the kernel until any child exits: no signal, no polling.
                        let _ = self.source.peek(true);
                    }
                }
                DrainEnd::NoChildren => {
                    backoff = Duration::from_millis(1);
                    left_since = None;
                    self.set_activity(Activity::NoChildren);
                    self.sleep(kicks, self.config.idle_sweep);
                }
                DrainEnd::Left { pid, until } => {
                    left_since.get_or_insert_with(Instant::now);
                    self.set_activity(Activity::LeftToOwner(pid));
                    let mut nap = backoff;
                    if let Some(at) = until {
                        nap = nap.min(at.saturating_duration_since(Instant::now()));
                    }
                    self.sleep(kicks, nap.max(Duration::from_micros(100)));
                    backoff = (backoff * 2).min(self.config.owner_poll_max);
                }
            }
        }
    }

    /// Sleeps until kicked (any kick after the `kicks` count was read), shut down, or
    /// `timeout`.
    fn sleep(&self, kicks: u64, timeout: Duration) {
        let st = self.lock();
        let _ = self
            .wake
            .wait_timeout_while(st, timeout, |st| !st.shutdown && st.kicks == kicks)
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Handles every exited child until none is left or the first one is left to its owner;
    /// with `scan_past`, then also every other exited child behind it.
    pub(crate) fn drain(&self, scan_past: bool) -> (Vec<Arc<Exit>>, DrainEnd) {
        let _reaping = self.reap_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Read once there is a zombie to decide on: an idle look (no child, none exited)
        // costs one system call.
        let mut role_read = false;
        let mut exits = Vec::new();
        let mut handled = 0;
        let end = loop {
            let since = {
                let mut st = self.lock();
                // A finished entry can only match a peek made before it finished; the peek
                // below is made after, so the entry can go.
                st.children.drop_finished();
                st.seq
            };
            let peek = match self.source.peek(false) {
                Ok(p) => p,
                Err(_) => break DrainEnd::NoChildren,
            };
            let (pid, termination) = match peek {
                Peek::NoChildren => break DrainEnd::NoChildren,
                Peek::NoneExited => break DrainEnd::NothingExited,
                Peek::Exited { pid, termination } => (pid, termination),
            };
            if !std::mem::replace(&mut role_read, true) {
                self.refresh_role();
            }
            match self.handle(pid, termination, since, handled == 0) {
                Handled::Done(exit) => {
                    exits.extend(exit);
                    handled += 1;
                    if handled == crate::prefetch::BURST && self.source.identifies_by_proc() {
                        self.prefetch.begin(&self.me);
                    }
                }
                Handled::Left(until) => {
                    let mut until = until;
                    if scan_past {
                        let (more, held) = self.scan_past(pid, since);
                        exits.extend(more);
                        until = match (until, held) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        };
                    }
                    break DrainEnd::Left { pid, until };
                }
            }
        };
        self.prefetch.end();
        let mut st = self.lock();
        self.publish(&mut st);
        (exits, end)
    }

    /// Every child but `head`, by the per-thread lists (or a walk of `/proc` where there are
    /// none): the exited ones are handled, unknown live ones registered and watched.
    fn scan_past(&self, head: i32, since: u64) -> (Vec<Arc<Exit>>, Option<Instant>) {
        let main = self.main_thread;
        let pids: Vec<(i32, Option<i32>)> = match self.source.children_by_thread(None) {
            Some(lists) => lists
                .into_iter()
                .flat_map(|(tid, pids)| pids.into_iter().map(move |p| (p, Some(tid))))
                .collect(),
            None => self
                .source
                .all_children()
                .into_iter()
                .map(|p| (p, None))
                .collect(),
        };
        let mut exits = Vec::new();
        let mut held: Option<Instant> = None;
        for (pid, tid) in pids {
            if pid == head {
                continue;
            }
            {
                let mut st = self.lock();
                match st.children.get(pid) {
                    // Announced and left to its owner; looked at again below all the same, since
                    // its owner may have gone meanwhile (a torn-down worker's child is the
                    // engine's to reap now).
                    Some(_) => {}
                    None => {
                        let claim = match tid {
                            Some(t) if t != main => Claim::Forked { tid: t },
                            _ => Claim::Unclaimed,
                        };
                        let Some(start) = self.source.inspect(pid).start_time else {
                            // Reaped by its waiter since the lists were read.
                            continue;
                        };
                        st.children.insert(pid, Child::new(claim, Some(start)));
                        self.ensure_watched(&mut st, pid);
                    }
                }
            }
            let Some(termination) = self.source.peek_pid(pid) else {
                continue;
            };
            match self.handle(pid, termination, since, false) {
                Handled::Done(exit) => exits.extend(exit),
                Handled::Left(Some(at)) => held = Some(held.map_or(at, |h| h.min(at))),
                Handled::Left(None) => {}
            }
        }
        (exits, held)
    }

    /// One zombie, as a peek found it. `since`: the number of the last exit recorded before
    /// the peek; `first`: the first zombie of this drain.
    fn handle(&self, pid: i32, termination: Termination, since: u64, first: bool) -> Handled {
        // Named while the child is still a zombie: afterwards neither taskstats nor /proc knows
        // it. Not for a child whose name and start time are known (registered at its spawn):
        // wait4 gives the rest, or, for a zombie left to its owner, /proc once it is announced.
        let known = {
            let st = self.lock();
            st.children
                .get(pid)
                .filter(|c| {
                    (c.announced || (c.comm.is_some() && c.start_time.is_some()))
                        // Certainly this very process: its pidfd is open.
                        && c.pidfd.is_some()
                })
                .map(|c| crate::wait_source::ProcInfo {
                    // The entry keeps its name, and the exit takes it from there.
                    comm: None,
                    start_time: c.start_time,
                    rusage: None,
                })
        };
        // Taken in any case during a burst: a reading of this pid that lands later is stale.
        let ahead = self.prefetch.take(pid);
        // A reading holds the zombie's whole resource usage (a `/proc` one) or its name and
        // start time alone (taskstats: the reap gives the rest).
        let (mut info, whole) = match (known, ahead) {
            (Some(info), _) => (info, false),
            (None, Some(info)) => (info, true),
            (None, None) => self.source.identify_exited(pid),
        };
        let mut st = self.lock();
        let now = Instant::now();
        if st.children.get_current(pid, info.start_time).is_none() {
            // A zombie holds its pid: an exit of this pid recorded since the peek is this one
            // (its owner reaped and reported it meanwhile).
            if st.recent.get(pid).is_some_and(|e| e.seq > since) {
                return Handled::Done(None);
            }
            if info.start_time.is_none() && self.source.child_state(pid) == ChildState::NotAChild {
                // Unknown, and reaped by another waiter since the peek.
                let taken = TakenUnnamed {
                    pid,
                    termination,
                    rusage: info.rusage,
                    comm: info.comm.take(),
                };
                let Some(fired) = self.announce_taken(&mut st, taken) else {
                    return Handled::Done(None);
                };
                let exit = fired.exit.clone();
                drop(st);
                fired.run();
                return Handled::Done(Some(exit));
            }
            let claim = self.classify(&mut st, pid, info.start_time, first);
            st.children.insert(pid, Child::new(claim, info.start_time));
        }
        let child = st.children.get_mut(pid).expect("inserted above");
        if child.reaped {
            // Its owner reported it between this peek and now: announced once already.
            return Handled::Done(None);
        }
        let zombie_since = *child.zombie_since.get_or_insert(now);
        // The name moves to the entry, and from it to the exit at the reap: no copy per exit.
        if child.comm.is_none() {
            child.comm = info.comm.take();
        }
        let start_time = child.start_time.or(info.start_time);
        let announced = child.announced;
        let claim = child.claim;
        match self.decide_now(&st, claim, zombie_since) {
            Disposition::Reap => {
                // The state lock is held across the reap so that `wait` sees either a live
                // child or its recorded exit, never neither.
                let reaped = self.source.reap(pid).unwrap_or_default();
                if reaped.is_none() && self.source.child_state(pid) == ChildState::Running {
                    // Not an exit after all (a traced child resumed).
                    st.children.get_mut(pid).expect("present").zombie_since = None;
                    return Handled::Done(None);
                }
                let comm = st.children.remove(pid).and_then(|c| c.comm);
                st.threads.forget(pid);
                let (termination, rusage, by) = match reaped {
                    Some((t, ru)) => (t, Some(ru), ReapedBy::Reaper),
                    None => {
                        // Another waiter took it between the peek and the reap; an exit of
                        // this pid recorded since the peek is this one (the zombie held the
                        // pid until that reap).
                        if announced || st.recent.get(pid).is_some_and(|e| e.seq > since) {
                            return Handled::Done(None);
                        }
                        self.note_lost(&mut st, pid);
                        (termination, info.rusage, ReapedBy::Other)
                    }
                };
                if announced {
                    return Handled::Done(None);
                }
                let identity = (comm, start_time);
                let fired = self.record(&mut st, pid, termination, rusage, identity, by);
                let exit = fired.exit.clone();
                drop(st);
                fired.run();
                Handled::Done(Some(exit))
            }
            Disposition::Leave => {
                self.ensure_watched(&mut st, pid);
                if announced {
                    return Handled::Left(None);
                }
                // The zombie's CPU times and faults, which wait4 would have given.
                let info = if whole {
                    info
                } else {
                    self.source.inspect(pid)
                };
                let fired = self.announce_left(&mut st, pid, termination, &info);
                drop(st);
                fired.run();
                Handled::Left(None)
            }
            // Not announced until decided, so that the exit says who reaped it. Should its
            // waiter reap it meanwhile, the pidfd still gives its exit to the watch.
            Disposition::Hold(at) => {
                self.ensure_watched(&mut st, pid);
                Handled::Left(at)
            }
        }
    }

    /// The claim of a child the engine meets for the first time as a zombie: a live thread's
    /// fork if that thread's children list holds it, else unclaimed. With `first` (the first
    /// zombie of a drain: most often a lone adopted orphan), one short read of the main
    /// thread's list, where orphans are, settles it without reading every other thread's
    /// list (a pid is on one list only). A burst pays for one reading of every list instead,
    /// which then answers for all its zombies.
    fn classify(
        &self,
        st: &mut crate::reaper::State,
        pid: i32,
        start_time: Option<u64>,
        first: bool,
    ) -> Claim {
        let main = self.main_thread;
        if first
            && !st.threads.answers_for(start_time)
            && self
                .source
                .short_thread_children(main)
                .is_some_and(|list| list.contains(&pid))
        {
            return Claim::Unclaimed;
        }
        let now = self.source.now_ticks();
        match st.threads.forked_by(pid, start_time, main, now, || {
            self.source.children_by_thread(Some(main))
        }) {
            Some(tid) => Claim::Forked { tid },
            None => Claim::Unclaimed,
        }
    }
}
