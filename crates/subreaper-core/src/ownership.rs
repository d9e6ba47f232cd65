//! Who owns which child: the one place that decides whether the engine may reap a zombie.
//!
//! Announcing an exit never needs the reap (a `waitid(WNOWAIT)` peek or a pidfd gives the full
//! status), so the engine announces every exit it sees and reaps only what no other waiter in
//! the process will take. A process that loads subreaper has other waiters: libuv in every
//! thread (each worker has its own), native addons that fork and wait (node-pty), Chromium in
//! Electron. An exit taken from any of them is lost to it for good.
//!
//! What the kernel tells: the *thread* that forked each child (`/proc/self/task/<tid>/
//! children`), and every `fork()` in the process runs the fork hook in the forking thread.
//! What it does not tell: whether a child on the main thread's list that no fork hook saw was
//! made there with `vfork`/`posix_spawn`/`clone` by native code, or is an adopted orphan.
//! `docs/design.md` states the rules below for users.

use std::time::{Duration, Instant};

use crate::exit::Termination;
use crate::pid_map::PidMap;
use crate::pidfd::Pidfd;

/// Identifies the owner of a set of pids (for example one Node environment), so that all of
/// its pids can be handed back at once when it goes away.
pub type OwnerId = u64;

/// Who will reap a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Started by the engine, or handed to it: the engine reaps it.
    Engine,
    /// Declared by a waiter that will reap it (Node's `child_process` in an environment that
    /// loaded subreaper, an embedder's own children). `tid` is the thread that forked it.
    /// `reports`: the owner reports the exit once it has reaped the child (`Reaper::report`),
    /// so the exit is announced from that report, on the owner's thread, unless the owner
    /// leaves the zombie longer than the report grace.
    Declared {
        owner: OwnerId,
        tid: Option<i32>,
        reports: bool,
    },
    /// Forked by thread `tid` of this process: whatever waits in that thread (its libuv, an
    /// addon's waiter) reaps it.
    Forked { tid: i32 },
    /// Appeared on thread `tid`'s list while it forked, beside another child: either that
    /// fork's child or an orphan adopted at the same instant. Never taken while it may be a
    /// live thread's; in subreaper or PID 1 mode reaped after the leftover grace.
    MaybeForked { tid: i32 },
    /// Its environment (a Node worker) was torn down. `declared`: that environment's libuv
    /// was its only waiter, so the engine reaps it at once. Otherwise it was forked by that
    /// environment's thread and nobody declared it (the environment ended between the fork
    /// and the declaration, or native code forked there): it is reaped after the leftover
    /// grace, in any mode, so that a native waiter elsewhere may still take it.
    OwnerGone { declared: bool },
    /// Forked here by a thread that has ended, and nobody declared it. A native waiter in
    /// another thread may still take it, so it is reaped only in subreaper or PID 1 mode, and
    /// only after a grace.
    Leftover,
    /// Nobody in the process claims it: an adopted orphan (or a child native code made on the
    /// main thread without `fork()`, which the kernel cannot tell apart from one).
    Unclaimed,
}

/// How the engine treats children nobody declared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// Other waiters share the process (Node): reap only the engine's own children, and, in
    /// subreaper or PID 1 mode, orphans and leftovers.
    Cooperative,
    /// The engine is the process's only waiter (a native init, a Rust program that leaves
    /// all reaping to it): reap every child not declared by an owner.
    SoleWaiter,
}

/// What the engine does with a zombie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Reap it (its exit is announced with full `wait4` resource usage).
    Reap,
    /// Announce it and leave the zombie to its owner.
    Leave,
    /// Not decided yet: neither announce nor reap it; decide again at this instant (or when
    /// told something changed). Its exit is announced once decided, with who reaped it.
    Hold(Option<Instant>),
}

/// What a decision depends on besides the claim.
pub struct Context<'a> {
    pub policy: Policy,
    /// PID 1 or subreaper: orphans come to this process and nobody else will reap them.
    pub adopts_orphans: bool,
    /// A spawn whose child the engine cannot attribute yet is in flight (see `Reaper::pause`).
    pub spawn_in_flight: bool,
    /// Whether thread `tid` is in the middle of such a spawn.
    pub spawning: &'a dyn Fn(i32) -> bool,
    pub orphan_grace: Duration,
    pub leftover_grace: Duration,
    /// How long a zombie whose owner reports its exits waits for that report before the
    /// engine announces it from the zombie.
    pub report_grace: Duration,
    pub thread_alive: &'a dyn Fn(i32) -> bool,
}

