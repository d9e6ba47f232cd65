//! The reaper: the handle users hold, and the state its threads share.
//!
//! Three threads do the work, each in a module of its own:
//! - `drain` (thread "subreaper"): sleeps in `waitid(P_ALL, WNOWAIT)` until any child exits,
//!   then handles every exited child, reaping those the ownership rules give the engine;
//! - `exit_watch` (thread "subreaper-watch"): a pidfd per known child in one epoll set, so an
//!   exit is seen even while another waiter's zombie is first in `waitid`'s line, and known
//!   exactly even when that waiter reaps it first;
//! - `broadcast` (thread "subreaper-delivery"): hands each exit to every subscriber.
//!
//! Who owns which child is decided in `ownership`; `fork_hook` tells the engine about every
//! `fork()` in the process as it happens.

use std::collections::{HashSet, VecDeque};
use std::io;
use std::process::{Child as StdChild, Command};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::broadcast::{Hub, SubscribeOptions, Subscription};
use crate::exit::{Exit, ReapedBy, Rusage, Termination};
use crate::exit_watch::ExitWatch;
use crate::ownership::{
    decide, Child, Children, Claim, Context, Disposition, OwnerId, Policy, ThreadView,
};
use crate::recent::RecentExits;
use crate::wait_source::{ChildState, ProcInfo, SystemWait, WaitSource};
use crate::waits::{Fired, WaitCallback, Waits};

/// Exits recorded in one drain are handed to the delivery thread together, up to this many.
const PUBLISH_BATCH: usize = 64;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How many recent exits `wait` can still answer after the child was reaped.
    pub recent_capacity: usize,
    /// How long a recent exit is kept for `wait`.
    pub recent_max_age: Duration,
    /// With no children at all the thread sleeps until told a child may exist, or this long:
    /// a backstop for children made by code that does not `fork()`.
    pub idle_sweep: Duration,
    /// Longest pause between looks past a zombie another waiter has still to reap.
    pub owner_poll_max: Duration,
    /// Whether other waiters share the process (see [`Policy`]).
    pub policy: Policy,
    /// In subreaper or PID 1 mode, how long an unclaimed zombie (an adopted orphan, or a
    /// child native code made on the main thread without `fork()`) is left before the engine
    /// reaps it. 0 reaps orphans at once, as containerd and tini do.
    pub orphan_grace: Duration,
    /// How long a child whose waiter has gone (its thread ended, its environment was torn
    /// down) is left before the engine reaps it, in case a native waiter still takes it.
    pub leftover_grace: Duration,
    /// How long the zombie of a child declared with [`Reaper::own_reporting`] waits for its
    /// owner's [`Reaper::report`] before the engine announces it from the zombie (an owner
    /// whose thread is busy). The exit is announced once either way.
    pub report_grace: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recent_capacity: 4096,
            recent_max_age: Duration::from_secs(300),
            idle_sweep: Duration::from_secs(1),
            owner_poll_max: Duration::from_millis(100),
            policy: Policy::Cooperative,
            orphan_grace: Duration::ZERO,
            leftover_grace: Duration::from_secs(1),
            report_grace: Duration::from_millis(20),
        }
    }
}

/// Why `wait` cannot wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The pid is not a child of this process, and no recent exit of it is known.
    NotAChild(i32),
    /// The timeout passed before the child exited.
    TimedOut(i32),
}

impl std::fmt::Display for WaitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WaitError::NotAChild(pid) => write!(
                f,
                "pid {pid} is not a child of this process and no recent exit of it is known"
            ),
            WaitError::TimedOut(pid) => write!(f, "timed out waiting for pid {pid}"),
        }
    }
}

impl std::error::Error for WaitError {}

/// What `wait_with` did.
#[derive(Debug)]
pub enum WaitOutcome {
    /// The child had already exited; the callback was not stored.
    Ready(Arc<Exit>),
    /// The callback will be called when the child exits, unless cancelled with this id.
    Pending(u64),
}

/// What the reaper thread is doing, for [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Starting,
    /// Handling exited children.
    Draining,
    /// Asleep in the kernel until any child exits.
    WaitingForExit,
    /// Every child's owner reports its exit: asleep until a hint or a kick (`exit_hint`).
    WaitingForReports,
    /// No children: asleep until told one may exist.
    NoChildren,
    /// The first zombie in line is this pid, left to its owner; looking past it.
    LeftToOwner(i32),
    Stopped,
}

impl Activity {
    pub fn describe(self) -> String {
        match self {
            Activity::Starting => "starting".into(),
            Activity::Draining => "draining".into(),
            Activity::WaitingForExit => "waiting for an exit".into(),
            Activity::WaitingForReports => "waiting for its owners' reports".into(),
            Activity::NoChildren => "no children".into(),
            Activity::LeftToOwner(pid) => format!("zombie {pid} left to its owner"),
            Activity::Stopped => "stopped".into(),
        }
    }
}

impl State {
    /// Whether thread `tid` is in the middle of a spawn.
    pub(crate) fn is_spawning(&self, tid: i32) -> bool {
        self.spawning.contains_key(&tid)
    }

    /// What the reaper thread is doing.
    pub(crate) fn activity(&self) -> Activity {
        self.activity.0
    }
}

