//! Grandchildren adopted through subreaper mode are reaped and broadcast. One test: subreaper
//! mode is an attribute of the whole process.
#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use subreaper_core::{
    adopts_orphans, is_init, is_subreaper, set_subreaper, ReapedBy, SubscribeOptions, Termination,
};

/// Runs `script` with `gate` as its stdin (it prints one orphan per line with `GATED_JOB`:
/// its pid and start time) and returns those pids, identified, once the shell itself has
/// exited and been reaped.
fn orphans_of(gate: &Gate, script: &str, count: usize) -> Vec<i32> {
    let r = common::sole_reaper();
    let (mut child, rx) = r
        .start_command(
            Command::new("sh")
                .args(["-c", script])
                .stdin(gate.stdin())
                .stdout(Stdio::piped()),
        )
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let pids: Vec<i32> = (0..count)
        .map(|_| {
            let line = lines.next().unwrap().unwrap();
            let (pid, ticks) = line.trim().split_once(' ').expect("pid and start ticks");
            let pid: i32 = pid.parse().unwrap();
            Proc::started_at_ticks(pid, ticks.parse().unwrap());
            pid
        })
        .collect();
    let e = rx.wait();
    assert_eq!(e.termination, Termination::Exited(0));
    pids
}

#[test]
fn grandchildren_adopted_in_subreaper_mode_are_reaped() {
    assert!(!is_init());
    assert!(!is_subreaper().unwrap(), "subreaper mode is off by default");
    let r = common::sole_reaper();
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 10_000,
        ..SubscribeOptions::default()
    });
    set_subreaper(true).unwrap();
    assert!(is_subreaper().unwrap());
    assert!(adopts_orphans());

    let me = std::process::id() as i32;
    // Grandchildren (the shell exits at once, leaving its background jobs), and a great-
    // grandchild (an inner shell's background job, orphaned twice over). They exit when the
    // gate opens.
    let mut gate = Gate::new();
    let mut orphans = orphans_of(
        &gate,
        &format!("exec 3<&0; for i in 1 2 3 4 5; do {GATED_JOB}; done; exit 0"),
        5,
    );
    orphans.extend(orphans_of(
        &gate,
        &format!("exec 3<&0; sh -c '{GATED_JOB}; exit 0'; exit 0"),
        1,
    ));
    // Adopted: their parent is now this process, and they are still running.
    for pid in &orphans {
        let (state, ppid) = stat(*pid).expect("the orphan already exited?");
        assert_eq!(ppid, me, "orphan {pid} was not adopted");
        assert_ne!(state, 'Z');
    }
    gate.release();
    // A wait on an adopted orphan works like one on a child.
    let waited = r
        .wait(orphans[0], Some(Duration::from_secs(10)))
        .expect("wait on an adopted orphan");
    assert_eq!(waited.termination, Termination::Exited(0));

    let set = procs(&orphans);
    let got = collect(&sub, &set, Duration::from_secs(10));
    assert_once_each_in_order(&got, &set);
    for e in &got {
        assert_eq!(e.termination, Termination::Exited(0));
        assert_eq!(e.comm.as_deref(), Some("sleep"));
        assert_eq!(e.reaped_by, ReapedBy::Reaper);
        assert!(e.rusage.is_some_and(|r| r.max_rss_kib.is_some()));
    }
    assert_no_more(&sub, &set, Duration::from_millis(200));
    assert!(zombie_children().is_empty(), "{:?}", zombie_children());
    assert!(children().is_empty(), "{:?}", children());

    set_subreaper(false).unwrap();
    assert!(!is_subreaper().unwrap());
}
