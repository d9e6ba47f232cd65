//! Signal names, and which signals the init passes on to its command.
//!
//! The policy (docs/cli.md says the same):
//! - SIGCHLD is the init's own: it reaps.
//! - Every other catchable signal, standard or real-time, sent to the init by another process
//!   is forwarded to the command (to its process group with `--group`), once.
//! - Terminal signals the kernel sends to a process group (Ctrl-C, Ctrl-\, Ctrl-Z, resize,
//!   hang-up of a session leader's terminal) already reached the command when it shares the
//!   init's process group: they are not sent again.
//! - Signals the kernel raises about the init itself (SIGPIPE when its report cannot be written,
//!   a CPU or file-size limit) and signals the init sends itself are not forwarded.
//! - SIGTSTP, SIGTTIN and SIGTTOU are forwarded, then the init stops itself (not as PID 1) so
//!   that the job control of the shell that started it sees the job stop; SIGCONT continues it
//!   and is forwarded, except after a terminal's Ctrl-Z stopped the whole job: the shell's `fg`
//!   continues the whole job then.

/// `si_code` of a signal the kernel sent (terminal, hang-up, timers, limits).
pub const SI_KERNEL: i32 = 0x80;

/// Signals a terminal sends to its foreground process group.
fn terminal_group_signal(signo: i32) -> bool {
    matches!(
        signo,
        libc::SIGINT
            | libc::SIGQUIT
            | libc::SIGTSTP
            | libc::SIGTTIN
            | libc::SIGTTOU
            | libc::SIGWINCH
    )
}

/// Where a signal came from, and the process groups involved.
pub struct Origin {
    pub signo: i32,
    pub code: i32,
    pub sender: i32,
}

/// The init's situation when a signal arrives.
pub struct Context {
    pub me: i32,
    /// The command shares the init's process group (no `--group`).
    pub same_group: bool,
    /// The init leads its session (a terminal's hang-up signals only the session leader).
    pub session_leader: bool,
}

/// Whether the command should get this signal from the init.
pub fn forward(origin: &Origin, ctx: &Context) -> bool {
    if origin.signo == libc::SIGCHLD {
        return false;
    }
    if origin.code == SI_KERNEL {
        return if terminal_group_signal(origin.signo) {
            // Sent to the foreground group, which holds the init: the command too if it shares it.
            !ctx.same_group
        } else if matches!(origin.signo, libc::SIGHUP | libc::SIGCONT) {
            // A hang-up goes to the session leader alone; when the session leader exits, to
            // the foreground group.
            ctx.session_leader || !ctx.same_group
        } else {
            // About the init itself (limits, timers): not the command's business.
            false
        };
    }
    // Sent by the init itself (SIGPIPE of a write, its own SIGSTOP): not forwarded.
    origin.sender != ctx.me
}

/// Whether this signal stops a job (the init then stops itself too, outside PID 1).
pub fn stops_job(signo: i32) -> bool {
    matches!(signo, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU)
}

/// Whether this signal, once the command has exited, means "stop cleaning up, kill now".
pub fn ends_cleanup(signo: i32) -> bool {
    matches!(signo, libc::SIGTERM | libc::SIGINT | libc::SIGQUIT)
}

const NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// The name of a signal (`SIGTERM`; `SIGRTMIN+3` for real-time ones).
pub fn name(signo: i32) -> String {
    if (1..=31).contains(&signo) && cfg!(target_os = "linux") {
        return NAMES[signo as usize - 1].to_string();
    }
    let rtmin = libc::SIGRTMIN();
    if signo >= rtmin && signo <= libc::SIGRTMAX() {
        return format!("SIGRTMIN+{}", signo - rtmin);
    }
    format!("SIG{signo}")
}

/// The number of a signal given by number (`15`) or name (`SIGTERM`, `TERM`, `SIGRTMIN+2`,
/// `RTMAX-1`); `None` for anything else, or a number that is no signal.
pub fn number(text: &str) -> Option<i32> {
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let valid = |n: i32| ((1..=31).contains(&n) || (rtmin..=rtmax).contains(&n)).then_some(n);
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().and_then(valid);
    }
    let bare = text.strip_prefix("SIG").unwrap_or(text);
    if let Some(i) = NAMES.iter().position(|n| &n[3..] == bare) {
        return Some(i as i32 + 1);
    }
    let offset = |s: &str| {
        s.parse::<i32>()
            .ok()
            .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
    };
    match bare {
        "RTMIN" => Some(rtmin),
        "RTMAX" => Some(rtmax),
        _ => {
            if let Some(n) = bare.strip_prefix("RTMIN+").and_then(offset) {
                valid(rtmin + n)
            } else if let Some(n) = bare.strip_prefix("RTMAX-").and_then(offset) {
                valid(rtmax - n)
            } else {
                None
            }
        }
    }
}

/// Sends `signo` to `pid` (a process group when negative). nix's `kill` takes only the
/// standard signals, so real-time ones go through libc.
pub fn send(pid: i32, signo: i32) -> bool {
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid, signo) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(name(libc::SIGSYS), "SIGSYS");
        assert_eq!(name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        assert_eq!(number("SIGTERM"), Some(libc::SIGTERM));
        assert_eq!(number("QUIT"), Some(libc::SIGQUIT));
        assert_eq!(number("15"), Some(15));
        assert_eq!(number("SIGRTMIN+2"), Some(libc::SIGRTMIN() + 2));
        assert_eq!(number("RTMAX-1"), Some(libc::SIGRTMAX() - 1));
        for bad in [
            "", "0", "32", "65", "sigterm", "SIG", "TERMX", "RTMIN+99", "RTMIN+-1", "-1",
        ] {
            assert_eq!(number(bad), None, "{bad}");
        }
    }

    #[test]
    fn terminal_signals_are_not_doubled() {
        let same = Context {
            me: 10,
            same_group: true,
            session_leader: false,
        };
        let own = Context {
            same_group: false,
            ..same
        };
        let kernel = |signo| Origin {
            signo,
            code: SI_KERNEL,
            sender: 0,
        };
        assert!(!forward(&kernel(libc::SIGINT), &same));
        assert!(forward(&kernel(libc::SIGINT), &own));
        assert!(!forward(&kernel(libc::SIGWINCH), &same));
        assert!(!forward(&kernel(libc::SIGXCPU), &own));
        let leader = Context {
            session_leader: true,
            ..same
        };
        assert!(forward(&kernel(libc::SIGHUP), &leader));
        assert!(!forward(&kernel(libc::SIGHUP), &same));
        let user = |signo, sender| Origin {
            signo,
            code: 0,
            sender,
        };
        assert!(forward(&user(libc::SIGINT, 5), &same));
        assert!(!forward(&user(libc::SIGPIPE, 10), &same));
        assert!(!forward(&user(libc::SIGCHLD, 5), &same));
    }
}