/// A snapshot of the engine's state.
#[derive(Debug, Clone)]
pub struct Stats {
    pub exits_recorded: u64,
    pub subscribers: usize,
    /// Children declared by an owner ([`Reaper::own`]).
    pub declared: usize,
    /// Children the engine knows of, of any claim.
    pub known: usize,
    /// Known children watched through a pidfd.
    pub watched: usize,
    /// Zombies whose exit was announced and that are left to their owner.
    pub left_to_owner: usize,
    pub pending_waits: usize,
    pub recent: usize,
    /// Spawns in flight ([`Reaper::pause`]).
    pub paused: u32,
    pub activity: Activity,
    pub activity_since: Duration,
    pub adopts_orphans: bool,
    /// Whether exited children are named by taskstats (see [`crate::taskstats`]), not from
    /// `/proc`.
    pub names_from_taskstats: bool,
    /// The current [`Config::orphan_grace`], [`Config::leftover_grace`] and
    /// [`Config::report_grace`].
    pub orphan_grace: Duration,
    pub leftover_grace: Duration,
    pub report_grace: Duration,
}

pub(crate) struct State {
    pub(crate) paused: u32,
    /// Threads in the middle of a spawn (see [`Reaper::pause`]), with how many.
    spawning: crate::pid_map::PidMap<u32>,
    /// Children reaped by an owner whose report is still awaited (see `exit_watch`).
    pub(crate) unreported_reaps: usize,
    pub(crate) kicks: u64,
    pub(crate) shutdown: bool,
    pub(crate) seq: u64,
    pub(crate) children: Children,
    pub(crate) threads: ThreadView,
    /// Exits the engine announced from a peek whose reap another waiter won: if that waiter
    /// reports them too, they are not announced twice.
    lost: HashSet<i32>,
    lost_order: VecDeque<i32>,
    /// Exits of unclaimed children another waiter took before the engine could name them,
    /// while a spawn was in flight: held, like any unclaimed zombie then, until the spawns
    /// have returned, and announced from that waiter's report if it comes first.
    held_lost: Vec<TakenUnnamed>,
    pub(crate) waits: Waits,
    /// Recorded, not yet handed to the delivery thread (see `PUBLISH_BATCH`).
    unpublished: Vec<Arc<Exit>>,
    pub(crate) recent: RecentExits,
    activity: (Activity, Instant),
    /// [`Config::orphan_grace`] and [`Config::leftover_grace`], changeable at run time.
    graces: (Duration, Duration),
    /// [`Config::report_grace`], changeable at run time.
    pub(crate) report_grace: Duration,
    /// Forks seen by the fork hook.
    forks: u64,
}

/// The exit of an unclaimed child that another waiter reaped before the engine could read
/// its start time: what the engine's peek (and any reading) saw of it.
pub(crate) struct TakenUnnamed {
    pub(crate) pid: i32,
    pub(crate) termination: Termination,
    pub(crate) rusage: Option<Rusage>,
    pub(crate) comm: Option<String>,
}

pub(crate) struct Shared<W: WaitSource> {
    pub(crate) source: W,
    pub(crate) config: Config,
    state: Mutex<State>,
    pub(crate) wake: Condvar,
    /// Serialises reaping between the reaper thread and explicit sweeps, so that one peeked
    /// zombie is never handled twice.
    pub(crate) reap_lock: Mutex<()>,
    hub: Arc<Hub>,
    pub(crate) watch: Option<ExitWatch>,
    /// Whether orphans come to this process, read once per drain rather than per zombie.
    pub(crate) adopts: std::sync::atomic::AtomicBool,
    /// Readings of zombies' `/proc` entries made ahead of the drain during a burst.
    pub(crate) prefetch: crate::prefetch::Prefetch,
    /// This very value, for the threads it starts later (the reading thread).
    pub(crate) me: std::sync::Weak<Shared<W>>,
    /// Registered hint sources (`exit_hint`).
    pub(crate) hint_sources: std::sync::atomic::AtomicUsize,
    /// The source's main thread, asked once: the drain classifies every unknown zombie against
    /// its list, and asking is a system call (`getpid`).
    pub(crate) main_thread: i32,
}

/// The reaper. One per process for the real wait source: use [`Reaper::global`].
pub struct Reaper<W: WaitSource = SystemWait> {
    pub(crate) shared: Arc<Shared<W>>,
}

impl<W: WaitSource> Clone for Reaper<W> {
    fn clone(&self) -> Self {
        Reaper {
            shared: self.shared.clone(),
        }
    }
}

static GLOBAL: OnceLock<Reaper<SystemWait>> = OnceLock::new();

impl Reaper<SystemWait> {
    /// The process-wide reaper over the kernel's wait calls, started on first use.
    pub fn global() -> &'static Reaper<SystemWait> {
        Self::global_with(Config::default())
    }

    /// Like [`Reaper::global`]; `config` applies only if this call starts it.
    pub fn global_with(config: Config) -> &'static Reaper<SystemWait> {
        GLOBAL.get_or_init(|| {
            let reaper = Reaper::start(SystemWait, config);
            reaper.register_existing_children();
            crate::fork_hook::install();
            reaper
        })
    }

    /// The global reaper if it has been started (the fork hook uses this).
    pub fn try_global() -> Option<&'static Reaper<SystemWait>> {
        GLOBAL.get()
    }

    /// Whether the process-wide reaper has been started.
    pub fn global_started() -> bool {
        GLOBAL.get().is_some()
    }
}

