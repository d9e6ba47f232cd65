//! Where the exits of known children are seen, whoever reaps them: one epoll set holding a
//! pidfd per child the engine knows of.
//!
//! A pidfd is readable once its child exits (a zombie: the status is read without reaping it)
//! and hangs up once the child is reaped. So the watch sees each known child's exit even while
//! another waiter's zombie blocks `waitid`'s line for the drain, and, from Linux 6.15 on, knows
//! it exactly even when the owner (libuv, a native waiter) reaps it before anyone could peek.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::exit::{ReapedBy, Termination};
use crate::ownership::{Claim, Disposition};
use crate::pidfd::Pidfd;
use crate::reaper::Shared;
use crate::wait_source::WaitSource;

/// Event data of the eventfd that interrupts the wait (pids are never 0).
const INTERRUPT: u64 = 0;

pub(crate) struct ExitWatch {
    epoll: Epoll,
    interrupt: EventFd,
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
        Ok(ExitWatch { epoll, interrupt })
    }

    pub(crate) fn add(&self, fd: &Pidfd, pid: i32) -> io::Result<()> {
        let event = EpollEvent::new(EpollFlags::EPOLLIN, key(pid, fd.raw()));
        // Closing the pidfd later (with its entry) removes it from the set.
        self.epoll.add(borrow(fd), event)?;
        Ok(())
    }

    /// After the exit is handled, or for a child whose owner reports its exit: only the
    /// hang-up (the reap) is still of interest, and a level-triggered readable pidfd would
    /// otherwise wake the watch again at once.
    pub(crate) fn quiet(&self, fd: &Pidfd, pid: i32) {
        let mut event = EpollEvent::new(EpollFlags::empty(), key(pid, fd.raw()));
        let _ = self.epoll.modify(borrow(fd), &mut event);
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
        loop {
            // While an owner's report is awaited, wake up to announce it should it not come.
            let awaited = {
                let st = self.lock();
                (st.unreported_reaps > 0).then_some(st.report_grace)
            };
            let timeout = awaited.map_or(EpollTimeout::NONE, |grace| {
                EpollTimeout::try_from(grace.min(Duration::from_secs(3600)))
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
                if hung_up {
                    self.on_reaped(pid, fd);
                } else {
                    self.on_exited(pid, fd, watch);
                }
            }
        }
    }

    /// The child is a zombie: announce it unless the drain has or will (its own children).
    fn on_exited(&self, pid: i32, fd: i32, watch: &ExitWatch) {
        // Usually the drain, woken by the same exit, has announced it already: then only the
        // hang-up is still of interest, and /proc need not be read a second time. A child
        // whose owner reports its exit is announced from that report (or by the drain, if the
        // owner is late): the watch keeps out of the owner's way.
        {
            let st = self.lock();
            match st.children.get(pid) {
                Some(child) if child.pidfd.as_ref().is_some_and(|p| p.raw() == fd) => {
                    if child.announced
                        || matches!(child.claim, Claim::Declared { reports: true, .. })
                    {
                        watch.quiet(child.pidfd.as_ref().expect("checked"), pid);
                        return;
                    }
                }
                _ => return,
            }
        }
        self.refresh_role();
        let info = self.source.inspect(pid);
        let mut st = self.lock();
        let Some(child) = st.children.get_mut(pid) else {
            return;
        };
        let Some(pidfd) = child.pidfd.as_ref().filter(|p| p.raw() == fd) else {
            return;
        };
        watch.quiet(pidfd, pid);
        if child.announced {
            return;
        }
        let Some(termination) = pidfd.peek_exit() else {
            // Reaped already: the hang-up follows.
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
    fn on_reaped(&self, pid: i32, fd: i32) {
        let mut st = self.lock();
        let Some(child) = st.children.get_mut(pid) else {
            return;
        };
        if child.pidfd.as_ref().map(Pidfd::raw) != Some(fd) {
            return;
        }
        let status = child.pidfd.take().and_then(|p| p.exit_after_reap());
        child.reaped = true;
        let awaits_report = matches!(child.claim, Claim::Declared { .. }) && !child.reported;
        let owner_reports = matches!(child.claim, Claim::Declared { reports: true, .. });
        let left_to_report = awaits_report && owner_reports && !child.announced && status.is_some();
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
        // The drain may be looking past this zombie, and drops finished entries. For an exit
        // left to its owner's report (which wakes no one), only where the child may have left
        // orphans here as it exited, which a drain sleeping without `waitid` must look for.
        if !left_to_report || self.source.adopts_orphans() {
            self.nudge();
        }
    }
}
