//! The init's event loop: one thread, every signal blocked and read from a signalfd, children
//! reaped with `wait4` until none has exited (one SIGCHLD may stand for many exits).
//!
//! While the command runs, signals are forwarded to it (see `signals`). Once it has exited,
//! whatever is still below the init is a leftover: it gets SIGTERM, then SIGKILL after the
//! grace period (or the init waits for it with `--wait-leftovers`); SIGTERM, SIGINT or SIGQUIT
//! to the init meanwhile cut the wait short. The init exits with the command's status once it
//! has no child left.

use std::io::Write;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgrp, getpid, getsid, Pid};
use subreaper_core::process_role::{is_init, set_subreaper};

use crate::exits::{Drained, ExitRecord, Reaper};
use crate::launch::{launch, Launch, LaunchError};
use crate::leftovers::{proc_is_ours, Reach, Signalled};
use crate::options::Options;
use crate::report::{Report, Row};
use crate::signals::{self, Context, Origin};
use crate::terminal::Terminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The command runs.
    Running,
    /// It exited; the leftovers are left to end by themselves.
    Waiting,
    /// They got SIGTERM; SIGKILL at the deadline.
    Grace(Instant),
    /// They get SIGKILL, and so does whatever they leave in turn.
    Killing,
}

struct Supervisor {
    opts: Options,
    me: i32,
    pid1: bool,
    reach: Reach,
    main: Pid,
    ctx: Context,
    terminal: Option<Terminal>,
    gave_terminal: bool,
    /// Every exit when a report is wanted; otherwise only the command's.
    records: Vec<ExitRecord>,
    main_index: Option<usize>,
    /// The number of exits recorded when the command's exit had been drained.
    leftovers_from: Option<usize>,
    signalled: Signalled,
    phase: Phase,
    /// The init stopped with its job at a terminal's Ctrl-Z: the shell's `fg` continues the
    /// whole job, the command included, so that SIGCONT is not sent to it again.
    stopped_with_job: bool,
}

/// How a process ended, for the messages of -v and -w.
fn describe(exit: &ExitRecord) -> String {
    match exit.termination.signal() {
        Some(signo) => format!("killed by {}", signals::name(signo)),
        None => format!("exited with {}", exit.termination.status()),
    }
}

fn warn(message: std::fmt::Arguments) {
    let _ = writeln!(std::io::stderr(), "subreaper: {message}");
}

/// Runs the command as its init; returns the exit status.
pub fn run(opts: Options) -> i32 {
    let pid1 = is_init();
    let me = getpid().as_raw();
    // Every signal is blocked (SIGKILL and SIGSTOP cannot be) and read from the signalfd; none
    // has a handler, so the caller's dispositions pass unchanged to the command.
    let all = SigSet::all();
    let mut caller_mask = SigSet::empty();
    if let Err(e) = sigprocmask(SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut caller_mask)) {
        warn(format_args!("cannot block signals: {e}"));
        return 1;
    }
    let sfd = match SignalFd::with_flags(&all, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) => {
            warn(format_args!("cannot read signals (signalfd): {e}"));
            return 1;
        }
    };
    if !pid1 {
        if let Err(e) = set_subreaper(true) {
            warn(format_args!("warning: orphans will not be adopted: {e}"));
        }
    }
    if let Some(signo) = opts.parent_death_signal {
        // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signo as libc::c_ulong) } != 0 {
            let err = std::io::Error::last_os_error();
            warn(format_args!("cannot set the parent-death signal: {err}"));
            return 1;
        }
    }
    // Only -g hands the terminal on; the rest waits until the command runs (start-up time).
    let terminal = if opts.group { Terminal::open() } else { None };
    // The terminal goes to the command's own group only if this process has it now.
    let give = opts.group && terminal.as_ref().is_some_and(Terminal::ours_in_foreground);
    let launched = launch(&Launch {
        command: &opts.command,
        mask: &caller_mask,
        group: opts.group,
        terminal: if give { terminal.as_ref() } else { None },
    });
    let name = opts.command[0].to_string_lossy().into_owned();
    let main = match launched {
        Ok(pid) => pid,
        Err(LaunchError::NotFound) => {
            warn(format_args!("{name}: command not found"));
            return 127;
        }
        Err(LaunchError::CannotRun(errno)) => {
            let err = std::io::Error::from_raw_os_error(errno as i32);
            warn(format_args!("{name}: cannot run: {err}"));
            return 126;
        }
    };
    if opts.verbosity > 0 {
        warn(format_args!("started {name} as pid {main}"));
    }
    let reach = if proc_is_ours() {
        Reach::Proc
    } else if pid1 {
        Reach::Namespace
    } else {
        Reach::None
    };
    let ctx = Context {
        me,
        same_group: !opts.group,
        session_leader: getsid(None).is_ok_and(|sid| sid.as_raw() == me),
    };
    let mut s = Supervisor {
        opts,
        me,
        pid1,
        reach,
        main,
        ctx,
        terminal,
        gave_terminal: give,
        records: Vec::new(),
        main_index: None,
        leftovers_from: None,
        signalled: Signalled::default(),
        phase: Phase::Running,
        stopped_with_job: false,
    };
    s.run(&sfd)
}

