//! Where JavaScript is called back. The engine's threads never call JavaScript directly: they
//! queue a call on a ThreadsafeFunction, which Node runs on the environment's own thread.
//!
//! Subscriptions are pull-based: the engine's delivery thread only signals "readable" when a
//! subscriber's queue goes from empty to non-empty; JavaScript then drains as many exits as it
//! wants in one call (a batch). An async iterator that is not being read therefore fills its
//! bounded queue and lags, exactly as a slow Rust subscriber would.
//!
//! All ThreadsafeFunctions here are weak: an idle subscription does not keep the event loop
//! alive. The TypeScript layer holds the loop open while a wait or an iterator read is pending.

use std::cell::Cell;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use subreaper_core::{Exit, RecvError, SubscribeOptions, Subscription, WaitError, WaitOutcome};

use crate::environment;
use crate::error_code::{self, ErrorCode};
use crate::exit_record::{self, ExitBatch, ExitField};

thread_local! {
    /// The environment whose `report` runs on this thread now. Its callback subscriptions are
    /// drained by JavaScript as soon as the report returns (the package's `onexit` hook), so
    /// the exit it offers them needs no "readable" call: none is queued, and the event loop
    /// is spared a turn that would find nothing to read.
    static REPORTING: Cell<Option<u32>> = const { Cell::new(None) };
}

/// Runs `report` as environment `owner`'s (see `REPORTING`).
pub(crate) fn reporting_as<T>(owner: Option<u32>, report: impl FnOnce() -> T) -> T {
    struct Reset(Option<u32>);
    impl Drop for Reset {
        fn drop(&mut self) {
            REPORTING.with(|r| r.set(self.0));
        }
    }
    let _reset = Reset(REPORTING.with(|r| r.replace(owner)));
    report()
}

#[napi]
pub struct NativeSubscription {
    inner: Option<Arc<Subscription>>,
}

#[napi(object)]
pub struct DrainResult {
    pub exits: ExitBatch,
    /// Set once, when the subscriber was closed for lagging: the number of exits it missed.
    pub lagged_missed: Option<f64>,
    /// No more exits will come (unsubscribed or lagged).
    pub closed: bool,
}

/// What one drain of a subscription took.
struct Taken {
    exits: Vec<Arc<Exit>>,
    /// Set once, when the subscriber was closed for lagging: the number of exits it missed.
    lagged_missed: Option<u64>,
    /// No more exits will come (unsubscribed or lagged).
    closed: bool,
}

impl NativeSubscription {
    /// Takes up to `max` queued exits without waiting.
    fn take(&self, max: usize) -> Taken {
        let mut taken = Taken {
            exits: Vec::new(),
            lagged_missed: None,
            closed: false,
        };
        let Some(sub) = &self.inner else {
            taken.closed = true;
            return taken;
        };
        while taken.exits.len() < max {
            match sub.try_recv() {
                Ok(Some(exit)) => taken.exits.push(exit),
                Ok(None) => break,
                Err(RecvError::Lagged { missed }) => {
                    taken.lagged_missed = Some(missed);
                    taken.closed = true;
                    break;
                }
                Err(RecvError::Closed) => {
                    taken.closed = true;
                    break;
                }
            }
        }
        taken
    }
}

#[napi]
impl NativeSubscription {
    /// Takes up to `max` queued exits without waiting.
    #[napi]
    pub fn drain(&self, max: u32) -> DrainResult {
        let taken = self.take(max as usize);
        DrainResult {
            exits: ExitBatch::of(taken.exits.iter().map(|e| &**e)),
            lagged_missed: taken.lagged_missed.map(|m| m as f64),
            closed: taken.closed,
        }
    }

    /// Like `drain`, into `buffer`, as many exits as fit: `buffer[0]` gets their number,
    /// `buffer[1]` 1 once no more exits will come, `buffer[2]` the number of exits missed when
    /// the subscriber was closed for lagging (NaN otherwise), then the exits as `ExitBatch`
    /// lays them out. Returns their command names (see `exit_record::fill`).
    #[napi]
    pub fn drain_into(&self, mut buffer: Float64Array) -> error_code::Result<String> {
        // SAFETY: JavaScript is not running while this call runs on its thread, and the slice
        // does not outlive the call.
        let buffer = unsafe { buffer.as_mut() };
        let capacity =
            buffer.len().saturating_sub(exit_record::BUFFER_HEADER) / ExitField::Count as usize;
        if capacity == 0 {
            return Err(error_code::native(
                "drainInto: the buffer has no room for one exit",
            ));
        }
        let taken = self.take(capacity);
        buffer[0] = taken.exits.len() as f64;
        buffer[1] = f64::from(u8::from(taken.closed));
        buffer[2] = taken.lagged_missed.map_or(f64::NAN, |m| m as f64);
        Ok(exit_record::fill(taken.exits.iter().map(|e| &**e), buffer))
    }

