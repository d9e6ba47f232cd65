//! The one encoding of exits for JavaScript: a batch of numbers, [`ExitField::Count`] per exit in
//! the order of [`ExitField`], and the command names beside them. Subscriptions, waits and
//! sweeps all hand exits over this way, and `exit.cts` has the one decoder. Building one typed
//! array is much cheaper than building an object per exit through N-API (which dominated
//! fan-out). The TypeScript layer names the signal.

use std::time::{SystemTime, UNIX_EPOCH};

use napi::bindgen_prelude::Float64Array;
use napi_derive::napi;
use subreaper_core::{Exit, ReapedBy};

/// Where each number of an exit sits in [`ExitBatch::fields`]. Optional values are NaN when
/// absent. The generated declarations carry these values to TypeScript, so the layout is
/// written only here.
#[napi]
pub enum ExitField {
    Pid,
    Status,
    Code,
    Signal,
    /// 1 or 0.
    CoreDumped,
    RawStatus,
    /// Milliseconds since the epoch.
    Timestamp,
    /// Milliseconds since the epoch (whole milliseconds: the kernel counts in clock ticks).
    StartTime,
    /// NaN, as every usage field, when the exit has no usage.
    UserCpuTime,
    SystemCpuTime,
    MaxRss,
    MinorFaults,
    MajorFaults,
    VoluntaryContextSwitches,
    InvoluntaryContextSwitches,
    /// 1 when another waiter (the owner) reaped it, 0 when the engine did.
    ReapedByOwner,
    /// The engine's sequence number of the exit.
    Seq,
    /// Numbers per exit.
    Count,
}

/// Exits packed for JavaScript (see [`ExitField`]).
#[napi(object)]
pub struct ExitBatch {
    pub fields: Float64Array,
    /// Each exit's command name, in the same order.
    pub comms: Vec<Option<String>>,
}

/// Milliseconds since the epoch.
fn epoch_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Where the exits start in a buffer filled by [`fill`]: after the count, the closed flag and
/// the number of exits missed by a lagging subscriber.
pub const BUFFER_HEADER: usize = 3;

/// Writes `exits` into `buffer` after [`BUFFER_HEADER`] (the caller fills the header) and
/// returns their command names in one string: joined by NUL (which no name contains), an
/// absent one as U+0001. One string and no object per call: the cheapest handover to
/// JavaScript, for the path between libuv's reap and the callbacks.
pub fn fill<'a>(exits: impl IntoIterator<Item = &'a Exit>, buffer: &mut [f64]) -> String {
    let mut comms = String::new();
    let rows = buffer[BUFFER_HEADER..].chunks_exact_mut(ExitField::Count as usize);
    for (i, (exit, slot)) in exits.into_iter().zip(rows).enumerate() {
        slot.copy_from_slice(&row(exit));
        if i > 0 {
            comms.push('\0');
        }
        comms.push_str(exit.comm.as_deref().unwrap_or("\u{1}"));
    }
    comms
}

fn row(exit: &Exit) -> [f64; ExitField::Count as usize] {
    let opt = |v: Option<i32>| v.map_or(f64::NAN, f64::from);
    let count = |v: Option<u64>| v.map_or(f64::NAN, |v| v as f64);
    let mut row = [f64::NAN; ExitField::Count as usize];
    let mut set = |field: ExitField, value: f64| row[field as usize] = value;
    set(ExitField::Pid, exit.pid.into());
    set(ExitField::Status, exit.status().into());
    set(ExitField::Code, opt(exit.termination.code()));
    set(ExitField::Signal, opt(exit.termination.signal()));
    set(
        ExitField::CoreDumped,
        u8::from(exit.termination.core_dumped()).into(),
    );
    set(ExitField::RawStatus, exit.raw_wait_status().into());
    set(ExitField::Timestamp, epoch_ms(exit.timestamp));
    set(
        ExitField::StartTime,
        exit.started_at.map_or(f64::NAN, |t| epoch_ms(t).round()),
    );
    // No usage read (a child its owner reaped): every usage field stays NaN.
    if let Some(ru) = &exit.rusage {
        set(ExitField::UserCpuTime, ru.user_cpu_us as f64);
        set(ExitField::SystemCpuTime, ru.system_cpu_us as f64);
        set(ExitField::MaxRss, count(ru.max_rss_kib));
        set(ExitField::MinorFaults, ru.minor_faults as f64);
        set(ExitField::MajorFaults, ru.major_faults as f64);
        set(
            ExitField::VoluntaryContextSwitches,
            count(ru.voluntary_context_switches),
        );
        set(
            ExitField::InvoluntaryContextSwitches,
            count(ru.involuntary_context_switches),
        );
    }
    set(
        ExitField::ReapedByOwner,
        match exit.reaped_by {
            ReapedBy::Reaper => 0.0,
            ReapedBy::Other => 1.0,
        },
    );
    set(ExitField::Seq, exit.seq as f64);
    row
}

impl ExitBatch {
    pub fn of<'a>(exits: impl IntoIterator<Item = &'a Exit>) -> Self {
        let mut fields = Vec::new();
        let mut comms = Vec::new();
        for exit in exits {
            fields.extend_from_slice(&row(exit));
            comms.push(exit.comm.clone());
        }
        ExitBatch {
            fields: Float64Array::new(fields),
            comms,
        }
    }
}
