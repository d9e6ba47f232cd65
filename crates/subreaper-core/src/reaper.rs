//! Where exits are reaped: one thread that sleeps until a child exits, then takes every exited
//! child out of the process table, records its exit, resolves the waits on it and hands it to
//! the broadcast hub.
//!
//! Ownership: a pid registered with [`Reaper::own`] belongs to another waiter (libuv, for Node's
//! `child_process`). The engine peeks at its exit with `waitid(WNOWAIT)`, announces it, and
//! leaves the zombie for the owner to reap; the owner then calls [`Reaper::report`]. Whichever
//! of the two sees the exit first announces it: each exit is broadcast exactly once.
//! [`Reaper::pause`] holds all reaping while an owner creates a child whose pid it cannot yet
//! register (a synchronous spawn). `docs/design.md` explains the model and its trade-offs.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use crate::broadcast::{Hub, SubscribeOptions, Subscription};
use crate::exit::{Exit, ReapedBy, Rusage, Termination};
use crate::recent::RecentExits;
use crate::wait_source::{ChildState, Peek, SystemWait, WaitSource};

/// Exits recorded in one drain are handed to the delivery thread together, up to this many.
const PUBLISH_BATCH: usize = 64;

/// How long the first zombie may be an owner's before the engine scans for others behind it.
const OWNER_GRACE_BEFORE_SCAN: Duration = Duration::from_millis(4);

/// Identifies the owner of a set of pids (for example one Node environment), so that all of
/// its pids can be handed back to the engine at once when it goes away.
pub type OwnerId = u64;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How many recent exits `wait` can still answer after the child was reaped.
    pub recent_capacity: usize,
    /// How long a recent exit is kept for `wait`.
    pub recent_max_age: Duration,
    /// With no children at all the thread sleeps until told a child may exist, or this long:
    /// a backstop for children forked by code that does not tell the engine.
    pub idle_sweep: Duration,
    /// Longest pause between looks while the first zombie belongs to another waiter.
    pub owner_poll_max: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            recent_capacity: 4096,
            recent_max_age: Duration::from_secs(300),
            idle_sweep: Duration::from_secs(1),
            owner_poll_max: Duration::from_millis(50),
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

type WaitCallback = Box<dyn FnOnce(Arc<Exit>) + Send>;

struct Owned {
    owner: Option<OwnerId>,
    comm: Option<String>,
    start_time: Option<u64>,
    /// The exit was broadcast (by the engine's peek or by the owner's report).
    announced: bool,
    /// The owner has reaped the child; the entry is removed before the next peek.
    reported: bool,
}

struct State {
    paused: u32,
    kicks: u64,
    shutdown: bool,
    seq: u64,
    owned: HashMap<i32, Owned>,
    reported_owned: usize,
    /// Unowned exits the engine announced but another waiter reaped: if that waiter reports
    /// them too, they are not announced twice.
    lost: HashSet<i32>,
    lost_order: VecDeque<i32>,
    waiters: HashMap<i32, Vec<(u64, WaitCallback)>>,
    next_wait_id: u64,
    /// Recorded, not yet handed to the delivery thread (see `PUBLISH_BATCH`).
    unpublished: Vec<Arc<Exit>>,
    recent: RecentExits,
}

struct Shared<W: WaitSource> {
    source: W,
    config: Config,
    state: Mutex<State>,
    wake: Condvar,
    /// Serialises reaping between the reaper thread and explicit sweeps, so that one peeked
    /// zombie is never handled twice.
    reap_lock: Mutex<()>,
    hub: Arc<Hub>,
}

/// The reaper. One per process for the real wait source: use [`Reaper::global`].
pub struct Reaper<W: WaitSource = SystemWait> {
    shared: Arc<Shared<W>>,
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
        GLOBAL.get_or_init(|| Reaper::start(SystemWait, config))
    }

    /// Whether the process-wide reaper has been started.
    pub fn global_started() -> bool {
        GLOBAL.get().is_some()
    }
}

enum Handled {
    Recorded(Arc<Exit>),
    /// Announced (now or before) and left to its owner, who has not reaped it yet.
    LeftToOwner,
    /// The peek was stale (the owner reaped it meanwhile), or the engine is paused.
    Skipped,
}