    /// Exits queued and not yet drained.
    #[napi(getter)]
    pub fn pending(&self) -> u32 {
        self.inner.as_ref().map_or(0, |s| s.len() as u32)
    }

    #[napi]
    pub fn unsubscribe(&mut self) {
        if let Some(sub) = self.inner.take() {
            sub.unsubscribe();
        }
    }
}

/// Subscribes this environment to every exit. `on_readable` is called (with no arguments)
/// when exits are waiting to be drained, or when the subscription closes. With
/// `drained_on_report`, an exit this environment's own report offers is not signalled: the
/// caller drains the subscription right after every `report` it makes.
#[napi]
pub fn subscribe(
    owner: u32,
    on_readable: Function<(), ()>,
    buffer_size: u32,
    lag_timeout_ms: f64,
    max_overflow: u32,
    drained_on_report: Option<bool>,
) -> error_code::Result<NativeSubscription> {
    let drained_on_report = drained_on_report.unwrap_or(false);
    let reaper = crate::reaper()?;
    // Runs on this environment's thread just before `on_readable`: from then on the subscriber
    // can read, and its lag deadline runs (not while its call waits for a busy event loop).
    let called: Arc<OnceLock<Weak<Subscription>>> = Arc::new(OnceLock::new());
    let on_called = called.clone();
    let tsfn = on_readable
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(move |_ctx| {
            if let Some(sub) = on_called.get().and_then(Weak::upgrade) {
                sub.reader_called();
            }
            Ok(())
        })
        .map_err(error_code::from_napi)?;
    let options = SubscribeOptions {
        buffer_size: buffer_size as usize,
        lag_timeout: Duration::from_secs_f64(lag_timeout_ms.max(0.0) / 1000.0),
        max_overflow: max_overflow as usize,
        notify: Some(Arc::new(move || {
            if drained_on_report && REPORTING.with(Cell::get) == Some(owner) {
                return;
            }
            // Non-blocking: the delivery thread never waits for JavaScript. A queue already
            // holding a call is enough, since each call drains everything readable.
            tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })),
    };
    let sub = Arc::new(reaper.subscribe(options));
    let _ = called.set(Arc::downgrade(&sub));
    environment::track_subscription(owner, &sub);
    Ok(NativeSubscription { inner: Some(sub) })
}

#[napi(object)]
pub struct WaitResult {
    /// The child had already exited (a batch of one exit).
    pub exit: Option<ExitBatch>,
    /// The wait is pending: `on_exit` will be called; cancel with this id.
    pub wait_id: Option<f64>,
}

/// Waits for `pid`: answers at once when the exit is known, else calls `on_exit(exit)` later
/// (with a batch of one exit). Throws `ERR_SUBREAPER_NOT_A_CHILD` for a pid that is not a child
/// of this process and whose exit is not known.
#[napi]
pub fn wait(pid: i32, on_exit: Function<ExitBatch, ()>) -> error_code::Result<WaitResult> {
    let reaper = crate::reaper()?;
    let tsfn = on_exit
        .build_threadsafe_function::<Arc<Exit>>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(|ctx| Ok(ExitBatch::of([ctx.value.as_ref()])))
        .map_err(error_code::from_napi)?;
    let outcome = reaper.wait_with(pid, move |exit| {
        tsfn.call(exit, ThreadsafeFunctionCallMode::NonBlocking);
    });
    match outcome {
        Ok(WaitOutcome::Ready(exit)) => Ok(WaitResult {
            exit: Some(ExitBatch::of([exit.as_ref()])),
            wait_id: None,
        }),
        Ok(WaitOutcome::Pending(id)) => Ok(WaitResult {
            exit: None,
            wait_id: Some(id as f64),
        }),
        Err(e @ WaitError::NotAChild(_)) => Err(error_code::error(ErrorCode::NotAChild, e)),
        // Only the blocking `Reaper::wait` times out; the package times its waits itself.
        Err(e @ WaitError::TimedOut(_)) => Err(error_code::native(e)),
    }
}
