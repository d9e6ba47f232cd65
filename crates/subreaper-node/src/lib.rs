//! N-API binding of the subreaper engine. Thin on purpose: the engine lives in
//! `subreaper-core`, the user-facing API in the TypeScript package `subreaper`.
//!
//! - [`exit_record`]: the engine's exit as a JavaScript object;
//! - [`delivery`]: where JavaScript is called back (subscriptions and waits);
//! - [`environment`]: one entry per Node environment (main thread or worker), cleaned up with it;
//! - [`single_reaper`]: one reaper per process, however many copies of the addon are loaded.
#![deny(clippy::all)]

pub mod command;
pub mod delivery;
pub mod environment;
pub mod exit_record;
mod single_reaper;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use subreaper_core::{Reaper, Termination};

pub use delivery::{wait, NativeSubscription, WaitResult};
pub use exit_record::ExitRecord;

fn reaper() -> Result<&'static Reaper> {
    single_reaper::reaper()
}

/// Starts the process-wide reaper (idempotent) and registers this environment.
/// Returns the environment's owner id.
#[napi]
pub fn attach(env: Env) -> Result<u32> {
    reaper()?;
    environment::attach(&env)
}

/// Registers `pid` as reaped by this environment's libuv (a `child_process` child).
/// Returns its start time (for `signalProcess`), or null if it is already gone.
#[napi]
pub fn own(pid: i32, owner: u32) -> Result<Option<f64>> {
    Ok(reaper()?.own(pid, owner as u64).map(|t| t as f64))
}

/// The owner reaped `pid`: `code` when it exited, else `signal` (a number).
#[napi]
pub fn report(pid: i32, code: Option<i32>, signal: Option<i32>) -> Result<()> {
    let termination = match (code, signal) {
        (_, Some(signal)) if signal > 0 => Termination::Signaled {
            signal,
            core_dumped: false,
        },
        (Some(code), _) => Termination::Exited(code & 0xff),
        _ => {
            return Err(Error::new(
                Status::InvalidArg,
                "report needs an exit code or a signal number".to_string(),
            ))
        }
    };
    reaper()?.report(pid, termination);
    Ok(())
}

#[napi]
pub fn disown(pid: i32) -> Result<()> {
    reaper()?.disown(pid);
    Ok(())
}

/// Holds reaping while a synchronous spawn runs (its pid is unknown until it returns).
#[napi]
pub fn pause(owner: Option<u32>) -> Result<()> {
    let reaper = reaper()?;
    if let Some(owner) = owner {
        environment::note_pause(owner, true);
    }
    reaper.pause();
    Ok(())
}

#[napi]
pub fn resume(owner: Option<u32>) -> Result<()> {
    let reaper = reaper()?;
    if let Some(owner) = owner {
        environment::note_pause(owner, false);
    }
    reaper.resume();
    Ok(())
}

/// A child may have appeared (SIGCHLD seen, or a spawn): look now.
#[napi]
pub fn kick() -> Result<()> {
    reaper()?.kick();
    Ok(())
}

/// Reaps every exited child now, on a thread of libuv's pool (never on the event loop: a
/// sweep of thousands of zombies takes a while); the Promise resolves with those exits.
#[napi(ts_return_type = "Promise<Array<ExitRecord>>")]
pub fn sweep() -> Result<AsyncTask<Sweep>> {
    reaper()?;
    Ok(AsyncTask::new(Sweep))
}

/// The work of [`sweep`]: reaps off the event loop, builds the records back on it.
pub struct Sweep;

impl Task for Sweep {
    type Output = Vec<std::sync::Arc<subreaper_core::Exit>>;
    type JsValue = Vec<ExitRecord>;

    fn compute(&mut self) -> Result<Self::Output> {
        Ok(reaper()?.sweep())
    }

    fn resolve(&mut self, _env: Env, exits: Self::Output) -> Result<Self::JsValue> {
        Ok(exits.iter().map(|e| ExitRecord::from(e.as_ref())).collect())
    }
}

#[napi]
pub fn last_exit(pid: i32) -> Result<Option<ExitRecord>> {
    Ok(reaper()?
        .last_exit(pid)
        .map(|e| ExitRecord::from(e.as_ref())))
}

#[napi]
pub fn cancel_wait(pid: i32, id: f64) -> Result<bool> {
    Ok(reaper()?.cancel_wait(pid, id as u64))
}

#[napi(object)]
pub struct ReaperStats {
    pub exits_recorded: f64,
    pub subscribers: u32,
    pub owned: u32,
    pub pending_waits: u32,
    pub recent: u32,
    /// Pauses held (synchronous spawns in flight); nothing is reaped while this is not 0.
    pub paused: u32,
}

#[napi]
pub fn stats() -> Result<ReaperStats> {
    let r = reaper()?;
    Ok(ReaperStats {
        exits_recorded: r.exits_recorded() as f64,
        subscribers: r.subscriber_count() as u32,
        owned: r.owned_count() as u32,
        pending_waits: r.pending_waits() as u32,
        recent: r.recent_len() as u32,
        paused: r.paused_count(),
    })
}

/// Throws with code `ERR_SUBREAPER_UNSUPPORTED` where the platform has no subreaper mode.
#[napi]
pub fn set_subreaper(on: bool) -> Result<()> {
    subreaper_core::set_subreaper(on).map_err(role_error)
}

#[napi]
pub fn is_subreaper() -> Result<bool> {
    subreaper_core::is_subreaper().map_err(role_error)
}

#[napi]
pub fn is_init() -> bool {
    subreaper_core::is_init()
}

fn role_error(e: subreaper_core::RoleError) -> Error {
    let status = match e {
        subreaper_core::RoleError::Unsupported(_) => "ERR_SUBREAPER_UNSUPPORTED",
        subreaper_core::RoleError::Os(_) => "ERR_SUBREAPER_OS",
    };
    Error::new(Status::GenericFailure, format!("{status}: {e}"))
}
