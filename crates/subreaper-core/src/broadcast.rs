//! Where exits are broadcast: every subscriber has a bounded queue, filled straight from the
//! thread that publishes (the reaper's, or the thread reporting an owner's exit). Offering an
//! exit never blocks: it takes the subscriber's queue lock for a push, and wakes the reader
//! only when its queue goes from empty to non-empty. No thread hop lies between the reap and
//! the reader's wake-up.
//!
//! A subscriber whose queue is full keeps receiving into an overflow list while it is within
//! its lag deadline; the overflow moves into the queue, in order, as soon as the subscriber
//! makes room. A subscriber that stays full past its deadline (or whose overflow reaches its
//! cap) is closed with [`RecvError::Lagged`], which carries the exact number of exits it did not
//! receive. Nothing is dropped silently, and memory stays bounded by the cap.
//!
//! **Each subscriber is judged by its own reading.** The deadline runs only while the reader
//! could read: a subscriber with a [`Notify`] whose "readable" call is still waiting for its
//! thread (an event loop busy in someone else's callback) is not on the clock. Its clock starts
//! when the reader is called back ([`Subscription::reader_called`]) or when it reads, and each
//! read restarts it. While its thread stays busy, only the overflow cap can close it. A
//! subscriber without a `Notify` (a Rust reader on a thread of its own) is on the clock from
//! the moment it is full. A watcher thread closes a subscriber whose deadline passes while no
//! exit is being offered; it sleeps while no subscriber is on the clock.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::exit::Exit;

/// Called when a subscriber's queue goes from empty to non-empty, or when the subscriber is
/// closed. It runs on the publishing thread, with the engine's state lock held: it must not
/// block and must not call into the [`Reaper`](crate::Reaper).
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// How one subscriber is buffered.
#[derive(Clone)]
pub struct SubscribeOptions {
    /// Exits held for the subscriber before it counts as full (containerd's 32).
    pub buffer_size: usize,
    /// How long the subscriber may stay full, while its reader could read, before it is closed
    /// as lagged (see the module's documentation).
    pub lag_timeout: Duration,
    /// How many exits may wait in overflow during that time before it is closed as lagged.
    pub max_overflow: usize,
    pub notify: Option<Notify>,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            buffer_size: 32,
            lag_timeout: Duration::from_secs(1),
            max_overflow: 16_384,
            notify: None,
        }
    }
}

impl std::fmt::Debug for SubscribeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubscribeOptions")
            .field("buffer_size", &self.buffer_size)
            .field("lag_timeout", &self.lag_timeout)
            .field("max_overflow", &self.max_overflow)
            .finish_non_exhaustive()
    }
}

/// Why a subscription yields no more exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// The subscriber stayed full past its deadline and was closed; `missed` exits were
    /// broadcast to it and never received.
    Lagged { missed: u64 },
    /// The subscription was closed by `unsubscribe`, or the reaper is gone.
    Closed,
}

impl std::fmt::Display for RecvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecvError::Lagged { missed } => write!(
                f,
                "subscriber lagged: it stayed full past its deadline and missed {missed} exits"
            ),
            RecvError::Closed => write!(f, "subscription closed"),
        }
    }
}

impl std::error::Error for RecvError {}

struct Queue {
    ready: VecDeque<Arc<Exit>>,
    overflow: VecDeque<Arc<Exit>>,
    /// Since when the subscriber has been full while its reader could read: its lag clock.
    full_since: Option<Instant>,
    /// A "readable" call was made and the reader has not been called back (nor read) since:
    /// its thread is busy elsewhere, so the lag clock does not run.
    notify_pending: bool,
    closed: Option<RecvError>,
    /// The close reason has been returned to the reader once.
    close_seen: bool,
    /// Readers blocked in `recv`: only they need the condition variable's wake-up (a
    /// JavaScript reader never blocks, and its wake-up is the `Notify` alone).
    blocked_readers: usize,
}

pub(crate) struct Subscriber {
    id: u64,
    /// Exits numbered up to this were recorded before the subscriber subscribed: they are not
    /// its own, even when still on their way to the others.
    after_seq: u64,
    options: SubscribeOptions,
    queue: Mutex<Queue>,
    readable: Condvar,
    watch: Arc<Watch>,
}

impl Subscriber {
    fn new(
        id: u64,
        mut options: SubscribeOptions,
        after_seq: u64,
        watch: Arc<Watch>,
    ) -> Subscriber {
        options.buffer_size = options.buffer_size.max(1);
        Subscriber {
            id,
            after_seq,
            queue: Mutex::new(Queue {
                ready: VecDeque::with_capacity(options.buffer_size.min(1024)),
                overflow: VecDeque::new(),
                full_since: None,
                notify_pending: false,
                closed: None,
                close_seen: false,
                blocked_readers: 0,
            }),
            options,
            readable: Condvar::new(),
            watch,
        }
    }

