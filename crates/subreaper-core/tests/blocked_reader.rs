//! The lag deadline judges each subscriber by its own reading: a subscriber whose "readable"
//! call waits for a busy thread is not on the clock (only its overflow cap can close it), while
//! one that was called back, or that has no notify at all, is closed once it stays full past its
//! deadline. One test: its counts are of every exit the process broadcasts.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::*;
use subreaper_core::{Reaper, RecvError, SubscribeOptions, Subscription};

const LAG: Duration = Duration::from_millis(200);

/// A subscriber with a notify that only counts its calls: its reader is "busy" until the
/// test calls it back.
fn notified(r: &Reaper, max_overflow: usize) -> (Subscription, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 4,
        lag_timeout: LAG,
        max_overflow,
        notify: Some(Arc::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })),
    });
    (sub, calls)
}

/// `n` children that exit together, released in one burst (well within any deadline).
fn burst(r: &Reaper, n: usize) -> Vec<i32> {
    r.pause();
    let pids: Vec<i32> = (0..n).map(|_| spawn(&["true"], None)).collect();
    until_zombies(&pids, Duration::from_secs(20));
    r.resume();
    pids
}

/// Everything `sub` holds, then how it ended (None: still open).
fn read_all(sub: &Subscription) -> (Vec<i32>, Option<RecvError>) {
    let mut got = Vec::new();
    loop {
        match sub.try_recv() {
            Ok(Some(e)) => got.push(e.pid),
            Ok(None) => return (got, None),
            Err(e) => return (got, Some(e)),
        }
    }
}

#[test]
fn a_reader_waiting_for_its_thread_is_not_on_the_clock() {
    let r = common::sole_reaper();
    let n = 40;
    let reference = r.subscribe(SubscribeOptions {
        buffer_size: 1024,
        lag_timeout: Duration::from_secs(60),
        ..SubscribeOptions::default()
    });
    // Its thread is busy the whole time: never called back.
    let (busy, busy_calls) = notified(r, 1_000_000);
    // Called back (its thread was free) but it does not read.
    let (called, _) = notified(r, 1_000_000);
    // Busy too, but with a small overflow cap: the cap still bounds it.
    let cap = 10;
    let (capped, _) = notified(r, cap);
    // No notify: a Rust reader on its own thread, on the clock as soon as it is full.
    let plain = r.subscribe(SubscribeOptions {
        buffer_size: 4,
        lag_timeout: LAG,
        max_overflow: 1_000_000,
        notify: None,
    });

    let pids = burst(r, n);
    let set: HashSet<i32> = pids.iter().copied().collect();
    let got = collect(&reference, &procs(&pids), Duration::from_secs(30));
    assert_eq!(got.len(), n, "the reference subscriber got every exit");
    // Offered to the reference first, maybe: wait until the others hold theirs too.
    until("every exit is offered", Duration::from_secs(10), || {
        called.len() == n && busy.len() >= n
    });
    // One call when the first exit came (the queue went from empty to non-empty), not later.
    assert_eq!(busy_calls.load(Ordering::SeqCst), 1);
    called.reader_called();
    assert_eq!(capped.len(), 4, "closed at its cap, only its queue is left");

    // Well past the deadline, with no exit offered meanwhile (the watcher's work).
    thread::sleep(LAG * 4);
    let (got_called, end_called) = read_all(&called);
    assert_eq!(
        got_called.len(),
        4,
        "the queue is delivered before the error"
    );
    assert_eq!(
        end_called,
        Some(RecvError::Lagged {
            missed: (n - 4) as u64
        })
    );
    let (got_plain, end_plain) = read_all(&plain);
    assert_eq!(got_plain.len(), 4);
    assert_eq!(
        end_plain,
        Some(RecvError::Lagged {
            missed: (n - 4) as u64
        })
    );
    let (got_capped, end_capped) = read_all(&capped);
    assert_eq!(got_capped.len(), 4);
    assert_eq!(
        end_capped,
        Some(RecvError::Lagged {
            missed: cap as u64 + 1
        })
    );

    // The busy one, called back at last, reads everything: it was never on the clock.
    busy.reader_called();
    let (got_busy, end_busy) = read_all(&busy);
    assert_eq!(end_busy, None, "still open");
    let mine: Vec<i32> = got_busy.into_iter().filter(|p| set.contains(p)).collect();
    assert_eq!(
        mine,
        got.iter().map(|e| e.pid).collect::<Vec<_>>(),
        "every exit, in order"
    );
    // Called back and then full again, it is judged from then on like any other reader.
    let more = burst(r, 10);
    assert_eq!(
        collect(&reference, &procs(&more), Duration::from_secs(30)).len(),
        10
    );
    until("the new exits are offered", Duration::from_secs(10), || {
        busy.len() == 10
    });
    busy.reader_called();
    thread::sleep(LAG * 4);
    let (got_busy, end_busy) = read_all(&busy);
    assert_eq!(got_busy.len(), 4);
    assert_eq!(end_busy, Some(RecvError::Lagged { missed: 6 }));
}
