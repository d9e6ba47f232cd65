//! subreaper's engine: reaps every exited child of the process on a thread of its own,
//! broadcasts each exit to bounded subscribers, resolves waits, and leaves pids that another
//! waiter owns to that waiter while still announcing their exits.
//!
//! - [`reaper`]: where exits are reaped, and who owns which pid;
//! - [`broadcast`]: where they are broadcast;
//! - [`wait_source`]: the kernel calls behind a trait (mocked in tests);
//! - [`process_role`]: subreaper mode and PID 1.
#![deny(clippy::all)]

pub mod broadcast;
pub mod exit;
pub mod process_role;
pub mod process_tree;
pub mod reaper;
mod recent;
pub mod wait_source;

pub use broadcast::{Notify, RecvError, SubscribeOptions, Subscription};
pub use exit::{Exit, ReapedBy, Rusage, Termination, EXIT_SIGNAL_OFFSET};
pub use process_role::{adopts_orphans, is_init, is_subreaper, set_subreaper, RoleError};
pub use reaper::{Config, ExitReceiver, OwnerId, Reaper, WaitError, WaitOutcome};
pub use wait_source::{ChildState, Peek, ProcInfo, SystemWait, WaitSource};
