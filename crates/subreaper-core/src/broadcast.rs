//! Where exits are broadcast: every subscriber has a bounded queue, filled by a delivery
//! thread of its own so that reaping never waits for a subscriber.
//!
//! A subscriber whose queue is full keeps receiving into an overflow list while it is within
//! its lag deadline; the overflow moves into the queue, in order, as soon as the subscriber
//! makes room. A subscriber that stays full past its deadline (or whose overflow reaches its
//! cap) is closed with [`RecvError::Lagged`], which carries the exact number of exits it did not
//! receive. Nothing is dropped silently, and memory stays bounded by the cap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::exit::Exit;

/// Called (from the delivery thread) when a subscriber's queue goes from empty to non-empty,
/// or when the subscriber is closed. It must not block.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// How one subscriber is buffered.
#[derive(Clone)]
pub struct SubscribeOptions {
    /// Exits held for the subscriber before it counts as full (the seed's 32).
    pub buffer_size: usize,
    /// How long the subscriber may stay full before it is closed as lagged.
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
    full_since: Option<Instant>,
    closed: Option<RecvError>,
    /// The close reason has been returned to the reader once.
    close_seen: bool,
}

pub(crate) struct Subscriber {
    id: u64,
    /// Exits numbered up to this were recorded before the subscriber subscribed: they are not
    /// its own, even when still on their way to the others.
    after_seq: u64,
    options: SubscribeOptions,
    queue: Mutex<Queue>,
    readable: Condvar,
}

impl Subscriber {
    fn new(id: u64, mut options: SubscribeOptions, after_seq: u64) -> Subscriber {
        options.buffer_size = options.buffer_size.max(1);
        Subscriber {
            id,
            after_seq,
            queue: Mutex::new(Queue {
                ready: VecDeque::with_capacity(options.buffer_size.min(1024)),
                overflow: VecDeque::new(),
                full_since: None,
                closed: None,
                close_seen: false,
            }),
            options,
            readable: Condvar::new(),
        }
    }

    fn notify(&self) {
        self.readable.notify_all();
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
            drop(q);
            if was_empty {
                self.notify();
            }
            return true;
        }
        q.overflow.push_back(exit.clone());
        let since = *q.full_since.get_or_insert(now);
        if q.overflow.len() > self.options.max_overflow
            || now.duration_since(since) > self.options.lag_timeout
        {
            Self::close_lagged(&mut q);
            drop(q);
            self.notify();
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
            drop(q);
            self.notify();
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
        drop(q);
        self.notify();
    }

    fn try_recv(&self) -> Result<Option<Arc<Exit>>, RecvError> {
        let mut q = self.queue.lock().unwrap();
        Self::take(&mut q, self.options.buffer_size)
    }

    fn take(q: &mut Queue, buffer_size: usize) -> Result<Option<Arc<Exit>>, RecvError> {
        if let Some(exit) = q.ready.pop_front() {
            // Room was made: move what waited in overflow in, and restart the deadline.
            while q.ready.len() < buffer_size {
                match q.overflow.pop_front() {
                    Some(e) => q.ready.push_back(e),
                    None => break,
                }
            }
            q.full_since = if q.overflow.is_empty() {
                None
            } else {
                Some(Instant::now())
            };
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
            if let Some(exit) = Self::take(&mut q, self.options.buffer_size)? {
                return Ok(Some(exit));
            }
            match deadline {
                None => q = self.readable.wait(q).unwrap(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Ok(None);
                    }
                    q = self.readable.wait_timeout(q, deadline - now).unwrap().0;
                }
            }
        }
    }

    fn len(&self) -> usize {
        let q = self.queue.lock().unwrap();
        q.ready.len() + q.overflow.len()
    }
}

/// The set of subscribers and the delivery thread that feeds them.
pub(crate) struct Hub {
    subscribers: Arc<Mutex<Vec<Arc<Subscriber>>>>,
    tx: Mutex<Sender<Vec<Arc<Exit>>>>,
    next_id: AtomicU64,
}

impl Hub {
    pub(crate) fn start() -> Arc<Hub> {
        let (tx, rx) = mpsc::channel();
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        let list = subscribers.clone();
        thread::Builder::new()
            .name("subreaper-broadcast".into())
            .spawn(move || deliver(rx, list))
            .expect("cannot start the subreaper broadcast thread");
        Arc::new(Hub {
            subscribers,
            tx: Mutex::new(tx),
            next_id: AtomicU64::new(1),
        })
    }

    /// Queues exits, in order, for every current subscriber. Never blocks on a subscriber.
    /// The reaper hands them over in batches: one wake-up of the delivery thread per batch.
    pub(crate) fn publish(&self, exits: Vec<Arc<Exit>>) {
        if !exits.is_empty() {
            let _ = self.tx.lock().unwrap().send(exits);
        }
    }

    /// Subscribes to the exits numbered above `after_seq`.
    pub(crate) fn subscribe(
        self: &Arc<Hub>,
        options: SubscribeOptions,
        after_seq: u64,
    ) -> Subscription {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let sub = Arc::new(Subscriber::new(id, options, after_seq));
        self.subscribers.lock().unwrap().push(sub.clone());
        Subscription {
            sub,
            hub: Arc::downgrade(self),
        }
    }

    fn remove(&self, id: u64) {
        self.subscribers.lock().unwrap().retain(|s| s.id != id);
    }

    pub(crate) fn subscriber_count(&self) -> usize {
        self.subscribers.lock().unwrap().len()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        for sub in self.subscribers.lock().unwrap().drain(..) {
            sub.close(RecvError::Closed);
        }
    }
}

fn deliver(rx: Receiver<Vec<Arc<Exit>>>, subscribers: Arc<Mutex<Vec<Arc<Subscriber>>>>) {
    let mut next_deadline: Option<Instant> = None;
    loop {
        let received = match next_deadline {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        let batch = received.map(|mut batch| {
            for more in rx.try_iter().take(64) {
                batch.extend(more);
            }
            batch
        });
        // Copied after the batch was taken: every subscriber that joined before one of its
        // exits was published is in it. The list lock is held only to copy it, so subscribing
        // and unsubscribing never wait for a delivery (containerd deadlocked holding a lock
        // while sending).
        let snapshot: Vec<Arc<Subscriber>> = subscribers.lock().unwrap().clone();
        let now = Instant::now();
        let mut closed = Vec::new();
        match batch {
            Ok(batch) => {
                for sub in &snapshot {
                    for exit in &batch {
                        if !sub.offer(exit, now) {
                            closed.push(sub.id);
                            break;
                        }
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                for sub in &snapshot {
                    sub.close(RecvError::Closed);
                }
                return;
            }
        }
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
            subscribers
                .lock()
                .unwrap()
                .retain(|s| !closed.contains(&s.id));
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
