//! What the command left behind, and ending it: SIGTERM, then SIGKILL after the grace period.
//!
//! Leftovers are found in `/proc` only when that `/proc` belongs to this process's PID
//! namespace: in `unshare --pid --fork` without `--mount-proc` it is the host's, whose pids mean
//! other processes. PID 1 then signals its whole namespace with `kill(-1, sig)` (which reaches
//! every process of the namespace but the init), and a subreaper that cannot see its
//! descendants waits for them instead.

use std::collections::HashSet;

use subreaper_core::process_tree::{descendants, signal_process};

use crate::report::Action;

/// Whether `/proc` is this PID namespace's: `/proc/self` then names this process's own pid.
pub fn proc_is_ours() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok())
        == Some(std::process::id())
}

/// One process, by pid and start time.
pub type Identity = (i32, u64);

/// How the init can reach what is below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Walk `/proc` for the descendants, signal each by identity.
    Proc,
    /// PID 1 without its own `/proc`: `kill(-1, sig)`.
    Namespace,
    /// Neither: the descendants cannot be found; wait for them.
    None,
}

/// What was signalled, for the report.
#[derive(Default)]
pub struct Signalled {
    pub term: HashSet<Identity>,
    pub kill: HashSet<Identity>,
    /// Everything alive after the command exited, when found by /proc.
    pub leftovers: HashSet<Identity>,
    /// The index of the first exit recorded after `kill(-1, SIGTERM)` / `kill(-1, SIGKILL)`.
    pub term_all_from: Option<usize>,
    pub kill_all_from: Option<usize>,
}

impl Signalled {
    /// The live descendants now, remembered as leftovers.
    pub fn snapshot(&mut self, me: i32) {
        for p in descendants(me).into_iter().filter(|p| !p.zombie) {
            self.leftovers.insert((p.pid, p.start_time));
        }
    }

    /// Sends `signo` to everything below the init; `recorded` is the number of exits so far.
    pub fn signal_all(&mut self, reach: Reach, me: i32, signo: i32, recorded: usize) {
        match reach {
            Reach::Proc => {
                for p in descendants(me).into_iter().filter(|p| !p.zombie) {
                    let id = (p.pid, p.start_time);
                    self.leftovers.insert(id);
                    if matches!(signal_process(p.pid, p.start_time, signo), Ok(true)) {
                        if signo == libc::SIGKILL {
                            self.kill.insert(id);
                        } else {
                            self.term.insert(id);
                        }
                    }
                }
            }
            Reach::Namespace => {
                crate::signals::send(-1, signo);
                let from = if signo == libc::SIGKILL {
                    &mut self.kill_all_from
                } else {
                    &mut self.term_all_from
                };
                from.get_or_insert(recorded);
            }
            Reach::None => {}
        }
    }

    /// What the init did to the process of exit number `index`, which ended by `signal`.
    pub fn action(
        &self,
        index: usize,
        id: Option<Identity>,
        signal: Option<i32>,
    ) -> Option<Action> {
        let by = |set: &HashSet<Identity>, from: Option<usize>| {
            id.is_some_and(|id| set.contains(&id)) || from.is_some_and(|f| index >= f)
        };
        let termed = by(&self.term, self.term_all_from);
        if by(&self.kill, self.kill_all_from) {
            // SIGKILL may reach a process already dying of the SIGTERM it got (the kernel
            // decides a fatal signal's outcome when it is sent): it was terminated then.
            if signal != Some(libc::SIGKILL) && termed {
                return Some(Action::Terminated);
            }
            return Some(Action::Killed);
        }
        termed.then_some(Action::Terminated)
    }
}
