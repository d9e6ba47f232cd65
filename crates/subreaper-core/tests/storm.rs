//! A storm: thousands of children exiting together, 8 subscribers, each of which must receive
//! each exit exactly once, in the same order; no zombie may remain. One test: it needs the
//! whole process (every child of the process is one of the storm's).
#![cfg(target_os = "linux")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use subreaper_core::{Exit, ReapedBy, SubscribeOptions, Termination};

#[test]
fn storm_of_exits_reaches_every_subscriber_once_in_order() {
    let n: usize = std::env::var("SUBREAPER_STORM_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let r = common::sole_reaper();
    assert!(
        children().is_empty(),
        "the test process has children already"
    );

    // Four subscribers read on threads of their own, with ordinary buffers; four have room for
    // the whole storm and are read only afterwards.
    let readers: Vec<_> = (0..4)
        .map(|_| {
            r.subscribe(SubscribeOptions {
                buffer_size: 256,
                lag_timeout: Duration::from_secs(10),
                ..SubscribeOptions::default()
            })
        })
        .collect();
    let buffered: Vec<_> = (0..4)
        .map(|_| {
            r.subscribe(SubscribeOptions {
                buffer_size: n + 16,
                ..SubscribeOptions::default()
            })
        })
        .collect();

    // Children that block reading a pipe, so that all of them exit when it is closed.
    let mut gate = Gate::new();
    let t = Instant::now();
    // From two threads: the exec in each new child is the cost, and there are two cores.
    let fd = gate.read_fd();
    let pids: Vec<i32> = thread::scope(|scope| {
        let halves: Vec<_> = [n / 2, n - n / 2]
            .into_iter()
            .map(|count| {
                scope.spawn(move || {
                    (0..count)
                        .map(|_| spawn(&["cat"], Some(fd)))
                        .collect::<Vec<i32>>()
                })
            })
            .collect();
        halves.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let spawned_in = t.elapsed();
    let set: Arc<Procs> = Arc::new(procs(&pids));
    assert_eq!(set.len(), n);
    r.kick();

    let release = Instant::now();
    let reader_threads: Vec<_> = readers
        .into_iter()
        .map(|sub| {
            let set = set.clone();
            thread::spawn(move || {
                let got = collect(&sub, &set, Duration::from_secs(30));
                (got, release.elapsed(), sub)
            })
        })
        .collect();
    gate.release();
    let mut streams: Vec<Vec<Arc<Exit>>> = Vec::new();
    let mut slowest = Duration::ZERO;
    let mut subs = Vec::new();
    for t in reader_threads {
        let (got, took, sub) = t.join().unwrap();
        slowest = slowest.max(took);
        streams.push(got);
        subs.push(sub);
    }
    for sub in &buffered {
        streams.push(collect(sub, &set, Duration::from_secs(5)));
    }
    let all_in = release.elapsed();
    subs.extend(buffered);

    let first = &streams[0];
    for (i, stream) in streams.iter().enumerate() {
        assert_eq!(
            stream.len(),
            n,
            "subscriber {i} received {} exits",
            stream.len()
        );
        assert_once_each_in_order(stream, &set);
        let order: Vec<u64> = stream.iter().map(|e| e.seq).collect();
        let first_order: Vec<u64> = first.iter().map(|e| e.seq).collect();
        assert_eq!(order, first_order, "subscriber {i} saw another order");
    }
    for e in first {
        assert_eq!(e.termination, Termination::Exited(0), "{e:?}");
        assert_eq!(e.reaped_by, ReapedBy::Reaper);
        assert_eq!(e.comm.as_deref(), Some("cat"));
    }
    // Nothing more for any of them: no duplicates after the last one either.
    for sub in &subs {
        assert_no_more(sub, &set, Duration::from_millis(200));
    }
    let zombies = zombie_children();
    assert!(zombies.is_empty(), "zombies left: {zombies:?}");
    assert!(children().is_empty(), "children left: {:?}", children());
    let reap_span = first
        .last()
        .unwrap()
        .timestamp
        .duration_since(first[0].timestamp)
        .unwrap();
    eprintln!(
        "storm: {n} children spawned in {spawned_in:?} ({:.0}/s); the 4 reading subscribers had \
         every exit {slowest:?} after release, the 4 buffered ones {all_in:?}; first to last \
         reap {reap_span:?}",
        n as f64 / spawned_in.as_secs_f64()
    );
}