impl<W: WaitSource> Reaper<W> {
    /// Starts a reaper over `source`. With [`SystemWait`], start only one per process
    /// ([`Reaper::global`] does that): two would race for the same children.
    pub fn start(source: W, config: Config) -> Reaper<W> {
        let main_thread = source.main_thread();
        let shared = Arc::new_cyclic(|me| Shared {
            me: me.clone(),
            main_thread,
            prefetch: crate::prefetch::Prefetch::default(),
            source,
            state: Mutex::new(State {
                paused: 0,
                spawning: crate::pid_map::PidMap::default(),
                unreported_reaps: 0,
                kicks: 0,
                shutdown: false,
                seq: 0,
                children: Children::default(),
                threads: ThreadView::default(),
                lost: HashSet::new(),
                lost_order: VecDeque::new(),
                held_lost: Vec::new(),
                waits: Waits::default(),
                unpublished: Vec::new(),
                recent: RecentExits::new(config.recent_capacity, config.recent_max_age),
                activity: (Activity::Starting, Instant::now()),
                graces: (config.orphan_grace, config.leftover_grace),
                report_grace: config.report_grace,
                forks: 0,
            }),
            config,
            wake: Condvar::new(),
            reap_lock: Mutex::new(()),
            hub: Hub::start(),
            watch: ExitWatch::new().ok(),
            adopts: std::sync::atomic::AtomicBool::new(false),
            hint_sources: std::sync::atomic::AtomicUsize::new(0),
        });
        shared.source.prepare();
        let worker = shared.clone();
        crate::engine_thread::spawn("subreaper", move || worker.run())
            .expect("cannot start the subreaper thread");
        if shared.watch.is_some() {
            let watcher = shared.clone();
            crate::engine_thread::spawn("subreaper-watch", move || watcher.run_watch())
                .expect("cannot start the subreaper-watch thread");
        }
        Reaper { shared }
    }

    /// Subscribes to every exit from now on, in reap order.
    pub fn subscribe(&self, options: SubscribeOptions) -> Subscription {
        // Under the state lock, which `record` holds while it publishes: every exit numbered
        // above `seq` is published after the subscriber is registered, and none numbered up to
        // it (recorded before this call, maybe still on its way to the others) is delivered.
        let st = self.shared.lock();
        self.shared.hub.subscribe(options, st.seq)
    }

    pub fn subscriber_count(&self) -> usize {
        self.shared.hub.subscriber_count()
    }

    /// Calls `callback` with the exit of `pid`: at once (returning `Ready`) if it already
    /// exited and is still in the recent table, later (returning `Pending`) if it is a live
    /// child. Fails with `NotAChild` for any other pid.
    pub fn wait_with(
        &self,
        pid: i32,
        callback: impl FnOnce(Arc<Exit>) + Send + 'static,
    ) -> Result<WaitOutcome, WaitError> {
        if pid <= 0 {
            return Err(WaitError::NotAChild(pid));
        }
        let mut st = self.shared.lock();
        let pending = match st.children.get(pid) {
            Some(c) => !c.announced,
            None => self.shared.source.child_state(pid) != ChildState::NotAChild,
        };
        if !pending {
            return match st.recent.get(pid) {
                Some(exit) => Ok(WaitOutcome::Ready(exit)),
                None => Err(WaitError::NotAChild(pid)),
            };
        }
        let id = st.waits.add(pid, Box::new(callback) as WaitCallback);
        Ok(WaitOutcome::Pending(id))
    }

    /// Withdraws a pending wait. Returns false if it already fired.
    pub fn cancel_wait(&self, pid: i32, id: u64) -> bool {
        self.shared.lock().waits.cancel(pid, id)
    }

    /// Blocks until `pid` exits (or `timeout` passes) and returns its exit.
    pub fn wait(&self, pid: i32, timeout: Option<Duration>) -> Result<Arc<Exit>, WaitError> {
        let (tx, rx) = mpsc::channel();
        let id = match self.wait_with(pid, move |e| {
            let _ = tx.send(e);
        })? {
            WaitOutcome::Ready(exit) => return Ok(exit),
            WaitOutcome::Pending(id) => id,
        };
        let got = match timeout {
            Some(t) => rx.recv_timeout(t).ok(),
            None => rx.recv().ok(),
        };
        match got {
            Some(exit) => Ok(exit),
            None => {
                if self.cancel_wait(pid, id) {
                    Err(WaitError::TimedOut(pid))
                } else {
                    // It fired between the timeout and the cancel.
                    rx.recv().map_err(|_| WaitError::TimedOut(pid))
                }
            }
        }
    }

    /// Spawns `command` with its exit already awaited (containerd's subscribe-before-start),
    /// and reaps it. Do not call `Child::wait` on the returned child: the engine reaps it.
    pub fn start_command(&self, command: &mut Command) -> io::Result<(StdChild, ExitReceiver)> {
        // Held from before the spawn: its child is the engine's, never announced as a thread's.
        self.pause();
        let spawned = command.spawn();
        let pid = spawned.as_ref().map(|c| c.id() as i32);
        if let Ok(pid) = pid {
            self.adopt(pid);
        }
        self.resume();
        let child = spawned?;
        let pid = child.id() as i32;
        let (tx, rx) = mpsc::channel();
        let ready = match self.wait_with(pid, move |e| {
            let _ = tx.send(e);
        }) {
            Ok(WaitOutcome::Ready(exit)) => Some(exit),
            Ok(WaitOutcome::Pending(_)) => None,
            Err(e) => return Err(io::Error::other(e)),
        };
        Ok((child, ExitReceiver { pid, ready, rx }))
    }

