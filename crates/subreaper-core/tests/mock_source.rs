//! The reaping, ownership and broadcast logic behind a scripted wait source (tokio-style): the
//! test decides which pids are children, when they exit, and who wins each race, so that every
//! interleaving below is deterministic.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use subreaper_core::{
    ChildState, Config, Exit, Peek, ProcInfo, ReapedBy, Reaper, RecvError, Rusage,
    SubscribeOptions, Subscription, Termination, WaitError, WaitOutcome, WaitSource,
};

type Hook = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct MockState {
    /// Children in creation order (the order in which the kernel's peek finds zombies).
    children: Vec<(i32, Option<Termination>)>,
    /// Pids that another waiter takes between the engine's peek and its reap.
    steal_on_reap: HashSet<i32>,
    /// Pids the engine reaped, in order.
    reaped: Vec<i32>,
    reap_calls: HashMap<i32, usize>,
    stolen: Vec<i32>,
    closed: bool,
}

#[derive(Default)]
struct Inner {
    state: Mutex<MockState>,
    changed: Condvar,
    /// Run (once) when the engine inspects this pid, i.e. after its peek and before it locks
    /// its state to handle the exit.
    on_inspect: Mutex<HashMap<i32, Hook>>,
    /// Run (once) when a peek finds no children, before that answer reaches the engine.
    on_no_children: Mutex<Option<Hook>>,
}

#[derive(Clone, Default)]
struct Mock(Arc<Inner>);

impl Mock {
    fn st(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.0.state.lock().unwrap()
    }

    fn spawn(&self, pid: i32) {
        self.st().children.push((pid, None));
        self.0.changed.notify_all();
    }

    fn exit(&self, pid: i32, termination: Termination) {
        let mut st = self.st();
        let child = st
            .children
            .iter_mut()
            .find(|(p, _)| *p == pid)
            .expect("exit of a pid that is not a mock child");
        assert!(child.1.is_none(), "pid {pid} exited twice");
        child.1 = Some(termination);
        drop(st);
        self.0.changed.notify_all();
    }

    /// The other waiter reaps `pid` (it must have exited).
    fn owner_reap(&self, pid: i32) -> Termination {
        let mut st = self.st();
        let at = st
            .children
            .iter()
            .position(|(p, t)| *p == pid && t.is_some())
            .expect("owner reaps a pid that is not a zombie");
        st.children.remove(at).1.unwrap()
    }

    /// The child exits and its owner reaps it in one step: the engine never sees a zombie.
    fn vanish(&self, pid: i32) {
        let mut st = self.st();
        st.children.retain(|(p, _)| *p != pid);
    }

    fn is_zombie(&self, pid: i32) -> bool {
        self.st()
            .children
            .iter()
            .any(|(p, t)| *p == pid && t.is_some())
    }

    fn reap_calls(&self, pid: i32) -> usize {
        self.st().reap_calls.get(&pid).copied().unwrap_or(0)
    }

    fn steal_on_reap(&self, pid: i32) {
        self.st().steal_on_reap.insert(pid);
    }

    fn on_inspect(&self, pid: i32, hook: impl FnOnce() + Send + 'static) {
        self.0
            .on_inspect
            .lock()
            .unwrap()
            .insert(pid, Box::new(hook));
    }

    fn close(&self) {
        self.st().closed = true;
        self.0.changed.notify_all();
    }
}

impl WaitSource for Mock {
    fn peek(&self, block: bool) -> std::io::Result<Peek> {
        let mut st = self.st();
        loop {
            if st.closed {
                return Ok(Peek::NoChildren);
            }
            if let Some((pid, Some(termination))) = st.children.iter().find(|(_, t)| t.is_some()) {
                return Ok(Peek::Exited {
                    pid: *pid,
                    termination: *termination,
                });
            }
            if st.children.is_empty() {
                drop(st);
                let hook = self.0.on_no_children.lock().unwrap().take();
                if let Some(hook) = hook {
                    hook();
                }
                return Ok(Peek::NoChildren);
            }
            if !block {
                return Ok(Peek::NoneExited);
            }
            st = self.0.changed.wait(st).unwrap();
        }
    }

