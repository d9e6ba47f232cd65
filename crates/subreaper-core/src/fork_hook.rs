//! Every `fork()` in the process tells the engine, from the thread that forked, before it
//! returns: the new child is registered as that thread's, so the engine never takes it for an
//! orphan, and its pidfd is watched from its first instant.
//!
//! libuv forks with `fork()` for every `child_process` spawn (in every thread, whether that
//! thread loaded subreaper or not), and so do node-pty (`forkpty`) and most native code.
//! `pthread_atfork` handlers run in the forking thread around each of those. They do not run
//! for `vfork`, `posix_spawn` or a raw `clone`: children made that way are attributed by the
//! per-thread children lists instead (see `ownership`).

use std::cell::{Cell, RefCell};
use std::sync::Once;

use crate::reaper::Reaper;

thread_local! {
    /// When this thread's current fork began (ns since boot, on the start-time clock).
    static FORK_BEGAN: Cell<u64> = const { Cell::new(0) };
    /// This thread's children just before its current fork.
    static BEFORE: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
    /// The last pid allocated in the namespace just before it.
    static LAST_PID: Cell<Option<i32>> = const { Cell::new(None) };
}

extern "C" fn prepare() {
    FORK_BEGAN.with(|t| t.set(crate::procfs::now_ns()));
    let before = crate::procfs::own_thread_children().unwrap_or_default();
    BEFORE.with(|b| *b.borrow_mut() = before);
    LAST_PID.with(|l| l.set(crate::procfs::last_pid()));
    // The child may exit before fork() returns here: until then it is held, not taken for
    // an orphan.
    if let Some(reaper) = Reaper::try_global() {
        reaper.pause();
    }
}

extern "C" fn parent() {
    let Some(reaper) = Reaper::try_global() else {
        return;
    };
    let began = FORK_BEGAN.with(Cell::get);
    let since = crate::procfs::ns_to_ticks(began);
    let mut before = BEFORE.with(|b| std::mem::take(&mut *b.borrow_mut()));
    let allocated = LAST_PID.with(Cell::get).zip(crate::procfs::last_pid());
    if let Some(found) =
        children_of_fork(&mut before, allocated, crate::procfs::own_thread_children)
    {
        // Those allocated during the fork were also started during it: where it began and
        // ended in one clock tick, that tick is their start time, with no `/proc` read.
        let started = if found.allocated_during {
            crate::procfs::start_tick_between(began, crate::procfs::now_ns())
        } else {
            None
        };
        reaper.note_fork(crate::procfs::current_thread(), since, &found.pids, started);
    }
    reaper.resume();
}

/// How many more times the list is read when it shows no child allocated during the fork.
const REREADS: usize = 2;

/// What the forking thread's children list says the fork made.
#[derive(Debug, PartialEq)]
struct ForkChildren {
    pids: Vec<i32>,
    /// `pids` were allocated during the fork (the fork's child); otherwise they are every
    /// entry new to the list, of which none can be told from an orphan adopted meanwhile.
    allocated_during: bool,
}

/// The new child is an entry that appeared in this thread's list during the fork, with a pid
/// allocated during it (`allocated`: the namespace's last pid before and after). An orphan
/// re-parented here meanwhile appears too, but its pid was allocated before (unless it was born
/// in those same microseconds).
///
/// The kernel gives the list without holding it, one entry after another, and starts again
/// from the head by position where the entry it had just given was reaped meanwhile (and at
/// each new piece of a long list): an earlier entry reaped by any waiter in the process makes
/// it skip one, and when that is the last entry, the fork's child is missed and would be taken
/// for an orphan. Measured here (`bench/children-list-skip.c`): 4–10 of 20,000 forks missed
/// their child while another thread reaped the previous one, 1–5 with 800 live children
/// beside, and none was missed by a second or third reading. So where pids were allocated
/// during the fork and none of them is listed, the list is read again.
fn children_of_fork(
    before: &mut [i32],
    allocated: Option<(i32, i32)>,
    mut read: impl FnMut() -> Option<Vec<i32>>,
) -> Option<ForkChildren> {
    before.sort_unstable();
    let new_in = |after: Vec<i32>| -> Vec<i32> {
        after
            .into_iter()
            .filter(|p| before.binary_search(p).is_err())
            .collect()
    };
    let Some((first, last)) = allocated else {
        return read().map(|after| ForkChildren {
            pids: new_in(after),
            allocated_during: false,
        });
    };
    let mut found = None;
    for _ in 0..=REREADS {
        let Some(after) = read() else {
            break;
        };
        let new = new_in(after);
        let during: Vec<i32> = new
            .iter()
            .copied()
            .filter(|&p| crate::procfs::allocated_between(p, first, last))
            .collect();
        if !during.is_empty() {
            return Some(ForkChildren {
                pids: during,
                allocated_during: true,
            });
        }
        found = Some(ForkChildren {
            pids: new,
            allocated_during: false,
        });
        // No pid allocated at all: the fork failed, and a second look shows nothing more.
        if first == last {
            break;
        }
    }
    found
}

