//! A burst of adopted zombies (an init or subreaper whose orphans arrive together) is drained
//! with each zombie named by taskstats, and again with their `/proc` entries read ahead on a
//! second thread: every exit must still name its own process (pid, start time, name) and
//! carry its own status. One test: subreaper mode is an attribute of the whole process.
#![cfg(target_os = "linux")]

mod common;

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use subreaper_core::{
    set_subreaper, ReapedBy, Reaper, SubscribeOptions, Subscription, Termination,
};

const N: usize = 3000;

extern "C" fn named_exit(arg: *mut libc::c_void) -> libc::c_int {
    let i = arg as usize;
    // "b<i>": at most 5 characters, a name per grandchild. No allocation between fork and
    // exit: the name is built on the stack.
    let mut name = [0u8; 16];
    name[0] = b'b';
    let mut digits = [0u8; 8];
    let (mut n, mut len) = (i, 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for k in 0..len {
        name[1 + k] = digits[len - 1 - k];
    }
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
        libc::_exit((i % 256) as i32)
    }
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

fn name_of(i: usize) -> String {
    format!("b{i}")
}

#[test]
fn every_exit_of_a_burst_names_its_own_process() {
    let r = Reaper::global();
    let sub = r.subscribe(SubscribeOptions {
        buffer_size: 2 * N,
        ..SubscribeOptions::default()
    });
    set_subreaper(true).unwrap();
    // Named by taskstats where the kernel serves it (as root here), then from `/proc`, with
    // the entries read ahead on a second thread.
    for by_taskstats in [true, false] {
        subreaper_core::taskstats::set_enabled(by_taskstats);
        one_burst(&sub);
    }
    subreaper_core::taskstats::set_enabled(true);
    set_subreaper(false).unwrap();
}

fn one_burst(sub: &Subscription) {
    // A child makes N grandchildren that exit at once, each under its own name and with its
    // own status, tells their pids, and exits when told: its N zombies come here together.
    let (pids_read, pids_write) = pipe();
    let (go_read, go_write) = pipe();
    let mut stack = vec![0u8; 64 * 1024];
    let top = ((stack.as_mut_ptr() as usize + stack.len()) & !0xf) as *mut libc::c_void;
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork: {}", std::io::Error::last_os_error());
    if child == 0 {
        // Only system calls from here on (the test process has other threads).
        unsafe {
            // The parent's ends: the "go" pipe must see EOF once the parent closes its end.
            libc::close(go_write.as_raw_fd());
            libc::close(pids_read.as_raw_fd());
            let mut pids = [0i32; N];
            for (i, pid) in pids.iter_mut().enumerate() {
                *pid = libc::clone(
                    named_exit,
                    top,
                    libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
                    i as *mut libc::c_void,
                );
                if *pid <= 0 {
                    libc::_exit(100);
                }
            }
            for pid in &pids {
                let mut info: libc::siginfo_t = std::mem::zeroed();
                libc::waitid(
                    libc::P_PID,
                    *pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                );
            }
            let bytes = std::slice::from_raw_parts(pids.as_ptr() as *const u8, 4 * N);
            let mut off = 0;
            while off < bytes.len() {
                let n = libc::write(
                    pids_write.as_raw_fd(),
                    bytes[off..].as_ptr() as *const libc::c_void,
                    bytes.len() - off,
                );
                if n <= 0 {
                    libc::_exit(101);
                }
                off += n as usize;
            }
            let mut b = 0u8;
            libc::read(
                go_read.as_raw_fd(),
                &mut b as *mut u8 as *mut libc::c_void,
                1,
            );
            libc::_exit(0);
        }
    }
    drop(pids_write);
    drop(go_read);
    drop(stack);
    let mut bytes = vec![0u8; 4 * N];
    let mut off = 0;
    while off < bytes.len() {
        let n = unsafe {
            libc::read(
                pids_read.as_raw_fd(),
                bytes[off..].as_mut_ptr() as *mut libc::c_void,
                bytes.len() - off,
            )
        };
        assert!(n > 0, "the child said only {off} bytes of pids");
        off += n as usize;
    }
    // Read while they are still the child's zombies (nobody here reaps them yet).
    let expected: HashMap<i32, (usize, u64)> = bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(i, b)| {
            let pid = i32::from_ne_bytes(b.try_into().unwrap());
            let start = start_ticks(pid).expect("a grandchild's start time");
            Proc::started_at_ticks(pid, start);
            (pid, (i, start))
        })
        .collect();
    assert_eq!(expected.len(), N);
    drop(go_write);
    // The child is this thread's fork, left to this thread: reap it.
    let mut status = 0;
    assert_eq!(unsafe { libc::waitpid(child, &mut status, 0) }, child);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);

    let pids: Vec<i32> = expected.keys().copied().collect();
    let set = procs(&pids);
    let got = collect(sub, &set, Duration::from_secs(60));
    assert_once_each_in_order(&got, &set);
    for e in &got {
        let (i, start) = expected[&e.pid];
        assert_eq!(
            e.start_time,
            Some(start),
            "pid {}: another process's start",
            e.pid
        );
        assert_eq!(
            e.comm.as_deref(),
            Some(name_of(i).as_str()),
            "pid {}",
            e.pid
        );
        assert_eq!(e.termination, Termination::Exited((i % 256) as i32));
        assert_eq!(e.reaped_by, ReapedBy::Reaper);
    }
    assert!(zombie_children().is_empty(), "zombies left");
}