/// The rules, as one function of a child's claim and how long it has been a zombie.
pub fn decide(claim: Claim, zombie_since: Instant, ctx: &Context<'_>) -> Disposition {
    let after = |grace: Duration| {
        let at = zombie_since + grace;
        if Instant::now() >= at {
            Disposition::Reap
        } else {
            Disposition::Hold(Some(at))
        }
    };
    let sole = ctx.policy == Policy::SoleWaiter;
    let reaps_strays = sole || ctx.adopts_orphans;
    match claim {
        Claim::Engine | Claim::OwnerGone { declared: true } => Disposition::Reap,
        Claim::OwnerGone { declared: false } => after(ctx.leftover_grace),
        // The owner's own report comes on the owner's thread right after its reap: waiting for
        // it keeps the engine's threads off that path (and out of its event loop's way).
        Claim::Declared { reports: true, .. } => match after(ctx.report_grace) {
            Disposition::Reap => Disposition::Leave,
            held => held,
        },
        Claim::Declared { .. } => Disposition::Leave,
        // A spawn in flight may yet say whose this child is: decide once it has returned.
        Claim::Forked { tid } | Claim::MaybeForked { tid } if (ctx.spawning)(tid) => {
            Disposition::Hold(None)
        }
        Claim::Unclaimed | Claim::Leftover if ctx.spawn_in_flight => Disposition::Hold(None),
        Claim::Forked { tid } if (ctx.thread_alive)(tid) => {
            if sole {
                Disposition::Reap
            } else {
                Disposition::Leave
            }
        }
        Claim::Forked { .. } | Claim::Leftover | Claim::MaybeForked { .. } if reaps_strays => {
            after(ctx.leftover_grace)
        }
        Claim::Unclaimed if sole => Disposition::Reap,
        Claim::Unclaimed if reaps_strays => after(ctx.orphan_grace),
        Claim::Forked { .. } | Claim::Leftover | Claim::MaybeForked { .. } | Claim::Unclaimed => {
            Disposition::Leave
        }
    }
}

/// One child the engine knows of.
#[derive(Debug)]
pub struct Child {
    /// Clock ticks since boot; with the pid, this one process.
    pub start_time: Option<u64>,
    pub claim: Claim,
    pub comm: Option<String>,
    /// Its exit has been broadcast.
    pub announced: bool,
    /// It is gone from the process table (its pidfd hung up, or its owner reported it).
    pub reaped: bool,
    /// Its declaring owner reported the exit (`Reaper::report`).
    pub reported: bool,
    /// When the engine first saw it as a zombie.
    pub zombie_since: Option<Instant>,
    /// Watches its exit and its reap (see `exit_watch`).
    pub pidfd: Option<Pidfd>,
    /// The fork it appeared in, for a `MaybeForked` child: once one child of that fork is
    /// declared, the others are orphans.
    pub fork: Option<u64>,
    /// The status its pidfd kept when its owner reaped it, and when, while the owner's own
    /// report is awaited (see `Claim::Declared::reports`).
    pub reaped_status: Option<(Termination, Instant)>,
}

impl Child {
    /// Whether the entry can go: the exit is announced, the process is gone, and no report
    /// of it is still to come (a report must find the entry, or it would announce again).
    pub fn finished(&self) -> bool {
        self.reaped
            && self.announced
            && (self.reported || !matches!(self.claim, Claim::Declared { reports: true, .. }))
    }

    pub fn new(claim: Claim, start_time: Option<u64>) -> Child {
        Child {
            start_time,
            claim,
            comm: None,
            announced: false,
            reaped: false,
            reported: false,
            zombie_since: None,
            pidfd: None,
            fork: None,
            reaped_status: None,
        }
    }
}

/// The children the engine knows of, by pid.
#[derive(Default)]
pub struct Children {
    by_pid: PidMap<Child>,
    /// The entries handed out to be changed since finished ones were last dropped: only they
    /// can have become finished since (a drain drops finished entries before every peek, and
    /// a pass over every entry there cost each zombie of a burst the number of live children).
    touched: Vec<i32>,
    /// Every entry may have changed (handed out all at once, or too many to list).
    all_touched: bool,
}

