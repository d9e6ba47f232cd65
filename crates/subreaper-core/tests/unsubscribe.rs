//! Subscribing and unsubscribing while a storm of exits is being delivered: no deadlock, no
//! panic, the other subscribers unaffected. One test: it needs the whole process.
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use subreaper_core::{Exit, RecvError, SubscribeOptions, Subscription};

fn options() -> SubscribeOptions {
    SubscribeOptions {
        buffer_size: 64,
        lag_timeout: Duration::from_secs(10),
        ..SubscribeOptions::default()
    }
}

fn wait_progress(progress: &AtomicUsize, at: usize) {
    until("progress", Duration::from_secs(30), || {
        progress.load(Ordering::SeqCst) >= at
    });
}

#[test]
fn unsubscribing_during_a_storm_neither_deadlocks_nor_disturbs_the_others() {
    let r = common::sole_reaper();
    let half = 1000;
    let n = 2 * half;

    let keepers: Vec<Subscription> = (0..3).map(|_| r.subscribe(options())).collect();
    let victims: Vec<Arc<Subscription>> =
        (0..4).map(|_| Arc::new(r.subscribe(options()))).collect();

    // Two halves behind two gates, so that some unsubscribes land before the second half
    // exists at all and others in the middle of it.
    let (mut gate_a, mut gate_b) = (Gate::new(), Gate::new());
    let a: Vec<i32> = (0..half)
        .map(|_| spawn(&["cat"], Some(gate_a.read_fd())))
        .collect();
    let b: Vec<i32> = (0..half)
        .map(|_| spawn(&["cat"], Some(gate_b.read_fd())))
        .collect();
    let set: Arc<Procs> = Arc::new(procs(a.iter().chain(&b)));
    let b_set = procs(&b);
    r.kick();

    let progress = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel::<&'static str>();

    // Keeper 0 counts progress and unsubscribes victims 0 and 1 during the first half.
    let mut keeper_threads = Vec::new();
    for (i, sub) in keepers.into_iter().enumerate() {
        let (set, progress, done) = (set.clone(), progress.clone(), done_tx.clone());
        let victims: Vec<Arc<Subscription>> = victims[..2].to_vec();
        keeper_threads.push(thread::spawn(move || {
            let mut got: Vec<Arc<Exit>> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while got.len() < n && Instant::now() < deadline {
                match sub.recv_timeout(Duration::from_millis(100)) {
                    Ok(Some(e)) if set.of(&e).is_some() => got.push(e),
                    Ok(_) => {}
                    Err(e) => panic!("keeper {i} closed: {e}"),
                }
                if i == 0 {
                    progress.store(got.len(), Ordering::SeqCst);
                    if got.len() == 300 {
                        victims[0].unsubscribe();
                    }
                    if got.len() == 700 {
                        victims[1].unsubscribe();
                    }
                }
            }
            done.send("keeper").unwrap();
            (got, sub)
        }));
    }
    // Each victim is read on a thread of its own, blocked in recv when it is unsubscribed.
    // Victims 2 and 3 read the second half slowly (a millisecond an exit, a slow consumer),
    // so that their unsubscribe lands while exits are still on their way to them, however
    // fast the engine drains.
    let victim_threads: Vec<_> = victims
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let (v, done) = (v.clone(), done_tx.clone());
            thread::spawn(move || {
                let mut got = Vec::new();
                let err = loop {
                    match v.recv() {
                        Ok(e) => got.push(e),
                        Err(e) => break e,
                    }
                    if i >= 2 && got.len() >= half {
                        thread::sleep(Duration::from_millis(1));
                    }
                };
                done.send("victim").unwrap();
                (got, err)
            })
        })
        .collect();

    gate_a.release();
    // A subscriber that joins mid-flow.
    wait_progress(&progress, 500);
    let late = r.subscribe(options());
    wait_progress(&progress, half);
    gate_b.release();
    // Victims 2 and 3 are unsubscribed from this thread during the second half.
    wait_progress(&progress, half + 300);
    victims[2].unsubscribe();
    wait_progress(&progress, half + 700);
    victims[3].unsubscribe();

    // A watchdog: every thread must finish; a deadlock shows up here, not as a hung test.
    for _ in 0..7 {
        done_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a subscriber thread is stuck (deadlock?)");
    }
    let keeper_results: Vec<_> = keeper_threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let order: Vec<u64> = keeper_results[0].0.iter().map(|e| e.seq).collect();
    for (i, (got, sub)) in keeper_results.iter().enumerate() {
        assert_eq!(got.len(), n, "keeper {i}");
        assert_once_each_in_order(got, &set);
        assert_eq!(
            got.iter().map(|e| e.seq).collect::<Vec<_>>(),
            order,
            "keeper {i} saw another order"
        );
        assert_no_more(sub, &set, Duration::from_millis(100));
    }
    for (i, t) in victim_threads.into_iter().enumerate() {
        let (got, err) = t.join().unwrap();
        assert_eq!(err, RecvError::Closed, "victim {i}");
        let seqs: Vec<u64> = got.iter().map(|e| e.seq).collect();
        assert!(got.len() < n, "victim {i} was never cut off");
        assert_eq!(
            seqs,
            order[..seqs.len()],
            "victim {i}: not a prefix of the stream"
        );
        if i < 2 {
            assert!(
                got.iter().all(|e| b_set.of(e).is_none()),
                "victim {i} got exits after it was unsubscribed"
            );
        }
    }
    // The late subscriber: a contiguous run of the stream, from where it joined to the end,
    // which includes every exit of the second half.
    let mut late_got = Vec::new();
    let mut b_seen = 0;
    while b_seen < half {
        match late.recv_timeout(Duration::from_secs(10)) {
            Ok(Some(e)) => {
                b_seen += b_set.of(&e).is_some() as usize;
                late_got.push(e.seq);
            }
            other => panic!("late subscriber: {other:?} after {b_seen} of the second half"),
        }
    }
    assert_eq!(late.try_recv(), Ok(None));
    let start = order.iter().position(|s| *s == late_got[0]).unwrap();
    assert!(
        start >= 500,
        "it joined after 500 exits, yet got exit #{start}"
    );
    assert_eq!(late_got, order[start..]);
    assert_eq!(r.subscriber_count(), 4, "3 keepers and the late one");
    assert!(zombie_children().is_empty());
    assert!(children().is_empty());
}
