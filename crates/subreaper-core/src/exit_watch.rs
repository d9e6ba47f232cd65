//! Where the exits of known children are seen, whoever reaps them: one epoll set holding a
//! pidfd per child the engine knows of.
//!
//! A pidfd is readable once its child exits (a zombie: the status is read without reaping it)
//! and hangs up once the child is reaped. So the watch sees each known child's exit even while
//! another waiter's zombie blocks `waitid`'s line for the drain, and, from Linux 6.15 on, knows
//! it exactly even when the owner (libuv, a native waiter) reaps it before anyone could peek.
//!
//! Kernels before 6.9 send no hang-up at the reap, and where pidfds are refused (before 5.3,
//! or a seccomp profile that predates them) there is no pidfd at all: the watch then polls the
//! children it cannot be told about (see [`Unnotified`]), so that every exit is still
//! announced once and no entry outlives its child.

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::exit::{ReapedBy, Termination};
use crate::kernel_support::{self, Feature};
use crate::ownership::{Child, Claim, Disposition};
use crate::pidfd::Pidfd;
use crate::reaper::Shared;
use crate::wait_source::{ChildState, WaitSource};

/// Event data of the eventfd that interrupts the wait (pids are never 0).
const INTERRUPT: u64 = 0;

/// The first and the longest pause between two polls of children whose exit or reap the
/// kernel does not tell (see [`Unnotified`]): quick after activity, backing off when idle.
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(100);

/// How the watch learnt of a child: its pidfd (by fd number, so that a later entry of the
/// same pid is never taken for it), or a poll of an entry that has no pidfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Pidfd(i32),
    Polled,
}

impl Seen {
    fn names(self, child: &Child) -> bool {
        match self {
            Seen::Pidfd(fd) => child.pidfd.as_ref().is_some_and(|p| p.raw() == fd),
            Seen::Polled => child.pidfd.is_none(),
        }
    }
}

/// What the kernel will not tell the watch about a child, so that it must poll for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unnotified {
    /// No pidfd (refused, or the child was gone before one could be opened): its exit and
    /// its reap are polled with `waitid(P_PID)`.
    Everything,
    /// Its exit was seen through its pidfd; the reap is polled until a hang-up has been seen
    /// on this kernel (Linux 6.9+).
    Reap,
}

/// What `child`'s watch must poll for, if anything. A child whose owner reports its exit
/// needs nothing: the report says it is reaped.
fn unnotified(child: &Child) -> Option<Unnotified> {
    if child.reaped || matches!(child.claim, Claim::Declared { reports: true, .. }) {
        return None;
    }
    if child.pidfd.is_none() {
        return Some(Unnotified::Everything);
    }
    let exit_seen = child.announced || child.zombie_since.is_some();
    (exit_seen && !kernel_support::hangups_seen()).then_some(Unnotified::Reap)
}

pub(crate) struct ExitWatch {
    epoll: Epoll,
    interrupt: EventFd,
    /// The watch is about to wait, or waits, with no timeout.
    untimed: AtomicBool,
}

fn key(pid: i32, fd: i32) -> u64 {
    ((pid as u32 as u64) << 32) | fd as u32 as u64
}

impl ExitWatch {
    pub(crate) fn new() -> io::Result<ExitWatch> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let interrupt = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC)?;
        epoll.add(
            interrupt.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, INTERRUPT),
        )?;
        Ok(ExitWatch {
            epoll,
            interrupt,
            untimed: AtomicBool::new(false),
        })
    }

    pub(crate) fn add(&self, fd: &Pidfd, pid: i32) -> io::Result<()> {
        let event = EpollEvent::new(EpollFlags::EPOLLIN, key(pid, fd.raw()));
        self.epoll.add(borrow(fd), event)?;
        // Dropping the pidfd later (with its entry) takes it out of the set.
        fd.watched_by(self.epoll.0.as_raw_fd());
        Ok(())
    }

    /// After the exit is handled, or for a child whose owner reports its exit: only the
    /// hang-up (the reap) is still of interest, and a level-triggered readable pidfd would
    /// otherwise wake the watch again at once.
    pub(crate) fn quiet(&self, fd: &Pidfd, pid: i32) {
        let mut event = EpollEvent::new(EpollFlags::empty(), key(pid, fd.raw()));
        let _ = self.epoll.modify(borrow(fd), &mut event);
    }

    /// Takes a pidfd out of the set (a hang-up to be ignored, or a child now polled instead).
    fn forget(&self, fd: &Pidfd) {
        let _ = self.epoll.delete(borrow(fd));
        fd.watched_by(-1);
    }

    /// For a child registered without a pidfd: it must be polled, so a wait with no end is cut
    /// short.
    pub(crate) fn poll_needed(&self) {
        if self.untimed.load(Ordering::SeqCst) {
            self.interrupt();
        }
    }

    pub(crate) fn interrupt(&self) {
        let _ = self.interrupt.write(1);
    }
}