    fn reap(&self, pid: i32) -> std::io::Result<Option<(Termination, Rusage)>> {
        let mut st = self.st();
        *st.reap_calls.entry(pid).or_default() += 1;
        let Some(at) = st
            .children
            .iter()
            .position(|(p, t)| *p == pid && t.is_some())
        else {
            return Ok(None);
        };
        let (_, termination) = st.children.remove(at);
        if st.steal_on_reap.remove(&pid) {
            st.stolen.push(pid);
            return Ok(None);
        }
        st.reaped.push(pid);
        let rusage = Rusage {
            max_rss_kib: Some(1000 + pid as u64),
            ..Rusage::default()
        };
        Ok(Some((termination.unwrap(), rusage)))
    }

    fn child_state(&self, pid: i32) -> ChildState {
        match self.st().children.iter().find(|(p, _)| *p == pid) {
            Some((_, Some(_))) => ChildState::Exited,
            Some((_, None)) => ChildState::Running,
            None => ChildState::NotAChild,
        }
    }

    fn peek_pid(&self, pid: i32) -> Option<Termination> {
        self.st()
            .children
            .iter()
            .find(|(p, _)| *p == pid)
            .and_then(|(_, t)| *t)
    }

    fn all_children(&self) -> Vec<i32> {
        self.st().children.iter().map(|(p, _)| *p).collect()
    }

    fn inspect(&self, pid: i32) -> ProcInfo {
        let hook = self.0.on_inspect.lock().unwrap().remove(&pid);
        if let Some(hook) = hook {
            hook();
        }
        if self.st().children.iter().any(|(p, _)| *p == pid) {
            ProcInfo {
                comm: Some(format!("mock{pid}")),
                start_time: Some(pid as u64),
                rusage: Some(Rusage::default()),
            }
        } else {
            ProcInfo::default()
        }
    }
}

/// A reaper over a fresh mock; shut down (and its thread released) on drop.
struct Harness {
    mock: Mock,
    reaper: Reaper<Mock>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_config(Config {
            idle_sweep: Duration::from_secs(30),
            owner_poll_max: Duration::from_millis(20),
            ..Config::default()
        })
    }

    fn with_config(config: Config) -> Harness {
        let mock = Mock::default();
        let reaper = Reaper::start(mock.clone(), config);
        Harness { mock, reaper }
    }

    fn spawn(&self, pid: i32) {
        self.mock.spawn(pid);
        self.reaper.kick();
    }

    fn subscribe(&self) -> Subscription {
        self.reaper.subscribe(SubscribeOptions {
            buffer_size: 100_000,
            ..SubscribeOptions::default()
        })
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.reaper.shutdown();
        self.mock.close();
    }
}

const LONG: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

fn next(sub: &Subscription) -> Arc<Exit> {
    sub.recv_timeout(LONG)
        .expect("subscription closed")
        .expect("no exit within 5 s")
}

fn assert_quiet(sub: &Subscription) {
    if let Some(e) = sub.recv_timeout(QUIET).expect("subscription closed") {
        panic!("unexpected extra exit: {e:?}");
    }
}

fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(2));
    }
}

const OWNER: u64 = 1;

#[test]
fn unowned_exit_is_reaped_and_broadcast_with_its_record() {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(10);
    h.mock.exit(10, Termination::Exited(3));
    let e = next(&sub);
    assert_eq!(e.pid, 10);
    assert_eq!(e.termination, Termination::Exited(3));
    assert_eq!(e.status(), 3);
    assert_eq!(e.reaped_by, ReapedBy::Reaper);
    assert_eq!(e.comm.as_deref(), Some("mock10"));
    assert_eq!(
        e.rusage.and_then(|r| r.max_rss_kib),
        Some(1010),
        "rusage comes from the reap"
    );
    assert_eq!(e.seq, 1);
    assert_eq!(h.mock.reap_calls(10), 1);
    assert!(!h.mock.is_zombie(10));
    assert_quiet(&sub);
}

