//! No pidfds at all (Linux before 5.3, or a seccomp profile that refuses them), hidden here:
//! see `common/fallback.rs`. CI also runs the Node specs under a real seccomp refusal.
#![cfg(target_os = "linux")]

mod common;

#[test]
fn without_pidfds_every_exit_is_announced_once_and_nothing_is_left() {
    let unknown = common::fallback::native_waiters_under("pidfd");
    assert!(subreaper_core::kernel_support::pidfds_refused());
    eprintln!("{unknown} of 200 statuses unknown (taken by their waiter before the engine looked)");
}
