//! One reaper per process. Each copy of the addon (two versions of the package in one
//! `node_modules` tree) has its own statics, so a second copy must not start a second engine:
//! the two would race for the same children. The first copy holds a process-wide name (an
//! abstract Unix socket named after the pid); a second copy that cannot take it refuses to start.

use std::sync::OnceLock;

use subreaper_core::Reaper;

use crate::error_code::{self, ErrorCode};

static STARTED: OnceLock<std::result::Result<(), String>> = OnceLock::new();

/// The reaper, or an error with code `ERR_SUBREAPER_DUPLICATE` in a second copy of the addon.
pub(crate) fn reaper() -> error_code::Result<&'static Reaper> {
    match STARTED.get_or_init(claim_process) {
        Ok(()) => Ok(Reaper::global()),
        Err(msg) => Err(error_code::error(ErrorCode::Duplicate, msg)),
    }
}

#[cfg(target_os = "linux")]
fn claim_process() -> std::result::Result<(), String> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};

    // The pid alone is not unique across PID namespaces that share a network namespace (where
    // abstract names live), so the name also carries the PID namespace and the start time.
    let pid_ns = std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start_time = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.get(s.rfind(')')? + 1..)?.to_string();
            rest.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_default();
    let name = format!("subreaper.{pid_ns}.{}.{start_time}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).map_err(|e| e.to_string())?;
    match UnixListener::bind_addr(&addr) {
        Ok(listener) => {
            // Held for the life of the process.
            std::mem::forget(listener);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Err(format!(
            "another copy of the subreaper addon already runs the reaper \
             in this process (pid {}); two reapers would race for the same children. Load a single \
             copy of the package (deduplicate it in node_modules).",
            std::process::id()
        )),
        // No socket available (seccomp, no network namespace): run without the guard.
        Err(_) => Ok(()),
    }
}

#[cfg(not(target_os = "linux"))]
fn claim_process() -> std::result::Result<(), String> {
    Ok(())
}
