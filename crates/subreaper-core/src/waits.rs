//! Pending `wait(pid)` calls: callbacks stored by pid, fired when that pid's exit is recorded.
//! Waits are not subscribers: a wait can never be lost to a lagging queue.

use std::sync::Arc;

use crate::exit::Exit;
use crate::pid_map::PidMap;

pub(crate) type WaitCallback = Box<dyn FnOnce(Arc<Exit>) + Send>;

#[derive(Default)]
pub(crate) struct Waits {
    by_pid: PidMap<Vec<(u64, WaitCallback)>>,
    next_id: u64,
}

impl Waits {
    pub(crate) fn add(&mut self, pid: i32, callback: WaitCallback) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.by_pid.entry(pid).or_default().push((id, callback));
        id
    }

    /// Withdraws a pending wait. Returns false if it already fired (or never existed).
    pub(crate) fn cancel(&mut self, pid: i32, id: u64) -> bool {
        let Some(list) = self.by_pid.get_mut(&pid) else {
            return false;
        };
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        let removed = list.len() != before;
        if list.is_empty() {
            self.by_pid.remove(&pid);
        }
        removed
    }

    /// Takes the callbacks waiting on `pid`, to be called outside the state lock.
    pub(crate) fn take(&mut self, pid: i32) -> Vec<(u64, WaitCallback)> {
        self.by_pid.remove(&pid).unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_pid.values().map(Vec::len).sum()
    }
}

/// Wait callbacks to run once the state lock is released.
pub(crate) struct Fired {
    pub(crate) callbacks: Vec<(u64, WaitCallback)>,
    pub(crate) exit: Arc<Exit>,
}

impl Fired {
    pub(crate) fn run(self) {
        for (_, cb) in self.callbacks {
            cb(self.exit.clone());
        }
    }
}