impl Supervisor {
    fn wants_report(&self) -> bool {
        self.opts.report.is_some() || self.opts.report_file.is_some()
    }

    fn main_exited(&self) -> bool {
        self.main_index.is_some()
    }

    fn run(&mut self, sfd: &SignalFd) -> i32 {
        let reaper = Reaper::new(self.wants_report(), self.reach == Reach::Proc);
        loop {
            let drained = reaper.drain(|e| self.on_exit(e));
            if self.main_exited() && self.phase == Phase::Running {
                self.after_main(&drained);
            }
            if self.main_exited() && matches!(drained, Drained::NoChildren) {
                break;
            }
            if !self.main_exited() {
                self.follow_stop();
            }
            if self.phase == Phase::Killing {
                self.signal_all(libc::SIGKILL);
            }
            let timeout = match self.phase {
                Phase::Grace(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    // Rounded up: waking just before the deadline would spin.
                    PollTimeout::try_from(left + Duration::from_micros(999))
                        .unwrap_or(PollTimeout::MAX)
                }
                Phase::Killing => PollTimeout::from(20u16),
                _ => PollTimeout::NONE,
            };
            let mut fds = [PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    warn(format_args!("poll: {e}"));
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            if let Phase::Grace(deadline) = self.phase {
                if Instant::now() >= deadline {
                    self.phase = Phase::Killing;
                    self.signal_all(libc::SIGKILL);
                }
            }
            while let Ok(Some(info)) = sfd.read_signal() {
                self.on_signal(&Origin {
                    signo: info.ssi_signo as i32,
                    code: info.ssi_code,
                    sender: info.ssi_pid as i32,
                });
            }
        }
        self.finish()
    }

    fn on_exit(&mut self, exit: ExitRecord) {
        let is_main = !self.main_exited() && exit.pid == self.main.as_raw();
        if is_main && self.opts.verbosity > 0 {
            warn(format_args!(
                "the command (pid {}) ended: {}",
                exit.pid,
                describe(&exit)
            ));
        } else if !is_main && (self.opts.warn_on_reap || self.opts.verbosity > 1) {
            warn(format_args!(
                "reaped zombie process {}: {}",
                exit.pid,
                describe(&exit)
            ));
        }
        if is_main || self.wants_report() {
            self.records.push(exit);
        }
        if is_main {
            self.main_index = Some(self.records.len() - 1);
        }
    }

    /// The command has exited and every zombie there was has been reaped: what is left is
    /// left over.
    fn after_main(&mut self, drained: &Drained) {
        if self.gave_terminal {
            if let Some(tty) = &self.terminal {
                tty.hand_to(getpgrp());
            }
        }
        self.phase = Phase::Waiting;
        if matches!(drained, Drained::NoChildren) {
            return;
        }
        self.leftovers_from = Some(self.records.len());
        if self.reach == Reach::Proc {
            self.signalled.snapshot(self.me);
        }
        if self.reach == Reach::None {
            warn(format_args!(
                "cannot find the leftovers (/proc is not this PID namespace's): waiting for them to exit"
            ));
        } else if !self.opts.wait_leftovers {
            self.terminate();
        }
    }

    fn terminate(&mut self) {
        self.signal_all(libc::SIGTERM);
        self.phase = Phase::Grace(Instant::now() + self.opts.grace);
    }

    fn signal_all(&mut self, signo: i32) {
        let recorded = self.records.len();
        self.signalled
            .signal_all(self.reach, self.me, signo, recorded);
    }

    /// With `--group`, Ctrl-Z stops the command's group but not the init: stop with it (as
    /// its caller's shell expects of a job) and, once continued, continue it.
    fn follow_stop(&mut self) {
        if !self.opts.group || self.pid1 {
            return;
        }
        let stopped = waitid(
            Id::Pid(self.main),
            WaitPidFlag::WSTOPPED | WaitPidFlag::WNOHANG,
        );
        if !matches!(stopped, Ok(WaitStatus::Stopped(..))) {
            return;
        }
        if self.gave_terminal {
            if let Some(tty) = &self.terminal {
                tty.hand_to(getpgrp());
            }
        }
        signals::send(self.me, libc::SIGSTOP);
        // Continued.
        self.continue_command();
    }

    fn continue_command(&self) {
        if self.gave_terminal {
            if let Some(tty) = &self.terminal {
                if tty.ours_in_foreground() {
                    tty.hand_to(self.main);
                }
            }
        }
        signals::send(-self.main.as_raw(), libc::SIGCONT);
    }

    /// Passes `signo` on to the command (or its group), as `--rewrite` turns it.
    fn forward(&self, signo: i32) {
        let sent = self
            .opts
            .rewrite
            .iter()
            .rev()
            .find(|(from, _)| *from == signo)
            .map_or(signo, |&(_, to)| to);
        let target = if self.opts.group {
            -self.main.as_raw()
        } else {
            self.main.as_raw()
        };
        if self.opts.verbosity > 0 {
            let name = signals::name(signo);
            match sent {
                0 => warn(format_args!("dropped {name} (--rewrite)")),
                s if s == signo => warn(format_args!("forwarded {name} to {target}")),
                s => warn(format_args!(
                    "forwarded {name} to {target} as {}",
                    signals::name(s)
                )),
            }
        }
        if sent == 0 {
            return;
        }
        if sent == libc::SIGCONT && self.opts.group {
            self.continue_command();
        } else {
            signals::send(target, sent);
        }
    }

    fn on_signal(&mut self, origin: &Origin) {
        let signo = origin.signo;
        if signo == libc::SIGCHLD {
            return;
        }
        if !self.main_exited() {
            let forward = signals::forward(origin, &self.ctx);
            if signo == libc::SIGCONT && std::mem::take(&mut self.stopped_with_job) {
                return;
            }
            if forward {
                self.forward(signo);
            }
            if signals::stops_job(signo) && !self.pid1 {
                // Not forwarded: the terminal sent it to the whole job, which stops with us.
                self.stopped_with_job = !forward && self.ctx.same_group;
                signals::send(self.me, libc::SIGSTOP);
            }
            return;
        }
        if signals::ends_cleanup(signo) {
            match self.phase {
                Phase::Waiting if self.reach != Reach::None => self.terminate(),
                Phase::Grace(_) => {
                    self.phase = Phase::Killing;
                    self.signal_all(libc::SIGKILL);
                }
                _ => {}
            }
        }
    }

    fn finish(&self) -> i32 {
        let main_index = self.main_index.expect("the command's exit was recorded");
        let main = &self.records[main_index];
        let status = main.termination.status();
        // tini's -e: an expected status counts as success.
        let exit_status = if self.opts.expect_status.contains(&status) {
            0
        } else {
            status
        };
        if !self.wants_report() {
            return exit_status;
        }
        let rows = self
            .records
            .iter()
            .enumerate()
            .map(|(i, exit)| {
                let is_main = i == main_index;
                let id = exit.start_ticks.map(|s| (exit.pid, s));
                let leftover = !is_main
                    && match self.reach {
                        Reach::Proc => id.is_some_and(|id| self.signalled.leftovers.contains(&id)),
                        _ => self.leftovers_from.is_some_and(|from| i >= from),
                    };
                let action = if is_main {
                    None
                } else {
                    self.signalled.action(i, id, exit.termination.signal())
                };
                Row {
                    exit,
                    main: is_main,
                    leftover,
                    action,
                }
            })
            .collect();
        let report = Report {
            command: &self.opts.command,
            main,
            exit_status,
            pid1: self.pid1,
            rows,
        };
        let json = report.json();
        if let Some(path) = &self.opts.report_file {
            if let Err(e) = std::fs::write(path, &json) {
                // The command ran: its status still decides the exit code.
                warn(format_args!(
                    "cannot write the report to {}: {e}",
                    path.to_string_lossy()
                ));
            }
        }
        let mut err = std::io::stderr();
        match self.opts.report {
            Some(crate::options::ReportFormat::Json) => {
                let _ = err.write_all(json.as_bytes());
            }
            Some(crate::options::ReportFormat::Table) => {
                let _ = err.write_all(report.table().as_bytes());
            }
            None => {}
        }
        exit_status
    }
}
