//! A child whose owner reports its exit (`Reaper::own_reporting`, as Node's process handle does
//! through the package's hook) is announced from that report, on the owner's thread; the
//! engine's threads announce it themselves only when the owner is late: from the zombie if the
//! owner has not reaped it within the report grace, from the status its pidfd kept if the owner
//! reaped it and never reported. The grace is raised to 2 s here so that a busy machine cannot
//! make the owner look late.
#![cfg(target_os = "linux")]

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use subreaper_core::pidfd::Pidfd;
use subreaper_core::{Config, ReapedBy, Reaper, SubscribeOptions, SystemWait};

const GRACE: Duration = Duration::from_secs(2);
const OWNER: u64 = 7;
const SECOND: Duration = Duration::from_secs(1);

fn reaper() -> &'static Reaper<SystemWait> {
    Reaper::global_with(Config {
        report_grace: GRACE,
        ..Config::default()
    })
}

fn subscription() -> subreaper_core::Subscription {
    reaper().subscribe(SubscribeOptions {
        buffer_size: 1024,
        ..SubscribeOptions::default()
    })
}

/// Whether this kernel keeps a reaped child's status for its pidfd (Linux 6.15's
/// `PIDFD_INFO_EXIT`), which the engine's last resort needs.
fn kernel_keeps_exit_status() -> bool {
    let pid = spawn(&["true"], None);
    let fd = Pidfd::open(pid).expect("pidfd_open");
    owner_reap(pid);
    fd.exit_after_reap().is_some()
}

/// A child of `script` declared with `own_reporting`, released at once; returns its pid,
/// its start time and when it was released (it exits after that).
fn declared_child(script: &str) -> (i32, Option<u64>, SystemTime) {
    let mut gate = Gate::new();
    let pid = spawn(&["sh", "-c", script], Some(gate.read_fd()));
    let start = reaper().own_reporting(pid, OWNER);
    let released_at = SystemTime::now();
    gate.release();
    (pid, start, released_at)
}

#[test]
fn the_owners_report_announces_the_exit() {
    let _serial = serial();
    let r = reaper();
    let sub = subscription();
    let (pid, start, _) = declared_child("read x; exit 9");
    until("the child is a zombie", 5 * SECOND, || is_our_zombie(pid));
    let termination = owner_reap(pid);
    let reported_at = SystemTime::now();
    r.report_process(pid, start, termination);
    let only = procs(&[pid]);
    let got = collect(&sub, &only, 5 * SECOND);
    assert_eq!(got.len(), 1);
    let e = &got[0];
    assert_eq!((e.status(), e.reaped_by), (9, ReapedBy::Other));
    assert_eq!(e.comm.as_deref(), Some("sh"), "the name read at own()");
    assert!(
        e.timestamp >= reported_at,
        "announced before the owner reported it: the engine did not wait for its owner"
    );
    assert_no_more(&sub, &only, Duration::from_millis(300));
}

#[test]
fn a_late_owners_zombie_is_announced_after_the_grace_and_left_to_it() {
    let _serial = serial();
    let r = reaper();
    let sub = subscription();
    let (pid, start, released_at) = declared_child("read x; exit 3");
    let only = procs(&[pid]);
    let got = collect(&sub, &only, 4 * GRACE);
    assert_eq!(got.len(), 1, "the zombie's exit was not announced");
    assert_eq!((got[0].status(), got[0].reaped_by), (3, ReapedBy::Other));
    // The child exited after the release, and the engine waited out the grace from then.
    assert!(got[0].timestamp >= released_at + GRACE);
    assert!(
        is_our_zombie(pid),
        "the engine reaped a child its owner reaps"
    );
    let termination = owner_reap(pid);
    r.report_process(pid, start, termination);
    assert_no_more(&sub, &only, Duration::from_millis(300));
}

#[test]
fn an_owner_that_reaps_and_never_reports_is_announced_from_the_pidfd() {
    let _serial = serial();
    if !kernel_keeps_exit_status() {
        eprintln!("skipped: this kernel keeps no exit status for pidfds (Linux < 6.15)");
        return;
    }
    let sub = subscription();
    let (pid, _, _) = declared_child("read x; kill -USR1 $$");
    let termination = owner_reap(pid);
    let reaped_at = SystemTime::now();
    let only = procs(&[pid]);
    let got = collect(&sub, &only, 4 * GRACE);
    assert_eq!(got.len(), 1, "an exit its owner never reported was lost");
    assert_eq!(got[0].termination, termination);
    assert_eq!(got[0].status(), 128 + libc::SIGUSR1);
    assert!(
        got[0].timestamp >= reaped_at + GRACE - Duration::from_millis(50)
            || got[0].timestamp < reaped_at,
        "announced from the pidfd before the grace ran out"
    );
    assert_no_more(&sub, &only, Duration::from_millis(300));
}
