//! N-API binding of the subreaper engine. Thin on purpose: the engine lives in
//! `subreaper-core`, the user-facing API in the TypeScript package `subreaper`.
//!
//! - [`exit_record`]: the one encoding of exits for JavaScript;
//! - [`error_code`]: the `code` of every error thrown to JavaScript;
//! - [`work_in_flight`]: whether exits are still on their way (for the end of the event loop);
//! - [`delivery`]: where JavaScript is called back (subscriptions and waits);
//! - [`environment`]: one entry per Node environment (main thread or worker), cleaned up with it;
//! - [`single_reaper`]: one reaper per process, however many copies of the addon are loaded.
#![deny(clippy::all)]

pub mod delivery;
pub mod environment;
pub mod error_code;
mod exit_hint;
pub mod exit_record;
pub mod process_tree;
mod single_reaper;
pub mod work_in_flight;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use subreaper_core::{Reaper, Termination};

pub use delivery::{wait, NativeSubscription, WaitResult};
use error_code::ErrorCode;
pub use exit_record::ExitBatch;

fn reaper() -> error_code::Result<&'static Reaper> {
    single_reaper::reaper()
}

/// Starts the process-wide reaper (idempotent) and registers this environment.
/// Returns the environment's owner id. Throws `ERR_SUBREAPER_DUPLICATE` in a second copy of
/// the addon.
#[napi]
pub fn attach(env: Env) -> error_code::Result<u32> {
    single_reaper::reaper()?;
    environment::attach(&env).map_err(error_code::from_napi)
}

/// Registers `pid` as reaped by this environment's libuv (a `child_process` child), whose
/// exit the process handle's hook reports. Returns its start time (for `signalProcess`), or
/// null if it is already gone.
#[napi]
pub fn own(pid: i32, owner: u32) -> error_code::Result<Option<f64>> {
    Ok(reaper()?.own_reporting(pid, owner as u64).map(|t| t as f64))
}

/// Declares a child this environment's code waits for itself (made outside `child_process`):
/// the engine announces its exit and never reaps it. False when `pid` is not a child.
#[napi]
pub fn declare_child(pid: i32, owner: u32) -> error_code::Result<bool> {
    let reaper = reaper()?;
    if !reaper.is_child(pid) {
        return Ok(false);
    }
    reaper.own(pid, owner as u64);
    Ok(true)
}

/// The owner reaped `pid` (the process that started at `start_time`, clock ticks since boot,
/// when known): `code` when it exited, else `signal` (a number). `owner`: the environment
/// reporting, which drains its callback subscriptions right after (see `subscribe`).
#[napi]
pub fn report(
    pid: i32,
    code: Option<i32>,
    signal: Option<i32>,
    start_time: Option<f64>,
    owner: Option<u32>,
) -> error_code::Result<()> {
    let termination = match (code, signal) {
        (_, Some(signal)) if signal > 0 => Termination::Signaled {
            signal,
            core_dumped: false,
        },
        (Some(code), _) => Termination::Exited(code & 0xff),
        _ => {
            return Err(error_code::native(
                "report needs an exit code or a signal number",
            ))
        }
    };
    let reaper = reaper()?;
    delivery::reporting_as(owner, || {
        reaper.report_process(pid, start_time.map(|t| t as u64), termination)
    });
    Ok(())
}

#[napi]
pub fn disown(pid: i32) -> error_code::Result<()> {
    reaper()?.disown(pid);
    Ok(())
}

/// Marks a spawn in flight on this thread (see `Reaper::pause`): its new children are
/// attributed once it returns. A torn-down environment's unfinished spawn is released with it.
#[napi]
pub fn pause() -> error_code::Result<()> {
    reaper()?.pause();
    Ok(())
}

#[napi]
pub fn resume() -> error_code::Result<()> {
    reaper()?.resume();
    Ok(())
}

/// A child may have appeared (SIGCHLD seen, or a spawn): look now.
#[napi]
pub fn kick() -> error_code::Result<()> {
    reaper()?.kick();
    Ok(())
}

/// Reaps every exited child now, on a thread of libuv's pool (never on the event loop: a
/// sweep of thousands of zombies takes a while); the Promise resolves with those exits.
#[napi(ts_return_type = "Promise<ExitBatch>")]
pub fn sweep() -> error_code::Result<AsyncTask<Sweep>> {
    Ok(AsyncTask::new(Sweep(reaper()?)))
}

/// The work of [`sweep`]: reaps off the event loop, encodes the exits back on it.
pub struct Sweep(&'static Reaper);

impl Task for Sweep {
    type Output = Vec<std::sync::Arc<subreaper_core::Exit>>;
    type JsValue = ExitBatch;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(self.0.sweep())
    }

    fn resolve(&mut self, _env: Env, exits: Self::Output) -> Result<Self::JsValue> {
        Ok(ExitBatch::of(exits.iter().map(AsRef::as_ref)))
    }
}

