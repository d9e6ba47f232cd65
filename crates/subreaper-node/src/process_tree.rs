//! Acting on the process tree below this process: `monitor.kill` signals a process by pid and
//! start time, so that a recycled pid is never hit.

use napi_derive::napi;
use subreaper_core::process_tree;

use crate::error_code::{self, ErrorCode};

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
/// this exact). Returns false when that process is gone. Throws `ERR_SUBREAPER_OS` when the
/// system refuses the signal.
#[napi]
pub fn signal_process(pid: i32, start_time: f64, signal: i32) -> error_code::Result<bool> {
    process_tree::signal_process(pid, start_time as u64, signal).map_err(|e| {
        error_code::error(
            ErrorCode::Os,
            format!("the system refused signal {signal} to pid {pid}: {e}"),
        )
    })
}

/// Start time of `pid` in clock ticks since boot, if it exists.
#[napi]
pub fn process_start_time(pid: i32) -> Option<f64> {
    process_tree::start_time(pid).map(|t| t as f64)
}