fn borrow(fd: &Pidfd) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: the raw fd belongs to `fd`, which outlives the returned borrow.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd.raw()) }
}

impl<W: WaitSource> Shared<W> {
    pub(crate) fn run_watch(&self) {
        let Some(watch) = &self.watch else { return };
        let mut events = vec![EpollEvent::empty(); 256];
        let mut poll_every = POLL_FIRST;
        loop {
            // While an owner's report is awaited, wake up to announce it should it not come;
            // while a child's exit or reap goes untold, wake up to poll for it. A child
            // registered without a pidfd from here on interrupts a wait with no end.
            watch.untimed.store(true, Ordering::SeqCst);
            let (awaited, polled) = {
                let st = self.lock();
                let awaited = (st.unreported_reaps > 0).then_some(st.report_grace);
                let polled = st.children.iter().any(|(_, c)| unnotified(c).is_some());
                (awaited, polled)
            };
            let wait = match (awaited, polled) {
                (Some(grace), true) => Some(grace.min(poll_every)),
                (Some(grace), false) => Some(grace),
                (None, true) => Some(poll_every),
                (None, false) => None,
            };
            if wait.is_some() {
                watch.untimed.store(false, Ordering::SeqCst);
            }
            let timeout = wait.map_or(EpollTimeout::NONE, |t| {
                EpollTimeout::try_from(t.min(Duration::from_secs(3600)))
                    .unwrap_or(EpollTimeout::NONE)
            });
            let n = match watch.epoll.wait(&mut events, timeout) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            };
            if awaited.is_some() {
                self.announce_unreported();
            }
            for event in &events[..n] {
                if event.data() == INTERRUPT {
                    let _ = watch.interrupt.read();
                    if self.lock().shutdown {
                        return;
                    }
                    continue;
                }
                let pid = (event.data() >> 32) as i32;
                let fd = (event.data() & 0xffff_ffff) as i32;
                let hung_up = event
                    .events()
                    .intersects(EpollFlags::EPOLLHUP | EpollFlags::EPOLLERR);
                if hung_up && kernel_support::hidden(Feature::PidfdHangup) {
                    // As on a kernel that sends none: readable only, and the reap is found
                    // by looking (at once, or by the poll).
                    if event.events().contains(EpollFlags::EPOLLIN) {
                        self.on_exited(pid, Seen::Pidfd(fd), watch);
                    }
                    self.ignore_hangup(pid, fd, watch);
                } else if hung_up {
                    kernel_support::note_hangup();
                    self.on_reaped(pid, Seen::Pidfd(fd));
                } else {
                    self.on_exited(pid, Seen::Pidfd(fd), watch);
                }
            }
            if polled {
                let found = self.poll_unnotified(watch);
                poll_every = if found || n > 0 {
                    POLL_FIRST
                } else {
                    (poll_every * 2).min(POLL_MAX)
                };
            }
        }
    }

    fn ignore_hangup(&self, pid: i32, fd: i32, watch: &ExitWatch) {
        let st = self.lock();
        if let Some(pidfd) = st.children.get(pid).and_then(|c| c.pidfd.as_ref()) {
            if pidfd.raw() == fd {
                watch.forget(pidfd);
            }
        }
    }

    /// Polls the children the kernel does not tell about (see [`Unnotified`]); handles the
    /// exits and reaps it finds. Returns whether it found any.
    fn poll_unnotified(&self, watch: &ExitWatch) -> bool {
        let mut reaped = Vec::new();
        let mut polled = Vec::new();
        {
            let st = self.lock();
            for (&pid, child) in st.children.iter() {
                match unnotified(child) {
                    // The pidfd is asked under the lock, which keeps it open.
                    Some(Unnotified::Reap) => {
                        let fd = child.pidfd.as_ref().expect("has a pidfd");
                        if fd.reaped() == Some(true) {
                            reaped.push((pid, Seen::Pidfd(fd.raw())));
                        }
                    }
                    Some(Unnotified::Everything) => {
                        polled.push((pid, child.announced || child.zombie_since.is_some()))
                    }
                    None => {}
                }
            }
        }
        for (pid, exit_seen) in polled {
            if self.source.peek_pid(pid).is_some() {
                // A zombie: announced now if it is left to its owner (once: then its reap is
                // what is polled for).
                if !exit_seen {
                    self.on_exited(pid, Seen::Polled, watch);
                }
            } else if self.source.child_state(pid) == ChildState::NotAChild {
                reaped.push((pid, Seen::Polled));
            }
        }
        let found = !reaped.is_empty();
        for (pid, seen) in reaped {
            self.on_reaped(pid, seen);
        }
        found
    }

    /// The child is a zombie: announce it unless the drain has or will (its own children).
    fn on_exited(&self, pid: i32, seen: Seen, watch: &ExitWatch) {
        // Usually the drain, woken by the same exit, has announced it already: then only the
        // hang-up is still of interest, and /proc need not be read a second time. A child
        // whose owner reports its exit is announced from that report (or by the drain, if the
        // owner is late): the watch keeps out of the owner's way.
        {
            let st = self.lock();
            match st.children.get(pid) {
                Some(child) if seen.names(child) => {
                    if child.announced
                        || matches!(child.claim, Claim::Declared { reports: true, .. })
                    {
                        if let Some(fd) = &child.pidfd {
                            watch.quiet(fd, pid);
                        }
                        return;
                    }
                }
                _ => return,
            }
        }
        self.refresh_role();
        let info = self.source.inspect(pid);
        let mut st = self.lock();
        let Some(child) = st.children.get_mut(pid).filter(|c| seen.names(c)) else {
            return;
        };
        if let Some(fd) = &child.pidfd {
            watch.quiet(fd, pid);
        }
        if child.announced {
            return;
        }
        let termination = match &child.pidfd {
            Some(fd) => fd.peek_exit(),
            None => self.source.peek_pid(pid),
        };
        let Some(termination) = termination else {
            // Reaped already, before its status could be read. Where a hang-up follows, it
            // is handled then: the status the kernel keeps (6.15+) may not be there yet at this
            // instant. Kernels before 6.9 send none: the reap is handled now.
            if child.pidfd.is_none() || !kernel_support::hangups_seen() {
                drop(st);
                self.on_reaped(pid, seen);
            }
            return;
        };
        let since = *child
            .zombie_since
            .get_or_insert_with(std::time::Instant::now);
        let claim = child.claim;
        if self.decide_now(&st, claim, since) != Disposition::Leave {
            // The engine's to reap (now or after a grace): the drain records it with rusage.
            drop(st);
            self.kick();
            return;
        }
        let fired = self.announce_left(&mut st, pid, termination, &info);
        self.publish(&mut st);
        drop(st);
        fired.run();
    }
    /// Announces, with the status their pidfds kept, the exits of children whose owner reaped
    /// them and has not reported them within the report grace (an owner that reaps without
    /// reporting, or was torn down in between): late rather than lost.
    fn announce_unreported(&self) {
        let mut st = self.lock();
        let grace = st.report_grace;
        let due: Vec<i32> = st
            .children
            .iter()
            .filter(|(_, c)| {
                !c.announced && c.reaped_status.is_some_and(|(_, at)| at.elapsed() >= grace)
            })
            .map(|(pid, _)| *pid)
            .collect();
        let waiting = st
            .children
            .count(|c| !c.announced && c.reaped_status.is_some());
        st.unreported_reaps = waiting - due.len();
        let mut fired = Vec::new();
        for pid in due {
            let child = st.children.get_mut(pid).expect("listed above");
            let (status, _) = child.reaped_status.take().expect("filtered above");
            child.announced = true;
            let identity = (child.comm.clone(), child.start_time);
            fired.push(self.record(&mut st, pid, status, None, identity, ReapedBy::Other));
        }
        self.publish(&mut st);
        drop(st);
        fired.into_iter().for_each(|f| f.run());
    }

    /// The child was reaped, by its owner or by the engine. An exit nobody announced yet is
    /// announced now, with the status the kernel kept for the pidfd.
    fn on_reaped(&self, pid: i32, seen: Seen) {
        let mut st = self.lock();
        let Some(child) = st.children.get_mut(pid).filter(|c| seen.names(c)) else {
            return;
        };
        let status = child.pidfd.take().and_then(|p| p.exit_after_reap());
        child.reaped = true;
        // Only an owner that reports (child_process) is waited for: one that declared a child
        // and waits for it itself says nothing more.
        let awaits_report =
            matches!(child.claim, Claim::Declared { reports: true, .. }) && !child.reported;
        let left_to_report = awaits_report && !child.announced && status.is_some();
        let fired = if child.announced || (status.is_none() && awaits_report) {
            // Announced already, or its owner will report the status (kernels before 6.15).
            None
        } else if left_to_report {
            // Its owner reports it in a moment, on its own thread: announced from there, or
            // from this status should the report not come (see `announce_unreported`).
            child.reaped_status = status.map(|s| (s, std::time::Instant::now()));
            st.unreported_reaps += 1;
            None
        } else {
            child.announced = true;
            let identity = (child.comm.clone(), child.start_time);
            Some(self.record(
                &mut st,
                pid,
                status.unwrap_or(Termination::Unknown),
                None,
                identity,
                ReapedBy::Other,
            ))
        };
        st.threads.forget(pid);
        self.publish(&mut st);
        drop(st);
        if let Some(fired) = fired {
            fired.run();
        }
        self.drop_finished_unless_draining();
        // The drain may be looking past this zombie, and drops finished entries. For an exit
        // left to its owner's report (which wakes no one), only where the child may have left
        // orphans here as it exited, which a drain sleeping without `waitid` must look for.
        if !left_to_report || self.source.adopts_orphans() {
            self.nudge();
        }
    }
}
