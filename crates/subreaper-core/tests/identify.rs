//! A zombie about to be reaped is identified by taskstats where the kernel serves it
//! (CAP_NET_ADMIN in the initial user namespace): the name and start time are `/proc`'s to the
//! byte and the tick, and where taskstats cannot pin the tick (or is not served) `/proc` is
//! read instead.
//! No reaper runs in this binary: the children are this test's to reap.
#![cfg(target_os = "linux")]

mod common;

use std::time::Duration;

use common::*;
use subreaper_core::procfs;
use subreaper_core::{SystemWait, WaitSource};

const CHILDREN: usize = 300;

#[test]
fn a_zombie_is_identified_as_proc_names_it() {
    // Named by pid and time: in a PID namespace of its own this test may be pid 2 each run.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir =
        std::env::temp_dir().join(format!("subreaper-identify-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).unwrap();
    // A name with the spaces and parentheses /proc's line makes hard to parse.
    let odd = dir.join("odd (name) here");
    std::os::unix::fs::symlink(program("true"), &odd).unwrap();
    let odd = odd.to_str().unwrap().to_string();

    let programs: [&[&str]; 3] = [&[odd.as_str()], &["sh", "-c", "exit 3"], &["sleep", "0"]];
    let mut served = 0;
    for i in 0..CHILDREN {
        let pid = spawn(programs[i % programs.len()], None);
        until_zombies(&[pid], Duration::from_secs(10));
        let proc_says = procfs::read_stat(pid).expect("a zombie's /proc entry");
        let (info, whole) = SystemWait.identify_exited(pid);
        assert_eq!(
            info.start_time,
            Some(proc_says.start_time),
            "pid {pid}'s start"
        );
        assert_eq!(
            info.comm.as_deref(),
            Some(proc_says.comm.as_str()),
            "pid {pid}'s name"
        );
        if !whole {
            served += 1;
        }
        owner_reap(pid);
    }
    std::fs::remove_dir_all(&dir).unwrap();
    if may_ask_taskstats() {
        // The tick is ambiguous only for a start within microseconds of a tick's edge.
        assert!(
            served >= CHILDREN * 9 / 10,
            "taskstats served {served} of {CHILDREN}"
        );
    } else {
        assert_eq!(
            served, 0,
            "taskstats refuses this process: /proc throughout"
        );
    }
}

/// Whether the kernel serves taskstats requests to this process: CAP_NET_ADMIN in the initial
/// user namespace (any network or PID namespace will do).
fn may_ask_taskstats() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap();
    let initial_userns = uid_map.split_whitespace().collect::<Vec<_>>() == ["0", "0", "4294967295"];
    cap_eff & (1 << CAP_NET_ADMIN) != 0 && initial_userns
}