#[test]
fn owned_exit_announced_once_when_engine_peeks_first() {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(20);
    h.reaper.own(20, OWNER);
    let waited = Arc::new(Mutex::new(None));
    let w = waited.clone();
    let outcome = h
        .reaper
        .wait_with(20, move |e| *w.lock().unwrap() = Some(e))
        .unwrap();
    assert!(matches!(outcome, WaitOutcome::Pending(_)));

    h.mock.exit(
        20,
        Termination::Signaled {
            signal: 9,
            core_dumped: false,
        },
    );
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (20, 137, ReapedBy::Other));
    assert_eq!(
        e.rusage.map(|r| r.max_rss_kib),
        Some(None),
        "read from the zombie, not reaped: no wait4 rusage"
    );
    // The engine announced it from its peek and left the zombie to the owner.
    assert!(h.mock.is_zombie(20));
    assert_eq!(h.mock.reap_calls(20), 0);
    until("the wait resolves", || {
        waited.lock().unwrap().as_ref().map(|e| e.seq) == Some(e.seq)
    });
    // While the owner takes its time, the engine keeps looking (and still does not reap it).
    thread::sleep(Duration::from_millis(100));
    assert_eq!(h.mock.reap_calls(20), 0);

    let t = h.mock.owner_reap(20);
    h.reaper.report(20, t);
    assert_quiet(&sub);
    assert_eq!(h.reaper.exits_recorded(), 1);
    until("the owned entry is dropped", || h.reaper.owned_count() == 0);
    // A late wait is answered from the recent table.
    match h.reaper.wait_with(20, |_| {}).unwrap() {
        WaitOutcome::Ready(e) => assert_eq!(e.seq, 1),
        WaitOutcome::Pending(_) => panic!("wait on an announced pid is pending"),
    }
}

#[test]
fn owned_exit_announced_once_when_owner_reports_first() {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(30);
    h.reaper.own(30, OWNER);
    // The owner reaps before the engine looks: the engine never sees a zombie.
    h.reaper.pause();
    h.mock.exit(30, Termination::Exited(4));
    let t = h.mock.owner_reap(30);
    h.reaper.report(30, t);
    h.reaper.resume();
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (30, 4, ReapedBy::Other));
    assert_eq!(
        e.comm.as_deref(),
        Some("mock30"),
        "comm kept from own() time"
    );
    // The kernel gave its usage to the owner's reap alone: unknown, not zeros.
    assert_eq!(e.rusage, None);
    assert_quiet(&sub);
    assert_eq!(h.mock.reap_calls(30), 0);
    assert_eq!(h.reaper.exits_recorded(), 1);
}

#[test]
fn owned_exit_reported_between_engine_peek_and_handle_is_announced_once() {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(40);
    h.reaper.own(40, OWNER);
    // The engine peeks the zombie; before it handles it, the owner reaps and reports.
    let reaper = h.reaper.clone();
    let mock = h.mock.clone();
    h.mock.on_inspect(40, move || {
        let t = mock.owner_reap(40);
        reaper.report(40, t);
    });
    h.mock.exit(40, Termination::Exited(5));
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (40, 5, ReapedBy::Other));
    assert_quiet(&sub);
    assert_eq!(
        h.mock.reap_calls(40),
        0,
        "a stale peek must not lead to a reap"
    );
    assert_eq!(h.reaper.exits_recorded(), 1);
}

#[test]
fn lost_race_is_announced_once_and_a_later_report_deduplicated() {
    let h = Harness::new();
    let sub = h.subscribe();
    let (tx, rx) = std::sync::mpsc::channel();
    h.spawn(50);
    let outcome = h
        .reaper
        .wait_with(50, move |e| {
            let _ = tx.send(e);
        })
        .unwrap();
    assert!(matches!(outcome, WaitOutcome::Pending(_)));
    // Unowned, but another waiter (libuv's waitpid) wins between the engine's peek and reap.
    h.mock.steal_on_reap(50);
    h.mock.exit(50, Termination::Exited(6));
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (50, 6, ReapedBy::Other));
    assert_eq!(h.mock.st().stolen, vec![50]);
    assert_eq!(
        rx.recv_timeout(LONG).unwrap().seq,
        e.seq,
        "the wait still resolves"
    );
    // The winner hands the exit back: not announced a second time.
    h.reaper.report(50, Termination::Exited(6));
    assert_quiet(&sub);
    assert_eq!(h.reaper.exits_recorded(), 1);
    // Other children are unaffected.
    h.spawn(51);
    h.mock.exit(51, Termination::Exited(0));
    let e = next(&sub);
    assert_eq!((e.pid, e.reaped_by, e.seq), (51, ReapedBy::Reaper, 2));
}

