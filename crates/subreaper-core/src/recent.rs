//! A bounded table of recent exits, so that `wait(pid)` called after the child was reaped still
//! gets its exit (the race containerd's reaper avoids only by subscribing before start).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::exit::Exit;
use crate::pid_map::PidMap;

pub(crate) struct RecentExits {
    /// Oldest first. Exits are inserted as they are numbered, one number after the other, so
    /// the exit numbered `seq` is at index `seq` minus the number of the first.
    order: VecDeque<Recorded>,
    /// The number of each pid's latest exit. Letting the oldest exit go leaves its entry here:
    /// removing it would reach into a random place of a large table once per exit of a burst,
    /// which cost more than the rest of the table's work. An entry whose exit has gone is
    /// stale; stale entries go all at once when the map has grown to twice what `order` holds.
    latest: PidMap<u64>,
    capacity: usize,
    max_age: Duration,
}

struct Recorded {
    at: Instant,
    /// The exit's number, kept beside it: letting the oldest go reads nothing of the exit.
    seq: u64,
    exit: Arc<Exit>,
}

impl RecentExits {
    pub(crate) fn new(capacity: usize, max_age: Duration) -> RecentExits {
        RecentExits {
            order: VecDeque::new(),
            latest: PidMap::default(),
            capacity,
            max_age,
        }
    }

    pub(crate) fn insert(&mut self, exit: Arc<Exit>) {
        let now = Instant::now();
        self.latest.insert(exit.pid, exit.seq);
        self.order.push_back(Recorded {
            at: now,
            seq: exit.seq,
            exit,
        });
        self.evict(now);
        if self.latest.len() > 2 * self.capacity.max(self.order.len()).max(64) {
            let first = self.first_seq();
            self.latest
                .retain(|_, seq| first.is_some_and(|f| *seq >= f));
        }
    }

    /// The last exit of `pid`, unless it is older than the table keeps.
    pub(crate) fn get(&mut self, pid: i32) -> Option<Arc<Exit>> {
        // Most lookups (a zombie met for the first time) find nothing and read no clock.
        let seq = *self.latest.get(&pid)?;
        let Some((at, exit)) = self.at(seq).map(|r| (r.at, r.exit.clone())) else {
            self.latest.remove(&pid);
            return None;
        };
        let now = Instant::now();
        if now.duration_since(at) > self.max_age {
            self.evict(now);
            return None;
        }
        Some(exit)
    }

    pub(crate) fn len(&self) -> usize {
        self.order.len()
    }

    fn first_seq(&self) -> Option<u64> {
        self.order.front().map(|r| r.seq)
    }

    /// The exit numbered `seq`, if the table still holds it.
    fn at(&self, seq: u64) -> Option<&Recorded> {
        let index = usize::try_from(seq.checked_sub(self.first_seq()?)?).ok()?;
        match self.order.get(index) {
            Some(r) if r.seq == seq => Some(r),
            // Numbers with gaps (not the engine's): still in order.
            _ => {
                let found = self.order.binary_search_by_key(&seq, |r| r.seq).ok()?;
                self.order.get(found)
            }
        }
    }

    fn evict(&mut self, now: Instant) {
        while let Some(oldest) = self.order.front() {
            let too_many = self.order.len() > self.capacity;
            let too_old = now.duration_since(oldest.at) > self.max_age;
            if !too_many && !too_old {
                break;
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(pid: i32, seq: u64) -> Arc<Exit> {
        Exit::for_test(pid, seq)
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
    fn the_pids_of_exits_let_go_are_forgotten_in_bulk_and_never_answer() {
        let mut t = RecentExits::new(100, Duration::from_secs(60));
        for seq in 1..=10_000u64 {
            t.insert(exit(seq as i32, seq));
            assert!(
                t.latest.len() <= 200 + 1,
                "stale pids are dropped at twice the capacity"
            );
        }
        assert_eq!(t.len(), 100);
        assert!(
            t.get(9_900).is_none(),
            "let go, though it may still be listed"
        );
        assert_eq!(t.get(9_901).map(|e| e.seq), Some(9_901));
        assert_eq!(t.get(10_000).map(|e| e.seq), Some(10_000));
    }

    #[test]
    fn numbers_with_gaps_are_still_found() {
        let mut t = RecentExits::new(10, Duration::from_secs(60));
        for (seq, pid) in [(3, 10), (7, 11), (8, 12), (20, 13)] {
            t.insert(exit(pid, seq));
        }
        assert_eq!(t.get(11).map(|e| e.seq), Some(7));
        assert_eq!(t.get(13).map(|e| e.seq), Some(20));
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