#[napi]
pub fn last_exit(pid: i32) -> error_code::Result<Option<ExitBatch>> {
    Ok(reaper()?
        .last_exit(pid)
        .map(|e| ExitBatch::of([e.as_ref()])))
}

#[napi]
pub fn cancel_wait(pid: i32, id: f64) -> error_code::Result<bool> {
    Ok(reaper()?.cancel_wait(pid, id as u64))
}

#[napi(object)]
pub struct ReaperStats {
    pub exits_recorded: f64,
    pub subscribers: u32,
    /// Children declared by an owner (a `child_process` child, a `declareChild` pid).
    pub owned: u32,
    /// Children the engine knows of, whoever owns them.
    pub known: u32,
    /// Known children watched through a pidfd.
    pub watched: u32,
    /// Zombies whose exit was announced, left to their owner to reap.
    pub left_to_owner: u32,
    pub pending_waits: u32,
    pub recent: u32,
    /// Spawns in flight (see `pause`).
    pub paused: u32,
    /// What the reaper thread is doing: "waiting for an exit", "no children", "draining",
    /// "zombie <pid> left to its owner".
    pub activity: String,
    /// For how long, in milliseconds.
    pub activity_ms: f64,
    /// Whether orphans come to this process (subreaper or PID 1).
    pub adopts_orphans: bool,
    /// Where the names and start times of exited children come from: "taskstats" (the
    /// kernel's per-task accounting, where it serves this process) or "proc".
    pub names_from: String,
    /// What the engine has learnt of the kernel: whether pidfds are used or refused, whether
    /// a reap's hang-up has been seen (else reaps are polled), and what `SUBREAPER_HIDE` hides.
    pub kernel: String,
    pub orphan_grace_ms: f64,
    pub leftover_grace_ms: f64,
    /// How long a `child_process` child's zombie waits for libuv's report before the engine
    /// announces it from the zombie.
    pub report_grace_ms: f64,
}

/// What the engine holds for `pid`, in words (see `Reaper::describe_child`), or null.
#[napi]
pub fn describe_child(pid: i32) -> error_code::Result<Option<String>> {
    Ok(reaper()?.describe_child(pid))
}

#[napi]
pub fn stats() -> error_code::Result<ReaperStats> {
    let s = reaper()?.stats();
    Ok(ReaperStats {
        exits_recorded: s.exits_recorded as f64,
        subscribers: s.subscribers as u32,
        owned: s.declared as u32,
        known: s.known as u32,
        watched: s.watched as u32,
        left_to_owner: s.left_to_owner as u32,
        pending_waits: s.pending_waits as u32,
        recent: s.recent as u32,
        paused: s.paused,
        activity: s.activity.describe(),
        activity_ms: s.activity_since.as_secs_f64() * 1000.0,
        adopts_orphans: s.adopts_orphans,
        names_from: if s.names_from_taskstats {
            "taskstats"
        } else {
            "proc"
        }
        .to_string(),
        kernel: subreaper_core::kernel_support::describe(),
        orphan_grace_ms: s.orphan_grace.as_secs_f64() * 1000.0,
        leftover_grace_ms: s.leftover_grace.as_secs_f64() * 1000.0,
        report_grace_ms: s.report_grace.as_secs_f64() * 1000.0,
    })
}

/// Sets how long a `child_process` child's zombie waits for libuv's report before the engine
/// announces it from the zombie, in milliseconds.
#[napi]
pub fn set_report_grace(ms: f64) -> error_code::Result<()> {
    reaper()?.set_report_grace(std::time::Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    Ok(())
}

/// Sets how long unclaimed zombies (orphans) and leftovers (children of an ended thread or a
/// torn-down environment) are left before the engine reaps them, in milliseconds.
#[napi]
pub fn set_graces(orphan_ms: f64, leftover_ms: f64) -> error_code::Result<()> {
    let ms = |v: f64| std::time::Duration::from_secs_f64(v / 1000.0);
    reaper()?.set_graces(ms(orphan_ms), ms(leftover_ms));
    Ok(())
}

/// Throws with code `ERR_SUBREAPER_UNSUPPORTED` where the platform has no subreaper mode.
#[napi]
pub fn set_subreaper(on: bool) -> error_code::Result<()> {
    subreaper_core::set_subreaper(on).map_err(role_error)
}

#[napi]
pub fn is_subreaper() -> error_code::Result<bool> {
    subreaper_core::is_subreaper().map_err(role_error)
}

#[napi]
pub fn is_init() -> bool {
    subreaper_core::is_init()
}

fn role_error(e: subreaper_core::RoleError) -> error_code::Error {
    let code = match e {
        subreaper_core::RoleError::Unsupported(_) => ErrorCode::Unsupported,
        subreaper_core::RoleError::Os(_) => ErrorCode::Os,
    };
    error_code::error(code, e)
}
