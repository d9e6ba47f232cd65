//! A bounded table of recent exits, so that `wait(pid)` called after the child was reaped still
//! gets its exit (the race containerd's reaper avoids only by subscribing before start).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exit::Exit;

pub(crate) struct RecentExits {
    order: VecDeque<(Instant, Arc<Exit>)>,
    by_pid: HashMap<i32, Arc<Exit>>,
    capacity: usize,
    max_age: Duration,
}

impl RecentExits {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> RecentExits {
        RecentExits {
            order: VecDeque::new(),
            by_pid: HashMap::new(),
            capacity,
            max_age,
        }
    }

    pub(crate) fn insert(&mut self, exit: Arc<Exit>) {
        let now = Instant::now();
        self.by_pid.insert(exit.pid, exit.clone());
        self.order.push_back((now, exit));
        self.evict(now);
    }

    pub(crate) fn get(&mut self, pid: i32) -> Option<Arc<Exit>> {
        self.evict(Instant::now());
        self.by_pid.get(&pid).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    fn evict(&mut self, now: Instant) {
        while let Some((at, exit)) = self.order.front() {
            let too_many = self.order.len() > self.capacity;
            let too_old = now.duration_since(*at) > self.max_age;
            if !too_many && !too_old {
                break;
            }
            // Only forget the pid if this entry is still its latest exit (pids are recycled).
            if self.by_pid.get(&exit.pid).map(|e| e.seq) == Some(exit.seq) {
                self.by_pid.remove(&exit.pid);
            }
            self.order.pop_front();
        }
    }
}
