//! `subreaper`: a native init. Runs a command as its child, forwards signals to it, reaps every
//! orphan, ends what the command left behind, and exits with its status.
//!
//! The program has no Rust `main`: the C entry point takes argv as raw bytes, and the Rust
//! runtime's start-up (which would set SIGPIPE to ignored, and hand that to the command) never
//! runs, so the command starts with the caller's signal dispositions exactly.
#![cfg_attr(not(test), no_main)]
// Unit tests run under the test harness's main: the C entry point and what only it uses are left out.
#![cfg_attr(test, allow(dead_code))]
// The init is built on Linux's signalfd, PID namespaces and /proc. Elsewhere (macOS) the
// binary only says so.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

#[cfg(target_os = "linux")]
mod exits;
#[cfg(target_os = "linux")]
mod launch;
#[cfg(target_os = "linux")]
mod leftovers;
mod options;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod signals;
#[cfg(target_os = "linux")]
mod supervisor;
#[cfg(target_os = "linux")]
mod terminal;

use std::ffi::OsString;
use std::io::Write;

use options::{Parsed, USAGE};

fn start(args: Vec<OsString>) -> i32 {
    let parsed = match options::parse(&args) {
        Ok(p) => p,
        Err(e) => {
            let _ = write!(std::io::stderr(), "subreaper: {}\n\n{USAGE}\n", e.0);
            return 2;
        }
    };
    match parsed {
        Parsed::Help => {
            let _ = writeln!(std::io::stdout(), "{USAGE}");
            0
        }
        Parsed::Version => {
            let _ = writeln!(std::io::stdout(), "{}", env!("CARGO_PKG_VERSION"));
            0
        }
        Parsed::Run(mut opts) => {
            options::apply_env(&mut opts, |name| std::env::var_os(name));
            run(opts)
        }
    }
}

#[cfg(target_os = "linux")]
fn run(opts: options::Options) -> i32 {
    supervisor::run(opts)
}

#[cfg(not(target_os = "linux"))]
fn run(_opts: options::Options) -> i32 {
    let _ = writeln!(
        std::io::stderr(),
        "subreaper: the native init runs on Linux only (this is {}): use the library's monitor API here",
        std::env::consts::OS
    );
    1
}

#[cfg(not(test))]
mod entry {
    use std::ffi::{CStr, OsString};
    use std::os::unix::ffi::OsStringExt;

    /// The C entry point.
    ///
    /// # Safety
    /// Called by the C runtime with `argc` valid C strings in `argv`.
    #[no_mangle]
    pub unsafe extern "C" fn main(
        argc: libc::c_int,
        argv: *const *const libc::c_char,
    ) -> libc::c_int {
        let args = (1..argc.max(1) as usize)
            .map(|i| {
                // SAFETY: the C runtime passes argc valid, NUL-terminated strings in argv.
                let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
                OsString::from_vec(arg.to_bytes().to_vec())
            })
            .collect();
        super::start(args)
    }
}