#[test]
fn an_unknown_child_reaped_by_another_waiter_before_it_is_read_leaves_no_entry() {
    let h = Harness::with_config(Config {
        idle_sweep: Duration::from_secs(30),
        owner_poll_max: Duration::from_millis(20),
        orphan_grace: Duration::from_millis(300),
        ..Config::default()
    });
    let sub = h.subscribe();
    h.spawn(70);
    // Between the engine's peek and its reading of the zombie, another waiter reaps it.
    let mock = h.mock.clone();
    h.mock.on_inspect(70, move || {
        mock.owner_reap(70);
    });
    h.mock.exit(70, Termination::Exited(3));
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (70, 3, ReapedBy::Other));
    assert_eq!(
        h.reaper.stats().known,
        0,
        "an entry was left for a process that is gone"
    );
    // A later process with that pid is judged as itself: held for its own orphan grace.
    h.spawn(70);
    let exited = Instant::now();
    h.mock.exit(70, Termination::Exited(4));
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (70, 4, ReapedBy::Reaper));
    assert!(
        exited.elapsed() >= Duration::from_millis(300),
        "reaped before its grace"
    );
    assert_eq!(h.reaper.exits_recorded(), 2);
}

/// An unknown child that exits during a spawn and is reaped by another waiter between the
/// engine's peek and its reading: `(harness, subscription)` once the engine has met it.
fn unknown_child_taken_during_a_spawn(pid: i32) -> (Harness, Subscription) {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(pid);
    let mock = h.mock.clone();
    h.mock.on_inspect(pid, move || {
        mock.owner_reap(pid);
    });
    h.reaper.pause();
    h.mock.exit(pid, Termination::Exited(5));
    until("the engine to meet the zombie", || !h.mock.is_zombie(pid));
    // Like any unclaimed zombie while a spawn is in flight: not announced yet.
    assert_quiet(&sub);
    (h, sub)
}

#[test]
fn an_exit_taken_during_a_spawn_is_announced_from_its_waiters_report() {
    let (h, sub) = unknown_child_taken_during_a_spawn(75);
    // The waiter's report names the process, which the engine could not read.
    h.reaper
        .report_process(75, Some(7500), Termination::Exited(5));
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (75, 5, ReapedBy::Other));
    assert_eq!(e.start_time, Some(7500), "the report's start time");
    h.reaper.resume();
    assert_quiet(&sub);
    assert_eq!(h.reaper.exits_recorded(), 1);
}

#[test]
fn an_exit_taken_during_a_spawn_and_never_reported_is_announced_at_resume() {
    let (h, sub) = unknown_child_taken_during_a_spawn(76);
    h.reaper.resume();
    let e = next(&sub);
    assert_eq!((e.pid, e.status(), e.reaped_by), (76, 5, ReapedBy::Other));
    assert_eq!(e.start_time, None, "nobody could name it");
    // A late report of it is not announced a second time.
    h.reaper.report(76, Termination::Exited(5));
    assert_quiet(&sub);
    assert_eq!(h.reaper.exits_recorded(), 1);
    assert_eq!(h.reaper.stats().known, 0);
}