    /// Registers `pid` as reaped by another waiter (`owner`). Its exit is still broadcast,
    /// once. Returns the child's start time (clock ticks since boot) when it can be read:
    /// with the pid, it identifies the child for signals that must not reach a recycled pid.
    pub fn own(&self, pid: i32, owner: OwnerId) -> Option<u64> {
        self.claim(pid, |tid| Claim::Declared {
            owner,
            tid,
            reports: false,
        })
    }

    /// Like [`Reaper::own`], for an owner that calls [`Reaper::report_process`] as soon as it
    /// has reaped the child (Node's process handle does, from libuv's exit callback). The exit
    /// is then announced from that report, on the owner's thread, and the engine's threads
    /// keep out of its way: they announce it from the zombie only if the owner has not
    /// reaped it within [`Config::report_grace`].
    pub fn own_reporting(&self, pid: i32, owner: OwnerId) -> Option<u64> {
        self.claim(pid, |tid| Claim::Declared {
            owner,
            tid,
            reports: true,
        })
    }

    /// Whether some child has exited and its exit is not recorded yet: the engine still has
    /// work that will end in an exit (a zombie left to its owner after its exit was announced
    /// does not count). Looks past such a zombie through the children lists.
    pub fn exit_pending(&self) -> bool {
        let source = &self.shared.source;
        let unannounced = |pid: i32| {
            let st = self.shared.lock();
            !st.children.get(pid).is_some_and(|c| c.announced)
        };
        match source.peek(false) {
            Ok(crate::wait_source::Peek::Exited { pid, .. }) if unannounced(pid) => return true,
            Ok(crate::wait_source::Peek::Exited { .. }) => {}
            _ => return false,
        }
        let pids: Vec<i32> = match source.children_by_thread(None) {
            Some(lists) => lists.into_iter().flat_map(|(_, p)| p).collect(),
            None => source.all_children(),
        };
        pids.into_iter()
            .any(|pid| unannounced(pid) && source.peek_pid(pid).is_some())
    }

    /// Whether `pid` is a child of this process now (running, or a zombie nobody reaped).
    pub fn is_child(&self, pid: i32) -> bool {
        pid > 0 && self.shared.source.child_state(pid) != ChildState::NotAChild
    }

    /// Hands `pid` to the engine: it reaps the child itself (the child of a program that
    /// leaves all waiting to the engine).
    pub fn adopt(&self, pid: i32) -> Option<u64> {
        self.claim(pid, |_| Claim::Engine)
    }

    /// Like [`Reaper::adopt`]: hands a pid back after [`Reaper::own`].
    pub fn disown(&self, pid: i32) {
        self.adopt(pid);
    }

    fn claim(&self, pid: i32, claim: impl FnOnce(Option<i32>) -> Claim) -> Option<u64> {
        // A child the fork hook registered (a spawn declares its child right after fork) has
        // its start time already: only its name is read, as it is after exec.
        let registered = self
            .shared
            .lock()
            .children
            .get(pid)
            .filter(|c| {
                !c.reaped && matches!(c.claim, Claim::Forked { .. } | Claim::MaybeForked { .. })
            })
            .and_then(|c| c.start_time);
        let info = match registered {
            Some(start) => ProcInfo {
                comm: self.shared.source.comm(pid),
                start_time: Some(start),
                ..ProcInfo::default()
            },
            None => self.shared.source.inspect(pid),
        };
        let start_time = info.start_time;
        let mut st = self.shared.lock();
        let fresh = st.children.get_current(pid, start_time).is_none();
        if fresh {
            if self.shared.source.child_state(pid) == ChildState::NotAChild {
                // Not a child, or already exited and reaped: nothing left to claim.
                return start_time;
            }
            let mut child = Child::new(Claim::Unclaimed, start_time);
            child.comm = info.comm.clone();
            st.children.insert(pid, child);
        }
        let child = st.children.get_mut(pid).expect("inserted above");
        // One child of an ambiguous fork is declared: the others that appeared with it were
        // orphans adopted in that instant.
        let ambiguous = match child.claim {
            Claim::MaybeForked { .. } => child.fork,
            _ => None,
        };
        let tid = match child.claim {
            Claim::Forked { tid } | Claim::MaybeForked { tid } => Some(tid),
            Claim::Declared { tid, .. } => tid,
            _ => None,
        };
        child.claim = claim(tid);
        if child.comm.is_none() || info.comm.is_some() {
            // After exec (a spawn returns once the child has exec'd), the real name.
            child.comm = info.comm.or(child.comm.take());
        }
        let reports = matches!(child.claim, Claim::Declared { reports: true, .. });
        self.shared.ensure_watched(&mut st, pid);
        if reports {
            // Its exit comes from the owner's report: only its reap is watched.
            if let (Some(watch), Some(fd)) = (
                &self.shared.watch,
                st.children.get(pid).and_then(|c| c.pidfd.as_ref()),
            ) {
                watch.quiet(fd, pid);
            }
        }
        if let Some(fork) = ambiguous {
            for (other, c) in st.children.iter_mut() {
                if *other != pid
                    && c.fork == Some(fork)
                    && matches!(c.claim, Claim::MaybeForked { .. })
                {
                    c.claim = Claim::Unclaimed;
                }
            }
        }
        drop(st);
        self.shared.nudge();
        start_time
    }