enum DrainEnd {
    NothingExited,
    NoChildren,
    /// The first zombie belongs to another waiter that has not reaped it yet.
    OwnerPending,
    Paused,
}

impl<W: WaitSource> Reaper<W> {
    /// Starts a reaper over `source`. With [`SystemWait`], start only one per process
    /// ([`Reaper::global`] does that): two would race for the same children.
    pub fn start(source: W, config: Config) -> Reaper<W> {
        let shared = Arc::new(Shared {
            source,
            state: Mutex::new(State {
                paused: 0,
                kicks: 0,
                shutdown: false,
                seq: 0,
                owned: HashMap::new(),
                reported_owned: 0,
                lost: HashSet::new(),
                lost_order: VecDeque::new(),
                waiters: HashMap::new(),
                next_wait_id: 1,
                unpublished: Vec::new(),
                recent: RecentExits::new(config.recent_capacity, config.recent_max_age),
            }),
            config,
            wake: Condvar::new(),
            reap_lock: Mutex::new(()),
            hub: Hub::start(),
        });
        let worker = shared.clone();
        thread::Builder::new()
            .name("subreaper".into())
            .spawn(move || worker.run())
            .expect("cannot start the subreaper thread");
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
        let pending = match st.owned.get(&pid) {
            Some(o) if !o.announced => true,
            Some(_) => false,
            None => self.shared.source.child_state(pid) != ChildState::NotAChild,
        };
        if !pending {
            return match st.recent.get(pid) {
                Some(exit) => Ok(WaitOutcome::Ready(exit)),
                None => Err(WaitError::NotAChild(pid)),
            };
        }
        let id = st.next_wait_id;
        st.next_wait_id += 1;
        st.waiters
            .entry(pid)
            .or_default()
            .push((id, Box::new(callback)));
        Ok(WaitOutcome::Pending(id))
    }