impl Children {
    /// The entry for `pid` if it names the process that started at `start_time` (an entry of
    /// an earlier process with the same pid is dropped: its exit was missed or handled).
    pub fn get_current(&mut self, pid: i32, start_time: Option<u64>) -> Option<&mut Child> {
        let stale = match (self.by_pid.get(&pid), start_time) {
            (Some(c), Some(now)) => match c.start_time {
                Some(then) => then != now,
                // Made without a start time: it names this process only while its pidfd
                // holds one (an entry of a process gone unseen would pass for any later one).
                None => c.pidfd.is_none() || c.reaped,
            },
            _ => false,
        };
        if stale {
            self.by_pid.remove(&pid);
        }
        self.touch(pid);
        let child = self.by_pid.get_mut(&pid)?;
        if child.start_time.is_none() {
            child.start_time = start_time;
        }
        Some(child)
    }

    pub fn get(&self, pid: i32) -> Option<&Child> {
        self.by_pid.get(&pid)
    }

    pub fn get_mut(&mut self, pid: i32) -> Option<&mut Child> {
        self.touch(pid);
        self.by_pid.get_mut(&pid)
    }

    pub fn insert(&mut self, pid: i32, child: Child) -> Option<Child> {
        self.touch(pid);
        self.by_pid.insert(pid, child)
    }

    pub fn remove(&mut self, pid: i32) -> Option<Child> {
        self.by_pid.remove(&pid)
    }

    pub fn contains(&self, pid: i32) -> bool {
        self.by_pid.contains_key(&pid)
    }

    pub fn len(&self) -> usize {
        self.by_pid.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_pid.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i32, &Child)> {
        self.by_pid.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&i32, &mut Child)> {
        self.all_touched = true;
        self.by_pid.iter_mut()
    }

    pub fn retain(&mut self, keep: impl FnMut(&i32, &mut Child) -> bool) {
        self.all_touched = true;
        self.by_pid.retain(keep)
    }

    /// Drops every finished entry, looking only at those that may have changed since the
    /// last call.
    pub fn drop_finished(&mut self) {
        if std::mem::take(&mut self.all_touched) {
            self.touched.clear();
            self.by_pid.retain(|_, c| !c.finished());
            return;
        }
        for pid in self.touched.drain(..) {
            if self.by_pid.get(&pid).is_some_and(Child::finished) {
                self.by_pid.remove(&pid);
            }
        }
    }

    fn touch(&mut self, pid: i32) {
        if self.all_touched {
            return;
        }
        if self.touched.len() >= 2 * self.by_pid.len() + 64 {
            self.all_touched = true;
            self.touched.clear();
        } else {
            self.touched.push(pid);
        }
    }

    /// How many children each kind of claim holds (for `stats`).
    pub fn count(&self, what: impl Fn(&Child) -> bool) -> usize {
        self.by_pid.values().filter(|c| what(c)).count()
    }
}

/// Which live thread other than the main one forked each child, from the per-thread children
/// lists. Read again only when a child younger than the last reading is asked about: a child's
/// thread never changes while that thread lives, so an older reading still answers for it.
#[derive(Default)]
pub struct ThreadView {
    forked_by: PidMap<i32>,
    /// Start-time tick at which the lists were last read (`None`: never).
    read_at: Option<u64>,
}

impl ThreadView {
    /// The live non-main thread whose children list holds `pid`, if any. `read` gives every
    /// thread's list (`None` where the kernel keeps none) and `now` the current tick.
    pub fn forked_by(
        &mut self,
        pid: i32,
        start_time: Option<u64>,
        main: i32,
        now: u64,
        read: impl FnOnce() -> Option<Vec<(i32, Vec<i32>)>>,
    ) -> Option<i32> {
        if !self.answers_for(start_time) {
            self.forked_by.clear();
            for (tid, children) in read().unwrap_or_default() {
                if tid == main {
                    continue;
                }
                for child in children {
                    self.forked_by.insert(child, tid);
                }
            }
            self.read_at = Some(now);
        }
        self.forked_by.get(&pid).copied()
    }

    /// Whether the last reading answers for a child started at `start_time` (no read needed).
    pub fn answers_for(&self, start_time: Option<u64>) -> bool {
        matches!((self.read_at, start_time), (Some(at), Some(st)) if st < at)
    }