/// Installs the hook once per process. Handlers cannot be removed, and the addon that holds
/// them is never unloaded by Node, so they stay valid for the life of the process.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: both handlers are `extern "C"` functions with static lifetime that do not
        // unwind; no handler is given for the child, which runs nothing of ours.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), None);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers each read with the next list given, and counts the reads.
    fn lists(
        answers: Vec<Option<Vec<i32>>>,
    ) -> (impl FnMut() -> Option<Vec<i32>>, std::rc::Rc<Cell<usize>>) {
        let reads = std::rc::Rc::new(Cell::new(0));
        let counted = reads.clone();
        let mut answers = answers.into_iter();
        let read = move || {
            counted.set(counted.get() + 1);
            answers.next().flatten()
        };
        (read, reads)
    }

    fn during(pids: &[i32]) -> Option<ForkChildren> {
        Some(ForkChildren {
            pids: pids.to_vec(),
            allocated_during: true,
        })
    }

    #[test]
    fn the_child_is_the_new_entry_allocated_during_the_fork() {
        // 300 is an orphan adopted meanwhile: its pid was allocated before the fork.
        let (read, reads) = lists(vec![Some(vec![30, 10, 20, 300, 501])]);
        let found = children_of_fork(&mut [20, 10, 30], Some((500, 501)), read);
        assert_eq!(found, during(&[501]));
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_list_that_skipped_the_child_is_read_again() {
        // The first reading lost its last entry (an earlier one was reaped while it was read).
        let (read, reads) = lists(vec![Some(vec![10, 30]), Some(vec![10, 30, 501])]);
        let found = children_of_fork(&mut [10, 20, 30], Some((500, 501)), read);
        assert_eq!(found, during(&[501]));
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn the_list_is_read_at_most_three_times() {
        let (read, reads) = lists(vec![Some(vec![10, 300]); 4]);
        let found = children_of_fork(&mut [10], Some((500, 502)), read);
        let expected = ForkChildren {
            pids: vec![300],
            allocated_during: false,
        };
        assert_eq!(found, Some(expected));
        assert_eq!(reads.get(), 1 + REREADS);
    }

    #[test]
    fn a_failed_fork_is_not_looked_at_again() {
        // No pid allocated in the namespace during it: nothing to find on a second look.
        let (read, reads) = lists(vec![Some(vec![10, 300]), Some(vec![10, 300, 501])]);
        let found = children_of_fork(&mut [10], Some((500, 500)), read);
        let expected = ForkChildren {
            pids: vec![300],
            allocated_during: false,
        };
        assert_eq!(found, Some(expected));
        assert_eq!(reads.get(), 1);
    }

    #[test]
    fn a_reading_that_fails_ends_the_look() {
        let (read, _) = lists(vec![None]);
        assert_eq!(children_of_fork(&mut [10], Some((500, 501)), read), None);
        // A later reading that fails keeps what the earlier one showed.
        let (read, reads) = lists(vec![Some(vec![10, 300]), None]);
        let found = children_of_fork(&mut [10], Some((500, 501)), read);
        assert_eq!(found.map(|f| f.pids), Some(vec![300]));
        assert_eq!(reads.get(), 2);
    }

    #[test]
    fn without_the_last_pid_every_new_entry_is_a_candidate() {
        let (read, reads) = lists(vec![Some(vec![10, 300, 501])]);
        let found = children_of_fork(&mut [10], None, read);
        let expected = ForkChildren {
            pids: vec![300, 501],
            allocated_during: false,
        };
        assert_eq!(found, Some(expected));
        assert_eq!(reads.get(), 1);
    }
}