#[test]
fn owned_zombie_at_the_head_does_not_block_other_exits() {
    let h = Harness::new();
    let sub = h.subscribe();
    for pid in [60, 61, 62, 63] {
        h.spawn(pid);
    }
    h.reaper.own(60, OWNER);
    h.mock.exit(60, Termination::Exited(1));
    let e = next(&sub);
    assert_eq!((e.pid, e.reaped_by), (60, ReapedBy::Other));
    // 60 stays the first zombie every peek reports; the others must be found past it.
    for pid in [61, 62, 63] {
        h.mock.exit(pid, Termination::Exited(pid - 60));
    }
    let mut got: Vec<(i32, ReapedBy, i32)> = (0..3)
        .map(|_| next(&sub))
        .map(|e| (e.pid, e.reaped_by, e.status()))
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            (61, ReapedBy::Reaper, 1),
            (62, ReapedBy::Reaper, 2),
            (63, ReapedBy::Reaper, 3)
        ]
    );
    assert!(
        h.mock.is_zombie(60),
        "the owned zombie is left to its owner"
    );
    assert_eq!(h.mock.reap_calls(60), 0);
    let t = h.mock.owner_reap(60);
    h.reaper.report(60, t);
    assert_quiet(&sub);
    assert_eq!(h.reaper.exits_recorded(), 4);
}

#[test]
fn disown_all_hands_back_every_pid_of_that_owner_only() {
    let h = Harness::new();
    let sub = h.subscribe();
    for pid in [70, 71, 72] {
        h.spawn(pid);
    }
    h.reaper.own(70, 7);
    h.reaper.own(71, 7);
    h.reaper.own(72, 8);
    h.mock.exit(70, Termination::Exited(0));
    let e = next(&sub);
    assert_eq!((e.pid, e.reaped_by), (70, ReapedBy::Other));
    assert!(h.mock.is_zombie(70));

    // Owner 7 goes away: its announced-but-unreaped zombie is reaped quietly, its live child
    // becomes an ordinary one.
    h.reaper.disown_all(7);
    until("the engine reaps the disowned zombie", || {
        !h.mock.is_zombie(70)
    });
    assert_eq!(h.mock.reap_calls(70), 1);
    assert_quiet(&sub);

    h.mock.exit(71, Termination::Exited(1));
    let e = next(&sub);
    assert_eq!((e.pid, e.reaped_by), (71, ReapedBy::Reaper));

    // Owner 8 still owns 72.
    h.mock.exit(72, Termination::Exited(2));
    let e = next(&sub);
    assert_eq!((e.pid, e.reaped_by), (72, ReapedBy::Other));
    thread::sleep(Duration::from_millis(100));
    assert!(h.mock.is_zombie(72));
    assert_eq!(h.mock.reap_calls(72), 0);
    h.reaper.disown(72);
    until("the engine reaps the disowned zombie", || {
        !h.mock.is_zombie(72)
    });
    assert_quiet(&sub);
    assert_eq!(h.reaper.exits_recorded(), 3);
    assert_eq!(h.reaper.owned_count(), 0);
}

#[test]
fn an_owner_gone_without_reporting_leaves_no_hung_wait_and_no_stale_entry() {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(80);
    h.spawn(81);
    h.reaper.own(80, 9);
    h.reaper.own(81, 9);
    let (tx, rx) = std::sync::mpsc::channel();
    match h.reaper.wait_with(80, move |e| tx.send(e).unwrap()) {
        Ok(WaitOutcome::Pending(_)) => {}
        other => panic!("expected a pending wait, got {other:?}"),
    }
    // 81 is announced, then reaped by its owner, which never reports it.
    h.mock.exit(81, Termination::Exited(4));
    let e = next(&sub);
    assert_eq!((e.pid, e.status()), (81, 4));
    h.mock.owner_reap(81);
    // 80 exits and is reaped by its owner before the engine could see it.
    h.mock.vanish(80);

    h.reaper.disown_all(9);
    let waited = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the wait on 80 settled");
    assert_eq!(waited.termination, Termination::Unknown);
    assert_eq!(waited.status(), -1);
    let e = next(&sub);
    assert_eq!((e.pid, e.termination), (80, Termination::Unknown));
    assert_quiet(&sub);
    assert_eq!(h.reaper.owned_count(), 0);
    assert_eq!(h.reaper.pending_waits(), 0);
    assert_eq!(h.reaper.exits_recorded(), 2);
}

