//! Subscribers that never read: the others still get everything promptly, memory stays bounded,
//! and each stuck one is closed with a lagged error whose count is exact. One test: the counts
//! are of every exit the process broadcasts, so no other test may add exits.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use subreaper_core::{RecvError, SubscribeOptions};

#[test]
fn stuck_subscribers_are_closed_with_exact_lag_counts_and_delay_no_one() {
    let r = common::sole_reaper();
    let n = 300;

    // The reader, on a thread of its own.
    let reader = r.subscribe(SubscribeOptions {
        buffer_size: 64,
        lag_timeout: Duration::from_secs(10),
        ..SubscribeOptions::default()
    });
    // Closed when its overflow passes its cap.
    let (cap_buffer, cap_overflow) = (16, 100);
    let capped = Arc::new(r.subscribe(SubscribeOptions {
        buffer_size: cap_buffer,
        lag_timeout: Duration::from_secs(60),
        max_overflow: cap_overflow,
        notify: None,
    }));
    // Closed when it stays full past its deadline.
    let (timed_buffer, timed_lag) = (8, Duration::from_secs(1));
    let timed = r.subscribe(SubscribeOptions {
        buffer_size: timed_buffer,
        lag_timeout: timed_lag,
        max_overflow: 1_000_000,
        notify: None,
    });
    // Stuck for the whole test and never closed: it must delay no one either.
    let stuck = r.subscribe(SubscribeOptions {
        buffer_size: 16,
        lag_timeout: Duration::from_secs(60),
        max_overflow: 1_000_000,
        notify: None,
    });

    let mut gate = Gate::new();
    let pids: Vec<i32> = (0..n)
        .map(|_| spawn(&["cat"], Some(gate.read_fd())))
        .collect();
    let set: Arc<Procs> = Arc::new(procs(&pids));
    // All become zombies while the engine is held, then are released in one burst, so that
    // every exit is broadcast well within the timed subscriber's deadline.
    r.pause();
    gate.release();
    until_zombies(&pids, Duration::from_secs(20));

    // Memory stays bounded: sample the capped subscriber's queue while the burst flows.
    let sampling = Arc::new(AtomicBool::new(true));
    let max_len = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (sampling, max_len, capped) = (sampling.clone(), max_len.clone(), capped.clone());
        thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                max_len.fetch_max(capped.len(), Ordering::Relaxed);
                thread::yield_now();
            }
        })
    };
    let set2 = set.clone();
    let release = Instant::now();
    let read = thread::spawn(move || {
        let got = collect(&reader, &set2, Duration::from_secs(20));
        (got, release.elapsed(), reader)
    });
    r.resume();
    let (got, took, reader) = read.join().unwrap();
    assert_eq!(got.len(), n, "the reading subscriber missed exits");
    assert_once_each_in_order(&got, &set);
    assert!(
        took < Duration::from_secs(3),
        "the reading subscriber was delayed by the stuck ones: {took:?}"
    );
    let span = got[n - 1]
        .timestamp
        .duration_since(got[0].timestamp)
        .unwrap();
    assert!(
        span < timed_lag / 2,
        "premise: the burst was broadcast within the deadline ({span:?})"
    );

    until(
        "both lagging subscribers are closed",
        Duration::from_secs(5),
        || r.subscriber_count() == 2,
    );
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();

    // The capped one: its buffer filled with the first 16 exits; the next ones went to
    // overflow, and the one that took overflow past its cap closed it. Exits after that were
    // not broadcast to it.
    let cap_missed = (cap_overflow + 1) as u64;
    assert!(
        max_len.load(Ordering::Relaxed) <= cap_buffer + cap_overflow + 1,
        "capped queue reached {}",
        max_len.load(Ordering::Relaxed)
    );
    assert_eq!(capped.len(), cap_buffer, "overflow freed at close");
    for want in &got[..cap_buffer] {
        assert_eq!(capped.try_recv().unwrap().unwrap().seq, want.seq);
    }
    let err = capped.try_recv().unwrap_err();
    assert_eq!(err, RecvError::Lagged { missed: cap_missed });
    assert!(err.to_string().contains("missed 101 exits"), "{err}");
    assert_eq!(capped.try_recv(), Err(RecvError::Closed));

    // The timed one: all n exits reached it before its deadline; 8 fit, n - 8 waited in
    // overflow until the deadline closed it.
    let timed_missed = (n - timed_buffer) as u64;
    assert_eq!(timed.len(), timed_buffer);
    for want in &got[..timed_buffer] {
        assert_eq!(timed.recv().unwrap().seq, want.seq);
    }
    assert_eq!(
        timed.recv(),
        Err(RecvError::Lagged {
            missed: timed_missed
        })
    );
    assert_eq!(timed.recv(), Err(RecvError::Closed));

    // The stuck one still holds everything, in order.
    assert_eq!(stuck.len(), n);

    // Later exits reach the open subscribers only.
    let later: Vec<i32> = (0..10).map(|_| spawn(&["true"], None)).collect();
    r.kick();
    let later_set = procs(&later);
    assert_once_each_in_order(
        &collect(&reader, &later_set, Duration::from_secs(10)),
        &later_set,
    );
    until(
        "the stuck subscriber holds them too",
        Duration::from_secs(5),
        || stuck.len() == n + 10,
    );
    let all: Vec<_> = (0..n + 10)
        .map(|_| stuck.try_recv().unwrap().unwrap())
        .collect();
    assert_eq!(
        all[..n].iter().map(|e| e.seq).collect::<Vec<_>>(),
        got.iter().map(|e| e.seq).collect::<Vec<_>>()
    );
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(capped.try_recv(), Err(RecvError::Closed));
    assert!(zombie_children().is_empty());
}