    /// Hands back every pid of `owner` (the owner is going away): nobody else waits for them,
    /// so the engine reaps them from now on (their exits are still announced once).
    pub fn disown_all(&self, owner: OwnerId) {
        self.release_owner(owner, None)
    }

    /// Like [`Reaper::disown_all`], for an owner that lived on thread `tid` (a Node
    /// environment): the children that thread forked and nobody declared go too, after the
    /// leftover grace.
    pub fn release_owner(&self, owner: OwnerId, tid: Option<i32>) {
        let shared = &self.shared;
        let mut st = shared.lock();
        // A spawn that thread never finished (torn down between pause and resume) holds
        // nothing any more.
        if let Some(n) = tid.and_then(|t| st.spawning.remove(&t)) {
            st.paused = st.paused.saturating_sub(n);
        }
        let mut fired = shared.announce_held_lost(&mut st);
        for (_, child) in st.children.iter_mut() {
            match child.claim {
                Claim::Forked { tid: t } | Claim::MaybeForked { tid: t } if Some(t) == tid => {
                    child.claim = Claim::OwnerGone { declared: false };
                }
                _ => {}
            }
        }
        let pids: Vec<i32> = st
            .children
            .iter()
            .filter(|(_, c)| matches!(c.claim, Claim::Declared { owner: o, .. } if o == owner))
            .map(|(pid, _)| *pid)
            .collect();
        for pid in pids {
            let child = st.children.get_mut(pid).expect("listed above");
            child.claim = Claim::OwnerGone { declared: true };
            if child.pidfd.is_some() && crate::kernel_support::hangups_seen() {
                // Its exit will be seen through the pidfd, even past a reap.
                continue;
            }
            if child.announced {
                // Seen already; once it is no longer a child there is nothing left to track.
                child.reaped = shared.source.child_state(pid) == ChildState::NotAChild;
                continue;
            }
            // No pidfd, or one that tells no reap (kernels before 6.9; its exit was not
            // looked at, since the owner was to report it): an owner torn down as its child
            // exited may have reaped it without reporting. That exit is announced (with the
            // status the pidfd kept, or unknown) rather than lost, so no wait on it hangs.
            let start = child.start_time;
            let kept = child.pidfd.as_ref().and_then(|p| {
                (p.reaped() == Some(true))
                    .then(|| p.exit_after_reap().unwrap_or(Termination::Unknown))
            });
            let gone = child.reaped_status.is_some()
                || kept.is_some()
                || shared.source.child_state(pid) == ChildState::NotAChild
                || shared
                    .source
                    .inspect(pid)
                    .start_time
                    .zip(start)
                    .is_some_and(|(a, b)| a != b);
            if gone {
                let child = st.children.remove(pid).expect("listed above");
                let status = child.reaped_status.map(|(s, _)| s).or(kept);
                fired.push(shared.record(
                    &mut st,
                    pid,
                    status.unwrap_or(Termination::Unknown),
                    None,
                    (child.comm, child.start_time),
                    ReapedBy::Other,
                ));
            }
        }
        st.children.drop_finished();
        shared.publish(&mut st);
        drop(st);
        fired.into_iter().for_each(Fired::run);
        self.kick();
    }

    /// The owner of `pid` (or a waiter that took an unowned pid) reaped it with this result.
    /// Announces the exit unless the engine already did.
    pub fn report(&self, pid: i32, termination: Termination) {
        self.report_process(pid, None, termination)
    }

    /// Like [`Reaper::report`], for the process that started at `start_time` (clock ticks
    /// since boot, as [`Reaper::own`] returned it): an exit of that very process the engine
    /// recorded already is not announced again, even once the engine has forgotten the child.
    pub fn report_process(&self, pid: i32, start_time: Option<u64>, termination: Termination) {
        let shared = &self.shared;
        let mut st = shared.lock();
        let mut comm = None;
        let mut known_start = start_time;
        if let Some(c) = st.children.get_current(pid, start_time) {
            if c.reported {
                return;
            }
            c.reported = true;
            c.reaped = true;
            let announced = std::mem::replace(&mut c.announced, true);
            let awaited = c.reaped_status.take().is_some();
            comm = c.comm.clone();
            known_start = c.start_time.or(start_time);
            if awaited {
                st.unreported_reaps = st.unreported_reaps.saturating_sub(1);
            }
            // The broken twin (a test-only feature) forgets this check, so that the
            // exactly-once property test can show it catches a second announcement.
            if announced && !cfg!(feature = "broken-exactly-once") {
                // The engine announced it from the zombie (the owner was late): the drain may
                // be napping long beside it.
                drop(st);
                self.shared.nudge();
                return;
            }
        } else if let Some(i) = st.held_lost.iter().position(|h| h.pid == pid) {
            // Taken by this waiter during a spawn, before the engine could name it, and held:
            // announced from this report, which names the process.
            comm = st.held_lost.swap_remove(i).comm;
        } else if st.lost.remove(&pid) {
            st.lost_order.retain(|p| *p != pid);
            return;
        } else if start_time.is_some()
            && st
                .recent
                .get(pid)
                .is_some_and(|e| e.start_time == start_time)
        {
            // Recorded already (its pidfd told the watch), and its entry is gone since.
            return;
        }
        let start_time = known_start;
        let fired = shared.record(
            &mut st,
            pid,
            termination,
            None,
            (comm, start_time),
            ReapedBy::Other,
        );
        shared.publish(&mut st);
        drop(st);
        fired.run();
        // No wake-up for the reaper's thread from here, on the owner's thread, at the moment
        // its callbacks run: a drain that held this zombie for the report looks again at the
        // end of its short nap (the exit watch sees every known child's exit meanwhile), and
        // the watch nudges it when it sees the reap. A kernel that tells no reap (before 6.9)
        // leaves that nudge to the report.
        if !crate::kernel_support::hangups_seen() {
            shared.nudge();
        }
    }