    /// Withdraws a pending wait. Returns false if it already fired.
    pub fn cancel_wait(&self, pid: i32, id: u64) -> bool {
        let mut st = self.shared.lock();
        let Some(list) = st.waiters.get_mut(&pid) else {
            return false;
        };
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        let removed = list.len() != before;
        if list.is_empty() {
            st.waiters.remove(&pid);
        }
        removed
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

    /// Spawns `command` with its exit already awaited: the seed's subscribe-before-start.
    /// Do not call `Child::wait` on the returned child: the engine reaps it.
    pub fn start_command(&self, command: &mut Command) -> io::Result<(Child, ExitReceiver)> {
        let child = command.spawn()?;
        self.kick();
        let (tx, rx) = mpsc::channel();
        let pid = child.id() as i32;
        let ready = match self.wait_with(pid, move |e| {
            let _ = tx.send(e);
        }) {
            Ok(WaitOutcome::Ready(exit)) => Some(exit),
            Ok(WaitOutcome::Pending(_)) => None,
            Err(e) => return Err(io::Error::other(e)),
        };
        Ok((child, ExitReceiver { pid, ready, rx }))
    }

    /// Registers `pid` as reaped by another waiter. Its exit is still broadcast, once.
    /// Returns the child's start time (clock ticks since boot) when it can be read: with the
    /// pid, it identifies the child for signals that must not reach a recycled pid.
    pub fn own(&self, pid: i32, owner: OwnerId) -> Option<u64> {
        let info = self.shared.source.identify(pid);
        let start_time = info.start_time;
        let mut st = self.shared.lock();
        if let Some(old) = st.owned.insert(
            pid,
            Owned {
                owner: Some(owner),
                comm: info.comm,
                start_time: info.start_time,
                announced: false,
                reported: false,
            },
        ) {
            if old.reported {
                st.reported_owned -= 1;
            }
        }
        start_time
    }

    /// Hands `pid` back to the engine: it reaps the child itself from now on.
    pub fn disown(&self, pid: i32) {
        let mut st = self.shared.lock();
        let fired = self.shared.disown_locked(&mut st, pid);
        self.shared.publish(&mut st);
        drop(st);
        fired.into_iter().for_each(fire_callbacks);
        self.kick();
    }

    /// Hands back every pid of `owner` (the owner is going away).
    pub fn disown_all(&self, owner: OwnerId) {
        let mut st = self.shared.lock();
        let pids: Vec<i32> = st
            .owned
            .iter()
            .filter(|(_, o)| o.owner == Some(owner))
            .map(|(p, _)| *p)
            .collect();
        let fired: Vec<Fired> = pids
            .into_iter()
            .filter_map(|pid| self.shared.disown_locked(&mut st, pid))
            .collect();
        self.shared.publish(&mut st);
        drop(st);
        fired.into_iter().for_each(fire_callbacks);
        self.kick();
    }

    /// The owner of `pid` (or a waiter that took an unowned pid) reaped it with this result.
    /// Announces the exit unless the engine already did.
    pub fn report(&self, pid: i32, termination: Termination) {
        let shared = &self.shared;
        let mut st = shared.lock();
        let mut comm = None;
        let mut start_time = None;
        if let Some(o) = st.owned.get_mut(&pid) {
            if o.reported {
                return;
            }
            o.reported = true;
            let announced = std::mem::replace(&mut o.announced, true);
            comm = o.comm.take();
            start_time = o.start_time;
            st.reported_owned += 1;
            if announced {
                drop(st);
                self.kick();
                return;
            }
        } else if st.lost.remove(&pid) {
            st.lost_order.retain(|p| *p != pid);
            return;
        }
        let fired = shared.record(
            &mut st,
            pid,
            termination,
            Rusage::default(),
            (comm, start_time),
            ReapedBy::Other,
        );
        shared.publish(&mut st);
        drop(st);
        fire_callbacks(fired);
        self.kick();
    }

    /// Holds all reaping until [`Reaper::resume`]: an owner calls it before creating a child
    /// whose pid it can only register afterwards. Calls nest.
    pub fn pause(&self) {
        self.shared.lock().paused += 1;
    }

    pub fn resume(&self) {
        let mut st = self.shared.lock();
        st.paused = st.paused.saturating_sub(1);
        st.kicks += 1;
        drop(st);
        self.shared.wake.notify_all();
    }

    /// Tells the engine a child may have appeared or an owner reaped one: it looks now rather
    /// than at its next timed sweep.
    pub fn kick(&self) {
        self.shared.lock().kicks += 1;
        self.shared.wake.notify_all();
    }

    /// Reaps every child that has exited by now, on the calling thread, and returns those
    /// exits (the seed's `Reap`). Exits the reaper thread took first are not included.
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

    /// Pids currently registered as owned by another waiter.
    pub fn owned_count(&self) -> usize {
        self.shared.lock().owned.len()
    }

    /// Pauses currently held (see [`Reaper::pause`]); reaping waits while this is not 0.
    pub fn paused_count(&self) -> u32 {
        self.shared.lock().paused
    }

    /// Pending waits (all pids).
    pub fn pending_waits(&self) -> usize {
        self.shared.lock().waiters.values().map(Vec::len).sum()
    }

    pub fn recent_len(&self) -> usize {
        self.shared.lock().recent.len()
    }

    /// Stops the reaper thread (tests and embedders that start their own).
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
    }
}