    /// Unlocks the queue, then wakes its readers: the condition variable only when one is
    /// blocked in `recv` (a reader about to block looks at the queue under this lock first,
    /// so none is missed), and the `Notify`.
    fn unlock_and_notify(&self, q: MutexGuard<'_, Queue>) {
        let blocked = q.blocked_readers > 0;
        drop(q);
        if blocked {
            self.readable.notify_all();
        }
        if let Some(notify) = &self.options.notify {
            notify();
        }
    }

    /// Hands one exit to this subscriber. Returns false once the subscriber is closed.
    fn offer(&self, exit: &Arc<Exit>, now: Instant) -> bool {
        if exit.seq <= self.after_seq {
            return true;
        }
        let mut q = self.queue.lock().unwrap();
        if q.closed.is_some() {
            return false;
        }
        if q.overflow.is_empty() && q.ready.len() < self.options.buffer_size {
            let was_empty = q.ready.is_empty();
            q.ready.push_back(exit.clone());
            if was_empty && self.options.notify.is_some() {
                q.notify_pending = true;
            }
            if was_empty {
                self.unlock_and_notify(q);
            }
            return true;
        }
        q.overflow.push_back(exit.clone());
        if !q.notify_pending && q.full_since.is_none() {
            q.full_since = Some(now);
            self.watch.poke();
        }
        let late = q
            .full_since
            .is_some_and(|since| now.saturating_duration_since(since) > self.options.lag_timeout);
        if q.overflow.len() > self.options.max_overflow || late {
            Self::close_lagged(&mut q);
            self.unlock_and_notify(q);
            return false;
        }
        true
    }

    fn close_lagged(q: &mut Queue) {
        let missed = q.overflow.len() as u64;
        q.overflow.clear();
        q.overflow.shrink_to_fit();
        q.closed = Some(RecvError::Lagged { missed });
    }

    /// The reader was called back for a "readable" notification: from now on it can read, and
    /// if it is full, its lag clock runs.
    fn reader_called(&self) {
        let mut q = self.queue.lock().unwrap();
        q.notify_pending = false;
        if q.closed.is_none() && !q.overflow.is_empty() && q.full_since.is_none() {
            q.full_since = Some(Instant::now());
            drop(q);
            self.watch.poke();
        }
    }

    /// Closes the subscriber if it has stayed full past its deadline. Returns the deadline
    /// still pending, if any.
    fn check_deadline(&self, now: Instant) -> Option<Instant> {
        let mut q = self.queue.lock().unwrap();
        if q.closed.is_some() {
            return None;
        }
        let since = q.full_since?;
        let deadline = since + self.options.lag_timeout;
        if now > deadline {
            Self::close_lagged(&mut q);
            self.unlock_and_notify(q);
            return None;
        }
        Some(deadline)
    }

    fn close(&self, reason: RecvError) {
        let mut q = self.queue.lock().unwrap();
        if q.closed.is_none() {
            q.closed = Some(reason);
            if reason == RecvError::Closed {
                q.ready.clear();
                q.overflow.clear();
            }
        }
        self.unlock_and_notify(q);
    }

    fn try_recv(&self) -> Result<Option<Arc<Exit>>, RecvError> {
        let mut q = self.queue.lock().unwrap();
        self.take(&mut q)
    }

    fn take(&self, q: &mut Queue) -> Result<Option<Arc<Exit>>, RecvError> {
        // A reader that reads had its chance, whatever its notification's state.
        q.notify_pending = false;
        if let Some(exit) = q.ready.pop_front() {
            // Room was made: move what waited in overflow in, and restart the deadline.
            while q.ready.len() < self.options.buffer_size {
                match q.overflow.pop_front() {
                    Some(e) => q.ready.push_back(e),
                    None => break,
                }
            }
            if q.overflow.is_empty() {
                q.full_since = None;
            } else {
                let was_off = q.full_since.is_none();
                q.full_since = Some(Instant::now());
                if was_off {
                    self.watch.poke();
                }
            }
            return Ok(Some(exit));
        }
        match q.closed {
            Some(reason) if !q.close_seen => {
                q.close_seen = true;
                Err(reason)
            }
            Some(_) => Err(RecvError::Closed),
            None => Ok(None),
        }
    }