    /// Forget a reaped child (its pid may be reused by another thread's child).
    pub fn forget(&mut self, pid: i32) {
        self.forked_by.remove(&pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(policy: Policy, adopts: bool, alive: &dyn Fn(i32) -> bool) -> Context<'_> {
        Context {
            policy,
            adopts_orphans: adopts,
            spawn_in_flight: false,
            spawning: &|_| false,
            orphan_grace: Duration::ZERO,
            leftover_grace: Duration::from_secs(1),
            report_grace: Duration::from_millis(20),
            thread_alive: alive,
        }
    }

    const LIVE: &dyn Fn(i32) -> bool = &|_| true;
    const DEAD: &dyn Fn(i32) -> bool = &|_| false;

    fn finish(c: &mut Child) {
        c.reaped = true;
        c.announced = true;
    }

    #[test]
    fn finished_entries_are_dropped_however_they_were_changed() {
        let mut children = Children::default();
        for pid in 1..=100 {
            children.insert(pid, Child::new(Claim::Unclaimed, Some(pid as u64)));
        }
        children.drop_finished();
        assert_eq!(children.len(), 100, "nothing finished yet");
        finish(children.get_mut(7).unwrap());
        finish(children.get_current(8, Some(8)).unwrap());
        let mut done = Child::new(Claim::Engine, None);
        finish(&mut done);
        children.insert(101, done);
        children.drop_finished();
        assert!(!children.contains(7) && !children.contains(8) && !children.contains(101));
        assert_eq!(children.len(), 98);
        // Changed all at once, then dropped on the next call as well.
        for (pid, c) in children.iter_mut() {
            if *pid % 2 == 0 {
                finish(c);
            }
        }
        children.drop_finished();
        assert_eq!(children.len(), 49);
        assert!(children
            .iter()
            .all(|(pid, c)| pid % 2 == 1 && !c.finished()));
    }

    #[test]
    fn a_long_list_of_changed_entries_falls_back_to_looking_at_every_entry() {
        let mut children = Children::default();
        children.insert(1, Child::new(Claim::Unclaimed, None));
        children.insert(2, Child::new(Claim::Unclaimed, None));
        // Far more changes than entries: the list gives way to one pass over all of them.
        for _ in 0..1000 {
            children.get_mut(1);
        }
        finish(children.get_mut(2).unwrap());
        children.drop_finished();
        assert!(children.contains(1) && !children.contains(2));
        assert!(children.touched.is_empty() && !children.all_touched);
    }

    #[test]
    fn default_mode_reaps_only_the_engines_children() {
        let c = ctx(Policy::Cooperative, false, LIVE);
        let now = Instant::now() - Duration::from_secs(60);
        assert_eq!(decide(Claim::Engine, now, &c), Disposition::Reap);
        for claim in [
            Claim::Declared {
                owner: 1,
                tid: None,
                reports: false,
            },
            Claim::Declared {
                owner: 1,
                tid: None,
                reports: true,
            },
            Claim::Forked { tid: 7 },
            Claim::Leftover,
            Claim::Unclaimed,
        ] {
            assert_eq!(decide(claim, now, &c), Disposition::Leave, "{claim:?}");
        }
        // A child of an ended thread is still not the engine's in default mode.
        let c = ctx(Policy::Cooperative, false, DEAD);
        assert_eq!(
            decide(Claim::Forked { tid: 7 }, now, &c),
            Disposition::Leave
        );
    }

    #[test]
    fn a_child_whose_declaring_owner_went_away_is_reaped_in_any_mode() {
        for adopts in [false, true] {
            let c = ctx(Policy::Cooperative, adopts, DEAD);
            assert_eq!(
                decide(Claim::OwnerGone { declared: true }, Instant::now(), &c),
                Disposition::Reap
            );
            let long_ago = Instant::now() - Duration::from_secs(2);
            assert_eq!(
                decide(Claim::OwnerGone { declared: false }, long_ago, &c),
                Disposition::Reap
            );
            assert!(matches!(
                decide(Claim::OwnerGone { declared: false }, Instant::now(), &c),
                Disposition::Hold(Some(_))
            ));
        }
    }

    #[test]
    fn subreaper_mode_reaps_orphans_and_leftovers_after_their_grace() {
        let c = ctx(Policy::Cooperative, true, LIVE);
        let just_now = Instant::now();
        assert_eq!(decide(Claim::Unclaimed, just_now, &c), Disposition::Reap);
        assert!(matches!(
            decide(Claim::Leftover, just_now, &c),
            Disposition::Hold(_)
        ));
        let long_ago = just_now - Duration::from_secs(2);
        assert_eq!(decide(Claim::Leftover, long_ago, &c), Disposition::Reap);
        // A live thread's fork and a declared child are never taken.
        assert_eq!(
            decide(Claim::Forked { tid: 3 }, long_ago, &c),
            Disposition::Leave
        );
        assert_eq!(
            decide(
                Claim::Declared {
                    owner: 2,
                    tid: Some(3),
                    reports: false,
                },
                long_ago,
                &c
            ),
            Disposition::Leave
        );
        // Once the forking thread has ended, its child is a leftover.
        let c = ctx(Policy::Cooperative, true, DEAD);
        assert_eq!(
            decide(Claim::Forked { tid: 3 }, long_ago, &c),
            Disposition::Reap
        );
    }

    #[test]
    fn a_spawn_in_flight_holds_unclaimed_children() {
        let mut c = ctx(Policy::Cooperative, true, LIVE);
        c.spawn_in_flight = true;
        c.spawning = &|tid| tid == 5;
        assert_eq!(
            decide(Claim::Forked { tid: 5 }, Instant::now(), &c),
            Disposition::Hold(None)
        );
        assert_eq!(
            decide(Claim::Forked { tid: 6 }, Instant::now(), &c),
            Disposition::Leave
        );
        assert_eq!(
            decide(Claim::Unclaimed, Instant::now(), &c),
            Disposition::Hold(None)
        );
        assert_eq!(decide(Claim::Engine, Instant::now(), &c), Disposition::Reap);
    }

    #[test]
    fn sole_waiter_reaps_all_but_declared_children() {
        let c = ctx(Policy::SoleWaiter, false, LIVE);
        let now = Instant::now();
        assert_eq!(decide(Claim::Unclaimed, now, &c), Disposition::Reap);
        assert_eq!(decide(Claim::Forked { tid: 9 }, now, &c), Disposition::Reap);
        assert_eq!(
            decide(
                Claim::Declared {
                    owner: 1,
                    tid: None,
                    reports: false,
                },
                now,
                &c
            ),
            Disposition::Leave
        );
    }

    #[test]
    fn a_reporting_owner_is_waited_for_then_its_zombie_announced() {
        for adopts in [false, true] {
            let c = ctx(Policy::Cooperative, adopts, LIVE);
            let declared = Claim::Declared {
                owner: 4,
                tid: Some(8),
                reports: true,
            };
            let now = Instant::now();
            assert_eq!(
                decide(declared, now, &c),
                Disposition::Hold(Some(now + c.report_grace))
            );
            let long_ago = now - Duration::from_secs(1);
            assert_eq!(decide(declared, long_ago, &c), Disposition::Leave);
        }
    }

    #[test]
    fn a_stale_entry_is_not_taken_for_a_new_process_with_the_same_pid() {
        let mut children = Children::default();
        children.insert(10, Child::new(Claim::Forked { tid: 4 }, Some(100)));
        assert!(children.get_current(10, Some(100)).is_some());
        assert!(children.get_current(10, Some(250)).is_none());
        assert!(!children.contains(10));
        // An entry made without a start time (its process gone before it could be read) and
        // with no pidfd to hold it cannot be told from a later process with its pid.
        children.insert(11, Child::new(Claim::Forked { tid: 4 }, None));
        assert!(
            children.get_current(11, None).is_some(),
            "nothing to tell by"
        );
        assert!(children.get_current(11, Some(300)).is_none());
        assert!(!children.contains(11));
    }

    #[test]
    fn thread_view_reads_again_only_for_younger_children() {
        let mut view = ThreadView::default();
        let mut reads = 0;
        let lists = || Some(vec![(1, vec![50]), (2, vec![60, 61])]);
        let mut ask = |pid, st, now, reads: &mut i32| {
            view.forked_by(pid, Some(st), 1, now, || {
                *reads += 1;
                lists()
            })
        };
        assert_eq!(ask(60, 5, 10, &mut reads), Some(2));
        assert_eq!(ask(61, 9, 12, &mut reads), Some(2));
        // Born before the last reading: answered from it; on the main list: no thread.
        assert_eq!(ask(50, 3, 12, &mut reads), None);
        assert_eq!(reads, 1);
        // Born at or after the reading: read again.
        assert_eq!(ask(61, 10, 13, &mut reads), Some(2));
        assert_eq!(reads, 2);
    }
}