#[test]
fn every_subscriber_sees_every_exit_in_reap_order() {
    let h = Harness::new();
    let subs: Vec<Subscription> = (0..4).map(|_| h.subscribe()).collect();
    let n = 500;
    for pid in 1000..1000 + n {
        h.spawn(pid);
    }
    // All exit while the engine is held, in an order unlike creation order.
    h.reaper.pause();
    for i in 0..n {
        let pid = 1000 + (i * 7919) % n;
        h.mock.exit(pid, Termination::Exited(pid % 256));
    }
    h.reaper.resume();
    let streams: Vec<Vec<(i32, u64)>> = subs
        .iter()
        .map(|s| {
            (0..n)
                .map(|_| next(s))
                .map(|e| {
                    assert_eq!(e.status(), e.pid % 256);
                    (e.pid, e.seq)
                })
                .collect()
        })
        .collect();
    let reaped = h.mock.st().reaped.clone();
    assert_eq!(reaped.len(), n as usize);
    for stream in &streams {
        let pids: Vec<i32> = stream.iter().map(|(p, _)| *p).collect();
        assert_eq!(pids, reaped, "a subscriber's order is the reap order");
        let seqs: Vec<u64> = stream.iter().map(|(_, s)| *s).collect();
        assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    }
    for s in &subs {
        assert_quiet(s);
    }
}

#[test]
fn lagged_subscriber_closed_at_its_overflow_cap_with_exact_count() {
    let h = Harness::new();
    let reader = h.subscribe();
    let stuck = h.reaper.subscribe(SubscribeOptions {
        buffer_size: 4,
        lag_timeout: Duration::from_secs(60),
        max_overflow: 10,
        notify: None,
    });
    for pid in 100..120 {
        h.spawn(pid);
    }
    h.reaper.pause();
    for pid in 100..120 {
        h.mock.exit(pid, Termination::Exited(0));
    }
    h.reaper.resume();
    let all: Vec<Arc<Exit>> = (0..20).map(|_| next(&reader)).collect();
    until("the stuck subscriber is dropped", || {
        h.reaper.subscriber_count() == 1
    });
    // 4 fit its buffer; exits 5..=15 went to overflow, and the 11th overflowing one (past the
    // cap of 10) closed it: 11 missed. Exits 16..=20 came after it was closed.
    for want in &all[..4] {
        assert_eq!(stuck.try_recv().unwrap().unwrap().seq, want.seq);
    }
    assert_eq!(stuck.try_recv(), Err(RecvError::Lagged { missed: 11 }));
    assert_eq!(stuck.try_recv(), Err(RecvError::Closed));
}

#[test]
fn lagged_subscriber_closed_at_its_deadline_with_exact_count() {
    let h = Harness::new();
    let reader = h.subscribe();
    let lag = Duration::from_millis(500);
    let stuck = h.reaper.subscribe(SubscribeOptions {
        buffer_size: 4,
        lag_timeout: lag,
        max_overflow: 1000,
        notify: None,
    });
    for pid in 200..230 {
        h.spawn(pid);
    }
    h.reaper.pause();
    for pid in 200..209 {
        h.mock.exit(pid, Termination::Exited(0));
    }
    let start = Instant::now();
    h.reaper.resume();
    for _ in 0..9 {
        next(&reader);
    }
    assert!(
        start.elapsed() < lag / 2,
        "premise: all 9 delivered at once"
    );
    // Full past its deadline, with no new exit to trigger the check: the delivery thread's
    // own timer closes it.
    until("the stuck subscriber is dropped", || {
        h.reaper.subscriber_count() == 1
    });
    assert!(start.elapsed() >= lag);
    // Exits after the close do not count.
    for pid in 209..230 {
        h.mock.exit(pid, Termination::Exited(0));
    }
    for _ in 209..230 {
        next(&reader);
    }
    assert_eq!(stuck.len(), 4);
    for seq in 1..=4 {
        assert_eq!(stuck.try_recv().unwrap().unwrap().seq, seq);
    }
    assert_eq!(stuck.try_recv(), Err(RecvError::Lagged { missed: 5 }));
}