    /// Marks a spawn in flight on the calling thread whose child the engine cannot attribute
    /// until it returns: until [`Reaper::resume`], that thread's new children and unclaimed
    /// zombies are neither announced nor reaped (they are decided once the spawn has said
    /// whose its child is; an unclaimed one that another waiter reaps meanwhile is announced
    /// from that waiter's report, or once the spawns have returned). Everything else goes
    /// on. Calls nest.
    pub fn pause(&self) {
        let tid = crate::procfs::current_thread();
        let mut st = self.shared.lock();
        st.paused += 1;
        *st.spawning.entry(tid).or_default() += 1;
    }

    /// Ends a [`Reaper::pause`]. Call it on the thread that paused.
    pub fn resume(&self) {
        let tid = crate::procfs::current_thread();
        let mut st = self.shared.lock();
        st.paused = st.paused.saturating_sub(1);
        if let Some(n) = st.spawning.get_mut(&tid) {
            *n -= 1;
            if *n == 0 {
                st.spawning.remove(&tid);
            }
        } else if st.paused == 0 {
            // Resumed from another thread (a torn-down environment releasing its pauses).
            st.spawning.clear();
        }
        let fired = self.shared.announce_held_lost(&mut st);
        if !fired.is_empty() {
            self.shared.publish(&mut st);
        }
        // A zombie held for the spawn, or a child made without fork() during it, needs the
        // drain to look again, unless it sleeps in waitid, which sees both by itself.
        drop(st);
        fired.into_iter().for_each(Fired::run);
        self.shared.nudge();
    }

    /// Changes [`Config::orphan_grace`] and [`Config::leftover_grace`] from now on.
    pub fn set_graces(&self, orphan: Duration, leftover: Duration) {
        self.shared.lock().graces = (orphan, leftover);
        self.kick();
    }

    /// Changes [`Config::report_grace`] from now on.
    pub fn set_report_grace(&self, grace: Duration) {
        self.shared.lock().report_grace = grace;
        self.kick();
        if let Some(watch) = &self.shared.watch {
            // Its wait may be timed by the old grace.
            watch.interrupt();
        }
    }

    /// Tells the engine a child may have appeared or an owner reaped one: it looks now rather
    /// than at its next timed sweep.
    pub fn kick(&self) {
        self.shared.kick();
    }

    /// Handles every child that has exited by now, on the calling thread, following the same
    /// ownership rules as the reaper thread, and returns the exits recorded (containerd's
    /// `Reap`). Exits the reaper thread took first are not included.
    pub fn sweep(&self) -> Vec<Arc<Exit>> {
        self.shared.drain(true).0
    }

    /// The last recorded exit of `pid`, if still in the recent table.
    pub fn last_exit(&self, pid: i32) -> Option<Arc<Exit>> {
        self.shared.lock().recent.get(pid)
    }

    /// Number of exits recorded so far.
    pub fn exits_recorded(&self) -> u64 {
        self.shared.lock().seq
    }

    /// Pids currently declared by another waiter.
    pub fn owned_count(&self) -> usize {
        self.shared
            .lock()
            .children
            .count(|c| matches!(c.claim, Claim::Declared { .. }) && !c.reaped)
    }

    /// Spawns in flight (see [`Reaper::pause`]).
    pub fn paused_count(&self) -> u32 {
        self.shared.lock().paused
    }

    /// Pending waits (all pids).
    pub fn pending_waits(&self) -> usize {
        self.shared.lock().waits.len()
    }

    pub fn recent_len(&self) -> usize {
        self.shared.lock().recent.len()
    }

    /// What the engine holds and what its thread is doing.
    pub fn stats(&self) -> Stats {
        let st = self.shared.lock();
        Stats {
            exits_recorded: st.seq,
            subscribers: self.shared.hub.subscriber_count(),
            declared: st
                .children
                .count(|c| matches!(c.claim, Claim::Declared { .. }) && !c.reaped),
            known: st.children.len(),
            watched: st.children.count(|c| c.pidfd.is_some()),
            left_to_owner: st
                .children
                .count(|c| c.announced && !c.reaped && c.zombie_since.is_some()),
            pending_waits: st.waits.len(),
            recent: st.recent.len(),
            paused: st.paused,
            activity: st.activity.0,
            activity_since: st.activity.1.elapsed(),
            adopts_orphans: self.shared.source.adopts_orphans(),
            names_from_taskstats: !self.shared.source.identifies_by_proc(),
            orphan_grace: st.graces.0,
            leftover_grace: st.graces.1,
            report_grace: st.report_grace,
        }
    }

