//! Subreaper mode and PID 1: the two ways a process inherits orphaned descendants.

use std::io;

/// Why subreaper mode is not available.
#[derive(Debug)]
pub enum RoleError {
    /// The platform has no child-subreaper attribute (only Linux has `PR_SET_CHILD_SUBREAPER`).
    Unsupported(&'static str),
    Os(io::Error),
}

impl std::fmt::Display for RoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RoleError::Unsupported(os) => write!(
                f,
                "subreaper mode is not supported on {os}: only Linux has PR_SET_CHILD_SUBREAPER"
            ),
            RoleError::Os(e) => write!(f, "prctl(PR_SET_CHILD_SUBREAPER) failed: {e}"),
        }
    }
}

impl std::error::Error for RoleError {}

/// Makes this process the reaper of its orphaned descendants (Linux `PR_SET_CHILD_SUBREAPER`).
#[cfg(target_os = "linux")]
pub fn set_subreaper(on: bool) -> Result<(), RoleError> {
    nix::sys::prctl::set_child_subreaper(on).map_err(|e| RoleError::Os(e.into()))
}

/// Whether this process is a child subreaper.
#[cfg(target_os = "linux")]
pub fn is_subreaper() -> Result<bool, RoleError> {
    nix::sys::prctl::get_child_subreaper().map_err(|e| RoleError::Os(e.into()))
}

#[cfg(not(target_os = "linux"))]
pub fn set_subreaper(_on: bool) -> Result<(), RoleError> {
    Err(RoleError::Unsupported(std::env::consts::OS))
}

#[cfg(not(target_os = "linux"))]
pub fn is_subreaper() -> Result<bool, RoleError> {
    Err(RoleError::Unsupported(std::env::consts::OS))
}

/// Whether this process is PID 1 of its PID namespace: the init that inherits every orphan,
/// and that gets no default action for signals it does not handle.
pub fn is_init() -> bool {
    std::process::id() == 1
}

/// Whether orphans of this process's descendants come back to it (PID 1 or subreaper).
pub fn adopts_orphans() -> bool {
    is_init() || matches!(is_subreaper(), Ok(true))
}
