//! What this kernel offers the engine, where that differs between the kernels in use, and a
//! switch that hides a feature so that each fallback is tested on a kernel that has it.
//!
//! | feature | kernels | without it |
//! | --- | --- | --- |
//! | pidfds (`pidfd_open`) | 5.3+, unless a seccomp profile refuses them (`EPERM`) | known children are polled with `waitid(P_PID)` |
//! | a pidfd's hang-up at the reap | 6.9+ | a pidfd whose child exited is polled until it is reaped |
//! | the status a pidfd keeps after the reap (`PIDFD_INFO_EXIT`) | 6.15+ | an exit another waiter reaped unseen is announced with status unknown (or its owner's report) |
//!
//! `SUBREAPER_HIDE` in the environment, read once, lists features to treat as missing, comma
//! separated: `pidfd` (as if `pidfd_open` answered `ENOSYS`), `pidfd-hangup`, `pidfd-exit`.
//! It is for tests and for diagnosing a machine; what it hides behaves as on a kernel without
//! it, and the tests that use it also run on such kernels (docs/compatibility.md).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// A kernel feature the engine can do without.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    Pidfd,
    PidfdHangup,
    PidfdExit,
}

impl Feature {
    const ALL: [Feature; 3] = [Feature::Pidfd, Feature::PidfdHangup, Feature::PidfdExit];

    /// Its name in `SUBREAPER_HIDE`.
    pub fn name(self) -> &'static str {
        match self {
            Feature::Pidfd => "pidfd",
            Feature::PidfdHangup => "pidfd-hangup",
            Feature::PidfdExit => "pidfd-exit",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The features `list` (as `SUBREAPER_HIDE` spells it) names, as a bit set; unknown names
/// are ignored (a diagnostic switch must not stop the engine).
fn parse(list: &str) -> u8 {
    list.split(',')
        .map(str::trim)
        .filter_map(|name| Feature::ALL.into_iter().find(|f| f.name() == name))
        .fold(0, |bits, f| bits | f.bit())
}

fn hidden_set() -> u8 {
    static HIDDEN: OnceLock<u8> = OnceLock::new();
    *HIDDEN.get_or_init(|| {
        std::env::var("SUBREAPER_HIDE")
            .map(|v| parse(&v))
            .unwrap_or(0)
    })
}

/// Whether `SUBREAPER_HIDE` hides `feature`.
pub fn hidden(feature: Feature) -> bool {
    hidden_set() & feature.bit() != 0
}

static HANGUP_SEEN: AtomicBool = AtomicBool::new(false);
static PIDFDS_REFUSED: AtomicBool = AtomicBool::new(false);

/// Notes that a pidfd hung up at its child's reap: this kernel tells reaps, and a pidfd
/// need not be polled for one.
pub(crate) fn note_hangup() {
    HANGUP_SEEN.store(true, Ordering::Relaxed);
}

/// Whether a pidfd's hang-up has been seen here (never while `pidfd-hangup` is hidden).
pub(crate) fn hangups_seen() -> bool {
    HANGUP_SEEN.load(Ordering::Relaxed)
}

/// Notes that `pidfd_open` was refused (`ENOSYS`, `EPERM`): every known child is polled.
pub(crate) fn note_pidfds_refused() {
    PIDFDS_REFUSED.store(true, Ordering::Relaxed);
}

/// Whether `pidfd_open` has been refused here.
pub fn pidfds_refused() -> bool {
    PIDFDS_REFUSED.load(Ordering::Relaxed)
}

/// What the engine knows of this kernel so far, in words (for `reaperStats`, diagnostics).
pub fn describe() -> String {
    let hidden: Vec<&str> = Feature::ALL
        .into_iter()
        .filter(|f| hidden(*f))
        .map(Feature::name)
        .collect();
    let pidfds = if pidfds_refused() { "refused" } else { "used" };
    let hangup = if hangups_seen() {
        "seen"
    } else {
        "not seen (polled)"
    };
    let mut text = format!("pidfds {pidfds}; reap hang-up {hangup}");
    if !hidden.is_empty() {
        text.push_str(&format!("; hidden by SUBREAPER_HIDE: {}", hidden.join(",")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_names_features_and_ignores_the_rest() {
        assert_eq!(parse(""), 0);
        assert_eq!(parse("pidfd"), Feature::Pidfd.bit());
        assert_eq!(
            parse(" pidfd-exit , pidfd-hangup,bogus"),
            Feature::PidfdExit.bit() | Feature::PidfdHangup.bit()
        );
    }
}