#[test]
fn slow_reader_within_its_deadline_loses_nothing() {
    let h = Harness::new();
    let slow = h.reaper.subscribe(SubscribeOptions {
        buffer_size: 2,
        lag_timeout: Duration::from_secs(2),
        max_overflow: 1000,
        notify: None,
    });
    for pid in 300..400 {
        h.spawn(pid);
    }
    h.reaper.pause();
    for pid in 300..400 {
        h.mock.exit(pid, Termination::Exited(0));
    }
    h.reaper.resume();
    let mut seqs = Vec::new();
    for _ in 0..100 {
        thread::sleep(Duration::from_micros(200));
        seqs.push(next(&slow).seq);
    }
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
}

#[test]
fn unsubscribe_from_inside_a_delivery_does_not_deadlock() {
    let h = Harness::new();
    let victim = Arc::new(h.subscribe());
    // The notify callback runs on the delivery thread, in the middle of a delivery (the first
    // exit of 200): it unsubscribes another subscriber, which a third thread is blocked reading.
    let calls = Arc::new(AtomicUsize::new(0));
    let (c, v) = (calls.clone(), victim.clone());
    let trigger = h.reaper.subscribe(SubscribeOptions {
        buffer_size: 100_000,
        notify: Some(Arc::new(move || {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                v.unsubscribe();
            }
        })),
        ..SubscribeOptions::default()
    });
    let bystander = h.subscribe();
    let v = victim.clone();
    let victim_reader = thread::spawn(move || {
        let mut n = 0;
        loop {
            match v.recv_timeout(LONG) {
                Ok(Some(_)) => n += 1,
                Ok(None) => panic!("the victim was never closed"),
                Err(e) => return (n, e),
            }
        }
    });
    let n = 200;
    for pid in 500..500 + n {
        h.spawn(pid);
    }
    for pid in 500..500 + n {
        h.mock.exit(pid, Termination::Exited(0));
        // Spread the exits over several deliveries.
        if pid % 10 == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let mut seqs = Vec::new();
    for _ in 0..n {
        seqs.push(next(&trigger).seq);
    }
    assert_eq!(seqs, (1..=n as u64).collect::<Vec<_>>());
    for seq in 1..=n as u64 {
        assert_eq!(next(&bystander).seq, seq);
    }
    let (got, err) = victim_reader.join().unwrap();
    assert_eq!(err, RecvError::Closed);
    assert!(got < n as usize, "the victim was unsubscribed mid-flow");
    assert!(calls.load(Ordering::SeqCst) >= 1);
    until("the victim is gone", || h.reaper.subscriber_count() == 2);
}

#[test]
fn unsubscribe_while_another_thread_is_blocked_in_recv() {
    let h = Harness::new();
    let sub = Arc::new(h.subscribe());
    let s = sub.clone();
    let blocked = thread::spawn(move || s.recv());
    thread::sleep(Duration::from_millis(50));
    sub.unsubscribe();
    assert_eq!(blocked.join().unwrap(), Err(RecvError::Closed));
    assert_eq!(h.reaper.subscriber_count(), 0);
    // The engine goes on without it.
    let other = h.subscribe();
    h.spawn(800);
    h.mock.exit(800, Termination::Exited(0));
    assert_eq!(next(&other).pid, 800);
}

#[test]
fn waits_before_and_after_the_exit_not_a_child_and_timeout() {
    let h = Harness::new();
    h.spawn(900);
    h.spawn(901);
    // Not a child: fails at once.
    let t = Instant::now();
    assert_eq!(h.reaper.wait(12345, None), Err(WaitError::NotAChild(12345)));
    assert_eq!(h.reaper.wait(0, None), Err(WaitError::NotAChild(0)));
    assert_eq!(h.reaper.wait(-1, None), Err(WaitError::NotAChild(-1)));
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Timeout on a live child, and the cancelled wait is withdrawn.
    let t = Instant::now();
    assert_eq!(
        h.reaper.wait(900, Some(Duration::from_millis(100))),
        Err(WaitError::TimedOut(900))
    );
    assert!(t.elapsed() >= Duration::from_millis(100));
    assert_eq!(h.reaper.pending_waits(), 0);
    // Before the exit.
    let r = h.reaper.clone();
    let waiter = thread::spawn(move || r.wait(900, Some(LONG)));
    until("the wait is registered", || h.reaper.pending_waits() == 1);
    h.mock.exit(900, Termination::Exited(9));
    let e = waiter.join().unwrap().unwrap();
    assert_eq!((e.pid, e.status()), (900, 9));
    // After the exit: from the recent table, at once.
    h.mock.exit(901, Termination::Exited(10));
    until("901 is recorded", || h.reaper.last_exit(901).is_some());
    match h
        .reaper
        .wait_with(901, |_| panic!("must not be stored"))
        .unwrap()
    {
        WaitOutcome::Ready(e) => assert_eq!(e.status(), 10),
        WaitOutcome::Pending(_) => panic!("pending after the exit"),
    }
    assert_eq!(h.reaper.pending_waits(), 0);
}

