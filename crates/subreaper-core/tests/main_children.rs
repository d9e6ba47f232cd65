//! The main thread's children list, which the engine keeps open and reads with `pread` after
//! nearly every exit, is formatted afresh at each read: an orphan adopted since the last read
//! is on it, one reaped since is not. One test: subreaper mode is an attribute of the whole
//! process.
#![cfg(target_os = "linux")]

use std::process::Command;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use subreaper_core::{procfs, set_subreaper};

/// Where this process's descriptors point.
fn open_paths() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

/// Kills and reaps the adopted child should an assertion fail before the test reaps it.
struct Adopted(Option<i32>);

impl Drop for Adopted {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
    }
}

#[test]
fn the_kept_main_thread_list_follows_adoption_and_reaping() {
    if !procfs::has_children_lists() {
        return;
    }
    set_subreaper(true).unwrap();
    procfs::keep_main_children_open();
    let main = procfs::main_thread();
    let kept = format!("/proc/{main}/task/{main}/children");
    assert_eq!(
        open_paths().iter().filter(|p| **p == kept).count(),
        1,
        "the list is kept open once: {:?}",
        open_paths()
    );
    let before = procfs::short_thread_children(main).unwrap();

    // The shell starts a sleep and exits: the sleep is re-parented to this process (to its
    // main thread's list) before the shell's exit can be waited for.
    let out = Command::new("sh")
        .args(["-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let orphan: i32 = String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // Our child now, so its pid cannot be given to another process until it is reaped here.
    let mut guard = Adopted(Some(orphan));
    let stat = procfs::read_stat(orphan).unwrap();
    assert_eq!(stat.ppid, std::process::id() as i32);
    assert!(!before.contains(&orphan));

    let adopted = procfs::short_thread_children(main).unwrap();
    assert!(adopted.contains(&orphan), "{orphan} not in {adopted:?}");
    // Again (each read starts from the top), and the same list as a fresh open reads.
    assert_eq!(procfs::short_thread_children(main).unwrap(), adopted);
    assert_eq!(adopted, procfs::thread_children(main).unwrap());

    kill(Pid::from_raw(orphan), Signal::SIGKILL).unwrap();
    let status = waitpid(Pid::from_raw(orphan), None).unwrap();
    // Reaped: its pid may be another process's from now on.
    guard.0 = None;
    assert_eq!(
        status,
        WaitStatus::Signaled(Pid::from_raw(orphan), Signal::SIGKILL, false)
    );
    let after = procfs::short_thread_children(main).unwrap();
    assert!(!after.contains(&orphan), "{orphan} still in {after:?}");
    assert_eq!(after, procfs::thread_children(main).unwrap());
}
