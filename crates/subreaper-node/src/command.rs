//! Running a command for the CLI, and acting on the process tree below this process.
//!
//! The CLI starts its command here rather than through `child_process`: the child inherits the
//! terminal directly, can get a process group of its own without a new session, and is reaped
//! by the engine itself, so its exit carries full resource usage.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use subreaper_core::process_tree;

/// Spawns `file` with `args`, inheriting stdio, cwd and environment. With `new_group` the
/// child leads a process group of its own. Errors carry the errno name (`ENOENT`, `EACCES`)
/// in `code`.
#[napi]
pub fn spawn_command(file: String, args: Vec<String>, new_group: bool) -> Result<u32> {
    let reaper = crate::reaper()?;
    let mut command = Command::new(&file);
    command.args(&args);
    // Node marks its own stdio close-on-exec, so "inherit" would leave the child without
    // them: hand over duplicates, which the spawn moves into place as 0, 1 and 2.
    command
        .stdin(inherited(0))
        .stdout(inherited(1))
        .stderr(inherited(2));
    if new_group {
        command.process_group(0);
    }
    match command.spawn() {
        Ok(child) => {
            let pid = child.id();
            // The engine reaps it; dropping the handle does not wait.
            drop(child);
            reaper.kick();
            Ok(pid)
        }
        Err(e) => {
            let code = match e.raw_os_error() {
                Some(libc::ENOENT) => "ENOENT",
                Some(libc::EACCES) => "EACCES",
                Some(libc::ENOEXEC) => "ENOEXEC",
                Some(libc::ENOTDIR) => "ENOTDIR",
                Some(libc::EISDIR) => "EISDIR",
                Some(libc::E2BIG) => "E2BIG",
                _ => "EIO",
            };
            Err(Error::new(
                Status::GenericFailure,
                format!("{code}: cannot run {file}: {e}"),
            ))
        }
    }
}

fn inherited(fd: i32) -> Stdio {
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return Stdio::null();
    }
    Stdio::from(unsafe { OwnedFd::from_raw_fd(dup) })
}

#[napi(object)]
pub struct ProcessEntryRecord {
    pub pid: i32,
    pub ppid: i32,
    pub start_time: f64,
    pub comm: String,
    pub zombie: bool,
}

/// Every process below `root` (this process when omitted), parents first.
#[napi]
pub fn descendants(root: Option<i32>) -> Vec<ProcessEntryRecord> {
    let root = root.unwrap_or(std::process::id() as i32);
    process_tree::descendants(root)
        .into_iter()
        .map(|p| ProcessEntryRecord {
            pid: p.pid,
            ppid: p.ppid,
            start_time: p.start_time as f64,
            comm: p.comm,
            zombie: p.zombie,
        })
        .collect()
}

/// Signals `pid` only if it is still the process that started at `start_time` (a pidfd makes
/// this exact). Returns false when that process is gone.
#[napi]
pub fn signal_process(pid: i32, start_time: f64, signal: i32) -> Result<bool> {
    process_tree::signal_process(pid, start_time as u64, signal)
        .map_err(|e| Error::new(Status::GenericFailure, format!("kill({pid}): {e}")))
}

/// Signals every process of group `pgid`.
#[napi]
pub fn signal_group(pgid: i32, signal: i32) -> Result<bool> {
    process_tree::signal_group(pgid, signal)
        .map_err(|e| Error::new(Status::GenericFailure, format!("kill(-{pgid}): {e}")))
}

/// Start time of `pid` in clock ticks since boot, if it exists.
#[napi]
pub fn process_start_time(pid: i32) -> Option<f64> {
    process_tree::start_time(pid).map(|t| t as f64)
}