impl<W: WaitSource> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends `pid`'s ownership. An owner that goes away may have reaped the child without
    /// reporting it (a worker terminated as its child exited: its libuv reaped, its JavaScript
    /// never ran). That exit is announced with an unknown status rather than lost, so waits on
    /// it settle; the entry is never left behind to misattribute a recycled pid.
    fn disown_locked(&self, st: &mut State, pid: i32) -> Option<Fired> {
        let o = st.owned.get(&pid)?;
        if o.reported {
            st.reported_owned -= 1;
            st.owned.remove(&pid);
            return None;
        }
        let still_ours = self.source.child_state(pid) != ChildState::NotAChild
            && match (o.start_time, self.source.identify(pid).start_time) {
                (Some(then), Some(now)) => then == now,
                _ => true,
            };
        let o = st.owned.get_mut(&pid)?;
        if still_ours {
            if o.announced {
                // Already broadcast: the engine reaps the zombie quietly.
                o.owner = None;
            } else {
                // Not exited yet (or not yet seen): the engine reaps and announces it.
                st.owned.remove(&pid);
            }
            return None;
        }
        let o = st.owned.remove(&pid)?;
        if o.announced {
            return None;
        }
        Some(self.record(
            st,
            pid,
            Termination::Unknown,
            Rusage::default(),
            (o.comm, o.start_time),
            ReapedBy::Other,
        ))
    }

    fn run(&self) {
        let mut backoff = Duration::from_millis(1);
        // Since when the first zombie has been one an owner still has to reap.
        let mut owner_pending_since: Option<Instant> = None;
        loop {
            // Kicks are counted from before the drain: a kick that lands while it runs (a
            // child spawned just after the drain found none) must cut the next sleep short.
            let kicks = {
                let st = self.lock();
                if st.shutdown {
                    return;
                }
                st.kicks
            };
            // Scanning /proc to look past an owner's zombie costs a read per process: only do
            // it once the owner has been slow for a few milliseconds (libuv usually is not).
            let scan =
                owner_pending_since.is_some_and(|since| since.elapsed() >= OWNER_GRACE_BEFORE_SCAN);
            let (_, end) = self.drain(scan);
            match end {
                DrainEnd::NothingExited => {
                    backoff = Duration::from_millis(1);
                    owner_pending_since = None;
                    // Sleeps in the kernel until any child exits: no signal needed, no polling.
                    let _ = self.source.peek(true);
                }
                DrainEnd::NoChildren => {
                    backoff = Duration::from_millis(1);
                    owner_pending_since = None;
                    self.sleep(kicks, self.config.idle_sweep, false);
                }
                DrainEnd::Paused => self.sleep(kicks, self.config.idle_sweep, true),
                DrainEnd::OwnerPending => {
                    owner_pending_since.get_or_insert_with(Instant::now);
                    self.sleep(kicks, backoff, false);
                    backoff = (backoff * 2).min(self.config.owner_poll_max);
                }
            }
        }
    }

    /// Sleeps until kicked (any kick after the `kicks` count was read), resumed or shut down,
    /// or `timeout`.
    fn sleep(&self, kicks: u64, timeout: Duration, until_resumed: bool) {
        let st = self.lock();
        let _ = self
            .wake
            .wait_timeout_while(st, timeout, |st| {
                !st.shutdown && st.kicks == kicks && !(until_resumed && st.paused == 0)
            })
            .unwrap_or_else(|e| e.into_inner());
    }

    /// Handles every exited child, until none is left, the engine is paused, or the first
    /// zombie is one an owner has still to reap (then the others are found by a scan).
    fn drain(&self, scan_past_owner: bool) -> (Vec<Arc<Exit>>, DrainEnd) {
        let _reaping = self.reap_lock.lock().unwrap_or_else(|e| e.into_inner());
        let drained = self.drain_locked(scan_past_owner);
        let mut st = self.lock();
        self.publish(&mut st);
        drained
    }

    fn drain_locked(&self, scan_past_owner: bool) -> (Vec<Arc<Exit>>, DrainEnd) {
        let mut exits = Vec::new();
        loop {
            // Exits numbered above this were recorded after the peek below began.
            let since;
            {
                let mut st = self.lock();
                if st.paused > 0 {
                    return (exits, DrainEnd::Paused);
                }
                since = st.seq;
                // A reported entry can only match a peek made before the report; the peek
                // below is made after, so the entry can go.
                if st.reported_owned > 0 {
                    st.owned.retain(|_, o| !o.reported);
                    st.reported_owned = 0;
                }
            }
            let peek = match self.source.peek(false) {
                Ok(p) => p,
                Err(_) => return (exits, DrainEnd::NoChildren),
            };
            match peek {
                Peek::NoChildren => return (exits, DrainEnd::NoChildren),
                Peek::NoneExited => return (exits, DrainEnd::NothingExited),
                Peek::Exited { pid, termination } => match self.handle(pid, termination, since) {
                    Handled::Recorded(e) => exits.push(e),
                    Handled::Skipped => continue,
                    Handled::LeftToOwner => {
                        if !scan_past_owner {
                            return (exits, DrainEnd::OwnerPending);
                        }
                        // Peeks keep returning this zombie until its owner reaps it: look past it.
                        for (other, termination) in self.source.exited_children() {
                            if other == pid {
                                continue;
                            }
                            match self.handle(other, termination, since) {
                                Handled::Recorded(e) => exits.push(e),
                                Handled::LeftToOwner | Handled::Skipped => {}
                            }
                        }
                        return (exits, DrainEnd::OwnerPending);
                    }
                },
            }
        }
    }

    /// `since`: the number of the last exit recorded before `pid` was peeked.
    fn handle(&self, pid: i32, termination: Termination, since: u64) -> Handled {
        // Read while the child is still a zombie: afterwards /proc/<pid> is gone. A child the
        // engine reaps itself gets its resource usage from wait4, so only its name is read.
        let owned = self.lock().owned.contains_key(&pid);
        let info = if owned {
            self.source.inspect(pid)
        } else {
            self.source.identify(pid)
        };
        let mut st = self.lock();
        if st.paused > 0 {
            return Handled::Skipped;
        }
        if let Some(o) = st.owned.get_mut(&pid) {
            if o.reported {
                return Handled::Skipped;
            }
            if o.owner.is_some() {
                if o.announced {
                    return Handled::LeftToOwner;
                }
                o.announced = true;
                let comm = info.comm.or_else(|| o.comm.take());
                let start_time = info.start_time.or(o.start_time);
                let fired = self.record(
                    &mut st,
                    pid,
                    termination,
                    info.rusage,
                    (comm, start_time),
                    ReapedBy::Other,
                );
                drop(st);
                fire_callbacks(fired);
                return Handled::LeftToOwner;
            }
            // The owner went away without reaping: the engine reaps it.
            let announced = o.announced;
            st.owned.remove(&pid);
            if announced {
                let _ = self.source.reap(pid);
                return Handled::Skipped;
            }
        }
        // The state lock is held across the reap so that `wait` sees either a live child or
        // its recorded exit, never neither.
        // An error reaping is treated like a lost race (the exit is still announced).
        let reaped = self.source.reap(pid).unwrap_or_default();
        let (termination, rusage, by) = match reaped {
            Some((t, ru)) => (t, ru, ReapedBy::Reaper),
            None => {
                if self.source.child_state(pid) == ChildState::Running {
                    // Not an exit after all (a traced child resumed): nothing to record.
                    return Handled::Skipped;
                }
                // The waiter that took it already reported it (a synchronous spawn's loop reaps
                // its child, then reports it): announced once already. The zombie peeked held
                // its pid until that reap, so an exit of this pid recorded since the peek is
                // this one.
                if st.recent.get(pid).is_some_and(|e| e.seq > since) {
                    return Handled::Skipped;
                }
                // Another waiter took it between the peek and the reap. The exit is still
                // announced, from the peek.
                st.lost.insert(pid);
                st.lost_order.push_back(pid);
                if st.lost_order.len() > 1024 {
                    if let Some(old) = st.lost_order.pop_front() {
                        st.lost.remove(&old);
                    }
                }
                (termination, info.rusage, ReapedBy::Other)
            }
        };
        let fired = self.record(
            &mut st,
            pid,
            termination,
            rusage,
            (info.comm, info.start_time),
            by,
        );
        let exit = fired.exit.clone();
        drop(st);
        fire_callbacks(fired);
        Handled::Recorded(exit)
    }

    /// Numbers the exit, keeps it for late waits, publishes it. Returns the wait callbacks to
    /// call once the state lock is released.
    /// Hands the recorded exits to the delivery thread (under the state lock: in seq order).
    fn publish(&self, st: &mut State) {
        if !st.unpublished.is_empty() {
            self.hub.publish(std::mem::take(&mut st.unpublished));
        }
    }

    fn record(
        &self,
        st: &mut State,
        pid: i32,
        termination: Termination,
        rusage: Rusage,
        (comm, start_time): (Option<String>, Option<u64>),
        reaped_by: ReapedBy,
    ) -> Fired {
        st.seq += 1;
        let exit = Arc::new(Exit {
            pid,
            termination,
            timestamp: SystemTime::now(),
            started_at: start_time.and_then(crate::wait_source::started_at),
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
            callbacks: st.waiters.remove(&pid).unwrap_or_default(),
            exit,
        }
    }
}

/// Wait callbacks to run outside the state lock.
struct Fired {
    callbacks: Vec<(u64, WaitCallback)>,
    exit: Arc<Exit>,
}

fn fire_callbacks(fired: Fired) {
    for (_, cb) in fired.callbacks {
        cb(fired.exit.clone());
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