    fn recv_timeout(&self, timeout: Option<Duration>) -> Result<Option<Arc<Exit>>, RecvError> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut q = self.queue.lock().unwrap();
        loop {
            if let Some(exit) = self.take(&mut q)? {
                return Ok(Some(exit));
            }
            let wait = match deadline {
                None => None,
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    Some(deadline - now)
                }
            };
            q.blocked_readers += 1;
            q = match wait {
                None => self.readable.wait(q).unwrap(),
                Some(wait) => self.readable.wait_timeout(q, wait).unwrap().0,
            };
            q.blocked_readers -= 1;
        }
    }

    fn len(&self) -> usize {
        let q = self.queue.lock().unwrap();
        q.ready.len() + q.overflow.len()
    }
}

/// Wakes the deadline watcher when a subscriber's lag clock starts, and stops it with the hub.
struct Watch {
    state: Mutex<WatchState>,
    changed: Condvar,
}

#[derive(Default)]
struct WatchState {
    poked: bool,
    stopped: bool,
}

impl Watch {
    fn poke(&self) {
        let mut st = self.state.lock().unwrap();
        if !st.poked {
            st.poked = true;
            self.changed.notify_one();
        }
    }

    fn stop(&self) {
        self.state.lock().unwrap().stopped = true;
        self.changed.notify_one();
    }

    /// Sleeps until poked, stopped, or `until`. Returns false once stopped.
    fn sleep(&self, until: Option<Instant>) -> bool {
        let mut st = self.state.lock().unwrap();
        while !st.poked && !st.stopped {
            match until {
                None => st = self.changed.wait(st).unwrap(),
                Some(at) => {
                    let now = Instant::now();
                    if now >= at {
                        break;
                    }
                    st = self.changed.wait_timeout(st, at - now).unwrap().0;
                }
            }
        }
        st.poked = false;
        !st.stopped
    }
}

type SubscriberList = Arc<Mutex<Vec<Arc<Subscriber>>>>;

/// The set of subscribers, and the watcher thread that closes those past their deadline.
pub(crate) struct Hub {
    subscribers: SubscriberList,
    watch: Arc<Watch>,
    next_id: AtomicU64,
}

impl Hub {
    pub(crate) fn start() -> Arc<Hub> {
        let subscribers: SubscriberList = Arc::new(Mutex::new(Vec::new()));
        let watch = Arc::new(Watch {
            state: Mutex::new(WatchState::default()),
            changed: Condvar::new(),
        });
        let (list, w) = (subscribers.clone(), watch.clone());
        crate::engine_thread::spawn("subreaper-broadcast", move || watch_deadlines(&list, &w))
            .expect("cannot start the subreaper broadcast thread");
        Arc::new(Hub {
            subscribers,
            watch,
            next_id: AtomicU64::new(1),
        })
    }

    /// Offers exits, in order, to every current subscriber, on the calling thread. Never
    /// blocks on a subscriber. The caller serialises publications (the engine publishes
    /// under its state lock), so every subscriber sees exits in the order they were recorded.
    pub(crate) fn publish(&self, exits: Vec<Arc<Exit>>) {
        if exits.is_empty() {
            return;
        }
        // Copied, so that the list lock is never held while offering: subscribing and
        // unsubscribing (even from inside a notify) never wait for a delivery (containerd
        // deadlocked holding a lock while sending).
        let snapshot: Vec<Arc<Subscriber>> = self.subscribers.lock().unwrap().clone();
        let now = Instant::now();
        let mut closed = Vec::new();
        for sub in &snapshot {
            for exit in &exits {
                if !sub.offer(exit, now) {
                    closed.push(sub.id);
                    break;
                }
            }
        }
        if !closed.is_empty() {
            remove_ids(&self.subscribers, &closed);
        }
    }

    /// Subscribes to the exits numbered above `after_seq`.
    pub(crate) fn subscribe(
        self: &Arc<Hub>,
        options: SubscribeOptions,
        after_seq: u64,
    ) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscriber::new(id, options, after_seq, self.watch.clone()));
        self.subscribers.lock().unwrap().push(sub.clone());
        Subscription {
            sub,
            hub: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        remove_ids(&self.subscribers, &[id]);
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.subscribers.lock().unwrap().len()
    }
}

fn remove_ids(list: &SubscriberList, ids: &[u64]) {
    list.lock().unwrap().retain(|s| !ids.contains(&s.id));
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.watch.stop();
        for sub in self.subscribers.lock().unwrap().drain(..) {
            sub.close(RecvError::Closed);
        }
    }
}

