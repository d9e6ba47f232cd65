//! The controlling terminal, when there is one: who has it in the foreground.

use std::os::fd::OwnedFd;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{getpgrp, tcgetpgrp, tcsetpgrp, Pid};

pub struct Terminal {
    fd: OwnedFd,
}

impl Terminal {
    /// The controlling terminal of this process, if it has one.
    pub fn open() -> Option<Terminal> {
        let fd = open(
            "/dev/tty",
            OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        Some(Terminal { fd })
    }

    /// Whether this process's group has the terminal in the foreground.
    pub fn ours_in_foreground(&self) -> bool {
        tcgetpgrp(&self.fd).is_ok_and(|pg| pg == getpgrp())
    }

    /// Puts process group `pgid` in the foreground. Called with SIGTTOU blocked, which lets a
    /// background process do it.
    pub fn hand_to(&self, pgid: Pid) -> bool {
        tcsetpgrp(&self.fd, pgid).is_ok()
    }
}
