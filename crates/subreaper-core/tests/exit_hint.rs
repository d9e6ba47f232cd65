//! While a hint source is registered and every child of the process is declared by an owner
//! that reports its exit, the drain keeps out of `waitid` (so the kernel does not wake it from
//! each exiting child's exit path); the hint wakes it for any other zombie, and a reported
//! child's orphans bring it back to `waitid`. The idle sweep is raised to 30 s here, so that
//! it cannot be what wakes the drain.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::*;
use subreaper_core::{Activity, Config, ReapedBy, Reaper, SubscribeOptions, SystemWait};

const OWNER: u64 = 5;
const SECOND: Duration = Duration::from_secs(1);

fn reaper() -> &'static Reaper<SystemWait> {
    Reaper::global_with(Config {
        idle_sweep: 30 * SECOND,
        ..Config::default()
    })
}

fn activity_becomes(r: &Reaper<SystemWait>, want: Activity) {
    until(&format!("the drain is {want:?}"), 10 * SECOND, || {
        r.stats().activity == want
    });
}

/// A child declared as reported by its owner, blocked on `gate` running `script`.
fn reporting_child(r: &Reaper<SystemWait>, gate: &Gate, script: &str) -> (i32, Option<u64>) {
    let pid = spawn(&["sh", "-c", script], Some(gate.read_fd()));
    let start = r.own_reporting(pid, OWNER);
    (pid, start)
}

#[test]
fn the_drain_waits_for_reports_and_a_hint_wakes_it_for_another_zombie() {
    let _serial = serial();
    let r = reaper();
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 1024,
        ..SubscribeOptions::default()
    });
    r.add_exit_hint_source();
    let gate = Gate::new();
    let (owned, start) = reporting_child(r, &gate, "read x");
    // Settled there: a nudge left over from before (the exit watch's look at an earlier
    // child's reap) would wake the drain for any zombie.
    until(
        "the drain has waited for reports for 300 ms",
        10 * SECOND,
        || {
            let s = r.stats();
            s.activity == Activity::WaitingForReports
                && s.activity_since >= Duration::from_millis(300)
        },
    );

    // A child nobody declared exits; the drain, out of `waitid`, is not woken by it.
    let other = spawn(&["sh", "-c", "exit 5"], None);
    until("the other child is a zombie", 10 * SECOND, || {
        is_our_zombie(other)
    });
    assert_eq!(r.stats().activity, Activity::WaitingForReports);
    assert!(
        std::iter::from_fn(|| sub.try_recv().ok().flatten()).all(|e| e.pid != other),
        "announced without a hint: the drain was in waitid"
    );
    // The hint wakes it: the exit is announced (and left to this thread, which made it).
    r.children_may_have_exited();
    let got = collect(&sub, &procs(&[other]), 10 * SECOND);
    assert_eq!(got.len(), 1, "the hinted zombie was not announced");
    assert_eq!(got[0].status(), 5);
    assert_eq!(owner_waitpid(other) >> 8, 5);

    // Without a hint source, back to `waitid`.
    r.remove_exit_hint_source();
    activity_becomes(r, Activity::WaitingForExit);
    drop(gate);
    r.report_process(owned, start, owner_reap(owned));
}

#[test]
fn a_reported_childs_orphans_bring_the_drain_back_to_waitid() {
    let _serial = serial();
    let r = reaper();
    subreaper_core::set_subreaper(true).expect("subreaper mode");
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 1024,
        ..SubscribeOptions::default()
    });
    r.add_exit_hint_source();
    let file = std::env::temp_dir().join(format!("subreaper-orphan-{}", std::process::id()));
    let mut gate = Gate::new();
    let script = format!("sleep 60 & echo $! > {}; read x", file.display());
    let (owned, start) = reporting_child(r, &gate, &script);
    let read_orphan = || {
        std::fs::read_to_string(&file)
            .ok()?
            .trim()
            .parse::<i32>()
            .ok()
    };
    until("the child has started its own child", 10 * SECOND, || {
        read_orphan().is_some()
    });
    let orphan = read_orphan().unwrap();
    identify(orphan);
    let _ = std::fs::remove_file(&file);
    activity_becomes(r, Activity::WaitingForReports);

    // The owner reaps and reports; its child was re-parented here as it exited. The exit
    // watch sees the owner's reap and nudges the drain, which finds the orphan on the main
    // thread's list and goes back to `waitid`, where the orphan's exit wakes it: no hint.
    gate.release();
    r.report_process(owned, start, owner_reap(owned));
    activity_becomes(r, Activity::WaitingForExit);
    // SAFETY: kill(2) of the orphan, a child of this process now.
    unsafe { libc::kill(orphan, libc::SIGTERM) };
    let got = collect(&sub, &procs(&[orphan]), 10 * SECOND);
    assert_eq!(got.len(), 1, "the orphan's exit was not announced");
    assert_eq!(
        (got[0].status(), got[0].reaped_by),
        (128 + libc::SIGTERM, ReapedBy::Reaper)
    );
    r.remove_exit_hint_source();
    assert!(!is_our_zombie(orphan), "the orphan was left a zombie");
}
