//! Whether exits are still on their way to JavaScript, asked when the event loop empties: an
//! idle reaper must let the process end, a busy one must first deliver what it has.

use napi_derive::napi;

use crate::error_code;

#[napi(object)]
pub struct WorkInFlight {
    /// A child of this process has exited and its exit is not recorded yet: it is still to
    /// come. (A zombie left to its owner after its exit was announced does not count.)
    pub zombie: bool,
    /// Exits recorded so far. Read after the look: the engine records an exit before the
    /// zombie can disappear, so an exit whose zombie the look missed is counted here.
    pub exits_recorded: f64,
}

#[napi]
pub fn work_in_flight() -> error_code::Result<WorkInFlight> {
    let reaper = crate::reaper()?;
    let zombie = reaper.exit_pending();
    Ok(WorkInFlight {
        zombie,
        exits_recorded: reaper.exits_recorded() as f64,
    })
}
