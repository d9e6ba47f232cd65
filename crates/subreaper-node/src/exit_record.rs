//! The engine's exit as a JavaScript object. The TypeScript layer names the signal.

use napi_derive::napi;
use subreaper_core::{Exit, ReapedBy};

#[napi(object)]
pub struct RusageRecord {
    pub user_cpu_time: f64,
    pub system_cpu_time: f64,
    pub max_rss: Option<f64>,
    pub minor_faults: f64,
    pub major_faults: f64,
    pub voluntary_context_switches: f64,
    pub involuntary_context_switches: f64,
}

#[napi(object)]
pub struct ExitRecord {
    pub pid: i32,
    pub status: i32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub core_dumped: bool,
    pub raw_status: i32,
    /// Milliseconds since the epoch.
    pub timestamp: f64,
    /// Milliseconds since the epoch at which the process started, when known.
    pub start_time: Option<f64>,
    pub rusage: RusageRecord,
    pub comm: Option<String>,
    /// "subreaper" when the engine reaped it, "owner" when another waiter did.
    pub reaped_by: String,
    pub seq: f64,
}

impl From<&Exit> for ExitRecord {
    fn from(e: &Exit) -> Self {
        let ru = &e.rusage;
        ExitRecord {
            pid: e.pid,
            status: e.status(),
            code: e.termination.code(),
            signal: e.termination.signal(),
            core_dumped: e.termination.core_dumped(),
            raw_status: e.raw_wait_status(),
            timestamp: e
                .timestamp
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0),
            start_time: e.started_at.and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs_f64() * 1000.0)
            }),
            rusage: RusageRecord {
                user_cpu_time: ru.user_cpu_us as f64,
                system_cpu_time: ru.system_cpu_us as f64,
                max_rss: ru.max_rss_kib.map(|v| v as f64),
                minor_faults: ru.minor_faults as f64,
                major_faults: ru.major_faults as f64,
                voluntary_context_switches: ru.voluntary_context_switches as f64,
                involuntary_context_switches: ru.involuntary_context_switches as f64,
            },
            comm: e.comm.clone(),
            reaped_by: match e.reaped_by {
                ReapedBy::Reaper => "subreaper",
                ReapedBy::Other => "owner",
            }
            .to_string(),
            seq: e.seq as f64,
        }
    }
}
