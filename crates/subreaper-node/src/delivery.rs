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

use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use subreaper_core::{RecvError, SubscribeOptions, Subscription, WaitError, WaitOutcome};

use crate::environment;
use crate::exit_record::ExitRecord;

#[napi]
pub struct NativeSubscription {
    inner: Option<Arc<Subscription>>,
}

#[napi(object)]
pub struct DrainResult {
    pub exits: Vec<ExitRecord>,
    /// Set once, when the subscriber was closed for lagging: the number of exits it missed.
    pub lagged_missed: Option<f64>,
    /// No more exits will come (unsubscribed or lagged).
    pub closed: bool,
}

#[napi]
impl NativeSubscription {
    /// Takes up to `max` queued exits without waiting.
    #[napi]
    pub fn drain(&self, max: u32) -> DrainResult {
        let mut out = DrainResult {
            exits: Vec::new(),
            lagged_missed: None,
            closed: false,
        };
        let Some(sub) = &self.inner else {
            out.closed = true;
            return out;
        };
        while out.exits.len() < max as usize {
            match sub.try_recv() {
                Ok(Some(exit)) => out.exits.push(ExitRecord::from(exit.as_ref())),
                Ok(None) => break,
                Err(RecvError::Lagged { missed }) => {
                    out.lagged_missed = Some(missed as f64);
                    out.closed = true;
                    break;
                }
                Err(RecvError::Closed) => {
                    out.closed = true;
                    break;
                }
            }
        }
        out
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
/// when exits are waiting to be drained, or when the subscription closes.
#[napi]
pub fn subscribe(
    owner: u32,
    on_readable: Function<(), ()>,
    buffer_size: u32,
    lag_timeout_ms: f64,
    max_overflow: u32,
) -> Result<NativeSubscription> {
    let reaper = crate::reaper()?;
    let tsfn = on_readable
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(|_ctx| Ok(()))?;
    let options = SubscribeOptions {
        buffer_size: buffer_size as usize,
        lag_timeout: Duration::from_secs_f64(lag_timeout_ms.max(0.0) / 1000.0),
        max_overflow: max_overflow as usize,
        notify: Some(Arc::new(move || {
            // Non-blocking: the delivery thread never waits for JavaScript. A queue already
            // holding a call is enough, since each call drains everything readable.
            tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        })),
    };
    let sub = Arc::new(reaper.subscribe(options));
    environment::track_subscription(owner, &sub);
    Ok(NativeSubscription { inner: Some(sub) })
}

#[napi(object)]
pub struct WaitResult {
    /// The child had already exited.
    pub exit: Option<ExitRecord>,
    /// The wait is pending: `on_exit` will be called; cancel with this id.
    pub wait_id: Option<f64>,
    /// The pid is not a child of this process and no recent exit of it is known.
    pub not_a_child: bool,
}

/// Waits for `pid`: answers at once when the exit is known, else calls `on_exit(exit)` later.
#[napi]
pub fn wait(pid: i32, on_exit: Function<ExitRecord, ()>) -> Result<WaitResult> {
    let reaper = crate::reaper()?;
    let tsfn = on_exit
        .build_threadsafe_function::<ExitRecord>()
        .weak::<true>()
        .callee_handled::<false>()
        .build_callback(|ctx| Ok(ctx.value))?;
    let outcome = reaper.wait_with(pid, move |exit| {
        tsfn.call(
            ExitRecord::from(exit.as_ref()),
            ThreadsafeFunctionCallMode::NonBlocking,
        );
    });
    Ok(match outcome {
        Ok(WaitOutcome::Ready(exit)) => WaitResult {
            exit: Some(ExitRecord::from(exit.as_ref())),
            wait_id: None,
            not_a_child: false,
        },
        Ok(WaitOutcome::Pending(id)) => WaitResult {
            exit: None,
            wait_id: Some(id as f64),
            not_a_child: false,
        },
        Err(WaitError::NotAChild(_)) | Err(WaitError::TimedOut(_)) => WaitResult {
            exit: None,
            wait_id: None,
            not_a_child: true,
        },
    })
}