/// The watcher thread: closes subscribers whose lag deadline passes while nothing is offered to
/// them (an offer checks the deadline itself). Sleeps while no subscriber is on the clock.
fn watch_deadlines(subscribers: &SubscriberList, watch: &Watch) {
    let mut next_deadline: Option<Instant> = None;
    while watch.sleep(next_deadline) {
        let snapshot: Vec<Arc<Subscriber>> = subscribers.lock().unwrap().clone();
        let now = Instant::now();
        let mut closed = Vec::new();
        next_deadline = None;
        for sub in &snapshot {
            match sub.check_deadline(now) {
                Some(d) => next_deadline = Some(next_deadline.map_or(d, |n: Instant| n.min(d))),
                None => {
                    if sub.queue.lock().unwrap().closed.is_some() {
                        closed.push(sub.id);
                    }
                }
            }
        }
        if !closed.is_empty() {
            remove_ids(subscribers, &closed);
        }
    }
}

/// A stream of exits, in reap order. Dropping it unsubscribes.
pub struct Subscription {
    sub: Arc<Subscriber>,
    hub: Weak<Hub>,
}

impl Subscription {
    /// Waits for the next exit. `Err` once the subscription is closed (lagged or unsubscribed).
    pub fn recv(&self) -> Result<Arc<Exit>, RecvError> {
        self.sub.recv_timeout(None).map(|e| e.expect("no timeout"))
    }

    /// Waits up to `timeout`; `Ok(None)` when nothing arrived in time.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<Option<Arc<Exit>>, RecvError> {
        self.sub.recv_timeout(Some(timeout))
    }

    /// Tells the subscriber that its reader has just been called back for a "readable"
    /// notification: it can read now, so its lag clock runs from here while it is full. Call
    /// it from the reader's own thread, before reading.
    pub fn reader_called(&self) {
        self.sub.reader_called();
    }

    /// The next exit if one is queued, without waiting.
    pub fn try_recv(&self) -> Result<Option<Arc<Exit>>, RecvError> {
        self.sub.try_recv()
    }

    /// Exits queued and not yet received (including overflow).
    pub fn len(&self) -> usize {
        self.sub.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops delivery. Safe at any moment, including while an exit is being delivered.
    pub fn unsubscribe(&self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.remove(self.sub.id);
        }
        self.sub.close(RecvError::Closed);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.unsubscribe();
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.sub.id)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(seq: u64) -> Arc<Exit> {
        Exit::for_test(1000 + seq as i32, seq)
    }

    fn blocked_readers(sub: &Subscription) -> usize {
        sub.sub.queue.lock().unwrap().blocked_readers
    }

    /// Waits (bounded) for `done`; fails the test if it never becomes true.
    fn until(what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            assert!(start.elapsed() < Duration::from_secs(10), "{what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Starts a reader blocked in `recv` (no timeout: only a wake-up ends its wait).
    fn blocked_reader(
        sub: &Arc<Subscription>,
    ) -> std::thread::JoinHandle<Result<Arc<Exit>, RecvError>> {
        let reader = {
            let sub = sub.clone();
            std::thread::spawn(move || sub.recv())
        };
        until("the reader never blocked", || blocked_readers(sub) == 1);
        reader
    }

    #[test]
    fn a_blocked_reader_is_woken_by_an_offer_and_counted_only_while_blocked() {
        let hub = Hub::start();
        let sub = Arc::new(hub.subscribe(SubscribeOptions::default(), 0));
        let reader = blocked_reader(&sub);
        hub.publish(vec![exit(1)]);
        until("the blocked reader was not woken", || reader.is_finished());
        assert_eq!(reader.join().unwrap().unwrap().seq, 1);
        assert_eq!(blocked_readers(&sub), 0);
    }

    #[test]
    fn a_blocked_reader_is_woken_when_its_hub_closes() {
        let hub = Hub::start();
        let sub = Arc::new(hub.subscribe(SubscribeOptions::default(), 0));
        let reader = blocked_reader(&sub);
        drop(hub);
        until("the blocked reader was not woken", || reader.is_finished());
        assert_eq!(reader.join().unwrap(), Err(RecvError::Closed));
    }

    #[test]
    fn a_reader_that_timed_out_is_no_longer_counted() {
        let hub = Hub::start();
        let sub = hub.subscribe(SubscribeOptions::default(), 0);
        assert_eq!(sub.recv_timeout(Duration::from_millis(5)), Ok(None));
        assert_eq!(blocked_readers(&sub), 0);
        // A reader that never blocks (a notified one, as JavaScript's) still gets every exit.
        hub.publish(vec![exit(1), exit(2)]);
        assert_eq!(sub.try_recv().unwrap().unwrap().seq, 1);
        assert_eq!(sub.try_recv().unwrap().unwrap().seq, 2);
    }
}
