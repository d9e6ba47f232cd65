//! Starting the command: fork, then exec with the caller's signal mask and dispositions.
//!
//! The init blocks every signal and catches none, so the caller's ignored signals are still
//! ignored here and survive exec (`nohup subreaper cmd`); the caller's mask is put back in the
//! child before exec. The file is looked up in PATH as `execvp` does, and a file that is not a
//! known executable format (ENOEXEC: a script without `#!`) is run by `/bin/sh`, as the shells
//! and the C inits do. Every descriptor this process did not open itself is inherited.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::wait::waitpid;
use nix::unistd::{execv, fork, getpid, pipe2, read, setpgid, write, ForkResult, Pid};

use crate::options::is_path;
use crate::terminal::Terminal;

/// Why the command could not be started.
#[derive(Debug)]
pub enum LaunchError {
    /// No such file (exit status 127).
    NotFound,
    /// It exists but could not be run (exit status 126).
    CannotRun(Errno),
}

/// How the command is started.
pub struct Launch<'a> {
    pub command: &'a [OsString],
    /// The caller's signal mask, restored in the child.
    pub mask: &'a SigSet,
    /// Give the command a process group of its own.
    pub group: bool,
    /// Put that group in the foreground of this terminal.
    pub terminal: Option<&'a Terminal>,
}

fn cstring(s: &OsStr) -> CString {
    // An argument cannot hold a NUL byte: the kernel takes C strings.
    CString::new(s.as_bytes()).unwrap_or_default()
}

/// The files to try, in order: the command itself if it has a slash, else each PATH entry.
fn candidates(command: &OsStr) -> Vec<CString> {
    if is_path(command) {
        return vec![cstring(command)];
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    path.as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(command.as_bytes());
            CString::new(full).unwrap_or_default()
        })
        .collect()
}

/// In the child: tries every candidate; returns the errno to report if none could be run.
fn exec_first(files: &[CString], argv: &[CString]) -> Errno {
    let mut denied = false;
    let mut last = Errno::ENOENT;
    for file in files {
        let err = match execv(file, argv) {
            Err(e) => e,
            Ok(never) => match never {},
        };
        match err {
            Errno::ENOEXEC => {
                // No `#!` and no known format: a shell script, as execvp and the shells take it.
                let mut sh = vec![c"/bin/sh".to_owned(), file.clone()];
                sh.extend(argv.iter().skip(1).cloned());
                let err = match execv(c"/bin/sh", &sh) {
                    Err(e) => e,
                    Ok(never) => match never {},
                };
                return err;
            }
            Errno::EACCES => denied = true,
            Errno::ENOENT | Errno::ENOTDIR | Errno::ESTALE | Errno::ENODEV | Errno::ETIMEDOUT => {}
            other => return other,
        }
        last = err;
    }
    if denied {
        Errno::EACCES
    } else {
        last
    }
}

/// Starts the command; returns its pid once it runs (the exec succeeded).
pub fn launch(how: &Launch<'_>) -> Result<Pid, LaunchError> {
    let argv: Vec<CString> = how.command.iter().map(|a| cstring(a)).collect();
    let files = candidates(&how.command[0]);
    // The exec's outcome: the child writes its errno here if exec fails; a successful exec
    // closes the pipe (close-on-exec) with nothing written.
    let (reader, writer) = pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::CannotRun)?;
    // SAFETY: this process has a single thread, so the child may run any code after fork.
    match unsafe { fork() }.map_err(LaunchError::CannotRun)? {
        ForkResult::Child => {
            drop(reader);
            if how.group {
                let _ = setpgid(Pid::from_raw(0), Pid::from_raw(0));
                if let Some(tty) = how.terminal {
                    tty.hand_to(getpid());
                }
            }
            let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(how.mask), None);
            let errno = exec_first(&files, &argv);
            let _ = write(&writer, &(errno as i32).to_ne_bytes());
            // SAFETY: _exit ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(127) }
        }
        ForkResult::Parent { child } => {
            drop(writer);
            if how.group {
                // Also here, so the group exists before either process goes on (as shells do).
                let _ = setpgid(child, child);
                if let Some(tty) = how.terminal {
                    tty.hand_to(child);
                }
            }
            let mut buf = [0u8; 4];
            let mut got = 0;
            while got < buf.len() {
                match read(&reader, &mut buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
            if got < buf.len() {
                return Ok(child);
            }
            // The child could not exec and exits at once: reap it here.
            let _ = waitpid(child, None);
            match Errno::from_raw(i32::from_ne_bytes(buf)) {
                Errno::ENOENT | Errno::ENOTDIR => Err(LaunchError::NotFound),
                e => Err(LaunchError::CannotRun(e)),
            }
        }
    }
}
