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

/// Has the drain decide again where to sleep: a test before may have left it in `waitid`,
/// which only an exit ends (a hint source added meanwhile does not wake it there). A child of
/// the engine's own exits; the drain reaps it (in `waitid` or woken by the exit watch) and
/// decides with what it knows then.
fn redecide(r: &Reaper<SystemWait>) {
    let (_child, rx) = r
        .start_command(&mut std::process::Command::new("true"))
        .expect("spawn true");
    assert_eq!(
        rx.wait().termination,
        subreaper_core::Termination::Exited(0)
    );
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
    redecide(r);
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
    orphans_of_a_reported_child(false);
}

/// The same, with the exit watch seeing the owner's reap before the report comes (the order
/// is a race between the owner's thread and the watch's; on a busy machine it goes either way).
#[test]
fn a_reported_childs_orphans_bring_the_drain_back_to_waitid_when_the_watch_sees_the_reap_first() {
    orphans_of_a_reported_child(true);
}

fn orphans_of_a_reported_child(watch_first: bool) {
    let _serial = serial();
    let r = reaper();
    subreaper_core::set_subreaper(true).expect("subreaper mode");
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 1024,
        ..SubscribeOptions::default()
    });
    r.add_exit_hint_source();
    redecide(r);
    let file = std::env::temp_dir().join(format!(
        "subreaper-orphan-{}-{watch_first}",
        std::process::id()
    ));
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
    let watched = r.stats().watched;

    // The owner reaps and reports; its child was re-parented here as it exited. The exit
    // watch sees the owner's reap and nudges the drain, which finds the orphan on the main
    // thread's list and goes back to `waitid`, where the orphan's exit wakes it: no hint.
    gate.release();
    let termination = owner_reap(owned);
    if watch_first {
        until("the exit watch has seen the reap", 10 * SECOND, || {
            r.stats().watched < watched
        });
    }
    r.report_process(owned, start, termination);
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