    /// What the engine holds for `pid`, in words, for a diagnosis (a zombie nobody reaps): who
    /// it takes to own the child, what has happened to it, and what its rules decide for it now.
    /// `None` when the engine has no entry for that pid. The wording is not a stable format.
    pub fn describe_child(&self, pid: i32) -> Option<String> {
        let shared = &self.shared;
        let st = shared.lock();
        let c = st.children.get(pid)?;
        let thread_alive = |tid: i32| shared.source.thread_alive(tid);
        let thread = match c.claim {
            Claim::Declared { tid: Some(t), .. }
            | Claim::Forked { tid: t }
            | Claim::MaybeForked { tid: t } => {
                format!(
                    ", thread {t} {}",
                    if thread_alive(t) { "alive" } else { "ended" }
                )
            }
            _ => String::new(),
        };
        let zombie = match c.zombie_since {
            Some(since) => format!(
                "a zombie for {} ms, decided now: {:?}",
                since.elapsed().as_millis(),
                shared.decide_now(&st, c.claim, since)
            ),
            None => "not seen as a zombie".to_string(),
        };
        Some(format!(
            "{:?}{thread}; started {:?}; {zombie}; announced {}, reaped {}, reported {}, watched {}",
            c.claim,
            c.start_time,
            c.announced,
            c.reaped,
            c.reported,
            c.pidfd.is_some()
        ))
    }

    /// Stops the reaper's threads (tests and embedders that start their own).
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.prefetch.shutdown();
        self.shared.wake.notify_all();
        if let Some(watch) = &self.shared.watch {
            watch.interrupt();
        }
    }

    /// A fork on thread `tid` just returned in the parent; `since` is the start-time tick
    /// taken before it, `new` the entries that appeared in the thread's children list during
    /// it. Registers the new child as that thread's (see `fork_hook`).
    /// `started`: the start time of every pid in `new`, where the fork hook knows it (all were
    /// allocated during a fork that began and ended in one clock tick).
    pub(crate) fn note_fork(&self, tid: i32, since: u64, new: &[i32], started: Option<u64>) {
        // Read before the lock: `/proc` is slow, and the drain waits on this lock.
        let candidates: Vec<(i32, u64)> = new
            .iter()
            .filter_map(|&pid| Some((pid, started.or_else(|| crate::procfs::start_time(pid))?)))
            .filter(|(_, start)| *start >= since)
            .collect();
        let mut st = self.shared.lock();
        // One new entry: the fork's child. More: an orphan was adopted in the same instant,
        // and which is which cannot be told; none is taken while it may be the thread's.
        let claim = if candidates.len() == 1 {
            Claim::Forked { tid }
        } else {
            Claim::MaybeForked { tid }
        };
        st.forks += 1;
        let fork = st.forks;
        for (pid, start) in candidates {
            match st.children.get_current(pid, Some(start)) {
                // Seen exiting before fork() returned (and held since): it is this thread's.
                Some(child) if child.claim == Claim::Unclaimed => {
                    child.claim = claim;
                    child.fork = Some(fork);
                }
                Some(_) => continue,
                None => {
                    let mut child = Child::new(claim, Some(start));
                    child.fork = Some(fork);
                    st.children.insert(pid, child);
                }
            }
            self.shared.ensure_watched(&mut st, pid);
        }
        drop(st);
        self.shared.nudge();
    }

    /// Registers the children that exist when the engine starts, by the thread that forked
    /// them. In PID 1 the main thread's list may already hold orphans: those stay unclaimed.
    fn register_existing_children(&self) {
        let Some(lists) = self.shared.source.children_by_thread(None) else {
            return;
        };
        let main = self.shared.main_thread;
        let init = crate::process_role::is_init();
        let mut st = self.shared.lock();
        for (tid, children) in lists {
            if tid == main && init {
                continue;
            }
            for pid in children {
                // None: reaped since the lists were read.
                let Some(start) = crate::procfs::start_time(pid) else {
                    continue;
                };
                st.children
                    .insert(pid, Child::new(Claim::Forked { tid }, Some(start)));
                self.shared.ensure_watched(&mut st, pid);
            }
        }
    }
}

impl<W: WaitSource> Shared<W> {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pids the engine has an entry for (declared, forked here, or seen before).
    pub(crate) fn known_pids(&self) -> HashSet<i32> {
        self.lock().children.iter().map(|(pid, _)| *pid).collect()
    }

