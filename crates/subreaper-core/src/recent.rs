//! A bounded table of recent exits, so that `wait(pid)` called after the child was reaped still
//! gets its exit (the race containerd's reaper avoids only by subscribing before start).

use std::collections::hash_map::Entry;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exit::Exit;
use crate::pid_map::PidMap;

pub(crate) struct RecentExits {
    /// Oldest first. The pid and number are kept here too, so that letting the oldest go
    /// (once per exit recorded, when full) reads nothing of the exit itself.
    order: VecDeque<Recorded>,
    /// The latest exit of each pid, with its number and when it was recorded.
    by_pid: PidMap<Recorded>,
    capacity: usize,
    max_age: Duration,
}

#[derive(Clone)]
struct Recorded {
    at: Instant,
    pid: i32,
    seq: u64,
    exit: Arc<Exit>,
}

impl RecentExits {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> RecentExits {
        RecentExits {
            order: VecDeque::new(),
            by_pid: PidMap::default(),
            capacity,
            max_age,
        }
    }

    pub(crate) fn insert(&mut self, exit: Arc<Exit>) {
        let now = Instant::now();
        let recorded = Recorded {
            at: now,
            pid: exit.pid,
            seq: exit.seq,
            exit,
        };
        self.by_pid.insert(recorded.pid, recorded.clone());
        self.order.push_back(recorded);
        self.evict(now);
    }

    /// The last exit of `pid`, unless it is older than the table keeps.
    pub(crate) fn get(&mut self, pid: i32) -> Option<Arc<Exit>> {
        // Most lookups (a zombie met for the first time) find nothing and read no clock.
        let at = self.by_pid.get(&pid)?.at;
        let now = Instant::now();
        if now.duration_since(at) > self.max_age {
            self.evict(now);
            return None;
        }
        self.by_pid.get(&pid).map(|r| r.exit.clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    fn evict(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            let too_many = self.order.len() > self.capacity;
            let too_old = now.duration_since(oldest.at) > self.max_age;
            if !too_many && !too_old {
                break;
            }
            // Only forget the pid if this entry is still its latest exit (pids are recycled).
            if let Entry::Occupied(latest) = self.by_pid.entry(oldest.pid) {
                if latest.get().seq == oldest.seq {
                    latest.remove();
                }
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{ReapedBy, Rusage, Termination};
    use std::time::SystemTime;

    fn exit(pid: i32, seq: u64) -> Arc<Exit> {
        Arc::new(Exit {
            pid,
            termination: Termination::Exited(0),
            timestamp: SystemTime::now(),
            started_at: None,
            start_time: None,
            rusage: Rusage::default(),
            comm: None,
            reaped_by: ReapedBy::Reaper,
            seq,
        })
    }

    #[test]
    fn keeps_the_latest_exits_up_to_its_capacity() {
        let mut t = RecentExits::new(3, Duration::from_secs(60));
        for (seq, pid) in [(1, 10), (2, 11), (3, 12), (4, 13)] {
            t.insert(exit(pid, seq));
        }
        assert_eq!(t.len(), 3);
        assert!(t.get(10).is_none(), "the oldest went");
        assert_eq!(t.get(13).map(|e| e.seq), Some(4));
    }

    #[test]
    fn a_recycled_pid_keeps_its_latest_exit_when_the_older_one_goes() {
        let mut t = RecentExits::new(2, Duration::from_secs(60));
        t.insert(exit(10, 1));
        t.insert(exit(10, 2)); // the pid, recycled
        t.insert(exit(11, 3)); // pushes seq 1 out
        assert_eq!(t.get(10).map(|e| e.seq), Some(2));
        t.insert(exit(12, 4)); // pushes seq 2 out
        assert!(t.get(10).is_none());
    }

    #[test]
    fn forgets_exits_older_than_its_age() {
        let mut t = RecentExits::new(10, Duration::from_millis(20));
        t.insert(exit(10, 1));
        assert!(t.get(10).is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(t.get(10).is_none());
        assert_eq!(t.len(), 0, "evicted on the way");
    }
}
