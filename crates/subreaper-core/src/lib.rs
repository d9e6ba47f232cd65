//! subreaper's engine: watches every child of the process, announces each exit once to bounded
//! subscribers and pending waits, and reaps only the children no other waiter in the process
//! will take (its own, and in subreaper or PID 1 mode the orphans it adopts).
//!
//! Where to look:
//! - [`ownership`]: who owns which child (the rules);
//! - `drain`: where exits are reaped (the reaper thread); `prefetch`: zombies' `/proc`
//!   entries read ahead of it during a burst;
//! - `exit_watch`: where the exits of known children are seen (pidfds); `exit_hint`: how
//!   the drain keeps out of `waitid` while every child's owner reports its exit;
//! - `fork_hook`: how every `fork()` in the process is registered as it happens;
//! - `engine_thread`: how the engine's threads are started (never preempting the loop);
//! - [`broadcast`]: where exits are broadcast (bounded queues, lag);
//! - [`reaper`]: the handle users hold (subscribe, wait, own, sweep, stats);
//! - [`wait_source`]: the kernel calls behind a trait (mocked in tests); `syscall`: the
//!   drain's own, made without the C library's cancellation points;
//! - [`procfs`], [`pidfd`]: what `/proc` says, and pidfds; [`taskstats`]: a zombie's name and
//!   start time without `/proc`;
//! - [`kernel_support`]: what the kernel offers (pidfds, their hang-up and exit status) and
//!   the switch that hides a feature for tests;
//! - [`process_role`]: subreaper mode and PID 1; [`process_tree`]: descendants, safe signals.
#![deny(clippy::all)]

pub mod broadcast;
mod drain;
mod engine_thread;
pub mod exit;
mod exit_hint;
mod exit_watch;
mod fork_hook;
pub mod kernel_support;
pub mod ownership;
mod pid_map;
pub mod pidfd;
mod prefetch;
pub mod process_role;
pub mod process_tree;
pub mod procfs;
pub mod reaper;
mod recent;
mod syscall;
pub mod taskstats;
pub mod wait_source;
mod waits;

pub use broadcast::{Notify, RecvError, SubscribeOptions, Subscription};
pub use exit::{Exit, ReapedBy, Rusage, Termination, EXIT_SIGNAL_OFFSET};
pub use ownership::{Claim, OwnerId, Policy};
pub use process_role::{adopts_orphans, is_init, is_subreaper, set_subreaper, RoleError};
pub use reaper::{Activity, Config, ExitReceiver, Reaper, Stats, WaitError, WaitOutcome};
pub use wait_source::{ChildState, Peek, ProcInfo, SystemWait, WaitSource};
