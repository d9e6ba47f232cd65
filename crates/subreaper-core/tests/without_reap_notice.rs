//! What Linux 5.4 to 6.8 offer (pidfds, but no hang-up at the reap and no status kept after
//! it), hidden here on a kernel that has both: see `common/fallback.rs`.
#![cfg(target_os = "linux")]

mod common;

#[test]
fn without_a_reap_notice_every_exit_is_announced_once_and_nothing_is_left() {
    let unknown = common::fallback::native_waiters_under("pidfd-hangup,pidfd-exit");
    eprintln!("{unknown} of 200 statuses unknown (taken by their waiter before the engine looked)");
}
