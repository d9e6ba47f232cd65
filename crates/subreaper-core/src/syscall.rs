//! The drain's four system calls per exit (peek, taskstats request and reply, reap), made
//! without the C library's wrappers on Linux.
//!
//! glibc's `waitid`, `wait4`, `send` and `recv` are thread-cancellation points: each call
//! switches the thread's cancellation state on and off around the system call, two atomic
//! updates that a drain of 10,000 zombies makes 80,000 times. No engine thread is ever
//! cancelled, so the drain calls the kernel directly. Same arguments, same results, errors in
//! `errno` as the wrappers leave them. Elsewhere the C library's functions are used.

#[cfg(target_os = "linux")]
mod imp {
    /// `waitid(2)`, without the resource usage the raw call can also return.
    ///
    /// # Safety
    /// `info` must be valid for the kernel to write a `siginfo_t` to.
    pub(crate) unsafe fn waitid(
        idtype: libc::idtype_t,
        id: libc::id_t,
        info: *mut libc::siginfo_t,
        options: libc::c_int,
    ) -> libc::c_int {
        let no_rusage = std::ptr::null_mut::<libc::rusage>();
        // SAFETY: the caller vouches for `info`; a null rusage asks the kernel for none.
        unsafe { libc::syscall(libc::SYS_waitid, idtype, id, info, options, no_rusage) as _ }
    }

    /// `wait4(2)`.
    ///
    /// # Safety
    /// `status` and `rusage` must be valid for the kernel to write to.
    pub(crate) unsafe fn wait4(
        pid: libc::pid_t,
        status: *mut libc::c_int,
        options: libc::c_int,
        rusage: *mut libc::rusage,
    ) -> libc::pid_t {
        // SAFETY: the caller vouches for both pointers.
        unsafe { libc::syscall(libc::SYS_wait4, pid, status, options, rusage) as _ }
    }

    /// `send(2)`: `sendto` with no address, as the C library makes it.
    ///
    /// # Safety
    /// `buf` must be valid to read for `len` bytes.
    pub(crate) unsafe fn send(
        fd: libc::c_int,
        buf: *const libc::c_void,
        len: usize,
        flags: libc::c_int,
    ) -> isize {
        let no_addr = std::ptr::null::<libc::sockaddr>();
        // SAFETY: the caller vouches for `buf`; no address, of length 0.
        unsafe { libc::syscall(libc::SYS_sendto, fd, buf, len, flags, no_addr, 0) as _ }
    }

    /// `recv(2)`: `recvfrom` with no address, as the C library makes it.
    ///
    /// # Safety
    /// `buf` must be valid to write for `len` bytes.
    pub(crate) unsafe fn recv(
        fd: libc::c_int,
        buf: *mut libc::c_void,
        len: usize,
        flags: libc::c_int,
    ) -> isize {
        let no_addr = std::ptr::null_mut::<libc::sockaddr>();
        let no_len = std::ptr::null_mut::<libc::socklen_t>();
        // SAFETY: the caller vouches for `buf`; no address is asked for.
        unsafe { libc::syscall(libc::SYS_recvfrom, fd, buf, len, flags, no_addr, no_len) as _ }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    pub(crate) use libc::{recv, send, wait4, waitid};
}

pub(crate) use imp::{recv, send, wait4, waitid};

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn errno() -> Option<i32> {
        std::io::Error::last_os_error().raw_os_error()
    }

    #[test]
    fn peek_and_reap_answer_as_the_c_library_does() {
        // Reaped below, by the call under test.
        #[allow(clippy::zombie_processes)]
        let child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let pid = child.id() as i32;
        // SAFETY: siginfo_t is plain data; all-zero is valid for waitid to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOWAIT;
        // SAFETY: `info` is valid to write; blocks until the child has exited, leaves it.
        let rc = unsafe { waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        assert_eq!(rc, 0);
        // SAFETY: waitid filled the SIGCHLD member.
        let (got, status) = unsafe { (info.si_pid(), info.si_status()) };
        assert_eq!((got, info.si_code, status), (pid, libc::CLD_EXITED, 3));
        let mut raw = 0;
        // SAFETY: rusage is plain data; zeroed is valid for wait4 to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: both are valid to write.
        let reaped = unsafe { wait4(pid, &mut raw, libc::WNOHANG, &mut ru) };
        assert_eq!(reaped, pid, "the peek left the zombie for the reap");
        assert!(libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 3);
        // SAFETY: as above.
        let again = unsafe { wait4(pid, &mut raw, libc::WNOHANG, &mut ru) };
        assert_eq!((again, errno()), (-1, Some(libc::ECHILD)));
        // SAFETY: as above.
        let rc = unsafe {
            waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                flags | libc::WNOHANG,
            )
        };
        assert_eq!((rc, errno()), (-1, Some(libc::ECHILD)));
    }

    #[test]
    fn send_and_recv_move_the_bytes_and_report_errors_in_errno() {
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        let msg = b"one datagram";
        // SAFETY: `msg` is valid to read for its length.
        let sent = unsafe { send(fds[0], msg.as_ptr().cast(), msg.len(), 0) };
        assert_eq!(sent, msg.len() as isize);
        let mut buf = [0u8; 64];
        // SAFETY: `buf` is valid to write for its length.
        let got = unsafe {
            recv(
                fds[1],
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        assert_eq!(&buf[..got as usize], msg);
        // SAFETY: as above.
        let none = unsafe {
            recv(
                fds[1],
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT,
            )
        };
        assert_eq!((none, errno()), (-1, Some(libc::EAGAIN)));
        for fd in fds {
            // SAFETY: both descriptors are this test's own.
            unsafe { libc::close(fd) };
        }
    }
}
