//! `subreaper`: a native init. Runs a command as its child, forwards signals to it, reaps every
//! orphan, ends what the command left behind, and exits with its status.
//!
//! The program has no Rust `main`: the C entry point takes argv as raw bytes, and the Rust
//! runtime's start-up (which would set SIGPIPE to ignored, and hand that to the command) never
//! runs, so the command starts with the caller's signal dispositions exactly.
#![cfg_attr(not(test), no_main)]
// Unit tests run under the test harness's main: the C entry point and what only it uses are left out.
#![cfg_attr(test, allow(dead_code))]

mod exits;
mod launch;
mod leftovers;
mod options;
mod report;
mod signals;
mod supervisor;
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
        Parsed::Run(opts) => supervisor::run(opts),
    }
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
