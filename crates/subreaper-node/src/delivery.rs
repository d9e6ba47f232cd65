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

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use subreaper_core::{
    Exit, ReapedBy, RecvError, SubscribeOptions, Subscription, WaitError, WaitOutcome,
};

use crate::environment;
use crate::exit_record::ExitRecord;

#[napi]
pub struct NativeSubscription {
    inner: Option<Arc<Subscription>>,
}

/// Numbers per exit in [`DrainResult::fields`], in this order (see `exit.cts`, `decodeExits`).
pub const EXIT_FIELDS: usize = 17;

#[napi(object)]
pub struct DrainResult {
    /// The exits, packed as [`EXIT_FIELDS`] numbers each: building one typed array is much
    /// cheaper than building an object per exit through N-API, which dominated fan-out.
    pub fields: Float64Array,
    /// Each exit's command name, in the same order.
    pub comms: Vec<Option<String>>,
    /// Set once, when the subscriber was closed for lagging: the number of exits it missed.
    pub lagged_missed: Option<f64>,
    /// No more exits will come (unsubscribed or lagged).
    pub closed: bool,
}

fn pack(exit: &Exit, fields: &mut Vec<f64>) {
    let ms = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let opt = |v: Option<i32>| v.map_or(f64::NAN, f64::from);
    let ru = &exit.rusage;
    fields.extend_from_slice(&[
        exit.pid as f64,
        exit.status() as f64,
        opt(exit.termination.code()),
        opt(exit.termination.signal()),
        if exit.termination.core_dumped() {
            1.0
        } else {
            0.0
        },
        exit.raw_wait_status() as f64,
        ms(exit.timestamp),
        exit.started_at.map_or(f64::NAN, ms),
        ru.user_cpu_us as f64,
        ru.system_cpu_us as f64,
        ru.max_rss_kib.map_or(f64::NAN, |v| v as f64),
        ru.minor_faults as f64,
        ru.major_faults as f64,
        ru.voluntary_context_switches as f64,
        ru.involuntary_context_switches as f64,
        match exit.reaped_by {
            ReapedBy::Reaper => 0.0,
            ReapedBy::Other => 1.0,
        },
        exit.seq as f64,
    ]);
}

#[napi]
impl NativeSubscription {
    /// Takes up to `max` queued exits without waiting.
    #[napi]
    pub fn drain(&self, max: u32) -> DrainResult {
        let mut fields = Vec::new();
        let mut comms = Vec::new();
        let mut lagged_missed = None;
        let mut closed = false;
        match &self.inner {
            None => closed = true,
            Some(sub) => {
                while comms.len() < max as usize {
                    match sub.try_recv() {
                        Ok(Some(exit)) => {
                            pack(&exit, &mut fields);
                            comms.push(exit.comm.clone());
                        }
                        Ok(None) => break,
                        Err(RecvError::Lagged { missed }) => {
                            lagged_missed = Some(missed as f64);
                            closed = true;
                            break;
                        }
                        Err(RecvError::Closed) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
        }
        DrainResult {
            fields: Float64Array::new(fields),
            comms,
            lagged_missed,
            closed,
        }
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
        })?;
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
    let _ = called.set(Arc::downgrade(&sub));
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
