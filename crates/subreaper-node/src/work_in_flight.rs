//! Whether exits are still on their way to JavaScript, asked when the event loop empties: an
//! idle reaper must let the process end, a busy one must first deliver what it has.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use subreaper_core::{Peek, SystemWait, WaitSource};

#[napi(object)]
pub struct WorkInFlight {
    /// A child of this process has exited and not been reaped yet (by the engine, or by its
    /// owner): its exit is still to come.
    pub zombie: bool,
    /// Exits recorded so far. Read after the peek: the engine reaps a zombie and records its
    /// exit under one lock, so an exit whose zombie the peek missed is counted here.
    pub exits_recorded: f64,
}

#[napi]
pub fn work_in_flight() -> Result<WorkInFlight> {
    let reaper = crate::reaper()?;
    let zombie = matches!(SystemWait.peek(false), Ok(Peek::Exited { .. }));
    Ok(WorkInFlight {
        zombie,
        exits_recorded: reaper.exits_recorded() as f64,
    })
}