#[test]
fn recent_table_is_bounded() {
    let h = Harness::with_config(Config {
        recent_capacity: 3,
        idle_sweep: Duration::from_secs(30),
        ..Config::default()
    });
    let sub = h.subscribe();
    for pid in 1..=5 {
        h.spawn(pid);
        h.mock.exit(pid, Termination::Exited(0));
        next(&sub);
    }
    assert_eq!(h.reaper.recent_len(), 3);
    assert_eq!(h.reaper.wait(1, None), Err(WaitError::NotAChild(1)));
    assert_eq!(h.reaper.wait(5, None).unwrap().pid, 5);
}

#[test]
fn pause_holds_reaping_until_resume() {
    let h = Harness::new();
    let sub = h.subscribe();
    h.spawn(1100);
    h.reaper.pause();
    h.reaper.pause(); // calls nest
    h.mock.exit(1100, Termination::Exited(0));
    h.reaper.kick();
    assert_quiet(&sub);
    assert!(h.mock.is_zombie(1100));
    assert!(
        h.reaper.sweep().is_empty(),
        "a sweep respects the pause too"
    );
    h.reaper.resume();
    assert_quiet(&sub);
    assert!(h.mock.is_zombie(1100));
    h.reaper.resume();
    assert_eq!(next(&sub).pid, 1100);
    assert!(!h.mock.is_zombie(1100));
}

#[test]
fn a_kick_during_a_drain_that_found_no_children_is_not_lost() {
    // The thread drains, finds no children and goes to sleep for `idle_sweep` unless kicked.
    // A child spawned (and kicked for) after the drain looked but before the thread sleeps
    // must not wait for the backstop.
    let h = Harness::with_config(Config {
        idle_sweep: Duration::from_secs(30),
        ..Config::default()
    });
    let sub = h.subscribe();
    let reaper: Arc<OnceLock<Reaper<Mock>>> = Arc::new(OnceLock::new());
    let _ = reaper.set(h.reaper.clone());
    let mock = h.mock.clone();
    let r = reaper.clone();
    *h.mock.0.on_no_children.lock().unwrap() = Some(Box::new(move || {
        mock.spawn(1200);
        mock.exit(1200, Termination::Exited(0));
        r.get().unwrap().kick();
    }));
    // Let the thread reach a drain that finds no children.
    h.reaper.kick();
    let t = Instant::now();
    let e = next(&sub);
    assert_eq!(e.pid, 1200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the kick was lost: waited {:?}",
        t.elapsed()
    );
}

#[test]
fn report_of_an_owned_pid_resolves_its_wait() {
    let h = Harness::new();
    h.spawn(1300);
    h.reaper.own(1300, OWNER);
    let r = h.reaper.clone();
    let waiter = thread::spawn(move || r.wait(1300, Some(LONG)));
    until("the wait is registered", || h.reaper.pending_waits() == 1);
    h.reaper.pause();
    h.mock.exit(1300, Termination::Exited(77));
    let t = h.mock.owner_reap(1300);
    h.reaper.report(1300, t);
    h.reaper.resume();
    let e = waiter.join().unwrap().unwrap();
    assert_eq!((e.status(), e.reaped_by), (77, ReapedBy::Other));
}