    /// Reads again whether orphans come to this process (subreaper mode can change at any
    /// time); the rules then use that answer.
    pub(crate) fn refresh_role(&self) {
        self.adopts.store(
            self.source.adopts_orphans(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    pub(crate) fn kick(&self) {
        self.lock().kicks += 1;
        self.wake.notify_all();
    }

    /// A kick where one is needed: not while the drain sleeps in `waitid`, which sees every
    /// new child and every exit by itself (it notes that it sleeps there just before it does,
    /// so a child forked before this call is seen). Spares the reaper's thread a wake-up at
    /// each spawn and each report, beside the thread that spawns or reports.
    pub(crate) fn nudge(&self) {
        let mut st = self.lock();
        if st.activity.0 == Activity::WaitingForExit {
            return;
        }
        st.kicks += 1;
        drop(st);
        self.wake.notify_all();
    }

    pub(crate) fn set_activity(&self, activity: Activity) {
        let mut st = self.lock();
        if st.activity.0 != activity {
            st.activity = (activity, Instant::now());
        }
    }

    /// What the ownership rules decide now for a zombie of `claim`, first seen at
    /// `zombie_since`, given what this process is and does at this instant.
    pub(crate) fn decide_now(
        &self,
        st: &State,
        claim: Claim,
        zombie_since: Instant,
    ) -> Disposition {
        let ctx = Context {
            policy: self.config.policy,
            adopts_orphans: self.adopts.load(std::sync::atomic::Ordering::Relaxed),
            spawn_in_flight: st.paused > 0,
            spawning: &|tid| st.is_spawning(tid),
            orphan_grace: st.graces.0,
            leftover_grace: st.graces.1,
            report_grace: st.report_grace,
            thread_alive: &|tid| self.source.thread_alive(tid),
        };
        decide(claim, zombie_since, &ctx)
    }

    /// Opens a pidfd for a known child and adds it to the watch, if it has none.
    pub(crate) fn ensure_watched(&self, st: &mut State, pid: i32) {
        let Some(watch) = &self.watch else { return };
        let Some(child) = st.children.get_mut(pid) else {
            return;
        };
        if child.pidfd.is_some() {
            return;
        }
        match self.source.watch(pid) {
            Some(fd) if watch.add(&fd, pid).is_ok() => child.pidfd = Some(fd),
            // Pidfds refused, or the child is gone already: the watch polls it.
            _ => watch.poll_needed(),
        }
    }

    /// Announces `taken` as taken by its waiter (it leaves no entry: without a start time, an
    /// entry could not be told from a later process), or, while a spawn is in flight, holds
    /// it like any unclaimed zombie then (see [`State::held_lost`]) and returns `None`.
    pub(crate) fn announce_taken(&self, st: &mut State, taken: TakenUnnamed) -> Option<Fired> {
        if st.paused > 0 {
            st.held_lost.push(taken);
            return None;
        }
        self.note_lost(st, taken.pid);
        let identity = (taken.comm, None);
        let (pid, termination, rusage) = (taken.pid, taken.termination, taken.rusage);
        Some(self.record(st, pid, termination, rusage, identity, ReapedBy::Other))
    }

    /// Announces the held exits no report claimed, once no spawn is in flight.
    pub(crate) fn announce_held_lost(&self, st: &mut State) -> Vec<Fired> {
        if st.paused > 0 {
            return Vec::new();
        }
        std::mem::take(&mut st.held_lost)
            .into_iter()
            .filter_map(|taken| self.announce_taken(st, taken))
            .collect()
    }

    /// Notes an exit another waiter took between the engine's peek and its reap, so that a
    /// later report of it is not announced twice.
    pub(crate) fn note_lost(&self, st: &mut State, pid: i32) {
        st.lost.insert(pid);
        st.lost_order.push_back(pid);
        if st.lost_order.len() > 1024 {
            if let Some(old) = st.lost_order.pop_front() {
                st.lost.remove(&old);
            }
        }
    }

    /// Drops the entries whose exit is announced and whose process is gone, unless a drain
    /// is running: a drain drops them itself before each peek, and one made earlier could
    /// otherwise find its zombie's entry gone and take it for a stranger's.
    pub(crate) fn drop_finished_unless_draining(&self) {
        if let Ok(_reaping) = self.reap_lock.try_lock() {
            self.lock().children.drop_finished();
        }
    }

    /// Hands the recorded exits to the delivery thread (under the state lock: in seq order).
    pub(crate) fn publish(&self, st: &mut State) {
        if !st.unpublished.is_empty() {
            self.hub.publish(std::mem::take(&mut st.unpublished));
        }
    }

    /// Announces the exit of a zombie left to its owner (read from `/proc` while it exists).
    pub(crate) fn announce_left(
        &self,
        st: &mut State,
        pid: i32,
        termination: Termination,
        info: &crate::wait_source::ProcInfo,
    ) -> Fired {
        let child = st.children.get_mut(pid).expect("a known child");
        child.announced = true;
        if child.comm.is_none() {
            child.comm = info.comm.clone();
        }
        let identity = (child.comm.clone(), child.start_time.or(info.start_time));
        self.record(st, pid, termination, info.rusage, identity, ReapedBy::Other)
    }

    /// Numbers the exit, keeps it for late waits, queues it for the subscribers. Returns the
    /// wait callbacks to call once the state lock is released.
    pub(crate) fn record(
        &self,
        st: &mut State,
        pid: i32,
        termination: Termination,
        rusage: Option<Rusage>,
        (comm, start_time): (Option<String>, Option<u64>),
        reaped_by: ReapedBy,
    ) -> Fired {
        st.seq += 1;
        let timestamp = SystemTime::now();
        let exit = Arc::new(Exit {
            pid,
            termination,
            timestamp,
            started_at: start_time.and_then(|t| crate::procfs::started_at(t, timestamp)),
            start_time,
            rusage,
            comm,
            reaped_by,
            seq: st.seq,
        });
        st.recent.insert(exit.clone());
        st.unpublished.push(exit.clone());
        if st.unpublished.len() >= PUBLISH_BATCH {
            self.publish(st);
        }
        Fired {
            callbacks: st.waits.take(pid),
            exit,
        }
    }
}

/// The exit of a child started with [`Reaper::start_command`].
pub struct ExitReceiver {
    pid: i32,
    ready: Option<Arc<Exit>>,
    rx: mpsc::Receiver<Arc<Exit>>,
}

impl ExitReceiver {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Blocks until the child exits.
    pub fn wait(self) -> Arc<Exit> {
        match self.ready {
            Some(e) => e,
            None => self.rx.recv().expect("the reaper dropped a pending wait"),
        }
    }

    /// Waits up to `timeout`.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Arc<Exit>> {
        if let Some(e) = &self.ready {
            return Some(e.clone());
        }
        let got = self.rx.recv_timeout(timeout).ok()?;
        self.ready = Some(got.clone());
        Some(got)
    }
}
